"""Scale benchmark (issue 18 budgets), every ratio measured in the same run:

    python -m tests.bench.scale [--accounts 1000000] [--txs 6000] [--quick] [--keep DIR]
    python -m tests.bench.scale --only catch-up [--seeded DIR]   (snapshot against replay only)

Two devnets of 4 sealers are seeded offline (tests/bench/seed.py: real certified blocks of
real signed transfers, one new account each), one with `--accounts` accounts, one with
1,000; then real node processes run them:

- Payment TPS: devnet/bench.py's load (pre-signed TOKEN transfers over the channel ports),
  its recipients drawn from the chain's existing accounts, so that reads and tree updates
  hit cold state; two rounds per chain, alternating. Budget: TPS with `--accounts` within
  15 % of TPS with 1,000; every node's RSS <= 300 MB.
- Catching up: on the large chain, a node that holds only block 0 starts with `--sync full`
  (replays every block) and, once it is at the head, another with `--sync snapshot`; each
  timed from its start until its head is the sealers'. Budgets: snapshot >= 5x faster
  than replay; replay >= 3,000 tx/s. Their RSS counts against the 300 MB too.

`--only catch-up` runs the catching up alone, on a chain it seeds or, with `--seeded DIR`,
on the devnet `python -m tests.bench.seed --dir DIR` seeded (starting its nodes changes it:
seed once, copy the folder aside, and copy it back, to the same path, before each run).

Exits 1 if a budget is missed. Not part of `make test`: --quick (20,000 accounts) takes
about two minutes, the default about half an hour (docs/performance.md).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import trio

from chainnode.client import Account, Client
from chainnode.crypto import get_suite
from devnet.bench import BenchResult, Transfers, proc_stats, run_bench
from devnet.supervisor import Devnet
from tests.bench.seed import SCALE_CONFIG, SeedInfo, account_address, seed, sender_private
from tests.integration.cluster import Cluster

SMALL_ACCOUNTS = 1_000
TPS_LOSS_MAX = 0.15
RSS_MIB_MAX = 300 * 1_000_000 / 2**20  # 300 MB
SNAPSHOT_SPEEDUP_MIN = 5.0
REPLAY_TPS_MIN = 3_000
SEALERS = 4
FULL_JOINER, SNAPSHOT_JOINER = SEALERS, SEALERS + 1  # the observers' indexes
CATCH_UP_TIMEOUT_S = 3_600


def seeded_load(info: SeedInfo, tx_count: int, rng: random.Random):
    """run_bench's `load`: the seeded token and senders, sending to `tx_count` accounts
    drawn from the chain's."""
    suite = get_suite("sm")
    senders = [Account(suite, sender_private(i), suite.keypair_from_private(sender_private(i))[1]) for i in range(info.senders)]
    recipients = [account_address(rng.randrange(info.accounts)) for _ in range(tx_count)]

    async def load(client: Client) -> Transfers:
        return Transfers(await client.group_info(), bytes.fromhex(info.token), senders, recipients)

    return load


def wait_head(cluster: Cluster, node: int, height: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if cluster.height(node) >= height:
                return
        except Exception:  # not answering yet (starting), or busy: ask again
            pass
        if cluster.net.exit_code(cluster.layout[node].name) is not None:
            raise RuntimeError(f"node{node} exited; its log ends:\n{cluster.log(node)[-3000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"node{node} did not reach block {height} in {timeout_s} s")
        time.sleep(0.1)


def memory_mib(cluster: Cluster, node: int) -> tuple[float, float]:
    """(resident, of which anonymous) MiB of a running node (devnet/bench.py's proc_stats)."""
    return proc_stats(cluster.net.pid(cluster.layout[node].name))[1:]


def tps_round(cluster: Cluster, info: SeedInfo, tx_count: int, rng: random.Random) -> BenchResult:
    for i in range(SEALERS):
        cluster.start(i)
    for i in range(SEALERS):
        cluster.wait_rpc(i)
    r = trio.run(lambda: run_bench(cluster.net, tx_count, load=seeded_load(info, tx_count, rng)))
    if r.committed != r.transactions:
        raise RuntimeError(f"only {r.committed} of {r.transactions} transfers committed")
    return r


def catch_up(cluster: Cluster, node: int, mode: str) -> tuple[float, int]:
    """Seconds for `node` (at block 0) to reach the sealers' head with `--sync mode`, and that head."""
    head = cluster.height(0)
    started = time.monotonic()
    cluster.start(node, args=("--sync", mode))
    wait_head(cluster, node, head, CATCH_UP_TIMEOUT_S)
    return time.monotonic() - started, head


def catch_up_results(cluster: Cluster, accounts: int, rss: dict) -> list[tuple[str, str, bool]]:
    """The sealers of `cluster` run: first a node replays the chain, then one takes a snapshot."""
    total_txs = cluster.rpc(0, "getTotalTransactionCount")["transactionCount"]
    load = os.getloadavg()[0]
    full_s, head = catch_up(cluster, FULL_JOINER, "full")
    full_cpu_s = proc_stats(cluster.net.pid(cluster.layout[FULL_JOINER].name))[0]
    rss["large replaying node"] = memory_mib(cluster, FULL_JOINER)
    snapshot_s, _ = catch_up(cluster, SNAPSHOT_JOINER, "snapshot")
    snapshot_cpu_s = proc_stats(cluster.net.pid(cluster.layout[SNAPSHOT_JOINER].name))[0]
    rss["large snapshot node"] = memory_mib(cluster, SNAPSHOT_JOINER)
    for i in range(SEALERS):
        rss[f"large node{i} after serving"] = memory_mib(cluster, i)
    log = cluster.log(SNAPSHOT_JOINER)
    installed = [line.split("snapshot: ", 1)[1] for line in log.splitlines() if "snapshot: installed block" in line]
    speedup = full_s / snapshot_s
    replay_tps = total_txs / full_s
    return [(f"catching up {head:,} blocks, {accounts:,} accounts: snapshot against replay",
             f"snapshot {snapshot_s:.1f} s, joiner CPU {snapshot_cpu_s:.1f} s ({installed[-1] if installed else 'no install logged'}), "
             f"replay {full_s:.1f} s, CPU {full_cpu_s:.1f} s: {speedup:.1f}x (>= {SNAPSHOT_SPEEDUP_MIN:.0f}x; load average {load:.1f} before)",
             speedup >= SNAPSHOT_SPEEDUP_MIN),
            ("full replay (block sync)", f"{total_txs:,} transactions in {full_s:.1f} s: {replay_tps:,.0f} tx/s (>= {REPLAY_TPS_MIN:,})",
             replay_tps >= REPLAY_TPS_MIN)]


def rss_result(rss: dict) -> tuple[str, str, bool]:
    worst = max(rss, key=lambda k: rss[k][0])
    every = ", ".join(f"{k} {v[0]:.0f} ({v[1]:.0f})" for k, v in rss.items())
    largest = f"largest {rss[worst][0]:.0f} MiB ({worst}; <= {RSS_MIB_MAX:.0f} MiB = 300 MB)"
    return "RSS per node", f"{largest}; resident (anonymous) MiB: {every}", rss[worst][0] <= RSS_MIB_MAX


def catch_up_only(args, accounts: int) -> list[tuple[str, str, bool]]:
    rss: dict[str, tuple[float, float]] = {}
    with tempfile.TemporaryDirectory(prefix="chainnode-scale-") as tmp:
        if args.seeded:
            cluster = Cluster.__new__(Cluster)  # the devnet is there already: open it, do not create one
            cluster.folder, cluster.net = args.seeded, Devnet(args.seeded)
            cluster.layout = cluster.net.nodes
            info = SeedInfo.load(args.seeded)
        else:
            cluster = Cluster((args.keep or Path(tmp)) / "large", sealers=SEALERS, observers=2, config=SCALE_CONFIG)
            info = seed(cluster.net, accounts)
        with cluster:
            for i in range(SEALERS):
                cluster.start(i)
            for i in range(SEALERS):
                cluster.wait_rpc(i)
            return catch_up_results(cluster, info.accounts, rss) + [rss_result(rss)]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=1_000_000)
    ap.add_argument("--txs", type=int, default=6000, help="transfers per TPS round")
    ap.add_argument("--quick", action="store_true", help="20,000 accounts, 2,000 transfers per round (a smoke run)")
    ap.add_argument("--keep", type=Path, help="build the devnets in this new folder and leave them there")
    ap.add_argument("--only", choices=["catch-up"], help="only snapshot sync against replay (no TPS rounds, no small chain)")
    ap.add_argument("--seeded", type=Path, help="with --only catch-up: the devnet tests/bench/seed.py seeded in this folder")
    args = ap.parse_args()
    if args.seeded and not args.only:
        ap.error("--seeded goes with --only catch-up")
    accounts, tx_count = (20_000, 2_000) if args.quick else (args.accounts, args.txs)
    rng = random.Random(18)
    results = []
    if args.only:
        results = catch_up_only(args, accounts)
    else:
        results = full_run(args, accounts, tx_count, rng)
    print(f"chainnode scale benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]}; real node processes on this machine)")
    width = max(len(r[0]) for r in results)
    for name, text, ok in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}  {text}")
    return 0 if all(ok for _, _, ok in results) else 1


def full_run(args, accounts: int, tx_count: int, rng: random.Random) -> list[tuple[str, str, bool]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="chainnode-scale-") as tmp:
        root = args.keep or Path(tmp)
        small_cluster = Cluster(root / "small", sealers=SEALERS, config=SCALE_CONFIG)
        large_cluster = Cluster(root / "large", sealers=SEALERS, observers=2, config=SCALE_CONFIG)
        with small_cluster, large_cluster:
            small = seed(small_cluster.net, SMALL_ACCOUNTS)
            large = seed(large_cluster.net, accounts)
            print(f"seeded {large.accounts:,} accounts ({large.height} blocks, {large.transactions:,} transactions) in {large.seconds:.0f} s, "
                  f"{small.accounts:,} in {small.seconds:.0f} s", flush=True)

            tps: dict[str, list[float]] = {"small": [], "large": []}
            rss: dict[str, tuple[float, float]] = {}  # (resident, anonymous) MiB, the most seen
            for which in ("small", "large", "small", "large"):  # alternating: neither always runs on a warmer machine
                cluster, info = (small_cluster, small) if which == "small" else (large_cluster, large)
                r = tps_round(cluster, info, tx_count, rng)
                tps[which].append(r.tps)
                for n in r.nodes:
                    rss[f"{which} {n['node']}"] = max(rss.get(f"{which} {n['node']}", (0.0, 0.0)), (n["rss_mib"], n["anon_mib"]))
                print(f"  {which} chain: {r.tps:,.0f} TPS, latency p50 {r.latency_p50_s} s; "
                      + ", ".join(f"{n['node']} {n['cpu_pct']}% {n['rss_mib']} MiB" for n in r.nodes), flush=True)
                if len(tps["large"]) < 2:  # each round starts cold; the last one's large chain runs on
                    cluster.stop_all()
            with_large, with_small = statistics.mean(tps["large"]), statistics.mean(tps["small"])
            loss = 1 - with_large / with_small
            runs = ", ".join(f"{t:,.0f}" for t in tps["large"]) + " vs " + ", ".join(f"{t:,.0f}" for t in tps["small"])
            results.append((f"payment TPS, {accounts:,} accounts against {SMALL_ACCOUNTS:,}",
                            f"{with_large:,.0f} vs {with_small:,.0f} TPS ({runs}): {100 * loss:+.1f} % lost (<= {100 * TPS_LOSS_MAX:.0f} %)",
                            loss <= TPS_LOSS_MAX))

            # The large chain's sealers run on: first a node replays it, then one takes a snapshot.
            results += catch_up_results(large_cluster, accounts, rss)
            results.append(rss_result(rss))
    return results


if __name__ == "__main__":
    sys.exit(main())

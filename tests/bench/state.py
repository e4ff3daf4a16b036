"""State tree benchmark (issue 18 budgets), every ratio against a ceiling measured in the
same run:

    python -m tests.bench.state [--accounts 100000] [--blocks 8] [--quick]

- Block commit with the tree against the same commit without it: two ledgers holding the
  same `--accounts` accounts get the same blocks of 1,000 payments and 2,000 state writes
  (1,000 balances changed, 1,000 accounts new). Timed: the state root (the tree's update,
  or the chained digest of header version 1) plus `Ledger.commit_block`, the one synced
  write. Budget: <= 3x.
- One balance's proof: its size, and the time to verify it (offline, as the SDK does).
- With `--chains`: the 4-sealer chain benchmark (tests/bench/chain.py's load, real node
  processes) on a chain with the tree (compatibility_version 0.3.0) and one without
  (0.2.0's rules), in the same run, alternating. Budget: TPS with >= 0.85x without.

Exits 1 if a budget is missed. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from chainnode.crypto import get_suite
from chainnode.store.ledger import Ledger
from chainnode.store.state import next_state_root
from tests.helpers import next_block, payment_tx

COMMIT_RATIO_MAX = 3.0
TPS_RATIO_MIN = 0.85
FILL_CHUNK = 50_000  # accounts per filling block


def account_key(i: int) -> bytes:
    return b"c" + bytes(20) + b"/" + b"bal:%040x" % i


def fill(ledger: Ledger, sealers, accounts: int, version: int) -> None:
    ledger.commit_block(*next_block(ledger, [], {}, sealers, header_version=version))
    for start in range(0, accounts, FILL_CHUNK):
        writes = {account_key(i): b"\x01" * 9 for i in range(start, min(accounts, start + FILL_CHUNK))}
        ledger.commit_block(*next_block(ledger, [], writes, sealers, header_version=version))


def timed_commit(ledger: Ledger, sealers, txs, writes, version: int) -> float:
    """Seconds for the state root (as execution computes it) and the block's commit. The
    block is built untimed (that signs a certificate and hashes the transactions too), then
    its root is computed again, timed, as execution would."""
    block = next_block(ledger, txs, writes, sealers, header_version=version)
    t = time.perf_counter()
    if version >= 2:
        ledger.state.tree_update(ledger.head_height + 1, writes)
    else:
        next_state_root(ledger.suite, ledger.head_header.state_root, writes)
    root_s = time.perf_counter() - t
    t = time.perf_counter()
    ledger.commit_block(*block)
    return root_s + time.perf_counter() - t


def chain_tps(tx_count: int) -> tuple[str, str, bool]:
    """TPS of 4 sealers with the tree against without it: two rounds each, alternating."""
    import trio

    from devnet.bench import run_bench
    from tests.bench.chain import CHAIN_CONFIG
    from tests.integration.cluster import Cluster

    tps: dict[int, list[float]] = {2000: [], 3000: []}
    for version in (2000, 3000, 3000, 2000):
        with tempfile.TemporaryDirectory(prefix="chainnode-bench-") as tmp, \
                Cluster(Path(tmp) / "net", sealers=4, config={**CHAIN_CONFIG, "compatibility_version": version}) as cluster:
            cluster.start_all()
            r = trio.run(lambda: run_bench(cluster.net, tx_count))
            tps[version].append(r.tps if r.committed == r.transactions else 0.0)
    with_tree, without = statistics.mean(tps[3000]), statistics.mean(tps[2000])
    ratio = with_tree / without
    runs = ", ".join(f"{t:,.0f}" for t in tps[3000]) + " vs " + ", ".join(f"{t:,.0f}" for t in tps[2000])
    return ("4 sealers, TPS with the tree against without", f"{with_tree:,.0f} vs {without:,.0f} TPS ({runs}) = {ratio:.2f}x (>= {TPS_RATIO_MIN}x)",
            ratio >= TPS_RATIO_MIN)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--accounts", type=int, default=100_000)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--quick", action="store_true", help="10,000 accounts, 3 blocks (a smoke run)")
    ap.add_argument("--chains", action="store_true", help="also compare real 4-sealer chains with and without the tree")
    ap.add_argument("--txs", type=int, default=6000, help="transfers per chain run (--chains)")
    args = ap.parse_args()
    accounts, blocks = (10_000, 3) if args.quick else (args.accounts, args.blocks)
    suite = get_suite("sm")
    sealers = [suite.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(4)]
    user = suite.generate_keypair()
    results = []
    with tempfile.TemporaryDirectory(prefix="chainnode-bench-") as tmp:
        ledgers = {v: Ledger.open(Path(tmp) / f"v{v}", suite) for v in (1, 2)}
        try:
            t = time.perf_counter()
            for v, ledger in ledgers.items():
                fill(ledger, sealers, accounts, v)
            fill_s = time.perf_counter() - t
            times: dict[int, list[float]] = {1: [], 2: []}
            for b in range(blocks):
                txs = [payment_tx(suite, *user, block_limit=10**6) for _ in range(1000)]
                writes = {account_key((b * 7919 + i * 104729) % accounts): os.urandom(9) for i in range(1000)}
                writes |= {account_key(accounts + b * 1000 + i): os.urandom(9) for i in range(1000)}
                for v in (2, 1) if b % 2 else (1, 2):  # alternate, so neither always runs on a warmer machine
                    times[v].append(timed_commit(ledgers[v], sealers, txs, writes, v))
            without, with_tree = statistics.median(times[1]) * 1000, statistics.median(times[2]) * 1000
            ratio = with_tree / without
            results.append((f"block commit, 2,000 writes at {accounts:,} accounts",
                            f"with the tree {with_tree:.1f} ms, without {without:.1f} ms = {ratio:.2f}x (<= {COMMIT_RATIO_MAX}x)",
                            ratio <= COMMIT_RATIO_MAX))
            ledger = ledgers[2]
            key = account_key(accounts // 2)
            proof = ledger.state_proof(key, ledger.head_height)
            root = ledger.head_header.state_root
            n = 2000
            t = time.perf_counter()
            for _ in range(n):
                proof.verify(suite, root)
            verify_us = (time.perf_counter() - t) / n * 1e6
            results.append(("one balance's proof", f"{len(proof.encode()):,} bytes, {len(proof.steps)} levels, verified in {verify_us:.0f} µs", True))
        finally:
            for ledger in ledgers.values():
                ledger.close()
    if args.chains:
        results.append(chain_tps(args.txs))
    print(f"chainnode state tree benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]}; filled {accounts:,} accounts twice in {fill_s:.1f} s)")
    width = max(len(r[0]) for r in results)
    for name, text, ok in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}  {text}")
    return 0 if all(ok for _, _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""Chain benchmark (issue 5 budgets): real node processes on this machine, driven by the
same load generator as `devnet bench` (devnet/bench.py).

    python -m tests.bench.chain [--nodes 1,4] [--txs 6000] [--quick] [--json FILE]

For each network size: committed TPS with the load sent as fast as the nodes take it,
beside the raw SM2 verification rate measured in the same run (the ceiling: every node
checks every signature once). For 4 sealers, a second run offers exactly the budget rate
(800 TPS) and measures commit latency there: at full speed the latency only measures the
queue the benchmark itself builds up. Exits 1 if a budget is missed: 1 sealer >= 2,000
TPS; 4 sealers >= 800 TPS, and median commit latency <= 1 s (p99 <= 3 s) at 800 TPS.

Its nodes die with it, even when it is SIGKILLed (devnet/supervisor.py binds them; see
tests/integration/test_devnet_lifetime.py); only its temporary folder is left then.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import trio

from devnet.bench import run_bench
from tests.integration.cluster import Cluster

TPS_BUDGETS = {1: 2000, 4: 800}  # sealers -> minimum committed TPS at full speed
LATENCY_RATE_TPS = 800  # offered load of the 4-sealer latency run
LATENCY_P50_MAX_S, LATENCY_P99_MAX_S = 1.0, 3.0
CHAIN_CONFIG = {"block_interval_min_ms": 200, "tx_count_limit": 2000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    ap.add_argument("--txs", type=int, default=6000)
    ap.add_argument("--quick", action="store_true", help="1,000 transactions (a smoke run)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    tx_count = 1000 if args.quick else args.txs
    runs = []  # (label, result, ok)
    for n in args.nodes:
        with tempfile.TemporaryDirectory(prefix="chainnode-bench-") as tmp, Cluster(Path(tmp) / "net", sealers=n, config=CHAIN_CONFIG) as cluster:
            cluster.start_all()
            r = trio.run(lambda: run_bench(cluster.net, tx_count))
            min_tps = TPS_BUDGETS.get(n, 0)
            runs.append((f"{n} sealer(s), full speed: {r.tps:,.0f} TPS (>= {min_tps})", r, r.tps >= min_tps and r.committed == r.transactions))
            if n == 4:
                r = trio.run(lambda: run_bench(cluster.net, tx_count, rate_tps=LATENCY_RATE_TPS))
                ok = r.committed == r.transactions and (r.latency_p50_s or 99) <= LATENCY_P50_MAX_S and (r.latency_p99_s or 99) <= LATENCY_P99_MAX_S
                runs.append((f"{n} sealer(s) at {LATENCY_RATE_TPS} TPS offered: latency p50 {r.latency_p50_s} s (<= {LATENCY_P50_MAX_S}), p99 {r.latency_p99_s} s (<= {LATENCY_P99_MAX_S})", r, ok))
    print("chainnode chain benchmark (real node processes on this machine, JSON-RPC load)")
    for label, r, ok in runs:
        cpu = ", ".join(f"{n['node']} {n['cpu_pct']}% {n['rss_mib']} MiB" for n in r.nodes)
        print(
            f"  {'PASS' if ok else 'FAIL'}  {label}; {r.committed}/{r.transactions} committed at {r.tps:,.0f} TPS, "
            f"raw SM2 verify {r.raw_sm2_verify_per_s:,.0f}/s per core (TPS/raw = {r.tps_per_raw_verify:.2f}); "
            f"latency p50 {r.latency_p50_s} s, p95 {r.latency_p95_s} s, p99 {r.latency_p99_s} s; {cpu}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps([{"run": label, **r.as_dict()} for label, r, _ in runs], indent=2))
    return 0 if all(ok for _, _, ok in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

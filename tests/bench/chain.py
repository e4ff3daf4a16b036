"""Chain benchmark (issue 5 budgets): real node processes, pre-signed payment transfers
sent over JSON-RPC as fast as the nodes take them, committed TPS and commit latency.

    python -m tests.bench.chain [--nodes 1,4] [--txs 6000] [--quick]

Prints, per network size, committed TPS and the median/p95 commit latency beside the raw
SM2 verification rate of this machine measured in the same run (the ceiling: every
transaction's signature is checked once per node), and exits 1 if a budget is missed:
1 sealer >= 2,000 TPS; 4 sealers >= 800 TPS with median latency <= 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import trio

from chainnode.client import Account, Client
from chainnode.crypto import get_suite
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN, transfers

RPC_BATCH = 100  # transactions per JSON-RPC batch request (the default rpc_batch_max)
SENDERS_PER_NODE = 2
BUDGETS = {1: (2000, 1.0), 4: (800, 1.0)}  # sealers -> (min TPS, max median latency s)


def raw_sm2_verify_rate(seconds: float = 1.0) -> float:
    suite = get_suite("sm")
    priv, pub = suite.generate_keypair()
    msg = b"m" * 32
    sig = suite.sign(priv, msg)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            suite.verify(pub, msg, sig)
        count += 100
    return count / (time.perf_counter() - start)


async def run_one(sealers: int, tx_count: int, folder: Path) -> dict:
    with Cluster(folder, sealers=sealers, config={"block_interval_min_ms": 200, "tx_count_limit": 2000}) as cluster:
        cluster.start_all()
        alice = Account.generate("sm")
        # Several senders (a pool caps one sender's share), each funded before the clock starts,
        # so every measured transfer succeeds: two reads, a check, two writes, an event.
        accounts = [Account.generate("sm") for _ in range(max(1, tx_count // 1000))]
        async with Client(cluster.layout[0].rpc_url, timeout_s=60) as client:
            token = (await client.deploy(alice, TOKEN, [tx_count], timeout_s=60)).contract_address
            for acct in accounts:
                await client.send(alice, token, "transfer", [acct.address, tx_count // len(accounts)], timeout_s=60)
            height = await client.block_number()
        txs = []
        for k, acct in enumerate(accounts):
            txs += transfers(acct, token, tx_count // len(accounts), block_limit=height + 900)
        sent_at: dict[bytes, float] = {}
        urls = [n.rpc_url for n in cluster.layout]
        batches = [txs[i : i + RPC_BATCH] for i in range(0, len(txs), RPC_BATCH)]

        async def sender(k: int, http: httpx.AsyncClient) -> None:
            for b in range(k, len(batches), len(urls) * SENDERS_PER_NODE):
                batch = batches[b]
                body = [{"jsonrpc": "2.0", "id": j, "method": "sendTransaction", "params": ["group0", "", "0x" + tx.encode().hex()]} for j, tx in enumerate(batch)]
                now = time.monotonic()
                for tx in batch:
                    sent_at[tx.hash(alice.suite)] = now
                reply = (await http.post(urls[b % len(urls)], json=body)).json()
                errors = [r["error"] for r in reply if "error" in r]
                assert not errors, errors[:3]

        start_count = cluster.rpc(0, "getTotalTransactionCount")["transactionCount"]
        start = time.monotonic()
        async with httpx.AsyncClient(timeout=60) as http:
            async with trio.open_nursery() as nursery:
                for k in range(len(urls) * SENDERS_PER_NODE):
                    nursery.start_soon(sender, k, http)
        sent_s = time.monotonic() - start
        # Follow commits block by block to time each transaction's commit.
        latencies: list[float] = []
        seen_height = height
        deadline = time.monotonic() + 300
        committed = 0
        while committed < len(txs) and time.monotonic() < deadline:
            head = cluster.rpc(0, "getBlockNumber")
            for h in range(seen_height + 1, head + 1):
                block = cluster.rpc(0, "getBlockByNumber", h, False, True)
                now = time.monotonic()
                for tx_hash in block["transactions"]:
                    t = sent_at.get(bytes.fromhex(tx_hash[2:]))
                    if t is not None:
                        latencies.append(now - t)
                        committed += 1
            seen_height = head
            await trio.sleep(0.02)
        elapsed = time.monotonic() - start
        total = cluster.rpc(0, "getTotalTransactionCount")["transactionCount"] - start_count
        sample = [cluster.rpc(0, "getTransactionReceipt", "0x" + tx.hash(alice.suite).hex()) for tx in txs[:: max(1, len(txs) // 20)]]
        assert all(r is not None and r["status"] == 0 for r in sample), "benchmark transfers must succeed"
        latencies.sort()
        return {
            "sealers": sealers,
            "transactions": len(txs),
            "committed": total,
            "send_seconds": round(sent_s, 2),
            "seconds": round(elapsed, 2),
            "tps": round(total / elapsed, 1),
            "latency_p50_s": round(statistics.median(latencies), 3) if latencies else None,
            "latency_p95_s": round(latencies[int(0.95 * (len(latencies) - 1))], 3) if latencies else None,
        }


async def main_async(args) -> int:
    raw = raw_sm2_verify_rate()
    results = []
    for n in args.nodes:
        with tempfile.TemporaryDirectory(prefix="chainnode-bench-") as tmp:
            results.append(await run_one(n, args.txs, Path(tmp)))
    failed = False
    print(f"chainnode chain benchmark: raw SM2 verify on this machine {raw:,.0f}/s per core (same run)")
    for r in results:
        min_tps, max_p50 = BUDGETS.get(r["sealers"], (0, float("inf")))
        ok = r["tps"] >= min_tps and r["committed"] == r["transactions"] and (r["latency_p50_s"] or 99) <= max_p50
        failed |= not ok
        print(
            f"  {'PASS' if ok else 'FAIL'}  {r['sealers']} sealer(s): {r['committed']}/{r['transactions']} committed, "
            f"{r['tps']:,.0f} TPS (>= {min_tps}) = {r['tps'] / raw:.2f}x raw SM2 verify, "
            f"latency p50 {r['latency_p50_s']} s (<= {max_p50}) p95 {r['latency_p95_s']} s, sent in {r['send_seconds']} s"
        )
    if args.json:
        Path(args.json).write_text(json.dumps({"raw_sm2_verify_per_s": raw, "results": results}, indent=2))
    return 1 if failed else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=lambda s: [int(x) for x in s.split(",")], default=[1, 4])
    ap.add_argument("--txs", type=int, default=6000)
    ap.add_argument("--quick", action="store_true", help="1,000 transactions (a smoke run)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    if args.quick:
        args.txs = 1000
    return trio.run(main_async, args)


if __name__ == "__main__":
    sys.exit(main())

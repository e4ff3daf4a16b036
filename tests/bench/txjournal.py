"""What durable acknowledgements cost. Run: python -m tests.bench.txjournal [--quick] [--dir PATH]

Measures, in one run on the same disk (pass --dir to measure another file system than /tmp):
- the ceiling: bare fsyncs per second (write 200 bytes + fsync, one after the other; the
  best of 3 runs);
- the journal alone: appends per second with 1, 16 and 256 concurrent submitters, and how
  many appends share one fsync (group commit);
- the pool: client submissions per second (signature check included) without the journal
  and with it (`submit_durably`), and their ratio;
- the event loop: the longest a 1 ms ticker was kept waiting while the journal wrote (the
  writes and fsyncs run on a worker thread).

Not part of `make test`: timings on a shared machine belong in a benchmark.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import trio

from chainnode.crypto import get_suite
from chainnode.txpool.journal import TxJournal
from chainnode.txpool.pool import PoolLimits, TxPool
from tests.helpers import payment_tx


def fsync_rate(folder: Path, count: int) -> float:
    path = folder / "fsync.probe"
    with open(path, "ab") as f:
        t = time.perf_counter()
        for _ in range(count):
            f.write(os.urandom(200))
            f.flush()
            os.fsync(f.fileno())
        rate = count / (time.perf_counter() - t)
    path.unlink()
    return rate


async def journal_rate(folder: Path, count: int, concurrency: int) -> tuple[float, float, float]:
    """(appends/s, appends per fsync, longest event-loop stall in ms)."""
    path = folder / f"bench-{concurrency}.journal"
    journal = TxJournal(path, bytes_max=1 << 30)
    raws = [os.urandom(200) for _ in range(count)]
    stall_ms = 0.0
    done = trio.Event()

    async def ticker():
        nonlocal stall_ms
        while not done.is_set():
            t = time.perf_counter()
            await trio.sleep(0.001)
            stall_ms = max(stall_ms, (time.perf_counter() - t) * 1000 - 1)

    async def submitter(k: int):
        for i in range(k, count, concurrency):
            await journal.append(i.to_bytes(32, "big"), raws[i])

    t = time.perf_counter()
    async with trio.open_nursery() as outer:
        outer.start_soon(ticker)
        async with trio.open_nursery() as n:
            for k in range(concurrency):
                n.start_soon(submitter, k)
        elapsed = time.perf_counter() - t
        done.set()
    journal.close()
    path.unlink()
    return count / elapsed, count / max(1, journal.syncs), stall_ms


async def pool_rate(folder: Path | None, txs, concurrency: int) -> float:
    suite = get_suite("sm")
    journal = TxJournal(folder / "pool.journal", bytes_max=1 << 30) if folder else None
    pool = TxPool(suite, "chain0", "group0", head_height=lambda: 0, is_committed=lambda h: False, limits=PoolLimits(sender_share_pct=100), journal=journal)
    raws = [t.encode() for t in txs]

    async def submitter(k: int):
        for i in range(k, len(raws), concurrency):
            await (pool.submit_durably(raws[i]) if journal else pool.submit(raws[i]))

    t = time.perf_counter()
    async with trio.open_nursery() as n:
        for k in range(concurrency):
            n.start_soon(submitter, k)
    elapsed = time.perf_counter() - t
    if journal:
        journal.close()
        (folder / "pool.journal").unlink()
    return len(raws) / elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer operations")
    parser.add_argument("--dir", help="folder on the disk to measure (default: a temporary folder)")
    args = parser.parse_args()
    scale = 1 if args.quick else 4
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        ceiling = max(fsync_rate(folder, 100 * scale) for _ in range(3))  # the least disturbed of 3
        print(f"ceiling: {ceiling:,.0f} fsyncs/s (200-byte write + fsync, one after another)")
        for concurrency in (1, 16, 256):
            rate, per_sync, stall = await journal_rate(folder, 500 * scale if concurrency > 1 else 100 * scale, concurrency)
            print(f"journal, {concurrency:>3} submitters: {rate:,.0f} appends/s = {rate / ceiling:.2f}x the fsync ceiling, {per_sync:.1f} appends per fsync, event loop stalled at most {stall:.1f} ms")
        suite = get_suite("sm")
        priv, pub = suite.generate_keypair()
        txs = [payment_tx(suite, priv, pub, block_limit=900) for _ in range(1000 * scale)]
        plain = await pool_rate(None, txs, 64)
        durable = await pool_rate(folder, txs, 64)
        print(f"pool, 64 submitters: {plain:,.0f} tx/s without the journal, {durable:,.0f} tx/s with it: {durable / plain:.2f}x")


if __name__ == "__main__":
    trio.run(main)

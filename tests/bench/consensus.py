"""Benchmark: the PBFT core's own CPU cost per committed block, per replica (n = 4).

Run: `python -m tests.bench.consensus [--blocks 300] [--suite ed25519|sm]`

Four real replicas run on the simulator's calm network (no faults) until every replica has
committed `--blocks` blocks. Every `Replica.handle()` call is timed; the time spent inside the
suite's sign/verify (timed separately by a CountingSuite) is subtracted, so the number is the
core's own cost: decoding, bookkeeping, hashing headers, encoding and building actions. The
signature work is printed next to it, as counts and time per block, and as a ratio against a
single verification measured in the same run (DESIGN.md rule 9).

Exits non-zero if the core's own cost exceeds the ceiling (1 ms per block per replica).
"""

from __future__ import annotations

import argparse
import sys
import time

from consensus import sim

CEILING_US = 1000.0


def measure(blocks: int, suite_name: str, seed: int = 1) -> dict:
    sc = sim.make_scenario(seed, [4], "none", 1000, 10**9)
    sc.partitions, sc.crashes, sc.drop_rate, sc.dup_rate, sc.crash_after_persist_rate = [], [], 0.0, 0.0, 0.0
    sc.delay, sc.delay_max_ms, sc.tx_interval_ms = "uniform", 20, (5, 10)
    world = sim.World(sc, suite_name, tx_limit=100)
    counting = world.suite
    counting._clock = time.perf_counter
    # [handle seconds, crypto seconds inside handle, signs inside, verifies inside]: the
    # simulator's own certificate checks also use the suite, and must not be counted.
    spent = [0.0, 0.0, 0, 0]

    def timed(handle):
        def wrapper(event):
            crypto, signs, verifies = counting.crypto_seconds, counting.signs, counting.verifies
            t = time.perf_counter()
            try:
                return handle(event)
            finally:
                spent[0] += time.perf_counter() - t
                spent[1] += counting.crypto_seconds - crypto
                spent[2] += counting.signs - signs
                spent[3] += counting.verifies - verifies

        return wrapper

    for node in world.nodes:
        node.replica.handle = timed(node.replica.handle)
    world.at(0, world.inject_txs)
    while min(node.app.head_height for node in world.nodes) < blocks:
        time_ms, _, fn, args = sim.heapq.heappop(world._queue)
        world.now_ms = time_ms
        fn(*args)
    view_changes = sum(node.replica.stats["view_changes"] for node in world.nodes)
    replica_blocks = sum(node.app.head_height for node in world.nodes)
    # One verification, measured now, on this machine, as the yardstick.
    inner = counting.inner
    priv, pub = inner.keypair_from_private(b"\x07" * 32)
    msg = b"x" * 120
    sig = inner.sign(priv, msg)
    t = time.perf_counter()
    for _ in range(200):
        inner.verify(pub, msg, sig)
    verify_us = (time.perf_counter() - t) / 200 * 1e6
    core_s = spent[0] - spent[1]
    return {
        "replica_blocks": replica_blocks,
        "view_changes": view_changes,
        "core_us": core_s / replica_blocks * 1e6,
        "crypto_us": spent[1] / replica_blocks * 1e6,
        "signs": spent[2] / replica_blocks,
        "verifies": spent[3] / replica_blocks,
        "verify_us": verify_us,
        "messages": world.messages / replica_blocks,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.bench.consensus")
    p.add_argument("--blocks", type=int, default=300)
    p.add_argument("--suite", default="ed25519", choices=["ed25519", "sm"])
    a = p.parse_args(argv)
    m = measure(a.blocks, a.suite)
    ok = m["core_us"] <= CEILING_US
    print(f"PBFT core, n = 4, {a.blocks} blocks per replica, suite {a.suite}, {m['view_changes']} view changes")
    print(
        f"  core CPU per committed block per replica: {m['core_us']:.0f} us   "
        f"(ceiling {CEILING_US:.0f} us: {'OK' if ok else 'MISSED'}; "
        f"= {m['core_us'] / m['verify_us']:.1f} signature verifications of {m['verify_us']:.0f} us)"
    )
    print(
        f"  signatures per block per replica, counted separately: {m['signs']:.1f} signs + "
        f"{m['verifies']:.1f} verifications = {m['crypto_us']:.0f} us; "
        f"{m['messages']:.1f} messages received"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Foundation benchmarks (issue 2 budgets), each a ratio against a ceiling measured in the
same run or a fixed budget. Run: python -m tests.bench.foundation [--quick]

Prints one line per budget and exits 1 if any is missed. Not part of `make test`: timing
on a shared 2-core machine belongs in a benchmark, never in a unit test.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from chainnode.crypto import get_suite
from chainnode.crypto.sm import DEFAULT_ID, rs_to_der
from chainnode.store.ledger import Ledger
from tests.helpers import next_block, payment_tx


def best_rate(fn, count: int, rounds: int) -> float:
    """The best of `rounds` runs of `count` calls, in calls per second (least disturbed run)."""
    best = 0.0
    for _ in range(rounds):
        t = time.perf_counter()
        fn(count)
        best = max(best, count / (time.perf_counter() - t))
    return best


def raw_libcrypto_verify_loop(sm2, pub: bytes, msg: bytes, sig: bytes):
    """The ceiling: the bare libcrypto calls for one SM2 verification, key pre-parsed,
    signature pre-encoded, no checks; what the suite does minus everything of ours."""
    lib = sm2.lib
    pkey = sm2._public(pub)
    der = rs_to_der(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    md = lib.EVP_sm3()

    def run(count: int) -> None:
        for _ in range(count):
            mctx = lib.EVP_MD_CTX_new()
            pctx = lib.EVP_PKEY_CTX_new(pkey.ptr, None)
            lib.EVP_PKEY_CTX_set1_id(pctx, DEFAULT_ID, 16)
            lib.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
            lib.EVP_DigestVerifyInit(mctx, None, md, None, pkey.ptr)
            ok = lib.EVP_DigestVerify(mctx, der, len(der), msg, len(msg))
            lib.EVP_MD_CTX_free(mctx)
            lib.EVP_PKEY_CTX_free(pctx)
            assert ok == 1

    return run


def openssl_speed_verify() -> float | None:
    """`openssl speed sm2` verify/s, for reference (a C loop); None if not available."""
    exe = shutil.which("openssl")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "speed", "-seconds", "2", "sm2"], capture_output=True, text=True, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"SM2 \(\w+\)\s+[\d.]+s\s+[\d.]+s\s+([\d.]+)\s+([\d.]+)", out)
    return float(m.group(2)) if m else None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer iterations (CI smoke run)")
    args = ap.parse_args()
    scale = 0.2 if args.quick else 1.0
    rounds = 3 if args.quick else 5
    results: list[tuple[str, str, bool]] = []

    sm = get_suite("sm")
    priv, pub = sm.generate_keypair()
    tx = payment_tx(sm, priv, pub)
    msg = tx.hash(sm)
    sig = tx.signature
    n_verify = int(2000 * scale)

    raw = raw_libcrypto_verify_loop(sm._sm2, pub, msg, sig)

    def suite_loop(count: int) -> None:
        verify = sm.verify
        for _ in range(count):
            assert verify(pub, msg, sig)

    # Interleave the two so that background load hits both alike.
    raw_rate = suite_rate = 0.0
    for _ in range(rounds):
        raw_rate = max(raw_rate, best_rate(raw, n_verify, 1))
        suite_rate = max(suite_rate, best_rate(suite_loop, n_verify, 1))
    ratio = suite_rate / raw_rate
    results.append(("SM2 verify, suite vs raw libcrypto", f"{suite_rate:,.0f}/s vs {raw_rate:,.0f}/s = {ratio:.2f}x (>= 0.85x)", ratio >= 0.85))

    pool = ThreadPoolExecutor(max_workers=2)
    chunk = max(50, n_verify // 8)

    def two_threads(count: int) -> None:
        futures = [pool.submit(suite_loop, chunk) for _ in range(count // chunk)]
        for f in futures:
            f.result()

    one = best_rate(suite_loop, n_verify, rounds)
    two = best_rate(two_threads, n_verify * 2, rounds)
    pool.shutdown()
    results.append(("SM2 verify, 2 threads vs 1", f"{two:,.0f}/s vs {one:,.0f}/s = {two / one:.2f}x (>= 1.6x)", two / one >= 1.6))

    data = os.urandom(200)
    h = sm.hash
    n_hash = int(200_000 * scale)

    def hash_loop(count: int) -> None:
        for _ in range(count):
            h(data)

    sm3_us = 1e6 / best_rate(hash_loop, n_hash, rounds)
    results.append(("SM3 of 200 bytes", f"{sm3_us:.2f} µs (<= 3 µs)", sm3_us <= 3.0))

    # Ledger: blocks of 1,000 transactions and 2,000 state writes, synced.
    tmp = tempfile.mkdtemp(prefix="chainnode-bench-")
    try:
        sealers = [sm.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(4)]
        blocks = 3 if args.quick else 8
        txs_all = [payment_tx(sm, priv, pub) for _ in range(1000 * blocks)]
        with Ledger.open(tmp, sm) as ledger:
            ledger.commit_block(*next_block(ledger, [], {}, sealers))
            commit_ms = []
            for b in range(blocks):
                writes = {os.urandom(32): os.urandom(64) for _ in range(2000)}
                ready = next_block(ledger, txs_all[b * 1000 : (b + 1) * 1000], writes, sealers)
                t = time.perf_counter()
                ledger.commit_block(*ready)
                commit_ms.append((time.perf_counter() - t) * 1000)
            median_ms = statistics.median(commit_ms)
            results.append(("commit 1,000 txs + 2,000 writes", f"median {median_ms:.1f} ms of {blocks} blocks, max {max(commit_ms):.1f} ms (<= 60 ms)", median_ms <= 60))

            keys = list(writes)
            state_get = ledger.state.get

            def read_loop(count: int) -> None:
                for i in range(count):
                    state_get(keys[i % 2000])

            reads = best_rate(read_loop, int(1_000_000 * scale), rounds)
            results.append(("state reads from the cache", f"{reads:,.0f}/s (>= 200,000/s)", reads >= 200_000))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    speed = openssl_speed_verify()
    width = max(len(r[0]) for r in results)
    print(f"chainnode foundation benchmark ({os.cpu_count()} cores, Python {sys.version.split()[0]})")
    for name, text, ok in results:
        print(f"  {'PASS' if ok else 'FAIL'}  {name:<{width}}  {text}")
    if speed:
        print(f"  info  {'openssl speed sm2 (C loop)':<{width}}  {speed:,.0f} verify/s")
    return 0 if all(ok for _, _, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())

"""The node returns freed heap memory to the system (chainnode/node/memory.py): what a
worker thread allocated and freed otherwise stays in its glibc arena, and in the node's
resident set."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading

import pytest
import trio

from chainnode.node import memory

PROBE = textwrap.dedent("""
    import json, threading
    from chainnode.node import memory

    def anon_mib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024

    def churn():  # a synced range's worth of records, made and dropped on a worker thread
        records = [bytes(2000) + i.to_bytes(4, "big") for i in range(100_000)]
        keep.extend(records[999::1000])  # a few survive, as caches keep some: the arena cannot shrink past them
        del records

    keep = []
    start = anon_mib()
    thread = threading.Thread(target=churn)
    thread.start()
    thread.join()
    freed = anon_mib()
    trimmed = memory.trim()
    print(json.dumps({"start": start, "freed": freed, "after": anon_mib(), "trimmed": trimmed}))
""")


@pytest.mark.skipif(memory._TRIM is None, reason="no glibc malloc_trim on this system")
def test_memory_a_thread_freed_goes_back_to_the_system():
    got = json.loads(subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True).stdout)
    assert got["trimmed"] is True
    assert got["freed"] - got["start"] > 100, got  # ~200 MB was made; freed, it stayed resident
    assert got["after"] - got["start"] < 0.25 * (got["freed"] - got["start"]), got


async def test_the_periodic_trim_runs_on_a_worker_thread(monkeypatch):
    done = trio.Event()
    threads = []

    def trim():
        threads.append(threading.get_ident())
        if len(threads) == 3:
            trio.from_thread.run_sync(done.set)
        return True

    monkeypatch.setattr(memory, "trim", trim)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(memory.trim_periodically, 0.001)
        with trio.fail_after(10):
            await done.wait()
        nursery.cancel_scope.cancel()
    assert threading.get_ident() not in threads


LARGE_PROBE = textwrap.dedent("""
    import json, sys, threading
    from chainnode.node import memory

    def anon_mib():
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon"):
                return int(line.split()[1]) / 1024

    mapped = memory.map_large_allocations() if sys.argv[1] == "fixed" else None
    big = bytearray(16 << 20)  # a synced range's response, freed: glibc's own threshold rises to its size
    del big
    start = anon_mib()
    keep = []

    def ranges():  # blocks of a few hundred KB made and dropped on a worker thread, a little kept after each
        for _ in range(50):
            chunks = [bytearray(400 << 10) for _ in range(20)]
            keep.append(bytes(1000))  # a cache entry: the arena cannot shrink past it
            del chunks

    thread = threading.Thread(target=ranges)
    thread.start()
    thread.join()
    print(json.dumps({"mapped": mapped, "grown": anon_mib() - start}))
""")


@pytest.mark.skipif(memory._TRIM is None, reason="no glibc here")
def test_large_blocks_are_unmapped_when_freed_even_after_a_larger_one():
    def run(mode: str) -> dict:
        done = subprocess.run([sys.executable, "-c", LARGE_PROBE, mode], capture_output=True, text=True, timeout=60, check=True)
        return json.loads(done.stdout)

    default, fixed = run("default"), run("fixed")
    assert fixed["mapped"] is True
    assert default["grown"] > 4, default  # glibc's adjusted threshold: the blocks stayed in the thread's arena
    assert fixed["grown"] < 2, fixed

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

"""Giving freed heap memory back to the system (glibc's `malloc_trim`).

A node works on several threads: trio's worker threads run blocks, signature checks and
LevelDB reads, and glibc gives threads arenas of their own. What a block's execution or a
synced range of blocks allocates and then frees stays in those arenas' free lists, and in
the node's resident set, until that arena happens to reuse it. A node replaying a
1,000,000-account chain held 270-305 MiB of anonymous memory at block 200, of which
~110 MiB in thread arenas; returning the free pages every 5 s brought it to 241-251 MiB
at the same speed (237-245 after each synced range: no better; docs/performance.md, "Scale").

`trim_periodically` returns them every `interval_s`, on a worker thread (a few
milliseconds; glibc takes each arena's lock in turn, so allocations wait that long at
most). Without glibc (musl, macOS) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging

import trio

log = logging.getLogger("chainnode.node")

TRIM_INTERVAL_S = 5.0


def _malloc_trim():
    try:
        trim = ctypes.CDLL(None).malloc_trim  # the process's own symbols: libc's, if it is glibc
    except (OSError, AttributeError):
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


_TRIM = _malloc_trim()


def trim() -> bool:
    """Return the free heap pages of every arena to the system; False when there is no
    glibc to ask (then nothing happens)."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True


async def trim_periodically(interval_s: float = TRIM_INTERVAL_S) -> None:
    if _TRIM is None:
        log.info("no glibc malloc_trim here: freed heap memory is returned to the system only as the allocator decides")
        return
    while True:
        await trio.sleep(interval_s)
        await trio.to_thread.run_sync(trim)

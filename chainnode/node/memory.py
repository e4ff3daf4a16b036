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

`map_large_allocations` keeps glibc from raising its mmap threshold as it goes: by default,
freeing a large mapped block (a synced range's response, several MB) raises the threshold
to that size, and from then on blocks up to it come from the arenas and stay resident after
they are freed, until the next trim. Fixed at 128 KiB, they are mapped and unmapped: the
replaying node's malloc held 131 MB of memory instead of 208 MB (78 MB in use in both),
its resident set 267 MiB instead of 282-292, at the same speed.
"""

from __future__ import annotations

import ctypes
import logging

import trio

log = logging.getLogger("chainnode.node")

TRIM_INTERVAL_S = 5.0


def _glibc(name: str, argtypes: list):
    """glibc's function `name` (returning an int), or None without glibc."""
    try:
        function = getattr(ctypes.CDLL(None), name)  # the process's own symbols: libc's, if it is glibc
    except (OSError, AttributeError):
        return None
    function.argtypes, function.restype = argtypes, ctypes.c_int
    return function


_TRIM = _glibc("malloc_trim", [ctypes.c_size_t])
_MALLOPT = _glibc("mallopt", [ctypes.c_int, ctypes.c_int])

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
LARGE_ALLOCATION_BYTES = 128 << 10  # glibc's own starting threshold


def map_large_allocations() -> bool:
    """Blocks over LARGE_ALLOCATION_BYTES are always mapped, and the heap is trimmed once
    that much is free at its top (setting either stops glibc's adjusting of both); False
    without glibc."""
    if _MALLOPT is None:
        return False
    return _MALLOPT(M_MMAP_THRESHOLD, LARGE_ALLOCATION_BYTES) == 1 and _MALLOPT(M_TRIM_THRESHOLD, LARGE_ALLOCATION_BYTES) == 1


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

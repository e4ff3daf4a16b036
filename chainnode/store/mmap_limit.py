"""LevelDB reads through `pread`, not memory maps: keeps table pages out of the node's RSS.

LevelDB (1.22, as plyvel's wheels bundle it) maps up to 1,000 table files into memory to
read them, and every page a read touches stays in the process's resident set until the
table is closed: a 1,000,000-account chain's sealers were at 370-460 MiB resident, of
which ~180 MiB heap, the rest table pages. Lowering `max_open_files` bounds that, but each
read that must open its table again costs ~250 us instead of ~28 us. With no maps, LevelDB
reads a table with `pread`: the pages live in the kernel's page cache (shared, not counted
against the process) and the blocks LevelDB decodes in its own bounded block cache.
Measured on 30,000 random reads of a 170 MB database: 215 MiB resident with maps, 29 MiB
without, and the reads no slower (9.5 us against 17.8 us per get: no page faults).

The limit is `leveldb::(anonymous)::g_mmap_limit` (the library's own tests set it through
`EnvPosixTestHelper::SetReadOnlyMMapLimit`, which the bundled library does not export). It
is read once, when the library builds its default environment at the first `plyvel.DB`,
so `disable()` must run before that: chainnode/store/leveldb.py calls it at import. The
symbol is found in the library's ELF symbol table and written only if it holds the
library's default (1,000); otherwise (another build, a stripped library) nothing is
touched, and `disable` says why it could not.
"""

from __future__ import annotations

import ctypes
import struct
from pathlib import Path

import plyvel

LIMIT_SYMBOL = "_ZN7leveldb12_GLOBAL__N_112g_mmap_limitE"
ANCHOR_SYMBOL = "leveldb_create_default_env"  # exported: where the library was loaded
DEFAULT_LIMIT = 1000  # kDefaultMmapLimit on 64-bit
SHT_SYMTAB = 2


def _library() -> Path | None:
    libs = Path(plyvel.__file__).parent.with_name("plyvel.libs")
    found = sorted(libs.glob("libleveldb*.so*")) if libs.is_dir() else []
    return found[0] if len(found) == 1 else None


def _symbols(path: Path, wanted: set[str]) -> dict[str, int]:
    """The values (offsets) of `wanted` in the ELF64 little-endian symbol table of `path`."""
    data = path.read_bytes()
    if data[:6] != b"\x7fELF\x02\x01":
        return {}
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)]
    out: dict[str, int] = {}
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != SHT_SYMTAB or entsize != 24:
            continue
        strings = sections[link][4]
        for at in range(offset, offset + size, 24):
            name_at, _, _, _, value, _ = struct.unpack_from("<IBBHQQ", data, at)
            start = strings + name_at
            name = data[start:data.index(b"\0", start)].decode("ascii", "replace")
            if name in wanted:
                out[name] = value
    return out


def disable() -> str | None:
    """Make LevelDB read tables without memory maps; None when done, else why not."""
    path = _library()
    if path is None:
        return "plyvel's bundled libleveldb was not found"
    symbols = _symbols(path, {LIMIT_SYMBOL, ANCHOR_SYMBOL})
    if len(symbols) != 2:
        return f"{path.name} has no symbol table entry for its mmap limit"
    library = ctypes.CDLL(str(path))  # the copy plyvel loaded: the same handle
    base = ctypes.cast(getattr(library, ANCHOR_SYMBOL), ctypes.c_void_p).value - symbols[ANCHOR_SYMBOL]
    limit = ctypes.c_int.from_address(base + symbols[LIMIT_SYMBOL])
    if limit.value == 0:
        return None
    if limit.value != DEFAULT_LIMIT:
        return f"{path.name}'s mmap limit holds {limit.value}, not the default {DEFAULT_LIMIT}: left alone"
    limit.value = 0
    return None

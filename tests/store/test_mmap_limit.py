"""LevelDB reads the node's tables with `pread`, not through memory maps
(chainnode/store/mmap_limit.py): mapped, every page a read touched stayed in the node's
resident set while its table was open (hundreds of MiB at 1,000,000 accounts)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from chainnode.store import mmap_limit

# Writes ~12 MB (tables are flushed at LevelDB's 4 MB write buffer), reopens, reads every
# key, and reports the .ldb tables on disk and those mapped into the process.
PROBE = textwrap.dedent("""
    import json, os, sys
    from pathlib import Path
    if sys.argv[2] == "plyvel first":  # LevelDB's environment built before chainnode's module runs
        import plyvel
        plyvel.DB(sys.argv[1] + "-other", create_if_missing=True).close()
    from chainnode.store.leveldb import MMAP_LIMIT_PROBLEM, Store
    data_dir = Path(sys.argv[1])
    store = Store(data_dir, create=True)
    for batch in range(6):
        store.write_batch([(b"k%d-%d" % (batch, i), os.urandom(2000)) for i in range(1000)])
    store.close()
    store = Store(data_dir)
    found = sum(store.get(b"k%d-%d" % (batch, i)) is not None for batch in range(6) for i in range(1000))
    maps = [line for line in open("/proc/self/maps") if line.rstrip().endswith(".ldb")]
    print(json.dumps({"found": found, "tables": len(list((data_dir / "chain.db").glob("*.ldb"))), "mapped": len(maps),
                      "problem": MMAP_LIMIT_PROBLEM}))
""")


def probe(tmp_path, order: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / order.replace(" ", "-")), order],
                         capture_output=True, text=True, timeout=120, check=True)
    return json.loads(out.stdout)


def test_a_node_reads_its_tables_without_mapping_them(tmp_path):
    got = probe(tmp_path, "chainnode first")
    assert got["problem"] is None
    assert got["found"] == 6000 and got["tables"] >= 2
    assert got["mapped"] == 0
    # The probe can tell: with LevelDB's environment built before the limit is set, tables are mapped.
    before = probe(tmp_path, "plyvel first")
    assert before["found"] == 6000 and before["mapped"] >= 2


def test_a_library_without_the_symbol_is_left_alone_saying_why(tmp_path, monkeypatch):
    # Another build of LevelDB (stripped, or another version): nothing is written, and the reason is given.
    other = next(mmap_limit._library().parent.glob("libsnappy*"))
    monkeypatch.setattr(mmap_limit, "_library", lambda: other)
    assert mmap_limit.disable() == f"{other.name} has no symbol table entry for its mmap limit"
    not_elf = tmp_path / "libleveldb.so"
    not_elf.write_bytes(b"MZ" + bytes(100))
    monkeypatch.setattr(mmap_limit, "_library", lambda: not_elf)
    assert mmap_limit.disable() == "libleveldb.so has no symbol table entry for its mmap limit"

"""The state tree's C accelerator (chainnode/store/_treespeed.c) gives exactly what the
Python reference in chainnode/store/tree.py gives.

- It is built by the install (issue 18's commit budget depends on it), unless
  CHAINNODE_PURE_PYTHON=1 asks for the reference; it computes both suites' hashes.
- Over generated histories (updates, deletes, unchanged writes, collapses, leaves pushed
  down, whole-state builds from empty, tiny node caches, heights on every msgpack integer
  boundary, callers whose `existed` lies), the two give the same TreeUpdate: root ref,
  `nodes` keys, records and order, `internal` records, `stale` list; read the same nodes in
  the same order and leave the same node cache. Compared by repr, so True is not 1.
- Records it decodes itself are the canonical ones; anything else (missing, truncated,
  non-canonical, the wrong shape) is decoded by the reference, so the errors are the same.
- Writes it does not cover (keys or values that are not bytes, an `existed` that returns
  no bool) go to the reference, with the same result.
- Snapshot sync's walk step (`push_child_asks`) appends what the reference appends.
- No references or memory are leaked, on success or on error.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chainnode.crypto import SUITE_NAMES, get_suite
from chainnode.protocol.codec import pack, unpack
from chainnode.store.tree import NODE_PREFIX, StateTree, TreeUpdate, fetched_node_checker, node_key, push_child_asks_reference, tree_root, treespeed

REPO = Path(__file__).resolve().parents[2]
PURE = os.environ.get("CHAINNODE_PURE_PYTHON") == "1"
needs_c = pytest.mark.skipif(treespeed is None, reason="the reference implementation is running")
SM = get_suite("sm")


def test_the_accelerator_is_built() -> None:
    if PURE:
        assert treespeed is None and not StateTree({}.get, SM.hash).accelerated
        return
    assert treespeed is not None, (
        "chainnode/store/_treespeed.c was not built: the install needs a C compiler and the "
        "Python headers (Debian: gcc python3-dev). Run `make clean test` (or `.venv/bin/pip "
        "install -e .`), or set CHAINNODE_PURE_PYTHON=1 to run on the (slower) Python reference."
    )
    for name in SUITE_NAMES:
        assert StateTree({}.get, get_suite(name).hash).accelerated, f"the accelerator does not compute the {name} suite's hash"
    assert not StateTree({}.get, SM.hash, accelerate=False).accelerated
    assert not StateTree({}.get, lambda data: SM.hash(data + b"!")).accelerated, "a hash it does not know runs on Python"


def test_the_environment_variable_turns_it_off() -> None:
    code = "import chainnode.store.tree as t; assert t.treespeed is None and not t.StateTree({}.get, len).accelerated"
    env = dict(os.environ, CHAINNODE_PURE_PYTHON="1")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, check=True, timeout=60)


@needs_c
@pytest.mark.parametrize("name", SUITE_NAMES)
def test_its_digests_are_the_suites(name: str) -> None:
    h = get_suite(name).hash
    tree = StateTree({}.get, h)
    for data in (b"", b"abc", bytes(55), bytes(56), bytes(64), bytes(range(256)) * 9):
        assert treespeed.digest(tree._md, data) == h(data)


# ---- the two implementations side by side ---------------------------------------------------


def outcome(fn: Callable[[], Any]) -> tuple:
    try:
        return ("ok", fn())
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every error must match
        return ("error", type(exc).__name__, str(exc))


def contents(u: TreeUpdate) -> str:
    """Everything an update holds, in order, by repr (True is not 1, b"" is not None)."""
    return repr((u.height, u.parent, u.root_ref, list(u.nodes.items()), list(u.internal.items()), u.stale, u.batch_ops()))


def _no_python(*args: Any) -> None:
    raise AssertionError("the accelerated tree ran the Python recursion")


class Pair:
    """Two trees over one dict store, one accelerated and one on the reference, committed
    block by block as the ledger does; every read of each is logged."""

    def __init__(self, h=SM.hash, *, cache_entries_max: int = 50_000, head_height: int = -1, fallback_ok: bool = False) -> None:
        self.db: dict[bytes, bytes] = {}
        self.reads: dict[bool, list[bytes]] = {True: [], False: []}
        self.state: dict[bytes, bytes] = {}
        self.trees = {acc: StateTree(self._reader(acc), h, head_height=head_height, cache_entries_max=cache_entries_max,
                                     accelerate=acc) for acc in (True, False)}
        assert self.trees[True].accelerated == (treespeed is not None)
        if not fallback_ok:
            self.trees[True]._apply = _no_python  # its C code never calls back into the recursion

    def _reader(self, acc: bool) -> Callable[[bytes], bytes | None]:
        def get(k: bytes) -> bytes | None:
            self.reads[acc].append(k)
            return self.db.get(k)

        return get

    def update(self, writes: dict, *, from_empty: bool = False, existed: Callable[[bytes], Any] | None = None) -> dict[bool, tuple]:
        height = self.trees[False].head_height + 1
        existed = existed or (lambda k: k in self.state)
        if from_empty:  # as StateStore.tree_update builds the first tree of an upgraded chain
            writes = {**self.state, **writes}
        got = {acc: outcome(lambda: t.update(height, writes, existed, from_empty=from_empty)) for acc, t in self.trees.items()}
        shown = {acc: (o[0], contents(o[1])) if o[0] == "ok" else o for acc, o in got.items()}
        assert shown[True] == shown[False]
        assert self.reads[True] == self.reads[False]
        assert repr(list(self.trees[True]._cache.items())) == repr(list(self.trees[False]._cache.items()))
        return got

    def commit(self, writes: dict, **kw: Any) -> TreeUpdate | None:
        got = self.update(writes, **kw)
        if got[True][0] != "ok":
            return None
        u = got[False][1]
        self.db.update(u.batch_ops())
        for acc, t in self.trees.items():
            t.moved(u.height, got[acc][1])
        for k, v in writes.items():
            if v is None:
                self.state.pop(k, None)
            else:
                self.state[k] = v
        assert repr(list(self.trees[True]._cache.items())) == repr(list(self.trees[False]._cache.items()))
        return u


POOL = [b"k%d" % i for i in range(48)]  # reused keys: updates, deletes, unchanged writes
KEYS = st.sampled_from(POOL) | st.binary(min_size=1, max_size=5)
VALUES = st.sampled_from([b"", b"v", b"w" * 300]) | st.binary(max_size=6)
BLOCK = st.fixed_dictionaries({
    "writes": st.dictionaries(KEYS, st.none() | VALUES, max_size=40),
    "from_empty": st.integers(0, 9).map(lambda x: x == 0),
    "liar": st.integers(0, 14).map(lambda x: x == 0),  # `existed` wrong about some keys
})


@needs_c
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(BLOCK, min_size=1, max_size=10), st.sampled_from(SUITE_NAMES), st.sampled_from([1, 2, 9, 17, 50_000]),
       st.sampled_from([-1, 125, 253, 65_534, 2**32 - 3, 2**64 - 12]))
def test_the_same_updates_over_generated_histories(history, suite_name, cache_max, start):
    pair = Pair(get_suite(suite_name).hash, cache_entries_max=cache_max, head_height=start)
    for block in history:
        existed = None
        if block["liar"]:
            existed = lambda k, state=pair.state: (k in state) != (k[-1] % 3 == 0)  # noqa: E731
        if pair.commit(block["writes"], from_empty=block["from_empty"], existed=existed) is None:
            break  # both raised the same error (a lying `existed` can make two leaves of one key)


@needs_c
@pytest.mark.parametrize("name", SUITE_NAMES)
def test_the_same_updates_on_a_deep_tree(name: str) -> None:
    pair = Pair(get_suite(name).hash, cache_entries_max=100)  # full: misses, and the oldest eighth evicted at once
    pair.commit({b"acct%d" % i: b"%d" % i for i in range(6_000)})
    for b in range(6):
        writes = {b"acct%d" % ((b * 7919 + i * 104729) % 6_000): b"x%d" % (b + i) for i in range(700)}  # changed
        writes |= {b"acct%d" % (6_000 + b * 300 + i): b"new" for i in range(300)}  # new: pushed-down leaves
        writes |= {b"acct%d" % (b * 500 + i): None for i in range(0, 500, 3)}  # deleted: collapses
        writes |= {b"acct%d" % (5_999 - b): pair.state.get(b"acct%d" % (5_999 - b))}  # unchanged (or absent: None)
        pair.commit(writes)
    # A cold cache reads (and decodes) every node on the paths from the store.
    cold = Pair(get_suite(name).hash)
    cold.db, cold.state = pair.db, pair.state
    for t in cold.trees.values():
        t.head_height, t.head_ref, t.head_has_tree = pair.trees[False].head_height, pair.trees[False].head_ref, True
    cold.update({k: b"again" for k in list(pair.state)[::5]})
    assert pair.trees[True].root == tree_root(get_suite(name).hash, pair.state)


@needs_c
def test_records_on_every_encoding_boundary_are_the_packers() -> None:
    """Values of 0..70,000 bytes (bin 8/16/32) and heights across every msgpack int width."""
    sizes = [0, 1, 255, 256, 65_535, 65_536, 70_000]
    for start in (-1, 126, 127, 254, 255, 65_534, 65_535, 2**32 - 2, 2**32 - 1, 2**64 - 3):
        pair = Pair(head_height=start)
        pair.commit({b"size%d" % n: bytes([n % 251]) * n for n in sizes} | {b"k%d" % i: b"v" for i in range(40)})
        u = pair.commit({b"k%d" % i: b"w" for i in range(0, 40, 2)} | {b"size%d" % n: None for n in sizes[::2]})
        for k, record in u.nodes.items():
            fields = unpack(record, max_bytes=1 << 21)
            assert pack(fields) == record and k.startswith(NODE_PREFIX)


@needs_c
def test_keys_it_does_not_cover_go_to_the_reference() -> None:
    pair = Pair(fallback_ok=True)
    pair.commit({b"k%d" % i: b"v" for i in range(30)})
    pair.update({b"k1": bytearray(b"changed"), b"k2": b"x"})  # a value that is not bytes
    pair.update({b"k1": b"a"}, existed=lambda k: 1 if k in pair.state else 0)  # an `existed` that returns no bool
    assert outcome(lambda: pair.trees[True].update(1, {"text": b"v"}, lambda k: False))[:2] == ("error", "TypeError")
    # ... and a block the accelerator covers does not call the recursion.
    assert treespeed.update(None, {b"k": b"v"}, None, 0, {}.get, {}, 8, pair.trees[True]._md)[0][2] is True


# ---- records it leaves to the reference, and missing nodes ------------------------------------


def _corrupt_pairs(mutate: Callable[[bytes, bytes], bytes | None], *, leaves: bool) -> Pair:
    """A committed tree whose stored internal nodes (or leaves) are `mutate`d, re-opened cold."""
    pair = Pair(fallback_ok=True)
    pair.commit({b"k%d" % i: b"v" for i in range(400)})
    for k in [k for k in pair.db if k.startswith(NODE_PREFIX)]:
        is_leaf = unpack(pair.db[k], max_bytes=1 << 21)[0] == 0
        if is_leaf == leaves:
            raw = mutate(k, pair.db[k])
            if raw is None:
                del pair.db[k]
            else:
                pair.db[k] = raw
    for t in pair.trees.values():
        t._cache.clear()
    return pair


MUTATIONS = {
    "missing": lambda k, raw: None,
    "truncated": lambda k, raw: raw[:-1],
    "cut short in the middle": lambda k, raw: raw[:len(raw) // 2],
    "trailing byte": lambda k, raw: raw + b"\x00",
    "not bytes": lambda k, raw: bytearray(raw),
    "non-canonical int": lambda k, raw: raw[:1] + b"\xcc\x01" + raw[2:] if raw[1] in (0, 1) else raw,
    "the other kind": lambda k, raw: pack([0, b"key", b"value"]) if unpack(raw, max_bytes=1 << 21)[0] else pack([1, 1, bytes(32), [0], 0]),
    "short hashes": lambda k, raw: pack([1, 3, bytes(32), [0, 0], 0]),
    "leaf bit without a child": lambda k, raw: pack([1, 1, bytes(32), [0], 2]),
    "negative height": lambda k, raw: pack([1, 1, bytes(32), [-1], 0]),
    "text key": lambda k, raw: pack([0, "key", b"value"]),
}


@needs_c
@pytest.mark.parametrize("leaves", [False, True], ids=["internal", "leaf"])
@pytest.mark.parametrize("mutation", MUTATIONS)
def test_broken_records_fail_the_same_way(mutation: str, leaves: bool) -> None:
    pair = _corrupt_pairs(MUTATIONS[mutation], leaves=leaves)
    got = pair.update({b"new%d" % i: b"n" for i in range(200)} | {b"k%d" % i: b"w" for i in range(0, 400, 7)})
    if mutation not in ("not bytes",):
        assert got[True][0] == "error", got[True]


# ---- references and memory ----------------------------------------------------------------


@needs_c
def test_no_references_are_leaked() -> None:
    pair = Pair()
    pair.commit({b"k%d" % i: b"v" for i in range(3_000)})
    tree = StateTree(pair.db.get, SM.hash, head_height=0)  # reading the store itself (the pair logs reads)
    key, value = b"k17", b"a reused value"
    writes = {key: value, b"k18": None, b"fresh": value, b"k19": b"v"}
    head = tree.head_ref
    for _ in range(20):
        tree.update(tree.head_height + 1, writes, pair.state.__contains__)
    gc.collect()
    counts = [sys.getrefcount(x) for x in (key, value, head, writes)]
    for _ in range(500):
        tree.update(tree.head_height + 1, writes, pair.state.__contains__)
    # ... nor on the way out of an error.
    missing = node_key(0, b"", head[1])  # the root
    saved = pair.db.pop(missing)
    tree._cache.clear()
    for _ in range(200):
        with pytest.raises(KeyError, match="is missing from the database"):
            tree.update(tree.head_height + 1, {k: b"z" for k in list(pair.state)[:500]} | writes, pair.state.__contains__)
    pair.db[missing] = saved
    gc.collect()
    assert [sys.getrefcount(x) for x in (key, value, head, writes)] == counts


@needs_c
def test_memory_stays_bounded() -> None:
    pair = Pair()
    pair.commit({b"k%d" % i: b"v" for i in range(2_000)})
    tree = StateTree(pair.db.get, SM.hash, head_height=0, cache_entries_max=64)  # misses, decodes and evictions
    writes = {b"k%d" % i: b"w%d" % i for i in range(0, 2_000, 9)} | {b"n%d" % i: b"n" for i in range(100)}

    def run(n: int) -> None:
        for _ in range(n):
            tree.update(tree.head_height + 1, writes, pair.state.__contains__)

    run(20)
    gc.collect()
    tracemalloc.start()
    try:
        run(20)
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        run(300)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown:,} bytes more after 300 updates"


@needs_c
def test_snapshot_walk_steps_are_the_references() -> None:
    """push_child_asks (snapshot sync's walk) appends what tree.push_child_asks_reference appends."""
    parent = object()
    for depth in (0, 1, 2, 7, 62, 63):
        path = bytes(range(0x1F, 0x1F + (depth + 1) // 2))
        if depth & 1:  # the low nibble of an odd depth's last byte is not on the path yet
            path = path[:-1] + bytes([path[-1] & 0xF0])
        for bitmap in (1, 0x8000, 0x8001, 0xFFFF, 0x1234):
            hashes = bytes(i % 251 for i in range(32 * bitmap.bit_count()))
            n = bitmap.bit_count()
            for first, count in ((0, n), (0, 1), (n - 1, 1), (n // 2, n - n // 2), (n, 0)):
                c_stack, py_stack = [("before",)], [("before",)]
                treespeed.push_child_asks(c_stack, depth, path, bitmap, hashes, parent, first, count)
                push_child_asks_reference(py_stack, depth, path, bitmap, hashes, parent, first, count)
                assert repr(c_stack) == repr(py_stack) and all(e[2] is parent for e in c_stack[1:]) and len(c_stack) == 1 + count
    for bad in ((64, b"\x00" * 32, 1, bytes(32), 0, 1), (2, b"\x00\x00", 1, bytes(32), 0, 1), (0, b"", 0, b"", 0, 0),
                (0, b"", 3, bytes(32), 0, 1), (0, b"", 1 << 16, bytes(32), 0, 1), (0, b"", 3, bytes(64), 1, 2), (0, b"", 3, bytes(64), -1, 1)):
        with pytest.raises(ValueError):
            treespeed.push_child_asks([], *bad[:4], parent, *bad[4:])
        if bad[2] == 3 and len(bad[3]) == 64:
            with pytest.raises(ValueError):
                push_child_asks_reference([], *bad[:4], parent, *bad[4:])


@needs_c
def test_the_snapshot_steps_leak_nothing() -> None:
    check = fetched_node_checker(SM.hash)
    u = StateTree(lambda k: None, SM.hash).update(0, {b"k%d" % i: b"v" for i in range(300)}, lambda k: False, from_empty=True)
    records = list(u.nodes.values())
    hashes = [SM.hash(b"not it")] * len(records)  # every check fails: the loop stops at once
    parent, path, joined = object(), b"\x10", bytes(64)

    def steps():
        for _ in range(300):
            check(hashes, records, 0)
            check([u.root] * 2, [records[-1], None], 0)
            treespeed.push_child_asks([], 1, path, 0x0101, joined, parent, 0, 2)
            with pytest.raises(ValueError):
                treespeed.push_child_asks([], 1, path, 0x0101, joined[:-1], parent, 0, 2)

    steps()
    gc.collect()
    counts = [sys.getrefcount(x) for x in (parent, path, joined, records[-1], u.root)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    steps()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert [sys.getrefcount(x) for x in (parent, path, joined, records[-1], u.root)] == counts
    assert grown < 64 * 1024, f"{grown} bytes more after 300 rounds"

"""The state overlay (read-your-writes, nested snapshots, revert) and the state root."""

import pytest

from chainnode.crypto import get_suite
from chainnode.store.state import StateOverlay, next_state_root


class DictReader:
    def __init__(self, data):
        self.data = data

    def get(self, key):
        return self.data.get(key)


def test_read_your_writes_and_deletes():
    o = StateOverlay(DictReader({b"a": b"1", b"b": b"2"}))
    assert o.get(b"a") == b"1"
    o.set(b"a", b"10")
    o.delete(b"b")
    o.set(b"c", b"3")
    assert (o.get(b"a"), o.get(b"b"), o.get(b"c"), o.get(b"z")) == (b"10", None, b"3", None)
    assert o.writes() == {b"a": b"10", b"b": None, b"c": b"3"}


def test_nested_snapshots_revert_only_their_writes():
    o = StateOverlay(DictReader({b"k": b"base"}))
    o.set(b"k", b"one")
    s1 = o.snapshot()
    o.set(b"k", b"two")
    o.set(b"new", b"x")
    s2 = o.snapshot()
    o.delete(b"k")
    assert o.get(b"k") is None
    o.revert(s2)
    assert o.get(b"k") == b"two" and o.get(b"new") == b"x"
    o.revert(s1)
    assert o.get(b"k") == b"one" and o.get(b"new") is None
    assert o.writes() == {b"k": b"one"}
    o.revert(0)
    assert o.get(b"k") == b"base" and o.writes() == {}


def test_overlay_on_overlay():
    base = StateOverlay(DictReader({b"a": b"1"}))
    base.set(b"b", b"2")
    top = StateOverlay(base)
    top.set(b"a", b"9")
    assert top.get(b"b") == b"2" and base.get(b"a") == b"1"


@pytest.mark.parametrize("key,value,err", [("str", b"v", TypeError), (b"", b"v", ValueError), (b"k" * 1025, b"v", ValueError), (b"k", "v", TypeError), (b"k", b"v" * (1 << 20 + 1), ValueError)])
def test_bad_keys_and_values(key, value, err):
    with pytest.raises(err):
        StateOverlay(DictReader({})).set(key, value)


def test_state_root_depends_on_writes_not_their_order():
    s = get_suite("sm")
    parent = b"\x00" * 32
    w1 = {b"a": b"1", b"b": None}
    w2 = {b"b": None, b"a": b"1"}
    assert next_state_root(s, parent, w1) == next_state_root(s, parent, w2)
    assert next_state_root(s, parent, w1) != next_state_root(s, parent, {b"a": b"1"})
    assert next_state_root(s, parent, w1) != next_state_root(s, b"\x01" * 32, w1)


def test_the_read_cache_is_bounded_in_bytes_not_entries(tmp_path):
    from chainnode.store.leveldb import Store
    from chainnode.store.state import CACHE_ENTRY_OVERHEAD_BYTES, STATE_PREFIX, StateStore

    store = Store(tmp_path)
    try:
        store.write_batch([(STATE_PREFIX + b"k%d" % i, b"v" * 1000) for i in range(100)] + [(STATE_PREFIX + b"big", b"x" * 50_000)])
        budget = 20 * (1000 + 3 + CACHE_ENTRY_OVERHEAD_BYTES)
        state = StateStore(store, get_suite("sm"), head_height=-1, cache_bytes_max=budget)
        for i in range(100):
            assert state.get(b"k%d" % i) == b"v" * 1000  # the values are right, cached or not
            assert state._cache_bytes <= budget
        assert 10 <= len(state._cache) <= 20
        assert state.get(b"big") == b"x" * 50_000 and b"big" not in state._cache  # more than the whole budget: never cached
        assert state.get(b"k99") == b"v" * 1000 and state._cache_bytes <= budget
    finally:
        store.close()

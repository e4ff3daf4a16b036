"""The C accelerator (contracts/engine/_speedups.c) gives exactly what the Python reference gives.

- It is built by `make test`'s install (the speed budget of docs/performance.md depends on
  it), unless CHAINNODE_PURE_PYTHON=1 asks for the reference.
- Storage `get` and `_assign`, and the compiler's `_emit_`, against their Python reference
  over generated inputs that sit on every edge the fast paths decide on: memoised and new
  keys, oversized keys and values, ints at the 64-bit bounds, lone surrogates, containers,
  read-only storage, meters that run out, do not fit in 64 bits or are already negative,
  and event counters at their limits. Same return value or error (type and message), same
  gas, same writes, same events.
- No references or memory are leaked: by payment calls, fast or handed over to Python.
- The whole engine on the reference (subprocess, CHAINNODE_PURE_PYTHON=1) passes the engine
  tests; tests/contracts/test_determinism.py compares the two implementations' receipts.
"""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import tracemalloc
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from contracts.engine import Engine, store
from contracts.engine.accelerator import speedups
from contracts.engine.frame import FRAME_READONLY, new_frame
from contracts.engine.gas import (
    EVENT_BYTES_MAX,
    EVENTS_MAX,
    STORAGE_KEY_BYTES_MAX,
    STORAGE_VALUE_BYTES_MAX,
    TX_EVENT_BYTES_MAX,
)
from contracts.engine.runtime import Runtime
from contracts.engine.store import Storage, WriteBuffer
from tests.bench.contracts import PAYMENT_SOURCE
from tests.contracts.support import ALICE, BOB, MemoryStore, ctx

REPO = Path(__file__).resolve().parents[2]
PURE = os.environ.get("CHAINNODE_PURE_PYTHON") == "1"
needs_c = pytest.mark.skipif(speedups is None, reason="the reference implementation is running")


def test_the_accelerator_is_built() -> None:
    if PURE:
        assert speedups is None and Storage.get is Storage._get_py
        return
    assert speedups is not None, (
        "contracts/engine/_speedups.c was not built: the install needs a C compiler and the "
        "Python headers (Debian: gcc python3-dev). Run `make clean test`, or set "
        "CHAINNODE_PURE_PYTHON=1 to run on the (slower) Python reference."
    )
    assert Storage.get is speedups.StorageCore.get and Storage.repoint is speedups.StorageCore.repoint
    assert type(Engine()._rt.builtins["_emit_"]) is speedups.Emitter


def outcome(fn: Callable[[], Any]) -> tuple:
    """What a call did, comparable across implementations: repr tells True from 1, b"" from ""."""
    try:
        return ("ok", repr(fn()))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - every error must match, the engine's aborts too
        return ("error", type(exc).__name__, str(exc))


# ---- storage -------------------------------------------------------------------------------

SURROGATE_TEXT = st.text(st.characters(exclude_categories=()), max_size=6)
INT_EDGES = st.sampled_from([0, 1, -1, -(2**63), -(2**63) - 1, 2**63 - 1, 2**64 - 1, 2**64, 10**30, -(10**30)])
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), INT_EDGES, st.text(max_size=8), st.binary(max_size=8),
                    SURROGATE_TEXT)
VALUES = st.one_of(
    SCALARS,
    st.integers(-8, 8).map(lambda d: b"v" * (STORAGE_VALUE_BYTES_MAX + d)),
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=3),
    st.tuples(st.integers()),
    st.just(Decimal("1.5")),
    st.just({1: 2}),  # a non-str dict key
)
KEYS = st.one_of(
    st.text(max_size=6), st.binary(max_size=6), SURROGATE_TEXT, st.integers(), INT_EDGES, st.booleans(), st.none(),
    st.lists(st.integers(), max_size=2),
    st.integers(-6, 4).map(lambda d: b"k" * (STORAGE_KEY_BYTES_MAX + d)),
    st.just(Decimal(1)),
)
GAS_LEFT = st.one_of(st.integers(0, 3_000), st.sampled_from([10**9, -1, -(2**62) - 7, 2**63 + 1, -(2**70)]))


@st.composite
def storage_ops(draw: st.DrawFn) -> list:
    keys = draw(st.lists(KEYS, min_size=1, max_size=5))  # a small pool, so keys repeat (memo hits)
    ops = []
    for _ in range(draw(st.integers(1, 12))):
        key = draw(st.sampled_from(keys))
        gas = draw(st.one_of(st.none(), GAS_LEFT))  # None: keep the meter as it is
        kind = draw(st.sampled_from(["get", "get_default", "get_keyword", "assign", "get_bad_arity"]))
        ops.append((kind, key, draw(VALUES), gas))
    return ops


def storage_pair(parent_data: dict, prefix: bytes, readonly: bool) -> list[Storage]:
    return [Storage(WriteBuffer(MemoryStore(parent_data)), prefix, [10**9, 0], readonly) for _ in range(2)]


def apply_storage_op(s: Storage, op: tuple, reference: bool) -> tuple:
    kind, key, value, gas = op
    if gas is not None:
        s._gas[0] = gas
    get = s._get_py if reference else s.get
    assign = s._assign_py if reference else s._assign
    if kind == "get":
        return outcome(lambda: get(key))
    if kind == "get_default":
        return outcome(lambda: get(key, value))
    if kind == "get_keyword":
        return outcome(lambda: get(key, default=value))
    if kind == "get_bad_arity":
        return outcome(lambda: get(key, value, value))[:2]  # CPython words arity errors its own way
    return outcome(lambda: assign(value, key))


@needs_c
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(ops=storage_ops(), readonly=st.booleans(), prefix=st.sampled_from([b"", b"c" + b"\x01" * 20 + b"/"]),
       stored=st.dictionaries(KEYS.filter(lambda k: type(k) in (str, bytes)), st.one_of(SCALARS, st.binary()),
                              max_size=3))
def test_storage_accessors_match_the_reference(ops: list, readonly: bool, prefix: bytes, stored: dict) -> None:
    from contracts.engine.values import encode_value

    parent_data = {}
    for k, v in stored.items():
        try:
            parent_data[prefix + encode_value(k, "k")] = encode_value(v, "v")
        except (ValueError, TypeError, UnicodeEncodeError):
            pass
    fast, ref = storage_pair(parent_data, prefix, readonly)
    for op in ops:
        assert apply_storage_op(fast, op, False) == apply_storage_op(ref, op, True), op
        assert fast._gas == ref._gas, op
        assert repr(fast._writes) == repr(ref._writes), op


@needs_c
def test_storage_reads_through_nested_layers_like_the_reference() -> None:
    results = []
    for reference in (False, True):
        top = Storage(WriteBuffer(MemoryStore()), b"p/", [10**6, 0], False)
        (top._assign_py if reference else top._assign)(5, "k")
        inner = Storage(WriteBuffer(top._buf), b"p/", top._gas, False)  # a nested call's layer
        get = inner._get_py if reference else inner.get
        results.append((get("k"), get("missing", "d"), top._gas[0]))
    assert results[0] == results[1] and results[0][:2] == (5, "d")


# ---- events --------------------------------------------------------------------------------

FIELD_VALUES = st.one_of(
    SCALARS,
    st.integers(-40, 10).map(lambda d: b"e" * (EVENT_BYTES_MAX + d)),  # around one event's limit
    st.lists(SCALARS, max_size=3),
    st.dictionaries(st.text(max_size=3), SCALARS, max_size=2),
    st.tuples(st.integers()),
    st.just(Decimal(2)),
)


@st.composite
def emits(draw: st.DrawFn) -> list:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        fields = draw(st.one_of(
            st.dictionaries(st.text(min_size=1, max_size=4), FIELD_VALUES, max_size=4),
            st.just([]),  # not a dict
        ))
        out.append((
            draw(st.sampled_from(["Transfer", "E"])),
            fields,
            draw(st.one_of(st.none(), GAS_LEFT)),
            draw(st.one_of(st.none(), st.sampled_from([0, EVENTS_MAX - 1, EVENTS_MAX]))),
            draw(st.one_of(st.none(), st.sampled_from([0, TX_EVENT_BYTES_MAX - 50, TX_EVENT_BYTES_MAX]))),
            draw(st.sampled_from([False, False, True, 0])),  # the frame's read-only flag
            draw(st.booleans()),  # called with a keyword (never by compiled code: handed over)
        ))
    return out


def runtime_with_frame() -> tuple[Runtime, list]:
    rt = Runtime(None, lambda *a: None)
    events: list = []
    rt.frames.append(new_frame(b"\xcc" * 20, events, False, None, None))
    rt.gas[0] = 10**9
    return rt, events


@needs_c
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(calls=emits())
def test_emit_matches_the_reference(calls: list) -> None:
    (fast_rt, fast_events), (ref_rt, ref_events) = runtime_with_frame(), runtime_with_frame()
    fast = fast_rt.builtins["_emit_"]
    ref = ref_rt.builtins["_emit_"].fallback
    for name, fields, gas, count, total, readonly, keyword in calls:
        for rt in (fast_rt, ref_rt):
            if gas is not None:
                rt.gas[0] = gas
            if count is not None:
                rt.events_total = count
            if total is not None:
                rt.event_bytes = total
            rt.frames[-1][FRAME_READONLY] = readonly
        copy = dict(fields) if isinstance(fields, dict) else list(fields)
        if keyword:
            got = outcome(lambda: fast(name, fields=fields))
            want = outcome(lambda: ref(name, fields=copy))
        else:
            got = outcome(lambda: fast(name, fields))
            want = outcome(lambda: ref(name, copy))
        assert got == want
        assert fast_rt.gas == ref_rt.gas
        assert (fast_rt.events_total, fast_rt.event_bytes) == (ref_rt.events_total, ref_rt.event_bytes)
        assert repr(fast_events) == repr(ref_events)


def exact_size_values(target: int, header: int) -> list[bytes]:
    """bytes whose msgpack encoding (plus `header` bytes around it) is target-1, target, target+1."""
    from contracts.engine.values import encode

    out = []
    for want in (target - 1, target, target + 1):
        n = want - header - 5  # bin32 header
        while len(encode(b"x" * n)) + header < want:
            n += 1
        while len(encode(b"x" * n)) + header > want:
            n -= 1
        out.append(b"x" * n)
    return out


@needs_c
def test_limits_are_enforced_at_the_same_byte() -> None:
    from contracts.engine.values import encode

    for value in exact_size_values(STORAGE_VALUE_BYTES_MAX, 0):
        got = [outcome(lambda: (s._assign_py if ref else s._assign)(value, "k"))
               for ref, s in zip((False, True), storage_pair({}, b"", False))]
        assert got[0] == got[1]
    assert [len(encode(v)) for v in exact_size_values(STORAGE_VALUE_BYTES_MAX, 0)] == [
        STORAGE_VALUE_BYTES_MAX - 1, STORAGE_VALUE_BYTES_MAX, STORAGE_VALUE_BYTES_MAX + 1]
    field_header = len(encode({"v": b""})) - len(encode(b""))
    sizes = []
    for value in exact_size_values(EVENT_BYTES_MAX, field_header):
        (fast_rt, _), (ref_rt, _) = runtime_with_frame(), runtime_with_frame()
        got = outcome(lambda: fast_rt.builtins["_emit_"]("E", {"v": value}))
        want = outcome(lambda: ref_rt.builtins["_emit_"].fallback("E", {"v": value}))
        assert got == want and fast_rt.gas == ref_rt.gas
        sizes.append(len(encode({"v": value})))
        if got[0] == "ok":
            # and the transaction total, one byte either side of its limit
            for total in (TX_EVENT_BYTES_MAX - sizes[-1] - 1, TX_EVENT_BYTES_MAX - sizes[-1] + 1):
                fast_rt.event_bytes = ref_rt.event_bytes = total
                got = outcome(lambda: fast_rt.builtins["_emit_"]("E", {"v": value}))
                want = outcome(lambda: ref_rt.builtins["_emit_"].fallback("E", {"v": value}))
                assert got == want and fast_rt.event_bytes == ref_rt.event_bytes
    assert sizes == [EVENT_BYTES_MAX - 1, EVENT_BYTES_MAX, EVENT_BYTES_MAX + 1]


# ---- no leaks ------------------------------------------------------------------------------

# The benchmark's payment contract (`transfer`), and a method that takes every slow path.
LEAK_SOURCE = PAYMENT_SOURCE + '''
def odd(key):
    storage[key] = [1, 2]
    x = storage.get([key], None)
    emit("Odd", v=[x])
'''


def test_payment_calls_leak_no_memory_or_references() -> None:
    engine = Engine()
    compiled = engine.compile(LEAK_SOURCE)
    state = MemoryStore()
    state.set(b"\xc4\x14" + ALICE, b"\xcf" + (10**12).to_bytes(8, "big"))
    default, name = object(), "Transfer"

    def burst(n: int) -> None:
        for i in range(n):
            engine.call(compiled, "transfer", [BOB, 1], state=state, ctx=ctx(), gas_limit=100_000)
            engine.call(compiled, "transfer", [BOB, 1], state=state, ctx=ctx(), gas_limit=3_000)  # out of gas
            engine.call(compiled, "transfer", [BOB, 10**13], state=state, ctx=ctx(), gas_limit=100_000)  # refused
            engine.call(compiled, "odd", ["k%d" % (i % 50)], state=state, ctx=ctx(), gas_limit=100_000)
        s = engine._top_storage
        s._gas[0] = 10**9
        for _ in range(n):
            s.get(BOB, default)

    burst(2_000)
    gc.collect()
    encoded_bob = store._key_cache[BOB]  # the memoised key the fast paths borrow

    def refs() -> tuple:
        return tuple(sys.getrefcount(x) for x in (default, name, BOB, encoded_bob))

    before_refs = refs()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        burst(10_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"{grown} bytes kept by 40,000 calls"
    assert refs() == before_refs


# ---- the reference, whole ------------------------------------------------------------------

@needs_c
def test_engine_tests_pass_on_the_reference_implementation() -> None:
    env = dict(os.environ, CHAINNODE_PURE_PYTHON="1", PYTHONPATH=str(REPO))
    tests = ["tests/contracts/test_engine.py", "tests/contracts/test_redteam.py",
             "tests/contracts/test_fast_paths.py", "tests/contracts/test_language.py",
             "tests/contracts/test_speedups.py"]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]

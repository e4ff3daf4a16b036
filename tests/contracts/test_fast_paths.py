"""The engine's fast paths give exactly what the plain forms give, and keep nothing between calls.

- The compiler's shortcuts (inlined int `+ -` and comparisons, `require` as an `if`, `emit`
  with a prebuilt dict) against the reference compile without them: same result, value,
  events, gas and error, over inputs chosen to sit on every edge the guards check.
- The top-level call reuses one write buffer, storage object and frame per engine: nothing
  of one call (writes, store, events, read-only flag) is visible to the next.
- Entry variants (the top-level form of each method) count function depth the same way.
- Swallowed aborts are still caught once code that could swallow one runs, at any depth.
- The engine's own encoder gives the bytes `chainnode.protocol.codec.pack` gives.
"""

from __future__ import annotations

import pytest

from chainnode.protocol import codec
from contracts.engine import Engine
from contracts.engine.compiler import compile_contract
from contracts.engine.gas import FUNCTION_DEPTH_MAX
from contracts.engine.values import encode
from tests.contracts.support import ALICE, BOB, CAROL, MemoryStore, ctx, deploy

GAS = 2_000_000

ARITH = '''
def add(a, b):
    return a + b

def sub(a, b):
    return a - b

def add_const(a):
    return a + 1

def sub_from_call(a, b):
    return _ident(a) - b

def nested(a, b, c):
    return (a + b) - c

def grow(k):
    x = 2 ** 1023
    y = x + x * k
    return 1

def shrink(k):
    x = -(2 ** 1023)
    y = x - x * k
    return 1

def cmp(a, b):
    return [a < b, a <= b, a > b, a >= b, a == b, a != b]

def chain(a, b, c):
    return a < b < c

def in_comprehension(xs, d):
    return [x + d for x in xs if x > d]

def _ident(v):
    return v
'''

ARITH_INPUTS = [
    ("add", [1, 2]), ("add", [2**63 - 1, 2**63 - 1]), ("add", [-(2**63), -(2**63)]),
    ("add", [True, 1]), ("add", [1, True]), ("add", [True, False]), ("add", ["ab", "cd"]),
    ("add", [b"ab", b"cd"]), ("add", [[1], [2, 3]]), ("add", [{"a": 1}, {"b": 2}]),
    ("add", [1, "a"]), ("add", ["a", 1]), ("add", [None, 1]), ("add", [[1], (2,)]),
    ("sub", [5, 7]), ("sub", [-(2**63), 2**63 - 1]), ("sub", [True, True]), ("sub", ["a", "b"]),
    ("sub", [[1], [1]]), ("sub", [1, None]),
    ("add_const", [5]), ("add_const", [True]), ("add_const", ["x"]), ("add_const", [2**64 - 1]),
    ("sub_from_call", [10, 3]), ("sub_from_call", ["a", 3]), ("sub_from_call", [3, [1]]),
    ("nested", [1, 2, 3]), ("nested", ["a", "b", "c"]), ("nested", [1, 2, "c"]),
    ("grow", [0]), ("grow", [1]), ("grow", [2]), ("grow", [True]),
    ("shrink", [0]), ("shrink", [1]), ("shrink", [2]),
    ("cmp", [1, 2]), ("cmp", [2, 1]), ("cmp", [True, 1]), ("cmp", ["a", "b"]), ("cmp", [b"a", b"a"]),
    ("cmp", [[1, 2], [1, 3]]), ("cmp", [1, "a"]), ("cmp", ["a", 1]), ("cmp", [None, None]),
    ("cmp", [[[1]], [[1]]]), ("cmp", [{"a": [1]}, {"a": [1]}]), ("cmp", [1, [1, 2, 3]]),
    ("chain", [1, 2, 3]), ("chain", [3, 2, 1]), ("chain", ["a", "b", "c"]), ("chain", [1, "b", 3]),
    ("in_comprehension", [[1, 2, 3], 1]), ("in_comprehension", [["a", "b"], "a"]),
    ("in_comprehension", [[1, "a"], 0]),
]

REQUIRE = '''
def check(cond):
    require(cond, "no")
    return 1

def check_default(cond):
    require(cond)
    return 1

def check_computed(cond, msg):
    require(cond, msg + "!")
    return 1

def check_then_write(cond):
    storage["k"] = 1
    require(cond, "no")
    storage["j"] = 2
    return 1

def caught(cond):
    try:
        require(cond, "no")
    except ContractError as e:
        return e.message
    return "passed"
'''

REQUIRE_INPUTS = [
    (m, [c]) for m in ("check", "check_default", "check_then_write", "caught")
    for c in (True, False, 0, 1, "", "x", [], [0], None, b"", {}, {"a": 1})
] + [("check_computed", [True, "m"]), ("check_computed", [False, "m"]), ("check_computed", [False, 5])]

EMIT = '''
def flat(a, b):
    emit("Transfer", frm=a, to=b, amount=7)

def nested(a):
    emit("Nested", items=[a, [a]], meta={"k": a})

def tupled(a):
    emit("Tupled", pair=(a, a))

def big_int():
    emit("Big", v=2 ** 64)

def small_ints():
    emit("Ints", a=-(2 ** 63), b=2 ** 64 - 1, c=0, d=-1, e=True, f=None)

def empty():
    emit("Empty")

def long_field():
    emit("F", abcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcdefghijabcde=1)

def long_name():
    emit("N" * 65, a=1)

def dynamic_name(name):
    emit(name, a=1)

def decimal_field():
    emit("D", d=Decimal(1))

def many():
    for i in range(1100):
        emit("E", i=i)

def big_event():
    emit("B", data=b"x" * 9000)

def view_emit():
    emit("V", a=1)

def order(a):
    emit("O", first=_note(a, 1), second=_note(a, 2))
    return storage.get("seen", [])

def _note(a, i):
    storage["seen"] = storage.get("seen", []) + [i]
    return a
'''

EMIT_INPUTS = [
    ("flat", [ALICE, BOB]), ("flat", ["é" * 40, "x"]), ("flat", [[1], 2]), ("flat", [{"a": 1}, 2]),
    ("nested", [5]), ("nested", ["s"]), ("tupled", [1]), ("big_int", []), ("small_ints", []),
    ("empty", []), ("long_field", []), ("long_name", []), ("dynamic_name", ["X"]),
    ("dynamic_name", [""]), ("dynamic_name", [5]), ("decimal_field", []), ("many", []),
    ("big_event", []), ("order", [1]),
]


def _compare_fast_and_reference(source: str, inputs: list, *, readonly: bool = False) -> None:
    fast = compile_contract(source)
    reference = compile_contract(source, fast_paths=False)
    assert fast.code.co_consts != reference.code.co_consts or fast.code.co_code != reference.code.co_code
    for method, args in inputs:
        for gas_limit in (GAS, 1_500, 700):
            results = []
            for compiled in (fast, reference):
                state = MemoryStore()
                result = Engine().call(compiled, method, list(args), state=state, ctx=ctx(),
                                       gas_limit=gas_limit, readonly=readonly)
                results.append((result, state.snapshot()))
            assert results[0] == results[1], (method, args, gas_limit)


def test_inlined_arithmetic_and_comparisons_match_the_guards() -> None:
    _compare_fast_and_reference(ARITH, ARITH_INPUTS)


def test_inlined_require_matches_the_builtin() -> None:
    _compare_fast_and_reference(REQUIRE, REQUIRE_INPUTS)


def test_rewritten_emit_matches_the_builtin() -> None:
    _compare_fast_and_reference(EMIT, EMIT_INPUTS)
    _compare_fast_and_reference(EMIT, [("view_emit", []), ("flat", [ALICE, BOB])], readonly=True)


def test_the_payment_contract_has_no_guard_calls_left_on_its_int_path() -> None:
    source = "def transfer(to, amount):\n    b = storage.get(ctx.sender, 0)\n    require(b >= amount, 'x')\n" \
             "    storage[ctx.sender] = b - amount\n    storage[to] = storage.get(to, 0) + amount\n" \
             "    emit('T', to=to, amount=amount)\n"
    names = set(compile_contract(source).code.co_consts[0].co_names)
    assert {"_emit_", "_type_", "_int_"} <= names and not {"require", "emit"} & names


# ---- reused top-level objects -----------------------------------------------------------

STATEFUL = '''
def put(k, v):
    storage[k] = v
    emit("Put", k=k)

def put_then_fail(k, v):
    storage[k] = v
    emit("Put", k=k)
    require(False, "no")

def put_then_spin(k, v):
    storage[k] = v
    while True:
        pass

def get(k):
    return storage.get(k, "missing")

def view_get(k):
    return storage.get(k, "missing")

def view_put(k):
    storage[k] = 1
'''


def test_nothing_of_a_call_survives_into_the_next() -> None:
    engine = Engine()
    compiled = engine.compile(STATEFUL)
    first, second = MemoryStore(), MemoryStore()

    def call(method: str, args: list, state: MemoryStore, **kw: object) -> object:
        result = engine.call(compiled, method, args, state=state, ctx=ctx(), gas_limit=100_000, **kw)
        # The reused layer is empty between calls, whatever the outcome.
        assert engine._top_writes == {}
        return result

    for failing in ("put_then_fail", "put_then_spin"):
        result = call(failing, ["k", 1], first)
        assert not result.ok and result.events == ()
        assert first.snapshot() == {} and first.writes == 0
        assert call("get", ["k"], first).value == "missing"

    assert call("put", ["k", 1], first).ok
    # Another store sees none of it, and a failed call's writes never reach either.
    assert call("get", ["k"], second).value == "missing"
    assert call("put_then_fail", ["k", 2], second).ok is False
    assert call("get", ["k"], first).value == 1
    assert call("get", ["k"], second).value == "missing"
    # Read-only does not stick to the reused storage object, in either direction.
    assert call("view_put", ["z"], first).error_type == "PermissionError"
    assert call("put", ["z", 3], first).ok
    assert call("put", ["y", 3], first, readonly=True).error_type == "PermissionError"
    assert call("put", ["y", 4], first).ok
    assert call("get", ["y"], first).value == 4
    # Events belong to their own call.
    result = call("put", ["w", 5], first)
    assert [e.fields for e in result.events] == [{"k": "w"}]


def test_a_deploy_and_execute_after_a_call_use_their_own_world() -> None:
    engine = Engine()
    base = MemoryStore()
    address = deploy(engine, base, STATEFUL)
    compiled = engine.compile(STATEFUL)
    scratch = MemoryStore()
    assert engine.call(compiled, "put", ["k", 1], state=scratch, ctx=ctx(), gas_limit=100_000).ok
    assert engine.execute(base, ctx(), address, "get", ["k"], 100_000).value == "missing"
    assert engine.execute(base, ctx(), address, "put", ["k", 2], 100_000).ok
    assert engine.call(compiled, "get", ["k"], state=scratch, ctx=ctx(), gas_limit=100_000).value == 1
    assert engine.execute(base, ctx(), address, "get", ["k"], 100_000).value == 2


def test_entry_variants_count_function_depth_like_the_functions() -> None:
    source = f'''
def deep(n):
    if n == 0:
        return 0
    return deep(n - 1) + 1

def limit():
    return deep({FUNCTION_DEPTH_MAX - 2})

def over():
    return deep({FUNCTION_DEPTH_MAX - 1})
'''
    engine = Engine()
    compiled = engine.compile(source)
    # The entry function is depth 1: deep(n) directly reaches depth n + 1.
    direct = [engine.call(compiled, "deep", [n], state=MemoryStore(), ctx=ctx(), gas_limit=10_000_000)
              for n in (FUNCTION_DEPTH_MAX - 1, FUNCTION_DEPTH_MAX)]
    assert direct[0].ok and direct[1].error_type == "CallDepthExceeded", direct
    ok = engine.call(compiled, "limit", [], state=MemoryStore(), ctx=ctx(), gas_limit=10_000_000)
    assert ok.ok and ok.value == FUNCTION_DEPTH_MAX - 2, ok
    over = engine.call(compiled, "over", [], state=MemoryStore(), ctx=ctx(), gas_limit=10_000_000)
    assert over.error_type == "CallDepthExceeded", over
    # The public function itself is still callable from contract code (recursion above),
    # and its entry variant is not a method.
    assert "deep" in compiled.public_methods and "_entry_deep" not in compiled.public_methods
    missing = engine.call(compiled, "_entry_deep", [1], state=MemoryStore(), ctx=ctx(), gas_limit=100_000)
    assert missing.error_type == "MethodNotFound"
    assert engine.call(compiled, "init", [], state=MemoryStore(), ctx=ctx(), gas_limit=100_000).error_type == "MethodNotFound"


# ---- swallowed aborts -------------------------------------------------------------------

SWALLOW_BY_EXCEPT_CLAUSE = '''
def attack():
    try:
        try:
            x = "a" * 10 ** 9
        except missing_name:
            pass
    except Exception:
        return 1
    return 2
'''

CALLER = '''
def ping(target):
    return call(target, "attack")
'''


def test_an_abort_replaced_in_an_except_clause_still_fails_the_call() -> None:
    engine = Engine()
    result = engine.call(engine.compile(SWALLOW_BY_EXCEPT_CLAUSE), "attack", [], state=MemoryStore(),
                         ctx=ctx(), gas_limit=GAS)
    assert (result.ok, result.error_type) == (False, "LimitExceeded"), result


def test_an_abort_swallowed_in_a_callee_fails_a_caller_without_try() -> None:
    engine = Engine()
    base = MemoryStore()
    callee = deploy(engine, base, SWALLOW_BY_EXCEPT_CLAUSE, nonce=b"\x01")
    caller = deploy(engine, base, CALLER, nonce=b"\x02")
    assert not engine.compile(CALLER).has_try and engine.compile(SWALLOW_BY_EXCEPT_CLAUSE).has_try
    before = base.snapshot()
    result = engine.execute(base, ctx(CAROL), caller, "ping", [callee], GAS)
    assert (result.ok, result.error_type) == (False, "LimitExceeded"), result
    assert base.snapshot() == before
    # A stale record from that transaction does not fail the next one.
    fine = engine.call(engine.compile("def f():\n    return 1\n"), "f", [], state=MemoryStore(), ctx=ctx(),
                       gas_limit=GAS)
    assert fine.ok and fine.value == 1


# ---- encoding ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "value",
    [None, True, False, 0, -1, 127, 128, -33, 2**63 - 1, -(2**63), 2**64 - 1, "", "é" * 40, "a" * 300,
     b"", b"x" * 300, [], [1, [2, "a"]], {"a": 1, "b": [b"x"]}, {"k": {"n": None}}],
)
def test_the_engine_encoder_gives_the_codec_bytes(value: object) -> None:
    assert encode(value) == codec.pack(value)


def test_engines_on_threads_share_compiled_code_and_the_key_memo_safely() -> None:
    """Several engines (one per thread, as a node runs RPC queries next to block execution)
    share one compiled contract and the storage-key memo; one engine is also shared by two
    threads (they take turns). Every result equals the serial one."""
    import sys
    import threading

    source = (
        "def transfer(to, amount):\n    sender = ctx.sender\n    balance = storage.get(sender, 0)\n"
        "    require(balance >= amount, 'insufficient')\n    storage[sender] = balance - amount\n"
        "    storage[to] = storage.get(to, 0) + amount\n    emit('Transfer', frm=sender, to=to, amount=amount)\n"
        "    return [balance - amount, storage.get(to, 0)]\n"
    )
    compiled = Engine().compile(source)

    def run_series(engine: Engine) -> list:
        state = MemoryStore()
        state.set(encode(ALICE), encode(1_000))
        out = []
        for i in range(60):
            to = bytes([i % 7]) * 20 if i % 3 else "name-%d" % (i % 5)
            out.append(engine.call(compiled, "transfer", [to, i], state=state, ctx=ctx(ALICE), gas_limit=100_000))
        return out + [state.snapshot()]

    expected = run_series(Engine())
    shared = Engine()
    engines = [Engine(), Engine(), shared, shared]
    results: list = [None] * len(engines)

    def worker(i: int) -> None:
        results[i] = [run_series(engines[i]) for _ in range(3)]

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(engines))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert all(series == expected for per_thread in results for series in per_thread)

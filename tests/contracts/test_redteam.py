"""Red team: each attack is rejected at compile time or fails with a receipt, fast, and the
process stays healthy (the next honest call still works, host state is untouched).

An attack "fails" only in the way listed: a rejection that happened for an unrelated
reason (a typo in the attack) would show up as the wrong error type.
"""

from __future__ import annotations

import decimal
import sys
import time

import pytest

from contracts.engine import ContractRejected, Engine
from tests.contracts.support import MemoryStore, ctx, run

REJECTED = "rejected"
GAS_LIMIT = 5_000_000
ATTACK_SECONDS_MAX = 1.0

# (id, source, expected): the contract's `attack()` is called; expected is REJECTED, the
# error_type of the failed receipt (a tuple lists acceptable ones), or ("ok", value) for a
# harmless look-alike that must simply work.
ATTACKS: list[tuple[str, str, object]] = [
    # ---- escapes --------------------------------------------------------------------------
    ("import", "import os\ndef attack():\n    return 1\n", REJECTED),
    ("from-import", "from os import system\ndef attack():\n    return 1\n", REJECTED),
    ("dunder-import", "def attack():\n    return __import__('os')\n", REJECTED),
    ("subclass-walk", "def attack():\n    return ().__class__.__bases__[0].__subclasses__()\n", REJECTED),
    ("subclass-walk-getattr", "def attack():\n    return getattr((), '__class__')\n", "NameError"),
    ("type-builtin", "def attack():\n    return type(1).__mro__\n", REJECTED),
    ("type-call", "def attack():\n    t = type(1)\n    return t\n", "NameError"),
    ("generator-frame", "def attack():\n    g = (x for x in [1])\n    return g.gi_frame\n", REJECTED),
    ("generator-function", "def attack():\n    yield 1\n", REJECTED),
    ("traceback-frame",
     "def attack():\n    try:\n        1 // 0\n    except ZeroDivisionError as e:\n        return e.__traceback__.tb_frame\n",
     REJECTED),
    ("exception-attribute",
     "def attack():\n    try:\n        1 // 0\n    except ZeroDivisionError as e:\n        return e.args\n",
     "AttributeError"),
    ("format-attribute", "def attack():\n    return '{0.__class__}'.format(1)\n", "AttributeError"),
    ("format-map", "def attack():\n    return '{x}'.format_map({'x': 1})\n", "AttributeError"),
    ("string-formatter", "import string\ndef attack():\n    return string.Formatter().format('{0.__class__}', 1)\n", REJECTED),
    ("decorator", "def deco(f):\n    return f\n@deco\ndef attack():\n    return 1\n", REJECTED),
    ("lambda-default-guard", "def attack():\n    f = lambda _getattr_=None: 1\n    return f()\n", REJECTED),
    ("posonly-default-guard", "def attack(_getattr_=1, /):\n    return 1\n", REJECTED),
    # A parameter spelled like a guard is renamed (private__...), so it shadows nothing.
    ("guard-name-param", "def attack(_getiter_=None):\n    t = 0\n    for x in [1, 2]:\n        t += x\n    return [t, _getiter_]\n",
     ("ok", [3, None])),
    ("walrus", "def attack():\n    if (x := 1):\n        return x\n", REJECTED),
    ("global-rebinding", "def attack():\n    global storage\n    storage = {}\n", REJECTED),
    ("builtin-rebinding", "require = None\ndef attack():\n    return 1\n", REJECTED),
    ("local-guard-shadow", "def attack():\n    emit = 1\n    return emit\n", REJECTED),
    ("metaclass", "class A(metaclass=type):\n    pass\ndef attack():\n    return 1\n", REJECTED),
    ("builtins-dict", "def attack():\n    return __builtins__['eval']\n", REJECTED),
    ("exec", "def attack():\n    return exec('1')\n", REJECTED),
    ("except-star",
     "def attack():\n    try:\n        pass\n    except* ValueError:\n        pass\n", REJECTED),
    ("match-class-pattern",
     "def attack(x=1):\n    match x:\n        case int(real=r):\n            return r\n", REJECTED),
    ("function-globals", "def attack():\n    return attack.__globals__\n", REJECTED),
    ("storage-internals", "def attack():\n    return storage.write\n", "AttributeError"),
    ("nested-function-closure", "def attack():\n    def inner():\n        return 1\n    return inner()\n", REJECTED),
    ("bare-except-swallows-abort",
     "def attack():\n    try:\n        while True:\n            pass\n    except:\n        return 1\n", REJECTED),
    ("return-in-finally-swallows-abort",
     "def attack():\n    try:\n        while True:\n            pass\n    finally:\n        return 1\n", REJECTED),
    ("return-in-loop-in-finally",
     "def attack():\n    try:\n        x = 'a' * 10**10\n    finally:\n        for i in [1]:\n            return 1\n", REJECTED),
    ("break-in-finally-loop-is-fine-but-abort-stays",
     "def attack():\n    try:\n        x = 'a' * 10**10\n    finally:\n        for i in [1, 2]:\n            break\n", "LimitExceeded"),
    ("except-exception-cannot-catch-gas",
     "def attack():\n    try:\n        while True:\n            pass\n    except Exception:\n        return 1\n", "OutOfGas"),
    ("unknown-name-in-except-during-abort",
     "def attack():\n    try:\n        while True:\n            pass\n    except BaseException:\n        return 1\n", "OutOfGas"),
    ("mutable-default-shared", "def attack(acc=[]):\n    return acc\n", REJECTED),
    ("module-level-code", "X = [1, 2]\ndef attack():\n    return X\n", REJECTED),
    ("null-byte-source", "def attack():\n    return 1\n\x00", REJECTED),
    ("deeply-nested-source", "def attack():\n    return " + "[" * 150 + "1" + "]" * 150 + "\n", REJECTED),
    ("attribute-write", "def attack():\n    ctx.sender = b''\n", REJECTED),
    ("print", "def attack():\n    print(1)\n", REJECTED),
    # ---- determinism leaks ----------------------------------------------------------------
    ("float-literal", "def attack():\n    return 1.5\n", REJECTED),
    ("true-division", "def attack():\n    return 1 / 3\n", REJECTED),
    ("negative-power-float", "def attack():\n    return 2 ** -1\n", "DeterminismError"),
    ("pow-negative-float", "def attack():\n    return pow(10, -2)\n", "DeterminismError"),
    ("float-builtin", "def attack():\n    return float('1.5')\n", "NameError"),
    ("set-literal", "def attack():\n    return list({'a', 'b'})\n", REJECTED),
    ("set-comprehension", "def attack():\n    return [x for x in {c for c in 'abc'}]\n", REJECTED),
    ("set-builtin", "def attack():\n    return list(set('abc'))\n", "NameError"),
    ("dict-view-set-ops", "def attack():\n    d = {'a': 1, 'b': 2}\n    return list(d.keys() & d.keys())\n", "TypeError"),
    ("id", "def attack():\n    return id(attack)\n", "NameError"),
    ("hash-object", "def attack():\n    return hash(attack)\n", "TypeError"),
    ("repr", "def attack():\n    return repr(attack)\n", "NameError"),
    ("fstring-repr", "def attack():\n    return f'{attack!r}'\n", REJECTED),
    ("fstring-ascii", "def attack():\n    return f'{attack!a}'\n", REJECTED),
    ("str-of-function-address", "def attack():\n    return str(attack)\n", "TypeError"),
    ("fstring-object-address", "def attack():\n    return f'{storage}'\n", "TypeError"),
    ("percent-r", "def attack():\n    return '%r' % (1,)\n", "DeterminismError"),
    ("percent-float", "def attack():\n    return '%.3f' % 2\n", "DeterminismError"),
    ("format-float-type", "def attack():\n    return f'{2:e}'\n", "DeterminismError"),
    ("format-locale", "def attack():\n    return f'{1234:n}'\n", "DeterminismError"),
    ("unicode-case-table", "def attack():\n    return '\u1e9e'.lower()\n", "DeterminismError"),
    ("wall-clock", "def attack():\n    return time.time()\n", "NameError"),
    ("randomness", "def attack():\n    return random.random()\n", "NameError"),
    ("assert-vanishes-under-O", "def attack():\n    assert False\n", REJECTED),
    # ---- resource attacks -----------------------------------------------------------------
    ("str-repeat", "def attack():\n    return len('a' * 10**10)\n", "LimitExceeded"),
    ("list-repeat", "def attack():\n    return len([0] * 10**9)\n", "LimitExceeded"),
    ("tower-power", "def attack():\n    return 10 ** 10 ** 7\n", "LimitExceeded"),
    ("repeated-squaring", "def attack():\n    x = 3\n    while True:\n        x = x * x\n", "LimitExceeded"),
    ("repeated-doubling", "def attack():\n    x = 1\n    while True:\n        x += x\n", "LimitExceeded"),
    ("shift-bomb", "def attack():\n    return 1 << 10**9\n", "LimitExceeded"),
    ("percent-width", "def attack():\n    return '%2000000000d' % 1\n", "LimitExceeded"),
    ("percent-star-width", "def attack():\n    return '%*d' % (2000000000, 1)\n", "LimitExceeded"),
    ("fstring-width", "def attack():\n    return f'{1:2000000000}'\n", "LimitExceeded"),
    ("ljust-width", "def attack():\n    return 'a'.ljust(2 * 10**9)\n", "LimitExceeded"),
    ("replace-bomb", "def attack():\n    s = 'a' * 100000\n    return s.replace('', 'x' * 100)\n", "LimitExceeded"),
    ("join-bomb", "def attack():\n    return ','.join(['a' * 100000] * 100)\n", "LimitExceeded"),
    ("int-parse-quadratic", "def attack():\n    return int('9' * 5000)\n", "LimitExceeded"),
    ("bytes-alloc", "def attack():\n    return bytes(10**9)\n", "LimitExceeded"),
    ("list-range-materialise", "def attack():\n    return list(range(10**12))\n", "LimitExceeded"),
    ("sum-range-c-loop", "def attack():\n    return sum(range(10**12))\n", "LimitExceeded"),
    ("unpack-range", "def attack():\n    a, b = range(10**12)\n", "ValueError"),
    ("deep-recursion", "def attack(n=0):\n    return attack(n + 1)\n", "CallDepthExceeded"),
    ("mutual-recursion", "def attack():\n    return _b()\ndef _b():\n    return attack()\n", "CallDepthExceeded"),
    ("infinite-loop", "def attack():\n    while True:\n        pass\n", "OutOfGas"),
    ("infinite-comprehension-growth",
     "def attack():\n    xs = [0]\n    for x in xs:\n        xs.append(x)\n", ("OutOfGas", "LimitExceeded")),
    ("memory-by-allocation-loop", "def attack():\n    while True:\n        x = [0] * 100000\n", "OutOfGas"),
    ("huge-storage-value", "def attack():\n    storage['k'] = 'a' * 100000\n", "LimitExceeded"),
    ("storage-write-flood", "def attack():\n    i = 0\n    while True:\n        storage[i] = 'x' * 1000\n        i += 1\n",
     "OutOfGas"),
    ("event-flood", "def attack():\n    while True:\n        emit('E', x=1)\n", ("OutOfGas", "LimitExceeded")),
    ("huge-event", "def attack():\n    emit('E', x='a' * 100000)\n", "LimitExceeded"),
    ("dag-compare",
     "def attack():\n    a = [0]\n    b = [0]\n    for i in range(80):\n        a = [a, a]\n        b = [b, b]\n    return a == b\n",
     "LimitExceeded"),
    ("dag-str", "def attack():\n    a = [0]\n    for i in range(80):\n        a = [a, a]\n    return str(a)\n", "LimitExceeded"),
    ("dag-tuple-hash",
     "def attack():\n    t = (0,)\n    for i in range(80):\n        t = (t, t)\n    d = {}\n    d[t] = 1\n", "LimitExceeded"),
    ("dag-in-list",
     "def attack():\n    a = [0]\n    b = [0]\n    for i in range(80):\n        a = [a, a]\n        b = [b, b]\n    return a in [b, b]\n",
     "LimitExceeded"),
    ("dag-sort-key",
     "def _k(x):\n    a = [x]\n    for i in range(80):\n        a = [a, a]\n    return a\ndef attack():\n    return sorted([1, 1], key=_k)\n",
     "LimitExceeded"),
    ("dag-return-value", "def attack():\n    a = [0]\n    for i in range(80):\n        a = [a, a]\n    return a\n", "ValueError"),
    ("dag-storage-value", "def attack():\n    a = [0]\n    for i in range(80):\n        a = [a, a]\n    storage['k'] = a\n", "ValueError"),
    ("finally-work-after-abort",
     "def attack():\n    try:\n        while True:\n            pass\n    finally:\n        while True:\n            pass\n", "OutOfGas"),
    ("finally-replaces-abort",
     "def attack():\n    try:\n        while True:\n            pass\n    finally:\n        require(False, 'cheap')\n", "OutOfGas"),
    ("string-compare-loop",
     "def attack():\n    a = 'x' * 1000000\n    b = 'x' * 1000000\n    while True:\n        c = a == b\n", "OutOfGas"),
    ("substring-scan-loop",
     "def attack():\n    a = 'x' * 1000000\n    while True:\n        c = 'y' in a\n", "OutOfGas"),
    ("deep-nesting-repr", "def attack():\n    a = [0]\n    for i in range(5000):\n        a = [a]\n    return str(a)\n",
     "LimitExceeded"),
    ("deep-nesting-compare",
     "def attack():\n    a = [0]\n    b = [0]\n    for i in range(5000):\n        a = [a]\n        b = [b]\n    return a == b\n",
     "LimitExceeded"),
    ("decimal-percent-d", "def attack():\n    return '%d' % Decimal('1e9000')\n", "LimitExceeded"),
    # Catching the error a big walk ends with, and retrying, must never be cheap.
    ("catch-and-retry-storage-walk",
     "def attack():\n    big = [0] * 99990 + [len]\n    while True:\n        try:\n            storage['k'] = big\n        except TypeError:\n            pass\n",
     "OutOfGas"),
    ("catch-and-retry-str-walk",
     "def attack():\n    big = [0] * 99990 + [len]\n    while True:\n        try:\n            s = str(big)\n        except TypeError:\n            pass\n",
     "OutOfGas"),
    ("small-vs-big-compare-loop",
     "def attack():\n    big = [[0]] * 40000\n    while True:\n        c = [0] == big\n", "OutOfGas"),
    ("range-membership-linear", "def attack():\n    return 'a' in range(10**12)\n", ("ok", False)),
    ("cross-call-without-world", "def attack():\n    return call(b'x' * 20, 'f')\n", "CallError"),
]

assert len(ATTACKS) >= 40


class _Healthy:
    """Run an honest payment call and check host state after each attack."""

    SOURCE = (
        "def transfer(to, amount):\n"
        "    balance = storage.get(ctx.sender, 100)\n"
        "    require(balance >= amount, 'insufficient')\n"
        "    storage[ctx.sender] = balance - amount\n"
        "    storage[to] = storage.get(to, 0) + amount\n"
        "    emit('Transfer', to=to, amount=amount)\n"
        "    return balance - amount\n"
    )

    @classmethod
    def check(cls, engine: Engine) -> None:
        result = run(cls.SOURCE, "transfer", b"\x01" * 20, 30, engine=engine)
        assert result.ok and result.value == 70, result


@pytest.fixture(scope="module")
def engine() -> Engine:
    return Engine()


@pytest.mark.parametrize("name,source,expected", ATTACKS, ids=[a[0] for a in ATTACKS])
def test_attack_is_stopped(engine: Engine, name: str, source: str, expected: object) -> None:
    recursion_limit = sys.getrecursionlimit()
    decimal_context = decimal.getcontext()
    state = MemoryStore()
    start = time.perf_counter()
    if expected == REJECTED:
        with pytest.raises(ContractRejected) as info:
            engine.compile(source)
        assert info.value.line >= 0 and info.value.reason
    else:
        compiled = engine.compile(source)
        result = engine.call(compiled, "attack", [], state=state, ctx=ctx(), gas_limit=GAS_LIMIT)
        if isinstance(expected, tuple) and expected[0] == "ok":
            # Looks like an attack but is harmless: it must finish, quickly and correctly.
            assert result.ok and result.value == expected[1], result
        else:
            allowed = expected if isinstance(expected, tuple) else (expected,)
            assert not result.ok, result
            assert result.error_type in allowed, result
            assert result.events == ()
            assert state.data == {}, "a failed call must not write"
            if result.error_type == "OutOfGas":
                assert result.gas_used == GAS_LIMIT
            # Messages come from the contract (ContractError) or the engine's own limits,
            # never from CPython (its texts change between releases).
            engine_texts = ("ContractError", "CallError", "LimitExceeded", "DeterminismError", "CallDepthExceeded",
                            "ReentrancyError", "UnicodeEncodeError")
            assert result.error_message is None or result.error_type in engine_texts
    elapsed = time.perf_counter() - start
    assert elapsed < ATTACK_SECONDS_MAX, f"{name} took {elapsed:.2f}s"
    # The process is still healthy: host settings untouched, honest calls still work.
    assert sys.getrecursionlimit() == recursion_limit
    assert decimal.getcontext() is decimal_context
    _Healthy.check(engine)


def test_rejection_names_line_column_and_reason() -> None:
    source = "def ok():\n    return 1\n\ndef bad():\n    x = 1\n    return   x / 2\n"
    with pytest.raises(ContractRejected) as info:
        Engine().compile(source)
    assert (info.value.line, info.value.column) == (6, 13)
    assert "division" in info.value.reason
    assert str(info.value).startswith("line 6, column 13:")


def test_reentrancy_and_depth_attacks_through_the_world() -> None:
    from tests.contracts.support import deploy

    engine = Engine()
    base = MemoryStore()
    reenter = (
        "def init():\n    pass\n"
        "def ping(other):\n    return call(other, 'pong', ctx.contract)\n"
        "def pong(back):\n    return call(back, 'ping', ctx.contract)\n"
    )
    a = deploy(engine, base, reenter, nonce=b"\x01")
    b = deploy(engine, base, reenter, nonce=b"\x02")
    before = base.snapshot()
    start = time.perf_counter()
    result = engine.execute(base, ctx(), a, "ping", [b], GAS_LIMIT)
    assert not result.ok and result.error_type == "ReentrancyError", result
    assert base.snapshot() == before
    assert time.perf_counter() - start < ATTACK_SECONDS_MAX


def test_an_abort_swallowed_by_finally_still_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: if the compiler ever let `return` inside `finally` through, the
    engine would still see the abort it swallowed and fail the call."""
    from contracts.engine import compile_check, compiler

    original_init = compile_check.Checker.__init__

    def lenient_init(self: compile_check.Checker) -> None:
        original_init(self)
        self._in_finally = -1  # one level of finally now looks like none: the rule is off

    monkeypatch.setattr(compile_check.Checker, "__init__", lenient_init)
    source = "def attack():\n    try:\n        x = 'a' * 10**10\n    finally:\n        return 1\n"
    compiled = compiler.compile_contract(source)
    result = Engine().call(compiled, "attack", [], state=MemoryStore(), ctx=ctx(), gas_limit=GAS_LIMIT)
    assert (result.ok, result.error_type) == (False, "LimitExceeded"), result

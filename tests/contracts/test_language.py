"""The contract language: what works, with the results plain Python would give."""

from __future__ import annotations

import pytest

from contracts.engine import ContractRejected, Engine
from contracts.engine.gas import ITERATION_GAS, NODE_GAS
from contracts.engine.values import encode
from tests.contracts.support import ALICE, MemoryStore, run


def value_of(body: str, *args: object) -> object:
    """Run `body` as the body of `f(a=None, b=None)` and return its value (must succeed)."""
    source = "def f(a=None, b=None):\n" + "".join("    " + line + "\n" for line in body.strip("\n").split("\n"))
    result = run(source, "f", *args)
    assert result.ok, result
    return result.value


CASES = [
    ("arith", "return [7 // 2, -7 // 2, 7 % 3, 2 ** 10, 1 << 8, 255 >> 4, 6 & 3, 6 | 3, 6 ^ 3, ~5, -(3)]",
     [3, -4, 1, 1024, 256, 15, 2, 7, 5, -6, -3]),
    ("big-ints", "return [2 ** 1000 % 1000007, pow(3, 200, 10**9 + 7), (2 ** 512) * (2 ** 511) > 0]",
     [pow(2, 1000, 1000007), pow(3, 200, 10**9 + 7), True]),
    ("divmod-abs", "return [list(divmod(17, 5)), abs(-3)]", [[3, 2], 3]),
    ("strings", "s = 'Hello, World'\nreturn [s.lower(), s.upper(), s.split(', '), s.replace('l', 'L', 2), s.startswith('He'), s.find('W'), s[::-1][:3], len(s)]",
     ["hello, world", "HELLO, WORLD", ["Hello", "World"], "HeLLo, World", True, 7, "dlr", 12]),
    ("str-join-strip", "return ['-'.join(['a', 'b', 'c']), '  x '.strip(), 'a,b'.partition(','), 'x'.zfill(3), 'ab'.center(6, '*')]",
     ["a-b-c", "x", ["a", ",", "b"], "00x", "**ab**"]),
    ("fstrings", "x = 42\nname = 'bob'\nreturn [f'{x}', f'{x:>5}', f'{x:05d}', f'{x:x}', f'{name!s}:{x:,}', f'{Decimal(\"1.5\"):.3f}']",
     ["42", "   42", "00042", "2a", "bob:42", "1.500"]),
    ("percent", "return ['%d-%s' % (5, 'x'), '%05d' % 42, '%(a)s' % {'a': 'y'}, '%x' % 255]", ["5-x", "00042", "y", "ff"]),
    ("str-of-values", "return [str(12), str(True), str(None), str([1, 'a', b'b']), str({'k': (1, 2)})]",
     ["12", "True", "None", "[1, 'a', b'b']", "{'k': (1, 2)}"]),
    ("bytes", "b = b'\\x00\\xff'\nreturn [b.hex(), b + b'!', b[1], 'é'.encode(), b'abc'.decode(), bytes([1, 2]), (258).to_bytes(2, 'big'), int_from_bytes(b'\\x01\\x02')]",
     ["00ff", b"\x00\xff!", 255, "é".encode(), "abc", b"\x01\x02", b"\x01\x02", 258]),
    ("int-conversions", "return [int('123'), int('-ff', 16), int(True), int(Decimal('9.99')), hex(255), chr(65), ord('A')]",
     [123, -255, 1, 9, "0xff", "A", 65]),
    ("lists", "xs = [3, 1, 2]\nxs.append(5)\nxs.extend([0])\nxs.sort()\nys = sorted(xs, reverse=True)\nxs.insert(0, 9)\nxs.remove(9)\nreturn [xs, ys, xs.index(2), xs.count(1), xs.pop(), xs[1:3], xs * 2, min(xs), max(ys), sum(xs)]",
     [[0, 1, 2, 3], [5, 3, 2, 1, 0], 2, 1, 5, [1, 2], [0, 1, 2, 3, 0, 1, 2, 3], 0, 5, 6]),
    ("dicts", "d = {'b': 2, 'a': 1}\nd['c'] = 3\nd.update({'d': 4})\nv = d.pop('b')\nd.setdefault('e', 5)\nreturn [d, d.keys(), d.values(), [list(p) for p in d.items()], d.get('zz', 0), 'a' in d, v, dict([('x', 1)], y=2), d | {'z': 0}]",
     [{"a": 1, "c": 3, "d": 4, "e": 5}, ["a", "c", "d", "e"], [1, 3, 4, 5], [["a", 1], ["c", 3], ["d", 4], ["e", 5]], 0, True, 2, {"x": 1, "y": 2}, {"a": 1, "c": 3, "d": 4, "e": 5, "z": 0}]),
    ("comprehensions", "return [[x * x for x in range(5) if x % 2 == 0], {k: v for k, v in zip('ab', [1, 2])}, [i + j for i in range(2) for j in range(2)]]",
     [[0, 4, 16], {"a": 1, "b": 2}, [0, 1, 1, 2]]),
    ("unpacking-enumerate", "total = 0\nfor i, (k, v) in enumerate([('a', 1), ('b', 2)]):\n    total += i * v\na, b = 1, 2\na, b = b, a\nreturn [total, a, b]",
     [2, 2, 1]),
    ("aug-assign-items", "d = {'n': 1}\nd['n'] += 5\nxs = [1, 2]\ni = 0\nxs[i] -= 10\ns = 'a'\ns += 'b'\nreturn [d, xs, s]",
     [{"n": 6}, [-9, 2], "ab"]),
    ("while-break-continue", "n = 0\ni = 0\nwhile True:\n    i += 1\n    if i > 10:\n        break\n    if i % 2:\n        continue\n    n += i\nreturn n", 30),
    ("for-else", "for x in []:\n    pass\nelse:\n    return 'empty'", "empty"),
    ("try-except", "try:\n    require(False, 'nope')\nexcept ContractError as e:\n    m = e.message\ntry:\n    x = {}['k']\nexcept KeyError as e:\n    k = str(e)\nreturn [m, k]",
     ["nope", "KeyError"]),
    ("isinstance", "return [isinstance(1, int), isinstance('x', (int, str)), isinstance(True, int), isinstance([], dict), isinstance(Decimal(1), Decimal)]",
     [True, True, True, False, True]),
    ("chained-compare", "x = 5\nreturn [1 < x <= 5, 1 < x < 3, x == 5 != 4]", [True, False, True]),
    ("containers-compare", "return [[1, 2] == [1, 2], (1, 2) < (1, 3), 'ab' < 'b', [1] in [[1], [2]], 'b' in 'abc', 3 in range(5)]",
     [True, True, True, True, True, True]),
    ("decimal", "a = Decimal('10.25')\nb = Decimal(3)\nreturn [str(a * b), str(a - b), str(a // b), str(a % b), str(decimal_div(a, b).quantize(Decimal('0.0001'))), a > b]",
     ["30.75", "7.25", "3", "1.25", "3.4167", True]),
    ("any-all-reversed", "return [any([0, 1]), all([1, 0]), list(reversed([1, 2, 3])), list(range(3, 0, -1))]",
     [True, False, [3, 2, 1], [3, 2, 1]]),
    ("tuple-list-conversion", "t = tuple([1, 2])\nreturn [t, list('ab'), list({'k': 1})]", [[1, 2], ["a", "b"], ["k"]]),
    ("args", "return [a, b]", [[1, {"k": b"v"}], None]),
]


@pytest.mark.parametrize("name,body,expected", CASES, ids=[c[0] for c in CASES])
def test_language_case(name: str, body: str, expected: object) -> None:
    args = ([1, {"k": b"v"}],) if name == "args" else ()
    assert value_of(body, *args) == expected


def test_module_constants_and_private_helpers() -> None:
    source = '''
RATE_BPS = 25
LIMITS = (10, -20, "x")
_SECRET = 7

def fee(amount):
    return _fee(amount) + _SECRET

def _fee(amount):
    return amount * RATE_BPS // 10000

def limits():
    return LIMITS
'''
    assert run(source, "fee", 10_000).value == 32
    assert run(source, "limits").value == [10, -20, "x"]
    assert run(source, "_fee", 1).error_type == "MethodNotFound"


def test_storage_mapping_operations() -> None:
    source = '''
def f():
    storage["a"] = {"x": [1, 2]}
    storage[b"raw"] = b"\\x00"
    storage[7] = True
    storage[["composite", 1]] = "ok"
    v = storage["a"]
    v["x"].append(3)          # a copy: storage is unchanged until written back
    before = storage["a"]
    storage["a"] = v
    present = "a" in storage and not ("zz" in storage)
    del storage[7]
    return [before, storage["a"], storage.get(7, "gone"), storage[["composite", 1]], present]
'''
    state = MemoryStore()
    result = run(source, "f", state=state)
    assert result.value == [{"x": [1, 2]}, {"x": [1, 2, 3]}, "gone", "ok", True]
    assert state.get(encode("a")) == encode({"x": [1, 2, 3]})
    assert state.get(encode(7)) is None


def test_storage_missing_key_is_key_error_and_decimal_is_not_storable() -> None:
    assert run("def f():\n    return storage['nope']\n", "f").error_type == "KeyError"
    assert run("def f():\n    storage['d'] = Decimal('1.5')\n", "f").error_type == "TypeError"
    assert run("def f():\n    storage['d'] = 2 ** 64\n", "f").error_type == "ValueError"


def test_events_carry_plain_fields() -> None:
    result = run("def f():\n    emit('Shipped', order=b'o1', legs=['SH', 'RTM'], meta={'kg': 12})\n", "f")
    assert result.ok
    (event,) = result.events
    assert (event.name, event.fields) == ("Shipped", {"order": b"o1", "legs": ["SH", "RTM"], "meta": {"kg": 12}})
    assert run("def f():\n    emit('E', f=f)\n", "f").error_type == "TypeError"


def test_loop_gas_is_linear_in_iterations() -> None:
    source = "def f(n):\n    for i in range(n):\n        pass\n"
    g = [run(source, "f", n).gas_used for n in (0, 10, 20)]
    per_iteration = ITERATION_GAS + NODE_GAS * (1 + 1)  # the target name and `pass`
    assert g[1] - g[0] == g[2] - g[1] == 10 * per_iteration


def test_gas_charges_bytes_produced() -> None:
    source = "def f(n):\n    s = 'a' * n\n"
    small, big = run(source, "f", 10).gas_used, run(source, "f", 10_010).gas_used
    assert big - small == 10_000


def test_recursion_below_the_depth_limit_works() -> None:
    from contracts.engine.gas import FUNCTION_DEPTH_MAX

    source = "def depth(n):\n    if n == 0:\n        return 0\n    return 1 + depth(n - 1)\n"
    assert run(source, "depth", FUNCTION_DEPTH_MAX - 1).value == FUNCTION_DEPTH_MAX - 1
    assert run(source, "depth", FUNCTION_DEPTH_MAX).error_type == "CallDepthExceeded"


def test_results_must_fit_in_msgpack_ints() -> None:
    source = "def fact(n):\n    if n <= 1:\n        return 1\n    return n * fact(n - 1)\n"
    assert run(source, "fact", 20).value == 2432902008176640000
    assert run(source, "fact", 100).error_type == "ValueError"


@pytest.mark.parametrize("source,reason", [
    ("def f():\n    return {1, 2}\n", "sets"),
    ("def f():\n    x = lambda: 1\n", "lambda"),
    ("def f(*args):\n    pass\n", "*args"),
    ("def f():\n    return f(*[1])\n", "star"),
    ("def f():\n    return dict(**{})\n", "**kwargs"),
    ("def f():\n    return a.b.c\n\nclass X:\n    pass\n", "classes"),
    ("def f(x: int):\n    pass\n", "annotations"),
    ("def f():\n    return 1e3\n", "float"),
    ("def f():\n    with x:\n        pass\n", "with"),
    ("def f():\n    nonlocal x\n", "nonlocal"),
    ("def f():\n    x.y += 1\n", "attributes"),
    ("def f():\n    return x.__dict__\n", "'_'"),
    ("def f():\n    a = b = []\n    a[0] = b[0] = 1\n", "chained"),
    ("def f():\n    pass\ndef f():\n    pass\n", "twice"),
    ("def f():\n    return 2 ** 5000\n", None),  # allowed syntax; fails at runtime
])
def test_rejections_name_the_reason(source: str, reason: str | None) -> None:
    if reason is None:
        assert run(source, "f").error_type == "LimitExceeded"
        return
    with pytest.raises(ContractRejected) as info:
        Engine().compile(source)
    assert reason in info.value.reason, info.value


@pytest.mark.parametrize("expr", ["a.split()", "a.split(None)", "a.split(maxsplit=1)", "a.strip()", "a.upper()", "a.isdigit()"])
def test_unicode_table_methods_refuse_non_ascii_text(expr: str) -> None:
    result = run(f"def f(a):\n    return {expr}\n", "f", "x\u3000y")  # ideographic space
    assert (result.ok, result.error_type) == (False, "DeterminismError")
    assert run(f"def f(a):\n    return {expr}\n", "f", "x y").ok


def test_non_ascii_text_is_fine_where_it_does_not_depend_on_unicode_tables() -> None:
    assert value_of("return ['货物' + '清单', len('货物'), '货物'.startswith('货'), f'{a}']", "ü") == ["货物清单", 2, True, "ü"]


def test_sender_based_logic() -> None:
    source = "def whoami():\n    return ctx.sender == storage.get('owner', ctx.sender)\n"
    assert run(source, "whoami", sender=ALICE).value is True

"""Gas priced by measured cost: `python -m tests.bench.gas [--quick]`.

For every operation a contract can reach (builtins, methods of str/bytes/int/Decimal/list/
dict, operators, Decimal context operations, storage, events, hashing, signature checks,
cross-contract calls, exceptions, recursion), a contract runs its worst case for that
operation in a loop until its gas runs out; the CPU time it took gives the operation's
gas per second. The reference, measured in the same run, is a block of payment transactions
(two balance reads, a check, two writes, one event each) through the executor.

The gas schedule (contracts/engine/gas.py) is calibrated so that no case burns gas more
slowly than `FLOOR_RATIO` times the payment's rate: gas then bounds CPU time for any
contract within that factor of what it bounds for payments, and `tx_gas_limit` bounds the
CPU time of one transaction (docs/contracts.md, "Gas schedule").

Prints every case, the slowest first, and exits non-zero if the slowest is below the floor.
A ratio against a reference measured in the same run, never a wall-clock budget.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

import msgpack

from chainnode.crypto import get_suite
from contracts.engine import CallContext, Engine
from tests.bench.contracts import PAYMENT_SOURCE, DictStore

# The slowest case must burn at least this fraction of the payment's gas per second.
FLOOR_RATIO = 1 / 3

ALICE, BOB, CONTRACT = b"a" * 20, b"b" * 20, b"c" * 20
CTX = CallContext(ALICE, CONTRACT, 1, 1_700_000_000_000, b"\x11" * 32)

# name -> (setup statements, loop body). Each runs as
#     def spin(<args>):
#         <setup>
#         while True:
#             <body>
# until the gas is gone. Bodies keep their values bounded (no limit is hit first).
# `P` is a valid public key, `S` a signature of `M` by it (see _signature_args), `T` the
# address of another contract.
CASES: dict[str, tuple[str, str]] = {
    # ---- plain code
    "loop: pass": ("", "pass"),
    "int: add, compare": ("x = 0", "x = x + 1 if x < 1000 else 0"),
    "function call": ("", "_f(1)"),
    "recursion depth 150": ("", "_r(150)"),
    "try/raise/except": ("", "try:\n                raise ValueError('x')\n            except ValueError:\n                pass"),
    "require(False) caught": ("", "try:\n                require(False, 'no')\n            except ContractError:\n                pass"),
    "isinstance tuple": ("x = 1", "isinstance(x, (str, bytes, list, dict, int))"),
    "len/abs/min/max": ("l = [1, 2, 3]", "min(l)\n            max(3, 4)\n            abs(-5)\n            len(l)"),
    "divmod small": ("", "divmod(1000, 7)"),
    "range/enumerate/zip": ("", "for i, (a, b) in enumerate(zip(range(3), range(3))):\n                pass"),
    # ---- big integers
    "int: 1024-bit add": ("a = (1 << 1020) + 12345\n        b = (1 << 1019) + 99", "c = a + b"),
    "int: 512x512-bit mul": ("a = (1 << 511) + 3\n        b = (1 << 511) + 5", "c = a * b"),
    "int: 1024/512-bit floordiv": ("a = (1 << 1022) + 3\n        b = (1 << 511) + 5", "c = a // b"),
    "int: 1024/512-bit mod": ("a = (1 << 1022) + 3\n        b = (1 << 511) + 5", "c = a % b"),
    "int: divmod 1024/512": ("a = (1 << 1022) + 3\n        b = (1 << 511) + 5", "c = divmod(a, b)"),
    "int: 1024-bit pow mod": ("a = (1 << 1022) + 3\n        m = (1 << 1023) + 5", "c = pow(a, a, m)"),
    "int: small pow mod": ("", "c = pow(3, 65537, 1000003)"),
    "int: power": ("", "c = 3 ** 600"),
    "int: shift": ("a = (1 << 500) + 1", "c = a << 500\n            d = c >> 700"),
    "int: and/or/xor 1024": ("a = (1 << 1020) + 3\n        b = (1 << 1019) + 5", "c = a & b\n            d = a | b\n            e = a ^ b"),
    "int: compare 1024": ("a = (1 << 1020) + 3\n        b = (1 << 1020) + 5", "c = a < b"),
    "int -> str 300 digits": ("a = 10 ** 299 + 7", "s = str(a)"),
    "str -> int 300 digits": ("s = '9' * 300", "a = int(s)"),
    "int: hex 1024-bit": ("a = (1 << 1020) + 3", "s = hex(a)"),
    "int: to_bytes 128": ("a = (1 << 1020) + 3", "b = a.to_bytes(128)"),
    "int_from_bytes 128": ("b = bytes(128)", "a = int_from_bytes(b)"),
    "int: f-string 1024-bit": ("a = (1 << 1020) + 3", "s = f'{a:x}'"),
    # ---- Decimal (the fixed context: 34 digits)
    "Decimal: sqrt": ("d = Decimal(2)", "x = d.sqrt()"),
    "Decimal: sqrt of a large one": ("d = Decimal('1234567890123456789012345678.901234')", "x = d.sqrt()"),
    "Decimal: ** fractional": ("d = Decimal('1.000000001')\n        e = Decimal('0.5')", "x = d ** e"),
    "Decimal: ** 1000": ("d = Decimal('1.000000001')", "x = d ** 1000"),
    "Decimal: ** fractional big": ("d = Decimal('12345678901234567890.12345678901234')\n        e = Decimal('0.123456789012345678901234567890123')", "x = d ** e"),
    "Decimal: decimal_div": ("a = Decimal(1)\n        b = Decimal(3)", "x = decimal_div(a, b)"),
    "Decimal: * + -": ("a = Decimal('1.234567890123456789012345678901234')", "x = a * a + a - a"),
    "Decimal: // %": ("a = Decimal('1234567890123456789012345678901234')\n        b = Decimal('7.1')", "x = a // b\n            y = a % b"),
    "Decimal: quantize": ("a = Decimal('1.234567890123456789012345678901234')\n        q = Decimal('0.01')", "x = a.quantize(q)"),
    "Decimal: quantize huge": ("a = Decimal('1E+9000')\n        q = Decimal('1E-30')", "try:\n                x = a.quantize(q)\n            except ArithmeticError:\n                pass"),
    "Decimal: to_integral_value": ("a = Decimal('1.5E+30')", "x = a.to_integral_value()"),
    "Decimal(str)": ("s = '1234567890.123456789012345678901234'", "x = Decimal(s)"),
    "Decimal(int)": ("a = 10 ** 300", "x = Decimal(a)"),
    "Decimal -> str": ("a = Decimal('1.234567890123456789012345678901234E-9000')", "s = str(a)"),
    "Decimal: f-string .30f": ("a = Decimal('1.234567890123456789012345678901234E+900')", "s = f'{a:.30f}'"),
    "Decimal -> int": ("a = Decimal('1.234567890123456789012345678901234E+300')", "x = int(a)"),
    "Decimal: compare": ("a = Decimal('1.1')\n        b = Decimal('1.2')", "x = a < b"),
    "Decimal: adjusted/is_zero": ("a = Decimal('1.1')", "a.adjusted()\n            a.is_zero()\n            a.is_signed()"),
    "Decimal: %d format": ("a = Decimal('1.2E+300')", "s = '%d' % a"),
    # ---- str / bytes
    "str: concat 1000": ("s = 'a' * 1000", "t = s + s"),
    "str: repeat": ("", "t = 'ab' * 1000"),
    "str: find worst": ("s = 'a' * 20000\n        p = 'a' * 50 + 'b'", "s.find(p)"),
    "str: count 1-char": ("s = 'ab' * 10000", "s.count('a')"),
    "str: in (short needle)": ("s = 'a' * 20000", "x = 'ab' in s"),
    "str: in (long needle)": ("s = 'a' * 20000\n        p = 'a' * 5000 + 'b'", "x = p in s"),
    "str: == long": ("s = 'a' * 20000\n        t = 'a' * 20000", "x = s == t"),
    "str: < long": ("s = 'a' * 20000\n        t = 'a' * 20000", "x = s < t"),
    "str: replace": ("s = 'ab' * 5000", "t = s.replace('a', 'cc')"),
    "str: split": ("s = 'a,' * 5000", "l = s.split(',')"),
    "str: split whitespace": ("s = 'a ' * 5000", "l = s.split()"),
    "str: join": ("l = ['ab'] * 1000", "t = ','.join(l)"),
    "str: upper": ("s = 'ab' * 5000", "t = s.upper()"),
    "str: strip": ("s = ' ' * 10000 + 'a'", "t = s.strip()"),
    "str: isdigit": ("s = '1' * 10000", "s.isdigit()"),
    "str: startswith": ("s = 'a' * 10000", "s.startswith('a' * 5000)"),
    "str: partition": ("s = 'a' * 10000 + 'b'", "s.partition('b')"),
    "str: slice": ("s = 'a' * 10000", "t = s[1:9000]"),
    "str: index char": ("s = 'abc' * 1000", "c = s[1500]"),
    "str: f-string": ("a = 12345\n        s = 'abc'", "t = f'{a}-{s}-{a:>20}'"),
    "str: % format": ("a = 12345", "t = '%d-%s-%x' % (a, 'abc', a)"),
    "str: ljust": ("s = 'a'", "t = s.ljust(1000)"),
    "str: encode": ("s = 'é' * 5000", "b = s.encode()"),
    "str: encode ascii": ("s = 'a' * 5000", "b = s.encode()"),
    "bytes: decode": ("b = bytes('é' * 5000, 'utf-8')", "s = b.decode()"),
    "bytes: hex": ("b = bytes(5000)", "s = b.hex()"),
    "bytes: find worst": ("b = bytes(20000)\n        p = bytes(50) + b'1'", "b.find(p)"),
    "bytes(list)": ("l = list(range(256)) * 4", "b = bytes(l)"),
    "chr/ord": ("", "c = chr(0x4e2d)\n            n = ord(c)"),
    "str(list) repr": ("l = [b'ab' * 10, 'x' * 20, 123, None] * 100", "s = str(l)"),
    "str(dict) repr": ("d = {str(i): i for i in range(300)}", "s = str(d)"),
    # ---- containers
    "list: append/pop": ("l = []", "l.append(1)\n            l.pop()"),
    "list: insert front": ("l = list(range(50000))", "l.insert(0, 1)\n            l.pop(0)"),
    "list: pop front": ("l = list(range(50000))", "l.insert(0, 1)\n            l.pop(0)"),
    "list: comprehension": ("", "l = [i for i in range(100)]"),
    "list(range)": ("", "l = list(range(1000))"),
    "list: copy": ("l = list(range(1000))", "m = l.copy()"),
    "list: slice": ("l = list(range(1000))", "m = l[1:900]"),
    "list: sort sorted ints": ("l = list(range(1000))", "l.sort()"),
    "list: sorted random": ("l = [(i * 7919) % 1000 for i in range(1000)]", "m = sorted(l)"),
    "list: sort strings": ("l = ['x' * 30 + str((i * 7919) % 1000) for i in range(500)]", "m = sorted(l)"),
    "list: sort key": ("l = [(i * 7919) % 1000 for i in range(500)]", "m = sorted(l, key=_neg)"),
    "list: sort tuples": ("l = [((i * 7919) % 100, 'ab', i) for i in range(500)]", "m = sorted(l)"),
    "list: index miss": ("l = list(range(1000))", "try:\n                l.index(-1)\n            except ValueError:\n                pass"),
    "list: in miss": ("l = list(range(1000))", "x = -1 in l"),
    "list: in miss strings": ("l = ['x' * 40] * 1000", "x = 'y' in l"),
    "list: == nested": ("a = [[1, 2, [3, 4]]] * 200\n        b = [[1, 2, [3, 4]]] * 200", "x = a == b"),
    "list: remove": ("l = list(range(1000))", "l.remove(999)\n            l.append(999)"),
    "list: reverse": ("l = list(range(1000))", "l.reverse()"),
    "list: extend": ("l = list(range(1000))", "m = []\n            m.extend(l)"),
    "list: + ": ("l = list(range(500))", "m = l + l"),
    "list: * ": ("l = [1, 2]", "m = l * 500"),
    "list: sum": ("l = list(range(1000))", "x = sum(l)"),
    "list: sum Decimal": ("l = [Decimal('1.1')] * 300", "x = sum(l, Decimal(0))"),
    "list: min/max": ("l = list(range(1000))", "x = min(l)\n            y = max(l)"),
    "list: min strings": ("l = ['x' * 40 + str(i) for i in range(300)]", "x = min(l)"),
    "list: any/all": ("l = [0] * 1000", "x = any(l)\n            y = all(l)"),
    "list: unpack": ("t = (1, 2, 3)", "a, b, c = t"),
    "tuple(list)": ("l = list(range(1000))", "t = tuple(l)"),
    "reversed(list)": ("l = list(range(1000))", "for x in reversed(l):\n                pass"),
    "dict: set/get": ("d = {}", "d['a'] = 1\n            x = d['a']\n            y = d.get('b', 0)"),
    "dict: int keys": ("d = {}\n        i = 0", "d[i % 1000] = i\n            i = i + 1"),
    "dict: tuple keys": ("d = {}\n        k = (1, 'a', (2, 3))", "d[k] = 1\n            x = d[k]"),
    "dict: long str keys": ("d = {}", "d['k' * 1000 + 'x'] = 1"),
    "dict: items": ("d = {str(i): i for i in range(500)}", "l = d.items()"),
    "dict: copy": ("d = {str(i): i for i in range(500)}", "e = d.copy()"),
    "dict: update": ("d = {str(i): i for i in range(500)}", "e = {}\n            e.update(d)"),
    "dict: | ": ("d = {str(i): i for i in range(300)}", "e = d | d"),
    "dict(list of pairs)": ("l = [(str(i), i) for i in range(300)]", "d = dict(l)"),
    "dict: comprehension": ("", "d = {i: i for i in range(100)}"),
    "dict: in": ("d = {'a': 1}", "x = 'a' in d"),
    "dict: pop/setdefault": ("d = {}", "d.setdefault('a', 1)\n            d.pop('a')"),
    "dict: == ": ("a = {str(i): [i] for i in range(300)}\n        b = {str(i): [i] for i in range(300)}", "x = a == b"),
    # ---- chain services
    "storage: write": ("i = 0", "storage[i] = i\n            i = (i + 1) % 1000"),
    "storage: write big value": ("v = 'x' * 60000", "storage['k'] = v"),
    "storage: write nested value": ("v = [[1, 'ab', [2]]] * 1000", "storage['k'] = v"),
    "storage: read": ("storage['k'] = 1", "x = storage['k']"),
    "storage: read nested value": ("storage['k'] = [[1, 'ab', [2]]] * 1000", "x = storage['k']"),
    "storage: get miss": ("", "x = storage.get('missing', 0)"),
    "storage: in": ("", "x = 'missing' in storage"),
    "storage: delete": ("", "del storage['k']"),
    "storage: list key": ("", "x = storage.get(['w', b'a' * 20, 1], 0)"),
    "emit: scalars": ("", "emit('Transfer', frm=b'a' * 20, to=b'b' * 20, amount=5)"),
    "emit: nested": ("v = [[1, 'ab']] * 100", "emit('E', v=v)"),
    "emit: dynamic name": ("n = 'Transfer'", "emit(n, a=1)"),
    "hash: 32 bytes": ("b = bytes(32)", "h = hash(b)"),
    "hash: 4 KB": ("b = bytes(4096)", "h = hash(b)"),
    "verify_signature: valid": ("", "x = verify_signature(P, M, S)"),
    "verify_signature: garbage": ("p = b'\\x04' + bytes(64)\n        s = bytes(64)", "x = verify_signature(p, M, s)"),
    "cross-contract call": ("", "x = call(T, 'spin_nothing')"),
    "ctx fields": ("", "a = ctx.sender\n            b = ctx.block_height"),
}

HELPERS = '''
def _f(x):
    return x

def _r(n):
    if n > 0:
        return _r(n - 1)
    return 0

def _neg(x):
    return -x

def spin_nothing():
    return 1
'''

REFERENCE = "payment block (executor)"
OTHER = b"\xdd" * 20  # a contract with HELPERS only, for the cross-contract call
# Cases that cannot run out of gas (events per transaction are capped) end at the cap.
ENDINGS = ("OutOfGas", "LimitExceeded")
# The reference runs once per this many cases (and the best of all its runs counts).
REFERENCE_EVERY = 10


def case_source(name: str) -> str:
    # The table writes setup continuation lines at 8 spaces and body ones at 12 (where
    # they would sit in a method); here the loop sits in a module-level function.
    setup, body = CASES[name]
    setup = setup.replace("\n        ", "\n    ")
    body = body.replace("\n            ", "\n        ")
    return f"{HELPERS}\ndef spin(P, M, S, T):\n    {setup or 'pass'}\n    while True:\n        {body}\n"


def _signature_args(suite: Any) -> list:
    private, public = suite.generate_keypair()
    message = b"m" * 32
    return [public, message, suite.sign(private, message), OTHER]


class CaseFailed(AssertionError):
    pass


def _run_case(engine: Engine, name: str, gas: int, args: list, store: Any, address: bytes) -> float:
    """gas per CPU second of one run of case `name`; it must end out of gas (or at a cap,
    having burnt a quarter of its gas or 200,000)."""
    ctx = CallContext(ALICE, address, 1, 1_700_000_000_000, b"\x11" * 32)
    start = time.thread_time()
    result = engine.execute(store, ctx, address, "spin", args, gas)
    elapsed = time.thread_time() - start
    # A case that ends at a cap (events per transaction) must still have run long enough.
    if result.error_type not in ENDINGS or result.gas_used < min(gas // 4, 200_000):
        raise CaseFailed(f"case {name!r} ended with {result.error_type} after {result.gas_used} gas "
                         "instead of running out of gas")
    return result.gas_used / max(elapsed, 1e-9)


def payment_block(engine: Engine, calls: int) -> Callable[[], float]:
    """A block of `calls` payment transactions through the executor: what one unit of gas
    buys on the chain for the workload it exists for (engine call, state overlay, receipts,
    roots; signatures are checked before execution, in the pool). Returns a function that
    executes it once and gives its gas per CPU second."""
    from chainnode.execution.executor import Executor
    from chainnode.protocol.types import ZERO_HASH, Transaction
    from contracts.engine.store import code_key, storage_prefix

    suite = engine.suite
    executor = Executor(suite, engine, "chain0", "group0")
    private, public = suite.keypair_from_private(b"\x07" * 32)
    sender = suite.address(public)
    state = DictStore()
    state.set(code_key(CONTRACT), PAYMENT_SOURCE.encode())
    state.set(storage_prefix(CONTRACT) + msgpack.packb(sender, use_bin_type=True), msgpack.packb(10**12))
    txs = [Transaction("chain0", "group0", i.to_bytes(8, "big"), 10, CONTRACT, "transfer",
                       [i.to_bytes(20, "big"), 1], 100_000, public).signed(suite, private) for i in range(calls)]
    hashes = [t.hash(suite) for t in txs]

    def run() -> float:
        start = time.thread_time()
        done = executor.execute(state, ZERO_HASH, 1, 1_000, txs, hashes)  # an overlay: state stays as it is
        elapsed = time.thread_time() - start
        assert all(r.ok for r in done.receipts), done.receipts[0]
        return done.gas_used / max(elapsed, 1e-9)

    return run


def measure(gas: int = 3_000_000, rounds: int = 3, payment_calls: int = 1_000,
            names: list[str] | None = None) -> dict[str, float]:
    """gas per CPU second of every case and of the payment reference, each the best of
    `rounds` runs. CPU time of this thread, not wall time, so time the scheduler gives to
    other processes counts for neither; the reference runs between every
    `REFERENCE_EVERY` cases, so load that slows the CPU itself (caches, clock) hits both
    alike, and the best of many runs of each is compared."""
    from contracts.engine.store import code_key

    suite = get_suite("sm")
    engine = Engine(suite)
    args = _signature_args(suite)
    store = DictStore()
    rates: dict[str, float] = {}
    broken: list[str] = []
    names = list(CASES) if names is None else names
    addresses = {}
    store.set(code_key(OTHER), HELPERS.encode())
    for i, name in enumerate(names):
        try:
            engine.compile(case_source(name))
        except Exception as exc:
            raise CaseFailed(f"case {name!r} does not compile: {exc}") from None
        address = i.to_bytes(4, "big") + b"\xcc" * 16
        store.set(code_key(address), case_source(name).encode())
        addresses[name] = address
    reference = payment_block(engine, payment_calls)
    ref = 0.0
    for _ in range(rounds):
        for i, name in enumerate(names):
            if i % REFERENCE_EVERY == 0:
                ref = max(ref, reference())
            try:
                rate = _run_case(engine, name, gas, args, store, addresses[name])
            except CaseFailed as exc:
                print(f"BROKEN CASE: {exc}", file=sys.stderr)
                broken.append(name)
                continue
            rates[name] = max(rates.get(name, 0.0), rate)
    rates[REFERENCE] = ref
    if broken:
        raise CaseFailed(f"{len(set(broken))} case(s) did not run out of gas: {sorted(set(broken))}")
    return rates


def report(rates: dict[str, float]) -> tuple[list[str], float]:
    ref = rates[REFERENCE]
    lines = [f"reference: {REFERENCE:<34} {ref / 1e6:>10.1f} Mgas/s"]
    worst_ratio = float("inf")
    for name, rate in sorted(((n, r) for n, r in rates.items() if n != REFERENCE), key=lambda x: x[1]):
        ratio = rate / ref
        worst_ratio = min(worst_ratio, ratio)
        mark = "  BELOW FLOOR" if ratio < FLOOR_RATIO else ""
        lines.append(f"{name:<45} {rate / 1e6:>10.1f} Mgas/s  {ratio:>6.2f}x payment{mark}")
    return lines, worst_ratio


def main(argv: list[str]) -> int:
    quick = "--quick" in argv
    # `-k TEXT`: only the cases whose name contains TEXT (to re-measure a few while pricing).
    names = None
    if "-k" in argv:
        text = argv[argv.index("-k") + 1]
        names = [n for n in CASES if text in n]
    rates = measure(gas=1_000_000 if quick else 5_000_000, rounds=3 if quick else 5,
                    payment_calls=300 if quick else 1_000, names=names)
    lines, worst = report(rates)
    print("\n".join(lines))
    print(f"worst/payment {worst:.2f}x (floor {FLOOR_RATIO:.2f}x)")
    if worst < FLOOR_RATIO:
        print("FLOOR MISSED: the case(s) marked above burn gas too slowly; price them higher in contracts/engine/gas.py")
        return 1
    print("floor met")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""What contract code runs against: guards, curated builtins and chain services.

Every guard checks sizes *before* the operation allocates, and charges gas per byte or item
it produces (memory is bounded through gas). Every attribute read goes through a per-type
allow-list; item writes are allowed on dict, list and storage only. Anything whose result
could differ between nodes is refused: floats (no literals, no `/`, no negative integer
powers, no float format types), sets, `id`/`hash`/`repr` of objects, `str()` of objects
that would print an address, locale-dependent formatting, and Unicode-database-dependent
string methods on non-ASCII text (they change between Python releases).

One `Runtime` per `Engine`; it runs one transaction at a time (`gas` and `frames` belong to
the transaction in progress).
"""

from __future__ import annotations

import decimal
import re
from decimal import Decimal
from itertools import islice
from typing import Any, Callable

from contracts.engine import values
from contracts.engine.errors import (
    CallDepthExceeded,
    CallError,
    ContractError,
    DeterminismError,
    LimitExceeded,
    OutOfGas,
)
from contracts.engine.gas import (
    BYTE_GAS,
    DECIMAL_DIGIT_GAS,
    DECIMAL_DIV_GAS,
    DECIMAL_OP_GAS,
    MIN_MAX_GAS,
    RAISE_NODE_GAS,
    DECIMAL_FRACTIONAL_POW_GAS,
    DECIMAL_POW_GAS,
    DECIMAL_SQRT_GAS,
    DECIMAL_STR_CHARS_MAX,
    SCAN_CHARS_PER_GAS,
    EVENT_BYTE_GAS,
    EVENT_BYTES_MAX,
    EVENT_GAS,
    EVENT_NAME_CHARS_MAX,
    EVENTS_MAX,
    FORMAT_WIDTH_CHARS_MAX,
    FUNCTION_DEPTH_MAX,
    HASH_GAS,
    HASH_WORD_GAS,
    INT_BITS_MAX,
    INT_STR_DIGITS_MAX,
    ITEM_GAS,
    ITEMS_MAX,
    LIMB_GAS,
    TX_EVENT_BYTES_MAX,
    STR_CHARS_MAX,
    PAIR_GAS,
    TUPLE_KEY_GAS,
    VERIFY_GAS,
    WALK_DEPTH_MAX,
    WALK_NODE_GAS,
    WALK_NODES_MAX,
)
from contracts.engine.model import CallContext, Event, _new_tuple
from chainnode.protocol.codec import INT64_MIN, UINT64_MAX, VALUE_ITEMS_MAX
from contracts.engine.store import Storage, _speedups

# The fixed Decimal context entered on every call: decimal128 precision, banker's rounding,
# and traps for everything that would otherwise yield NaN/Infinity or lose a division.
DECIMAL_CONTEXT = decimal.Context(
    prec=34,
    rounding=decimal.ROUND_HALF_EVEN,
    Emin=-9999,
    Emax=9999,
    capitals=1,
    clamp=0,
    flags=[],
    traps=[decimal.InvalidOperation, decimal.DivisionByZero, decimal.Overflow],
)

_INT_LIMIT = 1 << INT_BITS_MAX
_NoneType = type(None)
_SEQ = (str, bytes, list, tuple)
# Comparing with one of these is O(1) (or a type mismatch), whatever the other side is.
_CHEAP = frozenset({int, bool, _NoneType, Decimal})
_HASHABLE_CHEAP = frozenset({int, bool, _NoneType, Decimal, str, bytes})
_ITERABLE = frozenset(
    {
        list, tuple, dict, str, bytes, range,
        zip, enumerate, type(reversed([])), type(reversed(())), type(reversed(range(0))),
        type(reversed({})),
    }
)
_SIZED = frozenset({list, tuple, dict, str, bytes, range})
# Event field values that need no walk and no copy (ints are range-checked by msgpack).
_EVENT_SCALARS = frozenset({int, str, bytes, bool, _NoneType})
_FLOAT_TYPES = frozenset("eEfFgG%")

# [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC_RE = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>#)?(?P<zero>0)?"
    r"(?P<width>\d+)?(?P<grouping>[_,])?(?:\.(?P<precision>\d+))?(?P<type>[bcdeEfFgGnosxX%])?",
    re.S,
)
# printf-style: %[(key)][flags][width][.precision][length]type
_PCT_RE = re.compile(r"%(?:\(([^)]*)\))?([#0\- +]*)(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.?)", re.S)


class Runtime:
    """Builds the builtins once. `gas` and `frames` are the same lists for the runtime's
    whole life (bound into the builtins' closures): the engine resets their contents at the
    start of every transaction instead of replacing them."""

    # Slots: `emit` reads and writes the event counters on every event.
    __slots__ = ("suite", "gas", "frames", "events_total", "event_bytes", "_cross_call", "builtins")

    def __init__(self, suite: Any, cross_call: Callable[[bytes, str, tuple], Any]) -> None:
        self.suite = suite
        self.gas: list[int] = [0, 0]  # [gas left, contract function depth]
        # One entry per contract on the call stack: [address, events, readonly, storage, ctx].
        self.frames: list[list] = []
        self.events_total = 0
        self.event_bytes = 0
        self._cross_call = cross_call
        self.builtins = _build_builtins(self)

    def charge(self, gas: int) -> None:
        g = self.gas
        g[0] -= gas
        if g[0] < 0:
            raise OutOfGas("out of gas")


def _bits_ok(n: int) -> int:
    if -_INT_LIMIT < n < _INT_LIMIT:
        return n
    raise LimitExceeded(f"integer exceeds {INT_BITS_MAX} bits")


def _build_builtins(rt: Runtime) -> dict[str, Any]:  # noqa: C901 - one closure scope on purpose
    charge = rt.charge
    to_receipt_value = values.to_receipt_value
    text_ok = values.text_ok
    pack = values.pack_plain
    gas_meter = rt.gas  # never rebound (see Runtime)
    frames = rt.frames

    # ---- accounting helpers ----------------------------------------------------------

    def charge_items(n: int) -> None:
        if n > ITEMS_MAX:
            raise LimitExceeded(f"{n} items exceeds the limit of {ITEMS_MAX}")
        charge(n * ITEM_GAS)

    def charge_chars(n: int) -> None:
        if n > STR_CHARS_MAX:
            raise LimitExceeded(f"{n} characters exceeds the limit of {STR_CHARS_MAX}")
        charge(n * BYTE_GAS)

    def charge_result(r: Any) -> Any:
        t = type(r)
        if t is str or t is bytes:
            charge_chars(len(r))
        elif t is list or t is tuple:
            charge_items(len(r))
            for x in r:  # split/partition produce strings: pay for their bytes and objects too
                if type(x) is str or type(x) is bytes:
                    charge(len(x) * BYTE_GAS + 2 * ITEM_GAS)
        elif t is int:
            _bits_ok(r)
        return r

    def tree_size(x: Any) -> int:
        """Nodes of `x` as a tree (a list holding the same list twice counts it twice),
        capped in count and depth, and paid for per node visited, even when it fails.

        CPython compares, hashes and prints nested values recursively in C: this bounds
        that work before it starts (a DAG of doubling lists would otherwise take forever),
        and how deep it may go is decided here, not by the host's recursion limit. Walked
        level by level so the depth needs no per-node bookkeeping."""
        count = 0
        depth = 0
        level = [x]
        try:
            while level:
                count += len(level)
                if count > WALK_NODES_MAX:
                    raise LimitExceeded(f"value has more than {WALK_NODES_MAX} nodes")
                nxt: list = []
                for y in level:
                    t = type(y)
                    if t is list or t is tuple:
                        nxt.extend(y)
                    elif t is dict:
                        nxt.extend(y)
                        nxt.extend(y.values())
                    elif t is str or t is bytes:
                        count += len(y) >> 5  # long strings compare in 32-byte steps
                    else:
                        continue
                    if len(nxt) + count > WALK_NODES_MAX:
                        raise LimitExceeded(f"value has more than {WALK_NODES_MAX} nodes")
                if nxt:
                    depth += 1
                    if depth > WALK_DEPTH_MAX:
                        raise LimitExceeded(f"value nested deeper than {WALK_DEPTH_MAX}")
                level = nxt
            return count
        finally:
            charge(count * WALK_NODE_GAS)

    def materialize(it: Any) -> list | tuple | str | bytes | dict | range:
        """An iterable's items, paid for per item; lazy iterators are drawn one by one."""
        t = type(it)
        if t in _SIZED:
            charge_items(len(it))
            return it
        if t not in _ITERABLE:
            raise TypeError(f"{t.__name__} is not iterable in contracts")
        out = []
        append = out.append
        n = 0
        for x in it:
            n += 1
            if n > ITEMS_MAX:
                raise LimitExceeded(f"more than {ITEMS_MAX} items")
            charge(ITEM_GAS)
            append(x)
        return out

    def key_ok(k: Any) -> Any:
        # Hashing a tuple is not cached and walks it: pay for its size.
        t = type(k)
        if t in _HASHABLE_CHEAP:
            return k
        if t is tuple:
            charge(TUPLE_KEY_GAS)
            tree_size(k)  # pays per node: about what hashing it costs
        return k

    def compare_cost(a: Any, b: Any) -> None:
        # Walking both (paid per node) bounds and pays for what C will compare: at most
        # the smaller of the two.
        tree_size(a)
        tree_size(b)

    # ---- control: gas, depth ----------------------------------------------------------

    def _abort_() -> None:
        g = gas_meter
        if g[0] < 0:
            raise OutOfGas("out of gas")
        raise CallDepthExceeded(f"more than {FUNCTION_DEPTH_MAX} nested contract function calls")

    def _tick_(cost: int) -> bool:
        g = gas_meter
        g[0] -= cost
        if g[0] < 0:
            raise OutOfGas("out of gas")
        return True

    # ---- arithmetic -------------------------------------------------------------------

    def _add_(a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is int and type(b) is int:
            r = a + b
            if -_INT_LIMIT < r < _INT_LIMIT:
                return r
            raise LimitExceeded(f"integer exceeds {INT_BITS_MAX} bits")
        if ta in _SEQ and type(b) is ta:
            n = len(a) + len(b)
            if ta is str or ta is bytes:
                charge_chars(n)
            else:
                charge_items(n)
            return a + b
        r = a + b  # Decimal, bool; or the natural TypeError
        if type(r) is int:
            _bits_ok(r)
        elif type(r) is Decimal:
            charge(DECIMAL_OP_GAS)
        return r

    def _sub_(a: Any, b: Any) -> Any:
        r = a - b
        if type(r) is int:
            if not -_INT_LIMIT < r < _INT_LIMIT:
                raise LimitExceeded(f"integer exceeds {INT_BITS_MAX} bits")
        elif type(r) is Decimal:
            charge(DECIMAL_OP_GAS)
        return r

    def repeat(seq: Any, n: Any) -> Any:
        if type(n) is not int and type(n) is not bool:
            raise TypeError("a sequence can only be repeated by an integer")
        total = len(seq) * n if n > 0 else 0
        if type(seq) is str or type(seq) is bytes:
            charge_chars(total)
        else:
            charge_items(total)
        return seq * n

    def _mul_(a: Any, b: Any) -> Any:
        ta = type(a)
        tb = type(b)
        if ta is int and tb is int:
            bits = a.bit_length() + b.bit_length()
            if bits > INT_BITS_MAX + 1:
                raise LimitExceeded(f"integer product exceeds {INT_BITS_MAX} bits")
            if bits > 128:  # schoolbook/Karatsuba at these sizes: ~ the product of the limbs
                charge(((a.bit_length() >> 6) + 1) * ((b.bit_length() >> 6) + 1) * LIMB_GAS)
            return _bits_ok(a * b)
        if ta in _SEQ:
            return repeat(a, b)
        if tb in _SEQ:
            return repeat(b, a)
        r = a * b
        if type(r) is int:
            _bits_ok(r)
        elif type(r) is Decimal:
            charge(DECIMAL_OP_GAS)
        return r

    def _pow_(a: Any, b: Any, mod: Any = None) -> Any:
        ta = type(a)
        if (ta is int or ta is bool) and (type(b) is int or type(b) is bool):
            if mod is not None:
                if type(mod) is not int:
                    raise TypeError("pow() modulus must be an integer")
                _bits_ok(a), _bits_ok(b), _bits_ok(mod)
                # Square-and-multiply: ~bits(b) products of bits(mod)-sized numbers, each
                # quadratic in limbs (measured by tests/bench/gas.py).
                limbs = (mod.bit_length() >> 6) + 1
                charge(limbs * limbs * ((b.bit_length() >> 6) + 1) * 40 * LIMB_GAS)
                return pow(a, b, mod)
            if b < 0:
                raise DeterminismError("a negative integer exponent would produce a float")
            if a in (0, 1, -1) or b == 0:
                return a ** b
            # |a| >= 2: a**b has at least (bits(a)-1)*b + 1 bits. Refuse before computing.
            if (a.bit_length() - 1) * b >= INT_BITS_MAX + 1 or b > INT_BITS_MAX:
                raise LimitExceeded(f"integer power exceeds {INT_BITS_MAX} bits")
            charge(((a.bit_length() * b) >> 6) * 4 * LIMB_GAS)  # squarings of a growing number
            return _bits_ok(a ** b)
        if mod is not None:
            raise TypeError("three-argument pow() needs integers")
        if type(a) is Decimal or type(b) is Decimal:
            # Bounded by the fixed context (Overflow is trapped); a fractional exponent runs
            # exp and ln at 34 digits, which costs ~50 µs (tests/bench/gas.py).
            integral = type(b) is int or type(b) is bool or (type(b) is Decimal and b == b.to_integral_value())
            charge(DECIMAL_POW_GAS if integral else DECIMAL_FRACTIONAL_POW_GAS)
            return a ** b
        raise TypeError(f"unsupported operand types for **: {ta.__name__} and {type(b).__name__}")

    def _lshift_(a: Any, b: Any) -> Any:
        if type(a) in (int, bool) and type(b) in (int, bool) and a and b > 0:
            if a.bit_length() + b > INT_BITS_MAX:
                raise LimitExceeded(f"integer shift exceeds {INT_BITS_MAX} bits")
        return a << b

    def _or_(a: Any, b: Any) -> Any:
        if type(a) is dict and type(b) is dict:
            charge_items(len(a) + len(b))
        return a | b

    def _mod_(a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is str or ta is bytes:
            return percent_format(a, b)
        if ta is int:
            if a.bit_length() > 128:
                charge(big_division_gas(a, b))
        elif ta is Decimal or type(b) is Decimal:
            charge(DECIMAL_OP_GAS)
        return a % b

    def _floordiv_(a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is int:
            if a.bit_length() > 128:
                charge(big_division_gas(a, b))
        elif ta is Decimal or type(b) is Decimal:
            charge(DECIMAL_OP_GAS)
        return a // b

    def big_division_gas(a: int, b: Any) -> int:
        # Long division: quadratic in limbs (tests/bench/gas.py).
        nb = b.bit_length() if type(b) is int else 64
        return ((a.bit_length() >> 6) + 1) * ((nb >> 6) + 1) * LIMB_GAS

    def plain_scalar(v: Any) -> Any:
        t = type(v)
        if t is Decimal:
            if not v.is_finite() or v.adjusted() > INT_STR_DIGITS_MAX:
                # %d of a Decimal converts it to int and then to text: bound it like int().
                raise LimitExceeded("Decimal too large to format with %")
            charge(max(0, v.adjusted()) * 2 * DECIMAL_DIGIT_GAS)  # both conversions
        if t in _HASHABLE_CHEAP:
            return v
        raise TypeError(f"cannot format {t.__name__}: format plain values only")

    def percent_format(fmt: Any, args: Any) -> Any:
        # Pay for scanning the format first: a bad one raises a catchable error after the
        # scan, and retrying that in a loop must not be free.
        charge(len(fmt) * BYTE_GAS)
        estimate = len(fmt)
        for m in _PCT_RE.finditer(fmt if type(fmt) is str else fmt.decode("latin-1")):
            _key, _flags, width, precision, conv = m.groups()
            if conv == "%":
                continue
            if width == "*" or precision == "*":
                raise LimitExceeded("'*' widths are not allowed in % formatting")
            if conv in ("r", "a"):
                raise DeterminismError("%r and %a are not allowed: repr can expose memory addresses")
            if conv in _FLOAT_TYPES:
                raise DeterminismError(f"%{conv} formats through floats; use Decimal and f-strings")
            if conv not in ("s", "d", "i", "u", "x", "X", "o", "c", "b"):
                raise ValueError(f"unsupported format character {conv!r}")
            for n in (width, precision):
                if n is not None and (len(n) > 6 or int(n) > FORMAT_WIDTH_CHARS_MAX):
                    raise LimitExceeded(f"format width exceeds {FORMAT_WIDTH_CHARS_MAX}")
            estimate += int(width or 0) + int(precision or 0) + 310  # 310 = digits of the largest int
        items = args if type(args) is tuple else (args.values() if type(args) is dict else (args,))
        for v in items:
            plain_scalar(v)
            if type(v) is str or type(v) is bytes:
                estimate += len(v)
        charge_chars(estimate)
        return fmt % args

    def _fmt_(value: Any, spec: str) -> str:
        t = type(value)
        if t not in _HASHABLE_CHEAP:
            value = _str(value)
            t = str
        if spec:
            m = _SPEC_RE.fullmatch(spec)
            if m is None:
                raise ValueError("invalid format spec")
            for n in (m.group("width"), m.group("precision")):
                if n is not None and (len(n) > 6 or int(n) > FORMAT_WIDTH_CHARS_MAX):
                    raise LimitExceeded(f"format width exceeds {FORMAT_WIDTH_CHARS_MAX}")
            ftype = m.group("type")
            if ftype == "n":
                raise DeterminismError("the 'n' format type depends on the host's locale")
            if ftype in _FLOAT_TYPES and t is not Decimal and ftype is not None:
                raise DeterminismError(f"format type {ftype!r} converts to float; use Decimal")
        elif t is int and value.bit_length() > INT_BITS_MAX + 1:  # pragma: no cover - ints are bounded
            raise LimitExceeded("integer too large to format")
        r = format(value, spec)
        charge_chars(len(r))
        return r

    # ---- comparisons ------------------------------------------------------------------

    # Comparing with a scalar is O(1) (or a type mismatch) whatever the other side is;
    # two containers or strings pay for their size first. `type(a) is not int` first: the
    # common case leaves after one test.
    def _eq_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in _CHEAP and type(b) not in _CHEAP:
            compare_cost(a, b)
        return a == b

    def _ne_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in _CHEAP and type(b) not in _CHEAP:
            compare_cost(a, b)
        return a != b

    def _lt_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in _CHEAP and type(b) not in _CHEAP:
            compare_cost(a, b)
        return a < b

    def _le_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in _CHEAP and type(b) not in _CHEAP:
            compare_cost(a, b)
        return a <= b

    def _gt_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in _CHEAP and type(b) not in _CHEAP:
            compare_cost(a, b)
        return a > b

    def _ge_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in _CHEAP and type(b) not in _CHEAP:
            compare_cost(a, b)
        return a >= b

    def _in_(item: Any, container: Any) -> bool:
        t = type(container)
        if t is dict:
            return key_ok(item) in container
        if t is Storage:
            return container.contains(item)
        if t is str or t is bytes:
            if type(item) is t:
                charge((len(container) + len(item)) // SCAN_CHARS_PER_GAS)
            return item in container
        if t is list or t is tuple:
            per = 1 if type(item) in _CHEAP else tree_size(item)
            charge(len(container) * per * ITEM_GAS)
            return item in container
        if t is range:
            # A non-int is searched linearly by CPython (range(10**12) would hang); the
            # answer is always False, so give it directly.
            return (type(item) is int or type(item) is bool) and item in container
        raise TypeError(f"'in' is not supported for {t.__name__}")

    # ---- items, attributes, iteration -------------------------------------------------

    def _getitem_(obj: Any, key: Any) -> Any:
        t = type(obj)
        if t is dict:
            if type(key) is tuple:
                key_ok(key)
            return obj[key]
        if t is Storage:
            return obj.read(key)
        if t is list or t is tuple or t is str or t is bytes:
            if type(key) is slice:
                r = obj[key]
                if t is str or t is bytes:
                    charge(len(r) * BYTE_GAS)
                else:
                    charge(len(r) * ITEM_GAS)
                return r
            return obj[key]
        if t is range:
            return obj[key]
        raise TypeError(f"{t.__name__} is not subscriptable in contracts")

    def _setitem_(value: Any, obj: Any, key: Any) -> None:
        t = type(obj)
        if t is dict:
            if type(key) not in _HASHABLE_CHEAP:
                key_ok(key)
            if len(obj) >= ITEMS_MAX and key not in obj:
                raise LimitExceeded(f"dict exceeds {ITEMS_MAX} items")
            charge(ITEM_GAS)
            obj[key] = value
        elif t is Storage:
            obj.write(key, value)
        elif t is list:
            if type(key) is slice:
                new = materialize(value)
                if len(obj) + len(new) > ITEMS_MAX:
                    raise LimitExceeded(f"list exceeds {ITEMS_MAX} items")
                obj[key] = new
            else:
                obj[key] = value
        else:
            raise TypeError(f"items of {t.__name__} cannot be assigned (only dict, list, storage)")

    def _delitem_(obj: Any, key: Any) -> None:
        t = type(obj)
        if t is Storage:
            obj.remove(key)
        elif t is dict or t is list:
            if type(key) is slice:
                charge(len(obj) * ITEM_GAS)
            del obj[key]
        else:
            raise TypeError(f"items of {t.__name__} cannot be deleted")

    def _write_(obj: Any) -> Any:
        # Item writes are rewritten to _setitem_ and attribute writes do not compile; this
        # exists so a missed rewrite fails closed.
        raise TypeError("writes are allowed to dict, list and storage items only")

    def _getiter_(obj: Any) -> Any:
        if type(obj) in _ITERABLE:
            return obj
        raise TypeError(f"{type(obj).__name__} is not iterable in contracts")

    def _unpack_sequence_(it: Any, spec: dict, getiter: Any = None) -> list:
        # At most n+1 items are drawn: `a, b = range(10**12)` fails at once.
        n = spec["min_len"]
        seq = list(islice(_getiter_(it), n + 1))
        if len(seq) != n:
            raise ValueError(f"expected {n} values to unpack")
        for idx, child in spec["childs"]:
            seq[idx] = _unpack_sequence_(seq[idx], child)
        return seq

    def _iter_unpack_sequence_(it: Any, spec: dict, getiter: Any = None) -> Any:
        for ob in _getiter_(it):
            yield _unpack_sequence_(ob, spec)

    def _key_(k: Any) -> Any:
        return key_ok(k)

    # ---- attribute allow-lists --------------------------------------------------------

    def scan_method(name: str, ascii_only: bool = False, whitespace_default: bool = False) -> Callable:
        """A str/bytes method that scans its input and may produce new text: pay both."""

        def factory(s: Any) -> Callable:
            method = getattr(s, name)

            def call(*args: Any, **kwargs: Any) -> Any:
                # split()/strip() with no separator (or None) use the Unicode whitespace table.
                default_ws = whitespace_default and (not args or args[0] is None) and \
                    kwargs.get("sep", kwargs.get("chars")) is None
                if (ascii_only or default_ws) and type(s) is str and not s.isascii():
                    raise DeterminismError(f"str.{name}() on non-ASCII text depends on the Python release")
                for a in args:
                    if type(a) is str or type(a) is bytes:
                        charge(len(a) // SCAN_CHARS_PER_GAS)
                charge(len(s) // SCAN_CHARS_PER_GAS)
                return charge_result(method(*args, **kwargs))

            return call

        return factory

    def width_method(name: str) -> Callable:
        def factory(s: Any) -> Callable:
            method = getattr(s, name)

            def call(width: Any, *args: Any) -> Any:
                if type(width) is not int:
                    raise TypeError("width must be an integer")
                charge_chars(max(width, len(s)))
                return method(width, *args)

            return call

        return factory

    def replace_method(s: Any) -> Callable:
        def replace(old: Any, new: Any, count: int = -1) -> Any:
            if type(old) is not type(s) or type(new) is not type(s) or type(count) is not int:
                raise TypeError("replace() needs two strings of the same type and an int count")
            charge(len(s) // SCAN_CHARS_PER_GAS)  # the count() scan below
            occurrences = len(s) + 1 if not old else s.count(old)
            if count >= 0:
                occurrences = min(occurrences, count)
            charge_chars(len(s) + occurrences * max(0, len(new) - len(old)))
            return s.replace(old, new, count)

        return replace

    def join_method(s: Any) -> Callable:
        def join(iterable: Any) -> Any:
            items = materialize(iterable)
            total = len(s) * max(0, len(items) - 1)
            for x in items:
                if type(x) is not type(s):
                    raise TypeError("join() items must all be of the separator's type")
                total += len(x)
            charge_chars(total)
            return s.join(items)

        return join

    def encode_method(s: str) -> Callable:
        def encode(encoding: str = "utf-8") -> bytes:
            if encoding not in ("utf-8", "utf8"):
                raise ValueError("only utf-8 is supported")
            r = s.encode("utf-8")
            charge_chars(len(r))
            return r

        return encode

    def decode_method(b: bytes) -> Callable:
        def decode(encoding: str = "utf-8") -> str:
            if encoding not in ("utf-8", "utf8"):
                raise ValueError("only utf-8 is supported")
            charge_chars(len(b))
            return b.decode("utf-8")

        return decode

    def hex_method(b: bytes) -> Callable:
        def hex_() -> str:
            charge_chars(2 * len(b))
            return b.hex()

        return hex_

    def to_bytes_method(i: int) -> Callable:
        def to_bytes(length: int, byteorder: str = "big", *, signed: bool = False) -> bytes:
            if type(length) is not int or not 0 <= length <= 256:
                raise LimitExceeded("to_bytes length must be 0..256")
            charge(length * BYTE_GAS)
            return i.to_bytes(length, byteorder, signed=signed)

        return to_bytes

    def decimal_sqrt(d: Decimal) -> Callable:
        def sqrt() -> Decimal:
            charge(DECIMAL_SQRT_GAS)
            return d.sqrt()

        return sqrt

    def list_method(name: str) -> Callable:
        def factory(lst: list) -> Callable:
            if name == "append":

                def append(x: Any) -> None:
                    if len(lst) >= ITEMS_MAX:
                        raise LimitExceeded(f"list exceeds {ITEMS_MAX} items")
                    charge(ITEM_GAS)
                    lst.append(x)

                return append
            if name == "extend":

                def extend(it: Any) -> None:
                    new = materialize(it)
                    if len(lst) + len(new) > ITEMS_MAX:
                        raise LimitExceeded(f"list exceeds {ITEMS_MAX} items")
                    lst.extend(new)

                return extend
            if name == "insert":

                def insert(i: int, x: Any) -> None:
                    if len(lst) >= ITEMS_MAX:
                        raise LimitExceeded(f"list exceeds {ITEMS_MAX} items")
                    charge(ITEM_GAS + (len(lst) >> 4))
                    lst.insert(i, x)

                return insert
            if name in ("index", "count", "remove"):
                method = getattr(lst, name)

                def search(x: Any, *args: Any) -> Any:
                    per = 1 if type(x) in _CHEAP else tree_size(x)
                    charge(len(lst) * per * ITEM_GAS)
                    return method(x, *args)

                return search
            if name == "sort":

                def sort(*, key: Any = None, reverse: bool = False) -> None:
                    charge(sort_cost(lst))
                    lst.sort(key=checked_key(key, len(lst)), reverse=bool(reverse))

                return sort
            method = getattr(lst, name)  # pop, reverse, clear, copy

            def other(*args: Any) -> Any:
                charge(ITEM_GAS + (len(lst) >> 4) * (name != "pop"))
                if name == "copy":
                    charge_items(len(lst))
                return method(*args)

            return other

        return factory

    def checked_key(key: Any, n: int) -> Any:
        """Wrap a sort key: keys are compared in C about log2(n) times each, so a key that
        is a large (or DAG-shaped) value is paid for by its size before CPython sees it."""
        if key is None:
            return None
        rounds = max(1, n.bit_length())

        def wrapped(x: Any) -> Any:
            k = key(x)
            if type(k) not in _CHEAP:
                charge(tree_size(k) * rounds * ITEM_GAS)
            return k

        return wrapped

    def sort_cost(items: Any) -> int:
        n = len(items)
        if n > ITEMS_MAX:
            raise LimitExceeded(f"{n} items exceeds the limit of {ITEMS_MAX}")
        per = max((1 if type(x) in _CHEAP else tree_size(x) for x in items), default=1)
        return n * max(1, n.bit_length()) * per * ITEM_GAS

    def dict_method(name: str) -> Callable:
        def factory(d: dict) -> Callable:
            if name == "get":

                def get(k: Any, default: Any = None) -> Any:
                    return d.get(key_ok(k), default)

                return get
            if name in ("keys", "values", "items"):
                # Lists, not views: views support & | - ^ and would hand out sets.
                def view() -> list:
                    charge_items(len(d))
                    if name == "keys":
                        return list(d)
                    if name == "values":
                        return list(d.values())
                    return list(d.items())

                return view
            if name == "pop":

                def pop(k: Any, *default: Any) -> Any:
                    return d.pop(key_ok(k), *default)

                return pop
            if name == "setdefault":

                def setdefault(k: Any, default: Any = None) -> Any:
                    if len(d) >= ITEMS_MAX and k not in d:
                        raise LimitExceeded(f"dict exceeds {ITEMS_MAX} items")
                    charge(ITEM_GAS)
                    return d.setdefault(key_ok(k), default)

                return setdefault
            if name == "update":

                def update(other: Any) -> None:
                    if type(other) is not dict:
                        raise TypeError("update() takes a dict")
                    if len(d) + len(other) > ITEMS_MAX:
                        raise LimitExceeded(f"dict exceeds {ITEMS_MAX} items")
                    charge_items(len(other))
                    d.update(other)

                return update
            if name == "copy":

                def copy() -> dict:
                    charge_items(len(d))
                    return d.copy()

                return copy
            return d.clear  # clear

        return factory

    # `plain` marks an attribute read as is (data fields, methods that charge themselves).
    plain = None

    str_attrs: dict[str, Callable] = {
        "join": join_method,
        "replace": replace_method,
        "encode": encode_method,
        "ljust": width_method("ljust"),
        "rjust": width_method("rjust"),
        "center": width_method("center"),
        "zfill": width_method("zfill"),
    }
    for n in ("startswith", "endswith", "find", "rfind", "index", "count", "removeprefix", "removesuffix",
              "partition", "rpartition", "isascii"):
        str_attrs[n] = scan_method(n)
    for n in ("lower", "upper", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper"):
        str_attrs[n] = scan_method(n, ascii_only=True)
    for n in ("strip", "lstrip", "rstrip", "split", "rsplit"):
        str_attrs[n] = scan_method(n, whitespace_default=True)
    bytes_attrs: dict[str, Callable] = {"hex": hex_method, "decode": decode_method, "join": join_method}
    for n in ("startswith", "endswith", "find", "count", "removeprefix", "removesuffix"):
        bytes_attrs[n] = scan_method(n)
    list_attrs = {n: list_method(n) for n in
                  ("append", "extend", "insert", "pop", "remove", "index", "count", "reverse", "sort", "clear", "copy")}
    dict_attrs = {n: dict_method(n) for n in
                  ("get", "keys", "values", "items", "pop", "setdefault", "update", "copy", "clear")}

    attrs: dict[type, dict[str, Callable]] = {
        str: str_attrs,
        bytes: bytes_attrs,
        list: list_attrs,
        dict: dict_attrs,
        int: {"bit_length": plain, "to_bytes": to_bytes_method},
        Decimal: {**dict.fromkeys(("quantize", "is_signed", "is_zero", "to_integral_value", "adjusted"), plain),
                  "sqrt": decimal_sqrt},
        CallContext: dict.fromkeys(("sender", "contract", "block_height", "block_timestamp_ms", "tx_hash"), plain),
        Storage: {"get": plain},
        ContractError: {"message": plain},
        CallError: {"message": plain},
    }
    _missing = object()

    def _getattr_(obj: Any, name: str, default: Any = None) -> Any:
        table = attrs.get(type(obj))
        if table is not None:
            f = table.get(name, _missing)
            if f is None:
                return getattr(obj, name)
            if f is not _missing:
                return f(obj)
        raise AttributeError(f"{type(obj).__name__}.{name} is not available to contracts")

    # ---- curated builtins -------------------------------------------------------------

    def _str(x: Any = "") -> str:
        t = type(x)
        if t is str:
            return x
        if t is int or t is bool or t is _NoneType or t is Decimal:
            r = str(x)
            charge_chars(len(r))
            return r
        if t is bytes or t is list or t is tuple or t is dict:
            # repr of plain values is the same everywhere; bound its size (and the C
            # recursion that builds it) before building it. Walked like tree_size.
            total = 0
            count = 0
            depth = 0
            level = [x]
            try:
                while level:
                    count += len(level)
                    if count > WALK_NODES_MAX:
                        raise LimitExceeded(f"value has more than {WALK_NODES_MAX} nodes")
                    nxt: list = []
                    for y in level:
                        ty = type(y)
                        if ty is list or ty is tuple:
                            nxt.extend(y)
                            total += 2 + 2 * len(y)
                        elif ty is dict:
                            nxt.extend(y)
                            nxt.extend(y.values())
                            total += 2 + 4 * len(y)
                        elif ty is str or ty is bytes:
                            total += 4 * len(y) + 3
                        elif ty in _CHEAP:
                            total += 330
                        else:
                            raise TypeError(f"cannot convert {ty.__name__} to str")
                        if len(nxt) + count > WALK_NODES_MAX:
                            raise LimitExceeded(f"value has more than {WALK_NODES_MAX} nodes")
                    if nxt:
                        depth += 1
                        if depth > WALK_DEPTH_MAX:
                            raise LimitExceeded(f"value nested deeper than {WALK_DEPTH_MAX}")
                    level = nxt
            finally:
                charge(count * WALK_NODE_GAS)
            charge_chars(total)
            return str(x)
        if isinstance(x, ContractError):
            return x.message
        if isinstance(x, Exception):
            return t.__name__  # CPython's texts change between releases
        raise TypeError(f"cannot convert {t.__name__} to str")

    def _int(x: Any = 0, base: Any = None) -> int:
        t = type(x)
        if t is int:
            return x
        if t is bool:
            return int(x)
        if t is str:
            if base is not None and base not in (2, 8, 10, 16):
                raise ValueError("base must be 2, 8, 10 or 16")
            if len(x) > INT_STR_DIGITS_MAX or not x.isascii():
                raise LimitExceeded(f"int() takes at most {INT_STR_DIGITS_MAX} ASCII characters")
            charge(len(x) * DECIMAL_DIGIT_GAS)  # decimal parsing is quadratic in CPython
            return _bits_ok(int(x, 10 if base is None else base))
        if t is Decimal:
            if not x.is_finite() or x.adjusted() > INT_STR_DIGITS_MAX:
                raise LimitExceeded("Decimal too large for int()")
            charge(max(0, x.adjusted()) * DECIMAL_DIGIT_GAS)
            return _bits_ok(int(x))
        raise TypeError(f"int() cannot convert {t.__name__}")

    def _bytes(x: Any = b"", encoding: Any = None) -> bytes:
        t = type(x)
        if t is bytes:
            return x
        if t is str:
            if encoding not in ("utf-8", "utf8"):
                raise ValueError("bytes(str, 'utf-8') is the only text encoding")
            r = x.encode("utf-8")
            charge_chars(len(r))
            return r
        if t is int:
            if not 0 <= x <= STR_CHARS_MAX:
                raise LimitExceeded(f"bytes({x}) exceeds {STR_CHARS_MAX}")
            charge_chars(x)
            return bytes(x)
        items = materialize(x)
        return bytes(items)

    def _list(it: Any = ()) -> list:
        items = materialize(it)
        return list(items)

    def _tuple(it: Any = ()) -> tuple:
        items = materialize(it)
        return tuple(items)

    def _dict(x: Any = None, **kwargs: Any) -> dict:
        if x is None:
            out = {}
        elif type(x) is dict:
            charge_items(len(x))
            out = dict(x)
        else:
            out = {}
            for pair in materialize(x):
                charge(PAIR_GAS)
                k, v = _unpack_sequence_(pair, {"min_len": 2, "childs": ()})
                out[key_ok(k)] = v
        if kwargs:
            charge_items(len(kwargs))
            out.update(kwargs)
        return out

    def _len(x: Any) -> int:
        if type(x) in _SIZED:
            return len(x)
        raise TypeError(f"len() of {type(x).__name__} is not available")

    def _sorted(it: Any, *, key: Any = None, reverse: bool = False) -> list:
        items = list(materialize(it))
        charge(sort_cost(items))
        items.sort(key=checked_key(key, len(items)), reverse=bool(reverse))
        return items

    def extreme(pick: Callable, args: tuple, key: Any, default: Any, has_default: bool) -> Any:
        charge(MIN_MAX_GAS)
        items = materialize(args[0]) if len(args) == 1 else args
        charge(3 * sort_cost(items) // max(1, len(items).bit_length()))
        key = checked_key(key, 2)
        if has_default:
            return pick(items, key=key, default=default) if key else pick(items, default=default)
        return pick(items, key=key) if key else pick(items)

    _nodefault = object()

    def _min(*args: Any, key: Any = None, default: Any = _nodefault) -> Any:
        return extreme(min, args, key, default, default is not _nodefault)

    def _max(*args: Any, key: Any = None, default: Any = _nodefault) -> Any:
        return extreme(max, args, key, default, default is not _nodefault)

    def _sum(it: Any, start: Any = 0) -> Any:
        if type(start) not in (int, Decimal):
            raise TypeError("sum() adds numbers only; start must be int or Decimal")
        items = materialize(it)
        charge(len(items) * ITEM_GAS)  # the type check below, in Python
        for x in items:
            if type(x) not in (int, bool, Decimal):
                raise TypeError("sum() adds numbers only")
        r = sum(items, start)
        if type(r) is int:
            _bits_ok(r)
        else:
            charge(len(items) * DECIMAL_OP_GAS)
        return r

    def _any(it: Any) -> bool:
        return any(materialize(it))

    def _all(it: Any) -> bool:
        return all(materialize(it))

    def _range(*args: Any) -> range:
        for a in args:
            if type(a) is not int and type(a) is not bool:
                raise TypeError("range() takes integers")
        return range(*args)

    def _enumerate(it: Any, start: int = 0) -> enumerate:
        if type(start) is not int:
            raise TypeError("enumerate() start must be an integer")
        return enumerate(_getiter_(it), start)

    def _zip(*its: Any) -> zip:
        return zip(*(_getiter_(i) for i in its))

    def _reversed(seq: Any) -> Any:
        if type(seq) in (list, tuple, str, bytes, range, dict):
            return reversed(seq)
        raise TypeError(f"reversed() of {type(seq).__name__} is not available")

    def _divmod(a: Any, b: Any) -> tuple:
        if type(a) is int and a.bit_length() > 128:
            charge(big_division_gas(a, b))
        return divmod(a, b)

    def _abs(x: Any) -> Any:
        if type(x) in (int, bool, Decimal):
            return abs(x)
        raise TypeError("abs() takes a number")

    def _chr(i: int) -> str:
        if type(i) is not int:
            raise TypeError("chr() takes an integer")
        return chr(i)

    def _ord(c: Any) -> int:
        if type(c) not in (str, bytes):
            raise TypeError("ord() takes a character")
        return ord(c)

    def _hex(i: int) -> str:
        if type(i) is not int:
            raise TypeError("hex() takes an integer")
        r = hex(i)
        charge_chars(len(r))
        return r

    def _bool(x: Any = False) -> bool:
        return bool(x)

    def _decimal(x: Any = "0") -> Decimal:
        t = type(x)
        if t is Decimal:
            return x
        if t is int or t is bool:
            charge((x.bit_length() >> 2) * DECIMAL_DIGIT_GAS)  # ~ its decimal digits
            return DECIMAL_CONTEXT.create_decimal(int(x))
        if t is str:
            if len(x) > DECIMAL_STR_CHARS_MAX or not x.isascii():
                raise LimitExceeded(f"Decimal() takes at most {DECIMAL_STR_CHARS_MAX} ASCII characters")
            charge(len(x) * DECIMAL_DIGIT_GAS)
            d = DECIMAL_CONTEXT.create_decimal(x)
            if not d.is_finite():
                raise ValueError("Decimal must be finite")
            return d
        raise TypeError(f"Decimal() cannot convert {t.__name__}")

    def decimal_div(a: Any, b: Any) -> Decimal:
        """a / b as a Decimal, rounded by the fixed context (the only division that rounds)."""
        for v in (a, b):
            if type(v) not in (int, bool, Decimal):
                raise TypeError("decimal_div() takes int or Decimal operands")
        charge(DECIMAL_DIV_GAS)
        return DECIMAL_CONTEXT.divide(_decimal(a), _decimal(b))

    def int_from_bytes(data: bytes, byteorder: str = "big", *, signed: bool = False) -> int:
        if type(data) is not bytes or len(data) > INT_BITS_MAX // 8:
            raise LimitExceeded(f"int_from_bytes takes at most {INT_BITS_MAX // 8} bytes")
        return int.from_bytes(data, byteorder, signed=bool(signed))

    real_types: dict[Any, Any] = {
        _int: int, _str: str, _bytes: bytes, _bool: bool, _list: list, _dict: dict, _tuple: tuple,
        _decimal: Decimal,
    }

    def _isinstance(x: Any, types: Any) -> bool:
        if type(types) is tuple:
            charge_items(len(types) * 8)  # one Python-level check per type
            return any(_isinstance(x, t) for t in types)
        real = real_types.get(types, types)
        if not (isinstance(real, type) and (real in real_types.values() or issubclass(real, Exception))):
            raise TypeError("isinstance() takes a builtin type or an exception class")
        return isinstance(x, real)

    # ---- chain services ---------------------------------------------------------------

    def require(cond: Any, message: Any = "requirement failed") -> None:
        if not cond:
            charge(RAISE_NODE_GAS)  # what a `raise` costs
            raise ContractError(message)

    def emit(name: str, **fields: Any) -> None:
        # Hot path (one event per payment): checks are inlined, the walkers only run for
        # fields that are not all scalars.
        frame = frames[-1]
        if frame[2]:
            raise PermissionError("view calls cannot emit events")
        if type(name) is not str or not 0 < len(name) <= EVENT_NAME_CHARS_MAX:
            raise ValueError(f"event name must be 1..{EVENT_NAME_CHARS_MAX} characters")
        if not text_ok(name):
            raise UnicodeEncodeError("utf-8", name, 0, len(name), "event name is not valid UTF-8 text")
        if rt.events_total >= EVENTS_MAX:
            raise LimitExceeded(f"more than {EVENTS_MAX} events in one transaction")
        flat = len(fields) < VALUE_ITEMS_MAX
        for key, v in fields.items():
            if len(key) > EVENT_NAME_CHARS_MAX:
                raise ValueError(f"event field names are at most {EVENT_NAME_CHARS_MAX} characters")
            t = type(v)
            if t is int:
                if not INT64_MIN <= v <= UINT64_MAX:
                    flat = False
            elif t is not str and t is not bytes and t is not bool and v is not None:
                flat = False
        if not flat:
            fields = to_receipt_value(fields, "event fields", gas_meter)
        size = len(pack(fields))
        if size > EVENT_BYTES_MAX:
            raise LimitExceeded(f"event of {size} bytes exceeds {EVENT_BYTES_MAX}")
        if rt.event_bytes + size > TX_EVENT_BYTES_MAX:
            raise LimitExceeded(f"events of one transaction exceed {TX_EVENT_BYTES_MAX} bytes")
        g = gas_meter
        g[0] -= EVENT_GAS + EVENT_BYTE_GAS * size
        if g[0] < 0:
            raise OutOfGas("out of gas")
        rt.events_total += 1
        rt.event_bytes += size
        frame[1].append(_new_tuple(Event, (frame[0], name, fields)))  # make_event, inlined

    def _emit_(name: str, fields: dict) -> None:
        # `emit("Name", k=v, ...)` with a constant name and explicit field names, as the
        # compiler rewrites it: `_emit_("Name", {"k": v, ...})`. The name and the field names
        # were checked at compile time; `fields` is a fresh dict no one else holds. The
        # same checks as `emit` otherwise, in the same order, with the same gas.
        frame = frames[-1]
        if frame[2]:
            raise PermissionError("view calls cannot emit events")
        count = rt.events_total
        if count >= EVENTS_MAX:
            raise LimitExceeded(f"more than {EVENTS_MAX} events in one transaction")
        # Fewer than VALUE_ITEMS_MAX fields (the compiler checked): flat if all are scalars.
        for v in fields.values():
            if type(v) not in _EVENT_SCALARS:
                fields = to_receipt_value(fields, "event fields", gas_meter)
                size = len(pack(fields))
                break
        else:
            try:
                size = len(pack(fields))
            except OverflowError:  # an int outside 64 bits: the walker raises its ValueError
                fields = to_receipt_value(fields, "event fields", gas_meter)
                size = len(pack(fields))
        if size > EVENT_BYTES_MAX:
            raise LimitExceeded(f"event of {size} bytes exceeds {EVENT_BYTES_MAX}")
        total = rt.event_bytes + size
        if total > TX_EVENT_BYTES_MAX:
            raise LimitExceeded(f"events of one transaction exceed {TX_EVENT_BYTES_MAX} bytes")
        g = gas_meter
        g[0] -= EVENT_GAS + EVENT_BYTE_GAS * size
        if g[0] < 0:
            raise OutOfGas("out of gas")
        rt.events_total = count + 1
        rt.event_bytes = total
        frame[1].append(_new_tuple(Event, (frame[0], name, fields)))  # make_event, inlined

    if _speedups is not None:
        # The same as the `_emit_` above for the common case, in C; it calls that one for
        # everything else (tests/contracts/test_speedups.py holds the two together).
        _emit_ = _speedups.Emitter(rt, frames, gas_meter, pack, Event, _emit_, EVENTS_MAX, EVENT_BYTES_MAX,
                                   TX_EVENT_BYTES_MAX, EVENT_GAS, EVENT_BYTE_GAS)

    def hash_(data: bytes) -> bytes:
        if type(data) is not bytes:
            raise TypeError("hash() takes bytes")
        charge(HASH_GAS + HASH_WORD_GAS * ((len(data) + 31) >> 5))
        return rt.suite.hash(data)

    def verify_signature(pub: bytes, msg: bytes, sig: bytes) -> bool:
        if type(pub) is not bytes or type(msg) is not bytes or type(sig) is not bytes:
            raise TypeError("verify_signature() takes bytes")
        charge(VERIFY_GAS + HASH_WORD_GAS * ((len(msg) + 31) >> 5))
        return rt.suite.verify(pub, msg, sig) is True

    def call(address: bytes, method: str, *args: Any) -> Any:
        if type(address) is not bytes or type(method) is not str:
            raise TypeError("call(address: bytes, method: str, *args)")
        return rt._cross_call(address, method, args)

    return {
        # guards (names RestrictedPython and our guard pass generate)
        "_getattr_": _getattr_, "_getitem_": _getitem_, "_write_": _write_, "_getiter_": _getiter_,
        "_iter_unpack_sequence_": _iter_unpack_sequence_, "_unpack_sequence_": _unpack_sequence_,
        "_setitem_": _setitem_, "_delitem_": _delitem_, "_key_": _key_, "_fmt_": _fmt_,
        "_add_": _add_, "_sub_": _sub_, "_mul_": _mul_, "_pow_": _pow_, "_lshift_": _lshift_,
        "_mod_": _mod_, "_floordiv_": _floordiv_, "_or_": _or_,
        "_eq_": _eq_, "_ne_": _ne_, "_lt_": _lt_, "_le_": _le_, "_gt_": _gt_, "_ge_": _ge_, "_in_": _in_,
        "_abort_": _abort_, "_tick_": _tick_, "_emit_": _emit_,
        # for the compiler's inlined int fast paths only (unreachable by name from contracts)
        "_type_": type, "_int_": int,
        # language
        "None": None, "True": True, "False": False,
        "len": _len, "abs": _abs, "min": _min, "max": _max, "sum": _sum, "sorted": _sorted,
        "range": _range, "enumerate": _enumerate, "zip": _zip, "reversed": _reversed,
        "any": _any, "all": _all, "divmod": _divmod, "pow": _pow_, "isinstance": _isinstance,
        "int": _int, "str": _str, "bytes": _bytes, "bool": _bool, "list": _list, "dict": _dict,
        "tuple": _tuple, "chr": _chr, "ord": _ord, "hex": _hex, "int_from_bytes": int_from_bytes,
        "Decimal": _decimal, "decimal_div": decimal_div,
        "Exception": Exception, "ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError,
        "IndexError": IndexError, "LookupError": LookupError, "ArithmeticError": ArithmeticError,
        "ZeroDivisionError": ZeroDivisionError, "AttributeError": AttributeError,
        "PermissionError": PermissionError,
        # chain
        "ContractError": ContractError, "CallError": CallError, "require": require, "emit": emit,
        "hash": hash_, "verify_signature": verify_signature, "call": call,
    }

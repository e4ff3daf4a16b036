"""The curated builtins contracts call by name (`str`, `int`, `len`, `sorted`, `Decimal`...)
and the fixed Decimal context they compute in.

Each one takes plain values only, bounds its input and pays for what it produces before
producing it; conversions that would print an address or go through a float are refused.
"""

from __future__ import annotations

import decimal
from decimal import Decimal
from typing import Any, Callable

from contracts.engine.builtins_accounting import CHEAP, SIZED, Accounting, big_division_gas, bits_ok
from contracts.engine.errors import ContractError, LimitExceeded
from contracts.engine.gas import (
    DECIMAL_DIGIT_GAS,
    DECIMAL_DIV_GAS,
    DECIMAL_OP_GAS,
    DECIMAL_STR_CHARS_MAX,
    INT_BITS_MAX,
    INT_STR_DIGITS_MAX,
    ITEM_GAS,
    MIN_MAX_GAS,
    PAIR_GAS,
    STR_CHARS_MAX,
    WALK_DEPTH_MAX,
    WALK_NODE_GAS,
    WALK_NODES_MAX,
)

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

_NoneType = type(None)


def curated(acct: Accounting, getiter: Callable[[Any], Any], unpack_sequence: Callable[..., list]) -> dict[str, Any]:
    """The builtins by name, with the exception types contracts may raise and catch.
    `getiter` and `unpack_sequence` are the iteration guards (`_getiter_`,
    `_unpack_sequence_`), which `enumerate`, `zip` and `dict` go through."""
    charge = acct.charge
    charge_items = acct.charge_items
    charge_chars = acct.charge_chars
    materialize = acct.materialize
    key_ok = acct.key_ok
    checked_key = acct.checked_key
    sort_cost = acct.sort_cost

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
                        elif ty in CHEAP:
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
            return bits_ok(int(x, 10 if base is None else base))
        if t is Decimal:
            if not x.is_finite() or x.adjusted() > INT_STR_DIGITS_MAX:
                raise LimitExceeded("Decimal too large for int()")
            charge(max(0, x.adjusted()) * DECIMAL_DIGIT_GAS)
            return bits_ok(int(x))
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
                k, v = unpack_sequence(pair, {"min_len": 2, "childs": ()})
                out[key_ok(k)] = v
        if kwargs:
            charge_items(len(kwargs))
            out.update(kwargs)
        return out

    def _len(x: Any) -> int:
        if type(x) in SIZED:
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
            bits_ok(r)
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
        return enumerate(getiter(it), start)

    def _zip(*its: Any) -> zip:
        return zip(*(getiter(i) for i in its))

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

    return {
        "None": None, "True": True, "False": False,
        "len": _len, "abs": _abs, "min": _min, "max": _max, "sum": _sum, "sorted": _sorted,
        "range": _range, "enumerate": _enumerate, "zip": _zip, "reversed": _reversed,
        "any": _any, "all": _all, "divmod": _divmod, "isinstance": _isinstance,
        "int": _int, "str": _str, "bytes": _bytes, "bool": _bool, "list": _list, "dict": _dict,
        "tuple": _tuple, "chr": _chr, "ord": _ord, "hex": _hex, "int_from_bytes": int_from_bytes,
        "Decimal": _decimal, "decimal_div": decimal_div,
        "Exception": Exception, "ValueError": ValueError, "TypeError": TypeError, "KeyError": KeyError,
        "IndexError": IndexError, "LookupError": LookupError, "ArithmeticError": ArithmeticError,
        "ZeroDivisionError": ZeroDivisionError, "AttributeError": AttributeError,
        "PermissionError": PermissionError,
    }

"""The contract builtins for arithmetic and formatting: the guards the compiler puts on
`+ - * ** << | % //`, `%` formatting and f-string fields.

Integers stay within INT_BITS_MAX bits, refused before the result is computed where its
size is known in advance; big-number products, powers and divisions pay by limbs, Decimal
operations per operation. Formatting is refused where it would go through a float or
depend on the host's locale, and pays for the text it produces.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Callable

from contracts.engine.builtins_accounting import HASHABLE_CHEAP, INT_LIMIT, Accounting, big_division_gas, bits_ok
from contracts.engine.errors import DeterminismError, LimitExceeded
from contracts.engine.gas import (
    BYTE_GAS,
    DECIMAL_DIGIT_GAS,
    DECIMAL_FRACTIONAL_POW_GAS,
    DECIMAL_OP_GAS,
    DECIMAL_POW_GAS,
    FORMAT_WIDTH_CHARS_MAX,
    INT_BITS_MAX,
    INT_STR_DIGITS_MAX,
    LIMB_GAS,
)

_SEQ = (str, bytes, list, tuple)
_FLOAT_TYPES = frozenset("eEfFgG%")

# [[fill]align][sign][z][#][0][width][grouping][.precision][type]
_SPEC_RE = re.compile(
    r"(?:(?P<fill>.)?(?P<align>[<>=^]))?(?P<sign>[-+ ])?(?P<z>z)?(?P<alt>#)?(?P<zero>0)?"
    r"(?P<width>\d+)?(?P<grouping>[_,])?(?:\.(?P<precision>\d+))?(?P<type>[bcdeEfFgGnosxX%])?",
    re.S,
)
# printf-style: %[(key)][flags][width][.precision][length]type
_PCT_RE = re.compile(r"%(?:\(([^)]*)\))?([#0\- +]*)(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.?)", re.S)


def arithmetic(acct: Accounting, to_str: Callable[[Any], str]) -> dict[str, Any]:
    """The arithmetic and formatting guards; `to_str` is the curated `str()`, which f-string
    fields of non-scalar values go through."""
    charge = acct.charge
    charge_items = acct.charge_items
    charge_chars = acct.charge_chars

    def _add_(a: Any, b: Any) -> Any:
        ta = type(a)
        if ta is int and type(b) is int:
            r = a + b
            if -INT_LIMIT < r < INT_LIMIT:
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
            bits_ok(r)
        elif type(r) is Decimal:
            charge(DECIMAL_OP_GAS)
        return r

    def _sub_(a: Any, b: Any) -> Any:
        r = a - b
        if type(r) is int:
            if not -INT_LIMIT < r < INT_LIMIT:
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
            return bits_ok(a * b)
        if ta in _SEQ:
            return repeat(a, b)
        if tb in _SEQ:
            return repeat(b, a)
        r = a * b
        if type(r) is int:
            bits_ok(r)
        elif type(r) is Decimal:
            charge(DECIMAL_OP_GAS)
        return r

    def _pow_(a: Any, b: Any, mod: Any = None) -> Any:
        ta = type(a)
        if (ta is int or ta is bool) and (type(b) is int or type(b) is bool):
            if mod is not None:
                if type(mod) is not int:
                    raise TypeError("pow() modulus must be an integer")
                bits_ok(a), bits_ok(b), bits_ok(mod)
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
            return bits_ok(a ** b)
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

    def plain_scalar(v: Any) -> Any:
        t = type(v)
        if t is Decimal:
            if not v.is_finite() or v.adjusted() > INT_STR_DIGITS_MAX:
                # %d of a Decimal converts it to int and then to text: bound it like int().
                raise LimitExceeded("Decimal too large to format with %")
            charge(max(0, v.adjusted()) * 2 * DECIMAL_DIGIT_GAS)  # both conversions
        if t in HASHABLE_CHEAP:
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
        if t not in HASHABLE_CHEAP:
            value = to_str(value)
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

    return {
        "_add_": _add_, "_sub_": _sub_, "_mul_": _mul_, "_pow_": _pow_, "_lshift_": _lshift_,
        "_mod_": _mod_, "_floordiv_": _floordiv_, "_or_": _or_, "_fmt_": _fmt_,
        # for the compiler's inlined int fast paths only (unreachable by name from contracts)
        "_type_": type, "_int_": int,
        # the builtin pow() is the ** guard, with its optional modulus
        "pow": _pow_,
    }

"""The contract builtin `_getattr_`: every attribute read goes through a per-type
allow-list.

Data fields are read as they are; a method is handed out wrapped in a closure that bounds
and pays for its work (scanning, the text or items it produces, the comparisons of a sort)
before calling it, and refuses what could differ between nodes (Unicode-database-dependent
string methods on non-ASCII text, dict views that would hand out sets).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable

from contracts.engine.builtins_accounting import CHEAP, Accounting
from contracts.engine.errors import CallError, ContractError, DeterminismError, LimitExceeded
from contracts.engine.gas import BYTE_GAS, DECIMAL_SQRT_GAS, ITEM_GAS, ITEMS_MAX, SCAN_CHARS_PER_GAS
from contracts.engine.model import CallContext
from contracts.engine.store import Storage


def attributes(acct: Accounting) -> dict[str, Any]:
    """`_getattr_` over the allow-lists."""
    charge = acct.charge
    charge_items = acct.charge_items
    charge_chars = acct.charge_chars
    charge_result = acct.charge_result
    tree_size = acct.tree_size
    materialize = acct.materialize
    key_ok = acct.key_ok
    checked_key = acct.checked_key
    sort_cost = acct.sort_cost

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
                    per = 1 if type(x) in CHEAP else tree_size(x)
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

    return {"_getattr_": _getattr_}

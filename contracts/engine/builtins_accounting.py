"""The accounting helpers every section of the contract builtins shares.

A builtin bounds and pays for the work it is about to do before doing it: items and
characters it produces, nodes of a value CPython will walk in C (compare, hash, print,
sort), items a lazy iterator yields. This module owns those helpers (built once per
`Runtime` over its gas meter, see `Accounting`), the integer size bound, and the type sets
that say what is cheap to compare, hash, size or iterate.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Callable, NamedTuple

from contracts.engine.errors import LimitExceeded
from contracts.engine.gas import (
    BYTE_GAS,
    INT_BITS_MAX,
    ITEM_GAS,
    ITEMS_MAX,
    LIMB_GAS,
    STR_CHARS_MAX,
    TUPLE_KEY_GAS,
    WALK_DEPTH_MAX,
    WALK_NODE_GAS,
    WALK_NODES_MAX,
)

INT_LIMIT = 1 << INT_BITS_MAX
_NoneType = type(None)
# Comparing with one of these is O(1) (or a type mismatch), whatever the other side is.
CHEAP = frozenset({int, bool, _NoneType, Decimal})
HASHABLE_CHEAP = frozenset({int, bool, _NoneType, Decimal, str, bytes})
ITERABLE = frozenset(
    {
        list, tuple, dict, str, bytes, range,
        zip, enumerate, type(reversed([])), type(reversed(())), type(reversed(range(0))),
        type(reversed({})),
    }
)
SIZED = frozenset({list, tuple, dict, str, bytes, range})


def bits_ok(n: int) -> int:
    if -INT_LIMIT < n < INT_LIMIT:
        return n
    raise LimitExceeded(f"integer exceeds {INT_BITS_MAX} bits")


def big_division_gas(a: int, b: Any) -> int:
    # Long division: quadratic in limbs (tests/bench/gas.py).
    nb = b.bit_length() if type(b) is int else 64
    return ((a.bit_length() >> 6) + 1) * ((nb >> 6) + 1) * LIMB_GAS


class Accounting(NamedTuple):
    """The helpers, as closures over one runtime's `charge`. A section's builder copies the
    ones it uses into locals first, so its own closures reach them through cells rather
    than attribute lookups: guards are on the hot path of every contract."""

    charge: Callable[[int], None]
    charge_items: Callable[[int], None]
    charge_chars: Callable[[int], None]
    charge_result: Callable[[Any], Any]
    tree_size: Callable[[Any], int]
    materialize: Callable[[Any], Any]
    key_ok: Callable[[Any], Any]
    compare_cost: Callable[[Any, Any], None]
    checked_key: Callable[[Any, int], Any]
    sort_cost: Callable[[Any], int]


def accounting(charge: Callable[[int], None]) -> Accounting:
    """The helpers over `charge` (a runtime's `Runtime.charge`)."""

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
            bits_ok(r)
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
        if t in SIZED:
            charge_items(len(it))
            return it
        if t not in ITERABLE:
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
        if t in HASHABLE_CHEAP:
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

    def checked_key(key: Any, n: int) -> Any:
        """Wrap a sort key: keys are compared in C about log2(n) times each, so a key that
        is a large (or DAG-shaped) value is paid for by its size before CPython sees it."""
        if key is None:
            return None
        rounds = max(1, n.bit_length())

        def wrapped(x: Any) -> Any:
            k = key(x)
            if type(k) not in CHEAP:
                charge(tree_size(k) * rounds * ITEM_GAS)
            return k

        return wrapped

    def sort_cost(items: Any) -> int:
        n = len(items)
        if n > ITEMS_MAX:
            raise LimitExceeded(f"{n} items exceeds the limit of {ITEMS_MAX}")
        per = max((1 if type(x) in CHEAP else tree_size(x) for x in items), default=1)
        return n * max(1, n.bit_length()) * per * ITEM_GAS

    return Accounting(charge, charge_items, charge_chars, charge_result, tree_size, materialize, key_ok,
                      compare_cost, checked_key, sort_cost)

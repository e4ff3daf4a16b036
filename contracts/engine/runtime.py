"""What contract code runs against: the runtime, and the builtins it composes.

Every guard checks sizes *before* the operation allocates, and charges gas per byte or item
it produces (memory is bounded through gas). Every attribute read goes through a per-type
allow-list; item writes are allowed on dict, list and storage only. Anything whose result
could differ between nodes is refused: floats (no literals, no `/`, no negative integer
powers, no float format types), sets, `id`/`hash`/`repr` of objects, `str()` of objects
that would print an address, locale-dependent formatting, and Unicode-database-dependent
string methods on non-ASCII text (they change between Python releases).

One `Runtime` per `Engine`; it runs one transaction at a time (`gas` and `frames` belong to
the transaction in progress).

The builtins come in sections, each built by its own function over the shared accounting
helpers (builtins_accounting.py): control, arithmetic (builtins_arith.py), comparisons,
items and iteration, attribute allow-lists (builtins_attrs.py), curated builtins
(builtins_curated.py) and chain services. The small ones and the chain services, which
use the runtime's own state, are here; `build_builtins` puts them together.
"""

from __future__ import annotations

from itertools import islice
from typing import Any, Callable

from chainnode.protocol.codec import INT64_MIN, UINT64_MAX, VALUE_ITEMS_MAX
from contracts.engine import values
from contracts.engine.accelerator import speedups
from contracts.engine.builtins_accounting import CHEAP, HASHABLE_CHEAP, ITERABLE, Accounting, accounting
from contracts.engine.builtins_arith import arithmetic
from contracts.engine.builtins_attrs import attributes
from contracts.engine.builtins_curated import curated
from contracts.engine.errors import (
    CallDepthExceeded,
    CallError,
    ContractError,
    LimitExceeded,
    OutOfGas,
    text_ok,
)
from contracts.engine.frame import FRAME_CONTRACT, FRAME_EVENTS, FRAME_READONLY
from contracts.engine.gas import (
    BYTE_GAS,
    EVENT_BYTE_GAS,
    EVENT_BYTES_MAX,
    EVENT_GAS,
    EVENT_NAME_CHARS_MAX,
    EVENTS_MAX,
    FUNCTION_DEPTH_MAX,
    HASH_GAS,
    HASH_WORD_GAS,
    ITEM_GAS,
    ITEMS_MAX,
    RAISE_NODE_GAS,
    SCAN_CHARS_PER_GAS,
    TX_EVENT_BYTES_MAX,
    VERIFY_GAS,
)
from contracts.engine.model import Event
from contracts.engine.store import Storage

# Event field values that need no walk and no copy (ints are range-checked by msgpack).
_EVENT_SCALARS = frozenset({int, str, bytes, bool, type(None)})
# model.make_event, inlined in emit: tuple.__new__ skips NamedTuple's Python-level __new__.
_new_tuple = tuple.__new__


class Runtime:
    """Builds the builtins once. `gas` and `frames` are the same lists for the runtime's
    whole life (bound into the builtins' closures): the engine resets their contents at the
    start of every transaction instead of replacing them."""

    # Slots: `emit` reads and writes the event counters on every event.
    __slots__ = ("suite", "gas", "frames", "events_total", "event_bytes", "_cross_call", "builtins")

    def __init__(self, suite: Any, cross_call: Callable[[bytes, str, tuple], Any]) -> None:
        self.suite = suite
        self.gas: list[int] = [0, 0]  # [gas left, contract function depth]
        # One frame (frame.py) per contract on the call stack, the running one last.
        self.frames: list[list] = []
        self.events_total = 0
        self.event_bytes = 0
        self._cross_call = cross_call
        self.builtins = build_builtins(self)

    def charge(self, gas: int) -> None:
        g = self.gas
        g[0] -= gas
        if g[0] < 0:
            raise OutOfGas("out of gas")


def build_builtins(rt: Runtime) -> dict[str, Any]:
    """Every name contract code sees, section by section; no section redefines another's."""
    acct = accounting(rt.charge)
    items = _items(acct)
    by_name = curated(acct, items["_getiter_"], items["_unpack_sequence_"])
    builtins: dict[str, Any] = {}
    for part in (_control(rt), arithmetic(acct, by_name["str"]), _comparisons(acct), items, attributes(acct),
                 by_name, _chain_services(rt, acct)):
        assert builtins.keys().isdisjoint(part), sorted(builtins.keys() & part.keys())
        builtins.update(part)
    return builtins


def _control(rt: Runtime) -> dict[str, Any]:
    """The guards of gas and function depth that the compiler's inline checks call."""
    gas_meter = rt.gas  # never rebound (see Runtime)

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

    return {"_abort_": _abort_, "_tick_": _tick_}


def _comparisons(acct: Accounting) -> dict[str, Any]:
    """The comparison guards and `in`."""
    charge = acct.charge
    tree_size = acct.tree_size
    key_ok = acct.key_ok
    compare_cost = acct.compare_cost

    # Comparing with a scalar is O(1) (or a type mismatch) whatever the other side is;
    # two containers or strings pay for their size first. `type(a) is not int` first: the
    # common case leaves after one test.
    def _eq_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in CHEAP and type(b) not in CHEAP:
            compare_cost(a, b)
        return a == b

    def _ne_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in CHEAP and type(b) not in CHEAP:
            compare_cost(a, b)
        return a != b

    def _lt_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in CHEAP and type(b) not in CHEAP:
            compare_cost(a, b)
        return a < b

    def _le_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in CHEAP and type(b) not in CHEAP:
            compare_cost(a, b)
        return a <= b

    def _gt_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in CHEAP and type(b) not in CHEAP:
            compare_cost(a, b)
        return a > b

    def _ge_(a: Any, b: Any) -> bool:
        if type(a) is not int and type(a) not in CHEAP and type(b) not in CHEAP:
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
            per = 1 if type(item) in CHEAP else tree_size(item)
            charge(len(container) * per * ITEM_GAS)
            return item in container
        if t is range:
            # A non-int is searched linearly by CPython (range(10**12) would hang); the
            # answer is always False, so give it directly.
            return (type(item) is int or type(item) is bool) and item in container
        raise TypeError(f"'in' is not supported for {t.__name__}")

    return {"_eq_": _eq_, "_ne_": _ne_, "_lt_": _lt_, "_le_": _le_, "_gt_": _gt_, "_ge_": _ge_, "_in_": _in_}


def _items(acct: Accounting) -> dict[str, Any]:
    """The guards of item reads, writes and deletes, iteration and unpacking, dict keys."""
    charge = acct.charge
    materialize = acct.materialize
    key_ok = acct.key_ok

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
            if type(key) not in HASHABLE_CHEAP:
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
        if type(obj) in ITERABLE:
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

    return {
        "_getitem_": _getitem_, "_setitem_": _setitem_, "_delitem_": _delitem_, "_write_": _write_,
        "_getiter_": _getiter_, "_unpack_sequence_": _unpack_sequence_,
        "_iter_unpack_sequence_": _iter_unpack_sequence_, "_key_": _key_,
    }


def _chain_services(rt: Runtime, acct: Accounting) -> dict[str, Any]:
    """`require`, events, hashing, signatures and cross-contract calls: what a contract asks
    of the chain, over the runtime's event counters, call frames and crypto suite."""
    charge = acct.charge
    to_receipt_value = values.to_receipt_value
    is_text_ok = text_ok  # closure cells, not globals, on the hot path
    pack = values.pack_plain
    gas_meter = rt.gas  # never rebound (see Runtime)
    frames = rt.frames

    def require(cond: Any, message: Any = "requirement failed") -> None:
        if not cond:
            charge(RAISE_NODE_GAS)  # what a `raise` costs
            raise ContractError(message)

    def emit(name: str, **fields: Any) -> None:
        # Hot path (one event per payment): checks are inlined, the walkers only run for
        # fields that are not all scalars.
        frame = frames[-1]
        if frame[FRAME_READONLY]:
            raise PermissionError("view calls cannot emit events")
        if type(name) is not str or not 0 < len(name) <= EVENT_NAME_CHARS_MAX:
            raise ValueError(f"event name must be 1..{EVENT_NAME_CHARS_MAX} characters")
        if not is_text_ok(name):
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
        frame[FRAME_EVENTS].append(_new_tuple(Event, (frame[FRAME_CONTRACT], name, fields)))  # make_event, inlined

    def _emit_(name: str, fields: dict) -> None:
        # `emit("Name", k=v, ...)` with a constant name and explicit field names, as the
        # compiler rewrites it: `_emit_("Name", {"k": v, ...})`. The name and the field names
        # were checked at compile time; `fields` is a fresh dict no one else holds. The
        # same checks as `emit` otherwise, in the same order, with the same gas.
        frame = frames[-1]
        if frame[FRAME_READONLY]:
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
        frame[FRAME_EVENTS].append(_new_tuple(Event, (frame[FRAME_CONTRACT], name, fields)))  # make_event, inlined

    if speedups is not None:
        # The same as the `_emit_` above for the common case, in C; it calls that one for
        # everything else (tests/contracts/test_speedups.py holds the two together).
        _emit_ = speedups.Emitter(rt, frames, gas_meter, pack, Event, _emit_, EVENTS_MAX, EVENT_BYTES_MAX,
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
        "ContractError": ContractError, "CallError": CallError, "require": require, "emit": emit,
        "_emit_": _emit_, "hash": hash_, "verify_signature": verify_signature, "call": call,
    }

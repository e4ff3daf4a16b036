"""Plain values: the only things that cross a boundary (storage, events, arguments, results).

A plain value is None, bool, int (64-bit, msgpack's range), str, bytes, list, or dict with
str keys; tuples are accepted and become lists. Every crossing makes a copy through this
walker and msgpack, so a contract never shares a mutable object with storage, another
contract or the host. The walker counts every node it visits (a list that holds the same
list twice counts it twice), so a value built as a DAG that would expand exponentially is
refused after `WALK_NODES_MAX` nodes instead of hanging the node.
"""

from __future__ import annotations

from typing import Any

import msgpack

from chainnode.protocol import codec
from chainnode.protocol.codec import INT64_MIN, UINT64_MAX
from contracts.engine.errors import OutOfGas
from contracts.engine.gas import COPY_NODE_GAS, WALK_NODES_MAX

VALUE_DEPTH_MAX = 32
_SCALARS = (str, bytes, bool, type(None))
_FLAT = frozenset({int, str, bytes, bool, type(None)})


# The receipt text for every failure that comes from text the codec cannot encode.
BAD_TEXT_MESSAGE = "a value handed to the chain holds text that is not valid UTF-8 (a lone surrogate)"


def to_plain(value: Any, what: str, gas: list[int] | None = None) -> Any:
    """Return a normalised copy of `value` (tuples become lists) or raise TypeError/ValueError.

    With `gas` (the transaction's [gas left, ...] list) every node visited is paid for,
    even when the walk fails: catching the error and retrying must never be cheap."""
    t = type(value)
    if t is int:
        if not INT64_MIN <= value <= UINT64_MAX:
            raise ValueError(f"{what}: integer does not fit in 64 bits")
        return value
    if t in _SCALARS:
        return value
    budget = [WALK_NODES_MAX]
    try:
        return _walk(value, what, 0, budget)
    finally:
        if gas is not None:
            gas[0] -= (WALK_NODES_MAX - budget[0]) * COPY_NODE_GAS
            if gas[0] < 0:
                raise OutOfGas("out of gas")


def _walk(x: Any, what: str, depth: int, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise ValueError(f"{what}: value has more than {WALK_NODES_MAX} nodes")
    t = type(x)
    if t is int:
        if not INT64_MIN <= x <= UINT64_MAX:
            raise ValueError(f"{what}: integer does not fit in 64 bits")
        return x
    if t in _SCALARS:
        return x
    if depth >= VALUE_DEPTH_MAX:
        raise ValueError(f"{what}: value nested deeper than {VALUE_DEPTH_MAX}")
    if t is list or t is tuple:
        return [_walk(y, what, depth + 1, budget) for y in x]
    if t is dict:
        out = {}
        for k, y in x.items():
            if type(k) is not str:
                raise TypeError(f"{what}: dict keys must be str, not {type(k).__name__}")
            out[k] = _walk(y, what, depth + 1, budget)
        return out
    raise TypeError(f"{what}: values of type {t.__name__} cannot be stored or passed")


# One packer reused: `msgpack.packb` builds a Packer per call, which is most of its cost.
# Packing plain values never calls back into Python, so under the GIL one `pack` call is
# atomic and the shared packer is safe across threads.
_pack = msgpack.Packer(use_bin_type=True, strict_types=True, autoreset=True).pack


# `msgpack.unpackb` with its defaults is exactly `decode` below (raw=False, strict_map_key,
# use_list); the storage hot path calls it directly. Checked here, at import, so a msgpack
# release that changed a default cannot change what contracts read.
unpackb = msgpack.unpackb


def _check_unpackb_defaults() -> None:
    try:
        unpackb(b"\x81\x01\x02")  # {1: 2}: an int map key
    except ValueError:
        pass
    else:  # pragma: no cover - depends on the installed msgpack
        raise ImportError("msgpack.unpackb must default to strict_map_key=True")
    if unpackb(b"\xa1a") != "a" or type(unpackb(b"\x91\x01")) is not list:  # pragma: no cover
        raise ImportError("msgpack.unpackb must default to raw=False, use_list=True")


_check_unpackb_defaults()
# The raw packing function, for hot paths that already know the value is plain.
pack_plain = _pack


def encode(value: Any) -> bytes:
    """msgpack of an already plain value (the canonical form the codec uses)."""
    return _pack(value)


def decode(data: bytes) -> Any:
    """Decode bytes this engine wrote (storage values, copies); lists for arrays."""
    return msgpack.unpackb(data, raw=False, strict_map_key=True, use_list=True)


def encode_value(value: Any, what: str, gas: list[int] | None = None) -> bytes:
    """Normalise and encode in one step; the fast path skips the walker for scalars."""
    t = type(value)
    if t is str or t is bytes or t is bool or value is None:
        return _pack(value)
    if t is int:
        if not INT64_MIN <= value <= UINT64_MAX:
            raise ValueError(f"{what}: integer does not fit in 64 bits")
        return _pack(value)
    return _pack(to_plain(value, what, gas))


def to_receipt_value(value: Any, what: str, gas: list[int] | None = None) -> Any:
    """A value that goes into a receipt (return value, event fields): plain, and within the
    bounds the receipt decoder enforces on every node (`codec.expect_value`), so a receipt
    this engine produces can always be decoded by a peer."""
    if value is None or type(value) in _FLAT:
        return to_plain(value, what)
    before = gas[0] if gas is not None else 0
    plain = to_plain(value, what, gas)
    if gas is not None:  # the check below walks it again, as long as the copy did
        gas[0] -= before - gas[0]
        if gas[0] < 0:
            raise OutOfGas("out of gas")
    try:
        codec.expect_value(plain, what)
    except codec.DecodeError as exc:
        raise ValueError(str(exc)) from None
    return plain


def flat_fields(fields: dict, what: str, gas: list[int] | None = None) -> dict:
    """Event fields: skip the walkers when every value is a scalar (the common case)."""
    if len(fields) < codec.VALUE_ITEMS_MAX:
        for v in fields.values():
            if type(v) not in _FLAT or (type(v) is int and not INT64_MIN <= v <= UINT64_MAX):
                break
        else:
            return fields
    return to_receipt_value(fields, what, gas)

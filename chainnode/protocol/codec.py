"""Canonical encoding: msgpack of fixed-order lists, decoded strictly.

Everything that is hashed or signed goes through here (DESIGN.md rule 2):
- an object is a msgpack array whose first element is a format version;
- integers, never floats; raw bytes (bin), never hex; text as str; no maps at the top of
  a hashed structure (plain maps are allowed only inside user values such as contract
  arguments, with str keys);
- decoding rejects anything it does not know: oversized input, trailing bytes, non-canonical
  encodings (each value has exactly one encoding, so one logical object has one hash), the
  wrong type or length of any field, unknown versions. Every failure is a `DecodeError`.

The `expect_*` helpers are the building blocks the typed decoders use; they take the field
name so an error names exactly what was wrong.
"""

from __future__ import annotations

import threading
from typing import Any

import msgpack

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1

# Bounds of user values (contract arguments, return values, event fields).
VALUE_DEPTH_MAX = 16
VALUE_ITEMS_MAX = 4096


class DecodeError(ValueError):
    """Input bytes are not a valid canonical encoding of the expected object."""


_local = threading.local()


def _packer() -> msgpack.Packer:
    # One Packer per thread: building one per call costs as much as the packing itself
    # (1.07 µs vs 0.54 µs for a transaction), and a Packer is not safe to share.
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(use_bin_type=True, strict_types=True)
    return packer


def pack(obj: Any) -> bytes:
    """Encode a value built from lists, ints, bytes, str, bool and None (and str-keyed dicts).

    Callers pass values that a decoder or the contract engine has already checked; floats
    are not refused here (msgpack encodes them natively) but no decoder accepts one back.
    """
    try:
        return _packer().pack(obj)
    except (TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"cannot encode value: {exc}") from None


def unpack(data: bytes, *, max_bytes: int) -> Any:
    """Decode exactly one canonical msgpack value of at most `max_bytes` bytes."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > max_bytes:
        raise DecodeError(f"{len(data)} bytes exceeds the limit of {max_bytes}")
    if not data:
        raise DecodeError("empty input")
    try:
        obj = msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=True,
            ext_hook=_reject_ext,
            timestamp=0,
        )
    except DecodeError:
        raise
    except Exception as exc:  # msgpack raises several types (ExtraData, ValueError, UnicodeDecodeError...)
        raise DecodeError(f"malformed msgpack: {type(exc).__name__}: {exc}") from None
    try:
        canonical = _packer().pack(obj)
    except Exception as exc:
        raise DecodeError(f"value cannot be re-encoded: {exc}") from None
    if canonical != data:
        raise DecodeError("non-canonical encoding (a value is not in its shortest form)")
    return obj


def _reject_ext(code: int, data: bytes) -> Any:
    raise DecodeError(f"msgpack extension type {code} is not allowed")


# ---- field checks used by the typed decoders ------------------------------------------


def expect_list(v: Any, what: str, length: int | None = None, max_length: int | None = None) -> list:
    if type(v) is not list:
        raise DecodeError(f"{what}: expected a list, got {type(v).__name__}")
    if length is not None and len(v) != length:
        raise DecodeError(f"{what}: expected {length} fields, got {len(v)}")
    if max_length is not None and len(v) > max_length:
        raise DecodeError(f"{what}: {len(v)} items exceeds the limit of {max_length}")
    return v


def expect_version(fields: list, what: str, supported: int) -> None:
    if not fields:
        raise DecodeError(f"{what}: empty list has no version")
    version = fields[0]
    if type(version) is not int:
        raise DecodeError(f"{what}: version must be an integer")
    if version != supported:
        raise DecodeError(f"{what}: unknown version {version} (this node knows {supported})")


def expect_int(v: Any, what: str, lo: int = 0, hi: int = UINT64_MAX) -> int:
    if type(v) is not int:
        raise DecodeError(f"{what}: expected an integer, got {type(v).__name__}")
    if not lo <= v <= hi:
        raise DecodeError(f"{what}: {v} is outside [{lo}, {hi}]")
    return v


def expect_bytes(v: Any, what: str, *, length: int | None = None, lengths: tuple[int, ...] = (), max_length: int | None = None) -> bytes:
    if type(v) is not bytes:
        raise DecodeError(f"{what}: expected bytes, got {type(v).__name__}")
    if length is not None and len(v) != length:
        raise DecodeError(f"{what}: expected {length} bytes, got {len(v)}")
    if lengths and len(v) not in lengths:
        raise DecodeError(f"{what}: expected one of {lengths} bytes, got {len(v)}")
    if max_length is not None and len(v) > max_length:
        raise DecodeError(f"{what}: {len(v)} bytes exceeds the limit of {max_length}")
    return v


def expect_str(v: Any, what: str, *, max_length: int) -> str:
    if type(v) is not str:
        raise DecodeError(f"{what}: expected text, got {type(v).__name__}")
    if len(v) > max_length:
        raise DecodeError(f"{what}: {len(v)} characters exceeds the limit of {max_length}")
    return v


def expect_value(v: Any, what: str) -> Any:
    """A user value: None, bool, int, bytes, str, list, or dict with str keys; bounded depth and size."""
    items = [0]

    def walk(x: Any, depth: int) -> None:
        items[0] += 1
        if items[0] > VALUE_ITEMS_MAX:
            raise DecodeError(f"{what}: more than {VALUE_ITEMS_MAX} items")
        if depth > VALUE_DEPTH_MAX:
            raise DecodeError(f"{what}: nested deeper than {VALUE_DEPTH_MAX}")
        t = type(x)
        if x is None or t is bool or t is int or t is bytes or t is str:
            return
        if t is list:
            for y in x:
                walk(y, depth + 1)
            return
        if t is dict:
            for k, y in x.items():
                if type(k) is not str:
                    raise DecodeError(f"{what}: map keys must be text")
                walk(y, depth + 1)
            return
        raise DecodeError(f"{what}: values of type {t.__name__} are not allowed")

    walk(v, 0)
    return v

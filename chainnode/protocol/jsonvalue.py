"""Plain values (what contracts take and return) in JSON, which has no bytes: bytes are
written as "0x…" hex strings. Used by RPC answers, the CLI's --hex-as-bytes and the
genesis file's contract arguments, so all three read and write the same form."""

from __future__ import annotations

from typing import Any

from chainnode.protocol.hexstr import HEX_PREFIXES, HexError, parse_hex, to_hex


def to_json(v: Any) -> Any:
    """`v` with every bytes value (at any depth) as a "0x…" string."""
    if isinstance(v, bytes):
        return to_hex(v)
    if isinstance(v, list):
        return [to_json(x) for x in v]
    if isinstance(v, dict):
        return {k: to_json(x) for k, x in v.items()}
    return v


def from_json(v: Any) -> Any:
    """`v` with every string that starts with "0x" or "0X" (at any depth) as bytes;
    HexError naming the string if one is not hex."""
    if isinstance(v, str) and v.startswith(HEX_PREFIXES):
        try:
            return parse_hex(v)
        except HexError:
            raise HexError(f"{v!r} starts with 0x but is not hex") from None
    if isinstance(v, list):
        return [from_json(x) for x in v]
    if isinstance(v, dict):
        return {k: from_json(x) for k, x in v.items()}
    return v

"""Hex text for bytes: the one rule for every hex string chainnode reads, and its one form
when it writes one.

Read (`parse_hex`): an optional "0x" or "0X" prefix, then an even number of hex digits
of either case, and nothing else: no spaces, signs or underscores (`bytes.fromhex` alone
would take spaces between bytes). Empty text ("" or "0x") is zero bytes, as the RPC has
always accepted; `length=` refuses it where a fixed size is wanted.

Write (`to_hex`): "0x" and lowercase digits, the form every RPC answer uses.
"""

from __future__ import annotations

import re

HEX_PREFIXES = ("0x", "0X")
_DIGITS = re.compile(r"[0-9a-fA-F]*")


class HexError(ValueError):
    """Text that is not hex of the size wanted; the message names the value and says what
    was expected."""


def parse_hex(text: object, *, length: int | None = None, what: str = "value", max_bytes: int | None = None) -> bytes:
    """`text` as bytes, by the rule above. `length`: exactly that many bytes; `max_bytes`:
    at most that many, checked before decoding. HexError names `what` otherwise."""
    if not isinstance(text, str):
        raise HexError(f"{what} must be a hex string")
    digits = text[2:] if text.startswith(HEX_PREFIXES) else text
    if max_bytes is not None and len(digits) > 2 * max_bytes:
        raise HexError(f"{what} is longer than {max_bytes} bytes")
    if not _DIGITS.fullmatch(digits) or len(digits) % 2:
        why = "a character that is not a hex digit" if not _DIGITS.fullmatch(digits) else "an odd number of digits"
        raise HexError(f"{what} must be a hex string: 0x optional, then an even number of hex digits ({why})")
    if length is not None and len(digits) != 2 * length:
        raise HexError(f"{what} must be {length} bytes ({2 * length} hex digits), got {len(digits) // 2}")
    return bytes.fromhex(digits)


def to_hex(data: bytes) -> str:
    """`data` as "0x" and lowercase hex digits."""
    return "0x" + data.hex()

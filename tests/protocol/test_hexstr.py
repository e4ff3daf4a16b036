"""The one hex rule (chainnode/protocol/hexstr.py): optional 0x or 0X, then an even number of
hex digits of either case, nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chainnode.protocol.hexstr import HexError, parse_hex, to_hex
from chainnode.protocol.jsonvalue import from_json

HEX_DIGITS = "0123456789abcdefABCDEF"


@given(st.binary(max_size=64), st.sampled_from(["", "0x", "0X"]), st.booleans())
def test_any_bytes_round_trip_with_either_prefix_and_either_case(data, prefix, upper):
    digits = data.hex().upper() if upper else data.hex()
    assert parse_hex(prefix + digits) == data
    assert parse_hex(to_hex(data)) == data
    assert to_hex(data) == "0x" + data.hex()


@given(st.text(max_size=20))
def test_text_is_hex_exactly_when_the_rule_says_so(text):
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    is_hex = len(digits) % 2 == 0 and all(c in HEX_DIGITS for c in digits)
    try:
        parse_hex(text)
    except HexError:
        assert not is_hex
    else:
        assert is_hex


@pytest.mark.parametrize("text, why", [
    ("abc", "an odd number of digits"),
    ("0x0", "an odd number of digits"),
    ("ab cd", "not a hex digit"),  # bytes.fromhex would take it
    (" abcd", "not a hex digit"),
    ("abcd\n", "not a hex digit"),
    ("0x0xab", "not a hex digit"),
    ("x0ab", "not a hex digit"),
    ("+ab", "not a hex digit"),
    ("ab_cd", "not a hex digit"),
    ("\u0661\u0662", "not a hex digit"),  # Unicode digits are not hex digits
])
def test_what_is_not_hex_says_why(text, why):
    with pytest.raises(HexError, match=rf"^'data' must be a hex string: 0x optional, then an even number of hex digits \(.*{why}"):
        parse_hex(text, what="'data'")


def test_empty_is_zero_bytes_unless_a_length_is_wanted():
    assert parse_hex("") == parse_hex("0x") == parse_hex("0X") == b""
    with pytest.raises(HexError, match=r"^hash must be 32 bytes \(64 hex digits\), got 0$"):
        parse_hex("0x", length=32, what="hash")


def test_length_and_size_bound():
    assert parse_hex("0X" + "Ab" * 20, length=20) == b"\xab" * 20
    with pytest.raises(HexError, match=r"address must be 20 bytes \(40 hex digits\), got 2"):
        parse_hex("0x1234", length=20, what="address")
    assert parse_hex("00" * 8, max_bytes=8) == bytes(8)
    # The bound is checked before the digits, so a huge string is refused without decoding it.
    with pytest.raises(HexError, match="^args is longer than 8 bytes$"):
        parse_hex("zz" * 9, max_bytes=8, what="args")


@pytest.mark.parametrize("value", [None, 5, b"ab", ["ab"], {"a": 1}])
def test_only_text_is_hex(value):
    with pytest.raises(HexError, match="^value must be a hex string$"):
        parse_hex(value)


def test_hex_error_is_a_value_error():
    assert issubclass(HexError, ValueError)


def test_json_values_take_either_prefix_as_bytes():
    assert from_json(["0xAB", "0Xab", "text", {"k": ["0x"]}]) == [b"\xab", b"\xab", "text", {"k": [b""]}]
    with pytest.raises(HexError, match="'0Xzz' starts with 0x but is not hex"):
        from_json(["0Xzz"])

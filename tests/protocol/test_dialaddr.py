"""Dial addresses as genesis files, votes and node.toml give them: one canonical multiaddr
for each, and a reason for every malformed one."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from chainnode.protocol.dialaddr import DialAddrError, is_dns, parse_dial_addr, split_dial_addr
from chainnode.protocol.versions import VersionError, format_version, parse_version


@pytest.mark.parametrize("text, canonical", [
    ("/ip4/10.0.0.1/tcp/30300", "/ip4/10.0.0.1/tcp/30300"),
    ("/ip6/FD00:0:0::1/tcp/1", "/ip6/fd00::1/tcp/1"),
    ("/dns/Node1.Bank-A.example/tcp/30300", "/dns/node1.bank-a.example/tcp/30300"),
    ("/dns4/node1/tcp/2", "/dns4/node1/tcp/2"),
    ("/dns6/node1.example./tcp/2", "/dns6/node1.example./tcp/2"),
    ("10.0.0.1:30300", "/ip4/10.0.0.1/tcp/30300"),
    ("[fd00::1]:30300", "/ip6/fd00::1/tcp/30300"),
    ("fd00::1:30300", "/ip6/fd00::1/tcp/30300"),  # the last colon splits: an IPv6 address before it
    ("node1.bank-a.example:30300", "/dns/node1.bank-a.example/tcp/30300"),
    ("localhost:65535", "/dns/localhost/tcp/65535"),
])
def test_every_form_has_one_canonical_multiaddr(text, canonical):
    assert parse_dial_addr(text) == canonical
    assert parse_dial_addr(canonical) == canonical  # canonical is a fixed point


@pytest.mark.parametrize("text, reason", [
    ("", "at most 256"), ("x" * 300, "at most 256"), (42, "a string"),
    ("/ip4/10.0.0.1/tcp/30300/p2p/12D3KooW", "is not a dial address"),
    ("/ip4/10.0.0.1/udp/30300", "is not a dial address"),
    ("/ip4/10.0.0.1/tcp/0", "1 to 65535"), ("/ip4/10.0.0.1/tcp/65536", "1 to 65535"), ("/ip4/10.0.0.1/tcp/0300", "1 to 65535"),
    ("/ip4/10.0.0.1/tcp/-1", "1 to 65535"), ("/ip4/10.0.0.256/tcp/1", "not an IPv4"), ("/ip4/fd00::1/tcp/1", "not an IPv4"),
    ("/ip6/10.0.0.1/tcp/1", "not an IPv6"), ("/unix/x/tcp/1", "not ip4, ip6, dns"), ("/dns/bad_name/tcp/1", "not a DNS name"),
    ("/dns/-bad.example/tcp/1", "not a DNS name"), ("/dns/a..b/tcp/1", "not a DNS name"), ("/dns/10.0.0.999/tcp/1", "not a DNS name"),
    ("10.0.0.1", "neither a multiaddr nor host:port"), (":30300", "neither a multiaddr"), ("host:http", "1 to 65535"),
    ("bad host:1", "not a DNS name"),
])
def test_malformed_addresses_are_refused_with_the_reason(text, reason):
    with pytest.raises(DialAddrError, match=reason):
        parse_dial_addr(text)


def test_parts():
    assert split_dial_addr("/dns/node1.example/tcp/30300") == ("dns", "node1.example", 30300)
    assert is_dns("/dns4/a/tcp/1") and not is_dns("/ip4/1.2.3.4/tcp/1")


@given(st.text(max_size=80))
def test_any_text_is_an_address_or_a_clear_refusal(text):
    try:
        canonical = parse_dial_addr(text)
    except DialAddrError as exc:
        assert str(exc)
    else:
        assert parse_dial_addr(canonical) == canonical


def test_versions_are_ordered_numbers():
    assert parse_version("0.2.0") == 2000 and parse_version("1.10.3") == 1_010_003
    assert format_version(1_010_003) == "1.10.3" and format_version(parse_version("999.999.999")) == "999.999.999"
    assert parse_version("0.10.0") > parse_version("0.9.9")
    for bad in ("0.2", "v0.2.0", "0.2.0-rc1", "1000.0.0", "", None, 3):
        with pytest.raises(VersionError):
            parse_version(bad)

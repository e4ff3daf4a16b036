"""Wire messages: every type round-trips, signing bytes are domain-separated, and no byte
string makes the decoder raise anything but DecodeError."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chainnode.protocol.codec import DecodeError, pack, unpack
from chainnode.protocol.types import CommitCertificate, commit_signing_bytes
from consensus.messages import (
    DOMAIN_TAG,
    Checkpoint,
    Commit,
    Decided,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    SyncRequest,
    ViewChange,
    decode_message,
)
from consensus.safety import SafetyState
from tests.consensus.helpers import SUITE, TX, make_header, signed


def all_messages() -> list:
    header, txs = make_header()
    pid = header.hash(SUITE)
    cert = PreparedCertificate(0, header, txs, [(i, signed(Prepare(1, 0, i, pid)).signature) for i in (0, 1, 2)])
    pp = signed(PrePrepare(1, 0, 1, header, txs))
    vcs = [signed(ViewChange(1, 1, i, cert if i == 0 else None)) for i in (0, 1, 3)]
    commit_cert = CommitCertificate(1, pid, [(i, bytes([i]) * 64) for i in (0, 1, 2)])
    return [
        pp,
        signed(Prepare(1, 0, 2, pid)),
        signed(Commit(1, 0, 3, pid)),
        Checkpoint(1, 0, 2, pid, bytes(64)),
        vcs[0],
        vcs[1],
        signed(NewView(1, 1, 2, vcs, signed(PrePrepare(1, 1, 2, header, txs)))),
        signed(SyncRequest(7, 0, 1)),
        signed(Decided(1, 0, 3, header, txs, commit_cert, 9)),
    ]


@pytest.mark.parametrize("msg", all_messages(), ids=lambda m: type(m).__name__)
def test_round_trip(msg):
    data = msg.encode()
    assert decode_message(data) == msg
    assert decode_message(data).encode() == data


def test_signing_bytes_are_domain_separated():
    header, txs = make_header()
    pid = header.hash(SUITE)
    p, c = Prepare(1, 0, 2, pid), Commit(1, 0, 2, pid)
    assert p.signing_bytes().startswith(DOMAIN_TAG)
    assert p.signing_bytes() != c.signing_bytes()  # same fields, different type
    # A checkpoint signature is exactly a certificate signature.
    assert Checkpoint(1, 0, 2, pid).signing_bytes() == commit_signing_bytes(1, pid)


@pytest.mark.parametrize(
    "fields, error",
    [
        ([2, 2, 1, 0, 0, b"\0" * 32, b"\0" * 64], "unknown version"),
        ([1, 99, 1, 0, 0, b"\0" * 32, b"\0" * 64], "type"),
        ([1, 2, 1, 0, 0, b"\0" * 31, b"\0" * 64], "32 bytes"),
        ([1, 2, 1, 0, 0, b"\0" * 32, b"\0" * 63], "64 bytes"),
        ([1, 2, 1, 0, 0, b"\0" * 32], "fields"),
        ([1, 2, -1, 0, 0, b"\0" * 32, b"\0" * 64], "outside"),
        ([1, 2, 1, 0, 5000, b"\0" * 32, b"\0" * 64], "outside"),
        ([1, 4, 1, 3, 0, b"\0" * 32, b"\0" * 64], "must be 0"),
        ([1, 2, 1, 0, 0, "text", b"\0" * 64], "expected bytes"),
    ],
)
def test_malformed_messages_name_the_problem(fields, error):
    with pytest.raises(DecodeError, match=error):
        decode_message(pack(fields))


def test_view_change_certificate_must_be_below_its_view():
    vc = all_messages()[4]
    fields = unpack(vc.encode(), max_bytes=1 << 20)
    fields[5][0] = 1  # prepared view == new view
    with pytest.raises(DecodeError, match="below the new view"):
        decode_message(pack(fields))


def test_size_bound():
    data = all_messages()[0].encode()
    with pytest.raises(DecodeError, match="exceeds"):
        decode_message(data, max_bytes=len(data) - 1)


def test_non_canonical_encoding_is_refused():
    data = all_messages()[1].encode()
    # The height 1 as a 2-byte uint8 (0xcc 0x01) instead of a positive fixint.
    assert data[:4] == b"\x97\x01\x02\x01"  # [version 1, PREPARE, height 1, ...
    with pytest.raises(DecodeError):
        decode_message(data[:3] + b"\xcc\x01" + data[4:])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_random_bytes_only_raise_decode_error(data):
    try:
        decode_message(data)
    except DecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(9)), st.data())
def test_mutated_messages_only_raise_decode_error(which, data):
    encoded = bytearray(all_messages()[which].encode())
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(encoded) - 1))
        encoded[pos] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(1, len(encoded)))
    try:
        decode_message(bytes(encoded[:cut]))
    except DecodeError:
        pass


def test_safety_state_round_trip():
    header, txs = make_header()
    cert = all_messages()[4].prepared
    state = SafetyState(3, 2, True, (2, TX[0]), (2, TX[1]), cert, (TX[0], bytes(64)))
    assert SafetyState.decode(state.encode()) == state
    empty = SafetyState(1, 0, False, None, None, None, None)
    assert SafetyState.decode(empty.encode()) == empty

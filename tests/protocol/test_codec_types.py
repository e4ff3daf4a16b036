"""Canonical encoding: every type round-trips, and no byte string makes a decoder raise
anything but DecodeError."""

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from chainnode.crypto import get_suite
from chainnode.protocol.codec import DecodeError, pack, unpack
from chainnode.protocol.merkle import MerkleProof
from chainnode.protocol.types import (
    Block,
    BlockHeader,
    CommitCertificate,
    Event,
    InvalidCertificate,
    Receipt,
    Transaction,
    commit_signing_bytes,
    quorum_size,
)

b32 = st.binary(min_size=32, max_size=32)
b20 = st.binary(min_size=20, max_size=20)
u64 = st.integers(min_value=0, max_value=2**64 - 1)
name = st.text(max_size=64)
values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1) | st.binary(max_size=64) | st.text(max_size=32),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)

transactions = st.builds(
    Transaction,
    chain_id=name,
    group_id=name,
    nonce=st.binary(min_size=1, max_size=32),
    block_limit=u64,
    to=st.sampled_from([b""]) | b20,
    method=name,
    args=st.lists(values, max_size=4),
    gas_limit=u64,
    sender_pub=st.binary(min_size=65, max_size=65) | st.binary(min_size=32, max_size=32),
    signature=st.binary(min_size=64, max_size=64),
)
headers = st.builds(
    BlockHeader,
    parent_hash=b32,
    height=u64,
    timestamp_ms=u64,
    proposer_index=st.integers(0, 1024),
    sealer_set_hash=b32,
    tx_root=b32,
    receipt_root=b32,
    state_root=b32,
    gas_used=u64,
    tx_count=st.just(0),
    extra=st.binary(max_size=64),
)
events = st.builds(Event, address=b20, name=name, fields=st.dictionaries(st.text(max_size=16), values, max_size=4))
receipts = st.builds(
    Receipt,
    tx_hash=b32,
    status=st.integers(0, 255),
    gas_used=u64,
    output=values,
    contract_address=st.sampled_from([b""]) | b20,
    events=st.lists(events, max_size=3),
    error_type=name,
    error_message=st.text(max_size=100),
)
certificates = st.builds(
    CommitCertificate,
    height=u64,
    block_hash=b32,
    signatures=st.lists(st.integers(0, 1024), unique=True, max_size=6).map(sorted).map(lambda ix: [(i, bytes([i % 256]) * 64) for i in ix]),
)
proofs = st.builds(MerkleProof, suite=st.sampled_from(["sm", "ed25519"]), index=u64, leaf_count=u64, siblings=st.lists(b32, max_size=8))


@st.composite
def blocks(draw):
    txs = draw(st.lists(transactions, max_size=3))
    header = draw(headers)
    from dataclasses import replace

    return Block(header=replace(header, tx_count=len(txs)), transactions=txs)


TYPES = [
    (Transaction, transactions),
    (BlockHeader, headers),
    (Block, blocks()),
    (Receipt, receipts),
    (CommitCertificate, certificates),
    (MerkleProof, proofs),
]
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("cls,strategy", TYPES, ids=[t[0].__name__ for t in TYPES])
def test_round_trip(cls, strategy):
    @FAST
    @given(strategy)
    def check(obj):
        raw = obj.encode()
        again = cls.decode(raw)
        assert again == obj
        assert again.encode() == raw

    check()


@pytest.mark.parametrize("cls,strategy", TYPES, ids=[t[0].__name__ for t in TYPES])
def test_mutated_bytes_raise_only_decode_error(cls, strategy):
    @FAST
    @given(strategy, st.data())
    def check(obj, data):
        raw = bytearray(obj.encode())
        kind = data.draw(st.sampled_from(["flip", "truncate", "extend", "splice"]))
        if kind == "flip":
            i = data.draw(st.integers(0, len(raw) - 1))
            raw[i] ^= data.draw(st.integers(1, 255))
        elif kind == "truncate":
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        elif kind == "extend":
            raw += data.draw(st.binary(min_size=1, max_size=8))
        else:
            i = data.draw(st.integers(0, len(raw)))
            raw[i:i] = data.draw(st.binary(min_size=1, max_size=8))
        try:
            decoded = cls.decode(bytes(raw))
        except DecodeError:
            return
        # A mutation that still decodes must be a different, valid, canonical object.
        assert decoded.encode() == bytes(raw)

    check()


@pytest.mark.parametrize("cls", [t[0] for t in TYPES], ids=[t[0].__name__ for t in TYPES])
@settings(max_examples=300, deadline=None)
@given(raw=st.binary(max_size=300))
def test_random_bytes_raise_only_decode_error(cls, raw):
    try:
        cls.decode(raw)
    except DecodeError:
        pass


@pytest.mark.parametrize(
    "raw,why",
    [
        (b"", "empty"),
        (msgpack.packb([2, "c", "g", b"n", 1, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]), "unknown version"),
        (msgpack.packb([1, "c", "g", b"n", 1, b"", "m", [], 1, b"\x04" * 65]), "fields"),
        (msgpack.packb([1, "c", "g", b"", 1, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]), "nonce"),
        (msgpack.packb([1, "c", "g", b"n", 1.5, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]), "block_limit"),
        (msgpack.packb([1, "c", "g", b"n", True, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]), "block_limit"),
        (msgpack.packb([1, "c", "g", b"n", -1, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]), "block_limit"),
        (msgpack.packb([1, "c", "g", b"n", 1, b"\x01" * 19, "m", [], 1, b"\x04" * 65, b"s" * 64]), "to"),
        (msgpack.packb([1, "c", "g", b"n", 1, b"", "m", [1.0], 1, b"\x04" * 65, b"s" * 64]), "float"),
        (msgpack.packb([1, "c", "g", b"n", 1, b"", "m", [], 1, b"\x04" * 64, b"s" * 64]), "sender_pub"),
        (msgpack.packb([1, "c", "g", b"n", 1, b"", "m", [], 1, b"\x04" * 65, "s" * 64]), "signature"),
        (msgpack.packb([1, "c" * 65, "g", b"n", 1, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]), "chain_id"),
        (msgpack.packb({"version": 1}), "list"),
        (msgpack.packb([1, "c", "g", b"n", 1, b"", "m", [], 1, b"\x04" * 65, b"s" * 64]) + b"\x00", "malformed"),
        (b"\xcd\x00\x01", "non-canonical"),  # 1 as uint16
        (b"\xd9\x01a", "non-canonical"),  # "a" as str8
        (b"\xc7\x01\x05a", "extension"),
        (b"\xa2\xff\xfe", "malformed"),  # invalid utf-8
    ],
)
def test_specific_bad_transactions(raw, why):
    with pytest.raises(DecodeError, match=why):
        Transaction.decode(raw)


def test_size_bound_is_checked_before_parsing():
    with pytest.raises(DecodeError, match="exceeds the limit"):
        unpack(b"\x90" * 100, max_bytes=10)
    with pytest.raises(DecodeError, match="exceeds the limit"):
        Transaction.decode(pack([1] + [b"x" * 2000]), max_bytes=1000)


def test_deeply_nested_args_are_refused():
    deep: list = []
    for _ in range(40):
        deep = [deep]
    raw = pack([1, "c", "g", b"n", 1, b"", "m", [deep], 1, b"\x04" * 65, b"s" * 64])
    with pytest.raises(DecodeError, match="nested deeper"):
        Transaction.decode(raw)


def test_block_body_must_match_header_count():
    header = BlockHeader(bytes(32), 1, 0, 0, bytes(32), bytes(32), bytes(32), bytes(32), 0, 2)
    with pytest.raises(DecodeError, match="header says 2"):
        Block.decode(pack([1, header.to_fields(), []]))


def test_event_fields_must_be_sorted_and_unique():
    with pytest.raises(DecodeError, match="sorted"):
        Event.from_fields([b"a" * 20, "E", [["b", 1], ["a", 2]]])
    with pytest.raises(DecodeError, match="sorted"):
        Event.from_fields([b"a" * 20, "E", [["a", 1], ["a", 2]]])


def test_pack_refuses_tuples_and_unpack_refuses_floats_in_values():
    with pytest.raises(ValueError):
        pack((1, 2))
    with pytest.raises(DecodeError, match="float"):
        Receipt.decode(msgpack.packb([1, b"h" * 32, 0, 0, 0.5, b"", [], "", ""]))


@pytest.mark.parametrize("suite_name", ["sm", "ed25519"])
def test_transaction_hash_excludes_signature_and_verifies(suite_name):
    suite = get_suite(suite_name)
    priv, pub = suite.generate_keypair()
    tx = Transaction("chain", "group", b"\x01" * 16, 100, b"\x02" * 20, "transfer", [b"\x03" * 20, 5], 100_000, pub)
    signed = tx.signed(suite, priv)
    assert signed.hash(suite) == tx.hash(suite)
    assert signed.verify_signature(suite)
    assert signed.sender(suite) == suite.address(pub)
    tampered = Transaction.decode(signed.encode().replace(b"transfer", b"transfes"))
    assert not tampered.verify_signature(suite)


@pytest.mark.parametrize("n,q", [(1, 1), (2, 2), (3, 3), (4, 3), (5, 4), (6, 5), (7, 5), (10, 7)])
def test_quorum_size(n, q):
    assert quorum_size(n) == q


def test_certificate_verification():
    suite = get_suite("ed25519")
    keys = [suite.generate_keypair() for _ in range(4)]
    pubs = [pub for _, pub in keys]
    block_hash = b"\x09" * 32
    msg = commit_signing_bytes(7, block_hash)
    sigs = [(i, suite.sign(keys[i][0], msg)) for i in (0, 2, 3)]
    cert = CommitCertificate(7, block_hash, sigs)
    cert.verify(suite, pubs)
    with pytest.raises(InvalidCertificate, match="quorum"):
        CommitCertificate(7, block_hash, sigs[:2]).verify(suite, pubs)
    with pytest.raises(InvalidCertificate, match="does not verify"):
        CommitCertificate(8, block_hash, sigs).verify(suite, pubs)
    with pytest.raises(InvalidCertificate, match="unique"):
        CommitCertificate(7, block_hash, [sigs[0], sigs[0], sigs[1]]).verify(suite, pubs)
    with pytest.raises(InvalidCertificate, match="not in a set"):
        CommitCertificate(7, block_hash, sigs[:2] + [(9, sigs[2][1])]).verify(suite, pubs)
    with pytest.raises(DecodeError, match="unique and ascending"):
        CommitCertificate.decode(pack([1, 7, block_hash, [[2, b"s" * 64], [1, b"s" * 64]]]))

"""Sans-IO pieces of the network layer: framing, Hello, backoff, penalties, identity."""

from __future__ import annotations

import socket

import multiaddr
import pytest

from chainnode.channel.handshake import VERDICT_BYTES_MAX
from chainnode.crypto import get_suite
from chainnode.network import NetworkLimits, PortInUse, peer_id_from_seed
from chainnode.network.errors import ProtocolViolation
from chainnode.network.framing import KEEPALIVE_FRAME, FrameDecoder, FrameReader, encode_frame, encode_frames
from chainnode.network.handshake import Hello, Verdict, make_hello, verify_hello
from chainnode.network.peers import PeerInfo, PeerTable
from chainnode.network.policing import PenaltyBox, TokenBucket
from chainnode.network.service import check_port_free
from chainnode.network.supervisor import Backoff
from chainnode.protocol.codec import pack
from tests.network.cluster import GENESIS, make_members


def test_frames_split_anywhere_decode_in_order():
    payloads = [bytes([i % 251]) * (1 + i * 7) for i in range(50)]
    wire = encode_frames(payloads)
    assert wire == b"".join(encode_frame(p) for p in payloads)
    for step in (1, 3, 4, 5, 64, 1000, len(wire)):
        dec = FrameDecoder(10_000)
        out = []
        for i in range(0, len(wire), step):
            out.extend(dec.feed(wire[i : i + step]))
        assert out == payloads
        assert dec.buffered_bytes == 0


def test_oversized_frames_are_violations_before_the_body_arrives():
    dec = FrameDecoder(100)
    with pytest.raises(ProtocolViolation) as e:
        dec.feed((101).to_bytes(4, "big"))  # header only: refused before any body is buffered
    assert e.value.reason == "oversized frame"
    with pytest.raises(ProtocolViolation) as e:
        FrameDecoder(1 << 20).feed(b"\xde\xad\xbe\xef garbage")
    assert e.value.reason == "oversized frame"
    assert FrameDecoder(100).feed(encode_frame(b"x" * 100)) == [b"x" * 100]


def test_keepalives_are_dropped_and_counted():
    dec = FrameDecoder(100)
    assert dec.feed(KEEPALIVE_FRAME + encode_frame(b"a") + KEEPALIVE_FRAME[:2]) == [b"a"]
    assert dec.feed(KEEPALIVE_FRAME[2:] + encode_frame(b"b")) == [b"b"]
    assert dec.keepalives == 2


def _hello_setup():
    suite = get_suite("sm")
    a, b, c = make_members(3)
    table = PeerTable([a.info, b.info])
    from libp2p.peer.id import ID

    aid, bid = ID.from_base58(a.peer_id).to_bytes(), ID.from_base58(b.peer_id).to_bytes()
    return suite, a, b, c, table, aid, bid


def test_hello_roundtrip_and_each_refusal_reason():
    suite, a, b, c, table, aid, bid = _hello_setup()
    hello = make_hello(suite, a.priv, a.pub, GENESIS, aid, bid)
    decoded = Hello.decode(hello.encode(), max_bytes=4096)
    assert decoded == hello
    assert verify_hello(decoded, suite=suite, genesis_hash=GENESIS, our_id=bid, remote_id=aid, admitted=table) == a.info

    def reason(h: Hello, **kw) -> str:
        args = dict(suite=suite, genesis_hash=GENESIS, our_id=bid, remote_id=aid, admitted=table) | kw
        with pytest.raises(ProtocolViolation) as e:
            verify_hello(h, **args)
        return e.value.reason

    other_genesis = b"\x01" * 32
    assert reason(make_hello(suite, a.priv, a.pub, other_genesis, aid, bid)) == "wrong genesis"
    assert reason(hello, admitted=PeerTable([b.info])) == "unknown peer"
    assert reason(make_hello(suite, c.priv, c.pub, GENESIS, aid, bid)) == "key mismatch"
    forged = Hello(hello.version, hello.genesis_hash, hello.sender, hello.receiver, hello.consensus_pub, b"", hello.info, b"\x00" * 64)
    assert reason(forged) == "bad signature"
    # The credentials (certificate chain) are signed too: swapping them breaks the signature.
    with_chain = make_hello(suite, a.priv, a.pub, GENESIS, aid, bid, b"chain bytes")
    assert Hello.decode(with_chain.encode(), max_bytes=4096).credentials == b"chain bytes"
    swapped = Hello(with_chain.version, with_chain.genesis_hash, aid, bid, a.pub, b"other chain", with_chain.info, with_chain.signature)
    assert reason(swapped) == "bad signature"
    # So is what a node says about itself: a relay cannot make it claim another version.
    claimed = Hello(hello.version, hello.genesis_hash, aid, bid, a.pub, b"", (("software", "9.9.9"),), hello.signature)
    assert reason(claimed) == "bad signature"
    assert reason(hello, our_id=aid) == "wrong receiver"
    assert reason(hello, remote_id=bid) == "peer id mismatch"
    with pytest.raises(ProtocolViolation) as e:
        Hello.decode(b"\x93\x01\x02\x03", max_bytes=4096)
    assert e.value.reason == "bad hello"
    # A version-1 Hello (no credentials field) from an older node is refused by version.
    v1 = pack([1, GENESIS, aid, bid, a.pub, b"\x00" * 64])
    with pytest.raises(ProtocolViolation, match="unknown version 1"):
        Hello.decode(v1, max_bytes=4096)


def test_hello_info_carries_the_software_version_and_tolerates_later_keys():
    from chainnode.protocol.versions import SOFTWARE_VERSION

    suite, a, b, c, table, aid, bid = _hello_setup()
    hello = make_hello(suite, a.priv, a.pub, GENESIS, aid, bid)
    assert Hello.decode(hello.encode(), max_bytes=4096).software == SOFTWARE_VERSION
    # A later version adds a key: still decoded, and its signature (over every pair) verifies.
    later = Hello(hello.version, GENESIS, aid, bid, a.pub, b"", (("software", "0.9.0"), ("features", 7)), b"").signed_with(suite, a.priv)
    decoded = Hello.decode(later.encode(), max_bytes=4096)
    assert decoded.software == "0.9.0" and decoded.signature_valid(suite, a.pub)

    def refused(info) -> str:
        fields = [3, GENESIS, aid, bid, a.pub, b"", info, b"\x00" * 64]
        with pytest.raises(ProtocolViolation) as e:
            Hello.decode(pack(fields), max_bytes=4096)
        return e.value.reason

    for bad in ([], [["software", "not a version"]], [["software", 2]], [["software", "0.2.0"], ["software", "0.3.0"]], {"software": "0.2.0"},
                [["software", "0.2.0"]] + [[f"k{i}", 1] for i in range(16)], [["software", "0.2.0", "extra"]], [["x" * 65, 1]]):
        assert refused(bad) == "bad hello", bad


def test_verdict_roundtrip_and_bounds():
    ok = Verdict("")
    assert ok.accepted and Verdict.decode(ok.encode()) == ok
    no = Verdict("certificate revoked", "node certificate 'node3' (serial ab) is revoked")
    assert not no.accepted and Verdict.decode(no.encode()) == no
    assert len(Verdict("x" * 10_000, "é" * 10_000).encode()) <= VERDICT_BYTES_MAX  # truncated, never oversized
    with pytest.raises(ProtocolViolation) as e:
        Verdict.decode(pack([1, 2, ""]))
    assert e.value.reason == "bad verdict"


async def test_frame_reader_keeps_bytes_for_the_next_frame():
    class Stream:
        def __init__(self, chunks):
            self.chunks = list(chunks)

        async def read(self, n):
            return self.chunks.pop(0) if self.chunks else b""

    both = encode_frame(b"hello") + encode_frame(b"verdict")
    reader = FrameReader(Stream([both[:3], both[3:]]), 100)
    assert await reader.read() == b"hello"
    assert await reader.read() == b"verdict"
    with pytest.raises(ProtocolViolation, match="trailing bytes"):
        await FrameReader(Stream([both + encode_frame(b"extra")]), 100).read()
    with pytest.raises(EOFError):
        await FrameReader(Stream([both[:5]]), 100).read()
    with pytest.raises(ProtocolViolation):
        Hello.decode(b"\xc1garbage", max_bytes=4096)


async def test_inbox_is_fair_between_a_flooding_peer_and_an_honest_one():
    import trio

    from chainnode.network.inbox import FairInbox
    from chainnode.network.metrics import Counters

    send, recv = trio.open_memory_channel(5)
    counters = Counters()
    inbox = FairInbox(per_peer_frames_max=100, out=send, counters=counters)
    for i in range(10_000):
        inbox.put(7, b"flood")
    for i in range(10):
        assert inbox.put(1, b"honest %d" % i)
    assert counters["frames_dropped_in"] == 10_000 - 100
    async with trio.open_nursery() as nursery:
        nursery.start_soon(inbox.run)
        got = [await recv.receive() for _ in range(110)]
        nursery.cancel_scope.cancel()
    assert [p for i, p in got if i == 1] == [b"honest %d" % i for i in range(10)]
    # Round-robin: the honest frames are not stuck behind the flood.
    assert max(n for n, (i, _) in enumerate(got) if i == 1) < 30


def test_backoff_doubles_to_the_cap_with_bounded_deterministic_jitter():
    b1, b2 = Backoff(100, 5000, b"peer"), Backoff(100, 5000, b"peer")
    delays = [b1.attempted(0.0) for _ in range(10)]
    assert delays == [b2.attempted(0.0) for _ in range(10)]
    for i, d in enumerate(delays):
        base = min(5000, 100 * 2**i)
        assert 0.8 * base <= d <= 1.2 * base
    b1.reset()
    assert 80 <= b1.attempted(0.0) <= 120


def test_penalty_box_bans_longer_per_strike_and_forgets():
    box = PenaltyBox(base_ms=1000, max_ms=8000, forget_ms=60_000)
    assert box.strike("p", 0) == 1000
    assert box.banned("p", 999) and not box.banned("p", 1000)
    assert box.strike("p", 2000) == 2000
    assert [box.strike("p", 3000) for _ in range(3)] == [4000, 8000, 8000]
    assert box.strike("p", 3000 + 60_001) == 1000  # forgotten after a quiet period


def test_token_bucket():
    tb = TokenBucket(rate_per_s=10, burst=5, now_ms=0)
    assert tb.take(0, 5) and not tb.take(0, 1)
    assert tb.take(100, 1) and not tb.take(100, 1)


def test_identity_is_deterministic_and_distinct():
    assert peer_id_from_seed(b"\x01" * 32) == peer_id_from_seed(b"\x01" * 32)
    assert peer_id_from_seed(b"\x01" * 32) != peer_id_from_seed(b"\x02" * 32)
    assert peer_id_from_seed(b"\x01" * 32).startswith("12D3KooW")
    with pytest.raises(ValueError):
        peer_id_from_seed(b"short")


def test_peer_info_and_limits_validation():
    (m,) = make_members(1)
    with pytest.raises(ValueError):
        PeerInfo(0, "not-a-peer-id", [], m.pub)
    with pytest.raises(ValueError):
        PeerInfo(0, m.peer_id, ["not a multiaddr"], m.pub)
    with pytest.raises(ValueError):
        PeerInfo(0, m.peer_id, [], m.pub, role="king")
    with pytest.raises(ValueError):
        PeerTable([m.info, m.info])
    with pytest.raises(ValueError):
        NetworkLimits(frame_bytes_max=0)
    with pytest.raises(ValueError):
        NetworkLimits(tx_batch_bytes_max=1024 * 1024)
    with pytest.raises(ValueError):
        NetworkLimits(keepalive_interval_ms=1000, peer_silence_timeout_ms=1500)


def test_port_in_use_is_refused_clearly():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} is in use"):
            check_port_free(multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"))
    check_port_free(multiaddr.Multiaddr(f"/ip4/127.0.0.1/tcp/{port}"))

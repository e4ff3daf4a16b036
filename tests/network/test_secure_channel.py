"""The SM channel between nodes (chainnode/network/secure.py), with real libp2p hosts on
127.0.0.1: what an `sm` chain negotiates, the X25519 Noise peers it refuses or (by the
genesis setting) accepts, and hostile raw sockets that speak multistream-select by hand to
reach the handshake and break it one way each. Each hostile connection comes from its own
loopback address (127.0.0.N), so the address bans it earns never touch the honest nodes
on 127.0.0.1."""

from __future__ import annotations

import logging

import multiaddr
import pytest
import trio
from libp2p.crypto.ed25519 import create_new_key_pair as ed25519_key_pair
from libp2p.crypto.secp256k1 import create_new_key_pair as secp256k1_key_pair
from libp2p.network.exceptions import SwarmException
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo as Libp2pPeerInfo

from chainnode.channel.handshake import (
    BAD_HANDSHAKE,
    OVERSIZED_FRAME,
    TRUNCATED_FRAME,
    ChannelError,
    ChannelRefused,
    PacketStream,
    Payload,
    RefusedByPeer,
    new_noise,
    run_handshake,
)
from chainnode.crypto import get_suite
from chainnode.network import NetworkLimits
from chainnode.network.identity import keypair_from_seed
from chainnode.network.policing import PenaltyBox
from chainnode.network.secure import BAD_IDENTITY, BANNED, PROTOCOL_ID, PURPOSE, identity_signature, proven_peer_id
from tests.network.cluster import (
    GENESIS,
    SUITE_NAME,
    Member,
    Noise25519OnlyNetwork,
    bare_host,
    drain,
    make_members,
    make_network,
    sorted_by_peer_id,
    start,
)

SM = str(PROTOCOL_ID)
MULTISTREAM = "/multistream/1.0.0"
# The victim's bans outlast anything a test waits for, even on a loaded machine.
VICTIM_LIMITS = NetworkLimits(penalty_base_ms=60000, penalty_max_ms=120000)


async def _until(predicate, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chainnode.network" and r.levelno >= logging.WARNING]


def _line(text: str) -> bytes:
    """A multistream-select message: varint length (one byte: these are short), text, newline."""
    data = text.encode() + b"\n"
    assert len(data) < 0x80
    return bytes([len(data)]) + data


class RawConnection:
    """A TCP connection to a node, from `source_ip`, that we drive byte by byte."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self._buffer = bytearray()

    @classmethod
    async def open(cls, port: int, source_ip: str) -> "RawConnection":
        return cls(await trio.open_tcp_stream("127.0.0.1", port, local_address=source_ip))

    async def read_line(self) -> str:
        while not self._buffer or len(self._buffer) < 1 + self._buffer[0]:
            data = await self.stream.receive_some(4096)
            if not data:
                raise EOFError("the node closed the connection")
            self._buffer += data
        size = self._buffer[0]
        text = bytes(self._buffer[1 : 1 + size]).decode()
        del self._buffer[: 1 + size]
        return text

    async def negotiate(self, protocol: str = SM) -> None:
        """Multistream-select by hand, as libp2p's dialer does it."""
        await self.stream.send_all(_line(MULTISTREAM) + _line(protocol))
        assert await self.read_line() == MULTISTREAM + "\n"
        assert await self.read_line() == protocol + "\n"
        assert not self._buffer  # the node says nothing more until we send Noise message 1

    def packets(self, sent: list[bytes] | None = None) -> PacketStream:
        async def send_all(data: bytes) -> None:
            if sent is not None:
                sent.append(data)
            await self.stream.send_all(data)

        return PacketStream(self.stream.receive_some, send_all)

    async def closed_by_node(self) -> bool:
        """True once the node has closed the connection (EOF, or a reset if it left our
        bytes unread)."""
        with trio.fail_after(10):
            try:
                while await self.stream.receive_some(4096):
                    pass
            except trio.BrokenResourceError:
                pass
        return True

    async def aclose(self) -> None:
        await self.stream.aclose()


def _payload(identity: Member, static_pub: bytes, genesis: bytes = GENESIS) -> Payload:
    kp = keypair_from_seed(identity.seed)
    return Payload("node", genesis, identity_key=kp.public_key.serialize(), identity_sig=identity_signature(kp, static_pub))


async def _handshake_as(raw: RawConnection, identity: Member, static_priv: bytes, static_pub: bytes, sent: list[bytes] | None = None):
    """Run the real initiator handshake on `raw` with `identity`'s host key and the given
    static key; returns the Handshake or the ChannelError."""
    try:
        return await run_handshake(
            raw.packets(sent), initiator=True, suite_name=SUITE_NAME, purpose=PURPOSE, certified_priv=static_priv,
            payload=_payload(identity, static_pub), check=lambda payload, remote_static: None,
        )
    except ChannelError as exc:
        return exc


def test_the_identity_binding_proves_a_peer_id_and_refuses_everything_else():
    _, static_pub = get_suite(SUITE_NAME).generate_keypair()
    kp = ed25519_key_pair(b"\x01" * 32)
    good = Payload("node", GENESIS, identity_key=kp.public_key.serialize(), identity_sig=identity_signature(kp, static_pub))
    peer_id, key = proven_peer_id(good, static_pub)
    assert peer_id == ID.from_pubkey(kp.public_key) and key.serialize() == good.identity_key
    secp = secp256k1_key_pair()
    cases = [
        (Payload("node", GENESIS, identity_key=b"\xff\xff garbage", identity_sig=good.identity_sig), BAD_IDENTITY),
        (Payload("node", GENESIS, identity_key=b"", identity_sig=good.identity_sig), BAD_IDENTITY),
        (Payload("node", GENESIS, identity_key=secp.public_key.serialize(), identity_sig=identity_signature(secp, static_pub)), BAD_IDENTITY),
        (Payload("node", GENESIS, identity_key=good.identity_key + b"\x00", identity_sig=good.identity_sig), BAD_IDENTITY),
        (Payload("node", GENESIS, identity_key=good.identity_key, identity_sig=good.identity_sig[:-1]), "bad signature"),
        (Payload("node", GENESIS, identity_key=good.identity_key, identity_sig=bytes(64)), "bad signature"),
    ]
    for payload, reason in cases:
        with pytest.raises(ChannelRefused) as refused:
            proven_peer_id(payload, static_pub)
        assert refused.value.reason == reason, payload
    _, other_static = get_suite(SUITE_NAME).generate_keypair()
    with pytest.raises(ChannelRefused, match="did not sign the channel's static key"):
        proven_peer_id(good, other_static)  # a payload replayed with another static key


def test_a_penalty_can_be_forgiven():
    box = PenaltyBox(1000, 8000, 60000)
    box.strike("p", 0)
    box.strike("p", 10)
    assert box.banned("p", 100)
    box.forgive("p")
    assert not box.banned("p", 100) and box.strike("p", 200) == 1000  # strikes start over


def test_the_noise25519_setting_must_be_a_bool():
    a, b = make_members(2)
    with pytest.raises(ValueError, match="p2p_noise25519 must be true or false"):
        make_network(a, [a, b], p2p_noise25519="yes")


async def test_an_sm_cluster_negotiates_only_the_sm_channel():
    members = make_members(3)
    async with trio.open_nursery() as nursery:
        nets = [(await start(nursery, make_network(m, members))).net for m in members]
        for net in nets:
            await net.wait_connected(2, 10)
        for net in nets:
            assert sorted(net.security_protocols().values()) == [SM, SM]
            assert net.counters["connects_security:" + SM] == 2
        # What the node offers, asked the multistream-select way ("ls"): the SM channel only.
        raw = await RawConnection.open(members[0].port, "127.0.0.1")
        await raw.stream.send_all(_line(MULTISTREAM) + _line("ls"))
        assert await raw.read_line() == MULTISTREAM + "\n"
        assert await raw.read_line() == SM + "\n\n"
        await raw.aclose()
        assert nets[0].send(1, b"over SM4-GCM")
        assert await drain(nets[1].incoming, 1, timeout_s=5) == [(0, b"over SM4-GCM")]
        nursery.cancel_scope.cancel()


async def test_a_noise25519_peer_is_refused_unless_the_genesis_allows_it(caplog):
    # old: a node of a version before the SM channel (libp2p's X25519 Noise only). It has
    # the lowest peer id, so it is the one that dials (the dial rule).
    old, strict, *_ = sorted_by_peer_id(make_members(2))
    async with trio.open_nursery() as nursery:
        r_strict = await start(nursery, make_network(strict, [old, strict]))
        # A bare host offering X25519 Noise alone cannot even negotiate a security protocol.
        host = bare_host(old, [old, strict], noise25519_only=True)
        async with host.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            with pytest.raises(SwarmException):
                with trio.fail_after(5):
                    await host.connect(Libp2pPeerInfo(strict.info.id, strict.info.multiaddrs))
        assert any("failed to negotiate the secure protocol" in r.getMessage() for r in caplog.records if r.name.startswith("libp2p"))
        assert r_strict.net.connected_peers() == []
        r_strict.stop()
        await r_strict.stopped.wait()

    # A chain in a rolling upgrade: "p2p_noise25519": true. The new nodes speak the SM
    # channel among themselves and libp2p's Noise with the old one.
    old, a, b = sorted_by_peer_id(make_members(3))
    everyone = [old, a, b]
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, make_network(a, everyone, p2p_noise25519=True))
        rb = await start(nursery, make_network(b, everyone, p2p_noise25519=True))
        r_old = await start(nursery, make_network(old, everyone, network_class=Noise25519OnlyNetwork))
        for r in (ra, rb, r_old):
            await r.net.wait_connected(2, 10)
        assert ra.net.security_protocols() == {old.index: "/noise", b.index: SM}
        assert rb.net.security_protocols() == {old.index: "/noise", a.index: SM}
        assert r_old.net.security_protocols() == {a.index: "/noise", b.index: "/noise"}
        nursery.cancel_scope.cancel()


async def test_hostile_handshakes_are_cut_logged_counted_and_banned(caplog):
    caplog.set_level(logging.INFO)
    suite = get_suite(SUITE_NAME)
    # v: the victim; h: an honest peer; m: admitted but not running, whose keys the tests
    # use to make a real session (whose messages a later one replays) and a bad static key.
    v, h, m = make_members(3)
    members = [v, h, m]
    async with trio.open_nursery() as nursery:
        rv = await start(nursery, make_network(v, members, limits=VICTIM_LIMITS))
        rh = await start(nursery, make_network(h, members))
        await rv.net.wait_connected(1, 10)
        counters = rv.net.counters

        async def expect_cut(raw: RawConnection, reason: str, address: str) -> None:
            key = "disconnects:" + reason.replace(" ", "_")
            await _until(lambda: counters.get(key, 0) >= expected.get(key, 0) + 1)
            expected[key] = counters[key]
            assert await raw.closed_by_node()
            line = next(x for x in _warnings(caplog) if x.startswith(f"n{v.index}: address {address} misbehaved: {reason}"))
            assert "disconnected, banned for 60000 ms" in line
            await raw.aclose()
            # The ban holds: the next connection from that address is closed before any cryptography.
            banned = counters.get("refused:banned", 0)
            again = await RawConnection.open(v.port, address)
            await again.negotiate()
            try:
                await again.stream.send_all(b"\x00\x41" + bytes(65))  # a message 1
            except trio.BrokenResourceError:
                pass  # the node may have closed already
            assert await again.closed_by_node()
            assert counters["refused:banned"] == banned + 1
            await again.aclose()

        expected: dict[str, int] = {}

        # 1. A truncated packet: 100 bytes announced, 10 sent, then the end of the stream.
        raw = await RawConnection.open(v.port, "127.0.0.2")
        await raw.negotiate()
        await raw.stream.send_all(b"\x00\x64" + b"x" * 10)
        await raw.stream.send_eof()
        await expect_cut(raw, TRUNCATED_FRAME, "127.0.0.2")

        # 2. An oversized packet: 65,535 bytes announced for a handshake message.
        raw = await RawConnection.open(v.port, "127.0.0.3")
        await raw.negotiate()
        await raw.stream.send_all(b"\xff\xff" + b"x" * 100)
        await expect_cut(raw, OVERSIZED_FRAME, "127.0.0.3")

        # 3. Message 3 with one bit flipped (in the encrypted payload).
        raw = await RawConnection.open(v.port, "127.0.0.4")
        await raw.negotiate()
        noise = new_noise(SUITE_NAME, PURPOSE, m.priv, initiator=True)
        packets = raw.packets()
        await packets.write(bytes(noise.write_message(b"")))
        noise.read_message(await packets.read())
        msg3 = bytearray(noise.write_message(_payload(m, m.pub).encode()))
        msg3[-20] ^= 0x01
        await packets.write(bytes(msg3))
        await expect_cut(raw, BAD_HANDSHAKE, "127.0.0.4")

        # 4. A replayed message 3. First a real session as m (accepted: m is admitted with
        # that key); we record what we sent, then hang up before the muxer.
        raw = await RawConnection.open(v.port, "127.0.0.5")
        await raw.negotiate()
        sent: list[bytes] = []
        accepted = await _handshake_as(raw, m, m.priv, m.pub, sent)
        assert not isinstance(accepted, ChannelError), accepted
        await raw.aclose()
        msg1, msg3 = sent[0], sent[1]
        raw = await RawConnection.open(v.port, "127.0.0.5")
        await raw.negotiate()
        packets = raw.packets()
        await raw.stream.send_all(msg1)
        await packets.read()  # the victim's fresh message 2: a new ephemeral key, so...
        await raw.stream.send_all(msg3)  # ...the old message 3 fails its tag
        await expect_cut(raw, BAD_HANDSHAKE, "127.0.0.5")

        # 5. A static key that is not m's listed consensus key, signed by m's host key: the
        # payload proves m's peer id, so the ban is m's, wherever it connects from.
        other_priv, other_pub = suite.generate_keypair()
        raw = await RawConnection.open(v.port, "127.0.0.6")
        await raw.negotiate()
        refused = await _handshake_as(raw, m, other_priv, other_pub)
        assert isinstance(refused, RefusedByPeer) and refused.verdict.reason == "key mismatch", refused
        assert await raw.closed_by_node()
        await raw.aclose()
        assert counters["disconnects:key_mismatch"] == 1
        line = next(x for x in _warnings(caplog) if x.startswith(f"n{v.index}: peer {m.index} ({m.peer_id}) misbehaved: key mismatch"))
        assert "banned for 60000 ms" in line
        raw = await RawConnection.open(v.port, "127.0.0.7")  # m's right key, another address: m is banned
        await raw.negotiate()
        refused = await _handshake_as(raw, m, m.priv, m.pub)
        assert isinstance(refused, RefusedByPeer) and refused.verdict.reason == BANNED, refused
        await raw.aclose()

        # 6. A dApp's payload (role "client") on the node-to-node port.
        raw = await RawConnection.open(v.port, "127.0.0.8")
        await raw.negotiate()
        with pytest.raises(RefusedByPeer) as client_refused:
            await run_handshake(
                raw.packets(), initiator=True, suite_name=SUITE_NAME, purpose=PURPOSE, certified_priv=other_priv,
                payload=Payload("client", GENESIS), check=lambda payload, remote_static: None,
            )
        refused = client_refused.value
        assert isinstance(refused, RefusedByPeer) and refused.verdict.reason == "not a node", refused
        assert "dApps use the node's channel port" in refused.verdict.detail
        await _until(lambda: counters.get("disconnects:not_a_node", 0) == 1)  # the victim counts once it has read our Verdict
        assert await raw.closed_by_node()
        await raw.aclose()

        # No traceback for any of it, and the node still serves its honest peer.
        assert not any(r.exc_info for r in caplog.records if r.name == "chainnode.network")
        assert rv.net.connected_peers() == [h.index] and rh.net.connected_peers() == [v.index]

        async def echo(peer_index: int, payload: bytes) -> bytes:
            return payload

        rv.net.register_handler("/chainnode/echo/1", echo)
        assert await rh.net.request(v.index, "/chainnode/echo/1", b"still there?") == b"still there?"
        assert rh.net.send(v.index, b"hello")
        assert await drain(rv.net.incoming, 1, timeout_s=5) == [(h.index, b"hello")]
        nursery.cancel_scope.cancel()

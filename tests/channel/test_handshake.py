"""The handshake and the channel under honest and hostile peers, over in-memory streams.

The hostile side drives the real Noise state machine by hand (chainnode.channel.handshake.
new_noise) so each test breaks exactly one thing: a truncated or oversized packet, a flipped
bit, a replayed message, a payload where none belongs, the wrong prologue."""

import pytest
import trio
import trio.testing

from chainnode.channel.handshake import (
    BAD_HANDSHAKE,
    BAD_PAYLOAD,
    OVERSIZED_FRAME,
    TRUNCATED_FRAME,
    ChannelError,
    ChannelRefused,
    PacketStream,
    Payload,
    RefusedByPeer,
    Verdict,
    new_noise,
    run_handshake,
)
from chainnode.channel.stream import BAD_FRAME, SecureStream, secure
from chainnode.crypto import get_suite

GENESIS = bytes(range(32))
NODE = Payload("node", GENESIS, credentials=b"node chain")
CLIENT = Payload("client", b"", credentials=b"client chain")


def keys(suite_name="sm"):
    return get_suite(suite_name).generate_keypair()


def accept_all(payload, remote_static):
    return payload


async def pair(suite_name="sm", *, check_i=accept_all, check_r=accept_all, purpose_i="rpc", purpose_r="rpc"):
    """Both sides honest; returns (initiator result, responder result): a SecureStream or the exception."""
    a, b = trio.testing.memory_stream_pair()
    (ia, _), (rb, _) = keys(suite_name), keys(suite_name)
    out = {}

    async def side(name, stream, initiator, priv, payload, check, purpose):
        try:
            out[name] = await secure(stream, initiator=initiator, suite_name=suite_name, purpose=purpose, certified_priv=priv, payload=payload, check=check)
        except ChannelError as exc:
            out[name] = exc
            await stream.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(side, "i", a, True, ia, CLIENT, check_i, purpose_i)
        nursery.start_soon(side, "r", b, False, rb, NODE, check_r, purpose_r)
    return out["i"], out["r"]


@pytest.mark.parametrize("suite_name,protocol", [("sm", "Noise_XX_SM2_SM4GCM_SM3"), ("ed25519", "Noise_XX_25519_ChaChaPoly_SHA256")])
async def test_honest_handshake_and_messages(suite_name, protocol):
    i, r = await pair(suite_name)
    assert isinstance(i, SecureStream) and isinstance(r, SecureStream)
    assert i.handshake.protocol == r.handshake.protocol == protocol
    assert i.handshake.handshake_hash == r.handshake.handshake_hash
    assert i.handshake.remote == NODE and r.handshake.remote == CLIENT
    big = bytes(range(256)) * 1000  # spans several Noise messages
    async def send_both():
        await i.send_message(big)
        await i.send_message(b"")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_both)
        assert await r.receive_message() == big
        assert await r.receive_message() == b""
    await r.send_message(b"pong")
    assert await i.receive_message() == b"pong"


async def test_the_static_key_is_the_certified_key():
    seen = {}
    a, b = trio.testing.memory_stream_pair()
    (ia, ia_pub), (rb, rb_pub) = keys(), keys()

    def remember(name):
        def check(payload, remote_static):
            seen[name] = remote_static

        return check

    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: secure(a, initiator=True, suite_name="sm", purpose="rpc", certified_priv=ia, payload=CLIENT, check=remember("i")))
        nursery.start_soon(lambda: secure(b, initiator=False, suite_name="sm", purpose="rpc", certified_priv=rb, payload=NODE, check=remember("r")))
    assert seen == {"i": rb_pub, "r": ia_pub}


async def test_refusal_reaches_the_refused_side_with_the_reason():
    def refuse(payload, remote_static):
        raise ChannelRefused("certificate revoked", "serial 1f2e; ask your agency for a new one")

    i, r = await pair(check_r=refuse)
    assert isinstance(r, ChannelRefused) and r.reason == "certificate revoked"
    assert isinstance(i, RefusedByPeer)
    assert i.verdict == Verdict("certificate revoked", "serial 1f2e; ask your agency for a new one")
    assert "certificate revoked" in str(i) and "ask your agency" in str(i)


async def test_both_refuse_each_keeps_its_own_reason():
    def refuse(reason):
        def check(payload, remote_static):
            raise ChannelRefused(reason)

        return check

    i, r = await pair(check_i=refuse("not a consortium node"), check_r=refuse("wrong CA"))
    assert isinstance(i, ChannelRefused) and i.reason == "not a consortium node"
    assert isinstance(r, ChannelRefused) and r.reason == "wrong CA"


async def test_purposes_do_not_mix():
    i, r = await pair(purpose_i="p2p", purpose_r="rpc")
    assert isinstance(i, ChannelError) and i.reason == BAD_HANDSHAKE  # msg 2 fails: the prologues differ


# ---- a hostile initiator against an honest responder ------------------------------------


async def responder_outcome(attack, suite_name="sm"):
    """Run an honest responder against `attack(packets, stream)`; return what the responder raised."""
    a, b = trio.testing.memory_stream_pair()
    rb, _ = keys(suite_name)
    result = {}

    async def responder():
        try:
            await run_handshake(
                PacketStream(b.receive_some, b.send_all), initiator=False, suite_name=suite_name, purpose="rpc",
                certified_priv=rb, payload=NODE, check=accept_all,
            )
            result["r"] = None
        except ChannelError as exc:
            result["r"] = exc
        await b.aclose()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(responder)
        try:
            await attack(PacketStream(a.receive_some, a.send_all), a)
        except (ChannelError, trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the responder hung up on the attack: what it raised is the result
        await a.aclose()
    return result["r"]


async def test_truncated_packet():
    async def attack(packets, stream):
        await stream.send_all((65).to_bytes(2, "big") + b"\x04" + bytes(20))
        await stream.aclose()

    exc = await responder_outcome(attack)
    assert exc.reason == TRUNCATED_FRAME


async def test_oversized_packet_is_refused_on_its_length():
    async def attack(packets, stream):
        await stream.send_all((60_000).to_bytes(2, "big"))

    exc = await responder_outcome(attack)
    assert exc.reason == OVERSIZED_FRAME


async def test_payload_in_the_first_message():
    async def attack(packets, stream):
        noise = new_noise("sm", "rpc", keys()[0], initiator=True)
        await packets.write(bytes(noise.write_message(b"hello")))
        await packets.read()

    exc = await responder_outcome(attack)
    assert exc.reason == BAD_HANDSHAKE


def flip(data: bytes, index: int) -> bytes:
    out = bytearray(data)
    out[index] ^= 0x01
    return bytes(out)


@pytest.mark.parametrize("where", [0, 70, -1])  # in the static key, in the payload, in the tag
async def test_flipped_bit_in_message_3(where):
    async def attack(packets, stream):
        noise = new_noise("sm", "rpc", keys()[0], initiator=True)
        await packets.write(bytes(noise.write_message(b"")))
        noise.read_message(await packets.read())
        await packets.write(flip(bytes(noise.write_message(CLIENT.encode())), where))
        await packets.read()

    exc = await responder_outcome(attack)
    assert exc.reason == BAD_HANDSHAKE


async def test_replayed_message_3_from_an_earlier_session():
    recorded = []

    async def record(packets, stream):
        noise = new_noise("sm", "rpc", keys()[0], initiator=True)
        first = bytes(noise.write_message(b""))
        await packets.write(first)
        noise.read_message(await packets.read())
        third = bytes(noise.write_message(CLIENT.encode()))
        recorded.extend([first, third])
        await packets.write(third)
        await packets.write(noise.encrypt(Verdict("").encode()))
        await packets.read()

    assert await responder_outcome(record) is None  # the genuine session succeeds

    async def replay(packets, stream):
        await packets.write(recorded[0])
        await packets.read()  # a fresh responder ephemeral: the old message 3 cannot fit it
        await packets.write(recorded[1])
        await packets.read()

    exc = await responder_outcome(replay)
    assert exc.reason == BAD_HANDSHAKE


async def test_malformed_payload():
    async def attack(packets, stream):
        noise = new_noise("sm", "rpc", keys()[0], initiator=True)
        await packets.write(bytes(noise.write_message(b"")))
        noise.read_message(await packets.read())
        await packets.write(bytes(noise.write_message(b"\xc1 not msgpack")))
        await packets.read()

    exc = await responder_outcome(attack)
    assert exc.reason == BAD_PAYLOAD


async def test_a_point_off_the_curve_as_ephemeral():
    async def attack(packets, stream):
        await packets.write(b"\x04" + bytes(64))
        await packets.read()

    exc = await responder_outcome(attack)
    assert exc.reason == BAD_HANDSHAKE


# ---- the keyed channel ----------------------------------------------------------------------


async def test_flipped_bit_in_a_transport_packet_ends_the_channel():
    i, r = await pair()
    # Seal a message as the initiator would, flip one bit, and hand it to the responder raw.
    sealed = i.handshake.noise.encrypt((5).to_bytes(4, "big") + b"hello")
    await i.stream.send_all(len(sealed).to_bytes(2, "big") + flip(sealed, 7))
    with pytest.raises(ChannelError) as info:
        await r.receive_message()
    assert info.value.reason == BAD_FRAME


async def test_replayed_transport_packet_ends_the_channel():
    i, r = await pair()
    sealed = i.handshake.noise.encrypt((5).to_bytes(4, "big") + b"hello")
    await i.stream.send_all((len(sealed).to_bytes(2, "big") + sealed) * 2)
    assert await r.receive_message() == b"hello"
    with pytest.raises(ChannelError) as info:
        await r.receive_message()  # the nonce moved on: the copy does not authenticate
    assert info.value.reason == BAD_FRAME


async def test_oversized_message_is_refused_before_its_bytes():
    i, r = await pair()
    r.message_bytes_max = 1000
    sealed = i.handshake.noise.encrypt((1 << 30).to_bytes(4, "big"))
    await i.stream.send_all(len(sealed).to_bytes(2, "big") + sealed)
    with pytest.raises(ChannelError) as info:
        await r.receive_message()
    assert info.value.reason == OVERSIZED_FRAME
    with pytest.raises(ValueError):
        await i.send_message(bytes(i.message_bytes_max + 1))


async def test_truncated_transport_packet():
    i, r = await pair()
    sealed = i.handshake.noise.encrypt((5).to_bytes(4, "big") + b"hello")
    await i.stream.send_all(len(sealed).to_bytes(2, "big") + sealed[:10])
    await i.stream.aclose()
    with pytest.raises(ChannelError) as info:
        await r.receive_message()
    assert info.value.reason == TRUNCATED_FRAME

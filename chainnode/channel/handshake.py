"""The channel handshake: Noise XX, our payload in messages 2 and 3, then a verdict each way.

    initiator                                   responder
    msg 1  -> e                                  (no payload)
    msg 2  <- e, ee, s, es                       + responder's Payload (encrypted)
    msg 3  -> s, se                              + initiator's Payload (encrypted)
    both   <> Verdict (one transport message each way): accepted, or why not

Each message travels as a packet: a 2-byte big-endian length, then the bytes (as libp2p's
Noise). The prologue names the purpose ("p2p" between nodes, "rpc" between a dApp and a
node), so a handshake made for one can never complete as the other.

Noise proves each side holds the private half of the static key it sent. The Payload says
who that key belongs to: its certificate chain (the static key must be the certified key),
and for a node also its libp2p identity key with a signature over the static key, which
binds the connection's peer id. `check(payload, remote_static)` is the caller's policy
(genesis, admitted peers, certificate, role); it returns what the caller wants to keep or
raises ChannelRefused, whose reason both sides log: ours in our log, in the verdict for the
other side's. Failures of the handshake itself (a bad point, a flipped bit, a replayed or
truncated message, an oversized packet) raise ChannelError with a fixed reason.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from cryptography.exceptions import InvalidTag
from noise.connection import Keypair, NoiseConnection
from noise.exceptions import NoiseHandshakeError, NoiseInvalidMessage, NoiseMaxNonceError, NoiseValueError

from chainnode.channel.functions import BACKEND, protocol_name, static_keypair
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_list, expect_str, expect_version, pack, unpack

PROLOGUE_PREFIX = b"chainnode/channel/1/"
PURPOSES = ("p2p", "rpc")
PAYLOAD_VERSION = 1
ROLES = ("node", "client")
IDENTITY_DOMAIN = b"chainnode/channel/identity:"  # what a node's libp2p key signs: this + static key
CREDENTIALS_BYTES_MAX = 6144  # a certificate chain (chainnode.security.certs.CHAIN_BYTES_MAX)
IDENTITY_KEY_BYTES_MAX = 128
IDENTITY_SIG_BYTES_MAX = 128
PAYLOAD_BYTES_MAX = 8192
PACKET_BYTES_MAX = 65535  # a Noise message (the 2-byte length cannot say more)
HANDSHAKE_PACKET_BYTES_MAX = PAYLOAD_BYTES_MAX + 256  # 2 keys, 2 tags, the payload
VERDICT_VERSION = 1
VERDICT_BYTES_MAX = 4096
VERDICT_TEXT_CHARS_MAX = 400

# Reasons, verbatim in logs and counters.
BAD_HANDSHAKE = "bad handshake"  # a message failed Noise: bad key, bad tag (flipped bit, replay), bad layout
OVERSIZED_FRAME = "oversized frame"
TRUNCATED_FRAME = "truncated frame"
BAD_PAYLOAD = "bad payload"
BAD_VERDICT = "bad verdict"
CLOSED = "connection closed"
REFUSED_BY_PEER = "refused by peer"

Packets = Any  # see `PacketStream`


class ChannelError(Exception):
    """The handshake or the channel failed; `reason` is a short fixed phrase."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class ChannelRefused(ChannelError):
    """We refuse the other side (raised by a `check`): genesis, peer, certificate, role."""


class RefusedByPeer(ChannelError):
    """The other side refused us; `verdict` says why (print it: it is for the user)."""

    def __init__(self, verdict: "Verdict") -> None:
        super().__init__(REFUSED_BY_PEER, f"{verdict.reason}: {verdict.detail}" if verdict.detail else verdict.reason)
        self.verdict = verdict


@dataclass(frozen=True)
class Payload:
    role: str  # "node" or "client"
    genesis_hash: bytes  # 32 bytes; b"" from a client that does not know the chain yet
    identity_key: bytes = b""  # a node's libp2p public key (protobuf-encoded); b"" for a client
    identity_sig: bytes = b""  # that key's signature over IDENTITY_DOMAIN + the static public key
    credentials: bytes = b""  # the encoded certificate chain; b"" on a chain without a CA

    def encode(self) -> bytes:
        return pack([PAYLOAD_VERSION, self.role, self.genesis_hash, self.identity_key, self.identity_sig, self.credentials])

    @classmethod
    def decode(cls, data: bytes) -> "Payload":
        try:
            fields = expect_list(unpack(bytes(data), max_bytes=PAYLOAD_BYTES_MAX), "payload")
            expect_version(fields, "payload", PAYLOAD_VERSION)
            expect_list(fields, "payload", length=6)
            role = expect_str(fields[1], "payload.role", max_length=16)
            if role not in ROLES:
                raise DecodeError(f"payload.role: {role!r} is not one of {', '.join(ROLES)}")
            return cls(
                role,
                expect_bytes(fields[2], "payload.genesis_hash", lengths=(0, 32)),
                expect_bytes(fields[3], "payload.identity_key", max_length=IDENTITY_KEY_BYTES_MAX),
                expect_bytes(fields[4], "payload.identity_sig", max_length=IDENTITY_SIG_BYTES_MAX),
                expect_bytes(fields[5], "payload.credentials", max_length=CREDENTIALS_BYTES_MAX),
            )
        except DecodeError as exc:
            raise ChannelError(BAD_PAYLOAD, str(exc)) from None


@dataclass(frozen=True)
class Verdict:
    """`reason` "" = accepted; else a short reason ("certificate revoked") and a detail line
    for the refused side's log. Inside the channel: encrypted and authenticated."""

    reason: str
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.reason == ""

    def encode(self) -> bytes:
        return pack([VERDICT_VERSION, self.reason[:VERDICT_TEXT_CHARS_MAX], self.detail[:VERDICT_TEXT_CHARS_MAX]])

    @classmethod
    def decode(cls, data: bytes) -> "Verdict":
        try:
            fields = expect_list(unpack(bytes(data), max_bytes=VERDICT_BYTES_MAX), "verdict")
            expect_version(fields, "verdict", VERDICT_VERSION)
            expect_list(fields, "verdict", length=3)
            return cls(
                expect_str(fields[1], "verdict.reason", max_length=VERDICT_TEXT_CHARS_MAX),
                expect_str(fields[2], "verdict.detail", max_length=VERDICT_TEXT_CHARS_MAX),
            )
        except DecodeError as exc:
            raise ChannelError(BAD_VERDICT, str(exc)) from None


class PacketStream:
    """2-byte length-prefixed packets over any byte stream: `receive_some(max) -> bytes`
    (b"" at the end) and `send_all(data)`, the shapes of a trio stream and of a libp2p raw
    connection's read/write."""

    def __init__(self, receive_some: Callable[[int], Awaitable[bytes]], send_all: Callable[[bytes], Awaitable[Any]]) -> None:
        self._receive_some = receive_some
        self._send_all = send_all
        self._buffer = bytearray()

    async def _fill(self, n: int, started: bool) -> None:
        while len(self._buffer) < n:
            data = await self._receive_some(max(n - len(self._buffer), 4096))
            if not data:
                if started or self._buffer:
                    raise ChannelError(TRUNCATED_FRAME, f"the stream ended {len(self._buffer)} bytes into a {n}-byte read")
                raise ChannelError(CLOSED)
            self._buffer += data

    async def read(self, max_bytes: int = PACKET_BYTES_MAX) -> bytes:
        await self._fill(2, started=False)
        size = int.from_bytes(self._buffer[:2], "big")
        if size > max_bytes:
            raise ChannelError(OVERSIZED_FRAME, f"a {size}-byte packet where at most {max_bytes} are allowed")
        await self._fill(2 + size, started=True)
        data = bytes(self._buffer[2 : 2 + size])
        del self._buffer[: 2 + size]
        return data

    def take_buffered(self) -> bytes:
        """The bytes read past the last packet (the start of the peer's next packets), for a
        caller that reads the stream by other means after the handshake (libp2p's Noise
        framing between nodes); reads ask for at least 4096 bytes, so there may be some."""
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    async def write(self, data: bytes) -> None:
        if len(data) > PACKET_BYTES_MAX:
            raise ValueError(f"a packet holds at most {PACKET_BYTES_MAX} bytes")
        await self._send_all(len(data).to_bytes(2, "big") + bytes(data))


@dataclass
class Handshake:
    noise: NoiseConnection  # in transport mode: encrypt/decrypt with the split keys
    remote_static: bytes
    remote: Payload
    accepted: Any  # what `check` returned
    protocol: str  # the Noise protocol name, e.g. "Noise_XX_SM2_SM4GCM_SM3"

    @property
    def handshake_hash(self) -> bytes:
        return self.noise.get_handshake_hash()


Check = Callable[[Payload, bytes], Any]
_NOISE_ERRORS = (NoiseValueError, NoiseInvalidMessage, NoiseHandshakeError, NoiseMaxNonceError, InvalidTag, ValueError)


def new_noise(suite_name: str, purpose: str, certified_priv: bytes, *, initiator: bool, ephemeral_priv: bytes | None = None) -> NoiseConnection:
    """A Noise connection ready to start: protocol, prologue, static key (and a fixed
    ephemeral key, for test vectors only)."""
    if purpose not in PURPOSES:
        raise ValueError(f"channel purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    noise = NoiseConnection.from_name(protocol_name(suite_name), backend=BACKEND)
    noise.set_prologue(PROLOGUE_PREFIX + purpose.encode())
    noise.noise_protocol.keypairs["s"] = static_keypair(suite_name, bytes(certified_priv))  # as set_keypair_from_private_bytes, cached
    if initiator:
        noise.set_as_initiator()
    else:
        noise.set_as_responder()
    if ephemeral_priv is None:
        noise.start_handshake()
        return noise
    noise.set_keypair_from_private_bytes(Keypair.EPHEMERAL, ephemeral_priv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # noiseprotocol warns that a fixed ephemeral is for test vectors only: it is
        noise.start_handshake()
    return noise


async def run_handshake(
    packets: PacketStream,
    *,
    initiator: bool,
    suite_name: str,
    purpose: str,
    certified_priv: bytes,
    payload: Payload,
    check: Check,
    ephemeral_priv: bytes | None = None,
) -> Handshake:
    """Run the handshake over `packets`; the caller bounds it in time. Returns the keyed
    connection, or raises ChannelError (ChannelRefused when we refuse, RefusedByPeer when
    they do)."""
    noise = new_noise(suite_name, purpose, certified_priv, initiator=initiator, ephemeral_priv=ephemeral_priv)
    state = noise.noise_protocol.handshake_state  # the connection drops it when the handshake ends
    ours = payload.encode()
    try:
        if initiator:
            await packets.write(bytes(noise.write_message(b"")))
            remote = Payload.decode(noise.read_message(await packets.read(HANDSHAKE_PACKET_BYTES_MAX)))
            await packets.write(bytes(noise.write_message(ours)))
        else:
            if noise.read_message(await packets.read(HANDSHAKE_PACKET_BYTES_MAX)):
                raise ChannelError(BAD_HANDSHAKE, "the first message carries a payload; it has none")
            await packets.write(bytes(noise.write_message(ours)))
            remote = Payload.decode(noise.read_message(await packets.read(HANDSHAKE_PACKET_BYTES_MAX)))
    except _NOISE_ERRORS as exc:
        raise ChannelError(BAD_HANDSHAKE, str(exc) or type(exc).__name__) from None
    remote_static = bytes(state.rs.public_bytes)
    refusal: ChannelRefused | None = None
    accepted = None
    try:
        accepted = check(remote, remote_static)
        verdict = Verdict("")
    except ChannelRefused as exc:
        refusal, verdict = exc, Verdict(exc.reason, exc.detail)
    await packets.write(noise.encrypt(verdict.encode()))
    try:
        theirs = Verdict.decode(noise.decrypt(await packets.read(VERDICT_BYTES_MAX + 16)))
    except _NOISE_ERRORS as exc:
        raise ChannelError(BAD_HANDSHAKE, f"verdict: {exc or type(exc).__name__}") from None
    except ChannelError as exc:
        if refusal is not None:
            raise refusal from None  # they hung up on our refusal: ours is the story
        raise exc from None
    if refusal is not None:
        raise refusal
    if not theirs.accepted:
        raise RefusedByPeer(theirs)
    return Handshake(noise, remote_static, remote, accepted, protocol_name(suite_name).decode())

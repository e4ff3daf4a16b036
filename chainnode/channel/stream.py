"""Messages over a keyed channel on a trio stream (the dApp channel; docs/protocol.md).

After the handshake every packet is one Noise transport message: SM4-GCM (or ChaChaPoly)
of at most 65,519 bytes of plaintext, 16 bytes of tag. The plaintext is a byte stream that
carries messages as a 4-byte big-endian length then the bytes; a message may span packets.
A packet that fails authentication (a flipped bit, a replay: the nonce is implicit) ends
the channel with BAD_FRAME; a message longer than the receiver's limit with OVERSIZED_FRAME,
before its bytes are read.
"""

from __future__ import annotations

import trio
from noise.exceptions import NoiseInvalidMessage, NoiseMaxNonceError

from chainnode.channel.handshake import (
    OVERSIZED_FRAME,
    ChannelError,
    Check,
    Handshake,
    PacketStream,
    Payload,
    run_handshake,
)

PLAINTEXT_BYTES_MAX = 65535 - 16  # a Noise message less the tag
MESSAGE_HEADER_BYTES = 4
MESSAGE_BYTES_MAX_DEFAULT = 4 << 20
BAD_FRAME = "bad frame"


class SecureStream:
    """A keyed channel: `send_message` / `receive_message`, safe to send from several tasks."""

    def __init__(self, stream: trio.abc.Stream, packets: PacketStream, handshake: Handshake, *, message_bytes_max: int = MESSAGE_BYTES_MAX_DEFAULT) -> None:
        self.stream = stream
        self.handshake = handshake
        self.message_bytes_max = message_bytes_max
        self._packets = packets
        self._noise = handshake.noise
        self._send_lock = trio.Lock()
        self._plain = bytearray()
        self.bytes_sent = 0
        self.bytes_received = 0

    async def send_message(self, data: bytes) -> None:
        if len(data) > self.message_bytes_max:
            raise ValueError(f"a message of {len(data)} bytes exceeds this channel's {self.message_bytes_max}")
        plain = len(data).to_bytes(MESSAGE_HEADER_BYTES, "big") + data
        async with self._send_lock:
            wire = bytearray()
            for start in range(0, len(plain), PLAINTEXT_BYTES_MAX):
                sealed = self._noise.encrypt(plain[start : start + PLAINTEXT_BYTES_MAX])
                wire += len(sealed).to_bytes(2, "big") + sealed
            await self.stream.send_all(wire)  # one write per message: few syscalls, no interleaving
            self.bytes_sent += len(wire)

    async def _fill(self, n: int) -> None:
        while len(self._plain) < n:
            sealed = await self._packets.read()
            self.bytes_received += len(sealed) + 2
            try:
                self._plain += self._noise.decrypt(sealed)
            except (NoiseInvalidMessage, NoiseMaxNonceError) as exc:
                raise ChannelError(BAD_FRAME, f"a packet failed authentication ({exc})") from None

    async def receive_message(self) -> bytes:
        await self._fill(MESSAGE_HEADER_BYTES)
        size = int.from_bytes(self._plain[:MESSAGE_HEADER_BYTES], "big")
        if size > self.message_bytes_max:
            raise ChannelError(OVERSIZED_FRAME, f"a {size}-byte message where at most {self.message_bytes_max} are allowed")
        await self._fill(MESSAGE_HEADER_BYTES + size)
        data = bytes(self._plain[MESSAGE_HEADER_BYTES : MESSAGE_HEADER_BYTES + size])
        del self._plain[: MESSAGE_HEADER_BYTES + size]
        return data

    async def aclose(self) -> None:
        await self.stream.aclose()


async def secure(
    stream: trio.abc.Stream,
    *,
    initiator: bool,
    suite_name: str,
    purpose: str,
    certified_priv: bytes,
    payload: Payload,
    check: Check,
    message_bytes_max: int = MESSAGE_BYTES_MAX_DEFAULT,
) -> SecureStream:
    """Run the handshake on `stream` (the caller bounds it in time) and return the channel."""
    packets = PacketStream(stream.receive_some, stream.send_all)
    handshake = await run_handshake(
        packets, initiator=initiator, suite_name=suite_name, purpose=purpose, certified_priv=certified_priv, payload=payload, check=check
    )
    return SecureStream(stream, packets, handshake, message_bytes_max=message_bytes_max)

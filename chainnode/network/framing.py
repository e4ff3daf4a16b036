"""Length-prefixed frames: u32 big-endian length, then that many payload bytes.

A frame of length 0 is a keepalive: the consensus channel's writer sends one when it has
been idle for a while, so the reader can tell a silent (dead, partitioned) peer from an
idle one without waiting for TCP to time out. Decoders drop keepalives and count them.

`FrameDecoder` is sans-IO: the reader feeds it whatever a stream read returned and takes
out whole payloads, so a read never waits for a frame boundary and the reader never
stalls (research trap 7). An empty frame or a length above the limit is a protocol
violation: the decoder refuses it before buffering the body, so a peer cannot make us
hold more than one frame's worth of bytes.
"""

from __future__ import annotations

import struct

from chainnode.network.errors import ProtocolViolation

HEADER_BYTES = 4
_HEADER = struct.Struct(">I")
KEEPALIVE_FRAME = b"\x00\x00\x00\x00"


def encode_frame(payload: bytes) -> bytes:
    return _HEADER.pack(len(payload)) + payload


def encode_frames(payloads: list[bytes]) -> bytes:
    """Many frames as one buffer, for one stream write (batching)."""
    parts = []
    for p in payloads:
        parts.append(_HEADER.pack(len(p)))
        parts.append(p)
    return b"".join(parts)


class FrameDecoder:
    def __init__(self, frame_bytes_max: int) -> None:
        assert frame_bytes_max > 0
        self.frame_bytes_max = frame_bytes_max
        self._buf = bytearray()
        self.keepalives = 0

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes read from the stream; return the payloads they complete, in order.

        Keepalives (empty frames) are dropped. Raises ProtocolViolation("oversized frame")."""
        self._buf += data
        out: list[bytes] = []
        buf = self._buf
        pos = 0
        end = len(buf)
        while end - pos >= HEADER_BYTES:
            (length,) = _HEADER.unpack_from(buf, pos)
            if length == 0:
                self.keepalives += 1
                pos += HEADER_BYTES
                continue
            if length > self.frame_bytes_max:
                raise ProtocolViolation("oversized frame", f"{length} bytes > {self.frame_bytes_max}")
            if end - pos - HEADER_BYTES < length:
                break
            start = pos + HEADER_BYTES
            out.append(bytes(buf[start : start + length]))
            pos = start + length
        if pos:
            del buf[:pos]
        return out

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)


async def read_frame(stream, frame_bytes_max: int, read_chunk_bytes: int = 65536) -> bytes:
    """Read exactly one frame from a stream that carries one (request/response, hello).

    Raises ProtocolViolation on a bad length or trailing bytes, EOFError if the stream
    ends first. Stream errors from libp2p propagate."""
    decoder = FrameDecoder(frame_bytes_max)
    while True:
        # libp2p's StreamEOF and MuxedStreamEOF are EOFErrors; other stream errors propagate.
        data = await stream.read(read_chunk_bytes)
        if not data:
            raise EOFError("stream closed before a whole frame arrived")
        frames = decoder.feed(data)
        if frames:
            if len(frames) > 1 or decoder.buffered_bytes:
                raise ProtocolViolation("trailing bytes", "more than one frame where one was expected")
            return frames[0]


class FrameReader:
    """Successive frames of a short fixed exchange on one stream (the Hello, then the
    Verdict): bytes read past one frame are kept for the next. More than `frames_max`
    frames in all is a protocol violation."""

    def __init__(self, stream, frame_bytes_max: int, read_chunk_bytes: int = 65536, frames_max: int = 2) -> None:
        self._stream = stream
        self._decoder = FrameDecoder(frame_bytes_max)
        self._read_chunk_bytes = read_chunk_bytes
        self._frames: list[bytes] = []
        self._left = frames_max

    async def read(self) -> bytes:
        while not self._frames:
            data = await self._stream.read(self._read_chunk_bytes)
            if not data:
                raise EOFError("stream closed before a whole frame arrived")
            self._frames.extend(self._decoder.feed(data))
            if len(self._frames) > self._left or (len(self._frames) == self._left and self._decoder.buffered_bytes):
                raise ProtocolViolation("trailing bytes", "more frames than the exchange has")
        self._left -= 1
        return self._frames.pop(0)

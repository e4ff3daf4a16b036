"""The Yamux read loop goes on reading while a write waits for a full send buffer
(chainnode/network/muxer.py). py-libp2p's own Yamux, in the same spot, stops reading: the
half of the two-sided deadlock that cut loaded connections after 6 s of silence."""

from __future__ import annotations

import struct
from contextlib import asynccontextmanager

import pytest
import trio
from libp2p.peer.id import ID
from libp2p.stream_muxer.yamux.yamux import FLAG_ACK, FLAG_SYN, TYPE_DATA, TYPE_PING, YAMUX_HEADER_FORMAT, Yamux

from chainnode.network.muxer import CONTROL_FRAMES_MAX, NonBlockingReadYamux


def frame(typ: int, flags: int, stream_id: int, length: int, body: bytes = b"") -> bytes:
    return struct.pack(YAMUX_HEADER_FORMAT, 0, typ, flags, stream_id, length) + body


class StuckSocket:
    """A secured connection whose writes wait while `sending` is clear, as on a full
    kernel send buffer; reads take what `feed` put in."""

    is_initiator = True

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.sending = trio.Event()
        self.sending.set()
        self._inbound = bytearray()
        self._arrived = trio.Event()

    def pending(self) -> int:
        """Bytes fed and not read yet."""
        return len(self._inbound)

    def feed(self, data: bytes) -> None:
        self._inbound += data
        self._arrived.set()

    async def read(self, n: int | None = None) -> bytes:
        while not self._inbound:
            self._arrived = trio.Event()
            await self._arrived.wait()
        n = len(self._inbound) if n is None or n < 0 else n
        out, self._inbound = bytes(self._inbound[:n]), self._inbound[n:]
        return out

    async def write(self, data: bytes) -> None:
        await self.sending.wait()
        self.sent.append(bytes(data))

    async def close(self) -> None:
        pass


@asynccontextmanager
async def muxed(muxer_class, *, stuck: bytes | None = None):
    """A started muxer over a StuckSocket and a stream of ours on it; with `stuck`, a write
    of those bytes on that stream waits on a full send buffer (holding the write lock)."""
    sock = StuckSocket()
    mux = muxer_class(sock, ID(b"\x00peer"), is_initiator=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(mux.start)
        await mux.event_started.wait()
        stream = await mux.open_stream()
        if stuck is not None:
            sock.sending = trio.Event()  # the kernel's send buffer is full from here on
            nursery.start_soon(stream.write, stuck)
            await trio.testing.wait_all_tasks_blocked()
        yield sock, mux, stream
        nursery.cancel_scope.cancel()


async def _stuck_write_then_ping(muxer_class):
    """A stream of ours whose data write is stuck on the socket, then the peer pings and
    sends data on that stream: whether the read loop took all of it off the socket within
    2 s (what drains the peer's send buffer), what the stream then reads, and what was sent."""
    async with muxed(muxer_class, stuck=b"x" * 1000) as (sock, mux, stream):
        sock.feed(frame(TYPE_PING, FLAG_SYN, 0, 7) + frame(TYPE_DATA, FLAG_ACK, stream.stream_id, 5, b"hello"))
        drained = False
        with trio.move_on_after(2):
            while sock.pending():
                await trio.sleep(0.01)
            drained = True
        sock.sending.set()  # the peer reads again
        got = None
        with trio.move_on_after(2):
            got = await stream.read(5)
        await trio.testing.wait_all_tasks_blocked()
    return drained, got, sock.sent


async def test_the_read_loop_reads_on_while_a_write_waits_for_the_socket():
    drained, got, sent = await _stuck_write_then_ping(NonBlockingReadYamux)
    assert drained and got == b"hello"
    # Once the socket takes writes again: the stuck data, then the ping's answer.
    data = [i for i, s in enumerate(sent) if s.endswith(b"x" * 1000)]
    assert data and sent.index(frame(TYPE_PING, FLAG_ACK, 0, 7)) > data[0]


async def test_py_libp2p_yamux_stops_reading_there():
    """The reason for muxer.py: if this starts failing, py-libp2p fixed it upstream and
    muxer.py can go."""
    drained, _, _ = await _stuck_write_then_ping(Yamux)
    assert not drained


async def test_a_peer_that_floods_pings_loses_its_connection():
    async with muxed(NonBlockingReadYamux, stuck=b"x") as (sock, mux, _):
        sock.feed(b"".join(frame(TYPE_PING, FLAG_SYN, 0, i) for i in range(CONTROL_FRAMES_MAX + 10)))
        with trio.fail_after(5):
            await mux.event_shutting_down.wait()
        assert len(mux._control) == CONTROL_FRAMES_MAX


@pytest.mark.parametrize("count", [1, 50])
async def test_queued_answers_go_out_before_later_writes(count):
    async with muxed(NonBlockingReadYamux) as (sock, _, stream):
        sock.feed(b"".join(frame(TYPE_PING, FLAG_SYN, 0, i) for i in range(count)))
        await stream.write(b"after")
        with trio.fail_after(5):
            while len(sock.sent) < 1 + count + 1:
                await trio.sleep(0.01)
        pings = [s for s in sock.sent if s[1] == TYPE_PING]
        assert pings == [frame(TYPE_PING, FLAG_ACK, 0, i) for i in range(count)]
        assert sock.sent.index(pings[-1]) < len(sock.sent) - 1 and sock.sent[-1].endswith(b"after")


async def test_real_connections_use_it():
    """py-libp2p builds its Yamux by name, whatever muxer_opt says: muxer.install replaces it."""
    import gc

    from tests.network.cluster import make_members, make_network, start

    async with trio.open_nursery() as nursery:
        members = make_members(2)
        running = [await start(nursery, make_network(m, members)) for m in members]
        for r in running:
            await r.net.wait_connected(1, timeout_s=10)
        assert {type(o) for o in gc.get_objects() if isinstance(o, Yamux)} == {NonBlockingReadYamux}
        nursery.cancel_scope.cancel()

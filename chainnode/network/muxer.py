"""Yamux whose read loop never waits on a write (py-libp2p's Yamux, one fix).

py-libp2p's Yamux answers a peer's ping, and acknowledges or refuses a stream the peer
opens, from its read loop, with a write under the connection's write lock. Under load in
both directions that deadlocks: our channel writer holds the lock while the kernel's send
buffer is full, because the peer's read loop is itself waiting for its lock to answer our
ping, whose writer is blocked the same way. Neither side reads again; the connection was
cut only by the channel's silence timeout (6 s), then redialled. Seen as the
"peer silent" failure of tests/network/test_cluster.py (about one run in 25 on a loaded
machine): both read loops were parked in `_write_frame` answering a ping, both writers in
the socket's send.

Here (`install`, called before a host is built) the frames the read loop sends are queued
instead and written by a task of their own, or, before it, by the next write of any other
task, which takes the lock anyway: the queue goes out first, so a stream's acknowledgement
still precedes the data written on it. The read loop goes on reading, the peer's send
buffer drains, and its writer and ours go on.
"""

from __future__ import annotations

import logging
from collections import deque

import trio
from libp2p.stream_muxer import muxer_multistream
from libp2p.stream_muxer.yamux.yamux import Yamux

log = logging.getLogger("chainnode.network")

# Control frames (pings' answers, stream acknowledgements and refusals: 12 bytes each) the
# read loop may have waiting. A peer that makes more wait is flooding: its connection ends.
CONTROL_FRAMES_MAX = 1024


class ControlFlood(Exception):
    """A peer made the read loop queue more than CONTROL_FRAMES_MAX answers."""


class NonBlockingReadYamux(Yamux):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._reader_task: trio.lowlevel.Task | None = None
        self._control: deque[bytes] = deque()
        self._control_sender_running = False

    async def handle_incoming(self) -> None:
        self._reader_task = trio.lowlevel.current_task()
        await super().handle_incoming()

    async def _write_frame(self, data: bytes) -> None:
        if trio.lowlevel.current_task() is self._reader_task:
            if len(self._control) >= CONTROL_FRAMES_MAX:
                self.event_shutting_down.set()  # so that the read loop ends the connection
                raise ControlFlood(f"peer {self.peer_id} left more than {CONTROL_FRAMES_MAX} answers unsent")
            self._control.append(data)
            if not self._control_sender_running and self._nursery is not None:
                self._control_sender_running = True
                self._nursery.start_soon(self._send_control)
            return
        async with self._write_lock:
            await self._write_control()
            await self.secured_conn.write(data)
        await trio.lowlevel.checkpoint()

    async def _write_control(self) -> None:
        """Write the queued control frames, in order (the write lock held)."""
        control = self._control
        while control:
            await self.secured_conn.write(control.popleft())

    async def _send_control(self) -> None:
        try:
            while self._control:
                async with self._write_lock:
                    await self._write_control()
        except Exception as exc:  # the connection failed: its read loop sees it and ends
            log.debug("yamux control frames to %s not sent: %s", self.peer_id, exc)
            self._control.clear()
        finally:
            self._control_sender_running = False


def install() -> None:
    """Make py-libp2p build this Yamux for every connection. Its muxer negotiation
    constructs `Yamux` by name when it picks the Yamux protocol, whatever class `muxer_opt`
    names (libp2p/stream_muxer/muxer_multistream.py, `new_conn`), so that name is what
    is replaced. Idempotent; warns and leaves the library alone if it has changed."""
    current = getattr(muxer_multistream, "Yamux", None)
    if current is NonBlockingReadYamux:
        return
    if current is not Yamux:
        log.warning("py-libp2p's muxer negotiation no longer builds its Yamux by name; connections use its own read loop, "
                    "which can stall under load in both directions (chainnode/network/muxer.py)")
        return
    muxer_multistream.Yamux = NonBlockingReadYamux

"""Fair merging of inbound consensus frames from all peers into one channel.

Each peer's reader puts frames into that peer's own bounded queue without ever waiting, and
one merger task feeds the node's `incoming` channel round-robin across peers. A peer that
floods (even within its rate limit) fills only its own queue and loses only its own frames;
honest peers' messages keep flowing to consensus.
"""

from __future__ import annotations

from collections import deque

import trio

from chainnode.network.metrics import Counters

# Frames moved between checkpoints: enough to batch, small enough to stay responsive.
MERGE_BATCH_FRAMES = 256


class FairInbox:
    def __init__(self, per_peer_frames_max: int, out: trio.MemorySendChannel, counters: Counters) -> None:
        self.per_peer_frames_max = per_peer_frames_max
        self._out = out
        self._counters = counters
        self._queues: dict[int, deque[bytes]] = {}
        self._ready: deque[int] = deque()  # peers with queued frames, in round-robin order
        self._wakeup = trio.Event()

    def put(self, index: int, payload: bytes) -> bool:
        """Queue a frame from peer `index`; never blocks. False (counted) if its queue is full."""
        q = self._queues.get(index)
        if q is None:
            q = self._queues[index] = deque()
        if len(q) >= self.per_peer_frames_max:
            self._counters.inc("frames_dropped_in")
            return False
        q.append(payload)
        if len(q) == 1:
            self._ready.append(index)
        self._wakeup.set()
        return True

    def queued_frames(self, index: int) -> int:
        q = self._queues.get(index)
        return len(q) if q else 0

    async def run(self) -> None:
        out = self._out
        while True:
            if not self._ready:
                self._wakeup = trio.Event()
                await self._wakeup.wait()
                continue
            for _ in range(MERGE_BATCH_FRAMES):
                if not self._ready:
                    break
                index = self._ready.popleft()
                q = self._queues[index]
                item = (index, q.popleft())
                if q:
                    self._ready.append(index)
                try:
                    out.send_nowait(item)
                except trio.WouldBlock:
                    # The node is behind: wait here. Readers keep reading into the per-peer
                    # queues meanwhile, so no stream stalls (research trap 7).
                    await out.send(item)
            await trio.lowlevel.checkpoint()

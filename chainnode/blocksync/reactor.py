"""Block sync's side of the network: head announcements (status frames on the consensus
stream, channel `CHANNEL_STATUS`) tell the syncer who is ahead, and the sync protocol
(`/chainnode/sync/1`) fetches and serves certified blocks.

A status frame is `CHANNEL_STATUS + pack([1, head_height, head_hash])`, sent to every
connected peer every `STATUS_INTERVAL_MS` and after every block, so observers and
laggards learn of a block at once rather than at the next tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import partial
from typing import Awaitable, Callable

import trio

from chainnode.blocksync.syncer import SYNC_PROTOCOL, BlockSyncer, FetchFailed, serve_request
from chainnode.execution.chain import Chain
from chainnode.network import Network, NetworkError
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_version, pack, unpack
from chainnode.protocol.types import Block, CommitCertificate

CHANNEL_STATUS = b"\x02"
STATUS_BYTES_MAX = 128
STATUS_INTERVAL_MS = 1_000
# What a sync response leaves free of the network's response limit (framing, status byte).
RESPONSE_HEADROOM_BYTES = 1024


@dataclass
class PeerStatus:
    height: int
    head_hash: bytes
    seen_ms: int


class BlockSyncReactor:
    """Head announcements in and out, and the syncer they drive; `run` holds both loops."""

    def __init__(
        self,
        chain: Chain,
        network: Network,
        *,
        apply: Callable[[Block, CommitCertificate], Awaitable[bool]],
        blocks_per_request: int,
    ) -> None:
        """`apply` verifies and commits one synced block and tells whoever must know
        (False: the chain already had it)."""
        self.chain = chain
        self.network = network
        self.blocks_per_request = blocks_per_request
        self.syncer = BlockSyncer(chain, self._fetch, blocks_per_request=blocks_per_request, apply=apply)
        self.peers: dict[int, PeerStatus] = {}  # network peer index -> its last announced head
        network.register_handler(SYNC_PROTOCOL, self._serve)

    def on_status(self, peer: int, body: bytes) -> None:
        """A status frame (without its channel byte) from `peer`."""
        try:
            f = expect_list(unpack(body, max_bytes=STATUS_BYTES_MAX), "status", length=3)
            expect_version(f, "status", 1)
            height = expect_int(f[1], "status height")
            head_hash = expect_bytes(f[2], "status hash", length=32)
        except DecodeError as exc:
            self.network.report_misbehaviour(peer, f"bad status frame: {exc}")
            return
        self.peers[peer] = PeerStatus(height, head_hash, int(time.time() * 1000))
        self.syncer.peer_head(peer, height)

    def announce_head(self) -> None:
        ledger = self.chain.ledger
        self.network.broadcast(CHANNEL_STATUS + pack([1, ledger.head_height, ledger.head_hash]))

    async def run(self, *, grace_ms: int, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """`grace_ms`: how long the syncer lets consensus commit what peers announce before
        fetching it (BlockSyncer.run)."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._status_loop)
            nursery.start_soon(partial(self.syncer.run, grace_ms=grace_ms))
            task_status.started()

    async def _status_loop(self) -> None:
        while True:
            self.announce_head()
            await trio.sleep(STATUS_INTERVAL_MS / 1000)

    async def _fetch(self, peer: int, request: bytes) -> bytes:
        try:
            return await self.network.request(peer, SYNC_PROTOCOL, request)
        except NetworkError as exc:
            raise FetchFailed(str(exc)) from None

    async def _serve(self, peer: int, request: bytes) -> bytes:
        # Reads only (LevelDB is safe to read beside the chain worker's writes): a thread
        # of its own, so serving a peer never queues in front of block execution.
        response_max = self.network.limits.response_bytes_max - RESPONSE_HEADROOM_BYTES
        serve = partial(serve_request, self.chain.ledger, request, blocks_max=self.blocks_per_request, response_bytes_max=response_max)
        return await trio.to_thread.run_sync(serve)

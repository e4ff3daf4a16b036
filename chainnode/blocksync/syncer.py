"""Block sync: a node that is behind (new, restarted, partitioned) fetches ranges of
certified blocks from its peers and applies them through `Chain.apply_certified`.

Wire format (request/response on the `/chainnode/sync/1` protocol):

    request  = pack([1, from_height, count])
    response = pack([1, [[block, certificate], ...]])     # consecutive heights from from_height
             | pack([1, [], oldest])                      # from_height's body is not kept here;
                                                          # bodies are from `oldest` on (pruned)

A response may be shorter than asked (the server's limits, or its head); an empty one
means "I have nothing from there". It cannot get stuck: each range goes to a peer that
claims the height, a peer that fails (error, timeout, bad block, short of its claim) is
skipped for a while, and the loop re-reads the peers' heads every round.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Awaitable, Callable

import trio

from chainnode.execution.chain import Chain
from chainnode.execution.executor import InvalidBlock
from chainnode.protocol.codec import DecodeError, expect_int, expect_list, expect_version, pack, unpack
from chainnode.protocol.types import Block, CommitCertificate, InvalidCertificate
from chainnode.store.ledger import Ledger

log = logging.getLogger("chainnode.blocksync")

SYNC_PROTOCOL = "/chainnode/sync/1"
RESPONSE_BYTES_MAX = 64 << 20
# About how many transactions a request asks for (by the blocks of the last range): decoded,
# 10,000 transfers are ~20 MB, and block sync holds two ranges (one applied, one ahead). At
# 4,000 a node replaying a 1,000,000-account chain held ~14 MiB less than at 10,000, and
# replayed as fast (148 s against 146 s).
TXS_PER_RANGE_MAX = 4_000
PRUNED_LOG_INTERVAL_MS = 60_000  # how often it says that no peer keeps the bodies it needs


def encode_request(from_height: int, count: int) -> bytes:
    return pack([1, from_height, count])


def serve_request(ledger: Ledger, payload: bytes, *, blocks_max: int, response_bytes_max: int = RESPONSE_BYTES_MAX) -> bytes:
    """The server side: blocks from the request's height, bounded by count and bytes."""
    try:
        f = expect_list(unpack(payload, max_bytes=64), "sync request", length=3)
        expect_version(f, "sync request", 1)
        start = expect_int(f[1], "sync from_height", lo=1)
        count = expect_int(f[2], "sync count", lo=1, hi=blocks_max)
    except DecodeError:
        return pack([1, []])
    oldest = ledger.oldest_block_height()
    if start < oldest:
        return pack([1, [], oldest])
    items = []
    size = 0
    for height in range(start, min(start + count, ledger.head_height + 1)):
        block, cert = ledger.get_block(height), ledger.get_certificate(height)
        if block is None or cert is None:
            break
        item = [block.to_fields(), cert.to_fields()]
        size += len(pack(item))
        if items and size > response_bytes_max:
            break
        items.append(item)
    return pack([1, items])


class BodiesNotKept(Exception):
    """The peer does not keep the bodies asked for: it keeps them from `oldest` on."""

    def __init__(self, oldest: int) -> None:
        super().__init__(f"it keeps block bodies from block {oldest} on only (pruned)")
        self.oldest = oldest


def decode_response(payload: bytes, expected_from: int) -> list[tuple[Block, CommitCertificate]]:
    """The blocks of a response; `BodiesNotKept` if the peer said it pruned them."""
    f = expect_list(unpack(payload, max_bytes=RESPONSE_BYTES_MAX), "sync response", max_length=3)
    if len(f) < 2:
        raise DecodeError(f"sync response: expected 2 or 3 fields, got {len(f)}")
    expect_version(f, "sync response", 1)
    if len(f) == 3:
        oldest = expect_int(f[2], "sync response oldest body", lo=expected_from + 1)
        if f[1] != []:
            raise DecodeError("sync response: blocks and a pruning mark at once")
        raise BodiesNotKept(oldest)
    out = []
    for i, item in enumerate(expect_list(f[1], "sync response blocks", max_length=1000)):
        item = expect_list(item, "sync response item", length=2)
        block, cert = Block.from_fields(item[0]), CommitCertificate.from_fields(item[1])
        if block.header.height != expected_from + i:
            raise DecodeError(f"sync response: block {block.header.height} where {expected_from + i} was expected")
        out.append((block, cert))
    return out


class FetchFailed(Exception):
    """The transport could not get an answer from that peer (gone, timed out, refused)."""


# (peer index, request) -> response; raises FetchFailed on any transport failure.
Fetch = Callable[[int, bytes], Awaitable[bytes]]


@dataclass
class PeerHead:
    height: int
    skip_until_ms: float = 0.0
    bodies_from: int = 0  # it said it keeps block bodies from this height on only


class BlockSyncer:
    """Catches the chain up to the highest height its peers claim."""

    def __init__(
        self,
        chain: Chain,
        fetch: Fetch,
        *,
        blocks_per_request: int = 32,
        penalty_ms: float = 2_000,
        apply: Callable[[Block, CommitCertificate], Awaitable[bool | None]] | None = None,
    ) -> None:
        """`apply` verifies and commits one block (False: we already had it); the node passes
        one that runs on its chain thread and tells consensus. By default:
        `chain.apply_certified` on a worker thread."""
        self.chain = chain
        self.fetch = fetch
        self.apply = apply or (lambda block, cert: trio.to_thread.run_sync(chain.apply_certified, block, cert))
        self.blocks_per_request = blocks_per_request
        self._request_blocks = blocks_per_request  # what the next request asks for (adapts)
        self.penalty_ms = penalty_ms
        self.peers: dict[int, PeerHead] = {}
        self.blocks_applied = 0
        self._rotation = 0
        self._pruned_said_ms = -PRUNED_LOG_INTERVAL_MS
        self._wake = trio.Event()

    def peer_head(self, peer: int, height: int) -> None:
        """Record a peer's announced head; wakes the syncer if that is ahead of us."""
        head = self.peers.setdefault(peer, PeerHead(height))
        head.height = height
        if height > self.chain.height:
            self._wake.set()

    def forget_peer(self, peer: int) -> None:
        self.peers.pop(peer, None)

    @property
    def target_height(self) -> int:
        return max([h.height for h in self.peers.values()], default=self.chain.height)

    def _candidates(self, height: int) -> list[int]:
        """Peers that claim `height`, rotated per request so that successive ranges come
        from different peers (spreading the load, and not trusting one peer's pace)."""
        now = trio.current_time() * 1000
        ready = sorted(p for p, h in self.peers.items() if h.height >= height and h.skip_until_ms <= now and h.bodies_from <= height)
        if not ready:
            pruned = [h.bodies_from for h in self.peers.values() if h.height >= height and h.bodies_from > height]
            if pruned and len(pruned) == sum(1 for h in self.peers.values() if h.height >= height) and now - self._pruned_said_ms >= PRUNED_LOG_INTERVAL_MS:
                self._pruned_said_ms = now
                log.warning("no peer keeps block %d's body any more (they keep bodies from block %d on): this node cannot replay "
                            "the chain from here; add an archive node (block_history_blocks = 0) as a peer, or start an empty data "
                            "directory with --sync snapshot", height, min(pruned))
            return []
        self._rotation += 1
        k = self._rotation % len(ready)
        return ready[k:] + ready[:k]

    async def catch_up(self) -> int:
        """Fetch and apply blocks until no reachable peer is ahead; returns blocks applied.

        Fetching and applying overlap: while one range is applied (on the chain's worker
        thread) the next is fetched and decoded, so replay is bound by execution, not by
        round trips. A range that fails to apply (a bad block or certificate) costs its
        peer a penalty, drops what was fetched after it, and the sync goes on from the head."""
        applied = 0
        while True:
            done, count = await self._pipeline()
            applied += count
            if done:
                return applied

    async def _pipeline(self) -> tuple[bool, int]:
        """One run of fetching ahead and applying in order: (no peer is ahead any more, blocks applied)."""
        applied = 0
        failed = False
        # Unbuffered: the fetcher holds one range, fetched and decoded, until the range before
        # it is applied; so at most two ranges are in memory.
        send, recv = trio.open_memory_channel[tuple[int, list[tuple[Block, CommitCertificate]]]](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._fetch_ranges, send)
            async with recv:
                async for peer, items in recv:
                    try:
                        for block, cert in items:
                            if await self.apply(block, cert) is not False:
                                applied += 1
                                self.blocks_applied += 1
                    except (InvalidBlock, InvalidCertificate) as exc:
                        log.warning("sync from peer %d failed at height %d: %s", peer, self.chain.height + 1, exc)
                        self._penalise(peer)
                        failed = True
                        nursery.cancel_scope.cancel()
                        break
        return not failed, applied

    async def _fetch_ranges(self, send: trio.MemorySendChannel) -> None:
        """Fetch consecutive ranges from the head on, each from the next peer that claims it,
        and hand them over in order; ends when no reachable peer has the next height."""
        async with send:
            next_height = self.chain.height + 1
            while True:
                next_height = max(next_height, self.chain.height + 1)  # consensus may have committed some meanwhile
                candidates = self._candidates(next_height)
                if not candidates:
                    return
                pruned = False
                for peer in candidates:
                    count = min(self._request_blocks, self.peers[peer].height - next_height + 1)
                    try:
                        raw = await self.fetch(peer, encode_request(next_height, count))
                        items = await trio.to_thread.run_sync(decode_response, raw, next_height)
                        if not items:
                            raise InvalidBlock(f"peer {peer} claims height {self.peers[peer].height} but sent nothing from {next_height}")
                    except BodiesNotKept as exc:
                        log.info("sync: peer %d %s; asking others for block %d", peer, exc, next_height)
                        self.peers[peer].bodies_from = exc.oldest
                        pruned = True
                        continue
                    except (FetchFailed, DecodeError, InvalidBlock) as exc:
                        log.warning("sync from peer %d failed at height %d: %s", peer, next_height, exc)
                        self._penalise(peer)
                        if isinstance(exc, FetchFailed):
                            # Perhaps the peer (or we) could not serve that many blocks in time under
                            # load: ask the next peer for fewer; successes double it back.
                            self._request_blocks = max(1, self._request_blocks // 2)
                        continue
                    # A range's decoded transactions are what sync holds in memory (twice, with
                    # one fetched ahead): the next request asks for about TXS_PER_RANGE_MAX.
                    txs_per_block = max(1, sum(len(b.transactions) for b, _ in items) // len(items))
                    self._request_blocks = max(1, min(self.blocks_per_request, 2 * self._request_blocks, TXS_PER_RANGE_MAX // txs_per_block))
                    await send.send((peer, items))
                    next_height += len(items)
                    break
                else:
                    if pruned:
                        continue  # the candidates without those peers (or, if none is left, why)
                    return  # every candidate failed: the next round (run) tries again

    def _penalise(self, peer: int) -> None:
        head = self.peers.get(peer)
        if head is not None:
            head.skip_until_ms = trio.current_time() * 1000 + self.penalty_ms

    async def run(self, *, poll_ms: int = 1_000, grace_ms: int = 500) -> None:
        """Catch up whenever a peer is ahead: woken by `peer_head`, and polled.

        After waking it waits `grace_ms` first: peers routinely announce a block a moment
        before consensus commits it here, and fetching what is about to arrive anyway
        would only race consensus for the same height.
        """
        while True:
            if self.target_height > self.chain.height:
                await trio.sleep(grace_ms / 1000)
                await self.catch_up()
            with trio.move_on_after(poll_ms / 1000):
                await self._wake.wait()
            self._wake = trio.Event()

"""Replay protection for a node that joined by snapshot: the transactions of the blocks just
before its snapshot.

A transaction is refused a second time because the ledger holds its record t:<hash>
(Chain.is_committed). A node that installed the state at block S holds no block's
transactions, so a transaction committed shortly before S, whose block_limit is still
ahead, would look new to it: as a sealer it would vote for a block that replays it. Before
it takes part, it therefore fetches the blocks that may hold such transactions: the last
`replay_window` blocks up to S (chainnode/system/state.py says why that many), newest first,
over the block sync protocol, each checked by hash against the block above it (the top one
against the certified header of S), and stores their transactions without receipts
(Ledger.put_recent_blocks). A kill in between resumes where it stopped: the ledger's flag
m:recent_bodies stays until the last one is stored.
"""

from __future__ import annotations

import logging
from typing import Callable

import trio

from chainnode.blocksync.syncer import BodiesNotKept, Fetch, FetchFailed, decode_response, encode_request
from chainnode.protocol.codec import DecodeError
from chainnode.store.ledger import Ledger
from chainnode.system.state import replay_window

log = logging.getLogger("chainnode.blocksync")

BLOCKS_PER_REQUEST = 32
RETRY_MS = 1_000
NO_PEER_LOG_INTERVAL_MS = 30_000


def recent_bodies_from(ledger: Ledger) -> int:
    """The lowest height whose transactions this node must hold to refuse replays, with
    its head S the snapshot's block: max(1, S + 2 - replay_window)."""
    height = ledger.head_height
    return max(1, height + 2 - replay_window(ledger.state, height))


async def fetch_recent_bodies(
    ledger: Ledger,
    fetch: Fetch,
    peers: Callable[[], list[int]],
    *,
    penalise: Callable[[int, str], None] = lambda peer, reason: None,
    blocks_per_request: int = BLOCKS_PER_REQUEST,
) -> int:
    """Fetch and store the blocks from `recent_bodies_from` up to the snapshot's, then
    clear the ledger's flag; returns the blocks stored. `peers()`: whom to ask, in order."""
    down_to = recent_bodies_from(ledger)
    stored = 0
    count = blocks_per_request
    last_warning_ms = -NO_PEER_LOG_INTERVAL_MS
    while (top := ledger.oldest_block_height() - 1) >= down_to:
        lo = max(down_to, top - count + 1)
        progressed = shrunk = False
        for peer in peers():
            try:
                items = await trio.to_thread.run_sync(decode_response, await fetch(peer, encode_request(lo, top - lo + 1)), lo)
            except (FetchFailed, DecodeError, BodiesNotKept) as exc:
                log.warning("replay protection: peer %d did not send blocks %d-%d: %s", peer, lo, top, exc)
                continue
            if len(items) < top - lo + 1:
                # Short (its response limit, or it keeps no bodies there): ask again at once for
                # fewer, since only a range that reaches the block above can be checked.
                shrunk = bool(items) and len(items) < count
                count = max(1, len(items))
                if shrunk:
                    break
                continue
            try:
                await trio.to_thread.run_sync(ledger.put_recent_blocks, items)
            except ValueError as exc:
                penalise(peer, f"sent blocks {lo}-{top} that do not chain to the certified snapshot: {exc}")
                continue
            stored += len(items)
            count = blocks_per_request
            progressed = True
            break
        if not progressed and not shrunk:
            now_ms = trio.current_time() * 1000
            if now_ms - last_warning_ms >= NO_PEER_LOG_INTERVAL_MS:
                last_warning_ms = now_ms
                log.warning("replay protection: no peer serves the transactions of blocks %d-%d (needed to refuse replays of them); "
                            "this node waits and takes no part until one does (an archive node, or one with [storage] "
                            "block_history_blocks covering them)", down_to, top)
            await trio.sleep(RETRY_MS / 1000)
    ledger.finish_recent_bodies()
    return stored

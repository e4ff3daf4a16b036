"""Transaction gossip between pools: what this node admitted goes out in batches, what
peers gossip comes in through the pool's checks, and what waited too long goes out again.

Gossip is best effort (a batch may be lost, or published before a peer subscribed), so a
replica fetches any transaction a proposal lists but it lacks from the proposer
(chainnode/pbft/driver.py), and `Regossip` (regossip.py) repeats what stays pending.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Iterable

import trio

from chainnode.network import Network, NetworkError
from chainnode.protocol.codec import DecodeError, expect_list, expect_version, pack, unpack
from chainnode.txpool.pool import COMMITTED, TxPool
from chainnode.txpool.regossip import BATCH_HEADER_BYTES_MAX, BATCH_ITEM_OVERHEAD_BYTES, Regossip

log = logging.getLogger("chainnode.txpool.gossip")

TX_GOSSIP_INTERVAL_MS = 50
TX_GOSSIP_BATCH_BYTES_MAX = 256 * 1024
TX_GOSSIP_BATCH_TXS_MAX = 10_000  # what a received batch may list
GOSSIP_QUEUE_TXS_MAX = 100_000  # beyond this, the oldest unsent are dropped: peers fetch them on demand
# Pending transactions older than REGOSSIP_AFTER_MS are gossiped again (regossip.py), one
# batch per REGOSSIP_INTERVAL_MS at most, each at doubling intervals up to the max.
REGOSSIP_INTERVAL_MS = 1_000
REGOSSIP_AFTER_MS = 2_000
REGOSSIP_INTERVAL_MAX_MS = 60_000


class TxGossipReactor:
    """Gossip in and out for one node's pool; `run` holds its three loops."""

    def __init__(self, pool: TxPool, network: Network, *, name: str) -> None:
        self.pool = pool
        self.network = network
        self.name = name
        self.regossip = Regossip(after_s=REGOSSIP_AFTER_MS / 1000, interval_max_s=REGOSSIP_INTERVAL_MAX_MS / 1000, batch_bytes_max=TX_GOSSIP_BATCH_BYTES_MAX)
        self._out: deque[bytes] = deque(maxlen=GOSSIP_QUEUE_TXS_MAX)

    def queue(self, raws: Iterable[bytes]) -> None:
        """Gossip these raw transactions with the next batch."""
        self._out.extend(raws)

    async def submit(self, raw: bytes) -> tuple[bytes, str]:
        """Admit a client's transaction durably (raises `Rejected`) and queue it for gossip;
        returns (hash, status), the status as in `TxPool.submit_durably`. A resubmitted
        pending transaction is gossiped again: its first gossip may not have gone out."""
        tx_hash, status = await self.pool.submit_durably(raw)
        pooled = self.pool.get(tx_hash) if status != COMMITTED else None
        if pooled is not None:
            self._out.append(pooled.raw)
        return tx_hash, status

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._gossip_in_loop)
            nursery.start_soon(self._gossip_out_loop)
            nursery.start_soon(self._regossip_loop)
            task_status.started()

    async def _gossip_in_loop(self) -> None:
        async for peer, batch in self.network.incoming_txs:
            try:
                f = expect_list(unpack(batch, max_bytes=TX_GOSSIP_BATCH_BYTES_MAX + BATCH_HEADER_BYTES_MAX), "tx batch", length=2)
                expect_version(f, "tx batch", 1)
                raws = expect_list(f[1], "tx batch txs", max_length=TX_GOSSIP_BATCH_TXS_MAX)
            except DecodeError as exc:
                self.network.report_misbehaviour(peer, f"bad tx batch: {exc}")
                continue
            await self.pool.submit_many([r for r in raws if type(r) is bytes])

    async def _gossip_out_loop(self) -> None:
        while True:
            await trio.sleep(TX_GOSSIP_INTERVAL_MS / 1000)
            if not self.network.connected_peers():
                continue  # nobody to tell yet: keep them (bounded) until a peer connects
            while self._out:
                batch, size = [], 0
                while self._out and size + len(self._out[0]) + BATCH_ITEM_OVERHEAD_BYTES <= TX_GOSSIP_BATCH_BYTES_MAX:
                    raw = self._out.popleft()
                    batch.append(raw)
                    size += len(raw) + BATCH_ITEM_OVERHEAD_BYTES
                if not batch:  # a single transaction over the batch size: never gossiped, only fetched
                    self._out.popleft()
                    continue
                await self._publish(batch)

    async def _regossip_loop(self) -> None:
        """Gossip again what has waited in the pool (regossip.py says why)."""
        while True:
            await trio.sleep(REGOSSIP_INTERVAL_MS / 1000)
            if not self.network.connected_peers():
                continue
            batch = self.regossip.pick(self.pool.pending(), time.monotonic(), lambda h: self.pool.get(h) is not None, self.pool.last_commit_s)
            if batch:
                await self._publish(batch)

    async def _publish(self, batch: list[bytes]) -> None:
        """Gossip one batch of raw transactions; best effort (a failure is only logged)."""
        try:
            await self.network.publish_txs(pack([1, batch]))
        except NetworkError as exc:
            log.debug("%s: tx gossip failed: %s", self.name, exc)

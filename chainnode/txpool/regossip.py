"""Which pending transactions to gossip again, and when.

Gossip is best effort (chainnode/network/gossip.py): a batch GossipSub lost, or one published
before a peer's subscription was known (right after a restart), leaves a transaction with
the node that admitted it alone. If that node is not the leader, an idle chain never
commits it: one node's view change cannot move the others (f + 1 are needed). So every node
gossips again what has waited in its pool for `after_s`, each transaction at doubling
intervals up to `interval_max_s`, at most `batch_bytes_max` per round: a chain with a real
backlog pays little for it, and a lone transaction reaches the leader within seconds.

Waiting counts from the later of a transaction's arrival and the chain's last block: while
blocks commit, a pending transaction waits for room in a block, not for gossip, and the
leader rotates (`leader_period`), so the node holding it proposes it itself. Counting from
arrival alone, a backlog of a few blocks made every node send `batch_bytes_max` of it every
round, which every peer decoded and refused as known: at 1,000,000 accounts (slower
blocks, longer backlogs) 7 duplicates per new transaction, the CPU the chain needed.
Whatever has waited `interval_max_s` since it arrived goes again even while blocks commit
(a long `leader_period`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Protocol

# A gossip batch is msgpack [1, [raw, ...]]: each transaction costs its bytes plus a bin
# header of at most 5 bytes, and the batch a few header bytes. Batches are sized with this
# overhead counted, or a full one is bigger than receivers accept (and they ban the sender).
BATCH_ITEM_OVERHEAD_BYTES = 5
BATCH_HEADER_BYTES_MAX = 16


class Pending(Protocol):
    tx_hash: bytes
    raw: bytes
    arrived_s: float


class Regossip:
    def __init__(self, *, after_s: float, interval_max_s: float, batch_bytes_max: int) -> None:
        self.after_s = after_s
        self.interval_max_s = interval_max_s
        self.batch_bytes_max = batch_bytes_max
        self._due: dict[bytes, tuple[float, float]] = {}  # tx hash -> (next gossip at, interval)
        self.sent_txs = 0

    def pick(self, oldest_first: Iterable[Pending], now_s: float, is_pending: Callable[[bytes], bool], chain_moved_s: float = 0.0) -> list[bytes]:
        """The raw transactions to gossip now, from the pool's pending ones (oldest first);
        `chain_moved_s`: when the last block committed (on the clock of `now_s`)."""
        self._due = {h: d for h, d in self._due.items() if is_pending(h)}
        batch: list[bytes] = []
        size = 0
        for p in oldest_first:
            if now_s - max(p.arrived_s, chain_moved_s) < self.after_s and now_s - p.arrived_s < self.interval_max_s:
                break
            at, interval = self._due.get(p.tx_hash, (0.0, self.after_s))
            cost = len(p.raw) + BATCH_ITEM_OVERHEAD_BYTES
            if at > now_s or cost > self.batch_bytes_max:
                continue
            if size + cost > self.batch_bytes_max:
                break
            batch.append(p.raw)
            size += cost
            self._due[p.tx_hash] = (now_s + interval, min(2 * interval, self.interval_max_s))
        self.sent_txs += len(batch)
        return batch

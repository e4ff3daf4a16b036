"""Sealer sets, leaders and quorums, by weight.

Every sealer has a weight (governance, `NodeEntry.weight`; 1 unless set). With total weight
W, the set tolerates faulty sealers of total weight up to F = (W - 1) // 3, and a quorum is
any set of sealers of weight >= Q = W - F (FISCO BCOS 3.x weighted PBFT). Any two quorums
then share more than F weight (2Q - W = W - 2F >= F + 1), hence at least one honest sealer;
and "more than F weight" (>= F + 1) always contains an honest sealer. That single fact is
what every safety argument in docs/consensus.md rests on.

With unit weights W = n, F = f = (n - 1) // 3 and Q = n - f: exactly the classical
head-count thresholds, so unweighted chains behave, hash and certify as before.

Leaders rotate by index, not by weight (FISCO rotates by index too): a heavy sealer leads as
often as a light one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from chainnode.crypto import CryptoSuite
from chainnode.protocol.types import check_weights, faulty_weight, quorum_size, quorum_weight, sealer_set_hash

__all__ = ["SealerSet", "VoteSet"]


@dataclass(frozen=True)
class SealerSet:
    """The consensus members for a range of heights, indexed 0..n-1 in list order.

    `weights` (index order) defaults to all 1. `f` and `quorum` are weights: F and Q above
    (with unit weights, the familiar head counts f and n - f)."""

    pubs: tuple[bytes, ...]
    set_hash: bytes
    weights: tuple[int, ...] = ()  # () = every sealer weighs 1; normalised to a full tuple
    n: int = field(init=False)
    total_weight: int = field(init=False)
    f: int = field(init=False)  # F: the faulty weight tolerated
    quorum: int = field(init=False)  # Q = W - F: the weight of a quorum
    unit: bool = field(init=False)  # all weights are 1
    index_by_pub: dict[bytes, int] = field(init=False, repr=False, compare=False)  # every message asks: read only

    def __post_init__(self) -> None:
        assert self.pubs, "a chain needs at least one sealer"
        assert len(set(self.pubs)) == len(self.pubs), "duplicate sealer public key"
        n = len(self.pubs)
        weights = check_weights(self.weights or None, n)
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "index_by_pub", {pub: i for i, pub in enumerate(self.pubs)})
        object.__setattr__(self, "unit", weights is None)
        object.__setattr__(self, "weights", (1,) * n if weights is None else tuple(weights))
        object.__setattr__(self, "total_weight", sum(self.weights))
        object.__setattr__(self, "quorum", quorum_size(n) if weights is None else quorum_weight(weights))
        object.__setattr__(self, "f", self.total_weight - self.quorum)
        assert self.f == faulty_weight(self.total_weight)

    @classmethod
    def build(cls, suite: CryptoSuite, pubs: list[bytes], weights: list[int] | None = None) -> "SealerSet":
        return cls(tuple(pubs), sealer_set_hash(suite, list(pubs), weights), tuple(weights or ()))

    def index_of(self, pub: bytes) -> int | None:
        return self.index_by_pub.get(pub)

    def leader(self, height: int, view: int, leader_period: int = 1) -> int:
        """FISCO-style rotation: the leader changes every `leader_period` heights and with
        every view change, so a crashed leader costs one view change per turn, not a stall.
        By index, whatever the weights (as FISCO BCOS 3.x)."""
        return (height // leader_period + view) % self.n

    def weight_of(self, indexes: Iterable[int]) -> int:
        """Total weight of distinct, in-range sealer indexes (the caller ensures both)."""
        w = self.weights
        return sum(w[i] for i in indexes)

    def is_quorum(self, indexes: Iterable[int]) -> bool:
        """Do these distinct sealers weigh at least Q?"""
        return self.weight_of(indexes) >= self.quorum

    def exceeds_faulty(self, indexes: Iterable[int]) -> bool:
        """Do these distinct sealers weigh more than F (so at least one of them is honest)?"""
        return self.weight_of(indexes) > self.f

    def quorum_prefix(self, signatures: list[tuple[int, bytes]]) -> list[tuple[int, bytes]]:
        """The shortest prefix of (index, signature) pairs (distinct indexes) weighing >= Q,
        or all of them if they do not. With unit weights: the first `quorum` pairs."""
        w, need, total = self.weights, self.quorum, 0
        for pos, (index, _) in enumerate(signatures):
            total += w[index]
            if total >= need:
                return signatures[: pos + 1]
        return list(signatures)


class VoteSet:
    """Votes of one kind (PREPARE or COMMIT) for one view: at most one vote per sealer.

    Counts are weights (`weights` in sealer index order; None = every vote counts 1). A
    second, different vote from the same sealer is equivocation; it is refused (the first
    vote stands) and reported, so one liar can inflate neither counts nor memory.
    """

    __slots__ = ("votes", "counts", "weights")

    def __init__(self, weights: tuple[int, ...] | None = None) -> None:
        self.votes: dict[int, tuple[bytes, bytes]] = {}  # sender -> (block_hash, signature)
        self.counts: dict[bytes, int] = {}  # block_hash -> total weight of its votes
        self.weights = weights

    def has(self, sender: int, block_hash: bytes) -> bool | None:
        """None: no vote from sender; True: this exact vote; False: a different one."""
        vote = self.votes.get(sender)
        if vote is None:
            return None
        return vote[0] == block_hash

    def add(self, sender: int, block_hash: bytes, sig: bytes) -> int:
        assert sender not in self.votes, "caller checks has() first"
        self.votes[sender] = (block_hash, sig)
        count = self.counts.get(block_hash, 0) + (1 if self.weights is None else self.weights[sender])
        self.counts[block_hash] = count
        return count

    def count(self, block_hash: bytes) -> int:
        """The total weight of the votes for block_hash."""
        return self.counts.get(block_hash, 0)

    def signatures(self, block_hash: bytes) -> list[tuple[int, bytes]]:
        """(sender, signature) of the votes for block_hash, ascending by sender."""
        return sorted((s, sig) for s, (h, sig) in self.votes.items() if h == block_hash)

    def max_other(self, block_hash: bytes | None) -> int:
        """The largest weight of votes for any block other than block_hash."""
        return max((c for h, c in self.counts.items() if h != block_hash), default=0)

"""Sealer sets, leaders and quorums.

n sealers tolerate f = (n - 1) // 3 faulty ones; a quorum is n - f (2f + 1 when n = 3f + 1),
so any two quorums share at least f + 1 sealers, hence at least one honest one. That single
fact is what every safety argument in docs/consensus.md rests on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from chainnode.crypto import CryptoSuite
from chainnode.types import quorum_size, sealer_set_hash

__all__ = ["SealerSet", "VoteSet", "quorum_size", "sealer_set_hash"]


@dataclass(frozen=True)
class SealerSet:
    """The consensus members for a range of heights, indexed 0..n-1 in list order."""

    pubs: tuple[bytes, ...]
    set_hash: bytes
    n: int = field(init=False)
    f: int = field(init=False)
    quorum: int = field(init=False)

    def __post_init__(self) -> None:
        assert self.pubs, "a chain needs at least one sealer"
        assert len(set(self.pubs)) == len(self.pubs), "duplicate sealer public key"
        object.__setattr__(self, "n", len(self.pubs))
        object.__setattr__(self, "quorum", quorum_size(len(self.pubs)))
        object.__setattr__(self, "f", len(self.pubs) - self.quorum)

    @classmethod
    def build(cls, suite: CryptoSuite, pubs: list[bytes]) -> "SealerSet":
        return cls(tuple(pubs), sealer_set_hash(suite, list(pubs)))

    def index_of(self, pub: bytes) -> int | None:
        try:
            return self.pubs.index(pub)
        except ValueError:
            return None

    def leader(self, height: int, view: int, leader_period: int = 1) -> int:
        """FISCO-style rotation: the leader changes every `leader_period` heights and with
        every view change, so a crashed leader costs one view change per turn, not a stall."""
        return (height // leader_period + view) % self.n


class VoteSet:
    """Votes of one kind (PREPARE or COMMIT) for one view: at most one vote per sealer.

    A second, different vote from the same sealer is equivocation; it is refused (the first
    vote stands) and reported, so one liar can inflate neither counts nor memory.
    """

    __slots__ = ("votes", "counts")

    def __init__(self) -> None:
        self.votes: dict[int, tuple[bytes, bytes]] = {}  # sender -> (block_hash, signature)
        self.counts: dict[bytes, int] = {}

    def has(self, sender: int, block_hash: bytes) -> bool | None:
        """None: no vote from sender; True: this exact vote; False: a different one."""
        vote = self.votes.get(sender)
        if vote is None:
            return None
        return vote[0] == block_hash

    def add(self, sender: int, block_hash: bytes, sig: bytes) -> int:
        assert sender not in self.votes, "caller checks has() first"
        self.votes[sender] = (block_hash, sig)
        count = self.counts.get(block_hash, 0) + 1
        self.counts[block_hash] = count
        return count

    def count(self, block_hash: bytes) -> int:
        return self.counts.get(block_hash, 0)

    def signatures(self, block_hash: bytes) -> list[tuple[int, bytes]]:
        """(sender, signature) of the votes for block_hash, ascending by sender."""
        return sorted((s, sig) for s, (h, sig) in self.votes.items() if h == block_hash)

    def max_other(self, block_hash: bytes | None) -> int:
        """The largest count of votes for any block other than block_hash."""
        return max((c for h, c in self.counts.items() if h != block_hash), default=0)

"""What the node feeds the core (events) and what the core asks of the node (actions).

The core never performs IO; the node performs the actions of one `handle()` call in list
order before feeding the next event. `Persist` is a write barrier: the node must make its
bytes durable before it performs any later action of the same list (that is how a signed
vote is on disk before it is on the wire), and `Commit` must be durable before any later
`Persist` (so the persisted safety state never runs ahead of the ledger).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Union

from chainnode.protocol.types import BlockHeader, CommitCertificate

# ---- events -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """Raw consensus bytes from the peer the transport authenticated with consensus key
    `sender_pub`. The core maps the key to a sealer index in the set of the message's own
    height: only it knows which set that is, around a membership change."""

    sender_pub: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer_id: Hashable


@dataclass(frozen=True, slots=True)
class PoolNotEmpty:
    """The tx pool holds transactions that are not in the chain. The node sends it when a
    transaction arrives in an empty pool and after every `Commit` that leaves the pool
    non-empty; the core forgets it at every commit. No work = no timer = no view churn."""


@dataclass(frozen=True, slots=True)
class ProposalReady:
    """Answer to `BuildProposal`: the executed header and its tx hashes, or header None
    when the pool had nothing to propose (and empty blocks were not allowed)."""

    height: int
    view: int
    header: BlockHeader | None
    tx_hashes: list[bytes] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ExecutionDone:
    """Answer to `Execute`: the header the application computed by executing the proposal's
    transactions on its parent (None if it could not: invalid transactions, a failing block,
    roots that differ; `reason` says which). The core signs only if it equals the proposed
    header bit for bit.

    `retry`: the application could not execute the proposal *yet* (a transaction it could not
    fetch in time, a head that moved under it), which says nothing about the block; the core
    asks again for as long as it still needs the block."""

    proposal_id: bytes
    header: BlockHeader | None
    retry: bool = False
    reason: str = ""


@dataclass(frozen=True, slots=True)
class BlockCommitted:
    """The node committed this block without the core (block sync)."""

    height: int
    block_hash: bytes


@dataclass(frozen=True, slots=True)
class SealersChanged:
    """From `from_height` on, these sealers (in index order) certify blocks, with these
    voting weights (index order; None = all 1). Takes effect at a block boundary:
    `from_height` must be above the chain head. A weight change alone is a sealer-set change
    too (the set hash binds the weights) and follows the same rule."""

    from_height: int
    sealer_pubs: list[bytes]
    weights: list[int] | None = None


@dataclass(frozen=True, slots=True)
class ConfigChanged:
    """Governance changed the config the core keeps a copy of; it holds from the next block,
    so the node delivers it right after the block that made the change, before any other
    event (the view-timeout cap never drops below the new base)."""

    timeout_base_ms: int
    block_tx_count_max: int


Event = Union[
    MessageReceived, TimerFired, PoolNotEmpty, ProposalReady, ExecutionDone, BlockCommitted, SealersChanged, ConfigChanged
]

# ---- actions ----------------------------------------------------------------------------
# Actions name peers by consensus key, not by sealer index: an index means something only in
# the set of one height, and the core, not the node, knows which height a message is about
# (a DECIDED for a lagging peer's old height, say). With keys the node routes with one
# key -> connection lookup and never second-guesses the core's sealer sets.


@dataclass(frozen=True, slots=True)
class Send:
    to_pub: bytes
    data: bytes


@dataclass(frozen=True, slots=True)
class Broadcast:
    """To every other sealer of the current set (never back to this replica); the node also
    sends it to the sealers of the next height, which differ around a membership change."""

    data: bytes


@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire `TimerFired(timer_id)` after delay_ms. Ids are never reused."""

    timer_id: Hashable
    delay_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer_id: Hashable


@dataclass(frozen=True, slots=True)
class BuildProposal:
    """Build and execute a block on top of parent_hash with the given header fields; answer
    with `ProposalReady`. With allow_empty False, answer header None if the pool is empty."""

    height: int
    view: int
    parent_hash: bytes
    proposer_index: int
    sealer_set_hash: bytes
    allow_empty: bool


@dataclass(frozen=True, slots=True)
class Execute:
    """Execute the proposal's transactions on top of its parent; answer `ExecutionDone`."""

    proposal_id: bytes
    header: BlockHeader
    tx_hashes: list[bytes]


@dataclass(frozen=True, slots=True)
class Persist:
    """Durably replace the replica's safety state with `data` (see the module docstring)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Commit:
    """Commit the block (already executed through Execute/BuildProposal) with its certificate."""

    header: BlockHeader
    tx_hashes: list[bytes]
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    """Evidence that the sealer with key `peer_pub` broke the protocol (bad signature,
    equivocation, garbage...). The node may penalise or disconnect the peer; the core
    already ignored it."""

    peer_pub: bytes
    reason: str


Action = Union[Send, Broadcast, SetTimer, CancelTimer, BuildProposal, Execute, Persist, Commit, Misbehaviour]

"""The PBFT replica: a deterministic state machine, events in, actions out (sans-IO).

One height at a time, FISCO style (execute before sign):

    leader(h, v) --PRE_PREPARE(header, tx hashes)--> all
    each replica executes the block; if its header equals the proposal bit for bit
    (same roots) it broadcasts PREPARE(h, v, block_hash)
    2f+1 PREPAREs  = prepared  --> COMMIT(h, v, block_hash)
    2f+1 COMMITs   = committed locally --> CHECKPOINT(h, block_hash), signed over
                     commit_signing_bytes(h, block_hash)
    2f+1 CHECKPOINTs = the CommitCertificate --> Commit action, next height

("2f+1" and "f+1" are weights: a quorum is signers of weight >= Q = W - F and "f+1" means
more than F weight, F = (W - 1) // 3; with unit weights these are the usual head counts.
See consensus/quorum.py.)

A timer per (height, view) runs only while there is work (a non-empty pool or a proposal);
when it fires the replica moves to view v+1 with a VIEW_CHANGE that carries its highest
prepared certificate; the leader of v+1 gathers 2f+1 of them and sends NEW_VIEW, which must
re-propose the highest prepared block it carries. docs/consensus.md has the message formats
and the safety argument.

Per height, a `HeightState` holds what the replica knows, and its `phase` (a `Phase`) says
where the replica is in the current view; `_NEXT` lists the moves the protocol makes.

Nothing here reads a clock or a random source or does IO: the node (or the simulator) feeds
`handle()` and performs the returned actions in order.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any, Hashable

from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import DecodeError
from chainnode.protocol.types import BlockHeader, CommitCertificate, InvalidCertificate, commit_signing_bytes
from consensus import events as ev
from consensus.messages import (
    Checkpoint,
    Commit,
    Decided,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    SyncRequest,
    ViewChange,
    decode_message,
    sign,
)
from consensus.quorum import SealerSet, VoteSet
from consensus.safety import SafetyState


@dataclass(frozen=True)
class ReplicaConfig:
    """Limits and timings (units last). Defaults suit a LAN consortium; the simulator uses
    shorter timeouts."""

    timeout_base_ms: int = 3000  # first view timeout of a height (FISCO: consensus_timeout 3 s)
    timeout_max_ms: int = 30_000  # cap of the exponential backoff over failed views
    leader_period: int = 1  # heights per leader (FISCO 3.x consensus_leader_period)
    # Far-future bounds: a message beyond these is dropped before its signature is checked,
    # so a huge view or height costs nothing and changes nothing (FISCO BCOS issue #2211).
    view_ahead_max: int = 10_000  # VIEW_CHANGE / NEW_VIEW views above the current view
    vote_view_ahead_max: int = 4  # PREPARE / COMMIT views kept above the current view
    height_ahead_max: int = 10_000  # heights above the current one that count as "peer is ahead"
    future_messages_per_peer_max: int = 32  # next-height messages buffered per peer
    decided_cache_blocks: int = 128  # recent decided blocks kept to answer lagging peers
    proposals_per_height_max: int = 16  # distinct proposals remembered at one height
    message_bytes_max: int = 4 << 20
    block_tx_count_max: int = 10_000
    sealer_sets_kept: int = 16  # sealer-set history, for answering and checking old heights

    def __post_init__(self) -> None:
        assert 0 < self.timeout_base_ms <= self.timeout_max_ms
        assert self.leader_period >= 1 and self.vote_view_ahead_max >= 1


_BUFFERED_TYPES = (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView)
# Next-height messages that prove their sender finished our height (a lagging replica asks
# it for the decided block). PRE_PREPARE/PREPARE do not: they routinely arrive a moment early.
_AHEAD_EVIDENCE = (Commit, Checkpoint, ViewChange, NewView)


class Phase(Enum):
    """Where this replica is in the protocol at its current (height, view).

    One value, where several flags (in view change, NEW_VIEW sent, proposal requested, locally
    committed in view v...) used to imply it together. It changes in one place
    (`Replica._to` within a view, `Replica._move_to_view` to a later one), and every change
    is checked against `_NEXT`. What outlives a view (the highest prepared certificate, our
    CHECKPOINT, a commit certificate that arrived) is data on the HeightState, not a phase:
    a certificate can arrive in any phase, and commits the height from there."""

    WAITING = "waiting"  # no proposal of this view yet: a follower waits for it, its leader for work
    BUILDING = "building"  # leader of view 0: the application is building our block
    ACCEPTED = "accepted"  # took the leader's proposal; PREPARE once it executes to the proposed roots
    PREPARING = "preparing"  # PREPARE sent (persisted); collecting a quorum of PREPAREs
    COMMITTING = "committing"  # prepared: certificate kept, COMMIT sent; collecting a quorum of COMMITs
    COMMITTED = "committed"  # committed locally: CHECKPOINT sent; collecting CHECKPOINTs
    VIEW_CHANGE = "view_change"  # VIEW_CHANGE to this view sent; waiting for its NEW_VIEW (its leader: a quorum)
    BUILDING_NEW_VIEW = "building_new_view"  # leader of this view, no prepared block: the application builds one

    # Members are singletons: hash them by identity. (Enum's own __hash__ is Python code,
    # and the hot paths test phases against sets on every message.)
    __hash__ = object.__hash__


# The members by name, for the hot paths: reading one through the class is a metaclass
# lookup on every message.
WAITING, BUILDING, ACCEPTED, PREPARING, COMMITTING, COMMITTED, VIEW_CHANGE, BUILDING_NEW_VIEW = Phase

# The moves within one view. A move to a later view (our VIEW_CHANGE, or a valid NEW_VIEW of
# a later view) is `_move_to_view`, to VIEW_CHANGE or WAITING from any phase; a new height
# starts at WAITING.
_NEXT: dict[Phase, frozenset[Phase]] = {
    Phase.WAITING: frozenset({Phase.BUILDING, Phase.ACCEPTED}),
    Phase.BUILDING: frozenset({Phase.WAITING, Phase.ACCEPTED}),
    Phase.ACCEPTED: frozenset({Phase.PREPARING}),
    Phase.PREPARING: frozenset({Phase.COMMITTING}),
    Phase.COMMITTING: frozenset({Phase.COMMITTED}),
    Phase.COMMITTED: frozenset(),
    Phase.VIEW_CHANGE: frozenset({Phase.BUILDING_NEW_VIEW, Phase.WAITING}),  # NEW_VIEW sent or received
    Phase.BUILDING_NEW_VIEW: frozenset({Phase.WAITING}),
}
CHANGING_VIEW = frozenset({VIEW_CHANGE, BUILDING_NEW_VIEW})  # "in view change" on disk and in status


@dataclass(slots=True, eq=False)
class HeightState:
    """Everything the replica knows about the height it is deciding; replaced on entering the
    next one. `phase` says where it is in the current view (see Phase)."""

    height: int
    sealers: SealerSet
    me: int | None  # our index in `sealers`; None: not a sealer at this height (observer)
    view: int = 0
    phase: Phase = WAITING
    prepare_vote: tuple[int, bytes] | None = None  # (view, block_hash) of our PREPARE in `view`
    commit_vote: tuple[int, bytes] | None = None  # (view, block_hash) of our COMMIT in `view`
    prepared: PreparedCertificate | None = None  # our highest prepared certificate, any view
    checkpoint: tuple[bytes, bytes] | None = None  # (block_hash, signature) of our CHECKPOINT
    restored: bool = False  # the votes above came from the persisted safety state
    accepted: dict[int, bytes] = field(default_factory=dict)  # view -> hash of the leader's proposal we accepted
    proposals: dict[bytes, tuple[BlockHeader, list[bytes]]] = field(default_factory=dict)
    executed: dict[bytes, bool] = field(default_factory=dict)
    executing: set[bytes] = field(default_factory=set)
    retried: set[bytes] = field(default_factory=set)
    execution_failures: dict[bytes, str] = field(default_factory=dict)  # proposal -> why it failed execution here
    prepares: dict[int, VoteSet] = field(default_factory=dict)
    commits: dict[int, VoteSet] = field(default_factory=dict)
    checkpoints: dict[int, tuple[bytes, bytes]] = field(default_factory=dict)
    view_changes: dict[int, ViewChange] = field(default_factory=dict)  # sender -> its highest VIEW_CHANGE
    nv_view_changes: list[ViewChange] = field(default_factory=list)  # the quorum our NEW_VIEW carries
    nv_fresh: bool = True  # our NEW_VIEW proposes a new block (no VIEW_CHANGE carried a prepared one)
    quorum_timer_view: int = -1  # the view whose timer a quorum of VIEW_CHANGEs restarted
    certified: tuple[bytes, CommitCertificate] | None = None
    certified_source: tuple[bytes, int] | None = None  # (peer key, its head height) of a Decided
    pool_has_work: bool = False
    future: dict[int, list[Any]] = field(default_factory=dict)  # sender -> next-height messages
    peer_ahead: dict[bytes, int] = field(default_factory=dict)  # peer key -> the height it showed us it reached

    def __repr__(self) -> str:  # the rest is bulky; these say where the replica is
        return f"HeightState(height={self.height}, view={self.view}, phase={self.phase.name}, me={self.me})"

    @classmethod
    def restore(cls, height: int, sealers: SealerSet, me: int | None, safety: SafetyState) -> "HeightState":
        """The state a restarted replica resumes from: its votes of `safety.view` and the phase
        they imply. (Not COMMITTED: it re-sends its CHECKPOINT once COMMITs show a quorum.)"""
        assert safety.height == height
        if safety.in_view_change:
            assert safety.prepare_vote is None and safety.commit_vote is None, "votes persisted in a view change"
            phase = VIEW_CHANGE
        elif safety.commit_vote is not None:
            phase = COMMITTING
        elif safety.prepare_vote is not None:
            phase = PREPARING
        else:
            phase = WAITING
        for vote in (safety.prepare_vote, safety.commit_vote):
            assert vote is None or vote[0] == safety.view, "a persisted vote of another view"
        assert safety.commit_vote is None or safety.prepare_vote is not None, "a COMMIT without our PREPARE"
        return cls(
            height, sealers, me, view=safety.view, phase=phase, prepare_vote=safety.prepare_vote,
            commit_vote=safety.commit_vote, prepared=safety.prepared, checkpoint=safety.checkpoint, restored=True,
        )


class Replica:
    """One sealer's PBFT state machine. See the module docstring and docs/consensus.md.

    `hs` is the state of the height being decided (HeightState)."""

    def __init__(
        self,
        config: ReplicaConfig,
        suite: CryptoSuite,
        my_priv: bytes,
        my_pub: bytes,
        sealer_pubs: list[bytes],
        head_height: int,
        head_hash: bytes,
        persisted: bytes | None = None,
        recent_blocks: list[tuple[BlockHeader, list[bytes], CommitCertificate]] = (),
        weights: list[int] | None = None,
    ) -> None:
        """`persisted`: the last `Persist` bytes (None on first start). `recent_blocks`: the
        last few committed blocks from the ledger (header, tx hashes, certificate), oldest
        first, so a restarted replica can still hand lagging peers what they missed.
        `weights`: the sealers' voting weights in index order (None: all 1), see
        consensus/quorum.py."""
        self.cfg = config
        self.suite = suite
        self._priv = my_priv
        self.my_pub = my_pub
        self.head_height = head_height
        self.head_hash = head_hash
        self._sets: list[tuple[int, SealerSet]] = [(head_height + 1, SealerSet.build(suite, list(sealer_pubs), weights))]
        self._decided: OrderedDict[int, tuple[BlockHeader, list[bytes], CommitCertificate]] = OrderedDict()
        for header, tx_hashes, cert in list(recent_blocks)[-config.decided_cache_blocks :]:
            assert header.height <= head_height and cert.height == header.height
            self._decided[header.height] = (header, list(tx_hashes), cert)
        self._helped: dict[bytes, tuple[int, int]] = {}  # peer key -> last (height, view) we sent it a decided block for
        self._out: list[Any] = []
        self.timer_id: Hashable | None = None
        self._timer_seq = 0
        self.stats: dict[str, int] = {
            "messages_in": 0,
            "messages_out": 0,
            "dropped": 0,
            "misbehaviour": 0,
            "view_changes": 0,
            "timeouts": 0,
            "equivocations": 0,
            "commits": 0,
            "sync_requests": 0,
            "execution_retries": 0,
        }
        restored = SafetyState.decode(persisted) if persisted else None
        if restored is not None and restored.height > head_height + 1:
            # Rule: a Commit is durable before any later Persist, so the safety state can never
            # be for a height above head + 1. If it is, the ledger lost a block we voted on.
            raise AssertionError(
                f"persisted consensus state is for height {restored.height} but the chain head is {head_height}"
            )
        self._enter_height(head_height + 1)
        if restored is not None and restored.height == self.hs.height:
            self.hs = HeightState.restore(self.hs.height, self.hs.sealers, self.hs.me, restored)

    # ---- public API -------------------------------------------------------------------

    def start(self) -> list[Any]:
        """Actions to perform once at start-up (re-arm the timer and re-send what a restarted
        replica had signed at its current height, so peers that missed it can still use it)."""
        self._out = []
        if self.hs.restored and self.hs.me is not None:
            # Our own votes of the current view count towards our quorums again (re-signing
            # the same content is not equivocation), and peers that missed them get them.
            for vote, cls, store in ((self.hs.prepare_vote, Prepare, self.hs.prepares), (self.hs.commit_vote, Commit, self.hs.commits)):
                if vote is not None:  # of this view, and not in a view change (HeightState.restore)
                    msg = self._signed(cls(self.hs.height, vote[0], self.hs.me, vote[1]))
                    self._add_vote(store, msg)
                    self._broadcast(msg)
            if self.hs.phase is VIEW_CHANGE:
                vc = self._signed(ViewChange(self.hs.height, self.hs.view, self.hs.me, self.hs.prepared))
                self.hs.view_changes[self.hs.me] = vc
                self._broadcast(vc)
            if self.hs.checkpoint is not None:
                block_hash, sig = self.hs.checkpoint
                self.hs.checkpoints[self.hs.me] = (block_hash, sig)
                self._broadcast(Checkpoint(self.hs.height, 0, self.hs.me, block_hash, sig))
            self._ensure_timer()
        return self._take()

    def handle(self, event: Any) -> list[Any]:
        """Feed one event; return the actions to perform, in order."""
        assert not self._out, "handle() is not re-entrant"
        t = type(event)
        if t is ev.MessageReceived:
            self._on_message(event.sender_pub, event.data)
        elif t is ev.TimerFired:
            self._on_timer(event.timer_id)
        elif t is ev.ExecutionDone:
            self._on_execution_done(event)
        elif t is ev.ProposalReady:
            self._on_proposal_ready(event)
        elif t is ev.PoolNotEmpty:
            self.hs.pool_has_work = True
            self._ensure_timer()
            self._maybe_propose()
        elif t is ev.BlockCommitted:
            self._on_block_committed(event.height, event.block_hash)
        elif t is ev.SealersChanged:
            self._on_sealers_changed(event.from_height, event.sealer_pubs, event.weights)
        elif t is ev.ConfigChanged:
            self._on_config_changed(event)
        else:
            raise TypeError(f"unknown consensus event {event!r}")
        return self._take()

    def status(self) -> dict[str, Any]:
        """For RPC (getPbftView, getConsensusStatus) and traces."""
        return {
            "height": self.hs.height,
            "view": self.hs.view,
            "in_view_change": self.hs.phase in CHANGING_VIEW,
            "leader": self.hs.sealers.leader(self.hs.height, self.hs.view, self.cfg.leader_period),
            "my_index": self.hs.me,
            "head_height": self.head_height,
        }

    def sealers_at(self, height: int) -> SealerSet:
        chosen = self._sets[0][1]
        for from_height, sset in self._sets:
            if from_height <= height:
                chosen = sset
        return chosen

    # ---- per-height state -------------------------------------------------------------

    def _enter_height(self, height: int) -> None:
        sealers = self.sealers_at(height)
        self.hs = HeightState(height, sealers, sealers.index_of(self.my_pub))

    def _to(self, phase: Phase) -> None:
        """The one place the phase changes within a view."""
        hs = self.hs
        if phase not in _NEXT[hs.phase]:
            raise AssertionError(f"PBFT phase {hs.phase.name} -> {phase.name} at height {hs.height} view {hs.view}")
        hs.phase = phase

    def _move_to_view(self, view: int, phase: Phase) -> None:
        """Leave the current view for a later one: by our VIEW_CHANGE (phase VIEW_CHANGE) or
        by a valid NEW_VIEW of that view (phase WAITING, its proposal comes next). Our votes
        were for the view we leave."""
        hs = self.hs
        assert view > hs.view, "views only move forward"
        assert phase is VIEW_CHANGE or phase is WAITING, f"a new view starts in VIEW_CHANGE or WAITING, not {phase.name}"
        self._cancel_timer()
        hs.view = view
        hs.phase = phase
        self.stats["view_changes"] += 1
        hs.prepare_vote = None
        hs.commit_vote = None
        self._prune_views()

    # ---- output helpers ---------------------------------------------------------------

    def _take(self) -> list[Any]:
        out, self._out = self._out, []
        return out

    def _emit(self, action: Any) -> None:
        self._out.append(action)

    def _signed(self, msg: Any) -> Any:
        return sign(msg, lambda data: self.suite.sign(self._priv, data))

    def _broadcast(self, msg: Any) -> None:
        self.stats["messages_out"] += 1
        self._emit(ev.Broadcast(msg.encode()))

    def _send(self, to_pub: bytes, msg: Any) -> None:
        self.stats["messages_out"] += 1
        self._emit(ev.Send(to_pub, msg.encode()))

    def _persist(self) -> None:
        """Write barrier before sending a signature (see consensus/safety.py)."""
        hs = self.hs
        state = SafetyState(hs.height, hs.view, hs.phase in CHANGING_VIEW, hs.prepare_vote, hs.commit_vote, hs.prepared, hs.checkpoint)
        if self._out and type(self._out[-1]) is ev.Persist:
            self._out.pop()  # nothing was sent since: the newer state supersedes it
        self._emit(ev.Persist(state.encode()))

    def _misbehave(self, peer: int, reason: str, sset: SealerSet | None = None) -> None:
        """Sealer `peer` of `sset` (default: this height's set) broke the protocol."""
        self._misbehave_key((sset or self.hs.sealers).pubs[peer], reason)

    def _misbehave_key(self, pub: bytes, reason: str) -> None:
        self.stats["misbehaviour"] += 1
        self._emit(ev.Misbehaviour(pub, reason))

    def _verify(self, msg: Any, sset: SealerSet) -> bool:
        if self.suite.verify(sset.pubs[msg.sender], msg.signing_bytes(), msg.signature):
            return True
        self._misbehave(msg.sender, f"bad signature on {type(msg).__name__}", sset)
        return False

    def _leader(self, view: int) -> int:
        return self.hs.sealers.leader(self.hs.height, view, self.cfg.leader_period)

    # ---- timers -----------------------------------------------------------------------

    def _timeout_ms(self, view: int) -> int:
        # Exponential backoff over consecutive failed views of this height; a new height starts
        # again at view 0, so progress resets it.
        return min(self.cfg.timeout_base_ms << min(view, 24), self.cfg.timeout_max_ms)

    def _ensure_timer(self) -> None:
        # A replica that is not a sealer at this height never votes, so it never needs to
        # change views: it follows by certificates (CHECKPOINTs, DECIDED, block sync).
        hs = self.hs
        if self.timer_id is None and hs.me is not None:
            self._timer_seq += 1  # ids are never reused, so a late firing is always recognised
            self.timer_id = ("view", hs.height, hs.view, self._timer_seq)
            self._emit(ev.SetTimer(self.timer_id, self._timeout_ms(hs.view)))

    def _cancel_timer(self) -> None:
        if self.timer_id is not None:
            self._emit(ev.CancelTimer(self.timer_id))
            self.timer_id = None

    def _on_timer(self, timer_id: Hashable) -> None:
        if timer_id != self.timer_id:
            return  # a timer of a view or height we already left
        self.timer_id = None
        self.stats["timeouts"] += 1
        self.hs.peer_ahead.clear()  # let sync requests that may have been lost go out again
        if self.hs.phase in CHANGING_VIEW and self.hs.me is not None:
            support = self.hs.sealers.weight_of(s for s, vc in self.hs.view_changes.items() if vc.view >= self.hs.view)
            if support < self.hs.sealers.quorum:
                # Fewer than a quorum has even reached our view: moving further ahead would
                # only keep us out of step with them (replicas one view apart with equal
                # timeouts would never meet). Re-send our VIEW_CHANGE, in case it was lost,
                # and wait for the others to catch up; they count us as support and move.
                self._broadcast(self.hs.view_changes[self.hs.me])
                self._ensure_timer()
                return
        self._start_view_change(self.hs.view + 1)

    # ---- message intake ---------------------------------------------------------------

    def _on_message(self, pub: bytes, data: bytes) -> None:
        self.stats["messages_in"] += 1
        if len(data) > self.cfg.message_bytes_max:
            self._reject(pub, f"message of {len(data)} bytes exceeds {self.cfg.message_bytes_max}")
            return
        try:
            msg = decode_message(data, max_bytes=self.cfg.message_bytes_max)
        except DecodeError as exc:
            self._reject(pub, f"undecodable message: {exc}")
            return
        # A sender is a sealer index in the set of the message's height (indices shift when a
        # sealer leaves), so the transport's key is mapped at that height.
        hs = self.hs
        sset = hs.sealers if msg.height == hs.height else self.sealers_at(msg.height)
        sender = sset.index_by_pub.get(pub)
        if sender is None:
            self._drop()  # not a sealer at that height: it has no say there
            return
        if msg.sender != sender:
            # No relaying: every message comes from its signer, so misbehaviour is attributable.
            self._reject(pub, f"message claims sender {msg.sender}")
            return
        self._dispatch(msg)

    def _reject(self, pub: bytes, reason: str) -> None:
        """A message that is not one: misbehaviour of a sealer of this height or the next
        (a key that is neither has no say in this replica's consensus, and is dropped).
        Our own key never sends us anything: a transport that says so was fooled, and
        reporting ourselves would help no one. (Messages "from us" are dropped where they
        would get an answer: `_dispatch`, `_on_future`, `_send_decided`, `_on_decided`.)"""
        height = self.hs.height
        if pub == self.my_pub or (self.sealers_at(height).index_of(pub) is None and self.sealers_at(height + 1).index_of(pub) is None):
            self._drop()
        else:
            self._misbehave_key(pub, reason)

    def _dispatch(self, msg: Any) -> None:
        t = type(msg)
        if t is SyncRequest:
            self._on_sync_request(msg)
            return
        if t is Decided:
            self._on_decided(msg)
            return
        hs = self.hs
        if msg.height < hs.height:
            if t is ViewChange:
                # The sender timed out on a height we decided. (Late votes of a decided height
                # are normal and need no answer: the checkpoints are on their way.)
                self._maybe_help(msg)
            else:
                self._drop()
            return
        if msg.height > hs.height:
            self._on_future(msg)
            return
        if msg.sender >= hs.sealers.n or msg.sender == hs.me:
            self._drop()
            return
        if t is PrePrepare:
            self._on_pre_prepare(msg)
        elif t is Prepare:
            self._on_prepare(msg)
        elif t is Commit:
            self._on_commit(msg)
        elif t is Checkpoint:
            self._on_checkpoint(msg)
        elif t is ViewChange:
            self._on_view_change(msg)
        elif t is NewView:
            self._on_new_view(msg)
        else:  # pragma: no cover - decode_message returns only the types above
            raise AssertionError(f"unhandled message type {t.__name__}")

    def _drop(self) -> None:
        self.stats["dropped"] += 1

    def _on_future(self, msg: Any) -> None:
        if msg.height > self.hs.height + self.cfg.height_ahead_max:
            self._drop()  # far future: not even worth a signature check
            return
        sset = self.sealers_at(msg.height)
        if msg.sender >= sset.n or sset.pubs[msg.sender] == self.my_pub:  # our index may differ there
            self._drop()
            return
        if msg.height == self.hs.height + 1:
            buffered = self.hs.future.setdefault(msg.sender, [])
            if len(buffered) < self.cfg.future_messages_per_peer_max:
                buffered.append(msg)  # checked when we reach that height
            else:
                self._drop()
            if not isinstance(msg, _AHEAD_EVIDENCE):
                return
        if self._verify(msg, sset):
            self._note_ahead(sset.pubs[msg.sender], msg.height)

    def _note_ahead(self, peer: bytes, height: int) -> None:
        """`peer` signed a message for `height` above ours: it has decided our height. Ask it
        for the decided block, once per peer per height it reaches (bounded, and retried
        whenever the peer shows progress)."""
        if height <= self.hs.peer_ahead.get(peer, self.hs.height) or self.hs.me is None:
            return
        self.hs.peer_ahead[peer] = height
        self.stats["sync_requests"] += 1
        self._send(peer, self._signed(SyncRequest(self.hs.height, 0, self.hs.me)))

    def _maybe_help(self, msg: Any) -> None:
        """A peer still works on a height we decided: send it the decided block, once per
        (height, view) it shows us, so a replica that missed the checkpoints catches up."""
        entry = self._decided.get(msg.height)
        if entry is None or self.hs.me is None:
            self._drop()
            return
        sset = self.sealers_at(msg.height)
        if msg.sender >= sset.n:
            return
        key, peer = (msg.height, msg.view), sset.pubs[msg.sender]
        if self._helped.get(peer, (-1, -1)) >= key:
            return
        if not self._verify(msg, sset):
            return
        self._helped[peer] = key
        self._send_decided(peer, msg.height)

    def _send_decided(self, to_pub: bytes, height: int) -> None:
        # Signed as our index in the set of that height: that is how its receiver (at that
        # height) maps our key, and checks our signature.
        me = self.sealers_at(height).index_of(self.my_pub)
        if me is None or to_pub == self.my_pub:
            self._drop()  # we were not a sealer there (our word would not count), or it is us
            return
        header, tx_hashes, cert = self._decided[height]
        self._send(to_pub, self._signed(Decided(height, 0, me, header, tx_hashes, cert, self.head_height)))

    def _on_sync_request(self, msg: SyncRequest) -> None:
        if msg.height not in self._decided or self.hs.me is None:
            self._drop()
            return
        sset = self.sealers_at(msg.height)
        if msg.sender >= sset.n or not self._verify(msg, sset):
            return
        self._send_decided(sset.pubs[msg.sender], msg.height)

    def _on_decided(self, msg: Decided) -> None:
        if msg.height != self.hs.height or (self.hs.certified is not None and self.hs.certified[0] in self.hs.proposals):
            self._drop()  # not our height, or we already hold a certified block we can commit
            return
        if msg.sender >= self.hs.sealers.n or msg.sender == self.hs.me:
            self._drop()
            return
        if not self._verify(msg, self.hs.sealers):
            return
        header = msg.header
        problem = self._check_header(header, msg.tx_hashes)
        block_hash = header.hash(self.suite)
        if problem is None and (msg.certificate.height != self.hs.height or msg.certificate.block_hash != block_hash):
            problem = "certificate is for another block"
        if problem is None:
            try:
                msg.certificate.verify(self.suite, list(self.hs.sealers.pubs), list(self.hs.sealers.weights))
            except InvalidCertificate as exc:
                problem = f"invalid certificate: {exc}"
        if problem is not None:
            self._misbehave(msg.sender, f"decided block: {problem}")
            return
        if self.hs.certified is not None and self.hs.certified[0] != block_hash:
            # Two valid certificates for one height: more than f sealers lied. Fail loudly.
            raise AssertionError(f"conflicting commit certificates at height {self.hs.height}")
        self._remember_proposal(block_hash, header, msg.tx_hashes)
        if self.hs.certified is None:
            self.hs.certified = (block_hash, msg.certificate)
        self.hs.certified_source = (self.hs.sealers.pubs[msg.sender], msg.head_height)
        self._try_commit()

    # ---- normal case ------------------------------------------------------------------

    def _check_header(self, header: BlockHeader, tx_hashes: list[bytes]) -> str | None:
        hs = self.hs
        if header.height != hs.height:
            return f"header height {header.height}, expected {hs.height}"
        if header.parent_hash != self.head_hash:
            return "header does not extend our chain head"
        if header.sealer_set_hash != hs.sealers.set_hash:
            return "header names another sealer set"
        if header.tx_count != len(tx_hashes):
            return f"header counts {header.tx_count} transactions, proposal lists {len(tx_hashes)}"
        if len(tx_hashes) > self.cfg.block_tx_count_max:
            return f"{len(tx_hashes)} transactions exceed block_tx_count_max {self.cfg.block_tx_count_max}"
        if len(set(tx_hashes)) != len(tx_hashes):
            return "duplicate transaction hashes"
        return None

    def _remember_proposal(self, block_hash: bytes, header: BlockHeader, tx_hashes: list[bytes]) -> None:
        hs = self.hs
        if block_hash in hs.proposals:
            return
        if len(hs.proposals) >= self.cfg.proposals_per_height_max:
            keep = {hs.accepted.get(hs.view)}
            if hs.prepared is not None:
                keep.add(hs.prepared.header.hash(self.suite))
            if hs.checkpoint is not None:
                keep.add(hs.checkpoint[0])
            for old in [h for h in hs.proposals if h not in keep][: len(hs.proposals) - self.cfg.proposals_per_height_max + 1]:
                del hs.proposals[old]
        hs.proposals[block_hash] = (header, list(tx_hashes))

    def _maybe_propose(self) -> None:
        hs = self.hs
        if (
            hs.me is not None
            and hs.view == 0
            and hs.phase is WAITING  # not asked yet, nothing accepted, not restarted after proposing
            and hs.pool_has_work
            and self._leader(0) == hs.me
        ):
            assert 0 not in hs.accepted and hs.prepare_vote is None, "WAITING with a proposal or a vote"
            self._to(BUILDING)
            self._emit(
                ev.BuildProposal(self.hs.height, 0, self.head_hash, self.hs.me, self.hs.sealers.set_hash, allow_empty=False)
            )

    def _on_proposal_ready(self, event: ev.ProposalReady) -> None:
        if (
            self.hs.phase is not BUILDING and self.hs.phase is not BUILDING_NEW_VIEW
        ) or (event.height, event.view) != (self.hs.height, self.hs.view):
            return  # answer to a request of a view or height we left
        header = event.header
        if header is None:
            assert self.hs.phase is BUILDING and event.view == 0, "BuildProposal with allow_empty must produce a block"
            self._to(WAITING)
            self.hs.pool_has_work = False  # nothing proposable after all: stay idle, stop the clock
            if not self.hs.accepted:
                self._cancel_timer()
            return
        problem = self._check_header(header, event.tx_hashes)
        assert problem is None and header.proposer_index == self.hs.me, f"application built a bad proposal: {problem}"
        block_hash = header.hash(self.suite)
        self._remember_proposal(block_hash, header, event.tx_hashes)
        self.hs.executed[block_hash] = True  # the application executed what it built
        if event.view == 0:
            # Vote (persisting the vote) before the proposal leaves: a leader that crashes and
            # restarts then knows it proposed in this view and never proposes another block.
            self._accept_proposal(0, header, event.tx_hashes, fresh=True, leader=self.hs.me)
            self._broadcast(self._signed(PrePrepare(self.hs.height, 0, self.hs.me, header, list(event.tx_hashes))))
        else:
            self._send_new_view(header, event.tx_hashes)

    def _on_pre_prepare(self, msg: PrePrepare) -> None:
        hs = self.hs
        if msg.view != 0:
            # Proposals of later views travel inside NEW_VIEW, with their justification.
            self._misbehave(msg.sender, "PRE_PREPARE for a view above 0 outside NEW_VIEW")
            return
        if hs.view != 0 or hs.phase in CHANGING_VIEW:
            self._drop()
            return
        leader = self._leader(0)
        if msg.sender != leader:
            self._misbehave(msg.sender, f"PRE_PREPARE from {msg.sender}, the leader is {leader}")
            return
        known = hs.accepted.get(0)
        if known is not None and hs.proposals.get(known) == (msg.header, msg.tx_hashes):
            return  # duplicate
        if not self._verify(msg, hs.sealers):
            return
        self._accept_proposal(0, msg.header, msg.tx_hashes, fresh=True, leader=leader)

    def _accept_proposal(self, view: int, header: BlockHeader, tx_hashes: list[bytes], *, fresh: bool, leader: int) -> None:
        """A leader-signed proposal for (height, view), already authenticated."""
        hs = self.hs
        assert view == hs.view and hs.phase not in CHANGING_VIEW
        problem = self._check_header(header, tx_hashes)
        if problem is None and fresh and header.proposer_index != leader:
            problem = f"header names proposer {header.proposer_index}, the leader is {leader}"
        if problem is not None:
            self._misbehave(leader, f"invalid proposal: {problem}")
            self._start_view_change(view + 1)
            return
        block_hash = header.hash(self.suite)
        previous = hs.accepted.get(view)
        if previous is None and hs.prepare_vote is not None and hs.prepare_vote[0] == view:
            previous = hs.prepare_vote[1]  # restarted: what we voted for before the crash
            hs.accepted[view] = previous
        if previous is not None:
            if previous != block_hash:
                self.stats["equivocations"] += 1
                self._misbehave(leader, f"equivocation: two proposals for height {hs.height} view {view}")
                self._start_view_change(view + 1)
            elif block_hash not in hs.proposals:
                # Restarted after voting for it: the body is back, so it can be executed (we
                # need its state to commit it) and certificates can be built.
                self._remember_proposal(block_hash, header, tx_hashes)
                self._execute_if_needed(block_hash)
                self._check_prepares(view)
            return
        hs.accepted[view] = block_hash
        self._to(ACCEPTED)
        self._remember_proposal(block_hash, header, tx_hashes)
        self._ensure_timer()
        if hs.checkpoint is not None and hs.checkpoint[0] != block_hash:
            # Impossible with at most f faulty sealers (docs/consensus.md); refuse, never sign.
            self._misbehave(leader, "proposal contradicts a block this replica committed")
            return
        executed = hs.executed.get(block_hash)
        if executed is True:
            self._vote_prepare(view, block_hash)
        elif executed is False:
            self._misbehave(leader, "proposal failed execution")
            self._start_view_change(view + 1)
            return
        else:
            self._execute_if_needed(block_hash)
        height = self.hs.height
        # Votes that arrived before the proposal may already form a quorum or show equivocation.
        self._check_prepares(view)
        if self.hs.height == height and self.hs.certified is not None and self.hs.certified[0] == block_hash:
            self._try_commit()  # the checkpoints came before the block

    def _execute_if_needed(self, block_hash: bytes) -> None:
        hs = self.hs
        if block_hash not in hs.executed and block_hash not in hs.executing:
            header, tx_hashes = hs.proposals[block_hash]
            hs.executing.add(block_hash)
            self._emit(ev.Execute(block_hash, header, list(tx_hashes)))

    def _on_execution_done(self, event: ev.ExecutionDone) -> None:
        hs = self.hs
        proposal_id, header = event.proposal_id, event.header
        if proposal_id not in hs.executing:
            return  # result for a height we already left
        hs.executing.discard(proposal_id)
        if event.retry:
            # Nothing is known about the block yet: ask again while it is still wanted (it is
            # certified, or it is the proposal of the current view). The application paces this.
            wanted = (hs.certified is not None and hs.certified[0] == proposal_id) or (
                hs.accepted.get(hs.view) == proposal_id and hs.phase not in CHANGING_VIEW
            )
            if wanted:
                self.stats["execution_retries"] += 1
                self._execute_if_needed(proposal_id)
            return
        ok = header is not None and header.hash(self.suite) == proposal_id
        hs.executed[proposal_id] = ok
        if not ok:
            hs.execution_failures[proposal_id] = event.reason or "the executed header differs from the proposed one"
        if hs.certified is not None and hs.certified[0] == proposal_id:
            self._try_commit()
            return
        if hs.accepted.get(hs.view) == proposal_id and hs.phase not in CHANGING_VIEW:
            if ok:
                self._vote_prepare(hs.view, proposal_id)
            else:
                self._misbehave(self._leader(hs.view), "proposal failed execution (roots differ)")
                self._start_view_change(hs.view + 1)

    def _vote_prepare(self, view: int, block_hash: bytes) -> None:
        if self.hs.me is None:
            return
        if self.hs.prepare_vote is not None:  # restarted after voting: it is on disk, and was re-sent
            assert self.hs.prepare_vote == (view, block_hash), "would sign two PREPAREs in one view"
            return
        self._to(PREPARING)
        self.hs.prepare_vote = (view, block_hash)
        msg = self._signed(Prepare(self.hs.height, view, self.hs.me, block_hash))
        self._persist()
        self._broadcast(msg)
        self._add_vote(self.hs.prepares, msg)
        self._check_prepares(view)

    def _in_vote_window(self, view: int) -> bool:
        current = self.hs.view
        return current <= view <= current + self.cfg.vote_view_ahead_max

    def _on_prepare(self, msg: Prepare) -> None:
        store = self.hs.prepares
        if not self._in_vote_window(msg.view) or not self._admit_vote(store, msg):
            return
        self._add_vote(store, msg)
        self._check_prepares(msg.view)

    def _on_commit(self, msg: Commit) -> None:
        store = self.hs.commits
        if not self._in_vote_window(msg.view) or not self._admit_vote(store, msg):
            return
        self._add_vote(store, msg)
        self._check_commits(msg.view)

    def _admit_vote(self, store: dict[int, VoteSet], msg: Any) -> bool:
        """Duplicates cost no signature check; a second different vote is equivocation."""
        votes = store.get(msg.view)
        seen = votes.has(msg.sender, msg.block_hash) if votes is not None else None
        if seen is True:
            return False
        if seen is False:
            self._misbehave(msg.sender, f"two different {type(msg).__name__} votes in view {msg.view}")
            return False
        return self._verify(msg, self.hs.sealers)

    def _add_vote(self, store: dict[int, VoteSet], msg: Any) -> None:
        votes = store.get(msg.view)
        if votes is None:
            sealers = self.hs.sealers
            votes = store[msg.view] = VoteSet(None if sealers.unit else sealers.weights)
        votes.add(msg.sender, msg.block_hash, msg.signature)

    def _check_prepares(self, view: int) -> None:
        hs = self.hs
        if view != hs.view or hs.phase in CHANGING_VIEW:
            return
        votes = hs.prepares.get(view)
        accepted = hs.accepted.get(view)
        if votes is None or accepted is None:
            return
        if votes.max_other(accepted) > hs.sealers.f:
            # More than F weight prepared a different block in this view, so at least one
            # honest replica did: the leader sent two proposals. Do not wait for the timeout.
            self.stats["equivocations"] += 1
            self._misbehave(self._leader(view), f"equivocation seen in PREPAREs of view {view}")
            self._start_view_change(view + 1)
            return
        if hs.phase is not PREPARING:
            return  # not voted yet (or an observer), or prepared already
        assert hs.prepare_vote == (view, accepted), "PREPARING for another block than the accepted one"
        if accepted not in hs.proposals:
            return  # restarted after voting and the proposal has not come again yet
        if votes.count(accepted) < hs.sealers.quorum:
            return
        header, tx_hashes = hs.proposals[accepted]
        hs.prepared = PreparedCertificate(view, header, tx_hashes, hs.sealers.quorum_prefix(votes.signatures(accepted)))
        hs.commit_vote = (view, accepted)
        self._to(COMMITTING)
        msg = self._signed(Commit(hs.height, view, hs.me, accepted))
        self._persist()  # the prepared certificate and the vote are on disk before the COMMIT leaves
        self._broadcast(msg)
        self._add_vote(hs.commits, msg)
        self._check_commits(view)

    def _check_commits(self, view: int) -> None:
        hs = self.hs
        if view != hs.view or hs.phase is not COMMITTING:
            return
        block_hash = hs.commit_vote[1]
        if hs.commits[view].count(block_hash) < hs.sealers.quorum:
            return
        self._to(COMMITTED)
        if hs.checkpoint is None:
            sig = self.suite.sign(self._priv, commit_signing_bytes(hs.height, block_hash))
            hs.checkpoint = (block_hash, sig)
            self._persist()
        else:
            # PBFT agreement: every block committed locally at one height is the same block.
            assert hs.checkpoint[0] == block_hash, "safety violated: committed two blocks at one height"
        sig = hs.checkpoint[1]
        self._broadcast(Checkpoint(hs.height, 0, hs.me, block_hash, sig))
        self._add_checkpoint(hs.me, block_hash, sig)

    def _on_checkpoint(self, msg: Checkpoint) -> None:
        hs = self.hs
        previous = hs.checkpoints.get(msg.sender)
        if previous is not None:
            if previous[0] != msg.block_hash:
                self._misbehave(msg.sender, "two CHECKPOINTs for different blocks at one height")
            return
        if not self._verify(msg, hs.sealers):
            return
        self._add_checkpoint(msg.sender, msg.block_hash, msg.signature)

    def _add_checkpoint(self, sender: int, block_hash: bytes, sig: bytes) -> None:
        hs = self.hs
        hs.checkpoints.setdefault(sender, (block_hash, sig))
        if hs.certified is not None:
            return
        signatures = sorted((i, s) for i, (h, s) in hs.checkpoints.items() if h == block_hash)
        if not hs.sealers.is_quorum(i for i, _ in signatures):
            return
        hs.certified = (block_hash, CommitCertificate(hs.height, block_hash, signatures))
        self._try_commit()

    def _try_commit(self) -> None:
        hs = self.hs
        assert hs.certified is not None
        block_hash, cert = hs.certified
        proposal = hs.proposals.get(block_hash)
        if proposal is None:
            return  # we never saw this block: the peers that decided it send it (see _note_ahead)
        executed = hs.executed.get(block_hash)
        if executed is False and block_hash not in hs.retried:
            # A certificate proves the block is good: execute it once more before concluding
            # anything (missing data never gets here: it comes back as a retry).
            hs.retried.add(block_hash)
            del hs.executed[block_hash]
            executed = None
        if executed is None:
            self._execute_if_needed(block_hash)
            return
        # A certificate means f+1 honest sealers executed this block to these roots; if our
        # application still disagrees, it has diverged, and committing anything would be wrong.
        assert executed, (
            f"a certified block failed to execute here: the application diverged at height {hs.height}: "
            f"{hs.execution_failures.get(block_hash, 'no reason given')}"
        )
        header, tx_hashes = proposal
        self._emit(ev.Commit(header, tx_hashes, cert))
        self.stats["commits"] += 1
        self._decided[hs.height] = (header, tx_hashes, cert)
        while len(self._decided) > self.cfg.decided_cache_blocks:
            self._decided.popitem(last=False)
        source = hs.certified_source
        self._advance(self.hs.height, block_hash)
        if source is not None and source[1] > self.head_height and self.hs.me is not None:
            # The peer that sent us this block is further ahead: keep pulling from it.
            self.hs.peer_ahead[source[0]] = source[1]
            self.stats["sync_requests"] += 1
            self._send(source[0], self._signed(SyncRequest(self.hs.height, 0, self.hs.me)))

    def _advance(self, height: int, block_hash: bytes) -> None:
        assert height >= self.hs.height - 1, "the chain only grows"
        self._cancel_timer()
        self.head_height, self.head_hash = height, block_hash
        buffered = self.hs.future
        self._enter_height(height + 1)
        for msgs in buffered.values():
            for msg in msgs:
                if msg.height == self.hs.height:
                    self._dispatch(msg)
        self._maybe_propose()

    # ---- view change ------------------------------------------------------------------

    def _start_view_change(self, new_view: int) -> None:
        self._move_to_view(new_view, VIEW_CHANGE)
        if self.hs.me is not None:
            vc = self._signed(ViewChange(self.hs.height, new_view, self.hs.me, self.hs.prepared))
            self._persist()  # never go back to a lower view after a restart
            self._broadcast(vc)
            self.hs.view_changes[self.hs.me] = vc
        self._ensure_timer()
        self._restart_timer_on_quorum()
        self._maybe_new_view()

    def _prune_views(self) -> None:
        for store in (self.hs.prepares, self.hs.commits):
            for view in [v for v in store if v < self.hs.view]:
                del store[view]
        for view in [v for v in self.hs.accepted if v < self.hs.view]:
            del self.hs.accepted[view]

    def _on_view_change(self, msg: ViewChange) -> None:
        if msg.view == 0:
            self._misbehave(msg.sender, "VIEW_CHANGE to view 0")
            return
        if msg.view < self.hs.view or msg.view > self.hs.view + self.cfg.view_ahead_max:
            self._drop()
            return
        previous = self.hs.view_changes.get(msg.sender)
        if previous is not None and previous.view >= msg.view:
            return  # duplicate or superseded
        if not self._verify(msg, self.hs.sealers):
            return
        if msg.prepared is not None:
            problem = self._check_prepared_certificate(msg.prepared)
            if problem is not None:
                self._misbehave(msg.sender, f"VIEW_CHANGE with {problem}")
                return
        self.hs.view_changes[msg.sender] = msg
        self._restart_timer_on_quorum()
        # More than F weight asks for higher views: at least one honest replica timed out, so
        # follow (to the highest view that more than F weight reached). Liars of weight <= F
        # alone can never move us. (Unit weights: f + 1 replicas, the view of the (f+1)-th.)
        higher = sorted(((vc.view, s) for s, vc in self.hs.view_changes.items() if vc.view > self.hs.view), reverse=True)
        weight = 0
        for view, sender in higher:
            weight += self.hs.sealers.weights[sender]
            if weight > self.hs.sealers.f:
                self._start_view_change(view)
                return
        self._maybe_new_view()

    def _restart_timer_on_quorum(self) -> None:
        """Castro-Liskov: the clock of a new view starts when a quorum has asked for it, not
        when this replica did. Replicas that timed out at different moments then give the new
        leader the same full timeout, instead of the early ones leaving before it can finish."""
        if self.hs.phase not in CHANGING_VIEW or self.hs.quorum_timer_view == self.hs.view:
            return
        if self.hs.sealers.is_quorum(s for s, vc in self.hs.view_changes.items() if vc.view >= self.hs.view):
            self.hs.quorum_timer_view = self.hs.view
            self._cancel_timer()
            self._ensure_timer()

    def _check_prepared_certificate(self, cert: PreparedCertificate) -> str | None:
        problem = self._check_header(cert.header, cert.tx_hashes)
        if problem is not None:
            return f"prepared certificate: {problem}"
        # Indexes are unique and ascending (decode_message checks); in range is checked here.
        for index, _ in cert.signatures:
            if index >= self.hs.sealers.n:
                return f"prepared certificate names sealer {index}"
        weight = self.hs.sealers.weight_of(index for index, _ in cert.signatures)
        if weight < self.hs.sealers.quorum:
            if self.hs.sealers.unit:
                return f"prepared certificate with {len(cert.signatures)} signatures, a quorum is {self.hs.sealers.quorum}"
            return f"prepared certificate with {len(cert.signatures)} signatures of weight {weight}, a quorum is {self.hs.sealers.quorum}"
        block_hash = cert.header.hash(self.suite)
        for index, sig in cert.signatures:
            prepare = cert.prepare_for(index, sig, block_hash)
            if not self.suite.verify(self.hs.sealers.pubs[index], prepare.signing_bytes(), sig):
                return f"prepared certificate: bad signature of sealer {index}"
        return None

    def _maybe_new_view(self) -> None:
        if self.hs.phase is not VIEW_CHANGE or self.hs.me is None or self._leader(self.hs.view) != self.hs.me:
            return  # not changing view, or building our NEW_VIEW's block already, or not its leader
        vcs = [vc for vc in self.hs.view_changes.values() if vc.view == self.hs.view]
        if not self.hs.sealers.is_quorum(vc.sender for vc in vcs):
            return
        # Any quorum is safe; prefer VIEW_CHANGEs that carry certificates (fewer wasted views),
        # and take just enough of them to weigh a quorum.
        vcs.sort(key=lambda vc: (vc.prepared is None, vc.sender))
        chosen, weight = [], 0
        for vc in vcs:
            chosen.append(vc)
            weight += self.hs.sealers.weights[vc.sender]
            if weight >= self.hs.sealers.quorum:
                break
        vcs = sorted(chosen, key=lambda vc: vc.sender)
        self.hs.nv_view_changes = vcs
        best = _highest_prepared(vcs)
        self.hs.nv_fresh = best is None
        if best is not None:
            block_hash = best.header.hash(self.suite)
            self._remember_proposal(block_hash, best.header, best.tx_hashes)
            self._send_new_view(best.header, best.tx_hashes)
        else:
            self._to(BUILDING_NEW_VIEW)
            # A view change means some replica had work; end the view with a block even if
            # this leader's own pool is empty.
            self._emit(ev.BuildProposal(self.hs.height, self.hs.view, self.head_hash, self.hs.me, self.hs.sealers.set_hash, allow_empty=True))

    def _send_new_view(self, header: BlockHeader, tx_hashes: list[bytes]) -> None:
        pre_prepare = self._signed(PrePrepare(self.hs.height, self.hs.view, self.hs.me, header, list(tx_hashes)))
        new_view = self._signed(NewView(self.hs.height, self.hs.view, self.hs.me, self.hs.nv_view_changes, pre_prepare))
        self._to(WAITING)
        self._cancel_timer()
        self._ensure_timer()
        # As for view 0: our PREPARE (persisted) goes first, so a restart cannot propose twice.
        self._accept_proposal(self.hs.view, header, tx_hashes, fresh=self.hs.nv_fresh, leader=self.hs.me)
        if self.hs.prepare_vote is None or self.hs.prepare_vote[0] != self.hs.view:
            self._persist()  # we could not vote (execution pending or failed): still record the view
        self._broadcast(new_view)

    def _on_new_view(self, msg: NewView) -> None:
        if msg.view == 0:
            self._misbehave(msg.sender, "NEW_VIEW for view 0")
            return
        if msg.view < self.hs.view or (msg.view == self.hs.view and self.hs.phase not in CHANGING_VIEW):
            self._drop()
            return
        if msg.view > self.hs.view + self.cfg.view_ahead_max:
            self._drop()
            return
        leader = self.hs.sealers.leader(self.hs.height, msg.view, self.cfg.leader_period)
        if msg.sender != leader:
            self._misbehave(msg.sender, f"NEW_VIEW from {msg.sender}, the leader of view {msg.view} is {leader}")
            return
        if not self._verify(msg, self.hs.sealers):
            return
        problem, best = self._check_new_view(msg)
        if problem is not None:
            self._misbehave(msg.sender, f"invalid NEW_VIEW: {problem}")
            return
        if msg.view > self.hs.view:
            self._move_to_view(msg.view, WAITING)
        else:
            self._to(WAITING)
        self._cancel_timer()  # the new leader gets a full timeout from its NEW_VIEW on
        self._ensure_timer()
        pp = msg.pre_prepare
        self._accept_proposal(msg.view, pp.header, pp.tx_hashes, fresh=best is None, leader=leader)

    def _check_new_view(self, msg: NewView) -> tuple[str | None, PreparedCertificate | None]:
        pp = msg.pre_prepare
        if pp.height != msg.height or pp.view != msg.view or pp.sender != msg.sender:
            return "its PRE_PREPARE is for another height, view or sender", None
        if not self.suite.verify(self.hs.sealers.pubs[pp.sender], pp.signing_bytes(), pp.signature):
            return "bad PRE_PREPARE signature", None
        senders: set[int] = set()
        for vc in msg.view_changes:
            if vc.height != msg.height or vc.view != msg.view:
                return f"VIEW_CHANGE of sealer {vc.sender} is for another height or view", None
            if vc.sender >= self.hs.sealers.n or vc.sender in senders:
                return f"VIEW_CHANGE sender {vc.sender} unknown or repeated", None
            senders.add(vc.sender)
            if self.hs.view_changes.get(vc.sender) == vc:
                continue  # this exact message was already verified on arrival
            if not self.suite.verify(self.hs.sealers.pubs[vc.sender], vc.signing_bytes(), vc.signature):
                return f"bad VIEW_CHANGE signature of sealer {vc.sender}", None
            if vc.prepared is not None:
                problem = self._check_prepared_certificate(vc.prepared)
                if problem is not None:
                    return f"VIEW_CHANGE of sealer {vc.sender}: {problem}", None
        weight = self.hs.sealers.weight_of(senders)
        if weight < self.hs.sealers.quorum:
            if self.hs.sealers.unit:
                return f"{len(senders)} VIEW_CHANGEs, a quorum is {self.hs.sealers.quorum}", None
            return f"{len(senders)} VIEW_CHANGEs of weight {weight}, a quorum is {self.hs.sealers.quorum}", None
        best = _highest_prepared(msg.view_changes)
        if best is not None and (pp.header != best.header or pp.tx_hashes != best.tx_hashes):
            return "it does not re-propose the highest prepared block", None
        return None, best

    # ---- blocks from outside the core -------------------------------------------------

    def _on_block_committed(self, height: int, block_hash: bytes) -> None:
        if height < self.hs.height:
            return  # we already have it (the node may report our own commits back)
        self._advance(height, block_hash)

    def _on_config_changed(self, event: ev.ConfigChanged) -> None:
        cfg = self.cfg
        self.cfg = replace(
            cfg,
            timeout_base_ms=event.timeout_base_ms,
            timeout_max_ms=max(cfg.timeout_max_ms, event.timeout_base_ms),
            block_tx_count_max=event.block_tx_count_max,
        )

    def _on_sealers_changed(self, from_height: int, sealer_pubs: list[bytes], weights: list[int] | None = None) -> None:
        if from_height < self.hs.height or (
            from_height == self.hs.height and (self.hs.view != 0 or self.hs.prepare_vote is not None or self.hs.checkpoint is not None)
        ):
            raise ValueError(
                f"sealer set change for height {from_height} arrived after this replica started voting at height "
                f"{self.hs.height}: deliver SealersChanged before any other event that follows the Commit "
                "(docs/consensus.md, Sealer-set changes)"
            )
        sset = SealerSet.build(self.suite, list(sealer_pubs), weights)
        self._sets = [(h, s) for h, s in self._sets if h < from_height] + [(from_height, sset)]
        self._sets = self._sets[-self.cfg.sealer_sets_kept :]
        if from_height == self.hs.height:
            buffered, pool = self.hs.future, self.hs.pool_has_work
            self._cancel_timer()
            self._enter_height(self.hs.height)
            self.hs.future, self.hs.pool_has_work = buffered, pool
            if pool:
                self._ensure_timer()
            self._maybe_propose()


def _highest_prepared(vcs: list[ViewChange]) -> PreparedCertificate | None:
    best = None
    for vc in vcs:
        if vc.prepared is not None and (best is None or vc.prepared.view > best.view):
            best = vc.prepared
    return best

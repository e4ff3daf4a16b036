"""Deterministic simulator: n real replicas, a seeded hostile network, byzantine sealers.

This is the one module in `consensus/` allowed to import `random` (a seeded
`random.Random`, never the global one); its clock is a number it advances itself.

Each seed derives everything from `random.Random(seed)`: the number of sealers (from
`--nodes`), their voting weights (`--weights`: all 1, or 1..5 in some or all seeds), which
sealers are byzantine (at most F of the weight) and how they lie, the delay distribution,
drop and duplicate rates, partitions, crashes and restarts (also right after a Persist,
before the signed message leaves), a sealer removal, a weight change or a sealer that
joins, a config change (view timeout, block size), block sync and slow commits, and when
transactions arrive. A run has
an unstable phase (drops, partitions, crashes) followed by a healed network; the run ends
once every honest replica has committed new heights after the heal (liveness) or when the
liveness bound passes (a failure).

Checked on every commit, i.e. every time the safety-relevant state changes:
- agreement: no two honest replicas commit different blocks at one height;
- validity: the block was proposed by some replica's application and re-executes
  successfully on the committing replica's parent state (roots match, known transactions,
  none committed before);
- certificate validity: the CommitCertificate verifies against the sealer list of its
  height and names the committed header; the chain links to its parent;
- a block that consensus and sync both deliver is written once, and is the same block.
And on every message an honest replica sends, across crashes and restarts:
- non-equivocation: it never signs two different proposals or votes for one (height, view).

Each replica runs behind the node's own glue (`chainnode.pbft.driver.PbftGlue`), so what the
node does between the core and the world runs under every seed too: routing by key to the
sealers of this height and the next, timer padding, proposal bookkeeping, delivering
SealersChanged and ConfigChanged after the block that made the change, and skipping a
commit that block sync got to first. `NodeIO` is the world's side of it (Transport and
App), performed like the node's trio shell: strictly in order, a commit taking time during
which later work and new events wait; block sync runs beside it.

A failing seed prints its seed, the reason, the exact replay command and a readable trace
of the last events: `python -m consensus.sim --seed N --nodes 4,7 --byzantine max`.
"""

from __future__ import annotations

import argparse
import hashlib
import heapq
import hmac
import random
import sys
import time
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, Callable

from chainnode.crypto import get_suite
from chainnode.pbft.driver import ChainFacts, PbftGlue
from chainnode.protocol.codec import DecodeError, pack
from chainnode.protocol.types import BlockHeader, CommitCertificate, InvalidCertificate
from consensus import events as ev
from consensus.messages import (
    Checkpoint,
    Commit,
    Decided,
    NewView,
    Prepare,
    PrePrepare,
    SyncRequest,
    ViewChange,
    decode_message,
    sign,
)
from consensus.quorum import SealerSet
from consensus.replica import Replica, ReplicaConfig

UINT63 = 2**63
SYNC_BLOCKS_PER_FETCH = 8

# ---- crypto for the simulator -----------------------------------------------------------


class SimSuite:
    """A fast stand-in for a signature suite with the same interface: a signature is a keyed
    BLAKE2b MAC, and verification looks the key up by public key. Inside the simulation it is
    unforgeable (byzantine code never reads the key table), and it costs ~1 us instead of
    ~40 us (ed25519) or ~300 us (SM2), which is what lets CI run hundreds of seeds. Run with
    `--suite ed25519` or `--suite sm` to use the real thing."""

    name = "sim"
    public_key_bytes = 32
    private_key_bytes = 32
    signature_bytes = 64

    def __init__(self) -> None:
        self._keys: dict[bytes, bytes] = {}

    def generate_keypair(self) -> tuple[bytes, bytes]:
        self._generated = getattr(self, "_generated", 0) + 1
        return self.keypair_from_private(hashlib.sha256(b"sim-key%d" % self._generated).digest())

    def keypair_from_private(self, priv: bytes) -> tuple[bytes, bytes]:
        pub = hashlib.sha256(b"sim-pub" + priv).digest()
        self._keys[pub] = priv
        return priv, pub

    def public_key(self, priv: bytes) -> bytes:
        return self.keypair_from_private(priv)[1]

    def sign(self, priv: bytes, msg: bytes) -> bytes:
        return hashlib.blake2b(msg, key=priv, digest_size=64).digest()

    def verify(self, pub: bytes, msg: bytes, sig: bytes) -> bool:
        priv = self._keys.get(pub)
        if priv is None or type(sig) is not bytes or len(sig) != 64:
            return False
        return hmac.compare_digest(hashlib.blake2b(msg, key=priv, digest_size=64).digest(), sig)

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def address(self, pub: bytes) -> bytes:
        return self.hash(pub)[-20:]


class CountingSuite:
    """Wraps a suite and counts (and times) signs and verifications, so the simulator and
    the benchmark can report the core's own cost separately from the crypto's."""

    def __init__(self, inner: Any, clock: Callable[[], float] | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.signs = 0
        self.verifies = 0
        self.crypto_seconds = 0.0
        self._clock = clock

    def keypair_from_private(self, priv: bytes) -> tuple[bytes, bytes]:
        return self.inner.keypair_from_private(priv)

    def sign(self, priv: bytes, msg: bytes) -> bytes:
        self.signs += 1
        if self._clock is None:
            return self.inner.sign(priv, msg)
        t = self._clock()
        sig = self.inner.sign(priv, msg)
        self.crypto_seconds += self._clock() - t
        return sig

    def verify(self, pub: bytes, msg: bytes, sig: bytes) -> bool:
        self.verifies += 1
        if self._clock is None:
            return self.inner.verify(pub, msg, sig)
        t = self._clock()
        ok = self.inner.verify(pub, msg, sig)
        self.crypto_seconds += self._clock() - t
        return ok

    def hash(self, data: bytes) -> bytes:
        return self.inner.hash(data)

    def address(self, pub: bytes) -> bytes:
        return self.inner.address(pub)


def make_suite(name: str) -> Any:
    return SimSuite() if name == "sim" else get_suite(name)


# ---- the application stand-in -----------------------------------------------------------

GENESIS_STATE_ROOT = hashlib.sha256(b"chainnode/sim/genesis-state").digest()


class FakeApp:
    """A deterministic application: state_root = H(parent state root, tx root). Valid
    transactions are the ones the world injected; none may be committed twice."""

    def __init__(self, world: "World", genesis_hash: bytes) -> None:
        self.world = world
        self.suite = world.suite
        self.head_height = 0
        self.head_hash = genesis_hash
        self.head_timestamp_ms = 0
        self.state_root = GENESIS_STATE_ROOT
        self.committed_txs: set[bytes] = set()
        self.pool: dict[bytes, None] = {}  # insertion-ordered, so runs are reproducible
        self.blocks: dict[int, bytes] = {}
        self.recent: list = []  # (header, tx hashes, certificate) of committed blocks: the ledger

    def compute(self, header: BlockHeader, tx_hashes: list[bytes]) -> BlockHeader | None:
        """Execute on our head: the header the proposal should have, or None if invalid."""
        if header.height != self.head_height + 1 or header.parent_hash != self.head_hash:
            return None
        if header.timestamp_ms <= self.head_timestamp_ms or header.tx_count != len(tx_hashes):
            return None
        seen = set()
        for tx in tx_hashes:
            if tx not in self.world.valid_txs or tx in self.committed_txs or tx in seen:
                return None
            seen.add(tx)
        tx_root = self.suite.hash(pack([b"txs", list(tx_hashes)]))
        state_root = self.suite.hash(self.state_root + tx_root)
        return replace(
            header,
            tx_root=tx_root,
            state_root=state_root,
            receipt_root=self.suite.hash(b"receipts" + state_root),
            gas_used=21_000 * len(tx_hashes),
        )

    def build(self, req: ev.BuildProposal, now_ms: int, tx_limit: int) -> tuple[BlockHeader | None, list[bytes]]:
        if req.parent_hash != self.head_hash:
            return None, []
        txs = [tx for tx in self.pool if tx not in self.committed_txs][:tx_limit]
        if not txs and not req.allow_empty:
            return None, []
        draft = BlockHeader(
            parent_hash=req.parent_hash,
            height=req.height,
            timestamp_ms=max(now_ms, self.head_timestamp_ms + 1),
            proposer_index=req.proposer_index,
            sealer_set_hash=req.sealer_set_hash,
            tx_root=bytes(32),
            receipt_root=bytes(32),
            state_root=bytes(32),
            gas_used=0,
            tx_count=len(txs),
        )
        header = self.compute(draft, txs)
        assert header is not None
        return header, txs

    def commit(self, header: BlockHeader, tx_hashes: list[bytes], cert: CommitCertificate) -> None:
        computed = self.compute(header, tx_hashes)
        assert computed == header
        self.head_height = header.height
        self.head_hash = header.hash(self.suite)
        self.head_timestamp_ms = header.timestamp_ms
        self.state_root = header.state_root
        self.committed_txs.update(tx_hashes)
        self.blocks[header.height] = self.head_hash
        self.recent.append((header, list(tx_hashes), cert))
        del self.recent[:-256]
        for tx in tx_hashes:
            self.pool.pop(tx, None)


# ---- scenario ---------------------------------------------------------------------------

BEHAVIOURS = ("silent", "equivocate", "replay", "forge", "huge", "garbage")
# --weights: "unit" (every sealer weighs 1), "random" (every seed draws weights in
# 1..WEIGHT_MAX_SIM), "mixed" (the default: a WEIGHTED_SHARE of the seeds draws weights, the
# others are unit-weight seeds exactly as they were before weights existed).
WEIGHT_MODES = ("mixed", "unit", "random")
WEIGHT_MAX_SIM = 5
WEIGHTED_SHARE = 0.25


def faulty_weight_of(weights: list[int] | tuple[int, ...]) -> int:
    """F of a set: the byzantine weight it tolerates."""
    return (sum(weights) - 1) // 3


@dataclass
class Scenario:
    seed: int
    n: int
    byzantine: dict[int, tuple[str, ...]]
    delay: str
    delay_max_ms: int
    drop_rate: float
    dup_rate: float
    unstable_ms: int
    liveness_ms: int
    partitions: list[tuple[int, int, frozenset]]  # (start, end, one side)
    crashes: list[tuple[int, int, int]]  # (node, crash at, restart at)
    tx_interval_ms: tuple[int, int]
    crash_after_persist_rate: float = 0.0  # honest replica dies right after a Persist, before sending
    # Governance removes the last sealer (a byzantine one when there is one) from this height
    # on; the change is delivered at the block boundary two heights earlier.
    remove_last_at_height: int | None = None
    # Voting weights in index order (None: all 1), and a weight change (same sealers, new
    # weights from this height on, delivered like a removal: a sealer-set change).
    weights: tuple[int, ...] | None = None
    reweight_at_height: int | None = None
    weights_after: tuple[int, ...] | None = None
    # An honest replica answers an Execute with "retry" (a transaction it could not fetch in
    # time) with this probability until the network heals.
    execution_retry_rate: float = 0.0
    # Block sync: every node looks for a peer ahead this often (None: no sync) and applies
    # its next block, racing its own consensus for it.
    sync_interval_ms: int | None = None
    # A commit holds the node's chain worker up to this long (its later work waits).
    commit_ms_max: int = 0
    # Governance adds an honest sealer (node n, a follower until then, catching up by block
    # sync) from this height on; delivered like a removal.
    add_sealer_at_height: int | None = None
    # Governance changes the view timeout and the block size from this height on
    # (delivered as ConfigChanged after the block before).
    config_change_at_height: int | None = None
    timeout_base_after_ms: int = 0
    tx_count_after: int = 0

    def describe(self) -> str:
        byz = ", ".join(f"n{i}:{'+'.join(b)}" for i, b in sorted(self.byzantine.items())) or "none"
        text = (
            f"n={self.n} byzantine=[{byz}] delay={self.delay}<= {self.delay_max_ms}ms drop={self.drop_rate} "
            f"dup={self.dup_rate} unstable={self.unstable_ms}ms partitions={len(self.partitions)} crashes={len(self.crashes)} "
            f"crash-after-persist={self.crash_after_persist_rate} remove-last-at={self.remove_last_at_height} "
            f"execution-retry={self.execution_retry_rate} sync-every={self.sync_interval_ms}ms commit<={self.commit_ms_max}ms"
        )
        if self.add_sealer_at_height is not None:
            text += f" add-sealer-at={self.add_sealer_at_height}"
        if self.config_change_at_height is not None:
            text += f" config-at={self.config_change_at_height}: timeout {self.timeout_base_after_ms}ms, {self.tx_count_after} txs"
        if self.weights is not None:
            text += f" weights={list(self.weights)} (F={faulty_weight_of(self.weights)})"
        if self.reweight_at_height is not None:
            text += f" reweight-at={self.reweight_at_height} to {list(self.weights_after)} (F={faulty_weight_of(self.weights_after)})"
        return text

    def weights_at(self, height: int) -> list[int]:
        """The weights of the sealers certifying `height` (index order; removal drops the last)."""
        weights = list(self.weights) if self.weights is not None else [1] * self.n
        if self.add_sealer_at_height is not None and height >= self.add_sealer_at_height:
            return weights + [1]
        if self.reweight_at_height is not None and height >= self.reweight_at_height:
            return list(self.weights_after)
        if self.remove_last_at_height is not None and height >= self.remove_last_at_height:
            return weights[:-1]
        return weights


def is_weighted_seed(seed: int, weights: str) -> bool:
    if weights not in WEIGHT_MODES:
        raise ValueError(f"--weights must be one of {WEIGHT_MODES}, not {weights!r}")
    return weights == "random" or (weights == "mixed" and random.Random(f"weights/{seed}").random() < WEIGHTED_SHARE)


def make_scenario(seed: int, nodes: list[int], byzantine: str, unstable_ms: int, liveness_ms: int, weights: str = "mixed") -> Scenario:
    rng = random.Random(f"scenario/{seed}")
    n = nodes[seed % len(nodes)]
    weight_list = reweight_at_height = weights_after = None
    if not is_weighted_seed(seed, weights):
        # Unit weights: exactly the scenarios of before weights existed.
        f = (n - 1) // 3
        count = f if byzantine == "max" else min(int(byzantine), f) if byzantine != "none" else 0
        byz_nodes = rng.sample(range(n), count)
        remove_last_at_height = rng.choice([None, None, None, rng.randint(3, 8)])
        if remove_last_at_height is not None and byz_nodes and n - 1 not in byz_nodes:
            byz_nodes[0] = n - 1  # vote the liar out: the others stay within the fault model
    else:
        byz_nodes, weight_list, remove_last_at_height, reweight_at_height, weights_after = _weighted_faults(rng, n, byzantine)
    byz: dict[int, tuple[str, ...]] = {}
    for i in byz_nodes:
        if rng.random() < 0.2:
            byz[i] = ("silent",)
        else:
            byz[i] = tuple(sorted(rng.sample(BEHAVIOURS[1:], rng.randint(1, 3))))
    delay = rng.choice(["uniform", "exponential", "bimodal"])
    delay_max_ms = rng.choice([20, 50, 100])
    honest = [i for i in range(n) if i not in byz]
    partitions = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        start = rng.randrange(0, unstable_ms)
        end = min(unstable_ms, start + rng.randrange(200, unstable_ms))
        side = frozenset(rng.sample(range(n), rng.randint(1, n // 2)))
        partitions.append((start, end, side))
    crashes = []
    for _ in range(rng.choice([0, 0, 1, 2])):
        node = rng.choice(honest)
        at = rng.randrange(0, unstable_ms)
        crashes.append((node, at, min(unstable_ms, at + rng.randrange(50, 1500))))
    return Scenario(
        seed=seed,
        n=n,
        byzantine=byz,
        delay=delay,
        delay_max_ms=delay_max_ms,
        drop_rate=rng.choice([0.0, 0.02, 0.1]),
        dup_rate=rng.choice([0.0, 0.05, 0.2]),
        unstable_ms=unstable_ms,
        liveness_ms=liveness_ms,
        partitions=partitions,
        crashes=crashes,
        tx_interval_ms=rng.choice([(100, 400), (300, 1200)]),
        crash_after_persist_rate=rng.choice([0.0, 0.0, 0.01, 0.05]),
        remove_last_at_height=remove_last_at_height,
        weights=weight_list,
        reweight_at_height=reweight_at_height,
        weights_after=weights_after,
        # Drawn apart so that every other choice stays what it was for the same seed.
        execution_retry_rate=random.Random(f"retry/{seed}").choice([0.0, 0.0, 0.1, 0.3]),
        **_node_side(random.Random(f"node/{seed}"), delay_max_ms, remove_last_at_height is None and reweight_at_height is None),
    )


def _node_side(rng: random.Random, delay_max_ms: int, no_other_change: bool) -> dict:
    """What the node does around the core: block sync, slow commits, a sealer that joins,
    config changes."""
    base_ms = 4 * delay_max_ms + 100
    add = rng.random() < 0.3 and no_other_change
    add_at = rng.randint(3, 8)
    change = rng.random() < 0.3
    sync_ms = rng.choice([None, 200, 700])
    return dict(
        sync_interval_ms=(sync_ms or 200) if add else sync_ms,  # the new sealer catches up by sync
        add_sealer_at_height=add_at if add else None,
        commit_ms_max=rng.choice([0, 0, 3, 15]),
        config_change_at_height=rng.randint(2, 8) if change else None,
        # Longer or shorter view timeouts, and smaller blocks (see World.config_at).
        timeout_base_after_ms=int(base_ms * rng.choice([0.75, 1.5, 2.0])) if change else 0,
        tx_count_after=rng.choice([1, 3, 10]) if change else 0,
    )


def _weighted_faults(rng: random.Random, n: int, byzantine: str) -> tuple:
    """Weights in 1..WEIGHT_MAX_SIM, perhaps a removal or a weight change, and byzantine
    sealers whose total weight is at most F under every set in force (before and after the
    change), as many as fit ('max') in a random order. Uneven weights often allow more
    liars than the head count f (several light ones), or forbid a heavy one (weight > F)."""
    weights = tuple(rng.randint(1, WEIGHT_MAX_SIM) for _ in range(n))
    change = rng.choice([None, None, "remove", "reweight"])
    at = rng.randint(3, 8) if change else None
    after = None
    if change == "reweight":
        after = tuple(rng.randint(1, WEIGHT_MAX_SIM) for _ in range(n))
        if after == weights:
            after = tuple(w % WEIGHT_MAX_SIM + 1 for w in weights)
    elif change == "remove":
        after = weights[:-1]
    cap = n if byzantine == "max" else 0 if byzantine == "none" else int(byzantine)
    order = rng.sample(range(n), n)
    if change == "remove":
        order.remove(n - 1)
        order.insert(0, n - 1)  # vote the liar out when it fits the fault model
    byz: list[int] = []
    for i in order:
        if len(byz) >= cap:
            break
        candidate = byz + [i]
        if sum(weights[j] for j in candidate) > faulty_weight_of(weights):
            continue
        if after is not None:
            still = [j for j in candidate if j < len(after)]
            if sum(after[j] for j in still) > faulty_weight_of(after):
                continue
        byz.append(i)
    return (
        byz,
        weights,
        at if change == "remove" else None,
        at if change == "reweight" else None,
        after if change == "reweight" else None,
    )


# ---- the world --------------------------------------------------------------------------


class SafetyViolation(AssertionError):
    pass


class LivenessViolation(AssertionError):
    pass


@dataclass
class Node:
    index: int
    priv: bytes
    pub: bytes
    app: FakeApp
    behaviours: tuple[str, ...] = ()
    replica: Replica | None = None
    alive: bool = True
    incarnation: int = 0
    persisted: bytes | None = None
    timers: dict = field(default_factory=dict)
    sent_log: deque = field(default_factory=lambda: deque(maxlen=64))
    io: "NodeIO | None" = None  # this incarnation's glue and its world side; None while crashed
    evil: dict = field(default_factory=dict)  # an equivocator's second version of what it sends
    last_sent: bytes | None = None  # the glue sends one broadcast's bytes to each recipient in turn

    @property
    def byzantine(self) -> bool:
        return bool(self.behaviours)


@dataclass
class SeedResult:
    seed: int
    n: int
    ok: bool
    blocks: int
    view_changes: int
    messages: int
    verifies: int
    sim_ms: int
    error: str = ""
    trace: str = ""
    scenario: str = ""
    weighted: bool = False


@dataclass(frozen=True)
class SimProposal:
    """A block the simulated application built or checked (what the glue keeps until commit)."""

    header: BlockHeader
    tx_hashes: list[bytes]


class NodeIO:
    """The world's side of one node incarnation's glue: its `Transport` and `App`
    (chainnode/pbft/driver.py), performed the way the node's trio shell performs them:
    strictly in order. A commit holds the chain worker for a while (`commit_ms_max`); until
    it is done, later calls wait (`jobs`) and so do new events (`inbox`), as in the shell's
    consensus loop. Everything else takes no simulated time, so it is done at once when
    nothing waits. Block sync runs beside it (World.sync_tick) and may commit a block first."""

    def __init__(self, world: "World", node: Node) -> None:
        self.world = world
        self.node = node
        self.jobs: deque = deque()  # not empty only while a commit holds the worker
        self.inbox: deque = deque()
        self.committing = False
        self.glue: PbftGlue | None = None
        # Block sync wrote a block; its `block_synced` is on its way through the node's event
        # queue until then. Chain work that starts after the write answers after it (the
        # worker runs one thing at a time); messages may still come first (already queued).
        self.worker_results_after_ms = 0

    def call(self, fn: Callable, *args: Any) -> None:
        """An event reaches the node: hand it to the glue, after what is still being done."""
        if self.committing or self.inbox:
            self.inbox.append((fn, args))
        else:
            fn(*args)

    def _do(self, fn: Callable, *args: Any) -> None:
        if self.committing or self.jobs:
            self.jobs.append((fn, args))
        elif self.node.io is self:  # not if an earlier call crashed the node
            fn(*args)

    def _drain(self) -> None:
        while self.node.io is self and not self.committing:
            if self.jobs:
                fn, args = self.jobs.popleft()
            elif self.inbox:
                fn, args = self.inbox.popleft()
            else:
                return
            fn(*args)

    # -- Transport --

    def send(self, pub: bytes, data: bytes) -> None:
        self._do(self.world.send, self.node, pub, data)

    def report(self, pub: bytes, reason: str) -> None:
        self.world.reports += 1  # the core already ignored it; a node would disconnect the peer

    # -- App --

    def head_height(self) -> int:
        return self.node.app.head_height

    def has_pool_work(self) -> bool:
        return bool(self.node.app.pool)

    def set_timer(self, timer_id: Any, delay_ms: int) -> None:
        self._do(self.world.set_timer, self.node, timer_id, delay_ms)

    def cancel_timer(self, timer_id: Any) -> None:
        self._do(self.node.timers.pop, timer_id, None)

    def build(self, action: ev.BuildProposal) -> None:
        self._do(self.world.build, self.node, action)

    def execute(self, action: ev.Execute, fetch_from: list[bytes]) -> None:
        self._do(self.world.execute, self.node, action, fetch_from)

    def persist(self, data: bytes) -> None:
        self._do(self.world.persist, self.node, data)

    def commit(self, proposal: SimProposal, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        self._do(self._commit, proposal, certificate, tx_hashes)

    def _commit(self, proposal: SimProposal, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        world = self.world
        if world.sc.commit_ms_max:
            self.committing = True
            world.at(world.now_ms + world.rng.randint(0, world.sc.commit_ms_max), self._committed, proposal, certificate, tx_hashes)
        else:
            self._write(proposal, certificate, tx_hashes)

    def _committed(self, proposal: SimProposal, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        if self.node.io is not self:
            return  # crashed before the write: nothing was committed
        self.committing = False
        self._write(proposal, certificate, tx_hashes)
        self._drain()

    def _write(self, proposal: SimProposal, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        self.world.commit(self.node, proposal.header, tx_hashes, certificate, by="consensus")
        self.glue.committed(proposal.header.height, self.world.facts(self.node))


class World:
    def __init__(self, scenario: Scenario, suite_name: str = "sim", tx_limit: int = 50, trace_events: int = 300) -> None:
        self.sc = scenario
        self.rng = random.Random(f"world/{scenario.seed}")
        self.suite = CountingSuite(make_suite(suite_name))
        self.tx_limit = tx_limit
        self.now_ms = 0
        self._queue: list = []
        self._seq = 0
        self.valid_txs: set[bytes] = set()
        self._tx_counter = 0
        self.proposed: set[bytes] = set()
        self.decided: dict[int, bytes] = {}  # height -> block hash first committed by an honest replica
        self.signed_by_honest: dict[tuple, bytes] = {}  # (node, type, height, view) -> what it signed
        self.messages = 0
        self.trace: deque = deque(maxlen=trace_events)
        self.healed = False
        self.stable_target: int | None = None
        self.done = False
        self.config = ReplicaConfig(
            timeout_base_ms=4 * scenario.delay_max_ms + 100,
            timeout_max_ms=8 * (4 * scenario.delay_max_ms + 100),
            future_messages_per_peer_max=16,
        )
        self.reports = 0
        self.committed_by: dict[tuple[int, int], str] = {}  # (node, height) -> "consensus" or "sync"
        genesis = self.suite.hash(pack([b"genesis", scenario.seed]))
        self.genesis = genesis
        self.nodes: list[Node] = []
        joining = scenario.add_sealer_at_height is not None
        for i in range(scenario.n + joining):
            priv, pub = self.suite.keypair_from_private(hashlib.sha256(pack([b"key", scenario.seed, i])).digest())
            self.nodes.append(Node(i, priv, pub, FakeApp(self, genesis), scenario.byzantine.get(i, ())))
        self.keys = [node.pub for node in self.nodes]  # by world index, sealer or not
        self.index_of = {pub: i for i, pub in enumerate(self.keys)}
        self.pubs = self.keys[: scenario.n]  # the sealers at genesis
        self.weights = list(scenario.weights) if scenario.weights is not None else None
        self.sealers = SealerSet.build(self.suite, self.pubs, self.weights)
        self.removal = scenario.remove_last_at_height is not None
        self.change_height = scenario.remove_last_at_height if self.removal else scenario.reweight_at_height
        if joining:
            self.change_height = scenario.add_sealer_at_height
        self.pubs_after = self.pubs[:-1] if self.removal else list(self.keys)
        self.weights_after = None
        if self.change_height is not None and (scenario.weights is not None or scenario.weights_after is not None):
            self.weights_after = scenario.weights_at(self.change_height)
        for node in self.nodes:
            self._boot(node)
            if scenario.sync_interval_ms is not None:
                self.at(self.rng.randrange(scenario.sync_interval_ms), self.sync_tick, node.index)

    # -- scheduling --

    def at(self, time_ms: int, fn: Callable, *args: Any) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (time_ms, self._seq, fn, args))

    def _boot(self, node: Node) -> None:
        node.incarnation += 1
        node.alive = True
        node.timers = {}
        head = node.app.head_height
        timeout_ms, count_max = self.config_at(head + 1)
        node.replica = Replica(
            replace(self.config, timeout_base_ms=timeout_ms, timeout_max_ms=max(self.config.timeout_max_ms, timeout_ms), block_tx_count_max=count_max),
            self.suite,
            node.priv,
            node.pub,
            self.pubs_at(head + 1),
            head,
            node.app.head_hash,
            node.persisted,
            recent_blocks=node.app.recent[-self.config.decided_cache_blocks :],
            weights=self.weights_at(head + 1),
        )
        node.io = NodeIO(self, node)
        node.io.glue = PbftGlue(node.replica, node.io, node.io)
        node.io.call(node.io.glue.start, self.facts(node))

    def _call(self, index: int, incarnation: int, what: str, *args: Any, **kwargs: Any) -> None:
        """Hand one event to a node's glue (`what` names the PbftGlue method), if it is still
        the incarnation the event was meant for."""
        node = self.nodes[index]
        if not node.alive or node.incarnation != incarnation:
            return
        io = node.io
        io.call(partial(getattr(io.glue, what), *args, **kwargs))

    # -- the network --

    def _delay(self) -> int:
        r, top = self.rng, self.sc.delay_max_ms
        if self.sc.delay == "uniform":
            return r.randint(1, top)
        if self.sc.delay == "exponential":
            return min(top * 4, 1 + int(r.expovariate(3.0 / top)))
        return r.randint(1, top // 4 + 1) if r.random() < 0.9 else r.randint(top, top * 5)

    def _cut(self, a: int, b: int) -> bool:
        if self.healed:
            return False
        for start, end, side in self.sc.partitions:
            if start <= self.now_ms < end and ((a in side) != (b in side)):
                return True
        return False

    def transmit(self, src: int, dst: int, data: bytes, *, claimed_src: int | None = None) -> None:
        if dst == src or self._cut(src, dst):
            return
        if not self.healed and self.rng.random() < self.sc.drop_rate:
            return
        copies = 2 if self.rng.random() < self.sc.dup_rate else 1
        for _ in range(copies):
            self.at(self.now_ms + self._delay(), self._deliver, dst, src if claimed_src is None else claimed_src, data)

    def _deliver(self, dst: int, src: int, data: bytes) -> None:
        node = self.nodes[dst]
        if not node.alive:
            return
        self.messages += 1
        self.trace.append((self.now_ms, dst, ("recv", src, data)))
        if node.byzantine and "replay" in node.behaviours:
            node.sent_log.append((src, data))
        node.io.call(node.io.glue.on_message, self.keys[src], data)

    # -- actions --

    def _check_not_equivocating(self, node: Node, data: bytes) -> None:
        """Invariant: an honest replica, across any number of crashes and restarts, never signs
        two different proposals or votes where the protocol allows one."""
        msg = decode_message(data)
        t = type(msg)
        if t is PrePrepare:
            what = msg.header.hash(self.suite)
        elif t in (Prepare, Commit, Checkpoint):
            what = msg.block_hash
        else:
            return
        key = (node.index, t.__name__, msg.height, msg.view)
        first = self.signed_by_honest.setdefault(key, what)
        if first != what:
            raise SafetyViolation(
                f"n{node.index} (honest) signed two different {t.__name__}s at height {msg.height} view {msg.view}"
            )

    def send(self, node: Node, pub: bytes, data: bytes) -> None:
        """What the glue routes: one message to the replica with key `pub`."""
        assert pub != node.pub, "the glue sent a message back to its own replica"
        dst = self.index_of[pub]
        if node.byzantine:
            self.byzantine_send(node, dst, data)
            return
        if data is not node.last_sent:  # once per broadcast
            node.last_sent = data
            self._check_not_equivocating(node, data)
        self.transmit(node.index, dst, data)

    def set_timer(self, node: Node, timer_id: Any, delay_ms: int) -> None:
        token = object()
        node.timers[timer_id] = token
        self.at(self.now_ms + delay_ms, self._timer, node.index, node.incarnation, timer_id, token)

    def _timer(self, index: int, incarnation: int, timer_id: Any, token: object) -> None:
        node = self.nodes[index]
        if node.alive and node.incarnation == incarnation and node.timers.get(timer_id) is token:
            del node.timers[timer_id]
            self.trace.append((self.now_ms, index, ev.TimerFired(timer_id)))
            self._call(index, incarnation, "timer_fired", timer_id)

    def persist(self, node: Node, data: bytes) -> None:
        node.persisted = data  # synchronous: durable before the next job
        if not node.byzantine and not self.healed and self.rng.random() < self.sc.crash_after_persist_rate:
            # The worst moment to die: the vote is on disk, not yet on the wire. The
            # restarted replica must not sign anything that contradicts it.
            self.crash(node.index)
            back = min(self.sc.unstable_ms, self.now_ms + self.rng.randint(20, 800))
            self.at(back, self.restart, node.index)

    def build(self, node: Node, action: ev.BuildProposal) -> None:
        header, txs = node.app.build(action, self.now_ms, min(self.tx_limit, self.config_at(action.height)[1]))
        if header is not None:
            self.proposed.add(header.hash(self.suite))
        took_ms = self.rng.randint(1, 5)
        proposal = None if header is None else SimProposal(header, txs)
        self.at(self.now_ms + took_ms, self._built, node.index, node.incarnation, action, proposal, took_ms)

    def _built(self, index: int, incarnation: int, action: ev.BuildProposal, proposal: SimProposal | None, took_ms: int) -> None:
        if self._after_sync(index, incarnation, self._built, action, proposal, took_ms):
            return
        txs = proposal.tx_hashes if proposal is not None else []
        self.trace.append((self.now_ms, index, ev.ProposalReady(action.height, action.view, proposal and proposal.header, txs)))
        self._call(index, incarnation, "proposal_built", action, proposal, txs, took_ms)

    def execute(self, node: Node, action: ev.Execute, fetch_from: list[bytes]) -> None:
        # The glue asks the proposer first, then the other sealers of that height (not us).
        header = action.header
        sset = node.replica.sealers_at(header.height)
        proposer = sset.pubs[header.proposer_index] if header.proposer_index < sset.n else None
        expected = [p for p in sset.pubs if p != node.pub]
        if proposer in expected:
            expected = [proposer] + [p for p in expected if p != proposer]
        if fetch_from != expected:
            raise SafetyViolation(f"n{node.index}: the glue would fetch block {header.height}'s transactions from the wrong peers")
        took_ms = self.rng.randint(1, 5)
        self.at(self.now_ms + took_ms, self._execute, node.index, node.incarnation, action, took_ms)

    def _execute(self, index: int, incarnation: int, action: ev.Execute, took_ms: int) -> None:
        node = self.nodes[index]
        if not node.alive or node.incarnation != incarnation or self._after_sync(index, incarnation, self._execute, action, took_ms):
            return
        if self.sc.execution_retry_rate and not node.byzantine and not self.healed and self.rng.random() < self.sc.execution_retry_rate:
            self.trace.append((self.now_ms, index, ev.ExecutionDone(action.proposal_id, None, retry=True)))
            self._call(index, incarnation, "executed", action, None, retry=True)
            return
        result = node.app.compute(action.header, action.tx_hashes)
        if result is not None and result.hash(self.suite) == action.proposal_id:
            self.trace.append((self.now_ms, index, ev.ExecutionDone(action.proposal_id, result)))
            self._call(index, incarnation, "executed", action, SimProposal(result, list(action.tx_hashes)), elapsed_ms=took_ms)
        else:
            self.trace.append((self.now_ms, index, ev.ExecutionDone(action.proposal_id, None)))
            self._call(index, incarnation, "executed", action, None, reason="roots differ", elapsed_ms=took_ms)

    def _after_sync(self, index: int, incarnation: int, fn: Callable, *args: Any) -> bool:
        """Hold a chain-worker answer until the synced block's news reached the glue."""
        node = self.nodes[index]
        if node.io is None or self.now_ms > node.io.worker_results_after_ms:
            return False
        self.at(node.io.worker_results_after_ms + 1, fn, index, incarnation, *args)
        return True

    def commit(self, node: Node, header: BlockHeader, tx_hashes: list[bytes], cert: CommitCertificate, *, by: str) -> bool:
        """Write a block to a node's ledger (`by` consensus or sync), checking every safety
        invariant first; False, writing nothing, if the node already has that height."""
        block_hash = header.hash(self.suite)
        app = node.app
        if header.height <= app.head_height:
            if not node.byzantine and app.blocks.get(header.height) != block_hash:
                raise SafetyViolation(f"n{node.index} {by} committed a second block at height {header.height}")
            return False  # the other path got there first
        self.trace.append((self.now_ms, node.index, ("COMMIT" if by == "consensus" else "SYNC", header.height, block_hash)))
        if not node.byzantine:
            if header.height != app.head_height + 1 or header.parent_hash != app.head_hash:
                raise SafetyViolation(f"n{node.index} committed height {header.height} not on its head {app.head_height}")
            if block_hash not in self.proposed:
                raise SafetyViolation(f"n{node.index} committed a block nobody proposed at height {header.height}")
            if app.compute(header, tx_hashes) != header:
                raise SafetyViolation(f"n{node.index} committed an invalid block at height {header.height}")
            if cert.height != header.height or cert.block_hash != block_hash:
                raise SafetyViolation(f"n{node.index} commit certificate names another block at height {header.height}")
            try:
                CommitCertificate.decode(cert.encode()).verify(
                    self.suite, self.pubs_at(header.height), self.weights_at(header.height)
                )
            except InvalidCertificate as exc:
                raise SafetyViolation(f"n{node.index} commit certificate invalid at height {header.height}: {exc}") from None
            first = self.decided.setdefault(header.height, block_hash)
            if first != block_hash:
                raise SafetyViolation(
                    f"AGREEMENT: n{node.index} committed {block_hash.hex()[:12]} at height {header.height}, "
                    f"another honest replica committed {first.hex()[:12]}"
                )
        app.commit(header, tx_hashes, cert)
        self.committed_by[node.index, header.height] = by
        self._check_liveness_goal()
        return True

    def facts(self, node: Node) -> ChainFacts:
        """What the node's chain says right after its last block (chainnode/pbft/driver.py):
        a membership change made in block change_height - 2 is pending until it holds."""
        head = node.app.head_height
        pending = ()
        if self.change_height is not None and self.change_height - 2 <= head < self.change_height:
            weights = self.weights_after if self.weights_after is not None else [1] * len(self.pubs_after)
            pending = ((self.change_height, tuple(self.pubs_after), tuple(weights)),)
        return ChainFacts(pending, *self.config_at(head + 1))

    def config_at(self, height: int) -> tuple[int, int]:
        """(view timeout base, block tx count max) in force at `height`."""
        sc = self.sc
        if sc.config_change_at_height is not None and height >= sc.config_change_at_height:
            return sc.timeout_base_after_ms, sc.tx_count_after
        return self.config.timeout_base_ms, self.config.block_tx_count_max

    # -- block sync --

    def sync_tick(self, index: int) -> None:
        """A node looks for a live peer ahead and fetches its next blocks from it."""
        node = self.nodes[index]
        self.at(self.now_ms + self.sc.sync_interval_ms, self.sync_tick, index)
        if not node.alive:
            return
        height = node.app.head_height + 1
        ahead = [p for p in self.nodes if p is not node and p.alive and p.app.head_height >= height]
        if not ahead:
            return
        peer = self.rng.choice(ahead)
        blocks = [entry for entry in peer.app.recent if height <= entry[0].height < height + SYNC_BLOCKS_PER_FETCH]
        self.at(self.now_ms + self._delay(), self._synced, index, node.incarnation, blocks)

    def _synced(self, index: int, incarnation: int, blocks: list[tuple]) -> None:
        """Apply what a fetch brought, as the node's syncer does: each block on the chain at
        once (racing consensus for it), the glue told through the node's event queue, after
        whatever is queued there already."""
        node = self.nodes[index]
        for header, tx_hashes, cert in blocks:
            if not node.alive or node.incarnation != incarnation:
                return
            if header.height != node.app.head_height + 1:
                continue  # consensus (or another sync) committed that height meanwhile
            try:  # what Chain.apply_certified checks
                cert.verify(self.suite, self.pubs_at(header.height), self.weights_at(header.height))
            except InvalidCertificate:
                return
            if cert.block_hash != header.hash(self.suite) or node.app.compute(header, tx_hashes) != header:
                return
            self.commit(node, header, tx_hashes, cert, by="sync")
            # Read right after the write; the glue hears of it a moment later, so consensus
            # may meanwhile ask to commit the block sync just wrote (from messages queued
            # first), but never finish the next block before hearing of this one.
            told_ms = self.now_ms + self.rng.randint(0, 3)
            node.io.worker_results_after_ms = max(node.io.worker_results_after_ms, told_ms)
            self.at(told_ms, self._call, index, incarnation, "block_synced", header.height, header.hash(self.suite), self.facts(node))

    # -- the environment --

    def inject_txs(self) -> None:
        batch = []
        for _ in range(self.rng.randint(1, 5)):
            self._tx_counter += 1
            tx = self.suite.hash(pack([b"tx", self.sc.seed, self._tx_counter]))
            self.valid_txs.add(tx)
            batch.append(tx)
        for node in self.nodes:
            was_empty = not node.app.pool
            for tx in batch:
                node.app.pool[tx] = None
            if node.alive and was_empty:
                self.at(self.now_ms + self.rng.randint(0, 20), self._call, node.index, node.incarnation, "pool_not_empty")
        low, high = self.sc.tx_interval_ms
        self.at(self.now_ms + self.rng.randint(low, high), self.inject_txs)

    def crash(self, index: int) -> None:
        node = self.nodes[index]
        if node.alive:
            self.trace.append((self.now_ms, index, ("CRASH",)))
            node.alive = False
            node.replica = None
            node.io = None  # what it had not done yet is lost
            node.timers = {}

    def restart(self, index: int) -> None:
        node = self.nodes[index]
        if not node.alive:
            self.trace.append((self.now_ms, index, ("RESTART", node.app.head_height)))
            self._boot(node)

    def heal(self) -> None:
        self.healed = True
        self.trace.append((self.now_ms, -1, ("HEAL",)))
        for node in self.nodes:
            if not node.alive:
                self.restart(node.index)
        # Two new heights for everyone, and past the sealer-set change if there is one.
        self.stable_target = max(
            max(self.nodes[i].app.head_height for i in self.honest()) + 2, (self.change_height or 0) + 1
        )
        self._check_liveness_goal()

    def honest(self) -> list[int]:
        """Honest replicas that must stay live: a removed sealer only follows (block sync's
        job in a real node), so it is checked for safety but not for liveness."""
        last = self.sc.n - 1 if self.removal else None
        return [n.index for n in self.nodes if not n.byzantine and n.index != last]

    def pubs_at(self, height: int) -> list[bytes]:
        if self.change_height is not None and height >= self.change_height:
            return self.pubs_after
        return self.pubs

    def weights_at(self, height: int) -> list[int] | None:
        """The weights certifying `height` (None: all 1, the unit-weight seeds)."""
        if self.change_height is not None and height >= self.change_height:
            return self.weights_after
        return self.weights

    def _check_liveness_goal(self) -> None:
        if self.stable_target is not None and all(
            self.nodes[i].app.head_height >= self.stable_target for i in self.honest()
        ):
            self.done = True

    # -- byzantine behaviour --

    def byzantine_send(self, node: Node, dst: int, data: bytes) -> None:
        """A byzantine sealer runs the real core and the real glue; this is what it does with
        each message the glue routes (a broadcast is one send per recipient, the same bytes)."""
        b = node.behaviours
        if "silent" in b:
            return
        first = data is not node.last_sent  # the first recipient of a broadcast, or a single send
        node.last_sent = data
        if first:
            node.sent_log.append((node.index, data))
        evil = self._evil_twin(node, data) if "equivocate" in b else None
        if evil is None:
            self.transmit(node.index, dst, data)
        else:  # some recipients get the lie, some the truth, a few both
            r = self.rng.random()
            if r < 0.45 or r >= 0.9:
                self.transmit(node.index, dst, evil)
            if r >= 0.45:
                self.transmit(node.index, dst, data)
        if first:
            for _ in range(self.rng.randint(0, 2)):
                self._attack(node)

    def _sign_as(self, node: Node, msg: Any) -> Any:
        return sign(msg, lambda d: self.suite.sign(node.priv, d))

    def _evil_twin(self, node: Node, data: bytes) -> bytes | None:
        """A second, different message an equivocator signs where the protocol allows one
        (the same for every recipient of one broadcast); None for what it cannot twin."""
        if data in node.evil:
            return node.evil[data]
        if len(node.evil) >= 32:
            node.evil.clear()
        try:
            msg = decode_message(data)
        except DecodeError:
            msg = None
        rng, evil = self.rng, None
        if type(msg) is PrePrepare:
            evil_header = replace(msg.header, extra=b"evil" + rng.randbytes(4))
            self.proposed.add(evil_header.hash(self.suite))  # a real (executable) second proposal
            evil = self._sign_as(node, replace(msg, header=evil_header))
        elif type(msg) is ViewChange:
            evil = self._sign_as(node, replace(msg, prepared=None))  # hide what it prepared
        elif type(msg) is NewView:
            # A second NEW_VIEW with another (executable) block: valid only if no VIEW_CHANGE
            # carried a prepared block, which the replicas check.
            pp = msg.pre_prepare
            evil_header = replace(pp.header, extra=b"evil-nv" + rng.randbytes(4))
            self.proposed.add(evil_header.hash(self.suite))
            evil_pp = self._sign_as(node, replace(pp, header=evil_header))
            evil = self._sign_as(node, replace(msg, pre_prepare=evil_pp))
        elif type(msg) in (Prepare, Commit, Checkpoint):
            evil = self._sign_as(node, replace(msg, block_hash=rng.randbytes(32)))
        node.evil[data] = None if evil is None else evil.encode()
        return node.evil[data]

    def _attack(self, node: Node) -> None:
        rng = self.rng
        kinds = [k for k in node.behaviours if k in ("replay", "forge", "huge", "garbage")]
        if not kinds:
            return
        kind = rng.choice(kinds)
        dst = rng.choice([i for i in range(self.sc.n) if i != node.index])
        me = node.index
        replica = node.replica
        height, view = replica.hs.height, replica.hs.view
        if kind == "replay" and node.sent_log:
            src, data = rng.choice(node.sent_log)
            # Its own old messages pass the sender check; others' are replayed with their
            # original sender claimed on the wire.
            self.transmit(me, dst, data, claimed_src=src if rng.random() < 0.5 else me)
        elif kind == "forge":
            victim = rng.choice([i for i in range(self.sc.n) if i != me])
            fake = Prepare(height, view, victim, rng.randbytes(32), rng.randbytes(64))
            if rng.random() < 0.5:
                fake = Checkpoint(height, 0, victim, rng.randbytes(32), rng.randbytes(64))
            self.transmit(me, dst, fake.encode(), claimed_src=victim)  # a spoofed transport
            # A well-formed DECIDED, honestly signed by the liar, with a forged certificate.
            header, txs = node.app.build(
                ev.BuildProposal(node.app.head_height + 1, 0, node.app.head_hash, me, self.sealers.set_hash, True),
                self.now_ms,
                self.tx_limit,
            )
            cert = CommitCertificate(header.height, header.hash(self.suite), [(i, rng.randbytes(64)) for i in range(self.sc.n)])
            self.transmit(me, dst, self._sign_as(node, Decided(header.height, 0, me, header, txs, cert, header.height)).encode())
            if node.sent_log:
                _, data = rng.choice(node.sent_log)
                corrupted = bytearray(data)
                corrupted[-1 - rng.randrange(min(64, len(data)))] ^= 1 << rng.randrange(8)
                self.transmit(me, dst, bytes(corrupted))
        elif kind == "huge":
            choice = rng.randrange(5)
            if choice == 0:
                msg = ViewChange(height, UINT63 + rng.randrange(1000), me, None)
            elif choice == 1:
                msg = ViewChange(height, view + rng.randint(1, 20_000), me, None)
            elif choice == 2:
                msg = Prepare(UINT63, 0, me, rng.randbytes(32))
            elif choice == 3:
                msg = Commit(height + rng.randint(2, 20_000), 0, me, rng.randbytes(32))
            else:
                msg = SyncRequest(rng.randrange(2**64), 0, me)
            self.transmit(me, dst, self._sign_as(node, msg).encode())
        elif kind == "garbage":
            choice = rng.randrange(4)
            if choice == 0:
                data = rng.randbytes(rng.randint(0, 200))
            elif choice == 1 and node.sent_log:
                data = rng.choice(node.sent_log)[1]
                data = data[: rng.randrange(len(data))]
            elif choice == 2:
                data = pack([1, rng.randint(0, 9), height, view, me, [rng.randbytes(5)], rng.randbytes(64)])
            else:
                data = pack({"hello": [1, 2, 3]}) if rng.random() < 0.5 else pack([1, 2, height, view, me, "x", b"y" * 64])
            self.transmit(me, dst, data)

    # -- running --

    def run(self) -> None:
        sc = self.sc
        self.at(0, self.inject_txs)
        for node, at, back in sc.crashes:
            self.at(at, self.crash, node)
            self.at(back, self.restart, node)
        self.at(sc.unstable_ms, self.heal)
        deadline = sc.unstable_ms + sc.liveness_ms
        while self._queue and not self.done:
            time_ms, _, fn, args = heapq.heappop(self._queue)
            if time_ms > deadline:
                break
            self.now_ms = time_ms
            fn(*args)
        if not self.done:
            heights = {i: self.nodes[i].app.head_height for i in self.honest()}
            raise LivenessViolation(
                f"after the heal at {sc.unstable_ms} ms, honest replicas did not all reach height "
                f"{self.stable_target} within {sc.liveness_ms} ms: heights {heights}"
            )

    def format_trace(self) -> str:
        lines = []
        for time_ms, index, item in self.trace:
            who = f"n{index:<2}" if index >= 0 else "-- "
            lines.append(f"{time_ms:>8} ms  {who} {_describe(item)}")
        for node in self.nodes:
            role = "+".join(node.behaviours) if node.byzantine else "honest"
            status = node.replica.status() if node.replica else "crashed"
            lines.append(f"final n{node.index} ({role}): head {node.app.head_height} {status}")
        return "\n".join(lines)


def _describe(item: Any) -> str:
    if isinstance(item, tuple):
        if item[0] == "recv":
            _, src, data = item
            try:
                msg = decode_message(data)
            except DecodeError as exc:
                return f"<- n{src} garbage ({str(exc)[:60]})"
            name = type(msg).__name__
            extra = ""
            if hasattr(msg, "block_hash"):
                extra = f" block {msg.block_hash.hex()[:8]}"
            elif isinstance(msg, PrePrepare):
                extra = f" txs={len(msg.tx_hashes)} extra={msg.header.extra!r}"
            return f"<- n{src} {name} h={msg.height} v={msg.view} from={msg.sender}{extra}"
        if item[0] in ("COMMIT", "SYNC"):
            return f"{item[0]} height {item[1]} block {item[2].hex()[:8]}"
        return " ".join(str(x) for x in item)
    name = type(item).__name__
    if isinstance(item, ev.ExecutionDone):
        return f"{name} {item.proposal_id.hex()[:8]} ok={item.header is not None}{' retry' if item.retry else ''}"
    if isinstance(item, ev.ProposalReady):
        return f"{name} h={item.height} v={item.view} txs={len(item.tx_hashes)}"
    if isinstance(item, ev.TimerFired):
        return f"{name} {item.timer_id}"
    return name


def run_seed(
    seed: int,
    nodes: list[int],
    byzantine: str = "max",
    *,
    unstable_ms: int = 2000,
    liveness_ms: int = 30_000,
    suite: str = "sim",
    trace: bool = False,
    weights: str = "mixed",
) -> SeedResult:
    scenario = make_scenario(seed, nodes, byzantine, unstable_ms, liveness_ms, weights)
    world = World(scenario, suite)
    error = ""
    try:
        world.run()
    except (SafetyViolation, LivenessViolation) as exc:
        error = f"{type(exc).__name__}: {exc}"
    except AssertionError as exc:  # an invariant inside the core
        error = f"AssertionError: {exc}"
    honest = world.honest()
    return SeedResult(
        seed=seed,
        n=scenario.n,
        weighted=scenario.weights is not None,
        ok=not error,
        blocks=max(world.nodes[i].app.head_height for i in honest),
        view_changes=sum(world.nodes[i].replica.stats["view_changes"] for i in honest if world.nodes[i].replica),
        messages=world.messages,
        verifies=world.suite.verifies,
        sim_ms=world.now_ms,
        error=error,
        trace=world.format_trace() if error or trace else "",
        scenario=scenario.describe(),
    )


@dataclass
class Summary:
    seeds: int = 0
    blocks: int = 0
    view_changes: int = 0
    messages: int = 0
    verifies: int = 0
    sim_ms: int = 0
    safety_violations: int = 0
    liveness_failures: int = 0
    failed: list = field(default_factory=list)
    by_n: dict = field(default_factory=dict)
    weighted: int = 0  # seeds with uneven weights
    wall_s: float = 0.0

    def add(self, r: SeedResult) -> None:
        self.seeds += 1
        self.blocks += r.blocks
        self.view_changes += r.view_changes
        self.messages += r.messages
        self.verifies += r.verifies
        self.sim_ms += r.sim_ms
        self.by_n[r.n] = self.by_n.get(r.n, 0) + 1
        self.weighted += r.weighted
        if not r.ok:
            if r.error.startswith("LivenessViolation"):
                self.liveness_failures += 1
            else:
                self.safety_violations += 1
            self.failed.append(r.seed)

    def render(self) -> str:
        per_n = ", ".join(f"n={n}: {c}" for n, c in sorted(self.by_n.items()))
        return (
            f"consensus simulation: {self.seeds} seeds ({per_n}; {self.weighted} weighted) in {self.wall_s:.1f} s wall, "
            f"{self.sim_ms / 1000:.0f} s simulated\n"
            f"  blocks committed: {self.blocks}   view changes: {self.view_changes}   "
            f"messages delivered: {self.messages}   signature checks: {self.verifies}\n"
            f"  safety violations = {self.safety_violations}   liveness failures = {self.liveness_failures}"
            + (f"   failing seeds: {self.failed[:20]}" if self.failed else "")
        )


def run_many(
    seeds: range | list[int],
    nodes: list[int],
    byzantine: str = "max",
    *,
    unstable_ms: int = 2000,
    liveness_ms: int = 30_000,
    suite: str = "sim",
    on_failure: Callable[[SeedResult], None] | None = None,
    weights: str = "mixed",
) -> Summary:
    summary = Summary()
    start = time.perf_counter()
    for seed in seeds:
        result = run_seed(
            seed, nodes, byzantine, unstable_ms=unstable_ms, liveness_ms=liveness_ms, suite=suite, weights=weights
        )
        summary.add(result)
        if not result.ok and on_failure is not None:
            on_failure(result)
    summary.wall_s = time.perf_counter() - start
    return summary


def replay_command(
    seed: int, nodes: list[int], byzantine: str, unstable_ms: int, liveness_ms: int, suite: str, weights: str = "mixed"
) -> str:
    return (
        f"python -m consensus.sim --seed {seed} --nodes {','.join(map(str, nodes))} --byzantine {byzantine}"
        f" --unstable-ms {unstable_ms} --liveness-ms {liveness_ms} --suite {suite} --weights {weights}"
    )


def format_failure(r: SeedResult, replay: str) -> str:
    return f"FAILED seed {r.seed}: {r.error}\n  scenario: {r.scenario}\n  replay: {replay}\n--- trace (last events) ---\n{r.trace}\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m consensus.sim", description="Run the PBFT simulator over many seeds.")
    p.add_argument("--seeds", type=int, default=200, help="number of seeds to run (0..N-1, offset by --first)")
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--seed", type=int, help="replay one seed and print its trace")
    p.add_argument("--nodes", default="4,7", help="comma-separated sealer counts (n = 3f+1)")
    p.add_argument("--byzantine", default="max", help="'max' (as many as fit in F per run), 'none', or a number")
    p.add_argument(
        "--weights",
        default="mixed",
        choices=WEIGHT_MODES,
        help=f"sealer weights: 'unit' (all 1), 'random' (1..{WEIGHT_MAX_SIM} in every seed), "
        f"'mixed' (about {WEIGHTED_SHARE:.0%}% of the seeds weighted)",
    )
    p.add_argument("--unstable-ms", type=int, default=2000, help="simulated time of drops, partitions and crashes")
    p.add_argument("--liveness-ms", type=int, default=30_000, help="bound on simulated time to progress after the heal")
    p.add_argument("--suite", default="sim", choices=["sim", "ed25519", "sm"])
    p.add_argument("--trace", action="store_true", help="with --seed: print the trace even when the seed passes")
    a = p.parse_args(argv)
    nodes = [int(x) for x in a.nodes.split(",") if x]
    replay = lambda s: replay_command(s, nodes, a.byzantine, a.unstable_ms, a.liveness_ms, a.suite, a.weights)  # noqa: E731
    if a.seed is not None:
        r = run_seed(
            a.seed,
            nodes,
            a.byzantine,
            unstable_ms=a.unstable_ms,
            liveness_ms=a.liveness_ms,
            suite=a.suite,
            trace=a.trace,
            weights=a.weights,
        )
        print(f"seed {r.seed}: {r.scenario}")
        if r.ok and a.trace:
            print(r.trace)
        if r.ok:
            print(f"ok: {r.blocks} blocks, {r.view_changes} view changes, {r.messages} messages, {r.sim_ms} ms simulated")
            return 0
        print(format_failure(r, replay(r.seed)))
        return 1
    summary = run_many(
        range(a.first, a.first + a.seeds),
        nodes,
        a.byzantine,
        unstable_ms=a.unstable_ms,
        liveness_ms=a.liveness_ms,
        suite=a.suite,
        on_failure=lambda r: print(format_failure(r, replay(r.seed)), file=sys.stderr),
        weights=a.weights,
    )
    print(summary.render())
    return 0 if not summary.failed else 1


if __name__ == "__main__":
    sys.exit(main())

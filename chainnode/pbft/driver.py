"""The PBFT driver: feeds the sans-IO core one event at a time and performs what it asks.

Two layers, so that the simulator (consensus/sim.py) runs the same glue as production:

- `PbftGlue` is synchronous and deterministic. It feeds the core and routes its actions:
  messages go to sealers by public key (a broadcast to the sealers of this height and the
  next, which differ around a membership change), timers are padded by what executing a
  block takes here, proposals the application built or checked are kept until their block
  is committed, a commit the chain already has (from sync) is skipped, and after every
  block the core hears what the chain decided (sealer-set and config changes) before any
  other event. It talks to the world through two small interfaces, `Transport` and `App`.
- `PbftDriver` is the trio shell: it implements `Transport` and `App` on the network, the
  chain's worker thread, the pool and the data directory, runs timers and executions in
  its own nursery, and serves `/chainnode/txfetch/1` (replicas fetch the transactions of a
  proposal they lack from its proposer, and from the other sealers).

Ordering (consensus/events.py): the shell performs the glue's calls strictly in order, one
at a time, and feeds the next event only when all are done, so a Persist is durable before
anything after it goes out, and a Commit before any later Persist.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Awaitable, Callable, Hashable, Protocol

import trio

from chainnode.execution.chain import Chain, Proposal
from chainnode.execution.executor import InvalidBlock
from chainnode.network import TXFETCH_PROTOCOL, Network, NetworkError
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_list, expect_version, pack, unpack
from chainnode.protocol.types import Block, CommitCertificate, Transaction
from chainnode.store.files import write_atomic
from chainnode.system.state import nodes_at, read_config, read_pending_nodes
from chainnode.txpool.pool import TxPool
from consensus import events as ev
from consensus.replica import Replica, ReplicaConfig

log = logging.getLogger("chainnode.pbft")

CHANNEL_PBFT = b"\x01"  # the channel byte of PBFT frames on the per-peer consensus stream
EVENT_QUEUE_MAX = 10_000
TXFETCH_HASHES_MAX = 10_000
TXFETCH_RESPONSE_BYTES_MAX = 64 << 20
TXFETCH_ROUNDS = 3
TXFETCH_RETRY_MS = 300
RECENT_BLOCKS_FOR_REPLICA = 128
# A block's execution time per transaction is sampled from blocks of at least this many: in
# smaller ones the fixed cost (roots, receipts, the write) is most of it.
PER_TX_SAMPLE_TXS_MIN = 100
TIMEOUT_MAX_MS_MIN = 30_000  # the cap of the core's view-timeout backoff, unless the base is higher
SAFETY_FILE = "consensus.state"


# ---- the glue -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainFacts:
    """What the chain says the core must know, read right after a block is durable (on the
    same thread, so no later block is mixed in): the membership changes not in force yet,
    as (from_height, sealer pubs, their weights), and the config the core keeps a copy of."""

    pending_sealers: tuple[tuple[int, tuple[bytes, ...], tuple[int, ...]], ...]
    timeout_base_ms: int
    block_tx_count_max: int


class Transport(Protocol):
    def send(self, pub: bytes, data: bytes) -> None:
        """Send PBFT bytes to the node with consensus key `pub`; best effort."""

    def report(self, pub: bytes, reason: str) -> None:
        """The node with consensus key `pub` broke the protocol (the core already ignored it)."""


class App(Protocol):
    """What the glue needs of the node. The glue calls these in the order the core asked,
    and an implementation must perform them in that order (see the module docstring)."""

    def head_height(self) -> int: ...

    def has_pool_work(self) -> bool: ...

    def set_timer(self, timer_id: Hashable, delay_ms: int) -> None:
        """Call `glue.timer_fired(timer_id)` after `delay_ms`, unless cancelled first."""

    def cancel_timer(self, timer_id: Hashable) -> None: ...

    def build(self, action: ev.BuildProposal) -> None:
        """Build and execute a block as `action` asks; answer `glue.proposal_built`."""

    def execute(self, action: ev.Execute, fetch_from: list[bytes]) -> None:
        """Execute the proposal (fetching missing transactions from `fetch_from`, in that
        order: its proposer first); answer `glue.executed`."""

    def persist(self, data: bytes) -> None:
        """Make `data` the durable safety state before anything after it is performed."""

    def commit(self, proposal: Any, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        """Commit the executed proposal durably (unless sync already did); answer
        `glue.committed` with the facts read right after."""


class PbftGlue:
    """The synchronous, deterministic part of the driver (see the module docstring).

    Events reach the core only through this object, one at a time: one that arises while
    the actions of another are being routed (a commit the application finished at once,
    say) waits until they all are, then goes before anything from outside."""

    def __init__(self, replica: Replica, transport: Transport, app: App) -> None:
        self.replica = replica
        self.transport = transport
        self.app = app
        self.my_pub = replica.my_pub
        self.suite = replica.suite
        self.execution_ms = 0.0  # moving average of executing a proposal here
        self.execution_ms_per_tx = 0.0  # moving average per transaction, of blocks of PER_TX_SAMPLE_TXS_MIN or more
        self._proposals: dict[bytes, Any] = {}  # header hash -> what the application built or checked
        self._told: set[tuple[int, tuple[bytes, ...], tuple[int, ...]]] = set()  # SealersChanged given
        self._config = (replica.cfg.timeout_base_ms, replica.cfg.block_tx_count_max)  # as the core has it
        self._pending: deque = deque()
        self._routing = False
        self._broadcast_to: tuple = (None, None, [])  # (sealers now, next, whom a broadcast goes to)

    # ---- events in ----------------------------------------------------------------------

    def start(self, facts: ChainFacts) -> None:
        self._route(self.replica.start())
        self._tell(facts)  # changes made before a restart that are not in force yet
        self._remind_pool_work()

    def on_message(self, pub: bytes, data: bytes) -> None:
        """PBFT bytes from the peer the transport authenticated as consensus key `pub`."""
        self._feed(ev.MessageReceived(pub, data))

    def timer_fired(self, timer_id: Hashable) -> None:
        self._feed(ev.TimerFired(timer_id))

    def pool_not_empty(self) -> None:
        self._feed(ev.PoolNotEmpty())

    def proposal_built(self, action: ev.BuildProposal, proposal: Any | None, tx_hashes: list[bytes], elapsed_ms: float) -> None:
        """The answer to `App.build`: the executed proposal (with `.header`) and its tx
        hashes, or None if there was nothing to propose (or the head moved meanwhile)."""
        header = None
        if proposal is not None:
            self._note_execution_ms(elapsed_ms, len(tx_hashes))
            header = proposal.header
            self._proposals[header.hash(self.suite)] = proposal
        self._feed(ev.ProposalReady(action.height, action.view, header, list(tx_hashes) if header is not None else []))

    def executed(self, action: ev.Execute, proposal: Any | None, *, retry: bool = False, reason: str = "", elapsed_ms: float = 0.0) -> None:
        """The answer to `App.execute`: the checked proposal, or None with `retry` (data
        missing: says nothing about the block) or a `reason` (the block is bad here)."""
        if proposal is not None:
            self._note_execution_ms(elapsed_ms, len(action.tx_hashes))
            self._proposals[proposal.header.hash(self.suite)] = proposal
            self._feed(ev.ExecutionDone(action.proposal_id, proposal.header))
        else:
            self._feed(ev.ExecutionDone(action.proposal_id, None, retry=retry, reason=reason))

    def committed(self, height: int, facts: ChainFacts) -> None:
        """The answer to `App.commit`, whether it wrote the block or found that sync had.
        Either way the facts hold right after that block, so they are told here too: the
        core must know of a change made in it before it leaves the next height."""
        self._chain_moved(height, facts)
        self._remind_pool_work()

    def block_synced(self, height: int, block_hash: bytes, facts: ChainFacts) -> None:
        """The node committed this block without the core (block sync)."""
        self._chain_moved(height, facts)
        self._feed(ev.BlockCommitted(height, block_hash))
        self._remind_pool_work()

    # ---- feeding the core -----------------------------------------------------------------

    def _feed(self, event: Any) -> None:
        if self._routing:
            self._pending.append(event)
        else:
            self._route(self.replica.handle(event))

    def _route(self, actions: list) -> None:
        assert not self._routing, "the glue is not re-entrant"
        self._routing = True
        try:
            self._perform(actions)
            while self._pending:
                self._perform(self.replica.handle(self._pending.popleft()))
        finally:
            self._routing = False

    def _tell(self, facts: ChainFacts) -> None:
        """What the chain decided, before any other event: a membership change made in block
        h governs blocks from h + 2 on (chainnode/system/state.py), and a config change from
        h + 1 on; this runs right after block h, so the core knows in time."""
        height = self.replica.hs.height
        self._told = {key for key in self._told if key[0] > height}  # the rest are in force
        for key in facts.pending_sealers:  # a weight change is a set change too
            if key not in self._told and key[0] > height:
                self._told.add(key)
                self._feed(ev.SealersChanged(key[0], list(key[1]), list(key[2])))
        config = (facts.timeout_base_ms, facts.block_tx_count_max)
        if config != self._config:
            self._config = config
            self._feed(ev.ConfigChanged(*config))

    def _chain_moved(self, height: int, facts: ChainFacts) -> None:
        self._proposals = {h: p for h, p in self._proposals.items() if p.header.height > height}
        self._tell(facts)

    def _remind_pool_work(self) -> None:
        """The core forgets that the pool has work on entering a height (after a start, a
        commit or a synced block), and the pool only speaks when it stops being empty, so
        without this a leader would not propose what the pool still holds."""
        if self.app.has_pool_work():
            self._feed(ev.PoolNotEmpty())

    def _note_execution_ms(self, elapsed_ms: float, tx_count: int) -> None:
        self.execution_ms += (elapsed_ms - self.execution_ms) / 8
        if tx_count >= PER_TX_SAMPLE_TXS_MIN:
            sample = elapsed_ms / tx_count
            self.execution_ms_per_tx += (sample - self.execution_ms_per_tx) / 8 if self.execution_ms_per_tx else sample

    def execution_allowance_ms(self) -> int:
        """What a view's timer adds for execution: the leader builds a proposal, then we check
        it, so twice what a block takes here; and a block may be full however small the
        recent ones were. With the average alone, the first full block after a few small ones
        (a load starting) was given ~0.2 s: at 1,000,000 accounts such a block takes ~1 s to
        build and ~1 s to check on a loaded machine, the replicas' 3 s timers fired first, and
        the view change cost more than the block."""
        full_block_ms = self.execution_ms_per_tx * self._config[1]
        return int(2 * max(self.execution_ms, full_block_ms))

    # ---- actions out ----------------------------------------------------------------------

    def _perform(self, actions: list) -> None:
        for action in actions:
            t = type(action)
            if t is ev.Broadcast:
                for pub in self._broadcast_pubs():
                    self.transport.send(pub, action.data)
            elif t is ev.Send:
                self.transport.send(action.to_pub, action.data)
            elif t is ev.SetTimer:
                # The core's timeouts assume a block executes in no time; add what it takes here
                # (`execution_allowance_ms`), so slow execution is not taken for a dead leader.
                self.app.set_timer(action.timer_id, action.delay_ms + self.execution_allowance_ms())
            elif t is ev.CancelTimer:
                self.app.cancel_timer(action.timer_id)
            elif t is ev.BuildProposal:
                self.app.build(action)
            elif t is ev.Execute:
                self.app.execute(action, self._fetch_order(action.header.height, action.header.proposer_index))
            elif t is ev.Persist:
                self.app.persist(action.data)
            elif t is ev.Commit:
                self._commit(action)
            elif t is ev.Misbehaviour:
                self.transport.report(action.peer_pub, action.reason)
            else:
                raise AssertionError(f"unknown consensus action {action!r}")

    def _broadcast_pubs(self) -> list[bytes]:
        """The sealers of this height and the next (they differ around a change), not us."""
        r = self.replica
        height = r.hs.height
        now, later = r.sealers_at(height).pubs, r.sealers_at(height + 1).pubs
        cached = self._broadcast_to
        if cached[0] is now and cached[1] is later:  # the sets change only at a membership change
            return cached[2]
        pubs = [p for p in now if p != self.my_pub]
        if later is not now:
            pubs += [p for p in later if p != self.my_pub and p not in now]
        self._broadcast_to = (now, later, pubs)
        return pubs

    def _fetch_order(self, height: int, proposer_index: int) -> list[bytes]:
        """Whom to ask for a proposal's transactions: its proposer, then the other sealers
        (a certified block's transactions are held by at least f + 1 honest ones)."""
        sset = self.replica.sealers_at(height)
        pubs = [p for p in sset.pubs if p != self.my_pub]
        if 0 <= proposer_index < sset.n and sset.pubs[proposer_index] != self.my_pub:
            proposer = sset.pubs[proposer_index]
            pubs = [proposer] + [p for p in pubs if p != proposer]
        return pubs

    def _commit(self, action: ev.Commit) -> None:
        header = action.header
        if header.height <= self.app.head_height():
            # Sync committed it: its `block_synced` (with the facts right after the block)
            # is queued before anything that could let the core commit the next height,
            # since executing that needs the chain worker after the synced write.
            return
        proposal = self._proposals.get(header.hash(self.suite))
        assert proposal is not None, f"PBFT committed block {header.height} that this node never executed"
        self.app.commit(proposal, action.certificate, list(action.tx_hashes))


# ---- the trio shell -----------------------------------------------------------------------


class TxsMissing(Exception):
    """A proposal's transaction could not be fetched (or is invalid): execution is retried."""


def _now_ms() -> int:
    return int(time.time() * 1000)


class PbftDriver:
    """Runs the PBFT core of one node on trio: the `Transport` and `App` of its `PbftGlue`."""

    def __init__(
        self,
        *,
        name: str,
        chain: Chain,
        pool: TxPool,
        network: Network,
        priv: bytes,
        pub: bytes,
        data_dir: Path,
        on_chain: Callable[..., Awaitable[Any]],
        peer_of: Callable[[bytes], int | None],
        committed: Callable[[int, list[bytes]], None],
    ) -> None:
        """`on_chain(fn, *args)` runs chain work on the node's worker thread; `peer_of` maps a
        consensus key to its network peer index; `committed(height, tx_hashes)` tells the
        rest of the node about every block this driver commits or applies from sync."""
        self.name = name
        self.chain = chain
        self.suite = chain.suite
        self.pool = pool
        self.network = network
        self._on_chain = on_chain
        self._peer_of = peer_of
        self._committed = committed
        self._safety_path = data_dir / SAFETY_FILE
        self._keys = (priv, pub)
        self.reopen()
        self._calls_send, self._calls_recv = trio.open_memory_channel(EVENT_QUEUE_MAX)
        self._jobs: deque[tuple[Callable[..., Awaitable[None]], tuple]] = deque()
        self._timers: dict[Hashable, trio.CancelScope] = {}
        self._tasks: trio.Nursery | None = None  # timers, builds and executions
        network.register_handler(TXFETCH_PROTOCOL, self._serve_txfetch)

    def reopen(self) -> None:
        """A core for the chain's head as it is now (called again, before `run`, after a
        snapshot moved the head: chainnode/blocksync/snapshot.py)."""
        self.replica = build_replica(self.chain, *self._keys, self._safety_path)
        self.glue = PbftGlue(self.replica, transport=self, app=self)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as tasks:
            self._tasks = tasks
            tasks.start_soon(self._pool_watch)
            task_status.started()
            try:
                self.glue.start(self._read_facts())
                await self._perform()
                async for call in self._calls_recv:
                    call()
                    await self._perform()
            finally:
                self._tasks = None

    async def deliver(self, pub: bytes, data: bytes) -> None:
        """PBFT bytes from the peer the network authenticated as consensus key `pub`."""
        await self._calls_send.send(partial(self.glue.on_message, pub, data))

    async def apply_synced(self, block: Block, certificate: CommitCertificate) -> bool:
        """Block sync's `apply`: verify and commit a block on the worker, then tell the node
        and the core. False (nothing written) if the chain already had it."""
        wrote, facts = await self._on_chain(self._apply_on_chain, block, certificate)
        if not wrote:
            return False  # consensus committed it first
        header = block.header
        self._committed(header.height, [tx.hash(self.suite) for tx in block.transactions])
        await self._calls_send.send(partial(self.glue.block_synced, header.height, header.hash(self.suite), facts))
        return True

    # ---- Transport and App, in order ----------------------------------------------------

    def head_height(self) -> int:
        return self.chain.height

    def has_pool_work(self) -> bool:
        return len(self.pool) > 0

    def send(self, pub: bytes, data: bytes) -> None:
        self._jobs.append((self._send_now, (pub, data)))

    def report(self, pub: bytes, reason: str) -> None:
        self._jobs.append((self._report_now, (pub, reason)))

    def set_timer(self, timer_id: Hashable, delay_ms: int) -> None:
        self._jobs.append((self._start_timer, (timer_id, delay_ms)))

    def cancel_timer(self, timer_id: Hashable) -> None:
        self._jobs.append((self._cancel_timer, (timer_id,)))

    def build(self, action: ev.BuildProposal) -> None:
        self._jobs.append((self._start, (self._build_proposal, action)))

    def execute(self, action: ev.Execute, fetch_from: list[bytes]) -> None:
        self._jobs.append((self._start, (self._execute, action, fetch_from)))

    def persist(self, data: bytes) -> None:
        self._jobs.append((self._persist_now, (data,)))

    def commit(self, proposal: Proposal, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        self._jobs.append((self._commit_now, (proposal, certificate, tx_hashes)))

    async def _perform(self) -> None:
        while self._jobs:
            job, args = self._jobs.popleft()
            await job(*args)

    async def _send_now(self, pub: bytes, data: bytes) -> None:
        peer = self._peer_of(pub)
        if peer is not None:
            self.network.send(peer, CHANNEL_PBFT + data)

    async def _report_now(self, pub: bytes, reason: str) -> None:
        peer = self._peer_of(pub)
        log.warning("%s: sealer %s (peer %s) misbehaved: %s", self.name, pub.hex()[:16], peer, reason)
        if peer is not None:
            self.network.report_misbehaviour(peer, reason)

    async def _start(self, fn: Callable[..., Awaitable[None]], *args: Any) -> None:
        assert self._tasks is not None, "the driver is not running"
        self._tasks.start_soon(fn, *args)

    async def _start_timer(self, timer_id: Hashable, delay_ms: int) -> None:
        scope = self._timers[timer_id] = trio.CancelScope()
        await self._start(self._timer, timer_id, delay_ms, scope)

    async def _cancel_timer(self, timer_id: Hashable) -> None:
        scope = self._timers.pop(timer_id, None)
        if scope is not None:
            scope.cancel()

    async def _timer(self, timer_id: Hashable, delay_ms: int, scope: trio.CancelScope) -> None:
        with scope:
            await trio.sleep(delay_ms / 1000)
            self._timers.pop(timer_id, None)
            await self._calls_send.send(partial(self.glue.timer_fired, timer_id))

    async def _persist_now(self, data: bytes) -> None:
        await trio.to_thread.run_sync(write_atomic, self._safety_path, data)

    async def _commit_now(self, proposal: Proposal, certificate: CommitCertificate, tx_hashes: list[bytes]) -> None:
        # Sync may commit the same block while this waits for the chain worker: the chain
        # decides, on the worker, which of the two wrote it.
        wrote, facts = await self._on_chain(self._commit_on_chain, proposal, certificate)
        if wrote:
            self._committed(proposal.header.height, tx_hashes)
        self.glue.committed(proposal.header.height, facts)

    # ---- chain work (on the worker thread) ------------------------------------------------

    def _read_facts(self) -> ChainFacts:
        state = self.chain.ledger.state
        pending = []
        for from_height, nodes in read_pending_nodes(state):
            sealers = [n for n in nodes if n.role == "sealer"]
            pending.append((from_height, tuple(n.consensus_pub for n in sealers), tuple(n.weight for n in sealers)))
        return ChainFacts(tuple(pending), read_config(state, "consensus_timeout_ms"), read_config(state, "tx_count_limit"))

    def _commit_on_chain(self, proposal: Proposal, certificate: CommitCertificate) -> tuple[bool, ChainFacts]:
        return self.chain.commit(proposal, certificate), self._read_facts()

    def _apply_on_chain(self, block: Block, certificate: CommitCertificate) -> tuple[bool, ChainFacts]:
        return self.chain.apply_certified(block, certificate), self._read_facts()

    # ---- building and executing proposals -------------------------------------------------

    async def _pool_watch(self) -> None:
        """Wake an idle leader when transactions arrive in an empty pool."""
        while True:
            await self.pool.wait_for_transactions()
            await self._calls_send.send(self.glue.pool_not_empty)
            await self.pool.wait_until_empty()

    async def _build_proposal(self, action: ev.BuildProposal) -> None:
        ledger = self.chain.ledger
        parent = ledger.head_header
        interval_ms = read_config(ledger.state, "block_interval_min_ms")
        wait_ms = parent.timestamp_ms + interval_ms - _now_ms()
        if wait_ms > 0:
            await trio.sleep(wait_ms / 1000)
        proposal, hashes, elapsed_ms = None, [], 0.0
        pooled = self.pool.take(read_config(ledger.state, "tx_count_limit"), action.height)
        if pooled or action.allow_empty:
            started_s = time.monotonic()
            try:
                proposal = await self._on_chain(self._build_on_chain, action, pooled)
            except InvalidBlock as exc:
                # A pooled transaction is no longer valid here: drop what the chain settled,
                # and the core tries again after its timeout.
                log.warning("%s: could not build block %d: %s", self.name, action.height, exc)
                self.pool.remove([p.tx_hash for p in pooled if self.chain.is_committed(p.tx_hash)])
                self.pool.drop_expired(self.chain.height)
            if proposal is not None:
                elapsed_ms = (time.monotonic() - started_s) * 1000
                hashes = proposal.executed.tx_hashes
        await self._calls_send.send(partial(self.glue.proposal_built, action, proposal, hashes, elapsed_ms))

    def _build_on_chain(self, action: ev.BuildProposal, pooled: list) -> Proposal | None:
        """On the chain worker: execute `pooled` as the proposal `action` asks for, or None if
        the head moved meanwhile (sync committed that height). Transactions a block committed
        since they were taken are left out. An empty block is always buildable: the core
        needs one when it asks with `allow_empty`."""
        ledger = self.chain.ledger
        if action.height != self.chain.height + 1 or ledger.head_hash != action.parent_hash:
            return None
        timestamp = max(_now_ms(), ledger.head_header.timestamp_ms)
        pooled = [p for p in pooled if not self.chain.is_committed(p.tx_hash)]
        verified = {p.tx_hash for p in pooled}
        if not pooled and not action.allow_empty:
            return None
        build = partial(self.chain.execute_proposal, timestamp_ms=timestamp, proposer_index=action.proposer_index, is_verified=verified.__contains__)
        try:
            return build([p.tx for p in pooled])
        except InvalidBlock as exc:
            if not action.allow_empty:
                raise
            log.warning("%s: block %d is proposed empty: %s", self.name, action.height, exc)
            return build([])

    async def _execute(self, action: ev.Execute, fetch_from: list[bytes]) -> None:
        """Execute a proposal and tell the core. Missing data (a transaction no peer gave us in
        time, a head that moved under us) is a retry, never a verdict on the block: the core
        asks again, paced here, and only roots that really differ count as a failure."""
        header = action.header
        verified = set(action.tx_hashes)  # every tx came through the pool's checks
        proposal, retry, reason, elapsed_ms = None, True, "", 0.0
        try:
            txs = await self._gather(action.tx_hashes, fetch_from)

            def check() -> Proposal | None:
                if header.height != self.chain.height + 1:
                    return None  # sync moved the head meanwhile; the core hears of it next
                return self.chain.check_proposal(header, txs, is_verified=verified.__contains__)

            started_s = time.monotonic()
            proposal = await self._on_chain(check)
            if proposal is not None:
                retry, elapsed_ms = False, (time.monotonic() - started_s) * 1000
        except TxsMissing as exc:
            log.info("%s: block %d not executed yet: %s; trying again", self.name, header.height, exc)
        except InvalidBlock as exc:
            log.warning("%s: proposal for block %d not signed: %s", self.name, header.height, exc)
            retry, reason = False, str(exc)
        if retry:
            await trio.sleep(TXFETCH_RETRY_MS / 1000)
        await self._calls_send.send(partial(self.glue.executed, action, proposal, retry=retry, reason=reason, elapsed_ms=elapsed_ms))

    async def _gather(self, tx_hashes: list[bytes], fetch_from: list[bytes]) -> list[Transaction]:
        """The proposal's transactions, from our pool or else fetched from peers (in the
        glue's order: the proposer first) and admitted through the pool, so each is checked
        and verified like any other. A few rounds: a proposer that died right after
        proposing does not leave us unable to execute."""
        for attempt in range(TXFETCH_ROUNDS):
            missing = [h for h in tx_hashes if self.pool.get(h) is None]
            if not missing:
                break
            connected = set(self.network.connected_peers())
            peers = [p for p in map(self._peer_of, fetch_from) if p is not None and p in connected]
            for peer in peers:
                raws = await self._fetch_txs(peer, missing)
                if raws:
                    await self.pool.submit_many(raws)
                    missing = [h for h in missing if self.pool.get(h) is None]
                    if not missing:
                        break
            if missing and attempt + 1 < TXFETCH_ROUNDS:
                await trio.sleep(TXFETCH_RETRY_MS / 1000)
        txs = []
        for h in tx_hashes:
            pooled = self.pool.get(h)
            if pooled is None:
                raise TxsMissing(f"transaction {h.hex()[:16]} of the proposal could not be fetched or is invalid")
            txs.append(pooled.tx)
        return txs

    async def _fetch_txs(self, peer: int, hashes: list[bytes]) -> list[bytes]:
        """Ask one peer for transactions by hash; what it has (empty on any failure)."""
        try:
            raw = await self.network.request(peer, TXFETCH_PROTOCOL, pack([1, hashes]))
            f = expect_list(unpack(raw, max_bytes=TXFETCH_RESPONSE_BYTES_MAX), "txfetch response", length=2)
            expect_version(f, "txfetch response", 1)
            raws = [expect_bytes(r, "txfetch tx", max_length=self.pool.limits.tx_bytes_max) for r in expect_list(f[1], "txfetch txs", length=len(hashes))]
        except (NetworkError, DecodeError) as exc:
            log.info("%s: fetching %d transactions from peer %d failed: %s", self.name, len(hashes), peer, exc)
            return []
        return [r for r in raws if r]

    async def _serve_txfetch(self, peer: int, request: bytes) -> bytes:
        f = expect_list(unpack(request, max_bytes=TXFETCH_HASHES_MAX * 40 + 64), "txfetch request", length=2)
        expect_version(f, "txfetch request", 1)
        out = []
        for h in expect_list(f[1], "txfetch hashes", max_length=TXFETCH_HASHES_MAX):
            pooled = self.pool.get(h) if type(h) is bytes else None
            if pooled is not None:
                out.append(pooled.raw)
            else:
                found = self.chain.ledger.get_transaction(h) if type(h) is bytes and len(h) == 32 else None
                out.append(found[0].encode() if found else b"")
        return pack([1, out])


def build_replica(chain: Chain, priv: bytes, pub: bytes, safety_path: Path) -> Replica:
    """The PBFT core at the chain's head: its persisted safety state, the last blocks (to
    answer lagging peers), the sealers of the next block and the config in force."""
    ledger = chain.ledger
    persisted = safety_path.read_bytes() if safety_path.exists() else None
    recent = []
    for height in range(max(1, ledger.head_height - RECENT_BLOCKS_FOR_REPLICA + 1), ledger.head_height + 1):
        block = (ledger.get_header(height), ledger.get_block_tx_hashes(height), ledger.get_certificate(height))
        if None not in block:  # a node started from a snapshot has no blocks before it, nor its block's body
            recent.append(block)
    state = ledger.state
    timeout_ms = read_config(state, "consensus_timeout_ms")
    cfg = ReplicaConfig(
        timeout_base_ms=timeout_ms,
        timeout_max_ms=max(TIMEOUT_MAX_MS_MIN, timeout_ms),
        leader_period=read_config(state, "leader_period"),
        block_tx_count_max=read_config(state, "tx_count_limit"),
    )
    sealers = [n for n in nodes_at(state, ledger.head_height + 1) if n.role == "sealer"]
    return Replica(
        cfg, chain.suite, priv, pub, [n.consensus_pub for n in sealers], ledger.head_height, ledger.head_hash,
        persisted, recent, weights=[n.weight for n in sealers],
    )

"""The node: the composition root that wires ledger, executor, pool, network, PBFT, sync
and RPC into one trio nursery tree (DESIGN.md rule 6).

Who does what:
- the consensus loop feeds the sans-IO PBFT core one event at a time and performs its
  actions in order (sends, timers, building and checking proposals, persisting votes,
  committing);
- chain work (executing, committing, applying synced blocks, read-only queries) runs on a
  worker thread, one piece at a time (`_chain_limiter`), so the event loop keeps serving
  the network and RPC while a block executes;
- frames on the per-peer consensus stream carry a one-byte channel tag: PBFT messages, or
  head announcements that drive sync;
- transactions accepted over RPC are gossiped in batches every `TX_GOSSIP_INTERVAL_MS`;
  gossip is best effort, so a replica fetches any transaction a proposal lists but it lacks
  from the proposer (`/chainnode/txfetch/1`).
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import trio

from chainnode.security.admission import Admission, AdmissionError
from chainnode.execution.chain import Chain, Proposal
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_version, pack, unpack
from chainnode.node.config import NodeConfig
from chainnode.store.files import write_atomic
from chainnode.crypto import get_suite
from chainnode.execution.executor import Executor, InvalidBlock, refusal
from chainnode.system.genesis import Genesis
from chainnode.system.governance import CRL_KEY, read_revoked_serials
from chainnode.security.keyfile import KeyPair
from chainnode.rpc.metrics import NodeMetrics
from chainnode.network import Network, NetworkError, NetworkLimits, PeerInfo
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.node.init import InitError, open_chain_ledger
from chainnode.txpool.regossip import BATCH_HEADER_BYTES_MAX, BATCH_ITEM_OVERHEAD_BYTES, Regossip
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.rpc.headview import CallLimits
from chainnode.rpc.server import RpcApp, ServerLimits, serve_rpc
from chainnode.rpc.subscriptions import SubscriptionHub, SubscriptionLimits
from chainnode.blocksync.syncer import SYNC_PROTOCOL, BlockSyncer, FetchFailed, serve_request
from chainnode.system.state import NodeEntry, latest_nodes, nodes_at, read_addrs, read_config, read_pending_nodes
from chainnode.txpool.journal import TxJournal
from chainnode.txpool.pool import COMMITTED, PoolLimits, TxPool
from chainnode.protocol.types import Transaction
from consensus import events as ev
from consensus.messages import decode_message
from consensus.replica import Replica, ReplicaConfig
from contracts.engine import Engine

log = logging.getLogger("chainnode.node")

CHANNEL_PBFT = b"\x01"
CHANNEL_STATUS = b"\x02"
TXFETCH_PROTOCOL = "/chainnode/txfetch/1"
TX_GOSSIP_INTERVAL_MS = 50
TX_GOSSIP_BATCH_BYTES_MAX = 256 * 1024
GOSSIP_QUEUE_TXS_MAX = 100_000  # beyond this, the oldest unsent are dropped: peers fetch them on demand
STATUS_INTERVAL_MS = 1_000
SYNC_GRACE_MS = 500
EVENT_QUEUE_MAX = 10_000
TXFETCH_HASHES_MAX = 10_000
TXFETCH_ROUNDS = 3
TXFETCH_RETRY_MS = 300
RECENT_BLOCKS_FOR_REPLICA = 128
# Pending transactions older than REGOSSIP_AFTER_MS are gossiped again (chainnode/txpool/regossip.py),
# one batch per REGOSSIP_INTERVAL_MS at most, each at doubling intervals up to the max.
REGOSSIP_INTERVAL_MS = 1_000
REGOSSIP_AFTER_MS = 2_000
REGOSSIP_INTERVAL_MAX_MS = 60_000
SAFETY_FILE = "consensus.state"
TXJOURNAL_FILE = "txpool.journal"


class NodeError(RuntimeError):
    """The node cannot start; the message says why and what to do."""


@dataclass
class PeerStatus:
    height: int
    head_hash: bytes
    seen_ms: float


def _now_ms() -> int:
    return int(time.time() * 1000)


class Node:
    def __init__(self, config: NodeConfig, genesis: Genesis, key: KeyPair) -> None:
        if not __debug__:  # -O strips asserts, and the node's invariants are asserts (DESIGN rule 7)
            raise NodeError("this Python runs with -O or PYTHONOPTIMIZE set, which strips the node's safety checks; "
                            "start the node without them")
        self.config = config
        self.name = config.name
        self.group_id = genesis.group_id
        self.genesis = genesis
        suite = get_suite(genesis.suite)
        self.suite = suite
        if key.suite != genesis.suite:
            raise NodeError(f"{config.key_file} is a {key.suite} key but the chain uses {genesis.suite}")
        try:
            ledger = open_chain_ledger(config.data_dir, genesis, create=False)
        except InitError as exc:
            raise NodeError(str(exc)) from None
        self.chain = Chain(ledger, Executor(suite, Engine(suite), genesis.chain_id, genesis.group_id))
        self.key = key
        limits = config.limits
        self.pool = TxPool(
            suite,
            genesis.chain_id,
            genesis.group_id,
            head_height=lambda: self.chain.height,
            is_committed=self.chain.is_committed,
            limits=PoolLimits(
                tx_bytes_max=limits.tx_bytes_max,
                pool_txs_max=limits.pool_txs_max,
                pool_bytes_max=limits.pool_bytes_max,
                sender_share_pct=limits.sender_share_pct,
                block_limit_window=read_config(ledger.state, "block_limit_window"),
            ),
            policy=lambda sender, to, method: refusal(self.chain.ledger.state, sender, to, method),
            # What sendTransaction acknowledged, fsynced before the answer; re-admitted in run().
            journal=TxJournal(config.data_dir / TXJOURNAL_FILE, bytes_max=limits.txjournal_bytes_max),
        )
        self.receipt_wait_ms_max = limits.rpc_receipt_wait_ms_max
        self._addrs = {n.entry.peer_id: n.addrs for n in genesis.nodes}
        seed = host_seed_from_consensus_key(suite, key.private_key)
        self.peer_id = peer_id_from_seed(seed)
        # The network's admitted list: the nodes that govern the next block, then those that
        # pending membership changes add (they may connect and sync before they count).
        # Network peer index i is entry i here.
        self._nodes = self._admitted_nodes()
        me = next((n for n in latest_nodes(ledger.state) if n.consensus_pub == key.public_key), None)
        if me is None:
            # A node the consortium is adding starts from the genesis state, where it is not a
            # member yet: it follows the chain once the others admit it.
            log.warning("%s: this node's key (%s) is not a member at height %d; it will only follow the chain "
                        "if the consortium adds it (chainnode gov propose add_observer ...)", config.name, config.key_file, ledger.head_height)
        elif me.peer_id != self.peer_id:
            raise NodeError(f"this node's key derives peer id {self.peer_id}, but the chain lists {me.peer_id} for it; check the genesis file")
        # Certificates (when the genesis names a CA): ours for the handshake, and the check of
        # every peer's against the CA and the on-chain revocation list (refreshed per block).
        self._crl = ledger.state.get(CRL_KEY)
        self._revoked = read_revoked_serials(ledger.state)
        try:
            self.admission = Admission.load(config, genesis, key.public_key, self.peer_id, revoked_serials=lambda: self._revoked)
        except AdmissionError as exc:
            raise NodeError(str(exc)) from None
        self.network = Network(
            host_key_seed=seed,
            listen_addr=config.p2p_listen,
            peers=self._peer_infos(self._nodes),
            consensus_priv=key.private_key,
            consensus_pub=key.public_key,
            suite=suite,
            genesis_hash=ledger.genesis_hash,
            **self.admission.network_kwargs(),
            limits=NetworkLimits(
                frame_bytes_max=limits.peer_frame_bytes_max,
                messages_per_s_max=limits.peer_messages_per_s_max,
                messages_burst_max=2 * limits.peer_messages_per_s_max,
            ),
        )
        self.syncer = BlockSyncer(self.chain, self._fetch_blocks, blocks_per_request=limits.sync_blocks_per_request_max, apply=self._apply_synced)
        self.peers: dict[int, PeerStatus] = {}
        self._chain_limiter = trio.CapacityLimiter(1)
        self._proposals: dict[bytes, Proposal] = {}  # header hash -> executed proposal
        self._timers: dict[Any, trio.CancelScope] = {}
        self._gossip_out: deque[bytes] = deque(maxlen=GOSSIP_QUEUE_TXS_MAX)
        self._events_send, self._events_recv = trio.open_memory_channel(EVENT_QUEUE_MAX)
        self.replica: Replica | None = None
        self._told: set[tuple[int, tuple[bytes, ...], tuple[int, ...]]] = set()  # SealersChanged already given to the core
        self.committed_blocks = 0
        self.regossip = Regossip(after_s=REGOSSIP_AFTER_MS / 1000, interval_max_s=REGOSSIP_INTERVAL_MAX_MS / 1000, batch_bytes_max=TX_GOSSIP_BATCH_BYTES_MAX)
        self._execution_ms = 0.0  # moving average of executing a proposal here
        # Called with each newly committed height, on the event loop, after the block is
        # durable (RPC subscriptions, metrics). A listener must not block.
        self.commit_listeners: list[Callable[[int], None]] = []
        self.dispatcher = Dispatcher(batch_max=limits.rpc_batch_max)
        ChainRpc(self, CallLimits.from_config(limits)).register(self.dispatcher)
        self.metrics = NodeMetrics(self)
        self.subscriptions = SubscriptionHub(ledger, suite, genesis.group_id, SubscriptionLimits.from_config(limits), node_name=config.name)
        self.commit_listeners.append(self.subscriptions.on_commit)
        self.rpc_app = RpcApp(
            self.dispatcher,
            hub=self.subscriptions,
            limits=ServerLimits.from_config(limits),
            health=self._health,
            extra_routes={"/metrics": self.metrics.route},
        )
        self._nursery: trio.Nursery | None = None

    # ---- membership -----------------------------------------------------------------------

    def _admitted_nodes(self) -> list[NodeEntry]:
        state = self.chain.ledger.state
        nodes = list(nodes_at(state, self.chain.height + 1))
        pubs = {n.consensus_pub for n in nodes}
        for _, pending in read_pending_nodes(state):
            for n in pending:
                if n.consensus_pub not in pubs:
                    nodes.append(n)
                    pubs.add(n.consensus_pub)
        return nodes

    def _peer_infos(self, nodes: list[NodeEntry]) -> list[PeerInfo]:
        state = self.chain.ledger.state
        return [
            PeerInfo(index=i, peer_id=n.peer_id, addrs=self._addrs.get(n.peer_id) or read_addrs(state, n.peer_id),
                     consensus_pub=n.consensus_pub, role=n.role)
            for i, n in enumerate(nodes)
        ]

    def _sealer_pubs(self) -> list[bytes]:
        """The sealers of the next block."""
        return [n.consensus_pub for n in nodes_at(self.chain.ledger.state, self.chain.height + 1) if n.role == "sealer"]

    def _sealer_weights(self) -> list[int]:
        """Their PBFT weights, in the same order."""
        return [n.weight for n in nodes_at(self.chain.ledger.state, self.chain.height + 1) if n.role == "sealer"]

    def _peer_of(self, pub: bytes) -> int | None:
        for i, n in enumerate(self._nodes):
            if n.consensus_pub == pub:
                return i
        return None

    def _peer_of_sealer(self, sealer_index: int, height: int | None = None) -> int | None:
        """The network index of sealer `sealer_index` in the set of `height` (default: the
        replica's current height): indices shift when a sealer leaves."""
        r = self.replica
        sset = r.sealers_at(r.height if height is None else height)
        return self._peer_of(sset.pubs[sealer_index]) if 0 <= sealer_index < sset.n else None

    def _sender_index(self, peer: int, body: bytes) -> int | None:
        """The sealer index of a consensus message's sender, in the set of the message's height."""
        if not 0 <= peer < len(self._nodes):
            return None
        pub = self._nodes[peer].consensus_pub
        r = self.replica
        now, later = r.sealers_at(r.height).index_of(pub), r.sealers_at(r.height + 1).index_of(pub)
        if now == later:
            return now
        # Around a membership change: the index depends on the height the message is for.
        try:
            height = decode_message(body, max_bytes=len(body)).height
        except (DecodeError, AttributeError):
            return now if now is not None else later
        return r.sealers_at(height).index_of(pub)

    async def _membership_changed(self) -> None:
        """After a block: tell the network and the PBFT core about membership changes.

        A change made in block h governs blocks from h + 2 on (sysstate.py), so the core
        learns it (SealersChanged) before anyone may vote at that height, whichever way the
        block arrived (consensus or sync). A node the change adds is admitted at once."""
        nodes = self._admitted_nodes()
        if nodes != self._nodes:
            self._nodes = nodes
            self.network.set_admitted(self._peer_infos(nodes))
        await self._tell_pending()

    def _follow_config(self) -> None:
        """Apply system config changed by governance to the parts that keep a copy: the PBFT
        core's timeouts and block size and the pool's block_limit window. A change made in
        block h holds from block h + 1, and this runs before anything about h + 1 happens."""
        state = self.chain.ledger.state
        if self.replica is not None:
            cfg = self.replica.cfg
            timeout_ms = read_config(state, "consensus_timeout_ms")
            count_max = read_config(state, "tx_count_limit")
            if (cfg.timeout_base_ms, cfg.block_tx_count_max) != (timeout_ms, count_max):
                self.replica.cfg = replace(cfg, timeout_base_ms=timeout_ms, timeout_max_ms=max(cfg.timeout_max_ms, timeout_ms), block_tx_count_max=count_max)
        window = read_config(state, "block_limit_window")
        if self.pool.limits.block_limit_window != window:
            self.pool.limits = replace(self.pool.limits, block_limit_window=window)

    async def _tell_pending(self) -> None:
        if self.replica is None:
            return
        for from_height, nodes in read_pending_nodes(self.chain.ledger.state):
            pubs = [n.consensus_pub for n in nodes if n.role == "sealer"]
            weights = [n.weight for n in nodes if n.role == "sealer"]
            key = (from_height, tuple(pubs), tuple(weights))  # a weight change is a set change too
            if key not in self._told and from_height > self.replica.height:
                self._told.add(key)
                await self._events_send.send(ev.SealersChanged(from_height, pubs, weights))

    # ---- chain work on the worker thread ----------------------------------------------------

    async def on_chain(self, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args)` on the chain worker thread, after any chain work already queued."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._chain_limiter)

    async def _apply_synced(self, block, certificate) -> bool:
        if not await self.on_chain(self.chain.apply_certified, block, certificate):
            return False  # consensus committed it first
        await self._after_commit(block.header.height, [tx.hash(self.suite) for tx in block.transactions])
        if self.replica is not None:
            await self._events_send.send(ev.BlockCommitted(block.header.height, block.header.hash(self.suite)))
            await self._remind_pool_work()
        return True

    async def _after_commit(self, height: int, tx_hashes: list[bytes]) -> None:
        self.committed_blocks += 1
        self.metrics.committed([p.arrived_s for p in map(self.pool.get, tx_hashes) if p is not None])
        self.pool.remove(tx_hashes)
        self.pool.drop_expired(height)
        self._proposals = {h: p for h, p in self._proposals.items() if p.header.height > height}
        await self._membership_changed()
        self._follow_config()
        crl = self.chain.ledger.state.get(CRL_KEY)  # compared raw: decoded only when it changed
        if crl != self._crl:  # governance revoked a certificate: drop its holder now
            self._crl = crl
            self._revoked = read_revoked_serials(self.chain.ledger.state)
            self.network.recheck_credentials()
        log.info("%s: committed block %d (%d txs, pool %d)", self.name, height, len(tx_hashes), len(self.pool))
        self._announce_head()  # observers and laggards learn of it now, not at the next tick
        for listener in self.commit_listeners:
            listener(height)

    # ---- running ---------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        self.network.register_handler(SYNC_PROTOCOL, self._serve_sync)
        self.network.register_handler(TXFETCH_PROTOCOL, self._serve_txfetch)
        # Before RPC serves: what this node acknowledged before it stopped goes back into the
        # pool (through every check) and out to the peers again.
        self._gossip_out.extend(await self.pool.recover())
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.network.run)
            await nursery.start(serve_rpc, self.rpc_app, self.config.rpc_host, self.config.rpc_port)
            nursery.start_soon(self._pump_frames)
            nursery.start_soon(self._pump_gossip_in)
            nursery.start_soon(self._gossip_out_loop)
            nursery.start_soon(self._regossip_loop)
            nursery.start_soon(self._status_loop)
            # Every node runs a PBFT core: an observer's takes no part (it is not in the
            # sealer set) until governance promotes it, and then it votes from the height the
            # change governs.
            self.replica = self._build_replica()
            nursery.start_soon(self._consensus_loop)
            nursery.start_soon(self._pool_watch)
            # A sealer gives consensus a moment to commit what peers announce; an observer
            # only ever learns blocks through sync, so it fetches at once.
            nursery.start_soon(partial(self.syncer.run, grace_ms=SYNC_GRACE_MS if self.is_sealer else 0))
            log.info(
                "%s: started at height %d as %s; p2p %s, rpc http://%s:%d",
                self.name, self.chain.height, "sealer" if self.is_sealer else "observer",
                ", ".join(self.network.listen_addrs), self.config.rpc_host, self.config.rpc_port,
            )
            task_status.started()

    def _build_replica(self) -> Replica:
        ledger = self.chain.ledger
        safety_path = self.config.data_dir / SAFETY_FILE
        persisted = safety_path.read_bytes() if safety_path.exists() else None
        recent = []
        for height in range(max(1, ledger.head_height - RECENT_BLOCKS_FOR_REPLICA + 1), ledger.head_height + 1):
            recent.append((ledger.get_header(height), ledger.get_block_tx_hashes(height), ledger.get_certificate(height)))
        state = ledger.state
        cfg = ReplicaConfig(
            timeout_base_ms=read_config(state, "consensus_timeout_ms"),
            timeout_max_ms=max(30_000, read_config(state, "consensus_timeout_ms")),
            leader_period=read_config(state, "leader_period"),
            block_tx_count_max=read_config(state, "tx_count_limit"),
        )
        return Replica(cfg, self.suite, self.key.private_key, self.key.public_key, self._sealer_pubs(), ledger.head_height, ledger.head_hash, persisted, recent, weights=self._sealer_weights())

    @property
    def is_sealer(self) -> bool:
        """Whether this node is a sealer of the next block."""
        return self.key.public_key in self._sealer_pubs()

    async def _consensus_loop(self) -> None:
        await self._perform(self.replica.start())
        await self._tell_pending()  # changes made before a restart that are not in force yet
        await self._remind_pool_work()
        async for event in self._events_recv:
            await self._perform(self.replica.handle(event))

    async def _pool_watch(self) -> None:
        """Wake an idle leader when transactions arrive in an empty pool."""
        while True:
            await self.pool.wait_for_transactions()
            await self._events_send.send(ev.PoolNotEmpty())
            await self.pool.wait_until_empty()

    async def _perform(self, actions: list) -> None:
        for action in actions:
            t = type(action)
            if t is ev.Send:
                peer = self._peer_of_sealer(action.to_index)
                if peer is not None:
                    self.network.send(peer, CHANNEL_PBFT + action.data)
            elif t is ev.Broadcast:
                # To the sealers of this height and the next (they differ around a change).
                r = self.replica
                pubs = set(r.sealers_at(r.height).pubs) | set(r.sealers_at(r.height + 1).pubs)
                pubs.discard(self.key.public_key)
                for pub in pubs:
                    peer = self._peer_of(pub)
                    if peer is not None:
                        self.network.send(peer, CHANNEL_PBFT + action.data)
            elif t is ev.SetTimer:
                # The core's timeouts assume a block executes in no time; add what it takes here
                # (twice the recent average), so slow execution is not taken for a dead leader.
                self._nursery.start_soon(self._timer, action.timer_id, action.delay_ms + int(2 * self._execution_ms))
            elif t is ev.CancelTimer:
                scope = self._timers.pop(action.timer_id, None)
                if scope is not None:
                    scope.cancel()
            elif t is ev.BuildProposal:
                self._nursery.start_soon(self._build_proposal, action)
            elif t is ev.Execute:
                self._nursery.start_soon(self._execute, action)
            elif t is ev.Persist:
                await trio.to_thread.run_sync(write_atomic, self.config.data_dir / SAFETY_FILE, action.data)
            elif t is ev.Commit:
                await self._commit(action)
            elif t is ev.Misbehaviour:
                peer = self._peer_of_sealer(action.peer_index)
                log.warning("%s: sealer %d misbehaved: %s", self.name, action.peer_index, action.reason)
                if peer is not None:
                    self.network.report_misbehaviour(peer, action.reason)
            else:
                raise AssertionError(f"unknown consensus action {action!r}")

    async def _timer(self, timer_id: Any, delay_ms: int) -> None:
        with trio.CancelScope() as scope:
            self._timers[timer_id] = scope
            await trio.sleep(delay_ms / 1000)
            self._timers.pop(timer_id, None)
            await self._events_send.send(ev.TimerFired(timer_id))

    async def _build_proposal(self, action: ev.BuildProposal) -> None:
        ledger = self.chain.ledger
        parent = ledger.head_header
        interval_ms = read_config(ledger.state, "block_interval_min_ms")
        wait_ms = parent.timestamp_ms + interval_ms - _now_ms()
        if wait_ms > 0:
            await trio.sleep(wait_ms / 1000)
        header = None
        hashes: list[bytes] = []
        pooled = self.pool.take(read_config(ledger.state, "tx_count_limit"), action.height)
        if pooled or action.allow_empty:
            started_s = time.monotonic()
            try:
                proposal = await self.on_chain(self._build_on_chain, action, pooled)
            except InvalidBlock as exc:
                # A pooled transaction is no longer valid here: drop what the chain settled,
                # and the core tries again after its timeout.
                log.warning("%s: could not build block %d: %s", self.name, action.height, exc)
                self.pool.remove([p.tx_hash for p in pooled if self.chain.is_committed(p.tx_hash)])
                self.pool.drop_expired(self.chain.height)
                proposal = None
            if proposal is not None:
                self._note_execution_ms((time.monotonic() - started_s) * 1000)
                header, hashes = proposal.header, proposal.executed.tx_hashes
                self._proposals[header.hash(self.suite)] = proposal
        await self._events_send.send(ev.ProposalReady(action.height, action.view, header, hashes))

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

    async def _execute(self, action: ev.Execute) -> None:
        """Execute a proposal and tell the core. Missing data (a transaction no peer gave us in
        time, a head that moved under us) is a retry, never a verdict on the block: the core
        asks again, paced here, and only roots that really differ count as a failure."""
        header = action.header
        verified = set(action.tx_hashes)  # every tx came through the pool's checks
        done = ev.ExecutionDone(action.proposal_id, None, retry=True)
        try:
            txs = await self._gather(action.tx_hashes, header.proposer_index)

            def check() -> Proposal | None:
                if header.height != self.chain.height + 1:
                    return None  # sync moved the head meanwhile; the core hears of it next
                return self.chain.check_proposal(header, txs, is_verified=verified.__contains__)

            started_s = time.monotonic()
            proposal = await self.on_chain(check)
            if proposal is not None:
                self._note_execution_ms((time.monotonic() - started_s) * 1000)
                self._proposals[header.hash(self.suite)] = proposal
                done = ev.ExecutionDone(action.proposal_id, proposal.header)
        except FetchFailed as exc:
            log.info("%s: block %d not executed yet: %s; trying again", self.name, header.height, exc)
        except InvalidBlock as exc:
            log.warning("%s: proposal for block %d not signed: %s", self.name, header.height, exc)
            done = ev.ExecutionDone(action.proposal_id, None, reason=str(exc))
        if done.retry:
            await trio.sleep(TXFETCH_RETRY_MS / 1000)
        await self._events_send.send(done)

    def _note_execution_ms(self, elapsed_ms: float) -> None:
        """Track how long executing a block takes here (a moving average, for the timers)."""
        self._execution_ms += (elapsed_ms - self._execution_ms) / 8

    async def _gather(self, tx_hashes: list[bytes], proposer_sealer: int) -> list[Transaction]:
        """The proposal's transactions, from our pool or else fetched from peers and admitted
        through the pool (so each is checked and verified like any other).

        The proposer is asked first, then every other connected sealer, for a few rounds:
        a certified block's transactions are held by at least f + 1 honest sealers, so a
        proposer that died right after proposing does not leave us unable to execute.
        """
        proposer = self._peer_of_sealer(proposer_sealer, self.chain.height + 1)
        for attempt in range(TXFETCH_ROUNDS):
            missing = [h for h in tx_hashes if self.pool.get(h) is None]
            if not missing:
                break
            sealers = [self._peer_of(pub) for pub in self._sealer_pubs()]
            peers = [proposer] + [p for p in sealers if p is not None and p != proposer]
            for peer in [p for p in peers if p is not None and p in self.network.connected_peers()]:
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
                raise FetchFailed(f"transaction {h.hex()[:16]} of the proposal could not be fetched or is invalid")
            txs.append(pooled.tx)
        return txs

    async def _fetch_txs(self, peer: int, hashes: list[bytes]) -> list[bytes]:
        """Ask one peer for transactions by hash; what it has (empty on any failure)."""
        try:
            raw = await self.network.request(peer, TXFETCH_PROTOCOL, pack([1, hashes]))
            f = expect_list(unpack(raw, max_bytes=64 << 20), "txfetch response", length=2)
            expect_version(f, "txfetch response", 1)
            raws = [expect_bytes(r, "txfetch tx", max_length=self.pool.limits.tx_bytes_max) for r in expect_list(f[1], "txfetch txs", length=len(hashes))]
        except (NetworkError, DecodeError) as exc:
            log.info("%s: fetching %d transactions from peer %d failed: %s", self.name, len(hashes), peer, exc)
            return []
        return [r for r in raws if r]

    async def _commit(self, action: ev.Commit) -> None:
        header = action.header
        if header.height <= self.chain.height:
            return  # already committed through sync
        proposal = self._proposals.get(header.hash(self.suite))
        assert proposal is not None, f"PBFT committed block {header.height} that this node never executed"
        # Sync may commit the same block while this waits for the chain worker: the chain
        # decides, on the worker, which of the two wrote it.
        if await self.on_chain(self.chain.commit, proposal, action.certificate):
            await self._after_commit(header.height, list(action.tx_hashes))
        await self._remind_pool_work()

    async def _remind_pool_work(self) -> None:
        """Tell the core the pool has transactions, if it has: the core forgets that on
        entering a height (after a start, a commit or a synced block), and `_pool_watch` only
        speaks when the pool stops being empty, so without this a leader would not propose."""
        if len(self.pool):
            await self._events_send.send(ev.PoolNotEmpty())

    # ---- network pumps ------------------------------------------------------------------------

    async def _pump_frames(self) -> None:
        async for peer, frame in self.network.incoming:
            channel, body = frame[:1], frame[1:]
            if channel == CHANNEL_PBFT:
                sealer = self._sender_index(peer, body) if self.replica is not None else None
                if sealer is not None:
                    await self._events_send.send(ev.MessageReceived(sealer, body))
            elif channel == CHANNEL_STATUS:
                self._on_status(peer, body)
            else:
                self.network.report_misbehaviour(peer, f"unknown frame channel {channel.hex()}")

    def _on_status(self, peer: int, body: bytes) -> None:
        try:
            f = expect_list(unpack(body, max_bytes=128), "status", length=3)
            expect_version(f, "status", 1)
            height = expect_int(f[1], "status height")
            head_hash = expect_bytes(f[2], "status hash", length=32)
        except DecodeError as exc:
            self.network.report_misbehaviour(peer, f"bad status frame: {exc}")
            return
        self.peers[peer] = PeerStatus(height, head_hash, _now_ms())
        self.syncer.peer_head(peer, height)

    def _announce_head(self) -> None:
        ledger = self.chain.ledger
        self.network.broadcast(CHANNEL_STATUS + pack([1, ledger.head_height, ledger.head_hash]))

    async def _status_loop(self) -> None:
        while True:
            self._announce_head()
            await trio.sleep(STATUS_INTERVAL_MS / 1000)

    async def _pump_gossip_in(self) -> None:
        async for peer, batch in self.network.incoming_txs:
            try:
                f = expect_list(unpack(batch, max_bytes=TX_GOSSIP_BATCH_BYTES_MAX + BATCH_HEADER_BYTES_MAX), "tx batch", length=2)
                expect_version(f, "tx batch", 1)
                raws = expect_list(f[1], "tx batch txs", max_length=10_000)
            except DecodeError as exc:
                self.network.report_misbehaviour(peer, f"bad tx batch: {exc}")
                continue
            await self.pool.submit_many([r for r in raws if type(r) is bytes])

    async def submit_transaction(self, raw: bytes) -> tuple[bytes, str]:
        """Admit a client's transaction durably (raises `Rejected`) and queue it for gossip;
        returns (hash, status), the status as in `TxPool.submit_durably`. A resubmitted
        pending transaction is gossiped again: its first gossip may not have gone out."""
        tx_hash, status = await self.pool.submit_durably(raw)
        pooled = self.pool.get(tx_hash) if status != COMMITTED else None
        if pooled is not None:
            self._gossip_out.append(pooled.raw)
        return tx_hash, status

    async def _gossip_out_loop(self) -> None:
        while True:
            await trio.sleep(TX_GOSSIP_INTERVAL_MS / 1000)
            if not self.network.connected_peers():
                continue  # nobody to tell yet: keep them (bounded) until a peer connects
            while self._gossip_out:
                batch, size = [], 0
                while self._gossip_out and size + len(self._gossip_out[0]) + BATCH_ITEM_OVERHEAD_BYTES <= TX_GOSSIP_BATCH_BYTES_MAX:
                    raw = self._gossip_out.popleft()
                    batch.append(raw)
                    size += len(raw) + BATCH_ITEM_OVERHEAD_BYTES
                if not batch:  # a single transaction over the batch size: never gossiped, only fetched
                    self._gossip_out.popleft()
                    continue
                await self._publish_txs(batch)

    async def _regossip_loop(self) -> None:
        """Gossip again what has waited in the pool (chainnode/txpool/regossip.py says why)."""
        while True:
            await trio.sleep(REGOSSIP_INTERVAL_MS / 1000)
            if not self.network.connected_peers():
                continue
            now_s = time.monotonic()
            batch = self.regossip.pick(self.pool.pending(), now_s, lambda h: self.pool.get(h) is not None)
            if batch:
                await self._publish_txs(batch)

    async def _publish_txs(self, batch: list[bytes]) -> None:
        """Gossip one batch of raw transactions; best effort (a failure is only logged)."""
        try:
            await self.network.publish_txs(pack([1, batch]))
        except NetworkError as exc:
            log.debug("%s: tx gossip failed: %s", self.name, exc)

    async def _fetch_blocks(self, peer: int, request: bytes) -> bytes:
        try:
            return await self.network.request(peer, SYNC_PROTOCOL, request)
        except NetworkError as exc:
            raise FetchFailed(str(exc)) from None

    async def _serve_sync(self, peer: int, request: bytes) -> bytes:
        limits = self.config.limits
        response_max = self.network.limits.response_bytes_max - 1024
        return await trio.to_thread.run_sync(lambda: serve_request(self.chain.ledger, request, blocks_max=limits.sync_blocks_per_request_max, response_bytes_max=response_max))

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

    # ---- RPC support --------------------------------------------------------------------------

    def peer_summaries(self) -> list[dict]:
        connected = set(self.network.connected_peers())
        return [
            {"index": i, "nodeId": n.peer_id, "role": n.role, "connected": i in connected, "blockNumber": self.peers[i].height if i in self.peers else None}
            for i, n in enumerate(self._nodes)
            if n.consensus_pub != self.key.public_key
        ]

    def consensus_status(self) -> dict | None:
        """The PBFT core's view of things (None on an observer)."""
        if self.replica is None or not self.is_sealer:
            return None
        return {**self.replica.status(), "stats": dict(self.replica.stats)}

    async def _health(self) -> dict:
        return {
            "status": "ok",
            "node": self.name,
            "blockNumber": self.chain.height,
            "peersConnected": len(self.network.connected_peers()),
            "pendingTxs": len(self.pool),
            "role": "sealer" if self.is_sealer else "observer",
        }

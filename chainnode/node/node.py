"""The node: the composition root that wires ledger, executor, pool, network, PBFT, sync
and RPC into one trio nursery tree (DESIGN.md rule 6).

The pieces and who runs what:
- `chainnode.pbft.driver.PbftDriver` feeds the sans-IO PBFT core and performs its actions;
- `chainnode.txpool.gossip.TxGossipReactor` gossips transactions in and out;
- `chainnode.blocksync.reactor.BlockSyncReactor` announces heads and syncs blocks;
- chain work (executing, committing, applying synced blocks, read-only queries) runs on one
  worker thread, one piece at a time (`on_chain`), so the event loop keeps serving the
  network and RPC while a block executes;
- frames on the per-peer consensus stream carry a one-byte channel tag, demultiplexed here
  (`_route_frames`): PBFT messages to the driver, head announcements to block sync;
- after every block, whichever way it arrived, `_committed` tells the rest of the node.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from functools import partial
from typing import Any, Callable

import trio

from chainnode.blocksync.reactor import CHANNEL_STATUS, BlockSyncReactor
from chainnode.blocksync.recent import fetch_recent_bodies, recent_bodies_from
from chainnode.blocksync.snapshot import SNAPSHOT_PROTOCOL, SnapshotError, SnapshotServer, SnapshotSyncer
from chainnode.blocksync.syncer import FetchFailed
from chainnode.crypto import get_suite
from chainnode.execution.chain import Chain
from chainnode.execution.executor import Executor, refusal
from chainnode.network import Network, NetworkError, NetworkLimits, PeerInfo
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.network.reachability import Reachability
from chainnode.node import memory
from chainnode.node.admin import AdminServer
from chainnode.node.config import NodeConfig, is_loopback
from chainnode.node.init import InitError, open_chain_ledger
from chainnode.pbft.driver import CHANNEL_PBFT, PbftDriver
from chainnode.protocol.dialaddr import ADDRS_MAX, DialAddrError, parse_dial_addr
from chainnode.protocol.versions import SOFTWARE_VERSION, SOFTWARE_VERSION_NUMBER, format_version
from chainnode.rpc.channel import ChannelLimits, ChannelServer, Credentials, serve_channel
from chainnode.rpc.headview import CallLimits
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.rpc.metrics import NodeMetrics
from chainnode.rpc.server import PortInUse, RpcApp, ServerLimits, TlsConfigError, check_port_free, serve_rpc, tls_context
from chainnode.rpc.subscriptions import SubscriptionHub, SubscriptionLimits
from chainnode.security.admission import Admission, AdmissionError
from chainnode.security.keyfile import KeyPair
from chainnode.system.genesis import Genesis
from chainnode.system.governance import read_revoked
from chainnode.system.state import CRL_KEY, NodeEntry, latest_nodes, nodes_at, read_addrs, read_config, read_pending_nodes
from chainnode.txpool.gossip import TxGossipReactor
from chainnode.txpool.journal import TxJournal
from chainnode.txpool.pool import PoolLimits, TxPool
from contracts.engine import Engine

log = logging.getLogger("chainnode.node")

# A sealer gives consensus a moment to commit what peers announce before syncing it.
SYNC_GRACE_MS = 500
# How long a node started with --sync snapshot waits for a peer to offer one.
SNAPSHOT_WAIT_S = 60
TXJOURNAL_FILE = "txpool.journal"


class NodeError(RuntimeError):
    """The node cannot start; the message says why and what to do."""


REACHABILITY_INTERVAL_S = 60.0  # how often a node checks it answers at its advertised addresses


def _too_old(compatibility_version: int, height: int) -> str:
    """Why this software cannot run the chain at `height`, or "" if it can."""
    if compatibility_version <= SOFTWARE_VERSION_NUMBER:
        return ""
    wanted = format_version(compatibility_version)
    return (f"the chain runs the rules of chainnode {wanted} from block {height + 1} (compatibility_version, raised by a committee vote), "
            f"but this is chainnode {SOFTWARE_VERSION}: install chainnode {wanted} or newer and start the node again; its data is kept "
            "(docs/operations.md, \"Rolling upgrades\")")


class Node:
    def __init__(self, config: NodeConfig, genesis: Genesis, key: KeyPair, *, sync: str = "full") -> None:
        """`sync`: "snapshot" starts a new node from the state at a peer's certified head
        (chainnode/blocksync/snapshot.py), "full" replays every block from genesis."""
        if not __debug__:  # -O strips asserts, and the node's invariants are asserts (DESIGN rule 7)
            raise NodeError("this Python runs with -O or PYTHONOPTIMIZE set, which strips the node's safety checks; "
                            "start the node without them")
        memory.map_large_allocations()  # before LevelDB and the worker threads allocate
        self.config = config
        self.name = config.name
        self.group_id = genesis.group_id
        self.genesis = genesis
        suite = get_suite(genesis.suite)
        self.suite = suite
        if key.suite != genesis.suite:
            raise NodeError(f"{config.key_file} is a {key.suite} key but the chain uses {genesis.suite}")
        try:
            ledger = open_chain_ledger(config.data_dir, genesis, create=False, state_history_blocks=config.state_history_blocks,
                                       block_history_blocks=config.block_history_blocks)
        except InitError as exc:
            raise NodeError(str(exc)) from None
        too_old = _too_old(read_config(ledger.state, "compatibility_version"), ledger.head_height)
        pending = ledger.snapshot_pending
        if pending is not None and sync != "snapshot":
            too_old = too_old or (f"{config.data_dir} holds a snapshot sync of block {pending} that has not finished: start with "
                                  "--sync snapshot to finish it, or empty the data directory (chainnode init) to replay from genesis")
        if too_old:
            ledger.close()
            raise NodeError(too_old)
        self.sync_mode = sync
        self.chain = Chain(ledger, Executor(suite, Engine(suite), genesis.chain_id, genesis.group_id))
        self._too_old = trio.Event()  # set when a committed block raised compatibility_version past ours
        self._too_old_message = ""
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
        self._revoked = read_revoked(ledger.state)
        try:
            self.admission = Admission.load(config, genesis, key.public_key, self.peer_id, revoked=lambda: self._revoked)
        except AdmissionError as exc:
            raise NodeError(str(exc)) from None
        self._dial_book = self._address_book(self._nodes)
        # What the others dial this node at: node.toml's advertise, else the chain's addresses.
        listed = self._dial_addrs(self.peer_id)
        self.reachability = Reachability(list(config.p2p_advertise) or listed, config.name)
        if config.p2p_advertise and me is not None and set(config.p2p_advertise) - set(listed):
            log.warning("%s: node.toml advertises %s, but the chain has the other nodes dial this one at %s; propose the new addresses "
                        "with `chainnode gov propose set-addrs --cert %s --addr ...`", config.name, ", ".join(config.p2p_advertise),
                        ", ".join(listed) or "(no address)", config.cert_file or "NODE.pem")
        self.network = Network(
            host_key_seed=seed,
            listen_addr=config.p2p_listen,
            peers=self._peer_infos(self._nodes, self._dial_book),
            consensus_priv=key.private_key,
            consensus_pub=key.public_key,
            suite=suite,
            genesis_hash=ledger.genesis_hash,
            **self.admission.network_kwargs(),
            p2p_noise25519=genesis.p2p_noise25519,
            limits=NetworkLimits(
                frame_bytes_max=limits.peer_frame_bytes_max,
                messages_per_s_max=limits.peer_messages_per_s_max,
                messages_burst_max=2 * limits.peer_messages_per_s_max,
            ),
        )
        self._chain_limiter = trio.CapacityLimiter(1)
        self.committed_blocks = 0
        # Called with each newly committed height, on the event loop, after the block is
        # durable (RPC subscriptions, metrics). A listener must not block.
        self.commit_listeners: list[Callable[[int], None]] = []
        self.gossip = TxGossipReactor(self.pool, self.network, name=config.name)
        self.pbft = PbftDriver(
            name=config.name,
            chain=self.chain,
            pool=self.pool,
            network=self.network,
            priv=key.private_key,
            pub=key.public_key,
            data_dir=config.data_dir,
            on_chain=self.on_chain,
            peer_of=self._peer_of,
            committed=self._committed,
        )
        self.blocksync = BlockSyncReactor(self.chain, self.network, apply=self.pbft.apply_synced, blocks_per_request=limits.sync_blocks_per_request_max)
        self.syncer = self.blocksync.syncer
        self.snapshots = SnapshotServer(ledger, response_bytes_max=self.network.limits.response_bytes_max - 1024)
        self.snapshot_sync: SnapshotSyncer | None = None  # while this node syncs a snapshot
        self.network.register_handler(SNAPSHOT_PROTOCOL, self._serve_snapshot)
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
        # Online backups: the node writes them itself, since it holds the LevelDB (admin.py).
        self.admin = AdminServer(ledger, chain_id=genesis.chain_id, data_dir=config.data_dir, name=config.name)
        self.rpc_tls = None
        if config.rpc_tls_cert is not None:
            try:
                self.rpc_tls = tls_context(config.rpc_tls_cert, config.rpc_tls_key)
            except TlsConfigError as exc:
                raise NodeError(str(exc)) from None
        # The channel port for dApps: only where clients can prove a certificate of the
        # consortium, i.e. the genesis has a CA (elsewhere dApps use the loopback HTTP port).
        self.channel: ChannelServer | None = None
        if self.admission.required:
            try:
                check_port_free(config.channel_host, config.channel_port, "[channel] listen")
            except PortInUse as exc:
                raise NodeError(str(exc)) from None
            credentials = Credentials(
                genesis.suite, key.private_key, ledger.genesis_hash, self.admission.credentials, self.admission.roots,
                self.admission.revoked, self.admission.now_ms,
            )
            self.channel = ChannelServer(self.rpc_app, credentials, ChannelLimits.from_config(limits))
            self.commit_listeners.append(self.channel.on_commit)  # revoked or expired certificates: their sessions end

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

    def _dial_addrs(self, peer_id: str) -> list[str]:
        """Where to dial a node: this node's own [network] bootstrap entries for it first,
        then its addresses on chain (the latest vote: add-sealer, set-addrs), else the genesis
        file's. Malformed ones (a vote runs no multiaddr parser) are left out."""
        state = self.chain.ledger.state
        addrs = [a for pid, a in self.config.p2p_bootstrap if pid == peer_id]
        for a in read_addrs(state, peer_id) or self._addrs.get(peer_id, []):
            try:
                canonical = parse_dial_addr(a)
            except DialAddrError:
                continue
            if canonical not in addrs:
                addrs.append(canonical)
        return addrs[:ADDRS_MAX]

    def _address_book(self, nodes: list[NodeEntry]) -> list[list[str]]:
        return [self._dial_addrs(n.peer_id) for n in nodes]

    @staticmethod
    def _peer_infos(nodes: list[NodeEntry], book: list[list[str]]) -> list[PeerInfo]:
        return [PeerInfo(index=i, peer_id=n.peer_id, addrs=addrs, consensus_pub=n.consensus_pub, role=n.role)
                for i, (n, addrs) in enumerate(zip(nodes, book))]

    def advertised_status(self) -> list[dict]:
        return self.reachability.status()

    def _peer_of(self, pub: bytes) -> int | None:
        """The network peer index of the node with consensus key `pub`."""
        for i, n in enumerate(self._nodes):
            if n.consensus_pub == pub:
                return i
        return None

    def _pub_of(self, peer: int) -> bytes | None:
        """The consensus key the network authenticated peer `peer` with."""
        return self._nodes[peer].consensus_pub if 0 <= peer < len(self._nodes) else None

    def _sealer_pubs(self) -> list[bytes]:
        """The sealers of the next block."""
        return [n.consensus_pub for n in nodes_at(self.chain.ledger.state, self.chain.height + 1) if n.role == "sealer"]

    @property
    def is_sealer(self) -> bool:
        """Whether this node is a sealer of the next block."""
        return self.key.public_key in self._sealer_pubs()

    # ---- after every block ------------------------------------------------------------------

    def _committed(self, height: int, tx_hashes: list[bytes]) -> None:
        """A block is durable (consensus or sync): tell the pool, the network (membership,
        revocations), block sync (our new head), RPC subscribers and metrics. Governance
        changes made in block h hold from h + 1, and this runs before anything about h + 1."""
        self.committed_blocks += 1
        self.metrics.committed([p.arrived_s for p in map(self.pool.get, tx_hashes) if p is not None])
        self.pool.remove(tx_hashes)
        self.pool.drop_expired(height)
        state = self.chain.ledger.state
        nodes = self._admitted_nodes()
        book = self._address_book(nodes)
        # A node the change adds is admitted at once; a moved one is redialled. The peer
        # table (which parses every address) is rebuilt only then, not at every block.
        if nodes != self._nodes or book != self._dial_book:
            self._nodes, self._dial_book = nodes, book
            self.network.set_admitted(self._peer_infos(nodes, book))
        window = read_config(state, "block_limit_window")
        if self.pool.limits.block_limit_window != window:
            self.pool.limits = replace(self.pool.limits, block_limit_window=window)
        if not self._too_old.is_set():
            self._too_old_message = _too_old(read_config(state, "compatibility_version"), height)
            if self._too_old_message:  # the rules of h + 1 are not ours: stop before running them
                log.error("%s: %s", self.name, self._too_old_message)
                self._too_old.set()
        crl = state.get(CRL_KEY)  # compared raw: decoded only when it changed
        if crl != self._crl:  # governance revoked a certificate: drop its holder now
            self._crl = crl
            self._revoked = read_revoked(state)
            self.network.recheck_credentials()
        log.info("%s: committed block %d (%d txs, pool %d)", self.name, height, len(tx_hashes), len(self.pool))
        self.blocksync.announce_head()  # observers and laggards learn of it now, not at the next tick
        for listener in self.commit_listeners:
            listener(height)

    # ---- running ---------------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        # Before RPC serves: what this node acknowledged before it stopped goes back into the
        # pool (through every check) and out to the peers again.
        self.gossip.queue(await self.pool.recover())
        async with trio.open_nursery() as nursery:
            await nursery.start(self.network.run)
            await nursery.start(partial(serve_rpc, tls=self.rpc_tls), self.rpc_app, self.config.rpc_host, self.config.rpc_port)
            await nursery.start(self.admin.run)
            if not is_loopback(self.config.rpc_host):  # node.toml opted out with [rpc] allow_remote = true
                log.warning("%s: the HTTP RPC port listens on %s:%d, beyond this machine (allow_remote = true): anyone who reaches it "
                            "may use it (no client authentication)%s; serve dApps on the channel port and keep this one on 127.0.0.1",
                            self.name, self.config.rpc_host, self.config.rpc_port, "" if self.rpc_tls else ", and its traffic is plain text")
            if self.channel is not None:
                await nursery.start(serve_channel, self.channel, self.config.channel_host, self.config.channel_port)
            else:
                log.info("%s: no channel port: the genesis has no CA, so dApps have no certificates to prove; they use the RPC port", self.name)
            await nursery.start(self.gossip.run)
            nursery.start_soon(self._route_frames)
            if self.sync_mode == "snapshot" and (self.chain.ledger.snapshot_pending is not None or self.chain.height == 0):
                nursery.start_soon(self._snapshot_then_follow, nursery)
            elif self.chain.ledger.recent_bodies_pending:  # killed after installing a snapshot, before this
                nursery.start_soon(self._recent_bodies_then_follow, nursery)
            else:
                await self._follow(nursery)
            nursery.start_soon(self._stop_if_too_old)
            nursery.start_soon(memory.trim_periodically)
            await nursery.start(self.reachability.run, REACHABILITY_INTERVAL_S)
            log.info(
                "%s: started at height %d as %s; p2p %s, rpc %s://%s:%d%s",
                self.name, self.chain.height, "sealer" if self.is_sealer else "observer",
                ", ".join(self.network.listen_addrs), "https" if self.rpc_tls else "http", self.config.rpc_host, self.config.rpc_port,
                f", channel {self.config.channel_host}:{self.config.channel_port}" if self.channel is not None else "",
            )
            task_status.started()

    async def _follow(self, nursery: trio.Nursery) -> None:
        # Every node runs a PBFT core: an observer's takes no part (it is not in the
        # sealer set) until governance promotes it, and then it votes from the height the
        # change governs.
        await nursery.start(self.pbft.run)
        # A sealer gives consensus a moment to commit what peers announce; an observer
        # only ever learns blocks through sync, so it fetches at once.
        await nursery.start(partial(self.blocksync.run, grace_ms=SYNC_GRACE_MS if self.is_sealer else 0))

    async def _snapshot_then_follow(self, nursery: trio.Nursery) -> None:
        """Install the state at the best certified head peers offer, then follow blocks from
        there. If no peer offers one in time and none was begun, replay blocks instead."""
        ledger = self.chain.ledger
        self.snapshot_sync = SnapshotSyncer(ledger, self._fetch_snapshot, nodes_per_request=self.config.limits.snapshot_nodes_per_request_max,
                                            penalise=self.network.report_misbehaviour)
        while True:
            ahead = lambda: sorted(p for p, status in self.blocksync.peers.items() if status.height > self.chain.height)  # noqa: E731
            try:
                # The tree comes from the sealers it knows of (they keep the chain); it does
                # not wait for every admitted node, some of which may never be up.
                sealers = sum(1 for pub in self._sealer_pubs() if pub != self.key.public_key)
                manifest = await self.snapshot_sync.run(ahead, wait_for_peers_s=SNAPSHOT_WAIT_S, peers_wanted=max(1, sealers))
            except SnapshotError as exc:
                log.warning("%s: snapshot sync: %s; trying again", self.name, exc)
                await trio.sleep(1)
                continue
            if manifest is not None or ledger.snapshot_pending is None:
                break
            log.warning("%s: no peer offers the snapshot this node began (block %d); waiting for one", self.name, ledger.snapshot_pending)
        if manifest is None:
            log.warning("%s: no peer offered a snapshot within %d s: replaying blocks from genesis instead", self.name, SNAPSHOT_WAIT_S)
        else:
            self.pbft.reopen()
            self._committed(manifest.height, [])
        self.snapshot_sync = None
        if ledger.recent_bodies_pending:
            await self._recent_bodies_then_follow(nursery)
        else:
            await self._follow(nursery)

    async def _recent_bodies_then_follow(self, nursery: trio.Nursery) -> None:
        """After a snapshot: fetch the transactions replays could repeat (blocksync/recent.py)
        before taking part, then follow blocks."""
        ledger = self.chain.ledger
        snapshot_height = ledger.head_height
        peers = lambda: sorted(p for p, status in self.blocksync.peers.items() if status.height >= snapshot_height)  # noqa: E731
        log.info("%s: fetching the transactions of blocks %d-%d, to refuse replays of them", self.name, recent_bodies_from(ledger), snapshot_height)
        stored = await fetch_recent_bodies(ledger, self.blocksync.syncer.fetch, peers, penalise=self.network.report_misbehaviour)
        log.info("%s: replay protection: %d blocks before the snapshot stored", self.name, stored)
        await self._follow(nursery)

    def snapshot_status(self) -> dict | None:
        """A snapshot sync under way (getSyncStatus), or None."""
        s = self.snapshot_sync
        if s is None:
            return None
        return {"height": s.height, "nodesFetched": s.nodes_fetched, "nodesPresent": s.nodes_present, "badAnswers": s.bad_answers}

    async def _fetch_snapshot(self, peer: int, request: bytes) -> bytes:
        try:
            return await self.network.request(peer, SNAPSHOT_PROTOCOL, request)
        except NetworkError as exc:
            raise FetchFailed(str(exc)) from None

    async def _serve_snapshot(self, peer: int, request: bytes) -> bytes:
        return await trio.to_thread.run_sync(self.snapshots.serve, request)

    async def _stop_if_too_old(self) -> None:
        await self._too_old.wait()
        raise NodeError(self._too_old_message)

    async def _route_frames(self) -> None:
        """The one demultiplexer of the per-peer consensus stream: its channel byte says
        whose frame it is."""
        async for peer, frame in self.network.incoming:
            channel, body = frame[:1], frame[1:]
            if channel == CHANNEL_PBFT:
                pub = self._pub_of(peer)
                if pub is not None:
                    await self.pbft.deliver(pub, body)
            elif channel == CHANNEL_STATUS:
                self.blocksync.on_status(peer, body)
            else:
                self.network.report_misbehaviour(peer, f"unknown frame channel {channel.hex()}")

    async def on_chain(self, fn: Callable, *args: Any) -> Any:
        """Run `fn(*args)` on the chain worker thread, after any chain work already queued."""
        return await trio.to_thread.run_sync(fn, *args, limiter=self._chain_limiter)

    # ---- RPC support --------------------------------------------------------------------------

    async def submit_transaction(self, raw: bytes) -> tuple[bytes, str]:
        """Admit a client's transaction durably and gossip it (TxGossipReactor.submit)."""
        return await self.gossip.submit(raw)

    def peer_summaries(self) -> list[dict]:
        connected = set(self.network.connected_peers())
        security = self.network.security_protocols()
        versions = self.network.peer_versions()
        peers = self.blocksync.peers
        return [
            {
                "index": i, "nodeId": n.peer_id, "role": n.role, "connected": i in connected,
                "blockNumber": peers[i].height if i in peers else None, "security": security.get(i), "version": versions.get(i),
            }
            for i, n in enumerate(self._nodes)
            if n.consensus_pub != self.key.public_key
        ]

    def consensus_status(self) -> dict | None:
        """The PBFT core's view of things (None on an observer)."""
        if not self.is_sealer:
            return None
        replica = self.pbft.replica
        return {**replica.status(), "stats": dict(replica.stats)}

    async def _health(self) -> dict:
        return {
            "status": "ok",
            "node": self.name,
            "blockNumber": self.chain.height,
            "peersConnected": len(self.network.connected_peers()),
            "pendingTxs": len(self.pool),
            "role": "sealer" if self.is_sealer else "observer",
        }

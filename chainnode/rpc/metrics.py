"""Prometheus metrics of one node, served at GET /metrics on the RPC port.

Most values are read from the node's components when Prometheus scrapes (no bookkeeping
on hot paths); the commit-latency histogram is fed on each commit. Each node has its own
registry, so several nodes in one process (tests) do not collide.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Iterable, Mapping, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

if TYPE_CHECKING:
    from chainnode.blocksync.syncer import BlockSyncer
    from chainnode.execution.chain import Chain
    from chainnode.rpc.channel import ChannelServer
    from chainnode.rpc.jsonrpc import Dispatcher
    from chainnode.txpool.pool import TxPool

# Seconds from a transaction's admission to this node's pool to its commit.
COMMIT_LATENCY_BUCKETS_S = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class PeerNetwork(Protocol):
    """What the metrics read of the node's network (a chainnode.network.Network)."""

    counters: Mapping[str, int]

    def connected_peers(self) -> list[int]: ...

    def security_protocols(self) -> Mapping[int, str]: ...


class MetricsSource(Protocol):
    """What the metrics read of a node: chainnode.node.Node is one. Defined here, so that
    rpc does not import the node, which imports rpc."""

    chain: Chain
    committed_blocks: int
    network: PeerNetwork
    pool: TxPool
    syncer: BlockSyncer
    dispatcher: Dispatcher
    channel: ChannelServer | None  # the channel port for dApps; None on a chain without a CA

    def consensus_status(self) -> dict | None: ...


class _NodeCollector:
    def __init__(self, node: MetricsSource) -> None:
        self.node = node

    def collect(self) -> Iterable:
        node = self.node
        ledger = node.chain.ledger
        yield GaugeMetricFamily("chainnode_block_height", "Height of the latest committed block.", value=ledger.head_height)
        yield CounterMetricFamily("chainnode_blocks_committed", "Blocks this process committed (consensus and sync).", value=node.committed_blocks)
        yield CounterMetricFamily("chainnode_transactions_committed", "Transactions in the chain since genesis.", value=ledger.total_tx_count)
        yield GaugeMetricFamily("chainnode_peers_connected", "Peers with an established, verified connection.", value=len(node.network.connected_peers()))
        by_security = GaugeMetricFamily(
            "chainnode_peers_connected_by_security", "Connected peers by the security protocol their connection negotiated.", labels=["protocol"]
        )
        for protocol, count in sorted(Counter(node.network.security_protocols().values()).items()):
            by_security.add_metric([protocol], count)
        yield by_security
        yield GaugeMetricFamily("chainnode_txpool_transactions", "Pending transactions in the pool.", value=len(node.pool))
        yield GaugeMetricFamily("chainnode_txpool_bytes", "Bytes of pending transactions in the pool.", value=node.pool.bytes)
        rejected = CounterMetricFamily("chainnode_tx_rejected", "Transactions the pool refused, by reason.", labels=["reason"])
        for reason, count in sorted(node.pool.rejected.items()):
            rejected.add_metric([reason], count)
        yield rejected
        target = node.syncer.target_height
        yield GaugeMetricFamily("chainnode_sync_lag_blocks", "How far the highest head peers announced is ahead of ours.", value=max(0, target - ledger.head_height))
        status = node.consensus_status()
        if status is not None:
            yield GaugeMetricFamily("chainnode_consensus_view", "Current PBFT view.", value=status["view"])
            stats = CounterMetricFamily("chainnode_consensus_events", "PBFT core counters (view_changes, timeouts, commits, ...).", labels=["event"])
            for name, count in sorted(status["stats"].items()):
                stats.add_metric([name], count)
            yield stats
        net = CounterMetricFamily("chainnode_network_events", "Network counters (frames, drops, refusals by reason, ...).", labels=["event"])
        for name, count in sorted(dict(node.network.counters).items()):
            net.add_metric([name], count)
        yield net
        calls = CounterMetricFamily("chainnode_rpc_calls", "JSON-RPC calls by method.", labels=["method"])
        for name, count in sorted(node.dispatcher.calls.items()):
            calls.add_metric([name], count)
        yield calls
        channel = node.channel
        if channel is not None:
            yield GaugeMetricFamily("chainnode_channel_sessions", "dApp sessions open on the channel port.", value=channel.sessions_open)
            yield CounterMetricFamily("chainnode_channel_handshakes", "Channel handshakes accepted.", value=channel.handshakes)
            refused = CounterMetricFamily(
                "chainnode_channel_handshakes_refused", "Channel connections refused or failed before a session, by reason.", labels=["reason"]
            )
            for reason, count in sorted(channel.refused.items()):
                refused.add_metric([reason], count)
            yield refused
            closed = CounterMetricFamily(
                "chainnode_channel_sessions_closed",
                "Channel sessions the node ended at a block (revoked, expired certificates), by reason.",
                labels=["reason"],
            )
            for reason, count in sorted(channel.sessions_closed.items()):
                closed.add_metric([reason], count)
            yield closed


class NodeMetrics:
    def __init__(self, node: MetricsSource) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_NodeCollector(node))
        self.commit_latency = Histogram(
            "chainnode_commit_latency_seconds",
            "Seconds from a transaction's admission to this node's pool to its commit.",
            buckets=COMMIT_LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def committed(self, arrivals_s: Iterable[float]) -> None:
        """Record the commit of transactions that arrived (time.monotonic()) at `arrivals_s`."""
        now = time.monotonic()
        for arrived in arrivals_s:
            self.commit_latency.observe(now - arrived)

    async def route(self) -> tuple[int, list, bytes]:
        """The GET /metrics response for RpcApp."""
        return 200, [(b"content-type", CONTENT_TYPE_LATEST.encode())], generate_latest(self.registry)

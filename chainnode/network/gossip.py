"""Transaction gossip over GossipSub, with the library's silent-drop defaults fixed.

Gossip is best effort: py-libp2p's GossipSub costs ~3 ms of CPU per message per node and
drops when its queues fill, without telling anyone (research traps 5 and 6). So:
- callers publish *batches* (the txpool sends one every 50-100 ms), never single txs;
- a batch is at most `tx_batch_bytes_max`, well under the 1 MiB at which GossipSub drops
  messages while `publish` returns normally; we refuse bigger batches loudly;
- the module-level queue sizes (per-peer outbound RPC queue 32, subscription channel 32)
  are raised before any pubsub object exists, and the per-topic spam limit of 10 msgs/s
  (applied to our own publishes too) is raised; our own per-origin limit replaces it;
- meshsub/1.1 and 1.0 only: 1.2 sends IDONTWANT for every message, slower for small ones;
- eclipse protection is off: it wants mesh peers from 3+ distinct IPs, which a consortium
  (or a devnet on one machine) need not have, and every peer here is admitted by id;
- a message's id is (origin, seqno, digest of the batch), and the seqno counter starts at
  the clock in nanoseconds: py-libp2p's default id is (origin, seqno) with the counter
  seeded from whole seconds, so a node restarted within the peers' 120 s seen-cache
  reused ids they had seen and its gossip was dropped as duplicates for minutes;
- every RPC written to a peer's pubsub stream is written whole before the next one starts
  (`_GuardedPubsub.write_msg`): py-libp2p writes to one stream from several tasks (the
  peer's outbound queue, and the replay of recent messages and the flush of pending ones
  when a peer (re)subscribes), and Yamux sends an RPC over 64 KiB as several frames,
  giving up the stream between them, so two RPCs' bytes interleaved and the peer read
  garbage (protobuf `DecodeError`), dropped the connection and banned us; on reconnect the
  replay ran again: peers cut each other off for seconds, again and again, under load;
- nothing may rely on gossip alone: a replica that lacks a transaction a proposal lists
  fetches it by hash (request/response), and a lagging node syncs blocks.
"""

from __future__ import annotations

import hashlib
import logging
import time
import weakref
from typing import Callable

import trio
from google.protobuf.message import DecodeError as ProtobufDecodeError
from libp2p.exceptions import BaseLibp2pError
from libp2p.peer.id import ID
from libp2p.pubsub import pubsub as _pubsub_mod, rpc_queue as _rpc_queue_mod
from libp2p.pubsub.gossipsub import PROTOCOL_ID as MESHSUB_10, PROTOCOL_ID_V11 as MESHSUB_11, GossipSub
from libp2p.pubsub.pubsub import Pubsub
from libp2p.tools.anyio_service import background_trio_service

from chainnode.network.errors import TRANSPORT_ERRORS, NetworkError
from chainnode.network.limits import NetworkLimits
from chainnode.network.metrics import Counters
from chainnode.network.policing import TokenBucket

log = logging.getLogger("chainnode.network")

# Room for the pubsub envelope (topic, seqno, from, key, signature) around a batch.
ENVELOPE_BYTES_MAX = 16 * 1024
# GossipSub's own per-forwarder per-topic limit; our per-origin limit is the real one.
LIBRARY_SPAM_LIMIT_PER_S = 100_000
ORIGINS_MAX = 4096
# What py-libp2p's pubsub raises on a peer's malformed RPC or message, besides the transport's
# errors: protobuf's DecodeError (bytes that are no RPC), libp2p's own errors (a bad signed
# record, key or signature) and ValueError (a bad peer id, multiaddr or varint).
BAD_PUBSUB_INPUT = (ProtobufDecodeError, BaseLibp2pError, ValueError, *TRANSPORT_ERRORS)


def tx_batch_msg_id(msg) -> bytes:
    """A gossip message's id: its origin, its sequence number and a digest of its data, so
    two different batches never share an id, even from a node that restarted and counts
    sequence numbers anew."""
    return msg.from_id + msg.seqno + hashlib.sha256(msg.data).digest()[:16]


def raise_pubsub_queue_limits(peer_queue_rpcs: int, subscription_queue: int) -> None:
    """Raise py-libp2p's module-level pubsub queue sizes. Must run before Pubsub objects
    are created. `RpcQueue.__init__` captured the old module value as its default when the
    module was imported, so the default itself is replaced too, then checked."""
    _rpc_queue_mod.OutBoundQueueSize = max(_rpc_queue_mod.OutBoundQueueSize, peer_queue_rpcs)
    defaults = _rpc_queue_mod.RpcQueue.__init__.__defaults__
    assert defaults is not None and len(defaults) == 2, "py-libp2p RpcQueue signature changed"
    _rpc_queue_mod.RpcQueue.__init__.__defaults__ = (max(defaults[0], peer_queue_rpcs), defaults[1])
    _pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE = max(_pubsub_mod.SUBSCRIPTION_CHANNEL_SIZE, subscription_queue)
    probe = _rpc_queue_mod.RpcQueue()
    assert probe._queue.max_size >= peer_queue_rpcs, "could not raise the pubsub peer queue size"


class _GuardedPubsub(Pubsub):
    """py-libp2p's Pubsub, where a peer's malformed RPC ends that peer's connection instead
    of the node: the library's read loop lets a protobuf `DecodeError` (seen after a peer
    restarted) escape its service and the process died, and so would the library's other
    errors while handling one message (BAD_PUBSUB_INPUT). The peer is reported (disconnected
    and briefly banned, then redialled with fresh streams); the node keeps serving the
    others. Any other error is a bug (our validator's, or the library's) and propagates."""

    def __init__(self, *args, on_bad_peer: Callable[[str, str], None], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.on_bad_peer = on_bad_peer
        # One lock per outbound stream; an entry goes with its stream.
        self._write_locks: weakref.WeakKeyDictionary[object, trio.Lock] = weakref.WeakKeyDictionary()

    async def write_msg(self, stream, rpc_msg) -> bool:
        """Write one RPC whole: the library's writers to a stream (the peer's queue, the
        replay of recent messages, the flush of pending ones) run as separate tasks, and a
        Yamux write of over 64 KiB yields between frames, so unserialized writes interleave
        (module docstring). Every library path to a peer's stream goes through here."""
        lock = self._write_locks.get(stream)
        if lock is None:
            lock = self._write_locks[stream] = trio.Lock()
        async with lock:
            return await super().write_msg(stream, rpc_msg)

    async def stream_handler(self, stream) -> None:
        try:
            await super().stream_handler(stream)
        except BAD_PUBSUB_INPUT as exc:
            peer_id = stream.muxed_conn.peer_id
            log.warning("gossip: peer %s sent a pubsub RPC that could not be handled (%s: %s); dropping its connection",
                        peer_id, type(exc).__name__, str(exc)[:200])
            try:
                await stream.reset()
            except TRANSPORT_ERRORS:  # the stream may be gone already
                pass
            self._handle_dead_peer(peer_id)
            self.on_bad_peer(peer_id.to_base58(), f"malformed pubsub RPC ({type(exc).__name__})")

    async def push_msg(self, msg_forwarder: ID, msg) -> None:
        try:
            await super().push_msg(msg_forwarder, msg)
        except BAD_PUBSUB_INPUT as exc:
            log.warning("gossip: dropped a message forwarded by %s that could not be handled (%s: %s)",
                        msg_forwarder, type(exc).__name__, str(exc)[:200])


class TxGossip:
    def __init__(
        self,
        host,
        topic: str,
        limits: NetworkLimits,
        counters: Counters,
        origin_index: Callable[[ID], int | None],
        now_ms: Callable[[], float],
        on_bad_peer: Callable[[str, str], None] = lambda peer_id, reason: None,
    ) -> None:
        """`on_bad_peer(peer id, reason)`: a peer broke the pubsub protocol."""
        self.topic = topic
        self.limits = limits
        self._counters = counters
        self._origin_index = origin_index
        self._now_ms = now_ms
        self._my_id = host.get_id()
        self._buckets: dict[bytes, TokenBucket] = {}
        raise_pubsub_queue_limits(limits.gossip_peer_queue_rpcs_max, limits.tx_batches_queue_max)
        self.router = GossipSub(
            protocols=[MESHSUB_11, MESHSUB_10],
            # A consortium has a handful to a few dozen nodes: a mesh this wide makes
            # every node one hop from every other for the usual sizes.
            degree=8,
            degree_low=6,
            degree_high=16,
            heartbeat_interval=limits.gossip_heartbeat_s,
            heartbeat_initial_delay=0.1,
            spam_protection_enabled=True,
            max_messages_per_topic_per_second=float(LIBRARY_SPAM_LIMIT_PER_S),
            eclipse_protection_enabled=False,
        )
        self.pubsub = _GuardedPubsub(
            host,
            self.router,
            strict_signing=True,
            max_inbound_rpc_size=limits.tx_batch_bytes_max + ENVELOPE_BYTES_MAX,
            allowed_topics={topic},
            max_subscriptions_per_peer=4,
            msg_id_constructor=tx_batch_msg_id,
            on_bad_peer=on_bad_peer,
        )
        # Sequence numbers grow from here: past any this node used before a restart, unless the
        # clock was set back by more than the publishes since (the digest in the id covers that).
        self.pubsub.counter = time.time_ns()
        self.pubsub.set_topic_validator(topic, self._validate, False)

    def _validate(self, forwarder: ID, msg) -> bool:
        """Runs on every message before it is delivered or forwarded (our own included)."""
        origin = ID(msg.from_id)
        if origin == self._my_id:
            return True
        if len(msg.data) > self.limits.tx_batch_bytes_max or not msg.data:
            self._counters.inc("tx_batches_rejected_size")
            return False
        if self._origin_index(origin) is None or self._origin_index(forwarder) is None:
            self._counters.inc("tx_batches_rejected_unknown")
            return False
        bucket = self._buckets.get(msg.from_id)
        if bucket is None:
            if len(self._buckets) >= ORIGINS_MAX:
                self._buckets.clear()
            bucket = self._buckets[msg.from_id] = TokenBucket(
                self.limits.tx_batches_per_s_max, self.limits.tx_batches_per_s_max, self._now_ms()
            )
        if not bucket.take(self._now_ms()):
            self._counters.inc("tx_batches_rejected_rate")
            return False
        return True

    async def publish(self, batch: bytes) -> None:
        if type(batch) is not bytes or not batch:
            raise NetworkError("a tx batch is non-empty bytes")
        if len(batch) > self.limits.tx_batch_bytes_max:
            raise NetworkError(f"tx batch of {len(batch)} bytes exceeds tx_batch_bytes_max {self.limits.tx_batch_bytes_max}")
        await self.pubsub.publish(self.topic, batch)
        self._counters.inc("tx_batches_out")

    async def run(self, deliver: trio.MemorySendChannel, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Run pubsub and the router; forward received batches to `deliver` as
        (origin index, batch), dropping (and counting) when the consumer is behind."""
        async with background_trio_service(self.pubsub), background_trio_service(self.router):
            await self.pubsub.wait_until_ready()
            subscription = await self.pubsub.subscribe(self.topic)
            task_status.started()
            while True:
                msg = await subscription.get()
                origin = ID(msg.from_id)
                if origin == self._my_id:
                    continue
                index = self._origin_index(origin)
                if index is None:
                    continue
                try:
                    deliver.send_nowait((index, msg.data))
                    self._counters.inc("tx_batches_in")
                except (trio.WouldBlock, trio.BrokenResourceError, trio.ClosedResourceError):
                    self._counters.inc("tx_batches_dropped_in")

"""The `Network` service: a libp2p host locked down for a permissioned chain.

Lifecycle of a connection (one per admitted peer):

1. Admission. The security transport is the chain suite's (`_security_options`): on an
   `sm` chain our SM channel `/chainnode/noise-sm/1` (secure.py), which refuses an
   unadmitted, misconfigured or revoked node inside the handshake (libp2p's `/noise` after
   it only with the genesis setting `p2p_noise25519`); on an `ed25519` chain libp2p's
   Noise. Plaintext is never offered (py-libp2p accepts it otherwise, research trap 1);
   Yamux is the only muxer. libp2p gates by IP only (trap 2), so on every new connection
   we look the authenticated peer id up in the admitted list and close the connection at
   once if it is not there or is serving a ban. Every stream handler, ours and libp2p's
   own (identify, ping, pubsub), checks again.
2. Handshake. The peer with the lower peer id opens `/chainnode/hello/3`; both sides send
   a signed Hello and verify the other's (handshake.py), including its certificate chain
   with the node's `check_credentials` callback when the chain has a CA; then both send a
   Verdict (accepted, or why not) so the refused side can log the reason too. No other
   protocol is served to the peer until its Hello verified: other streams wait (bounded)
   for it, then proceed or are reset. `recheck_credentials` re-verifies the chains of
   connected peers (new revocations, expiry) and disconnects those that now fail.
3. Session. The lower peer id opens the one long-lived consensus stream
   `/chainnode/pbft/1`; each side runs a PeerChannel on it (channel.py). The peer counts
   as connected from then until the stream or connection ends.
4. End. Any failure closes the connection. Protocol violations (garbage or oversized
   frames, failed Hello, refused certificate, rate exceeded, or `report_misbehaviour` from
   the node) are logged in one line, counted, and earn the peer a growing ban (policing.py). The supervisor
   (supervisor.py) redials peers we are meant to dial.

Everything runs in `run()`'s nursery: cancelling it closes every connection first (so
libp2p does not raise "Nursery is closed" out of its shutdown, trap 9), then stops pubsub
and the host.
"""

from __future__ import annotations

import errno
import logging
import socket
import time
import weakref
from typing import Awaitable, Callable

import multiaddr
import trio
from libp2p import new_host
from libp2p.abc import INotifee
from libp2p.crypto.x25519 import create_new_key_pair as create_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.network.config import ConnectionConfig
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import PeerInfo as Libp2pPeerInfo
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID, Transport as NoiseTransport
from libp2p.stream_muxer.yamux.yamux import PROTOCOL_ID as YAMUX_PROTOCOL_ID
from multiaddr.exceptions import ProtocolLookupError

from chainnode.channel.handshake import VERDICT_BYTES_MAX
from chainnode.crypto import CryptoSuite
from chainnode.network.channel import RATE_EXCEEDED, PeerChannel
from chainnode.network.errors import TRANSPORT_ERRORS, NetworkError, PortInUse, ProtocolViolation
from chainnode.network.framing import FrameReader, encode_frame, read_frame
from chainnode.network.gossip import TxGossip
from chainnode.network.handshake import (
    CREDENTIALS_BYTES_MAX,
    NOT_A_MEMBER,
    UNKNOWN_PEER,
    Hello,
    Verdict,
    make_hello,
    verify_hello,
)
from chainnode.network.identity import keypair_from_seed
from chainnode.network.inbox import FairInbox
from chainnode.network.limits import NetworkLimits
from chainnode.network.metrics import Counters
from chainnode.network.muxer import NonBlockingReadYamux, install as install_muxer
from chainnode.network.peers import PEERS_MAX, PeerInfo, PeerTable
from chainnode.network.policing import PenaltyBox, TokenBucket
from chainnode.network.reachability import resolve_all
from chainnode.network.secure import PROTOCOL_ID as SM_PROTOCOL_ID, SmNoiseTransport
from chainnode.network.supervisor import ReconnectSupervisor
from chainnode.network.timeouts import RequestTimeouts
from chainnode.protocol.codec import DecodeError

log = logging.getLogger("chainnode.network")

HELLO_PROTOCOL = TProtocol("/chainnode/hello/3")
PBFT_PROTOCOL = TProtocol("/chainnode/pbft/1")
# Request/response protocols the node registers must live under this prefix.
REQUEST_PROTOCOL_PREFIX = "/chainnode/"
REQUEST_HANDLERS_MAX = 64
CLOSE_TIMEOUT_S = 1.0
# A peer that is not admitted gets this long to open its hello stream and read why it is
# refused (a Verdict "unknown peer"), so its operator sees the reason, not a reset stream.
NOT_ADMITTED_GRACE_S = 2.0

STATUS_OK = 0
STATUS_ERROR = 1
ERROR_TEXT_BYTES_MAX = 200

# handler(peer index, request) -> response. It raises DecodeError for a request it cannot
# decode and NetworkError for one it cannot serve: either way the peer is answered with the
# error. Anything
# else it raises is a bug of ours and propagates: the node stops, loudly (DESIGN rule 7).
RequestHandler = Callable[[int, bytes], Awaitable[bytes]]
# check_credentials(chain, consensus_pub, peer_id): raises ValueError (CertificateError, with a
# short `.reason`) if the peer's credentials are not acceptable now. See chainnode/security/admission.py.
CredentialsCheck = Callable[[bytes, bytes, str], object]
CREDENTIALS_CHECK_FAILED = "certificate check failed"
REFUSED_BY_PEER = "refused by peer"


class CredentialsRefused(ProtocolViolation):
    """The peer's certificate chain was refused (handshake or recheck). A violation like any
    failed Hello check (same growing, bounded ban), logged as `refused peer ...`."""


class _RefusedByPeer(Exception):
    """The peer's Verdict refused our Hello; `verdict` says why."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(f"{verdict.reason}: {verdict.detail}" if verdict.detail else verdict.reason)
        self.verdict = verdict


def _verdict_or_none(data: bytes) -> Verdict | None:
    try:
        return Verdict.decode(data)
    except ProtocolViolation:
        return None


def _now_ms() -> float:
    return time.monotonic() * 1000.0


def check_port_free(listen: multiaddr.Multiaddr) -> None:
    """Raise PortInUse if the TCP port of `listen` is bound. libp2p listens with
    SO_REUSEPORT, so it would otherwise share the port silently (research trap 8)."""
    port = int(listen.value_for_protocol("tcp"))
    if port == 0:
        return
    try:
        host, family = listen.value_for_protocol("ip4"), socket.AF_INET
    except ProtocolLookupError:
        host, family = listen.value_for_protocol("ip6"), socket.AF_INET6
    probe = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR lets us bind over TIME_WAIT leftovers of our own previous run, but
        # still fails against a socket that is bound or listening: what we want to detect.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(f"port {port} is in use") from None
        raise NetworkError(f"cannot listen on {listen}: {exc}") from None
    finally:
        probe.close()


class _Session:
    """One connection with one admitted peer, from admission until it closes."""

    def __init__(self, info: PeerInfo, conn, initiator: bool, limits: NetworkLimits) -> None:
        self.info = info
        self.conn = conn
        self.muxed = conn.muxed_conn
        self.initiator = initiator  # we have the lower peer id: we open hello and pbft
        self.verified = trio.Event()
        self.hello_started = False
        self.pbft_stream = None
        self.stream_ready = trio.Event()
        self.channel: PeerChannel | None = None
        self.established = False
        self.done = trio.Event()
        self.scope = trio.CancelScope()
        self.end: ProtocolViolation | str | None = None
        self.bucket = TokenBucket(limits.messages_per_s_max, limits.messages_burst_max, _now_ms())
        self.inflight_requests = 0
        self.credentials = b""  # the chain the peer presented in its verified Hello
        self.software = ""  # the software version its Hello named
        self.security = ""  # the negotiated security protocol id, e.g. "/chainnode/noise-sm/1"

    def fail(self, end: ProtocolViolation | str) -> None:
        if self.end is None:
            self.end = end
        self.scope.cancel()


class _Notifee(INotifee):
    """libp2p tells us about connections here; we only route to the Network."""

    def __init__(self, net: "Network") -> None:
        self._net = net

    async def connected(self, network, conn) -> None:
        self._net._ensure_session(conn)

    async def disconnected(self, network, conn) -> None:
        self._net._on_disconnected(conn)

    async def opened_stream(self, network, stream) -> None:
        pass

    async def closed_stream(self, network, stream) -> None:
        pass

    async def listen(self, network, multiaddr) -> None:
        pass

    async def listen_close(self, network, multiaddr) -> None:
        pass


class Network:
    """The networking service of one node. See docs/network.md for the interface."""

    def __init__(
        self,
        *,
        host_key_seed: bytes,
        listen_addr: str,
        peers: list[PeerInfo],
        consensus_priv: bytes,
        consensus_pub: bytes,
        suite: CryptoSuite,
        genesis_hash: bytes,
        limits: NetworkLimits | None = None,
        credentials: bytes = b"",
        check_credentials: CredentialsCheck | None = None,
        p2p_noise25519: bool = False,
    ) -> None:
        if type(genesis_hash) is not bytes or len(genesis_hash) != 32:
            raise ValueError("genesis_hash must be 32 bytes")
        if type(p2p_noise25519) is not bool:
            raise ValueError("p2p_noise25519 must be true or false")
        # An `sm` chain also accepts libp2p's X25519 Noise (after its own SM channel) only
        # when the genesis says so: for chains with nodes of older versions.
        self._p2p_noise25519 = p2p_noise25519
        if type(credentials) is not bytes or len(credentials) > CREDENTIALS_BYTES_MAX:
            raise ValueError(f"credentials must be at most {CREDENTIALS_BYTES_MAX} bytes")
        self._credentials = credentials
        self._check_credentials = check_credentials
        self.limits = limits or NetworkLimits()
        self._keypair = keypair_from_seed(host_key_seed)
        self._id = ID.from_pubkey(self._keypair.public_key)
        self.peer_id: str = self._id.to_base58()
        self._id_bytes = self._id.to_bytes()
        self._listen = multiaddr.Multiaddr(listen_addr)
        self._suite = suite
        self._consensus_priv = consensus_priv
        self._consensus_pub = consensus_pub
        self.genesis_hash = genesis_hash
        self._table = PeerTable(peers)
        self.topic = f"/chainnode/{genesis_hash.hex()[:16]}/txs"
        me = self._table.get(self.peer_id)
        self._label = f"n{me.index}" if me else self.peer_id[-6:]
        self.counters = Counters()
        self._penalties = PenaltyBox(self.limits.penalty_base_ms, self.limits.penalty_max_ms, self.limits.penalty_forget_ms)
        self._sessions: dict[str, _Session] = {}
        self._handlers: dict[str, RequestHandler] = {}
        self._in_send, self.incoming = trio.open_memory_channel(self.limits.inbound_queue_frames_max)
        self._inbox = FairInbox(self.limits.inbound_queue_frames_per_peer_max, self._in_send, self.counters)
        self._tx_send, self.incoming_txs = trio.open_memory_channel(self.limits.tx_batches_queue_max)
        self._host = None
        self._gossip: TxGossip | None = None
        self._timeouts = RequestTimeouts(
            initial_ms=self.limits.request_timeout_ms, min_ms=self.limits.request_timeout_min_ms, max_ms=self.limits.request_timeout_max_ms
        )
        self._nursery: trio.Nursery | None = None
        self._core_scope = trio.CancelScope()
        self._running = False
        self._changed = trio.Event()
        self._supervisor = ReconnectSupervisor(
            targets=self._dial_targets,
            dial=self._dial,
            not_before_ms=lambda info: self._penalties.banned_until_ms(info.peer_id),
            initial_ms=self.limits.reconnect_initial_ms,
            max_ms=self.limits.reconnect_max_ms,
            tick_ms=self.limits.supervisor_tick_ms,
            now_ms=_now_ms,
        )
        self.listen_addrs: list[str] = []
        self._refused: weakref.WeakSet = weakref.WeakSet()
        # Connections whose session ended: a late stream on one (identify, pubsub) must not
        # start a second session (and a second failed handshake) before it finishes closing.
        self._ended: weakref.WeakSet = weakref.WeakSet()
        self._closing_since: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._ran = False

    # ---- public interface ------------------------------------------------------------

    def register_handler(self, protocol: str, handler: RequestHandler) -> None:
        """Serve `protocol` (e.g. "/chainnode/txfetch/1"): `await handler(peer_index,
        request) -> response`. A handler that raises DecodeError or NetworkError answers the
        caller with the error (see RequestHandler); anything else it raises propagates."""
        if not protocol.startswith(REQUEST_PROTOCOL_PREFIX) or protocol in (HELLO_PROTOCOL, PBFT_PROTOCOL):
            raise ValueError(f"request protocols live under {REQUEST_PROTOCOL_PREFIX} and are not hello/pbft")
        if len(self._handlers) >= REQUEST_HANDLERS_MAX and protocol not in self._handlers:
            raise ValueError("too many request handlers")
        self._handlers[protocol] = handler
        if self._host is not None:
            self._install_request_handler(protocol)

    def send(self, peer: int | str, payload: bytes) -> bool:
        """Queue one consensus frame for a peer; never blocks. False (and counted) if the
        peer is not connected or its queue is full."""
        self._check_payload(payload)
        s = self._established(peer)
        if s is None:
            self.counters.inc("frames_dropped_out")
            return False
        return s.channel.send_nowait(payload)

    def queued_frames(self, peer: int | str) -> int:
        """Frames waiting in a peer's outbound queue (0 if not connected): lets a bulk
        sender pace itself instead of overflowing the queue."""
        s = self._established(peer)
        return s.channel.queued_frames() if s is not None else 0

    def broadcast(self, payload: bytes) -> int:
        """Queue a frame for every connected peer; return how many queues took it."""
        self._check_payload(payload)
        return sum(1 for s in list(self._sessions.values()) if s.established and s.channel.send_nowait(payload))

    async def request(self, peer: int | str, protocol: str, payload: bytes, timeout_ms: int | None = None) -> bytes:
        """Send one request on a fresh stream and return the response; NetworkError on
        any failure (not connected, timeout, remote error, limits)."""
        s = self._established(peer)
        if s is None:
            raise NetworkError(f"peer {peer} is not connected")
        if type(payload) is not bytes or not payload or len(payload) > self.limits.request_bytes_max:
            raise NetworkError(f"request must be 1..{self.limits.request_bytes_max} bytes")
        key = (s.info.index, protocol)
        timeout_s = (timeout_ms or self._timeouts.timeout_ms(key)) / 1000
        stream = None
        try:
            started_s = trio.current_time()
            with trio.fail_after(timeout_s):
                stream = await self._host.new_stream(s.info.id, [TProtocol(protocol)])
                await stream.write(encode_frame(payload))
                data = await read_frame(stream, self.limits.response_bytes_max + 1, self.limits.read_chunk_bytes)
            self._timeouts.answered(key, (trio.current_time() - started_s) * 1000)
        except trio.TooSlowError:
            self._timeouts.timed_out(key)
            raise NetworkError(f"request {protocol} to peer {s.info.index} timed out after {timeout_s * 1000:.0f} ms") from None
        except ProtocolViolation as v:
            s.fail(v)
            raise NetworkError(f"peer {s.info.index} sent a bad response: {v}") from None
        except TRANSPORT_ERRORS as exc:  # stream reset or closed, peer gone, protocol not supported
            raise NetworkError(f"request {protocol} to peer {s.info.index} failed: {type(exc).__name__}") from None
        finally:
            if stream is not None:
                await self._close_stream(stream)
        if data[0] != STATUS_OK:
            text = data[1 : 1 + ERROR_TEXT_BYTES_MAX].decode("utf-8", "replace")
            raise NetworkError(f"peer {s.info.index} answered {protocol} with an error: {text}")
        return data[1:]

    async def publish_txs(self, batch: bytes) -> None:
        """Gossip one batch of transactions (best effort; at most tx_batch_bytes_max)."""
        if self._gossip is None or not self._running:
            raise NetworkError("network is not running")
        await self._gossip.publish(batch)

    def connected_peers(self) -> list[int]:
        return sorted(s.info.index for s in self._sessions.values() if s.established)

    def security_protocols(self) -> dict[int, str]:
        """The security protocol negotiated with each connected peer, by index:
        "/chainnode/noise-sm/1" (the SM channel) or "/noise" (libp2p's X25519 Noise)."""
        return {s.info.index: s.security for s in self._sessions.values() if s.established}

    def peer_versions(self) -> dict[int, str]:
        """The software version each connected peer named in its Hello, by index."""
        return {s.info.index: s.software for s in self._sessions.values() if s.established}

    async def wait_connected(self, n: int, timeout_s: float) -> None:
        """Wait until at least `n` peers are connected; NetworkError on timeout."""
        with trio.move_on_after(timeout_s):
            while len(self.connected_peers()) < n:
                await self._changed.wait()
            return
        raise NetworkError(f"{len(self.connected_peers())} of {n} peers connected after {timeout_s} s")

    def set_admitted(self, peers: list[PeerInfo]) -> None:
        """Replace the admitted list (governance). Peers no longer admitted, or whose
        consensus key changed, are disconnected; new peers are dialed."""
        table = PeerTable(peers)
        for p in table:
            if self._table.get(p.peer_id) is None:
                # Refused as unknown until now (and banned for trying): admitted from now on.
                self._penalties.forgive(p.peer_id)
        self._table = table
        for pid, s in list(self._sessions.items()):
            info = table.get(pid)
            if info is None:
                s.fail("no longer admitted")
            elif info.consensus_pub != s.info.consensus_pub or info.index != s.info.index:
                s.fail("membership changed")
        self._supervisor.forget({p.peer_id for p in table})
        self._supervisor.wake()

    def recheck_credentials(self) -> list[int]:
        """Re-verify the certificate chains of all peers whose Hello verified, with the
        `check_credentials` callback (so: the current revocation list and time), and
        disconnect those that now fail, with the same `refused peer` log line and ban as
        at the handshake. Returns their indexes. No-op without a callback. The node calls
        this after a block that changes the revocation list; the network also runs it
        every `credentials_recheck_ms` (certificates expire without any block)."""
        if self._check_credentials is None:
            return []
        refused = []
        for s in list(self._sessions.values()):
            if not s.verified.is_set() or s.done.is_set() or s.end is not None:
                continue
            try:
                self._verify_credentials(s.info, s.credentials)
            except CredentialsRefused as v:
                refused.append(s.info.index)
                s.fail(v)
        return sorted(refused)

    def report_misbehaviour(self, peer: int | str, reason: str) -> None:
        """The node found a peer's message invalid (bad signature, undecodable): disconnect
        and ban it like any protocol violation."""
        s = self._established(peer) or self._sessions.get(peer if isinstance(peer, str) else "")
        if s is not None:
            s.fail(ProtocolViolation(reason))

    # ---- running -----------------------------------------------------------------------

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Listen, dial, serve until cancelled; `task_status.started()` once listening.
        One run per Network object (its channels close when it ends)."""
        if self._ran:
            raise RuntimeError("a Network runs once; build a new one to restart")
        self._ran = True
        check_port_free(self._listen)
        host = self._build_host()
        self._host = host
        for protocol in self._handlers:
            self._install_request_handler(protocol)
        host.set_stream_handler(HELLO_PROTOCOL, self._on_hello_stream)
        host.set_stream_handler(PBFT_PROTOCOL, self._on_pbft_stream)
        self._gossip = TxGossip(host, self.topic, self.limits, self.counters, self._index_of, _now_ms, on_bad_peer=self.report_misbehaviour)
        self._gate_library_handlers()
        try:
            async with trio.open_nursery() as outer:
                await outer.start(self._core)
                log.info("%s: listening on %s as %s", self._label, ", ".join(self.listen_addrs), self.peer_id)
                task_status.started()
                try:
                    await trio.sleep_forever()
                finally:
                    with trio.CancelScope(shield=True):
                        await self._shutdown()
        finally:
            self._running = False
            self._nursery = None
            self._in_send.close()
            self._tx_send.close()
            log.info("%s: network stopped", self._label)

    async def _core(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Everything libp2p, in a scope shielded from the caller's cancellation.

        If the caller's cancellation reached libp2p directly, the swarm's own shutdown
        would run cancelled: it marks each connection closed, is interrupted before closing
        the socket, and the peer never sees the connection end (nor do later close calls,
        which see it marked closed). So `_shutdown` first closes connections and listeners
        while libp2p still runs normally, then cancels this scope explicitly."""
        host = self._host
        with trio.CancelScope(shield=True) as scope:
            self._core_scope = scope
            try:
                async with host.run([self._listen]):
                    self.listen_addrs = [str(a) for a in host.get_addrs()]
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        self._running = True
                        host.get_network().register_notifee(_Notifee(self))
                        # Connections accepted before the notifee existed.
                        for conns in list(host.get_network().connections.values()):
                            for conn in list(conns):
                                self._ensure_session(conn)
                        await nursery.start(self._gossip.run, self._tx_send)
                        nursery.start_soon(self._supervisor.run)
                        nursery.start_soon(self._inbox.run)
                        if self._check_credentials is not None:
                            nursery.start_soon(self._recheck_periodically)
                        task_status.started()
                        await trio.sleep_forever()
            finally:
                self._running = False

    async def _recheck_periodically(self) -> None:
        while True:
            await trio.sleep(self.limits.credentials_recheck_ms / 1000)
            self.recheck_credentials()

    async def _shutdown(self) -> None:
        """Orderly stop: sessions and connections first (trap 9: libp2p raises "Nursery is
        closed" if hosts stop with live connections), then listeners, then libp2p."""
        self._running = False
        await self._close_all()
        await self._close_listeners()
        self._core_scope.cancel()

    def _build_host(self):
        install_muxer()
        host = new_host(
            key_pair=self._keypair,
            sec_opt=self._security_options(),
            muxer_opt={TProtocol(YAMUX_PROTOCOL_ID): NonBlockingReadYamux},  # muxer.py: py-libp2p's read loop can deadlock
            connection_config=ConnectionConfig(
                # One connection per peer; also skips the 250 ms "happy eyeballs" wait (trap 3).
                max_connections_per_peer=1,
                max_connections=2 * PEERS_MAX,
                min_connections=0,
                low_watermark=0,
                high_watermark=2 * PEERS_MAX,
                dial_timeout=self.limits.dial_timeout_ms / 1000,
                auto_connect_interval=3600.0,
            ),
        )
        swarm = host.get_network()
        swarm.retry_config.max_retries = 0  # the supervisor owns retries and backoff

        # libp2p's auto-connector would dial every peer in the peerstore to reach its
        # watermarks, ignoring the lower-id dial rule and our bans. Dialing is ours.
        async def _no_auto_connect() -> None:
            return None

        swarm.auto_connector.maybe_connect = _no_auto_connect
        return host

    def _security_options(self) -> dict:
        """The security transports we offer and accept, in order of preference."""
        noise25519 = {TProtocol(NOISE_PROTOCOL_ID): NoiseTransport(self._keypair, noise_privkey=create_x25519_key_pair().private_key)}
        if self._suite.name != "sm":
            return noise25519
        channel = SmNoiseTransport(
            host_keypair=self._keypair,
            suite_name=self._suite.name,
            consensus_priv=self._consensus_priv,
            consensus_pub=self._consensus_pub,
            genesis_hash=self.genesis_hash,
            credentials=self._credentials,
            peers=lambda: self._table,
            verify_credentials=self._verify_credentials,
            penalties=self._penalties,
            counters=self.counters,
            label=self._label,
            handshake_timeout_ms=self.limits.handshake_timeout_ms,
        )
        return {SM_PROTOCOL_ID: channel, **(noise25519 if self._p2p_noise25519 else {})}

    def _gate_library_handlers(self) -> None:
        """Wrap libp2p's own handlers (identify, ping, pubsub) so they serve only peers
        whose Hello verified."""
        handlers = self._host.get_mux().handlers
        for protocol, handler in list(handlers.items()):
            if protocol is None or handler is None or protocol.startswith(REQUEST_PROTOCOL_PREFIX):
                continue
            handlers[protocol] = self._gated(handler)

    def _gated(self, handler):
        async def gated(stream) -> None:
            s = await self._verified_session(stream)
            if s is None:
                await self._reset_stream(stream)
                return
            await handler(stream)

        return gated

    async def _close_all(self) -> None:
        with trio.move_on_after(2 * CLOSE_TIMEOUT_S):
            for s in list(self._sessions.values()):
                s.fail("shutting down")
            async with trio.open_nursery() as nursery:
                for conns in list(self._host.get_network().connections.values()):
                    for conn in list(conns):
                        nursery.start_soon(self._close_conn, conn)

    async def _close_listeners(self) -> None:
        """Stop accepting before libp2p itself stops. py-libp2p runs each TCP listener in a
        *system* task that the swarm closes only at the very end of its shutdown; if that
        shutdown is interrupted the listener outlives the node and keeps accepting."""
        with trio.move_on_after(2 * CLOSE_TIMEOUT_S):
            for listener in list(self._host.get_network().listeners.values()):
                try:
                    await listener.close()
                except TRANSPORT_ERRORS as exc:
                    log.debug("%s: closing a listener failed: %s", self._label, exc)

    # ---- admission and sessions ----------------------------------------------------------

    def _index_of(self, peer_id: ID) -> int | None:
        if peer_id == self._id:
            return self._table.get(self.peer_id).index if self._table.get(self.peer_id) else -1
        info = self._table.get(peer_id)
        return info.index if info else None

    def _established(self, peer: int | str) -> _Session | None:
        info = self._table.get(peer)
        if info is None:
            return None
        s = self._sessions.get(info.peer_id)
        return s if s is not None and s.established else None

    def _ensure_session(self, conn) -> _Session | None:
        """The session of this connection, created on first sight; None if refused."""
        remote: ID = conn.muxed_conn.peer_id
        pid = remote.to_base58()
        s = self._sessions.get(pid)
        if s is not None and s.muxed is conn.muxed_conn:
            return s
        if not self._running or self._nursery is None or conn.muxed_conn in self._ended:
            return None
        info = self._table.get(pid)
        if info is None or pid == self.peer_id:
            self._refuse(conn, pid, "not admitted")
            return None
        if self._penalties.banned(pid, _now_ms()):
            self._refuse(conn, pid, "banned", level=logging.DEBUG)
            return None
        if s is not None:
            # A newer connection replaces the old one (the peer restarted, or the old
            # connection is a stale leftover that has not noticed it is dead).
            s.fail("replaced by a new connection")
        s = _Session(info, conn, initiator=self._id_bytes < remote.to_bytes(), limits=self.limits)
        self._sessions[pid] = s
        try:
            self._nursery.start_soon(self._run_session, s)
        except RuntimeError:  # our nursery is closing: shutting down
            del self._sessions[pid]
            return None
        return s

    def _refuse(self, conn, pid: str, reason: str, level: int = logging.WARNING) -> None:
        # Streams on a refused connection come back here until it closes: one line each.
        if conn.muxed_conn in self._refused:
            return
        self._refused.add(conn.muxed_conn)
        self.counters.inc("refused:" + reason.replace(" ", "_"))
        log.log(level, "%s: refused connection from %s: %s", self._label, pid, reason)
        if self._nursery is not None:
            try:
                if reason == "not admitted":
                    self._nursery.start_soon(self._close_conn_after, conn, NOT_ADMITTED_GRACE_S)
                else:
                    self._nursery.start_soon(self._close_conn, conn)
            except RuntimeError:
                pass

    async def _close_conn_after(self, conn, delay_s: float) -> None:
        await trio.sleep(delay_s)
        await self._close_conn(conn)

    def _on_disconnected(self, conn) -> None:
        s = self._sessions.get(conn.muxed_conn.peer_id.to_base58())
        if s is not None and s.muxed is conn.muxed_conn:
            s.fail("connection closed")

    async def _run_session(self, s: _Session) -> None:
        info = s.info
        try:
            with s.scope:
                try:
                    with trio.fail_after(self.limits.handshake_timeout_ms / 1000):
                        if s.initiator:
                            s.hello_started = True
                            stream = await self._host.new_stream(info.id, [HELLO_PROTOCOL])
                            try:
                                await self._exchange_hello(s, stream)
                            finally:
                                await self._close_stream(stream)
                            pbft = await self._host.new_stream(info.id, [PBFT_PROTOCOL])
                        else:
                            await s.verified.wait()
                            await s.stream_ready.wait()
                            pbft = s.pbft_stream
                except trio.TooSlowError:
                    s.fail("handshake timeout")
                    return
                except ProtocolViolation as v:
                    s.fail(v)
                    return
                except _RefusedByPeer as r:
                    s.fail(f"{REFUSED_BY_PEER}: {r}")
                    return
                except TRANSPORT_ERRORS as exc:  # stale connection, stream refused, peer gone
                    s.fail(f"handshake failed ({type(exc).__name__})")
                    return
                s.channel = PeerChannel(info.index, pbft, self.limits, self._inbox, s.bucket, self.counters, _now_ms)
                s.security = getattr(getattr(s.muxed, "secured_conn", None), "negotiated_security_protocol", "") or "unknown"
                s.established = True
                self.counters.inc("connects")
                self.counters.inc("connects_security:" + s.security)
                self._supervisor.established(info.peer_id)
                log.info("%s: peer %d connected (%s, %s)", self._label, info.index, "dialer" if s.initiator else "listener", s.security)
                self._pulse()
                await s.channel.run()
                s.fail(s.channel.end)
        finally:
            await self._end_session(s)

    async def _end_session(self, s: _Session) -> None:
        s.done.set()
        self._ended.add(s.muxed)
        if self._sessions.get(s.info.peer_id) is s:
            del self._sessions[s.info.peer_id]
        end = s.end if s.end is not None else "cancelled"
        if isinstance(end, CredentialsRefused):
            ban_ms = self._penalties.strike(s.info.peer_id, _now_ms())
            self.counters.inc("disconnects:" + end.reason.replace(" ", "_"))
            log.warning("%s: refused peer %s (peer %d): %s; disconnected, banned for %d ms", self._label, s.info.peer_id,
                        s.info.index, end, ban_ms)
        elif isinstance(end, ProtocolViolation):
            ban_ms = self._penalties.strike(s.info.peer_id, _now_ms())
            self.counters.inc("disconnects:" + end.reason.replace(" ", "_"))
            log.warning("%s: peer %d (%s) misbehaved: %s; disconnected, banned for %d ms", self._label, s.info.index,
                        s.info.peer_id, end, ban_ms)
        elif end.startswith(REFUSED_BY_PEER):
            self.counters.inc("disconnects:" + REFUSED_BY_PEER.replace(" ", "_"))
            log.warning("%s: peer %d (%s) refused our hello: %s", self._label, s.info.index, s.info.peer_id,
                        end[len(REFUSED_BY_PEER) + 2:])
        else:
            reason = end.split(" (")[0]
            self.counters.inc("disconnects:" + reason.replace(" ", "_"))
            if s.established:
                log.info("%s: peer %d disconnected: %s", self._label, s.info.index, end)
            else:
                log.info("%s: session with peer %d ended before it was established: %s", self._label, s.info.index, end)
        with trio.CancelScope(shield=True):
            await self._close_conn(s.conn)
        if s.pbft_stream is not None:
            with trio.CancelScope(shield=True):
                await self._reset_stream(s.pbft_stream)
        self._pulse()
        self._supervisor.wake()

    async def _exchange_hello(self, s: _Session, stream) -> None:
        """Hello each way, then Verdict each way (handshake.py). Raises ProtocolViolation if
        we refuse the peer (after telling it why), _RefusedByPeer if it refuses us."""
        ours = make_hello(self._suite, self._consensus_priv, self._consensus_pub, self.genesis_hash, self._id_bytes,
                          s.muxed.peer_id.to_bytes(), self._credentials)
        await stream.write(encode_frame(ours.encode()))
        frames = FrameReader(stream, max(self.limits.hello_bytes_max, VERDICT_BYTES_MAX), self.limits.read_chunk_bytes)
        try:
            data = await frames.read()
            if len(data) > self.limits.hello_bytes_max:
                raise ProtocolViolation("oversized frame", f"hello of {len(data)} bytes > {self.limits.hello_bytes_max}")
            try:
                hello = Hello.decode(data, max_bytes=self.limits.hello_bytes_max)
            except ProtocolViolation:
                refusal = _verdict_or_none(data)  # a peer that does not admit us says why
                if refusal is not None and not refusal.accepted:
                    raise _RefusedByPeer(refusal) from None
                raise
            info = verify_hello(hello, suite=self._suite, genesis_hash=self.genesis_hash, our_id=self._id_bytes,
                                remote_id=s.muxed.peer_id.to_bytes(), admitted=self._table)
            self._verify_credentials(info, hello.credentials)
        except ProtocolViolation as v:
            # Tell the peer why, best effort: its operator sees the reason in its own log.
            # Then wait (bounded) until it has read the verdict and closed the stream:
            # closing the connection at once could reset the stream before the verdict is
            # read (Yamux drops unread data on a reset).
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                try:
                    await stream.write(encode_frame(Verdict(v.reason, v.detail).encode()))
                    if Verdict.decode(await frames.read()).accepted:  # its own verdict
                        await frames.read()  # EOF once it has read ours
                    # (if it refused us too, it is not reading ours: both sides close now)
                except (ProtocolViolation, *TRANSPORT_ERRORS):
                    pass
            raise
        await stream.write(encode_frame(Verdict("").encode()))
        verdict = Verdict.decode(await frames.read())
        if not verdict.accepted:
            raise _RefusedByPeer(verdict)
        s.credentials = hello.credentials
        s.software = hello.software
        s.verified.set()

    def _verify_credentials(self, info: PeerInfo, credentials: bytes) -> None:
        """Run the node's check on a peer's chain; CredentialsRefused if it refuses."""
        if self._check_credentials is None:
            return
        try:
            self._check_credentials(credentials, info.consensus_pub, info.peer_id)
        except ValueError as exc:  # CertificateError and DecodeError: the peer's chain is refused
            reason = getattr(exc, "reason", None)
            if not isinstance(reason, str) or not reason:
                reason = CREDENTIALS_CHECK_FAILED
                detail = f"{type(exc).__name__}: {exc}"
            else:
                detail = str(exc)
            raise CredentialsRefused(reason, detail) from None

    async def _verified_session(self, stream) -> _Session | None:
        """The session of a stream's connection once its Hello verified (waiting for it,
        bounded); None if the peer is not admitted or never verifies."""
        s = self._session_of_stream(stream)
        if s is None:
            return None
        with trio.move_on_after(self.limits.handshake_timeout_ms / 1000):
            await s.verified.wait()
        if not s.verified.is_set() or s.done.is_set():
            return None
        return s

    # ---- stream handlers -------------------------------------------------------------

    def _session_of_stream(self, stream) -> _Session | None:
        muxed = getattr(stream, "muxed_conn", None)
        if muxed is None:
            return None
        # Prefer the swarm's own connection object, so closing it updates the swarm.
        for conn in self._host.get_network().get_connections(muxed.peer_id):
            if conn.muxed_conn is muxed:
                return self._ensure_session(conn)
        return self._ensure_session(_ConnView(muxed))

    async def _on_hello_stream(self, stream) -> None:
        s = self._session_of_stream(stream)
        if s is None:
            muxed = getattr(stream, "muxed_conn", None)
            if muxed is not None and muxed in self._refused and self._table.get(muxed.peer_id.to_base58()) is None:
                await self._tell_not_a_member(stream)
            await self._reset_stream(stream)
            return
        if s.initiator or s.hello_started:
            s.fail(ProtocolViolation("unexpected hello stream"))
            await self._reset_stream(stream)
            return
        s.hello_started = True
        try:
            with trio.fail_after(self.limits.handshake_timeout_ms / 1000):
                await self._exchange_hello(s, stream)
        except ProtocolViolation as v:
            s.fail(v)
        except _RefusedByPeer as r:
            s.fail(f"{REFUSED_BY_PEER}: {r}")
        except trio.TooSlowError:
            s.fail("handshake timeout")
        except TRANSPORT_ERRORS as exc:
            s.fail(f"handshake failed ({type(exc).__name__})")
        finally:
            await self._close_stream(stream)

    async def _tell_not_a_member(self, stream) -> None:
        """Answer a non-admitted peer's hello with the reason (best effort, bounded)."""
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            try:
                frames = FrameReader(stream, self.limits.hello_bytes_max, self.limits.read_chunk_bytes)
                await frames.read()  # its hello: unread data would be dropped with the reset
                await stream.write(encode_frame(Verdict(UNKNOWN_PEER, NOT_A_MEMBER).encode()))
                await frames.read()  # EOF once it has read the verdict
            except (ProtocolViolation, *TRANSPORT_ERRORS):
                pass

    async def _on_pbft_stream(self, stream) -> None:
        s = await self._verified_session(stream)
        if s is None:
            await self._reset_stream(stream)
            return
        if s.initiator or s.pbft_stream is not None:
            s.fail(ProtocolViolation("unexpected consensus stream"))
            await self._reset_stream(stream)
            return
        s.pbft_stream = stream
        s.stream_ready.set()
        # libp2p releases the stream when its handler returns: keep this task alive for
        # as long as the session uses the stream (the session runs in our nursery).
        await s.done.wait()

    def _install_request_handler(self, protocol: str) -> None:
        async def handle(stream) -> None:
            await self._serve_request(protocol, stream)

        self._host.set_stream_handler(TProtocol(protocol), handle)

    async def _serve_request(self, protocol: str, stream) -> None:
        s = await self._verified_session(stream)
        if s is None:
            await self._reset_stream(stream)
            return
        if s.inflight_requests >= self.limits.inbound_requests_per_peer_max:
            self.counters.inc("requests_refused_busy")
            await self._reset_stream(stream)
            return
        if not s.bucket.take(_now_ms()):
            s.fail(ProtocolViolation(RATE_EXCEEDED, "requests"))
            await self._reset_stream(stream)
            return
        s.inflight_requests += 1
        try:
            with trio.fail_after(self.limits.request_timeout_ms / 1000):
                request = await read_frame(stream, self.limits.request_bytes_max, self.limits.read_chunk_bytes)
                self.counters.inc("requests_in")
                try:
                    response = await self._handlers[protocol](s.info.index, request)
                    assert type(response) is bytes, f"the {protocol} handler returned {type(response).__name__}, not bytes"
                    if len(response) > self.limits.response_bytes_max:
                        raise NetworkError(f"response of {len(response)} bytes exceeds response_bytes_max")
                    reply = bytes([STATUS_OK]) + response
                except (DecodeError, NetworkError) as exc:
                    # The request is malformed or cannot be served: answered with the error, not
                    # penalised, since a peer of another version (a rolling upgrade) sends requests
                    # this one cannot decode, and the frame limits already bound what it costs.
                    self.counters.inc("requests_failed")
                    log.warning("%s: %s handler refused a request of peer %d: %s", self._label, protocol, s.info.index,
                                str(exc)[:ERROR_TEXT_BYTES_MAX])
                    text = f"{type(exc).__name__}: {exc}".encode("utf-8", "replace")[:ERROR_TEXT_BYTES_MAX]
                    reply = bytes([STATUS_ERROR]) + text
                await stream.write(encode_frame(reply))
        except ProtocolViolation as v:
            s.fail(v)
        except trio.TooSlowError:
            self.counters.inc("requests_timed_out")
        except TRANSPORT_ERRORS:  # the requester went away
            self.counters.inc("requests_aborted")
        finally:
            s.inflight_requests -= 1
            await self._close_stream(stream)

    # ---- dialing -----------------------------------------------------------------------

    def _dial_targets(self) -> list[PeerInfo]:
        """Peers to dial now. The lower peer id dials; but a node that lists no address
        for itself (an observer behind NAT) cannot be dialed, so it dials everyone."""
        if not self._running:
            return []
        me = self._table.get(self.peer_id)
        dial_all = me is not None and not me.addrs
        return [p for p in self._table if p.peer_id != self.peer_id and p.addrs
                and (dial_all or self._id_bytes < p.id.to_bytes()) and p.peer_id not in self._sessions]

    async def _dial(self, info: PeerInfo) -> None:
        swarm = self._host.get_network()
        swarm.unblock_peer(info.id)  # clear the 60 s negative dial cache (trap 4)
        # A connection that libp2p marked closed would be returned by `connect` as if
        # alive. Give an orderly close time to finish (retry later); one that never
        # finishes (its close was interrupted inside libp2p) is forgotten.
        for conn in list(swarm.get_connections(info.id)):
            if conn.event_closed.is_set() or conn.muxed_conn.is_closed:
                first_ms = self._closing_since.setdefault(conn, _now_ms())
                if _now_ms() - first_ms < 2 * CLOSE_TIMEOUT_S * 1000:
                    raise NetworkError("the previous connection is still closing")
                self.counters.inc("forced_closes")
                self._forget_conn(conn)
        try:
            with trio.fail_after(self.limits.dial_timeout_ms / 1000):
                # DNS names with the system resolver (reachability.py says why not libp2p's).
                addrs, failed = await resolve_all(info.addrs)
                if not addrs:
                    raise NetworkError(f"no address of peer {info.index} resolves: {'; '.join(failed)}")
                # Only the addresses the chain lists: libp2p's peerstore also takes the
                # peer's own signed records (gossipsub), which name its *listen* addresses,
                # 0.0.0.0 among them, and would dial those (this node itself, on one port
                # everywhere). No await between this and the dial reading the peerstore.
                self._host.get_peerstore().clear_addrs(info.id)
                await self._host.connect(Libp2pPeerInfo(info.id, addrs))
        except (trio.TooSlowError, NetworkError, *TRANSPORT_ERRORS):
            self.counters.inc("dials_failed")  # the supervisor logs why and retries
            raise

    # ---- small helpers -----------------------------------------------------------------

    def _check_payload(self, payload: bytes) -> None:
        if type(payload) is not bytes or not payload or len(payload) > self.limits.frame_bytes_max:
            # Our own consensus produced it: a broken internal invariant, fail loudly.
            raise ValueError(f"a consensus frame is 1..{self.limits.frame_bytes_max} bytes")

    def _pulse(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def _close_conn(self, conn) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S) as scope:
            try:
                await conn.close()
            except TRANSPORT_ERRORS as exc:
                log.debug("%s: closing a connection failed: %s", self._label, exc)
        if scope.cancelled_caught:
            # An orderly close got stuck (a peer that stops reading can block even the
            # GO_AWAY write). libp2p marked the connection closed before blocking, so no
            # later close would finish it: drop the socket and forget the connection, or
            # `connect` would keep returning this zombie and the peer could never return.
            self.counters.inc("forced_closes")
            self._forget_conn(conn)
            with trio.move_on_after(CLOSE_TIMEOUT_S):
                try:
                    await conn.muxed_conn.secured_conn.close()
                except TRANSPORT_ERRORS as exc:
                    log.debug("%s: dropping a connection's socket failed: %s", self._label, exc)

    def _forget_conn(self, conn) -> None:
        self._host.get_network().remove_conn(conn)

    async def _close_stream(self, stream) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            try:
                await stream.close()
            except TRANSPORT_ERRORS:
                pass

    async def _reset_stream(self, stream) -> None:
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            try:
                await stream.reset()
            except TRANSPORT_ERRORS:
                pass


class _ConnView:
    """Lets a stream's muxed connection stand in for its SwarmConn in `_ensure_session`."""

    def __init__(self, muxed) -> None:
        self.muxed_conn = muxed

    async def close(self) -> None:
        await self.muxed_conn.close()

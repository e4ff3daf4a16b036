"""The channel port: JSON-RPC and subscriptions for dApps over the chain's secure channel
(docs/rpc.md, "The channel port"; the handshake: chainnode.channel).

A dApp connects over TCP and starts the channel handshake (purpose "rpc") as the
initiator, presenting its client certificate chain (`chainnode ca issue-client`); the
node answers with its consensus key and node chain. The node accepts a client whose chain
verifies against the genesis CA now, is not revoked on chain, is a client certificate, and
certifies the static key the client proved it holds (chainnode.security.clients). After the
handshake each channel message is one UTF-8 JSON text, exactly what the WebSocket endpoint
speaks: requests and batches, responses, subscribe / unsubscribe and the pushed
subscription notifications. Before the node ends a session for a reason it sends

    {"jsonrpc":"2.0","method":"close","params":{"code":<int>,"reason":<str>}}

Sessions run through the RpcApp's dispatcher, rate limiter and
chainnode.rpc.subscriptions.serve_session (behind ASGI-style receive/send adapters), so
their behaviour and limits are the WebSocket path's; the client certificate's role limits
what it may call (chainnode.security.roles; refused calls get FORBIDDEN). The limits of
our own: connections open at once (handshaking ones included), the handshake deadline, and
a growing ban of an address that breaks the protocol (a bad handshake message, a forged or
flipped packet), as the network bans a peer whose Hello fails.
At every committed block the live sessions' certificates are checked again (revocation,
expiry): a session whose certificate fails is closed with the reason.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import trio

from chainnode.channel import ChannelError, ChannelRefused, Payload
from chainnode.channel.functions import static_public_key
from chainnode.channel.handshake import BAD_HANDSHAKE, BAD_PAYLOAD, BAD_VERDICT, OVERSIZED_FRAME
from chainnode.channel.stream import BAD_FRAME, SecureStream, secure
from chainnode.network.policing import PenaltyBox
from chainnode.rpc.server import RpcApp, check_port_free
from chainnode.rpc.subscriptions import CLOSE_GRACE_MS, CLOSE_POLICY, serve_session
from chainnode.security.certs import REASON_KEY_MISMATCH, CertChain, Certificate, CertificateError, format_ms
from chainnode.security.clients import client_fix, recheck_client, verify_client
from chainnode.security.roles import refusal

log = logging.getLogger("chainnode.rpc.channel")

CLOSE_TOO_BIG = 1009  # a message over the size limit (RFC 6455's code for it)
# Refusal reasons of our own (the certificate ones are chainnode.security.certs.REASON_*).
REASON_NOT_A_CLIENT = "not a client"
REASON_WRONG_CHAIN = "wrong chain"
REASON_HANDSHAKE_TIMEOUT = "handshake timeout"
REASON_TOO_MANY = "too many connections"
REASON_BANNED = "banned"
# What an honest client never does (a crash can end a connection, but not flip a bit, forge
# a packet or send a 20 KB first message): the address is banned for a while, growing with
# each strike, as a peer that fails its Hello is. Certificate refusals are not violations.
VIOLATIONS = frozenset({BAD_HANDSHAKE, BAD_PAYLOAD, BAD_VERDICT, OVERSIZED_FRAME, BAD_FRAME})


@dataclass(frozen=True)
class ChannelLimits:
    connections_max: int = 256  # open at once, handshaking ones included
    handshake_timeout_ms: int = 5_000  # from the TCP accept to the end of the handshake
    message_bytes_max: int = 4 << 20  # one message from the client (the WebSocket path's body limit)
    send_timeout_ms: int = 30_000  # one message the client must take
    ban_base_ms: int = 2_000  # the first ban of an address after a violation; doubles per strike
    ban_max_ms: int = 60_000
    ban_forget_ms: int = 600_000  # strikes are forgotten after this long without one

    @classmethod
    def from_config(cls, limits: Any) -> "ChannelLimits":
        """From chainnode.node.config.Limits."""
        return cls(
            connections_max=limits.channel_connections_max,
            handshake_timeout_ms=limits.channel_handshake_timeout_ms,
            message_bytes_max=limits.rpc_body_bytes_max,
            send_timeout_ms=limits.rpc_send_timeout_ms,
        )


@dataclass(frozen=True)
class Credentials:
    """What the node presents and trusts on this port (from chainnode.security.admission)."""

    suite_name: str
    certified_priv: bytes  # the node's consensus key: the channel's static key
    genesis_hash: bytes
    node_chain: bytes  # the node's encoded certificate chain
    roots: tuple[Certificate, ...]  # the genesis root CAs
    revoked: Callable[[], Iterable[bytes]]  # the on-chain revocation list, current
    now_ms: Callable[[], int]


@dataclass(frozen=True)
class Client:
    """An accepted client: its verified chain (the leaf says who and which role)."""

    chain: CertChain

    @property
    def role(self) -> str:
        return self.chain.leaf.role

    @property
    def name(self) -> str:
        return f"{self.chain.leaf.subject!r} ({self.chain.leaf.organisation}, role {self.role})"


class _Connection:
    """One channel connection: its socket, and once keyed, its client and session scope."""

    def __init__(self, stream: trio.SocketStream, address: str) -> None:
        self.stream = stream
        self.address = address
        self.client: Client | None = None
        self.channel: SecureStream | None = None
        self.scope = trio.CancelScope()  # the session; cancelled to end it with `close_reason`
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False

    def end(self, code: int, reason: str) -> None:
        """End the session: the close message goes out once its tasks have stopped."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
        self.scope.cancel()

    def abort(self) -> None:
        """Close the socket at once (a client that takes no data)."""
        self.stream.socket.close()


class ChannelServer:
    def __init__(self, app: RpcApp, credentials: Credentials, limits: ChannelLimits | None = None) -> None:
        assert app.hub is not None, "the channel port serves subscriptions: the RpcApp needs its SubscriptionHub"
        self.app = app
        self.credentials = credentials
        self.limits = limits or ChannelLimits()
        self._payload = Payload("node", credentials.genesis_hash, credentials=credentials.node_chain)
        self.connections: set[_Connection] = set()
        self.refused: Counter[str] = Counter()  # handshakes refused or failed, by reason (metrics)
        self.sessions_closed: Counter[str] = Counter()  # sessions we ended, by reason (revoked, expired, ...)
        self.handshakes = 0  # accepted
        self.penalties = PenaltyBox(self.limits.ban_base_ms, self.limits.ban_max_ms, self.limits.ban_forget_ms)

    @property
    def sessions_open(self) -> int:
        return sum(1 for c in self.connections if c.client is not None)

    # ---- the client check (in the handshake) --------------------------------------------------

    def check(self, remote: Payload, remote_static: bytes) -> Client:
        """The channel handshake's `check`: a Client, or ChannelRefused saying why and what to do."""
        c = self.credentials
        if remote.role != "client":
            raise ChannelRefused(
                REASON_NOT_A_CLIENT, "this is a node's channel port for dApps and the SDK; nodes connect to each other on the p2p port"
            )
        if remote.genesis_hash not in (b"", c.genesis_hash):
            raise ChannelRefused(
                REASON_WRONG_CHAIN,
                f"this node serves the chain with genesis {c.genesis_hash.hex()}, not {remote.genesis_hash.hex()}; connect to a node of your chain",
            )
        try:
            chain = verify_client(remote.credentials, c.roots, c.now_ms(), c.revoked())
        except CertificateError as exc:
            raise ChannelRefused(exc.reason, f"{client_fix(exc.reason)}. ({exc})") from None
        if static_public_key(c.suite_name, chain.leaf.public_key) != remote_static:
            raise ChannelRefused(REASON_KEY_MISMATCH, f"{client_fix(REASON_KEY_MISMATCH)}: the {chain.leaf.label()} certifies another key")
        return Client(chain)

    def _strike(self, address: str, error: ChannelError) -> None:
        ban_ms = self.penalties.strike(address, trio.current_time() * 1000)
        log.warning("channel: a client from %s broke the protocol: %s; banned for %d ms", address, error, ban_ms)

    # ---- after every block ------------------------------------------------------------------

    def on_commit(self, height: int) -> None:
        """A commit listener (must not block): end the sessions whose certificate was revoked
        or expired since their handshake."""
        c = self.credentials
        now, revoked = c.now_ms(), frozenset(c.revoked())
        for conn in list(self.connections):
            if conn.client is None or conn.close_code is not None:
                continue
            try:
                recheck_client(conn.client.chain, now, revoked)
            except CertificateError as exc:
                log.info("channel: closing the session of %s from %s at block %d: %s", conn.client.name, conn.address, height, exc)
                self.sessions_closed[exc.reason] += 1
                conn.end(CLOSE_POLICY, f"{exc.reason}: {exc}; {client_fix(exc.reason)}")

    # ---- connections --------------------------------------------------------------------------

    async def connection(self, stream: trio.SocketStream) -> None:
        try:
            address = str(stream.socket.getpeername()[0])
        except OSError:  # gone before we looked
            await stream.aclose()
            return
        if len(self.connections) >= self.limits.connections_max:
            # No channel yet to say why in: the client sees the connection closed.
            self.refused[REASON_TOO_MANY] += 1
            log.debug("channel: refusing a connection from %s: %d open (the limit)", address, len(self.connections))
            await stream.aclose()
            return
        if self.penalties.banned(address, trio.current_time() * 1000):
            self.refused[REASON_BANNED] += 1
            log.debug("channel: refusing a connection from %s: banned after a protocol violation", address)
            await stream.aclose()
            return
        conn = _Connection(stream, address)
        self.connections.add(conn)
        try:
            await self._serve(conn)
        except Exception:
            # A bug of ours must cost this connection only, never the port or the node.
            log.exception("channel: internal error serving a client from %s", address)
        finally:
            self.connections.discard(conn)
            await stream.aclose()

    async def _serve(self, conn: _Connection) -> None:
        c = self.credentials
        with trio.move_on_after(self.limits.handshake_timeout_ms / 1000) as deadline:
            try:
                channel = await secure(
                    conn.stream, initiator=False, suite_name=c.suite_name, purpose="rpc", certified_priv=c.certified_priv,
                    payload=self._payload, check=self.check, message_bytes_max=self.limits.message_bytes_max,
                )
            except ChannelError as exc:
                self.refused[exc.reason] += 1
                if exc.reason in VIOLATIONS:
                    self._strike(conn.address, exc)
                else:
                    log.info("channel: refused a client from %s: %s", conn.address, exc)
                return
            except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                self.refused["connection closed"] += 1
                log.debug("channel: a client from %s left during the handshake: %s", conn.address, exc)
                return
        if deadline.cancelled_caught:
            self.refused[REASON_HANDSHAKE_TIMEOUT] += 1
            log.info("channel: a client from %s did not finish the handshake within %d ms", conn.address, self.limits.handshake_timeout_ms)
            return
        conn.channel, conn.client = channel, channel.handshake.accepted
        self.handshakes += 1
        leaf = conn.client.chain.leaf
        log.info("channel: session opened for %s from %s (certificate serial %s, valid until %s)",
                 conn.client.name, conn.address, f"{leaf.serial:x}", format_ms(leaf.not_after_ms))
        await self._session(conn)
        log.info("channel: session of %s from %s ended%s", conn.client.name, conn.address, f": {conn.close_reason}" if conn.close_reason else "")

    async def _session(self, conn: _Connection) -> None:
        channel, role = conn.channel, conn.client.role
        send_timeout_s = self.limits.send_timeout_ms / 1000

        async def send_text(text: str) -> None:
            data = text.encode()
            if len(data) > channel.message_bytes_max:
                limit = channel.message_bytes_max
                conn.end(CLOSE_TOO_BIG, f"a response of {len(data)} bytes exceeds the channel's {limit}-byte message limit; ask for less at once")
                raise trio.BrokenResourceError("response too large")
            with trio.move_on_after(send_timeout_s):
                await channel.send_message(data)
                return
            conn.abort()
            raise trio.BrokenResourceError(f"the client took no data for {send_timeout_s} s")

        async def receive() -> dict:
            try:
                data = await channel.receive_message()
            except ChannelError as exc:  # a bad or oversized frame, or the client hung up mid-message
                if exc.reason == OVERSIZED_FRAME:  # a large batch, say: the client is told, not banned
                    conn.end(CLOSE_TOO_BIG, f"{exc.detail}; send smaller messages (split large batches)")
                elif exc.reason != "connection closed":
                    if exc.reason in VIOLATIONS:
                        self._strike(conn.address, exc)
                    conn.end(CLOSE_POLICY, f"{exc}; the channel cannot continue, reconnect")
                return {"type": "websocket.disconnect"}
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return {"type": "websocket.disconnect"}
            try:
                return {"type": "websocket.receive", "text": data.decode("utf-8")}
            except UnicodeDecodeError:  # the dispatcher answers it with a parse error that says where
                return {"type": "websocket.receive", "bytes": data}

        async def send(message: dict) -> None:
            if message["type"] == "websocket.send":
                await send_text(message["text"])
            elif message["type"] == "websocket.close":
                conn.close_code, conn.close_reason = message.get("code", 1000), message.get("reason", "")
                await send_close(conn)

        async def send_close(conn: _Connection) -> None:
            conn.close_sent = True
            text = json.dumps({"jsonrpc": "2.0", "method": "close", "params": {"code": conn.close_code, "reason": conn.close_reason}})
            await send_text(text)

        def policy(method: str) -> str | None:
            return refusal(role, method)

        async def handle(data: bytes | str) -> bytes | None:
            return await self.app.handle_message(conn.address, data, policy)

        with conn.scope:
            await serve_session(self.app.hub, receive, send, handle, abort=conn.abort)
        if conn.close_code is not None and not conn.close_sent:
            with trio.move_on_after(CLOSE_GRACE_MS / 1000):
                try:
                    await send_close(conn)
                except (trio.BrokenResourceError, trio.ClosedResourceError, ChannelError) as exc:
                    log.debug("channel: the close message to %s was not delivered: %s", conn.address, exc)


async def serve_channel(server: ChannelServer, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled; `task_status.started` reports the bound address."""
    check_port_free(host, port, "[channel] listen")
    listeners = await trio.open_tcp_listeners(port, host=host, backlog=min(server.limits.connections_max, 4096))
    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, server.connection, listeners)
        task_status.started([f"{host}:{port}"])

"""JSON-RPC over a node's channel port: the secure channel (chainnode.channel, purpose "rpc")
keyed by the client's certified account key, then UTF-8 JSON text messages exactly as on the
node's WebSocket (requests, responses, subscribe/unsubscribe, pushed notifications).

    chainnode://127.0.0.1:20200

One `ChannelConnection` per node carries every request of a `Client` at once: each request
has its own id and its response wakes only the task that sent it; notifications go to the
subscription they name. The client proves its certificate (the chain file `chainnode ca
issue-client` wrote for its key) and checks the node's: a chain under the same consortium
CA, for a node, whose certified key is the channel's static key. A node that refuses us
says why in the handshake's verdict, and `RefusedByNode` prints it with what to do.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any, Sequence

import trio

from chainnode.channel import ChannelError, ChannelRefused, Payload, RefusedByPeer
from chainnode.channel.functions import static_public_key
from chainnode.channel.stream import SecureStream, secure
from chainnode.client.account import Account
from chainnode.client.errors import RefusedByNode, node_error
from chainnode.security.certs import CertChain, Certificate, CertificateError, read_certs, read_chain_file, verify_chain

log = logging.getLogger("chainnode.client")

CHANNEL_SCHEME = "chainnode://"
CHANNEL_PORT_DEFAULT = 20200
CONNECT_TIMEOUT_S = 10.0  # TCP connect and the whole handshake
SEND_TIMEOUT_S = 30.0  # one message the node does not take in this time ends the connection
MESSAGE_BYTES_MAX = 16 << 20  # as WS_MESSAGE_BYTES_MAX: a block's events stay far below
NOTIFICATIONS_BUFFERED_MAX = 1024  # per subscription; a consumer this far behind is resubscribed
NOT_A_NODE = "not a consortium node"  # our refusal of the other side (the wire contract's reason)
ANOTHER_CHAIN = "another chain"


def is_channel_url(url: str) -> bool:
    return url.startswith(CHANNEL_SCHEME)


def parse_channel_url(url: str) -> tuple[str, int]:
    """("host", port) of "chainnode://host:port"; ValueError says what a good one looks like."""
    rest = url[len(CHANNEL_SCHEME):].rstrip("/") if is_channel_url(url) else ""
    host, sep, port_text = rest.rpartition(":")
    host = host.strip("[]")  # an IPv6 literal: chainnode://[::1]:20200
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{url!r} is not a channel URL; write chainnode://HOST:PORT, e.g. chainnode://127.0.0.1:{CHANNEL_PORT_DEFAULT}")
    return host, int(port_text)


@dataclass(frozen=True)
class NodeIdentity:
    """Who answered on a channel: from the node's verified certificate (empty without one)."""

    subject: str
    organisation: str
    role: str
    genesis_hash: bytes


@dataclass(frozen=True)
class ClientCredentials:
    """What a client proves on a channel: its account key (the channel's static key) and the
    chain certifying it; and the root CAs it trusts to certify nodes (by default the root
    its chain file carries)."""

    account: Account
    chain: CertChain | None
    trusted_roots: tuple[Certificate, ...]

    @classmethod
    def load(cls, key: Account | str | os.PathLike, *, password: str | None = None, cert: CertChain | str | os.PathLike | None = None,
             ca: Certificate | Sequence[Certificate] | str | os.PathLike | None = None) -> "ClientCredentials":
        """`key`: an Account, or a key file (then `password`); `cert`: the chain file of `ca
        issue-client --key` for that key; `ca`: the root CA certificates to trust (a PEM
        file of one or more, as the genesis lists them) instead of the chain file's root.
        Raises ValueError (CertificateError, KeyFileError) saying which file is wrong."""
        if isinstance(key, Account):
            account = key
        else:
            if password is None:
                raise ValueError(f"the key file {key} needs its password (password=...)")
            account = Account.load(key, password)
        chain = cert if isinstance(cert, CertChain) or cert is None else read_chain_file(cert)
        if ca is None:
            trusted: tuple[Certificate, ...] = (chain.root,) if chain is not None and chain.root is not None else ()
        elif isinstance(ca, Certificate):
            trusted = (ca,)
        elif isinstance(ca, (str, os.PathLike)):
            trusted = tuple(read_certs(ca))
        else:
            trusted = tuple(ca)
        if chain is not None:
            if chain.leaf.kind != "client":
                raise CertificateError(
                    f"{cert}: a certificate for a {chain.leaf.kind}, not a client; get one with `chainnode ca issue-client --key ...`"
                )
            if chain.leaf.public_key != account.public_key:
                raise CertificateError(
                    f"{cert} certifies another key than this client's ({chain.leaf.subject!r}); pass the chain file that "
                    f"`chainnode ca issue-client --key` wrote for this key"
                )
        return cls(account, chain, trusted)

    def payload(self, genesis_hash: bytes) -> Payload:
        return Payload("client", genesis_hash, credentials=self.chain.encode() if self.chain is not None else b"")

    def check_node(self, remote: Payload, remote_static: bytes, *, genesis_hash: bytes = b"") -> NodeIdentity:
        """The node's identity, or ChannelRefused(NOT_A_NODE) when its certificate does not
        prove it is a node of our consortium holding the channel's key."""
        if remote.role != "node":
            raise ChannelRefused(NOT_A_NODE, f"the other side says it is a {remote.role}")
        if genesis_hash and remote.genesis_hash != genesis_hash:
            raise ChannelRefused(ANOTHER_CHAIN, f"genesis {remote.genesis_hash.hex()[:16]}..., the other nodes' is {genesis_hash.hex()[:16]}...")
        if not self.trusted_roots:
            # No root in our chain file and none given: nothing to verify the node against.
            return NodeIdentity("", "", "", remote.genesis_hash)
        try:
            leaf = verify_chain(CertChain.decode(remote.credentials), self.trusted_roots, int(time.time() * 1000))
        except (CertificateError, ValueError) as exc:
            raise ChannelRefused(NOT_A_NODE, f"its certificate: {exc}") from None
        if leaf.kind != "node":
            raise ChannelRefused(NOT_A_NODE, f"its certificate is for a {leaf.kind} ({leaf.subject!r})")
        if static_public_key(self.account.suite.name, leaf.public_key) != remote_static:
            raise ChannelRefused(NOT_A_NODE, f"the channel key is not the key certified for {leaf.subject!r}")
        return NodeIdentity(leaf.subject, leaf.organisation, leaf.role, remote.genesis_hash)


async def open_channel(
    url: str, credentials: ClientCredentials, *, genesis_hash: bytes = b"", timeout_s: float = CONNECT_TIMEOUT_S
) -> "ChannelConnection":
    """Connect and run the handshake. Raises `RefusedByNode` (the node refused us, or we it:
    the message says why and what to do) or `ConnectionError` (no answer, a broken handshake)."""
    host, port = parse_channel_url(url)
    stream = None
    try:
        with trio.fail_after(timeout_s):
            stream = await trio.open_tcp_stream(host, port)
            secured = await secure(
                stream, initiator=True, suite_name=credentials.account.suite.name, purpose="rpc", certified_priv=credentials.account.private_key,
                payload=credentials.payload(genesis_hash), check=lambda p, s: credentials.check_node(p, s, genesis_hash=genesis_hash),
                message_bytes_max=MESSAGE_BYTES_MAX,
            )
    except RefusedByPeer as exc:
        await _close_quietly(stream)
        raise RefusedByNode(url, exc.verdict.reason, exc.verdict.detail) from None
    except ChannelRefused as exc:
        await _close_quietly(stream)
        raise RefusedByNode(url, exc.reason, exc.detail, by_us=True) from None
    except ChannelError as exc:
        await _close_quietly(stream)
        hint = "is this the node's channel port, of a chain of the same suite?"
        raise ConnectionError(f"the channel handshake with {url} failed ({exc}); {hint}") from None
    except trio.TooSlowError:
        await _close_quietly(stream)
        raise ConnectionError(f"no channel handshake with {url} within {timeout_s} s") from None
    except (OSError, trio.BrokenResourceError) as exc:
        await _close_quietly(stream)
        raise ConnectionError(f"{url} ({exc.strerror if isinstance(exc, OSError) and exc.strerror else exc or type(exc).__name__})") from None
    return ChannelConnection(url, secured, secured.handshake.accepted)


async def _close_quietly(stream: trio.abc.Stream | None) -> None:
    if stream is not None:
        with trio.CancelScope(shield=True):
            await stream.aclose()


class _Pending:
    """One request waiting for its response; a subscribe request also brings the channel its
    notifications will go to, registered the moment the response is read (before any of them)."""

    __slots__ = ("done", "reply", "notifications", "batch_ids")

    def __init__(self, notifications: trio.MemorySendChannel | None = None, batch_ids: tuple[int, ...] = ()) -> None:
        self.done = trio.Event()
        self.reply: Any = None  # the response; a list for a batch
        self.notifications = notifications
        self.batch_ids = batch_ids  # a batch's request ids, each a key of the same _Pending


class ChannelConnection:
    """One open channel to a node. `run()` (a task of the owner's nursery) reads every message
    and routes it; `call` and `subscribe` may be used from any number of tasks at once."""

    def __init__(self, url: str, stream: SecureStream, node: NodeIdentity) -> None:
        self.url = url
        self.node = node
        self.protocol = stream.handshake.protocol
        self._stream = stream
        self._ids = itertools.count(1)
        self._pending: dict[int, _Pending] = {}
        self._subscriptions: dict[str, trio.MemorySendChannel] = {}
        self.closed = False
        self.ended = trio.Event()  # set with `closed`
        self.end_reason = ""  # why the connection ended, for the errors of what was waiting
        self._node_close: str = ""  # the reason the node gave in its "close" message

    @property
    def genesis_hash(self) -> bytes:
        return self.node.genesis_hash

    async def run(self) -> None:
        """Read and route messages until the connection ends."""
        try:
            while True:
                self._route(await self._stream.receive_message())
        except ChannelError as exc:
            self._end(exc.reason if exc.reason != "connection closed" else "closed by the node")
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            self._end(f"connection lost ({exc or type(exc).__name__})")
        finally:
            self._end("closed")
            await _close_quietly(self._stream.stream)

    def _route(self, data: bytes) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            log.warning("channel %s: a message that is not JSON; ignored", self.url)
            return
        if isinstance(message, list):
            self._route_batch(message)
            return
        if not isinstance(message, dict):
            return
        method = message.get("method")
        if method == "subscription":
            params = message.get("params")
            if isinstance(params, dict):
                self._notify(params.get("subscription"), params.get("result"))
            return
        if method == "close":
            params = message.get("params") if isinstance(message.get("params"), dict) else {}
            self._node_close = f"{params.get('reason', '')} (code {params.get('code', '?')})"
            return
        if message.get("id") is None and "error" in message:
            # A whole batch refused (too large, say): the answer names no request; give it to a waiting batch.
            pending = next((p for p in self._pending.values() if p.batch_ids), None)
            if pending is not None:
                for request_id in pending.batch_ids:
                    self._pending.pop(request_id, None)
                pending.reply = message
                pending.done.set()
            return
        pending = self._pending.pop(message.get("id"), None) if isinstance(message.get("id"), int) else None
        if pending is None:
            return  # the answer to a request whose caller gave up
        pending.reply = message
        if pending.notifications is not None:
            sub_id = message.get("result")
            if "error" not in message and isinstance(sub_id, str):
                self._subscriptions[sub_id] = pending.notifications
            else:
                pending.notifications.close()
        pending.done.set()

    def _route_batch(self, replies: list) -> None:
        for item in replies:
            pending = self._pending.get(item.get("id")) if isinstance(item, dict) and isinstance(item.get("id"), int) else None
            if pending is not None and pending.batch_ids:
                for request_id in pending.batch_ids:
                    self._pending.pop(request_id, None)
                pending.reply = replies
                pending.done.set()
                return

    def _notify(self, sub_id: Any, result: Any) -> None:
        channel = self._subscriptions.get(sub_id) if isinstance(sub_id, str) else None
        if channel is None:
            return  # unsubscribed meanwhile
        try:
            channel.send_nowait(result)
        except trio.WouldBlock:
            # The consumer fell far behind: end its subscription (it resubscribes from its
            # position, losing nothing) rather than stall every other request's response.
            log.info("channel %s: subscription %s fell %d notifications behind; resubscribing", self.url, sub_id, NOTIFICATIONS_BUFFERED_MAX)
            self._subscriptions.pop(sub_id).close()
        except trio.BrokenResourceError:
            self._subscriptions.pop(sub_id, None)  # its consumer left

    def _end(self, reason: str) -> None:
        if self.closed:
            return
        self.closed = True
        self.ended.set()
        self.end_reason = f"the node closed the channel: {self._node_close}" if self._node_close else reason
        for pending in self._pending.values():
            if pending.notifications is not None:
                pending.notifications.close()
            pending.done.set()
        self._pending.clear()
        for channel in self._subscriptions.values():
            channel.close()
        self._subscriptions.clear()

    def ended_error(self) -> ConnectionError:
        return ConnectionError(f"{self.url}: {self.end_reason}")

    async def _send(self, message: dict | list) -> None:
        if self.closed:
            raise self.ended_error()
        data = json.dumps(message, separators=(",", ":")).encode()
        # A message cut off by a cancellation would leave the stream (and the cipher's
        # nonce) out of step with the node: finish it, or end the connection.
        with trio.CancelScope(shield=True):
            try:
                with trio.fail_after(SEND_TIMEOUT_S):
                    await self._stream.send_message(data)
            except (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                self._end(f"sending failed ({exc or type(exc).__name__})")
                await _close_quietly(self._stream.stream)
                raise self.ended_error() from None

    async def call(self, method: str, params: list, *, timeout_s: float, notifications: trio.MemorySendChannel | None = None) -> dict:
        """The node's whole response (a dict with "result" or "error"). `ConnectionError`
        when the connection ends first or no answer comes within `timeout_s`."""
        request_id = next(self._ids)
        pending = _Pending(notifications)
        self._pending[request_id] = pending
        try:
            await self._send({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
            with trio.move_on_after(timeout_s):
                await pending.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if pending.reply is None:
            if notifications is not None:
                notifications.close()
            if self.closed:
                raise self.ended_error()
            raise ConnectionError(f"{self.url}: no answer to {method} within {timeout_s} s")
        return pending.reply

    async def batch(self, calls: list[tuple[str, list]], *, timeout_s: float) -> list[dict]:
        """A JSON-RPC batch in one message: the responses in the order of `calls` (an error
        response for any the node left out). ConnectionError as `call`."""
        ids = tuple(next(self._ids) for _ in calls)
        pending = _Pending(batch_ids=ids)
        for request_id in ids:
            self._pending[request_id] = pending
        try:
            await self._send([{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in zip(ids, calls)])
            with trio.move_on_after(timeout_s):
                await pending.done.wait()
        finally:
            for request_id in ids:
                self._pending.pop(request_id, None)
        if isinstance(pending.reply, list):
            by_id = {r.get("id"): r for r in pending.reply if isinstance(r, dict)}
            return [by_id.get(i, {"error": {"code": -32603, "message": "no answer for this request in the batch reply"}}) for i in ids]
        if isinstance(pending.reply, dict):
            return [pending.reply] * len(calls)
        if self.closed:
            raise self.ended_error()
        raise ConnectionError(f"{self.url}: no answer to a batch of {len(calls)} within {timeout_s} s")

    async def subscribe(self, params: list, *, timeout_s: float) -> tuple[dict, trio.MemoryReceiveChannel]:
        """Subscribe; the response, and the channel its notifications' "result"s arrive on
        (closed when the subscription or the connection ends)."""
        send, receive = trio.open_memory_channel[Any](NOTIFICATIONS_BUFFERED_MAX)
        return await self.call("subscribe", params, timeout_s=timeout_s, notifications=send), receive

    async def unsubscribe(self, group: str, node: str, sub_id: str) -> None:
        """Best effort: the node forgets the subscription with the connection anyway."""
        channel = self._subscriptions.pop(sub_id, None)
        if channel is not None:
            channel.close()
        if not self.closed:
            try:
                await self.call("unsubscribe", [group, node, sub_id], timeout_s=5.0)
            except ConnectionError:
                pass

    async def aclose(self) -> None:
        self._end("closed by the client")
        await _close_quietly(self._stream.stream)


class ChannelSession:
    """A subscription's share of a client's channel connection (chainnode.client.transport.Session)."""

    def __init__(self, connection: ChannelConnection, *, timeout_s: float) -> None:
        self.connection = connection
        self.timeout_s = timeout_s
        self._receivers: dict[str, trio.MemoryReceiveChannel] = {}
        self._base: list = []

    async def call(self, method: str, params: list) -> Any:
        reply = await self.connection.call(method, params, timeout_s=self.timeout_s)
        if "error" in reply:
            raise node_error(reply["error"])
        return reply.get("result")

    async def subscribe(self, params: list) -> str:
        reply, receiver = await self.connection.subscribe(params, timeout_s=self.timeout_s)
        if "error" in reply:
            raise node_error(reply["error"])
        sub_id = reply.get("result")
        self._receivers[sub_id] = receiver
        self._base = list(params[:2])
        return sub_id

    async def notification(self, sub_id: str) -> Any:
        try:
            return await self._receivers[sub_id].receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self.connection.closed:
                raise self.connection.ended_error() from None
            raise ConnectionResetError(f"{self.connection.url}: the subscription fell {NOTIFICATIONS_BUFFERED_MAX} notifications behind") from None

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(5.0):
            for sub_id in self._receivers:
                await self.connection.unsubscribe(self._base[0], self._base[1], sub_id)
        self._receivers.clear()

"""WebSocket subscriptions: newBlocks, contract events and one transaction's receipt,
pushed as JSON-RPC notifications (like Ethereum's eth_subscribe and FISCO BCOS's event
push), on the RPC port the node already serves.

    -> {"jsonrpc":"2.0","id":1,"method":"subscribe","params":["group0","","events",{"address":"0x..","fromBlock":12}]}
    <- {"jsonrpc":"2.0","id":1,"result":"0x3f2a..."}
    <- {"jsonrpc":"2.0","method":"subscription","params":{"subscription":"0x3f2a...","result":{...}}}

How no event is lost or repeated: every block or event subscription is one task with one
cursor, the next height to send. It sends committed blocks from the cursor up to the
committed head (replay and live are the same loop: there is no switch-over to get wrong),
then waits for `SubscriptionHub.on_commit` to announce a higher head. Blocks are read from
the ledger, so a block is sent only once it is durable, and each height exactly once per
subscription. A client that reconnects passes `fromBlock` to resume.

Limits: blocks read per step of a replay (read on a worker thread, one reader for the whole
hub, so clients replaying from 0 share one thread and the event loop never stalls);
subscriptions per connection; connections with a session; bytes queued per connection.
The queue bound covers everything a connection holds: a subscription reads its next chunk
only when the queue has room, one chunk at a time per connection, and the chunk goes into
the queue as encoded text at once (so a connection holds at most `queue_bytes_max` plus
one chunk). A client that lets its queue stay full for `queue_full_timeout_ms` is
disconnected with close code 1008 and a reason saying so; if even the close frame cannot
be written (the client reads nothing), its socket is closed after `CLOSE_GRACE_MS`. A
connection with no subscription that sends nothing for `idle_timeout_ms` is closed (1000),
so idle sockets cannot hold the connection slots that others need.
"""

from __future__ import annotations

import contextvars
import json
import logging
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import trio

from chainnode.crypto import ADDRESS_BYTES, CryptoSuite
from chainnode.protocol.codec import pack
from chainnode.protocol.hexstr import HexError, parse_hex, to_hex
from chainnode.rpc.jsonrpc import INVALID_REQUEST, NOT_FOUND, Dispatcher, Params, RpcError, invalid_params
from chainnode.rpc.jsonview import certificate_json, header_json, receipt_json, value_json
from chainnode.store.ledger import Ledger, block_not_kept_message, header_not_kept_message

log = logging.getLogger("chainnode.rpc.subscriptions")

KINDS = ("newBlocks", "events", "receipt")
HEIGHT_MAX = 2**63 - 1
EVENT_NAME_CHARS_MAX = 256
OPTIONS = {
    "newBlocks": ("fromBlock",),
    "events": ("fromBlock", "address", "name"),
    "receipt": ("transactionHash",),
}
# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_NORMAL = 1000  # idle: nothing subscribed, nothing sent
CLOSE_POLICY = 1008  # the client broke our rules: here, it stopped reading
CLOSE_GOING_AWAY = 1001  # the connection is gone or going
CLOSE_INTERNAL_ERROR = 1011
CLOSE_TRY_AGAIN_LATER = 1013
# How long a close frame may take to be written before we close the socket instead.
CLOSE_GRACE_MS = 1_000

# Set while a WebSocket connection's messages are dispatched, so the shared Dispatcher's
# `subscribe` can find the connection it was called on; None over HTTP POST.
_current_session: contextvars.ContextVar["Session | None"] = contextvars.ContextVar("chainnode_rpc_session", default=None)


@dataclass(frozen=True)
class SubscriptionLimits:
    subscriptions_per_connection_max: int = 64
    connections_max: int = 256  # WebSocket connections open at once (each holds a session)
    queue_bytes_max: int = 1 << 20  # notifications and responses waiting to be written, per connection
    queue_full_timeout_ms: int = 5_000  # how long a full queue may stay full before we disconnect
    idle_timeout_ms: int = 60_000  # a connection with no subscription that sends nothing is closed
    replay_blocks_per_step: int = 64  # blocks read per worker-thread step, then other tasks run
    replay_receipts_per_step: int = 4096  # and receipts (events kind): big blocks end a step early
    replay_readers_max: int = 1  # worker threads reading blocks for all subscriptions together

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            assert type(value) is int and value > 0, f"SubscriptionLimits.{name} must be a positive integer, got {value!r}"

    @classmethod
    def from_config(cls, limits: Any) -> "SubscriptionLimits":
        """From chainnode.node.config.Limits (the rest keep their defaults)."""
        return cls(
            connections_max=limits.rpc_ws_connections_max,
            queue_bytes_max=limits.rpc_ws_queue_bytes_max,
            queue_full_timeout_ms=limits.rpc_ws_queue_full_timeout_ms,
            idle_timeout_ms=limits.rpc_ws_idle_timeout_ms,
        )


class SubscriptionHub:
    """Subscriptions of all WebSocket connections of one node.

    `on_commit(height)` goes in the node's `commit_listeners`: it is called on the event
    loop after block `height` is durable, and only wakes the subscription tasks (it never
    blocks, as a commit listener must not).
    """

    def __init__(self, ledger: Ledger, suite: CryptoSuite, group_id: str, limits: SubscriptionLimits | None = None, *, node_name: str = "") -> None:
        self.ledger = ledger
        self.suite = suite
        self.group_id = group_id
        self.node_name = node_name
        self.limits = limits or SubscriptionLimits()
        # The durable head as announced by on_commit; the ledger's own head may run a moment
        # ahead of the announcement, and we never send a block before it is announced.
        self.head_height = ledger.head_height
        self._head_changed = trio.Event()
        self._reader = trio.CapacityLimiter(self.limits.replay_readers_max)
        self.sessions: set[Session] = set()
        self.disconnected_slow = 0  # for metrics

    # ---- the node's side -------------------------------------------------------------------

    def on_commit(self, height: int) -> None:
        if height > self.head_height:
            self.head_height = height
            event, self._head_changed = self._head_changed, trio.Event()
            event.set()

    def register(self, dispatcher: Dispatcher) -> None:
        """Add `subscribe` and `unsubscribe` to the shared dispatcher. Over HTTP POST they
        answer that subscriptions need a WebSocket connection."""
        dispatcher.register("subscribe", self._subscribe)
        dispatcher.register("unsubscribe", self._unsubscribe)

    def open_session(self, abort: Callable[[], None] | None = None) -> "Session":
        if len(self.sessions) >= self.limits.connections_max:
            raise RpcError(INVALID_REQUEST, f"too many subscription connections (limit {self.limits.connections_max}); try again later")
        session = Session(self, abort)
        self.sessions.add(session)
        return session

    def stats(self) -> dict:
        """For metrics and health: connections, live subscriptions, slow clients dropped."""
        return {
            "connections": len(self.sessions),
            "subscriptions": sum(s.subscription_count for s in self.sessions),
            "disconnectedSlow": self.disconnected_slow,
        }

    # ---- RPC methods ---------------------------------------------------------------------

    def _params(self, params: list, names: list[str], required: int) -> Params:
        p = Params(params, ["group", "node"] + names, required + 2)
        group = p.str(0, max_length=64)
        if group != self.group_id:
            raise invalid_params(f"group {group!r} is not served here; this node serves group {self.group_id!r}")
        node = p.str(1, max_length=64)
        if node and self.node_name and node != self.node_name:
            raise invalid_params(f"node {node!r} is not this node ({self.node_name!r}); pass \"\" for any node")
        return p

    @staticmethod
    def _session() -> "Session":
        session = _current_session.get()
        if session is None:
            raise RpcError(INVALID_REQUEST, "subscriptions need a WebSocket connection (ws://host:port/); plain HTTP POST cannot push notifications")
        return session

    async def _subscribe(self, params: list) -> str:
        p = self._params(params, ["kind", "options"], 1)
        kind = p.str(2, max_length=32)
        if kind not in KINDS:
            raise invalid_params(f"'kind' must be one of {', '.join(KINDS)}; got {kind!r}")
        options = params[3] if len(params) > 3 else {}
        if options is None:
            options = {}
        if not isinstance(options, dict):
            raise invalid_params("'options' must be an object")
        unknown = sorted(set(options) - set(OPTIONS[kind]))
        if unknown:
            raise invalid_params(f"'options' of {kind} takes {', '.join(OPTIONS[kind])}; unknown: {', '.join(map(str, unknown))}")
        session = self._session()  # after the checks, so HTTP callers see bad params first
        sub = _parse_options(kind, options, self.head_height)
        if kind == "newBlocks":
            # A node that started from a snapshot never had the blocks below its oldest header.
            oldest = self.ledger.oldest_header_height()
            if sub.from_block < oldest and oldest > 1:
                raise RpcError(NOT_FOUND, f"cannot replay blocks from block {sub.from_block}: {header_not_kept_message(sub.from_block, oldest)}; "
                                          f"subscribe with fromBlock >= {oldest}", {"oldestHeader": oldest})
        if kind == "events":
            # Events are read from receipts: refused from a block whose body is not kept,
            # rather than starting later and leaving a gap the client cannot see.
            oldest = self.ledger.oldest_block_height()
            if sub.from_block < oldest:
                raise RpcError(NOT_FOUND, f"cannot replay events from block {sub.from_block}: {block_not_kept_message(sub.from_block, oldest)}; "
                                          f"subscribe with fromBlock >= {oldest}", {"oldestBlock": oldest})
        return session.add(sub)

    async def _unsubscribe(self, params: list) -> bool:
        p = self._params(params, ["id"], 1)
        return self._session().remove(p.str(2, max_length=64))

    # ---- reading the ledger (on the worker thread) ------------------------------------------

    async def wait_head_above(self, height: int) -> None:
        while self.head_height <= height:
            await self._head_changed.wait()

    async def read(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await trio.to_thread.run_sync(fn, *args, limiter=self._reader)

    def blocks_view(self, start: int, end: int) -> list[tuple[int, list[Any]]]:
        """Header notifications of heights start..end (inclusive)."""
        out = []
        for height in range(start, end + 1):
            header = self.ledger.get_header(height)
            assert header is not None, f"block {height} is below the announced head {self.head_height} but not in the ledger"
            view = header_json(header, self.suite)
            cert = self.ledger.get_certificate(height)
            view["certificate"] = certificate_json(cert) if cert else None
            out.append((height, [view]))
        return out

    def events_view(self, start: int, end: int, address: bytes | None, name: str | None) -> list[tuple[int, list[Any]]]:
        """Matching event notifications of heights start..end (inclusive), in chain order.
        Stops early, after a whole block, once `replay_receipts_per_step` receipts are read;
        the caller resumes after the last height returned."""
        out = []
        receipts_read = 0
        for height in range(start, end + 1):
            if receipts_read >= self.limits.replay_receipts_per_step:
                break
            found = []
            tx_hashes = self.ledger.get_block_tx_hashes(height)
            receipts = [self.ledger.get_receipt(h) for h in tx_hashes or []]
            if tx_hashes is None or None in receipts:
                # Pruned since the subscription began (it was at or above the oldest body
                # then): a replay slower than the chain. The gap must not pass unseen.
                raise BodyPruned(height, self.ledger.oldest_block_height())
            receipts_read += len(tx_hashes)
            for tx_index, (tx_hash, receipt) in enumerate(zip(tx_hashes, receipts)):
                for log_index, event in enumerate(receipt.events):
                    if (address is None or event.address == address) and (name is None or event.name == name):
                        found.append({
                            "address": to_hex(event.address),
                            "name": event.name,
                            "fields": value_json(event.fields),
                            "raw": to_hex(pack(event.to_fields())),
                            "transactionHash": to_hex(tx_hash),
                            "blockNumber": height,
                            "transactionIndex": tx_index,
                            "logIndex": log_index,
                        })
            out.append((height, found))
        return out

    def receipt_view(self, tx_hash: bytes) -> dict | None:
        found = self.ledger.get_transaction(tx_hash)
        if found is None:
            return None
        _, loc = found
        if loc.height > self.head_height:
            return None  # durable, but not yet announced: wait for on_commit like everyone else
        return receipt_json(self.ledger.get_receipt(tx_hash), height=loc.height, index=loc.index)


class BodyPruned(Exception):
    """An events replay reached a block whose receipts this node no longer keeps."""

    def __init__(self, height: int, oldest: int) -> None:
        super().__init__(height, oldest)
        self.height, self.oldest = height, oldest


@dataclass
class _Sub:
    kind: str
    from_block: int = 0
    address: bytes | None = None
    name: str | None = None
    tx_hash: bytes = b""
    id: str = ""
    scope: trio.CancelScope | None = None
    ready: trio.Event | None = None


def _parse_options(kind: str, options: dict, head_height: int) -> _Sub:
    def opt_int(key: str, default: int) -> int:
        v = options.get(key, default)
        if isinstance(v, str):
            try:
                v = int(v, 0)
            except ValueError:
                raise invalid_params(f"'{key}' must be an integer") from None
        if type(v) is not int or not 0 <= v <= HEIGHT_MAX:
            raise invalid_params(f"'{key}' must be an integer in [0, {HEIGHT_MAX}]")
        return v

    def opt_hex(key: str, length: int) -> bytes:
        try:
            return parse_hex(options.get(key), length=length)
        except HexError:
            raise invalid_params(f"'{key}' must be {length} bytes as hex ({2 * length} hex digits)") from None

    if kind == "receipt":
        if "transactionHash" not in options:
            raise invalid_params("'transactionHash' is required for a receipt subscription")
        return _Sub(kind, tx_hash=opt_hex("transactionHash", 32))
    # Default: live from the next block, as eth_subscribe does.
    sub = _Sub(kind, from_block=opt_int("fromBlock", head_height + 1))
    if kind == "events":
        if options.get("address") not in (None, ""):
            sub.address = opt_hex("address", ADDRESS_BYTES)
        name = options.get("name")
        if name not in (None, ""):
            if not isinstance(name, str) or len(name) > EVENT_NAME_CHARS_MAX:
                raise invalid_params(f"'name' must be a string of at most {EVENT_NAME_CHARS_MAX} characters")
            sub.name = name
    return sub


class Session:
    """One WebSocket connection's subscriptions, its outgoing queue and its tasks.

    `run` owns the connection until the client leaves, the session is closed (slow or idle
    client) or the server stops; every task of the connection lives in its nursery.
    """

    def __init__(self, hub: SubscriptionHub, abort: Callable[[], None] | None = None) -> None:
        self.hub = hub
        self._abort = abort or (lambda: None)
        self._out: deque[str] = deque()
        self.queued_bytes = 0  # of the texts in _out (JSON is ASCII here: characters are bytes)
        self._changed = trio.Event()  # set (and replaced) whenever _out changes
        self._reading = trio.Lock()  # one chunk in memory per connection
        self._subs: dict[str, _Sub] = {}
        self._nursery: trio.Nursery | None = None
        self._guard: trio.Nursery | None = None
        self._pending: list[_Sub] = []  # started, waiting for their subscribe response to be queued
        self.close_code: int | None = None
        self.close_reason = ""

    # ---- called by subscribe/unsubscribe (in the connection's reader task) -------------------

    def add(self, sub: _Sub) -> str:
        limit = self.hub.limits.subscriptions_per_connection_max
        if len(self._subs) >= limit:
            raise RpcError(INVALID_REQUEST, f"too many subscriptions on this connection (limit {limit}); unsubscribe or open another connection")
        assert self._nursery is not None, "subscribe outside a running session"
        sub.id = "0x" + secrets.token_hex(8)
        sub.scope = trio.CancelScope()
        sub.ready = trio.Event()
        self._subs[sub.id] = sub
        self._pending.append(sub)
        self._nursery.start_soon(self._pump, sub)
        return sub.id

    def remove(self, sub_id: str) -> bool:
        sub = self._subs.pop(sub_id, None)
        if sub is None:
            return False
        sub.scope.cancel()
        return True

    @property
    def subscription_count(self) -> int:
        return len(self._subs)

    # ---- the connection ------------------------------------------------------------------

    async def run(self, receive: Callable[[], Awaitable[dict]], send: Callable[[dict], Awaitable[None]], handle: Handler) -> None:
        """Serve an accepted ASGI WebSocket until it ends; then close it with our reason, if any."""
        token = _current_session.set(self)
        try:
            async with trio.open_nursery() as guard:
                self._guard = guard
                try:
                    async with trio.open_nursery() as nursery:
                        self._nursery = nursery
                        nursery.start_soon(self._writer, send)
                        nursery.start_soon(self._watchdog)
                        await self._reader(receive, handle)
                        nursery.cancel_scope.cancel()
                finally:
                    for sub in self._subs.values():
                        sub.scope.cancel()
                    self._subs.clear()
                    self._out.clear()
                    self.queued_bytes = 0
                    self.hub.sessions.discard(self)
                if self.close_code is not None:
                    try:
                        await send({"type": "websocket.close", "code": self.close_code, "reason": self.close_reason})
                    except Exception as exc:  # the client may already be gone; nothing more to tell it
                        log.debug("closing a subscription connection: %s", exc)
                guard.cancel_scope.cancel()  # closed in time: no need to close the socket
        finally:
            _current_session.reset(token)

    def close(self, code: int, reason: str) -> None:
        """End the connection (every task of it) and tell the client why."""
        if self.close_code is None:
            self.close_code, self.close_reason = code, reason
            if self._guard is not None:
                self._guard.start_soon(self._abort_after_grace)
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    async def _abort_after_grace(self) -> None:
        # A write to a client that reads nothing never ends (the server shields it from
        # cancellation): closing the socket is then the only way to free the connection.
        await trio.sleep(CLOSE_GRACE_MS / 1000)
        self._abort()

    async def _reader(self, receive, handle: Handler) -> None:
        limits = self.hub.limits
        while True:
            with trio.move_on_after(limits.idle_timeout_ms / 1000) as idle:
                message = await receive()
            if idle.cancelled_caught:
                if self._subs:
                    continue  # a subscriber that only listens is not idle
                self.close(CLOSE_NORMAL, f"idle for {limits.idle_timeout_ms} ms with no subscription; reconnect when you need one")
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            response = await handle(data)
            if response is not None:
                await self._queue([response.decode()])
            # Only now may the subscriptions this message created send: the client learns
            # the id (from the response) before any notification carrying it.
            for sub in self._pending:
                sub.ready.set()
            self._pending.clear()

    def _wake(self) -> None:
        event, self._changed = self._changed, trio.Event()
        event.set()

    async def _writer(self, send) -> None:
        while True:
            while not self._out:
                await self._changed.wait()
            text = self._out.popleft()
            self.queued_bytes -= len(text)
            self._wake()
            try:
                await send({"type": "websocket.send", "text": text})
            except Exception as exc:  # hypercorn raises once the peer has gone; the reader sees the disconnect
                log.debug("subscription connection lost while writing: %s", exc)
                self.close(CLOSE_GOING_AWAY, "connection lost")
                return

    async def _wait_room(self) -> None:
        """Return once the queue is below its bound (`_watchdog` ends a queue that stays full)."""
        while self.queued_bytes >= self.hub.limits.queue_bytes_max:
            await self._changed.wait()

    async def _watchdog(self) -> None:
        """Disconnect the client once its queue has stayed full for queue_full_timeout_ms."""
        limits = self.hub.limits
        while True:
            while self.queued_bytes < limits.queue_bytes_max:
                await self._changed.wait()
            with trio.move_on_after(limits.queue_full_timeout_ms / 1000) as waiting:
                while self.queued_bytes >= limits.queue_bytes_max:
                    await self._changed.wait()
            if waiting.cancelled_caught:
                break
        self.hub.disconnected_slow += 1
        self.close(
            CLOSE_POLICY,
            f"subscription queue overflow: {limits.queue_bytes_max} bytes unread for {limits.queue_full_timeout_ms} ms; "
            "read faster, or reconnect and resume with fromBlock (the last block fully received + 1)",
        )

    async def _queue(self, texts: list[str]) -> None:
        """Queue outgoing messages once there is room (they may overshoot the bound by themselves)."""
        await self._wait_room()
        self._put(texts)

    def _put(self, texts: list[str]) -> None:
        if texts:
            self._out.extend(texts)
            self.queued_bytes += sum(map(len, texts))
            self._wake()

    # ---- one subscription ------------------------------------------------------------------

    async def _pump(self, sub: _Sub) -> None:
        try:
            with sub.scope:
                await sub.ready.wait()
                if sub.kind == "receipt":
                    await self._pump_receipt(sub)
                else:
                    await self._pump_blocks(sub)
        except BodyPruned as exc:
            # (A close reason has room for 123 bytes.)
            self.close(CLOSE_POLICY, f"events of block {exc.height} are pruned here (bodies kept from block {exc.oldest}); "
                                     f"resubscribe from {exc.oldest} or ask an archive node")
        except Exception:
            # A bug here must cost this connection only, never the node: say so and close.
            log.exception("subscription %s (%s) failed", sub.id, sub.kind)
            self.close(CLOSE_INTERNAL_ERROR, "internal error in a subscription; see the node's log")

    async def _pump_blocks(self, sub: _Sub) -> None:
        hub, step = self.hub, self.hub.limits.replay_blocks_per_step
        next_height = sub.from_block
        while True:
            await hub.wait_head_above(next_height - 1)
            async with self._reading:
                await self._wait_room()  # before reading: a chunk in hand counts too
                end = min(hub.head_height, next_height + step - 1)
                if sub.kind == "newBlocks":
                    chunk = await hub.read(_encoded, sub.id, hub.blocks_view, next_height, end)
                else:
                    chunk = await hub.read(_encoded, sub.id, hub.events_view, next_height, end, sub.address, sub.name)
                last_height, texts = chunk
                self._put(texts)
            next_height = last_height + 1

    async def _pump_receipt(self, sub: _Sub) -> None:
        hub = self.hub
        while True:
            seen_head = hub.head_height
            view = await hub.read(hub.receipt_view, sub.tx_hash)
            if view is not None:
                await self._queue([_notification(sub.id, view)])
                self._subs.pop(sub.id, None)  # a receipt comes once: the subscription is over
                return
            await hub.wait_head_above(seen_head)


Handler = Callable[[bytes | str], Awaitable[bytes | None]]


def _notification(sub_id: str, result: Any) -> str:
    return json.dumps({"jsonrpc": "2.0", "method": "subscription", "params": {"subscription": sub_id, "result": result}}, separators=(",", ":"), allow_nan=False)


def _encoded(sub_id: str, view: Callable[..., list[tuple[int, list[Any]]]], *args: Any) -> tuple[int, list[str]]:
    """On the reader thread: a chunk's notifications as text, and the last height it covers."""
    chunk = view(*args)
    return chunk[-1][0], [_notification(sub_id, result) for _, results in chunk for result in results]


async def serve_session(hub: SubscriptionHub, receive, send, handle: Handler, *, abort: Callable[[], None] | None = None) -> None:
    """The WebSocket side of `RpcApp` when subscriptions are on (after the accept).

    `handle` answers one message (the dispatcher, behind the server's rate limit); `abort`
    closes the connection's socket at once."""
    try:
        session = hub.open_session(abort)
    except RpcError as exc:
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER, "reason": exc.message})
        return
    await session.run(receive, send, handle)

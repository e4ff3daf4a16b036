"""Subscriptions for dApps: committed blocks and contract events as trio async iterators
that survive dropped connections.

    async with client.subscribe_events(address=token, name="Transfer", from_block=1) as events:
        async for ev in events:
            print(ev.block_number, ev.event.fields)

Exactly once across reconnects: the iterator remembers the position of the last item it
handed out, (block, tx index, log index) for events and the height for blocks. After a drop
it reconnects (with backoff) and subscribes again from that block; the node replays from
there, and items at or before the remembered position are skipped. Events resume from the
last seen block itself, not the next one, because a connection can drop in the middle of
a block's events.
"""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import trio
from trio_websocket import open_websocket_url

from chainnode.client.transport import WS_MESSAGE_BYTES_MAX, Session, WsSession, is_connection_error
from chainnode.protocol.codec import unpack
from chainnode.protocol.hexstr import parse_hex
from chainnode.protocol.types import BlockHeader, CommitCertificate, Event

log = logging.getLogger("chainnode.client")

ITEMS_BUFFERED_MAX = 256  # items read ahead of the consumer; beyond, we stop reading (and the node may drop us, we resume)
RECONNECT_DELAY_MIN_MS = 100
RECONNECT_DELAY_MAX_MS = 5_000
CONNECT_TIMEOUT_MS = 10_000


@dataclass(frozen=True)
class EventNotification:
    """One contract event and where it happened."""

    event: Event
    tx_hash: bytes
    block_number: int
    tx_index: int
    log_index: int

    @property
    def position(self) -> tuple[int, int, int]:
        """(block, tx index, log index): unique per event, increasing along the chain."""
        return (self.block_number, self.tx_index, self.log_index)

    @classmethod
    def from_json(cls, result: dict) -> "EventNotification":
        return cls(
            event=Event.from_fields(unpack(parse_hex(result["raw"]), max_bytes=WS_MESSAGE_BYTES_MAX)),
            tx_hash=parse_hex(result["transactionHash"]),
            block_number=result["blockNumber"],
            tx_index=result["transactionIndex"],
            log_index=result["logIndex"],
        )


@dataclass(frozen=True)
class BlockNotification:
    """One committed block's header (decoded from its exact encoding) and certificate."""

    header: BlockHeader
    certificate: CommitCertificate | None
    view: dict  # the node's JSON view, for display

    @property
    def number(self) -> int:
        return self.header.height

    @classmethod
    def from_json(cls, result: dict) -> "BlockNotification":
        cert = result.get("certificate")
        return cls(
            header=BlockHeader.decode(parse_hex(result["raw"])),
            certificate=CommitCertificate.decode(parse_hex(cert["raw"])) if cert else None,
            view=result,
        )


class Subscription:
    """An async iterator of notifications; reconnects by itself (see the module docstring).

    Raises `ConnectionError` from iteration after `reconnect_attempts_max` failed attempts
    in a row, and `NodeError` if the node refuses the subscription (bad parameters, or a
    node without subscriptions: code -32601).
    """

    def __init__(
        self, connect: "Connect", where: str, group: str, node: str, kind: str, options: dict, from_block: int | None, *,
        reconnect_attempts_max: int, resume_after: tuple[int, int, int] | None = None,
    ) -> None:
        self._connect = connect
        self.where = where  # the node(s) it subscribes at, for messages
        self._group, self._node = group, node
        self.kind = kind
        self._options = options
        self._next_block = from_block  # None: from the head at the first connection
        # Where a dApp that persisted `position` left off: resume right after that event.
        self._last_position: tuple[int, int, int] | None = tuple(resume_after) if resume_after is not None else None
        self._consumed_position = self._last_position
        if resume_after is not None:
            assert kind == "events", "resume_after is an event position"
            self._next_block = resume_after[0]
        self._reconnect_attempts_max = reconnect_attempts_max
        self._send, self._recv = trio.open_memory_channel[Any](ITEMS_BUFFERED_MAX)
        self._error: BaseException | None = None
        self._connection_scope: trio.CancelScope | None = None
        self.connections = 0  # successful subscribes so far (1 + reconnections)

    def __aiter__(self) -> AsyncIterator[Any]:
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self._recv.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._error is not None:
                raise self._error from None
            raise StopAsyncIteration from None
        if isinstance(item, EventNotification):
            self._consumed_position = item.position
        return item

    @property
    def position(self) -> tuple[int, int, int] | None:
        """The position (block, tx index, log index) of the last event the consumer took:
        persist it and pass it as `resume_after` to carry on exactly there after a restart.
        (Events read ahead but not yet taken are not counted.)"""
        return self._consumed_position

    @property
    def resume_block(self) -> int | None:
        """The fromBlock the next (re)subscription asks for."""
        if self.kind == "events" and self._last_position is not None:
            return self._last_position[0]  # the rest of that block may be unseen
        return self._next_block

    async def drop_connection(self) -> None:
        """Abandon the current connection as a network failure would; the iterator
        reconnects and resumes. For tests, and to get off a connection that seems stuck."""
        if self._connection_scope is not None:
            self._connection_scope.cancel()

    async def _run(self) -> None:
        try:
            await self._run_connections()
        except BaseException as exc:
            if not isinstance(exc, trio.Cancelled):
                self._error = _single_leaf(exc) or exc
            raise
        finally:
            self._send.close()

    async def _run_connections(self) -> None:
        failures = 0
        while True:
            try:
                await self._one_connection()
            except BaseException as exc:
                if not is_connection_error(exc):
                    raise
                failures += 1
                cause = _single_leaf(exc) or exc
                if not str(cause) and (cause.__cause__ or cause.__context__) is not None:
                    cause = cause.__cause__ or cause.__context__  # e.g. HandshakeError from a refused connect
                cause_text = f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__
                if failures > self._reconnect_attempts_max:
                    raise ConnectionError(f"subscription to {self.where} lost and {failures - 1} reconnection attempts failed; last error {cause_text}") from None
                delay_ms = min(RECONNECT_DELAY_MAX_MS, RECONNECT_DELAY_MIN_MS * 2 ** (failures - 1))
                log.info("subscription connection to %s lost (%s); reconnecting in %d ms from block %s", self.where, cause_text, delay_ms, self.resume_block)
                await trio.sleep(delay_ms / 1000)
                continue
            failures = 0  # a connection that ended cleanly: try again at once

    async def _one_connection(self) -> None:
        with trio.CancelScope() as scope:
            self._connection_scope = scope
            async with self._connect() as session:
                await self._subscribe_and_read(session)
        self._connection_scope = None
        if scope.cancelled_caught:
            raise ConnectionResetError("connection dropped on request")

    async def _subscribe_and_read(self, session: Session) -> None:
        base = [self._group, self._node]
        with trio.fail_after(CONNECT_TIMEOUT_MS / 1000):
            if self._next_block is None:
                # Pin "from now" to a height at once, so a drop before the first item loses nothing.
                self._next_block = await session.call("getBlockNumber", base) + 1
            options = dict(self._options, fromBlock=self.resume_block)
            sub_id = await session.subscribe(base + [self.kind, options])
        self.connections += 1
        while True:
            result = await session.notification(sub_id)
            if self.kind == "events":
                item = EventNotification.from_json(result)
                if self._last_position is not None and item.position <= self._last_position:
                    continue  # replayed at the resume boundary: already handed out
                await self._send.send(item)
                self._last_position = item.position
                self._next_block = item.block_number
            else:
                item = BlockNotification.from_json(result)
                if item.number < self._next_block:
                    continue
                await self._send.send(item)
                self._next_block = item.number + 1


Connect = Callable[[], AbstractAsyncContextManager[Session]]  # a new session for each (re)connection


def ws_connect(ws_url: str) -> Connect:
    """Sessions on WebSocket connections of their own to `ws_url`."""

    @asynccontextmanager
    async def connect() -> AsyncIterator[Session]:
        async with open_websocket_url(ws_url, max_message_size=WS_MESSAGE_BYTES_MAX, connect_timeout=CONNECT_TIMEOUT_MS / 1000, disconnect_timeout=1.0) as ws:
            yield WsSession(ws)

    return connect


@asynccontextmanager
async def open_subscription(
    connect: Connect, where: str, group: str, node: str, kind: str, options: dict, from_block: int | None, *,
    reconnect_attempts_max: int = 20, resume_after: tuple[int, int, int] | None = None,
) -> AsyncIterator[Subscription]:
    """Run a `Subscription`'s connection task for the duration of the `async with`."""
    sub = Subscription(connect, where, group, node, kind, options, from_block, reconnect_attempts_max=reconnect_attempts_max, resume_after=resume_after)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_swallow_after_recording, sub)
            try:
                yield sub
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The caller's own exception (e.g. NodeError from iterating) comes back wrapped by
        # our internal nursery; hand it back as it was raised.
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        raise leaf from None


def _single_leaf(exc: BaseException) -> BaseException | None:
    while isinstance(exc, BaseExceptionGroup):
        if len(exc.exceptions) != 1:
            return None
        exc = exc.exceptions[0]
    return exc


async def _swallow_after_recording(sub: Subscription) -> None:
    # The error reaches the consumer through iteration (`__anext__` re-raises it), so it
    # must not also tear down the caller's `async with` from the background task.
    try:
        await sub._run()
    except Exception:
        pass

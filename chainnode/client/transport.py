"""JSON-RPC over a node's WebSocket, shared by the Client (receipt waits) and
subscriptions: one call on an open connection, and which errors mean the connection failed.

A subscription talks to a `Session`: a WebSocket of its own (`WsSession`), or its share of
the client's channel connection (chainnode.client.channel.ChannelSession)."""

from __future__ import annotations

import itertools
import json
from typing import Any, Protocol

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from chainnode.client.errors import node_error

WS_MESSAGE_BYTES_MAX = 16 << 20  # a block's events stay far below; bounds what a bad node can make us buffer
METHOD_NOT_FOUND = -32601


async def ws_call(ws: WebSocketConnection, request_id: int, method: str, params: list) -> Any:
    """One JSON-RPC call over `ws`; notifications arriving meanwhile are dropped (only
    subscriptions made on this connection send them, and none is made before this returns)."""
    await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}))
    while True:
        reply = json.loads(await ws.get_message())
        if isinstance(reply, dict) and reply.get("id") == request_id:
            if "error" in reply:
                raise node_error(reply["error"])
            return reply.get("result")


class Session(Protocol):
    """What a subscription needs of a connection: calls, one subscription, its notifications."""

    async def call(self, method: str, params: list) -> Any: ...

    async def subscribe(self, params: list) -> str: ...

    async def notification(self, sub_id: str) -> Any:
        """The "result" of the next notification of `sub_id`; a connection error at its end."""


class WsSession:
    """A session on one WebSocket connection of its own."""

    def __init__(self, ws: WebSocketConnection) -> None:
        self.ws = ws
        self._ids = itertools.count(1)

    async def call(self, method: str, params: list) -> Any:
        return await ws_call(self.ws, next(self._ids), method, params)

    async def subscribe(self, params: list) -> str:
        return await self.call("subscribe", params)

    async def notification(self, sub_id: str) -> Any:
        while True:
            message = json.loads(await self.ws.get_message())
            params = message.get("params") if isinstance(message, dict) and message.get("method") == "subscription" else None
            if isinstance(params, dict) and params.get("subscription") == sub_id:
                return params["result"]


# What a dropped or refused connection raises (trio-websocket may wrap it in a group).
CONNECTION_ERRORS = (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError, trio.TooSlowError)


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` (or every exception of a group) is a dropped or refused connection."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_connection_error(e) for e in exc.exceptions)
    return False

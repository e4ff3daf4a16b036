"""JSON-RPC over a node's WebSocket, shared by the Client (receipt waits) and
subscriptions: one call on an open connection, and which errors mean the connection failed."""

from __future__ import annotations

import json
from typing import Any

import trio
from trio_websocket import ConnectionClosed, HandshakeError, WebSocketConnection

from chainnode.client.errors import NodeError

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
                err = reply["error"]
                raise NodeError(err.get("code", 0), err.get("message", ""), err.get("data"))
            return reply.get("result")


# What a dropped or refused connection raises (trio-websocket may wrap it in a group).
CONNECTION_ERRORS = (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError, trio.TooSlowError)


def is_connection_error(exc: BaseException) -> bool:
    """Whether `exc` (or every exception of a group) is a dropped or refused connection."""
    if isinstance(exc, CONNECTION_ERRORS):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return all(is_connection_error(e) for e in exc.exceptions)
    return False

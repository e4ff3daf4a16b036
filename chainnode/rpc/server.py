"""The RPC server: one port for JSON-RPC over HTTP POST and over WebSocket, plus GET
/health, on hypercorn (a real HTTP/1.1 and WebSocket server) under trio.

The app is plain ASGI, so hypercorn does all HTTP parsing; we enforce our own limits on
top: request body bytes (checked while streaming, before parsing), WebSocket message bytes,
and concurrent connections.
"""

from __future__ import annotations

import json
import logging
import socket
from typing import Any, Awaitable, Callable

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from chainnode.rpc.jsonrpc import INVALID_REQUEST, Dispatcher, RpcError
from chainnode.rpc.subscriptions import SubscriptionHub, serve_session

log = logging.getLogger("chainnode.rpc")

JSON_HEADERS = [(b"content-type", b"application/json")]


class PortInUse(RuntimeError):
    pass


def check_port_free(host: str, port: int) -> None:
    """Refuse early, with a clear message, a port another process listens on."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: TIME_WAIT leftovers of our own last run are not "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUse(f"port {port} on {host} is in use; stop the other process or choose another rpc listen address") from None


class RpcApp:
    """ASGI application: POST / (JSON-RPC), GET /health, WebSocket / (JSON-RPC per message).

    With a `hub` (chainnode.rpc.subscriptions), WebSocket connections also get the
    `subscribe` / `unsubscribe` methods and pushed notifications; the hub registers those
    two methods in `dispatcher`, where HTTP callers get a clear error from them.
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        body_bytes_max: int = 4 << 20,
        health: Callable[[], Awaitable[dict]] | None = None,
        extra_routes: dict[str, Callable[[], Awaitable[tuple[int, list, bytes]]]] | None = None,
        hub: SubscriptionHub | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.hub = hub
        if hub is not None:
            hub.register(dispatcher)
        self.body_bytes_max = body_bytes_max
        self._health = health
        self._routes = extra_routes or {}

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            await self._websocket(scope, receive, send)
        elif kind == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

    async def _respond(self, send, status: int, body: bytes, headers: list | None = None) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers or JSON_HEADERS})
        await send({"type": "http.response.body", "body": body})

    async def _http(self, scope: dict, receive, send) -> None:
        method, path = scope["method"], scope["path"]
        if method == "GET" and path == "/health" and self._health is not None:
            report = await self._health()
            status = 200 if report.get("status") == "ok" else 503
            await self._respond(send, status, json.dumps(report).encode())
            return
        if method == "GET" and path in self._routes:
            status, headers, body = await self._routes[path]()
            await self._respond(send, status, body, headers)
            return
        if path != "/":
            await self._respond(send, 404, b'{"error":"not found; JSON-RPC is served at POST /"}')
            return
        if method != "POST":
            await self._respond(send, 405, b'{"error":"use POST for JSON-RPC"}', JSON_HEADERS + [(b"allow", b"POST")])
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.body_bytes_max:
                err = RpcError(INVALID_REQUEST, f"request body exceeds {self.body_bytes_max} bytes")
                await self._respond(send, 413, json.dumps({"jsonrpc": "2.0", "id": None, "error": err.to_json()}).encode())
                return
            if not message.get("more_body", False):
                break
        response = await self.dispatcher.handle(bytes(body))
        if response is None:
            await self._respond(send, 204, b"")
        else:
            await self._respond(send, 200, response)

    async def _websocket(self, scope: dict, receive, send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        if self.hub is not None:
            await serve_session(self.hub, receive, send, self.dispatcher)
            return
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            response = await self.dispatcher.handle(data)
            if response is not None:
                await send({"type": "websocket.send", "text": response.decode()})


async def serve_rpc(app: RpcApp, host: str, port: int, *, task_status=trio.TASK_STATUS_IGNORED, connections_max: int = 1000) -> None:
    """Serve until cancelled; `task_status.started` reports the bound address."""
    check_port_free(host, port)
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("chainnode.rpc.http")
    config.websocket_max_message_size = app.body_bytes_max
    config.h11_max_incomplete_size = 64 * 1024
    config.backlog = connections_max
    config.graceful_timeout = 1.0
    await serve(app, config, task_status=task_status)

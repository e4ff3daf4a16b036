"""The RPC server: one port for JSON-RPC over HTTP POST and over WebSocket, plus GET
/health, on hypercorn (a real HTTP/1.1 and WebSocket server) under trio.

Hypercorn parses HTTP and WebSocket; the limits that keep the node up are ours, each with
the mechanism that really enforces it:
- concurrent connections: we run hypercorn's per-connection server (`TCPServer`) from our
  own accept loop, because hypercorn accepts without limit (its `backlog` only sizes the
  kernel's queue). A connection over `connections_max` gets a JSON 503 and is closed;
- header time: hypercorn's `keep_alive_timeout` closes a connection that has not sent a
  whole request head within `header_timeout_ms` of opening (or of its last response),
  however slowly it trickles bytes (slowloris);
- body time and size: `_http` reads the body against a deadline and a byte bound (408/413);
- send time: a write the client does not take within `send_timeout_ms` closes the
  connection (`_TimedStream`: hypercorn writes with the socket shielded from cancellation,
  so without this a client that never reads would hold its connection forever);
- requests per second per remote address (a token bucket; HTTP 429 / JSON-RPC -32005);
- WebSocket sessions: chainnode.rpc.subscriptions (queue bytes, idle time, slow readers),
  which can `abort` a connection whose client stopped reading: hypercorn writes with the
  socket shielded from cancellation, so only closing the socket frees such a connection.
Every error body is JSON, hypercorn's own 400/431 for malformed requests included.

With [rpc] tls_cert / tls_key the port speaks HTTPS and WSS (standard TLS, for users outside
the SM requirement; dApps on other machines use the channel port, chainnode.rpc.channel).
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

import trio
from hypercorn.app_wrappers import ASGIWrapper
from hypercorn.config import Config
from hypercorn.protocol import h11 as hypercorn_h11
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext

from chainnode.rpc.jsonrpc import INTERNAL_ERROR, INVALID_REQUEST, LIMIT_EXCEEDED, Dispatcher, Policy, RpcError
from chainnode.rpc.subscriptions import SubscriptionHub, serve_session

log = logging.getLogger("chainnode.rpc")

JSON_HEADERS = [(b"content-type", b"application/json")]
# A response sent before the request's body was read ends the connection (its unread bytes
# cannot be told from the next request): say so, or a client reuses the closed connection
# for its next request and gets no answer.
UNREAD_BODY_HEADERS = JSON_HEADERS + [(b"connection", b"close")]
CLIENTS_TRACKED_MAX = 10_000  # remote addresses with a rate bucket; the oldest is forgotten first


class PortInUse(RuntimeError):
    pass


class TlsConfigError(ValueError):
    """The [rpc] TLS certificate or key cannot be used; the message names the files and why."""


def tls_context(cert_file: Any, key_file: Any) -> ssl.SSLContext:
    """The server TLS context for the HTTP port (hypercorn's: TLS 1.2 or later, no
    compression), from a PEM certificate chain and its unencrypted PEM private key."""
    config = Config()
    config.certfile, config.keyfile = str(cert_file), str(key_file)
    config.alpn_protocols = ["http/1.1"]  # the node speaks HTTP/1.1 (and WebSocket over it), not h2
    try:
        return config.create_ssl_context()
    except (OSError, ssl.SSLError) as exc:
        raise TlsConfigError(
            f"cannot load the HTTP port's TLS certificate {cert_file} and key {key_file} ([rpc] tls_cert / tls_key): {exc}; "
            "give a PEM certificate chain and its unencrypted PEM private key, or remove both settings"
        ) from None


def _socket_of(stream: Any) -> Any:
    """The socket under a plain or a TLS stream."""
    return stream.transport_stream.socket if isinstance(stream, trio.SSLStream) else stream.socket


def check_port_free(host: str, port: int, setting: str = "[rpc] listen") -> None:
    """Refuse early, with a clear message, a port another process listens on; `setting`
    names the node.toml key that chose it."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        # SO_REUSEADDR: TIME_WAIT leftovers of our own last run are not "in use".
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUse(f"port {port} on {host} is in use; stop the other process or choose another {setting} address in node.toml") from None


def error_body(code: int, message: str, req_id: Any = None) -> bytes:
    """A JSON-RPC error response: what every error on this port carries as its body."""
    return json.dumps({"jsonrpc": "2.0", "id": req_id, "error": RpcError(code, message).to_json()}, separators=(",", ":")).encode()


@dataclass(frozen=True)
class ServerLimits:
    body_bytes_max: int = 4 << 20
    connections_max: int = 1_000  # HTTP and WebSocket connections open at once
    header_timeout_ms: int = 5_000  # from connecting (or the last response) to a whole request head
    body_timeout_ms: int = 10_000  # from the request head to the end of its body
    client_requests_per_s_max: int = 1_000  # per remote address; bursts up to one second's worth
    send_timeout_ms: int = 30_000  # one write (a response, a notification) the client must take

    @classmethod
    def from_config(cls, limits: Any) -> "ServerLimits":
        """From chainnode.node.config.Limits."""
        return cls(
            body_bytes_max=limits.rpc_body_bytes_max,
            connections_max=limits.rpc_connections_max,
            header_timeout_ms=limits.rpc_header_timeout_ms,
            body_timeout_ms=limits.rpc_body_timeout_ms,
            client_requests_per_s_max=limits.rpc_client_requests_per_s_max,
            send_timeout_ms=limits.rpc_send_timeout_ms,
        )


class RateLimiter:
    """A token bucket per remote address: `rate_per_s` requests a second, bursts of as many."""

    def __init__(self, rate_per_s: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_per_s = rate_per_s
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # address -> (tokens, at)
        self.refused = 0  # for metrics

    def allow(self, address: str) -> bool:
        now = self._clock()
        tokens, at = self._buckets.pop(address, (float(self.rate_per_s), now))
        tokens = min(float(self.rate_per_s), tokens + (now - at) * self.rate_per_s)
        ok = tokens >= 1
        self._buckets[address] = (tokens - 1 if ok else tokens, now)
        if len(self._buckets) > CLIENTS_TRACKED_MAX:
            self._buckets.popitem(last=False)
        if not ok:
            self.refused += 1
        return ok

    def refusal(self, address: str) -> RpcError:
        return RpcError(
            LIMIT_EXCEEDED,
            f"rate limit: more than {self.rate_per_s} requests per second from {address}; "
            "slow down (batch requests, or subscribe over WebSocket instead of polling) and retry",
        )


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
        limits: ServerLimits | None = None,
        body_bytes_max: int | None = None,
        health: Callable[[], Awaitable[dict]] | None = None,
        extra_routes: dict[str, Callable[[], Awaitable[tuple[int, list, bytes]]]] | None = None,
        hub: SubscriptionHub | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self.hub = hub
        if hub is not None:
            hub.register(dispatcher)
        self.limits = limits or ServerLimits()
        self.body_bytes_max = body_bytes_max if body_bytes_max is not None else self.limits.body_bytes_max
        self.rate = RateLimiter(self.limits.client_requests_per_s_max)
        self._health = health
        self._routes = extra_routes or {}
        # (host, port) of each open connection -> its socket stream; filled by serve_rpc.
        self.connections: dict[tuple[str, int], trio.SocketStream] = {}
        self.connections_refused = 0

    def abort(self, client: Any) -> None:
        """Close the socket of the connection from `client` (an ASGI scope's "client") at once.

        For a client that stopped reading: a write to it blocks (shielded, in hypercorn), so
        no close frame can reach it; closing the socket wakes that write and frees it all."""
        stream = self.connections.get(tuple(client)) if client else None
        if stream is not None:
            _socket_of(stream).close()

    async def __call__(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http_guarded(scope, receive, send)
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
        headers = headers or JSON_HEADERS
        if status != 204:  # a 204 has no body and may not say it has one (RFC 9110, 8.6)
            headers = headers + [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _http_guarded(self, scope: dict, receive, send) -> None:
        started = False

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._http(scope, receive, tracked_send)
        except Exception:
            # A bug of ours: the client still gets JSON (hypercorn's own 500 has no body).
            log.exception("internal error serving %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await self._respond(send, 500, error_body(INTERNAL_ERROR, "internal error; see the node's log"))

    async def _http(self, scope: dict, receive, send) -> None:
        method, path = scope["method"], scope["path"]
        address = _address(scope)
        if not self.rate.allow(address):
            await self._respond(send, 429, error_body(LIMIT_EXCEEDED, self.rate.refusal(address).message), JSON_HEADERS + [(b"retry-after", b"1")])
            return
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
            await self._respond(send, 404, error_body(INVALID_REQUEST, f"not found: {path[:64]}; JSON-RPC is served at POST /, health at GET /health"))
            return
        if method != "POST":
            await self._respond(send, 405, error_body(INVALID_REQUEST, "use POST for JSON-RPC"), JSON_HEADERS + [(b"allow", b"POST")])
            return
        body = bytearray()
        timeout_ms = self.limits.body_timeout_ms
        with trio.move_on_after(timeout_ms / 1000) as reading:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                body += message.get("body", b"")
                if len(body) > self.body_bytes_max:
                    await self._respond(send, 413, error_body(INVALID_REQUEST, f"request body exceeds {self.body_bytes_max} bytes"), UNREAD_BODY_HEADERS)
                    return
                if not message.get("more_body", False):
                    break
        if reading.cancelled_caught:
            await self._respond(send, 408, error_body(INVALID_REQUEST, f"request body not received within {timeout_ms} ms; send the whole request at once"), UNREAD_BODY_HEADERS)
            return
        response = await self.dispatcher.handle(bytes(body))
        if response is None:
            await self._respond(send, 204, b"")
        else:
            await self._respond(send, 200, response)

    async def handle_message(self, address: str, data: bytes | str, policy: Policy | None = None) -> bytes | None:
        """One WebSocket (or channel) message: rate-limited like an HTTP request; `policy`
        is the channel client's role (chainnode.rpc.channel)."""
        if not self.rate.allow(address):
            return error_body(LIMIT_EXCEEDED, self.rate.refusal(address).message)
        return await self.dispatcher.handle(data, policy=policy)

    async def _websocket(self, scope: dict, receive, send) -> None:
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        await send({"type": "websocket.accept"})
        address = _address(scope)

        async def handle(data: bytes | str) -> bytes | None:
            return await self.handle_message(address, data)

        if self.hub is not None:
            client = scope.get("client")
            await serve_session(self.hub, receive, send, handle, abort=lambda: self.abort(client))
            return
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            response = await handle(data)
            if response is not None:
                await send({"type": "websocket.send", "text": response.decode()})


def _address(scope: dict) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _busy_response(connections_max: int) -> bytes:
    body = error_body(LIMIT_EXCEEDED, f"too many connections (limit {connections_max}); close idle ones or retry later")
    head = f"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\nconnection: close\r\nretry-after: 1\r\n\r\n"
    return head.encode() + body


# Hypercorn answers a request it cannot parse (400) or whose head is too large (431) with an
# empty body; ours say what was wrong, in JSON, like every other error on this port.
_STATUS_TEXT = {400: "malformed HTTP request", 431: "request head too large"}


async def _json_h11_error(self, status_code: int) -> None:
    body = error_body(INVALID_REQUEST, f"{_STATUS_TEXT.get(status_code, 'bad request')} (HTTP {status_code}); JSON-RPC is served at POST /")
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), (b"connection", b"close")]
    await self._send_h11_event(hypercorn_h11.h11.Response(status_code=status_code, headers=headers + self.config.response_headers("h11")))
    await self._send_h11_event(hypercorn_h11.h11.Data(data=body))
    await self._send_h11_event(hypercorn_h11.h11.EndOfMessage())


hypercorn_h11.H11Protocol._send_error_response = _json_h11_error


class _TimedStream:
    """A socket stream whose `send_all` gives up after a deadline, closing the socket.

    The deadline is an inner cancel scope, so it fires even inside the shield hypercorn puts
    around its writes; hypercorn takes the BrokenResourceError as the peer gone."""

    def __init__(self, stream: trio.SocketStream, timeout_s: float) -> None:
        self._stream = stream
        self._timeout_s = timeout_s

    async def send_all(self, data: bytes) -> None:
        with trio.move_on_after(self._timeout_s):
            await self._stream.send_all(data)
            return
        _socket_of(self._stream).close()
        raise trio.BrokenResourceError(f"the client took no data for {self._timeout_s} s")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


async def serve_rpc(app: RpcApp, host: str, port: int, *, tls: ssl.SSLContext | None = None, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """Serve until cancelled (HTTPS with `tls`, from `tls_context`); `task_status.started`
    reports the bound addresses."""
    check_port_free(host, port)
    limits = app.limits
    config = Config()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = logging.getLogger("chainnode.rpc.http")
    config.websocket_max_message_size = app.body_bytes_max
    config.h11_max_incomplete_size = 64 * 1024
    config.backlog = min(limits.connections_max, 4096)
    config.keep_alive_timeout = limits.header_timeout_ms / 1000
    config.graceful_timeout = 1.0
    config.ssl_handshake_timeout = limits.header_timeout_ms / 1000
    sockets = config.create_sockets()
    listeners: list[Any] = []
    for sock in sockets.insecure_sockets:
        sock.listen(config.backlog)
        listener = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
        # Hypercorn's TCPServer runs the TLS handshake itself, within ssl_handshake_timeout.
        listeners.append(trio.SSLListener(listener, tls, https_compatible=True) if tls is not None else listener)
    wrapped = ASGIWrapper(app)
    context = WorkerContext(None)

    async def connection(stream: trio.SocketStream) -> None:
        try:
            peer = tuple(_socket_of(stream).getpeername()[:2])
        except OSError:  # gone before we looked
            await stream.aclose()
            return
        if len(app.connections) >= limits.connections_max:
            app.connections_refused += 1
            with trio.move_on_after(1):
                try:
                    await stream.send_all(_busy_response(limits.connections_max))
                except trio.BrokenResourceError:
                    pass
            await stream.aclose()
            return
        app.connections[peer] = stream
        try:
            await TCPServer(wrapped, config, context, {}, _TimedStream(stream, limits.send_timeout_ms / 1000))
        finally:
            app.connections.pop(peer, None)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, connection, listeners)
        task_status.started([f"{'https' if tls is not None else 'http'}://{host}:{port}"])

"""The RPC server's own limits, through a real hypercorn server on loopback and raw sockets:
connection count, slow request heads and bodies (slowloris), per-client request rates, and
JSON bodies on every error, hypercorn's own included."""

import json
import socket

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.server import RateLimiter, RpcApp, ServerLimits, serve_rpc
from chainnode.rpc.subscriptions import CLOSE_NORMAL, SubscriptionHub, SubscriptionLimits
from tests.chain_fixtures import SUITE, open_chain
from tests.helpers import free_port
from tests.rpc.test_jsonrpc import make_dispatcher

ADD = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]}).encode()


async def start(nursery, limits: ServerLimits, **kwargs) -> tuple[RpcApp, int]:
    app = RpcApp(make_dispatcher(), limits=limits, **kwargs)
    port = free_port()
    await nursery.start(serve_rpc, app, "127.0.0.1", port)
    return app, port


async def connect(port: int) -> trio.SocketStream:
    return await trio.open_tcp_stream("127.0.0.1", port)


async def read_all(stream: trio.SocketStream) -> bytes:
    """Everything the server sends until it closes the connection."""
    out = b""
    while chunk := await stream.receive_some(65536):
        out += chunk
    return out


def body_of(response: bytes) -> dict:
    head, _, body = response.partition(b"\r\n\r\n")
    return json.loads(body)


def post(body: bytes) -> bytes:
    return b"POST / HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)


async def wait_until(condition, timeout_s: float = 10) -> None:
    with trio.fail_after(timeout_s):
        while not condition():
            await trio.sleep(0.01)


async def test_every_error_body_is_json(nursery):
    async def broken():
        raise KeyError("bug")

    app, port = await start(nursery, ServerLimits(body_bytes_max=2048), extra_routes={"/broken": broken})
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        for method, path, status, fragment in [
            ("GET", "/elsewhere", 404, "not found"),
            ("GET", "/", 405, "use POST"),
            ("POST", "/", 413, "exceeds 2048 bytes"),
            ("GET", "/broken", 500, "internal error"),
        ]:
            r = await client.request(method, base + path, content=b"x" * 5000 if status == 413 else None)
            assert r.status_code == status and r.headers["content-type"] == "application/json"
            assert fragment in r.json()["error"]["message"] and "bug" not in r.text
            if status == 413:  # the body was left unread: the connection ends, and says so
                assert r.headers["connection"] == "close"
    # Hypercorn's own answers to what it cannot parse: a malformed request, a huge head.
    for raw, status, fragment in [
        (b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed HTTP request"),
        (b"POST / HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * 70_000, 431, "request head too large"),
    ]:
        stream = await connect(port)
        await stream.send_all(raw)
        response = await read_all(stream)
        assert response.startswith(b"HTTP/1.1 %d" % status), response[:80]
        assert fragment in body_of(response)["error"]["message"]
    # A deep body is a parse error, not a crash (100,000 deep: test_jsonrpc, integration).
    async with httpx.AsyncClient() as client:
        r = await client.post(base + "/", content=b"[" * 2000)
    assert r.status_code == 200 and r.json()["error"]["code"] == -32700


async def test_connections_over_the_limit_are_refused_with_json(nursery):
    app, port = await start(nursery, ServerLimits(connections_max=2))
    idle = [await connect(port), await connect(port)]
    await wait_until(lambda: len(app.connections) == 2)
    third = await connect(port)
    response = await read_all(third)
    assert response.startswith(b"HTTP/1.1 503")
    assert "too many connections (limit 2)" in body_of(response)["error"]["message"]
    assert app.connections_refused == 1
    await idle[0].aclose()
    await wait_until(lambda: len(app.connections) <= 1)
    fourth = await connect(port)
    await fourth.send_all(post(ADD))
    assert body_of(await read_all(fourth))["result"] == 3


async def test_a_slow_request_head_is_cut_off(nursery):
    app, port = await start(nursery, ServerLimits(header_timeout_ms=200))
    stream = await connect(port)
    await stream.send_all(b"POST / HTTP/1.1\r\nhost: x\r\n")  # ... and the rest never comes
    with trio.fail_after(10):
        assert await read_all(stream) == b""  # closed by the server
    await wait_until(lambda: not app.connections)


async def test_a_slow_body_gets_408(nursery):
    app, port = await start(nursery, ServerLimits(body_timeout_ms=200))
    stream = await connect(port)
    await stream.send_all(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n[1,")
    with trio.fail_after(10):
        response = await read_all(stream)
    assert b"\r\nconnection: close\r\n" in response.lower()
    assert response.startswith(b"HTTP/1.1 408") and "not received within 200 ms" in body_of(response)["error"]["message"]
    await wait_until(lambda: not app.connections)


def test_rate_limiter_refills_per_address():
    now = [0.0]
    rate = RateLimiter(2, clock=lambda: now[0])
    assert [rate.allow("a") for _ in range(3)] == [True, True, False]
    assert rate.allow("b")  # another address has its own bucket
    now[0] += 0.5  # one token back
    assert [rate.allow("a") for _ in range(2)] == [True, False]
    assert rate.refused == 2 and "more than 2 requests per second from a" in rate.refusal("a").message


async def test_a_flooding_client_gets_429_with_json_rpc_error(nursery):
    app, port = await start(nursery, ServerLimits(client_requests_per_s_max=2))
    async with httpx.AsyncClient() as client:
        for _ in range(50):
            r = await client.post(f"http://127.0.0.1:{port}/", content=ADD)
            if r.status_code == 429:
                break
        assert r.status_code == 429 and r.json()["error"]["code"] == -32005
        assert "slow down" in r.json()["error"]["message"]
    # over WebSocket each message counts the same
    async with open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
        for _ in range(50):
            await ws.send_message(ADD.decode())
            reply = json.loads(await ws.get_message())
            if "error" in reply:
                break
        assert reply["error"]["code"] == -32005


async def test_an_idle_websocket_is_closed_a_subscribed_one_is_not(nursery, tmp_path):
    chain = open_chain(tmp_path / "c")
    try:
        hub = SubscriptionHub(chain.ledger, SUITE, "g", SubscriptionLimits(idle_timeout_ms=100))
        app, port = await start(nursery, ServerLimits(), hub=hub)
        url = f"ws://127.0.0.1:{port}/"
        async with open_websocket_url(url) as subscribed:
            await subscribed.send_message(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["g", "", "newBlocks"]}))
            assert "result" in json.loads(await subscribed.get_message())
            async with open_websocket_url(url) as idle:
                with pytest.raises(ConnectionClosed) as info:
                    with trio.fail_after(10):
                        await idle.get_message()
                assert info.value.reason.code == CLOSE_NORMAL and "idle for 100 ms" in info.value.reason.reason
            # the subscriber outlived several idle periods and still answers
            await subscribed.send_message(ADD.decode())
            assert json.loads(await subscribed.get_message())["result"] == 3
    finally:
        chain.ledger.close()


async def test_a_client_that_cannot_take_the_close_frame_has_its_socket_closed(tmp_path):
    """A client that reads nothing blocks the server's write (hypercorn shields it from
    cancellation): the session asks the server to close the socket instead."""
    chain = open_chain(tmp_path / "c")
    try:
        hub = SubscriptionHub(chain.ledger, SUITE, "g", SubscriptionLimits(idle_timeout_ms=100))
        app = RpcApp(Dispatcher(), hub=hub)
        aborted = trio.Event()
        app.abort = lambda client: aborted.set()
        incoming = [{"type": "websocket.connect"}]

        async def receive():
            return incoming.pop(0) if incoming else await trio.sleep_forever()

        async def send(message):
            if message["type"] == "websocket.close":
                with trio.CancelScope(shield=True):  # as hypercorn writes: cancellation cannot stop it
                    await aborted.wait()
                raise trio.ClosedResourceError("socket closed")

        with trio.fail_after(10):
            await app({"type": "websocket", "path": "/", "client": ("127.0.0.1", 1)}, receive, send)
        assert aborted.is_set() and not hub.sessions
    finally:
        chain.ledger.close()


async def test_a_client_that_never_reads_its_response_is_cut_off(nursery):
    async def big():
        return 200, [(b"content-type", b"application/octet-stream")], b"x" * (32 << 20)

    app, port = await start(nursery, ServerLimits(send_timeout_ms=300), extra_routes={"/big": big})
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and it reads nothing
    await sock.connect(("127.0.0.1", port))
    await sock.send(b"GET /big HTTP/1.1\r\nhost: x\r\n\r\n")
    await wait_until(lambda: len(app.connections) == 1)
    await wait_until(lambda: not app.connections)  # the server gave up writing and closed it
    sock.close()

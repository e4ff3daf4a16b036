"""JSON-RPC 2.0: every error case of the specification, through a real hypercorn server
over HTTP and WebSocket on loopback."""

import json

import httpx
import pytest
from trio_websocket import open_websocket_url

from chainnode.rpc.jsonrpc import Dispatcher, Params, RpcError
from chainnode.rpc.server import PortInUse, RpcApp, check_port_free, serve_rpc
from tests.helpers import free_port


def make_dispatcher():
    d = Dispatcher(batch_max=5)

    async def add(params):
        p = Params(params, ["a", "b"], required=2)
        return p.int(0) + p.int(1)

    async def fail(params):
        raise RpcError(-32000, "transaction rejected: pool_full", {"reason": "pool_full"})

    async def crash(params):
        raise KeyError("bug")

    async def echo_hex(params):
        p = Params(params, ["group", "data"], required=2)
        return p.hex(1, length=2).hex()

    for name, fn in [("add", add), ("fail", fail), ("crash", crash), ("echoHex", echo_hex)]:
        d.register(name, fn)
    return d


async def call(d, obj):
    raw = await d.handle(json.dumps(obj) if not isinstance(obj, (bytes, str)) else obj)
    return None if raw is None else json.loads(raw)


async def test_success_and_ids():
    d = make_dispatcher()
    assert await call(d, {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [2, 3]}) == {"jsonrpc": "2.0", "id": 1, "result": 5}
    assert (await call(d, {"jsonrpc": "2.0", "id": "x", "method": "add", "params": [2, "0x10"]}))["result"] == 18
    assert (await call(d, {"jsonrpc": "2.0", "id": None, "method": "add", "params": [1, 1]}))["id"] is None


@pytest.mark.parametrize(
    "body,code,fragment",
    [
        (b"{bad json", -32700, "parse error"),
        (b"\xff\xfe", -32700, "parse error"),
        ("[]", -32600, "empty batch"),
        ("42", -32600, "expected an object"),
        ('{"jsonrpc": "1.0", "id": 1, "method": "add"}', -32600, '"jsonrpc" must be "2.0"'),
        ('{"jsonrpc": "2.0", "id": 1, "method": 5}', -32600, '"method" must be a string'),
        ('{"jsonrpc": "2.0", "id": {}, "method": "add"}', -32600, "id must be"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "nope"}', -32601, "method not found"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": {"a": 1}}', -32602, "params must be an array"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1]}', -32602, "expected a, b"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2, 3]}', -32602, "at most 2"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, "x"]}', -32602, "'b' must be an integer"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, true]}', -32602, "'b' must be an integer"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [-1, 2]}', -32602, "'a' must be an integer in"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "echoHex", "params": ["g", "0xzz"]}', -32602, "'data' must be a hex string"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "echoHex", "params": ["g", "0x0102ff"]}', -32602, "must be 2 bytes"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "fail"}', -32000, "pool_full"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "crash"}', -32603, "internal error"),
    ],
)
async def test_errors(body, code, fragment):
    response = await call(make_dispatcher(), body)
    assert response["error"]["code"] == code
    assert fragment in response["error"]["message"]
    assert "bug" not in response["error"]["message"]


async def test_batches_and_notifications():
    d = make_dispatcher()
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]},
        {"jsonrpc": "2.0", "method": "add", "params": [1, 2]},  # notification: no reply
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        7,
    ]
    out = await call(d, batch)
    assert [r.get("id") for r in out] == [1, 2, None]
    assert out[0]["result"] == 3 and out[1]["error"]["code"] == -32601 and out[2]["error"]["code"] == -32600
    assert await call(d, [{"jsonrpc": "2.0", "method": "add", "params": [1, 2]}]) is None
    assert await call(d, {"jsonrpc": "2.0", "method": "nope"}) is None
    assert await call(d, {"jsonrpc": "2.0", "method": "crash"}) is None
    too_many = [{"jsonrpc": "2.0", "id": i, "method": "add", "params": [1, 1]} for i in range(6)]
    assert "exceeds 5" in (await call(d, too_many))["error"]["message"]



async def test_over_real_http_and_websocket(nursery):
    port = free_port()
    async def health():
        return {"status": "ok", "height": 7}

    app = RpcApp(make_dispatcher(), body_bytes_max=2048, health=health)
    await nursery.start(serve_rpc, app, "127.0.0.1", port)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient() as client:
        r = await client.post(base + "/", content=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "add", "params": [40, 2]}))
        assert r.status_code == 200 and r.json()["result"] == 42
        r = await client.post(base + "/", content=b"x" * 5000)
        assert r.status_code == 413 and "exceeds 2048" in r.json()["error"]["message"]
        r = await client.post(base + "/", content=b"{oops")
        assert r.json()["error"]["code"] == -32700
        r = await client.post(base + "/", content=json.dumps({"jsonrpc": "2.0", "method": "add", "params": [1, 1]}))
        assert r.status_code == 204
        r = await client.get(base + "/")
        assert r.status_code == 405
        r = await client.get(base + "/health")
        assert r.status_code == 200 and r.json()["height"] == 7
        r = await client.get(base + "/elsewhere")
        assert r.status_code == 404
    async with open_websocket_url(f"ws://127.0.0.1:{port}/") as ws:
        await ws.send_message(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "add", "params": [1, 2]}))
        assert json.loads(await ws.get_message()) == {"jsonrpc": "2.0", "id": 9, "result": 3}
        await ws.send_message("{not json")
        assert json.loads(await ws.get_message())["error"]["code"] == -32700
    with pytest.raises(PortInUse, match=f"port {port}"):
        check_port_free("127.0.0.1", port)


# ---- hostile input: every class answers with a JSON-RPC error, never -32603 ----------------

def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "body,code,fragment",
    [
        ('{"jsonrpc": "2.0", "id": NaN, "method": "add", "params": [1, 2]}', -32700, "NaN is not JSON"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [Infinity, 2]}', -32700, "Infinity is not JSON"),
        ('{"jsonrpc": "2.0", "id": -Infinity, "method": "add"}', -32700, "-Infinity is not JSON"),
        ('{"jsonrpc": "2.0", "id": 1e400, "method": "add"}', -32700, "too large for a JSON number"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": ' + nested(100_000) + "}", -32700, "nest deeper than 64"),
        (nested(65), -32700, "nest deeper than 64"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "echoHex", "params": ["\\ud800", "0x0102"]}', -32602, "lone UTF-16 surrogate"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add", "params": [{"\\udfff": 1}, 2]}', -32602, "lone UTF-16 surrogate"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "add\\ud800"}', -32600, "valid Unicode"),
        ('{"jsonrpc": "2.0", "id": "\\udc00", "method": "add"}', -32600, "valid Unicode"),
        (b'{"jsonrpc": "2.0", "id": 1, "method": "add", "params": ["\xed\xa0\x80"]}', -32700, "not valid UTF-8"),
        ("\udc80", -32700, "not valid UTF-8"),
        # unknown methods are -32601 whatever their params (JSON-RPC 2.0 section 5.1)
        ('{"jsonrpc": "2.0", "id": 1, "method": "nope", "params": {"a": 1}}', -32601, "method not found"),
        ('{"jsonrpc": "2.0", "id": 1, "method": "nope", "params": 5}', -32601, "method not found"),
    ],
)
async def test_hostile_input_gets_a_json_rpc_error(body, code, fragment):
    raw = await make_dispatcher().handle(body)
    response = json.loads(raw, parse_constant=lambda c: pytest.fail(f"non-standard JSON out: {c}"))
    assert response["error"]["code"] == code, response
    assert fragment in response["error"]["message"]


async def test_nesting_within_the_limit_and_valid_surrogate_pairs_pass():
    d = make_dispatcher()
    ok = json.loads(await d.handle('{"jsonrpc": "2.0", "id": "\\ud83d\\ude00", "method": "add", "params": [1, 2], "x": ' + nested(63) + "}"))
    assert ok == {"jsonrpc": "2.0", "id": "\U0001F600", "result": 3}


async def test_a_result_that_is_not_standard_json_is_never_sent():
    d = Dispatcher()

    async def nan(params):
        return float("nan")

    d.register("nan", nan)
    raw = await d.handle('{"jsonrpc": "2.0", "id": 1, "method": "nan"}')
    assert b"NaN" not in raw and json.loads(raw)["error"]["code"] == -32603


async def test_a_policy_forbids_methods_item_by_item():
    from chainnode.rpc.jsonrpc import FORBIDDEN

    d = make_dispatcher()

    def policy(method):
        return None if method == "add" else f"forbidden: not {method}"

    async def handle(obj):
        raw = await d.handle(json.dumps(obj), policy=policy)
        return None if raw is None else json.loads(raw)

    assert (await handle({"jsonrpc": "2.0", "id": 1, "method": "add", "params": [1, 2]}))["result"] == 3
    refused = await handle({"jsonrpc": "2.0", "id": 2, "method": "fail", "params": []})
    assert refused["error"] == {"code": FORBIDDEN, "message": "forbidden: not fail"} and refused["id"] == 2
    batch = await handle([{"jsonrpc": "2.0", "id": 3, "method": "add", "params": [1, 1]}, {"jsonrpc": "2.0", "id": 4, "method": "crash", "params": []}])
    assert [r.get("result", r.get("error", {}).get("code")) for r in batch] == [2, FORBIDDEN]
    assert await handle({"jsonrpc": "2.0", "method": "crash", "params": []}) is None  # a notification: not run, no reply
    unknown = await handle({"jsonrpc": "2.0", "id": 5, "method": "nope", "params": []})
    assert unknown["error"]["code"] == -32601  # an unknown method stays "not found", whatever the role

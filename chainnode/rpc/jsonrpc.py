"""JSON-RPC 2.0, exactly as the specification says (https://www.jsonrpc.org/specification).

Transport-free: `Dispatcher.handle(body) -> response bytes or None` is what both the HTTP
and the WebSocket side call. Covered: parse errors (-32700), invalid requests (-32600),
unknown methods (-32601), invalid params (-32602, the message names the parameter),
internal errors (-32603, logged, never leaked), batches (bounded; an empty batch is an
invalid request; a batch of only notifications gets no response), notifications (no id:
run, no reply). Parameters are positional, as FISCO BCOS's are.

Only standard JSON goes in or out: `NaN`, `Infinity` and numbers too large for a float are
a parse error (Python's json module accepts them by default), and output is dumped with
`allow_nan=False`. Nesting deeper than `JSON_DEPTH_MAX` is a parse error, checked before
parsing (the C parser recurses once per level: a 100,000-deep body would exhaust the stack
long before it reached a limit of ours). A lone UTF-16 surrogate (`"\\ud800"`) is valid
JSON but not Unicode: in an id or method it is an invalid request, in params invalid params.
"""

from __future__ import annotations

import json
import logging
import math
import re
from itertools import accumulate
from typing import Any, Awaitable, Callable

import trio

from chainnode.protocol.hexstr import HexError, parse_hex

log = logging.getLogger("chainnode.rpc")

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Application errors (the spec reserves -32000..-32099 for servers).
TX_REJECTED = -32000
NOT_FOUND = -32001
UNAVAILABLE = -32002
LIMIT_EXCEEDED = -32005  # a rate or concurrency limit (the code Ethereum nodes use for it)
TIMED_OUT = -32006  # the method ran into its time limit
FORBIDDEN = -32007  # the caller's role may not call this method (the channel port: chainnode.security.roles)

# Deeper than any request of ours needs (`call` arguments included), shallow enough to parse
# on any stack.
JSON_DEPTH_MAX = 64
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")

Method = Callable[[list], Awaitable[Any]]
# A caller's policy: the refusal message for a method it may not call, None if it may.
Policy = Callable[[str], "str | None"]


class RpcError(Exception):
    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def to_json(self) -> dict:
        err = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


def invalid_params(message: str) -> RpcError:
    return RpcError(INVALID_PARAMS, f"invalid params: {message}")


def _error_response(req_id: Any, err: RpcError) -> dict:
    return {"jsonrpc": "2.0", "id": req_id, "error": err.to_json()}


def _valid_id(v: Any) -> bool:
    return v is None or isinstance(v, str) or (isinstance(v, (int, float)) and not isinstance(v, bool))


class Dispatcher:
    def __init__(self, *, batch_max: int = 100) -> None:
        self._methods: dict[str, Method] = {}
        self.batch_max = batch_max
        self.calls: dict[str, int] = {}  # method -> count, for metrics

    def register(self, name: str, fn: Method) -> None:
        assert name not in self._methods, f"RPC method {name} registered twice"
        self._methods[name] = fn

    @property
    def method_names(self) -> list[str]:
        return sorted(self._methods)

    async def handle(self, body: bytes | str, *, policy: Policy | None = None) -> bytes | None:
        """The response to one message. `policy` (the channel port's client role) is applied
        to every request, each item of a batch on its own: a refused item gets FORBIDDEN."""
        try:
            request = parse(body)
        except RpcError as exc:
            return _dump(_error_response(None, exc))
        if isinstance(request, list):
            if not request:
                return _dump(_error_response(None, RpcError(INVALID_REQUEST, "invalid request: empty batch")))
            if len(request) > self.batch_max:
                return _dump(_error_response(None, RpcError(INVALID_REQUEST, f"invalid request: batch of {len(request)} exceeds {self.batch_max}")))
            # Items run concurrently (the specification allows any order of processing): a
            # batch of transactions then shares signature checks instead of queueing them.
            results: list[dict | None] = [None] * len(request)

            async def one(i: int, item: Any) -> None:
                results[i] = await self._one(item, policy)

            async with trio.open_nursery() as nursery:
                for i, item in enumerate(request):
                    nursery.start_soon(one, i, item)
            responses = [r for r in results if r is not None]
            return _dump(responses) if responses else None
        response = await self._one(request, policy)
        return None if response is None else _dump(response)

    async def _one(self, req: Any, policy: Policy | None = None) -> dict | None:
        if not isinstance(req, dict):
            return _error_response(None, RpcError(INVALID_REQUEST, "invalid request: expected an object"))
        req_id = req.get("id")
        is_notification = "id" not in req
        if not _valid_id(req_id) or _has_surrogate(req_id):
            return _error_response(None, RpcError(INVALID_REQUEST, "invalid request: id must be a string (valid Unicode), number or null"))
        if req.get("jsonrpc") != "2.0":
            return _error_response(req_id, RpcError(INVALID_REQUEST, 'invalid request: "jsonrpc" must be "2.0"'))
        method = req.get("method")
        if not isinstance(method, str) or _has_surrogate(method):
            return _error_response(req_id, RpcError(INVALID_REQUEST, 'invalid request: "method" must be a string (valid Unicode)'))
        fn = self._methods.get(method)
        if fn is None:  # whatever the params look like (JSON-RPC 2.0 section 5.1)
            if is_notification:
                return None
            return _error_response(req_id, RpcError(METHOD_NOT_FOUND, f"method not found: {method[:64]!r}; see docs/rpc.md for the methods this node serves"))
        refused = policy(method) if policy is not None else None
        if refused is not None:
            return None if is_notification else _error_response(req_id, RpcError(FORBIDDEN, refused))
        params = req.get("params", [])
        if not isinstance(params, list):
            return _error_response(req_id, invalid_params("params must be an array (positional, group id first)"))
        if _has_surrogate(params):
            return _error_response(req_id, invalid_params("params hold a lone UTF-16 surrogate (like \"\\ud800\"), which is not Unicode; send valid text"))
        self.calls[method] = self.calls.get(method, 0) + 1
        try:
            result = await fn(params)
        except RpcError as exc:
            return None if is_notification else _error_response(req_id, exc)
        except Exception:
            log.exception("internal error in RPC method %s", method)
            return None if is_notification else _error_response(req_id, RpcError(INTERNAL_ERROR, "internal error; see the node's log"))
        return None if is_notification else {"jsonrpc": "2.0", "id": req_id, "result": result}


def _dump(obj: Any) -> bytes:
    try:
        return json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
    except ValueError:  # a NaN or infinity in a result: a bug of ours, never sent as non-JSON
        log.exception("an RPC response is not standard JSON")
        req_id = obj.get("id") if isinstance(obj, dict) else None
        return json.dumps(_error_response(req_id, RpcError(INTERNAL_ERROR, "internal error; see the node's log"))).encode()


def _refuse_constant(name: str) -> Any:
    raise RpcError(PARSE_ERROR, f"parse error: {name} is not JSON (RFC 8259 has no NaN or Infinity); send a number or a string")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RpcError(PARSE_ERROR, f"parse error: the number {text[:32]} is too large for a JSON number; send it as a string")
    return value


def json_depth(data: bytes) -> int:
    """How deeply arrays and objects nest in JSON text (brackets inside strings do not count)."""
    brackets = _STRINGS.sub(b"", data).translate(None, _BRACKETS)
    if not brackets:
        return 0
    return max(accumulate(1 if c in b"[{" else -1 for c in brackets))


def parse(body: bytes | str) -> Any:
    """Strict JSON: RpcError(PARSE_ERROR) for anything else, nesting deeper than JSON_DEPTH_MAX included."""
    if isinstance(body, str):
        try:
            data = body.encode("utf-8")
        except UnicodeEncodeError:
            raise RpcError(PARSE_ERROR, "parse error: the message is not valid UTF-8 text") from None
    else:
        data = body
    # Cheap first: text with fewer brackets than the limit cannot nest deeper than it.
    if data.count(b"[") + data.count(b"{") > JSON_DEPTH_MAX and json_depth(data) > JSON_DEPTH_MAX:
        raise RpcError(PARSE_ERROR, f"parse error: arrays and objects nest deeper than {JSON_DEPTH_MAX} levels")
    try:
        # Strictly UTF-8 (RFC 8259): json.loads would decode bytes with "surrogatepass".
        text = data.decode("utf-8") if isinstance(body, bytes) else body
    except UnicodeDecodeError as exc:
        raise RpcError(PARSE_ERROR, f"parse error: the body is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_float=_parse_float)
    except (ValueError, RecursionError) as exc:
        raise RpcError(PARSE_ERROR, f"parse error: {exc}") from None


def _has_surrogate(value: Any) -> bool:
    """Whether a lone UTF-16 surrogate hides in a string of `value` (its keys included)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            try:
                v.encode("utf-8")
            except UnicodeEncodeError:
                return True
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v)
            stack.extend(v.values())
    return False


# ---- positional parameter checks ---------------------------------------------------------


class Params:
    """Typed access to positional params; each check names the parameter when it fails."""

    def __init__(self, params: list, names: list[str], required: int) -> None:
        if len(params) < required:
            raise invalid_params(f"expected {', '.join(names[:required])}; got {len(params)} parameter(s)")
        if len(params) > len(names):
            raise invalid_params(f"at most {len(names)} parameters ({', '.join(names)}); got {len(params)}")
        self._params = params
        self._names = names

    def _get(self, i: int, default: Any) -> Any:
        return self._params[i] if i < len(self._params) else default

    def str(self, i: int, *, default: str | None = None, max_length: int = 256) -> str:
        v = self._get(i, default)
        if not isinstance(v, str) or len(v) > max_length:
            raise invalid_params(f"{self._names[i]!r} must be a string of at most {max_length} characters")
        return v

    def int(self, i: int, *, default: int | None = None, lo: int = 0, hi: int = 2**63 - 1) -> int:
        v = self._get(i, default)
        if isinstance(v, str):  # FISCO clients often send numbers as decimal or 0x strings
            try:
                v = int(v, 0)
            except ValueError:
                raise invalid_params(f"{self._names[i]!r} must be an integer") from None
        if type(v) is not int or not lo <= v <= hi:
            raise invalid_params(f"{self._names[i]!r} must be an integer in [{lo}, {hi}]")
        return v

    def bool(self, i: int, *, default: bool | None = None) -> bool:
        v = self._get(i, default)
        if type(v) is not bool:
            raise invalid_params(f"{self._names[i]!r} must be true or false")
        return v

    def hex(self, i: int, *, length: int | None = None, max_length: int = 1 << 20) -> bytes:
        try:
            return parse_hex(self._get(i, None), length=length, max_bytes=max_length, what=repr(self._names[i]))
        except HexError as exc:
            raise invalid_params(str(exc)) from None

"""An async JSON-RPC client for a chain's nodes (trio, through httpx).

Given several node URLs, it uses one at a time and moves to the next when that node cannot
be reached. `send` (and `wait_for_receipt` given the transaction) resubmits the same signed
transaction to another node when its node dies or the receipt does not come in time: a node
answers a transaction it already holds or committed with its hash, so resending is safe.

Exact values come from the canonical encodings the node returns (`raw`), never from the
human-readable JSON views, so bytes and text are never confused.
"""

from __future__ import annotations

import itertools
import json
import logging
from contextlib import AbstractAsyncContextManager
from typing import Any, Sequence

import httpx
import trio
from trio_websocket import open_websocket_url

from chainnode.client.account import DEFAULT_GAS_LIMIT, Account
from chainnode.client.errors import CallFailed, NodeError, ProofError, ReceiptTimeout, TransactionFailed
from chainnode.client.proof import verify_receipt_proof
from chainnode.client.receipt import ReceiptInfo
from chainnode.client.subscriptions import Subscription, open_subscription
from chainnode.client.transport import METHOD_NOT_FOUND, WS_MESSAGE_BYTES_MAX, is_connection_error, ws_call
from chainnode.crypto import CryptoSuite, get_suite
from chainnode.protocol.codec import pack, unpack
from chainnode.protocol.hexstr import parse_hex, to_hex
from chainnode.protocol.types import Receipt, Transaction

log = logging.getLogger("chainnode.client")

BLOCK_LIMIT_MARGIN = 10  # blocks kept in hand below the node's window, for clock skew between nodes
TX_PENDING = -32003  # sendTransaction's wait for the receipt ran out (the transaction is durable there)
NO_NODE_RETRY_S = 0.5  # when no node answers, how long before trying them all again


def ws_url_for(http_url: str) -> str:
    """The WebSocket address of a node's RPC port (the same port serves both)."""
    if http_url.startswith("https://"):
        return "wss://" + http_url[len("https://"):]
    if http_url.startswith("http://"):
        return "ws://" + http_url[len("http://"):]
    return http_url


class Client:
    """`async with Client(url, group="group0") as c: ...`

    `url` is a node's JSON-RPC address (http://host:port), or a list of several nodes'
    addresses of the same chain: requests go to one of them and fail over to the next when
    it cannot be reached. `ws_url` is the WebSocket address for subscriptions; by default
    the current node's RPC port (ws://host:port/). Pass `ws_url=""` to never use WebSocket
    (then `wait_for_receipt` polls); an explicit address goes with a single `url` only.
    `timeout_s` bounds each HTTP request (beyond any receipt wait the node is asked for).
    Errors: `NodeError` (the node's JSON-RPC error: code, message, data),
    `ConnectionError` (no node reachable), `ReceiptTimeout`, `TransactionFailed`, `ProofError`.
    """

    def __init__(self, url: str | Sequence[str], *, group: str = "group0", node: str = "", timeout_s: float = 10.0, ws_url: str | None = None) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls or not all(isinstance(u, str) and u for u in urls):
            raise ValueError("Client needs one node URL or a list of them, like http://127.0.0.1:8545")
        if ws_url and len(urls) > 1:
            raise ValueError("ws_url names one node's WebSocket; with several URLs leave it out (each node's is used) or pass \"\"")
        self.urls = [u.rstrip("/") + "/" for u in urls]
        self._current = 0  # index in urls of the node in use
        self._ws_url = ws_url
        self.group = group
        self.node = node
        self.timeout_s = timeout_s
        self._ws_subscriptions_ok = bool(self.ws_url)  # False once a node says it has none
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._ids = itertools.count(1)
        self._info: dict | None = None

    @property
    def url(self) -> str:
        """The node in use."""
        return self.urls[self._current]

    @property
    def ws_url(self) -> str:
        return ws_url_for(self.url) if self._ws_url is None else self._ws_url

    def _next_node(self) -> None:
        self._current = (self._current + 1) % len(self.urls)

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """One JSON-RPC call with the group and node names in front of `params`. A node that
        cannot be reached is left for the next one; `ConnectionError` once none answered.
        Every method is safe to repeat (sendTransaction is idempotent by hash)."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": [self.group, self.node, *params]}
        failures = []
        for _ in self.urls:
            try:
                response = await self._http.post(self.url, json=body, timeout=timeout_s or self.timeout_s)
                break
            except httpx.HTTPError as exc:
                failures.append(f"{self.url} ({exc or type(exc).__name__})")
                self._next_node()
        else:
            where = "the node at " + failures[0] if len(failures) == 1 else "any node: " + ", ".join(failures)
            raise ConnectionError(f"cannot reach {where}; is it running, and is this its rpc listen address?")
        try:
            reply = response.json()
        except ValueError:
            raise NodeError(-32700, f"the node answered HTTP {response.status_code} with a body that is not JSON") from None
        if "error" in reply:
            err = reply["error"]
            raise NodeError(err.get("code", 0), err.get("message", ""), err.get("data"))
        return reply.get("result")

    # ---- reads ---------------------------------------------------------------------------

    async def group_info(self, *, refresh: bool = False) -> dict:
        if self._info is None or refresh:
            self._info = await self.request("getGroupInfo")
        return self._info

    async def block_number(self) -> int:
        return await self.request("getBlockNumber")

    async def get_receipt(self, tx_hash: bytes, *, require_proof: bool = False) -> ReceiptInfo | None:
        out = await self.request("getTransactionReceipt", to_hex(tx_hash), require_proof)
        if out is None:
            return None
        return ReceiptInfo(Receipt.decode(parse_hex(out["raw"])), out["blockNumber"], out["transactionIndex"])

    async def wait_for_receipt(self, tx: bytes | Transaction, *, timeout_s: float = 30.0, poll_ms: int = 100, resubmit_after_s: float = 10.0) -> ReceiptInfo:
        """The receipt once the transaction is committed; raises `ReceiptTimeout` after `timeout_s`.

        Given the signed `Transaction`, it is (re)submitted: the node is asked to answer with
        the receipt, and if that node dies or has none within `resubmit_after_s`, the same
        bytes go to the next node. Given only its hash, this waits: by a receipt
        subscription over WebSocket when the node offers one (pushed the moment the block
        commits), else by polling every `poll_ms`.
        """
        if isinstance(tx, Transaction):
            return await self._submit_until_receipt(tx, timeout_s=timeout_s, resubmit_after_s=resubmit_after_s)
        tx_hash = tx
        with trio.move_on_after(timeout_s):
            if self._ws_subscriptions_ok:
                receipt = await self._receipt_by_subscription(tx_hash)
                if receipt is not None:
                    return receipt
            while True:
                receipt = await self.get_receipt(tx_hash)
                if receipt is not None:
                    return receipt
                await trio.sleep(poll_ms / 1000)
        raise ReceiptTimeout(f"no receipt for 0x{tx_hash.hex()} after {timeout_s} s; it may still be pending (check getTransaction) or may have expired")

    async def call(self, to: bytes, method: str, args: list | None = None, *, sender: bytes | None = None) -> Any:
        """Run a contract method read-only on the head state; returns its output exactly
        (bytes stay bytes). Raises `CallFailed` if the method failed. Nothing is signed or sent.
        """
        # Arguments travel as their canonical encoding, so bytes are never mistaken for text.
        params: list[Any] = [to_hex(to), method, to_hex(pack(list(args or [])))]
        if sender is not None:
            params.append(to_hex(sender))
        out = await self.request("call", *params)
        if out["status"] != 0:
            raise CallFailed(to, method, out.get("errorType", ""), out.get("errorMessage", ""))
        return unpack(parse_hex(out["raw"]), max_bytes=len(out["raw"]))

    async def _receipt_by_subscription(self, tx_hash: bytes) -> ReceiptInfo | None:
        """The receipt through a `receipt` subscription; None to fall back to polling."""
        try:
            async with open_websocket_url(self.ws_url, max_message_size=WS_MESSAGE_BYTES_MAX) as ws:
                sub_id = await ws_call(ws, 1, "subscribe", [self.group, self.node, "receipt", {"transactionHash": to_hex(tx_hash)}])
                while True:
                    message = json.loads(await ws.get_message())
                    params = message.get("params") if isinstance(message, dict) and message.get("method") == "subscription" else None
                    if isinstance(params, dict) and params.get("subscription") == sub_id:
                        out = params["result"]
                        return ReceiptInfo(Receipt.decode(parse_hex(out["raw"])), out["blockNumber"], out["transactionIndex"])
        except NodeError as exc:
            if exc.code != METHOD_NOT_FOUND:
                raise
            self._ws_subscriptions_ok = False  # an older node: poll from now on
            return None
        except BaseException as exc:
            if not is_connection_error(exc):
                raise
            log.debug("receipt subscription at %s failed (%s); polling instead", self.ws_url, exc)
            return None

    def subscribe_events(
        self, *, address: bytes | None = None, name: str | None = None, from_block: int | None = None,
        resume_after: tuple[int, int, int] | None = None, reconnect_attempts_max: int = 20,
    ) -> AbstractAsyncContextManager[Subscription]:
        """Contract events, as an async iterator of `EventNotification`, in chain order.

        `address` and `name` filter (None: any). `from_block`: replay committed blocks from
        that height first (None: from the next block). `resume_after`: an event position
        (block, tx index, log index) saved from an earlier run (`Subscription.position`);
        events up to and including it are skipped. Reconnects by itself after a dropped
        connection and resumes without losing or repeating an event; raises
        `ConnectionError` after `reconnect_attempts_max` failed attempts in a row.

            async with client.subscribe_events(address=token, name="Transfer", from_block=0) as events:
                async for ev in events:
                    ...
        """
        options: dict[str, Any] = {}
        if address is not None:
            options["address"] = to_hex(address)
        if name is not None:
            options["name"] = name
        return open_subscription(self._require_ws(), self.group, self.node, "events", options, from_block, reconnect_attempts_max=reconnect_attempts_max, resume_after=resume_after)

    def subscribe_blocks(self, *, from_block: int | None = None, reconnect_attempts_max: int = 20) -> AbstractAsyncContextManager[Subscription]:
        """Committed blocks, as an async iterator of `BlockNotification` (header and
        certificate), each height once and in order; see `subscribe_events`."""
        return open_subscription(self._require_ws(), self.group, self.node, "newBlocks", {}, from_block, reconnect_attempts_max=reconnect_attempts_max)

    def _require_ws(self) -> str:
        if not self.ws_url:
            raise ValueError("this Client was made with ws_url=\"\"; subscriptions need the node's WebSocket address")
        return self.ws_url

    # ---- proofs --------------------------------------------------------------------------

    async def suite(self) -> CryptoSuite:
        """The chain's crypto suite (from getGroupInfo)."""
        return get_suite((await self.group_info())["suite"])

    async def sealer_pubs(self) -> list[bytes]:
        """The sealer public keys this node reports. For proofs that must not trust the
        node, get them out of band instead (the genesis file, governance records)."""
        return [parse_hex(s["publicKey"]) for s in await self.request("getSealerList")]

    async def sealer_weights(self) -> list[int]:
        """The sealers' PBFT weights, in the order of `sealer_pubs`."""
        return [int(s.get("weight", 1)) for s in await self.request("getSealerList")]

    async def get_verified_receipt(
        self, tx_hash: bytes, sealer_pubs: list[bytes], *, suite: CryptoSuite | None = None, sealer_weights: list[int] | None = None,
    ) -> ReceiptInfo:
        """The receipt of `tx_hash`, proven against `sealer_pubs` (see `verify_receipt_proof`).

        Raises `ProofError` if any link of the proof fails, or if the node has no receipt.
        """
        out = await self.request("getTransactionReceipt", to_hex(tx_hash), True)
        if out is None:
            raise ProofError(f"the node has no receipt for 0x{tx_hash.hex()}: not committed (yet)")
        return verify_receipt_proof(out, sealer_pubs, suite or await self.suite(), tx_hash=tx_hash, sealer_weights=sealer_weights)

    # ---- writes --------------------------------------------------------------------------

    async def send_transaction(self, tx: Transaction) -> bytes:
        """Submit a signed transaction; returns its hash once a node holds it durably (also
        when it was already pending or committed: resending the same bytes is safe)."""
        out = await self.request("sendTransaction", to_hex(tx.encode()))
        return parse_hex(out["transactionHash"])

    async def _submit_until_receipt(self, tx: Transaction, *, timeout_s: float, resubmit_after_s: float) -> ReceiptInfo:
        data = to_hex(tx.encode())
        acknowledged: list[str] = []  # nodes that hold it durably
        tx_hash = to_hex(tx.hash(get_suite(self._info["suite"]))) if self._info else "the transaction"
        unreachable: ConnectionError | None = None
        deadline = trio.current_time() + timeout_s
        with trio.move_on_after(timeout_s):
            while True:
                wait_ms = max(0, int(min(resubmit_after_s, deadline - trio.current_time()) * 1000))
                try:
                    out = await self.request("sendTransaction", data, False, {"waitForReceipt": True, "timeoutMs": wait_ms}, timeout_s=wait_ms / 1000 + self.timeout_s)
                except NodeError as exc:
                    if exc.code != TX_PENDING:
                        raise  # rejected: the message says why and what to do
                    tx_hash = exc.data.get("transactionHash", tx_hash) if isinstance(exc.data, dict) else tx_hash
                    if self.url not in acknowledged:
                        acknowledged.append(self.url)
                    self._next_node()  # no receipt there in time: try another node
                    continue
                except ConnectionError as exc:
                    unreachable = exc  # no node answers now: try them all again shortly
                    await trio.sleep(NO_NODE_RETRY_S)
                    continue
                receipt = out["receipt"]
                return ReceiptInfo(Receipt.decode(parse_hex(receipt["raw"])), receipt["blockNumber"], receipt["transactionIndex"])
        if not acknowledged and unreachable is not None:
            raise ConnectionError(f"no node acknowledged {tx_hash} within {timeout_s} s ({unreachable}); it was not sent: send it again once a node is up")
        if not acknowledged:  # the one request still in flight when the time ran out
            raise ReceiptTimeout(f"no answer from {self.url} about {tx_hash} within {timeout_s} s; send the same transaction again (safe: it is idempotent)")
        raise ReceiptTimeout(
            f"no receipt for {tx_hash} within {timeout_s} s; it is held durably by {', '.join(acknowledged)} and may still commit "
            f"until block {tx.block_limit}: wait again, or send the same transaction again (safe: it is idempotent)",
            acknowledged,
        )

    async def build(self, account: Account, to: bytes, method: str, args: list, *, gas_limit: int = DEFAULT_GAS_LIMIT) -> Transaction:
        info = await self.group_info()
        height = await self.block_number()
        window = max(1, info["blockLimitWindow"] - BLOCK_LIMIT_MARGIN)
        return account.transaction(chain_id=info["chainId"], group_id=info["groupId"], block_limit=height + window, to=to, method=method, args=args, gas_limit=gas_limit)

    async def send(self, account: Account, to: bytes, method: str, args: list, *, gas_limit: int = DEFAULT_GAS_LIMIT, timeout_s: float = 30.0, check: bool = True) -> ReceiptInfo:
        """Sign, send and wait for the receipt; raises `TransactionFailed` if it failed (unless check=False)."""
        tx = await self.build(account, to, method, args, gas_limit=gas_limit)
        receipt = await self.wait_for_receipt(tx, timeout_s=timeout_s)
        if check and not receipt.ok:
            raise TransactionFailed(receipt)
        return receipt

    async def deploy(self, account: Account, source: str, init_args: list | None = None, **kwargs: Any) -> ReceiptInfo:
        """Deploy a contract; the receipt's `contract_address` is where it lives."""
        return await self.send(account, b"", "", [source, list(init_args or [])], **kwargs)

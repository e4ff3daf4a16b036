"""An async JSON-RPC client for a chain's nodes (trio): over a node's secure channel port
(chainnode://host:port, chainnode.client.channel) or its HTTP port (http(s)://, httpx).

Given several node URLs, it uses one at a time and moves to the next when that node cannot
be reached. `send` (and `wait_for_receipt` given the transaction) resubmits the same signed
transaction to another node when its node dies or the receipt does not come in time: a node
answers a transaction it already holds or committed with its hash, so resending is safe.

Exact values come from the canonical encodings the node returns (`raw`), never from the
human-readable JSON views, so bytes and text are never confused.
"""

from __future__ import annotations

import itertools
import logging
import os
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, AsyncIterator, Sequence

import httpx
import trio

from chainnode.client.account import DEFAULT_GAS_LIMIT, Account
from chainnode.client.channel import ChannelConnection, ChannelSession, ClientCredentials, is_channel_url, open_channel, parse_channel_url
from chainnode.client.errors import CallFailed, NodeError, ProofError, ReceiptTimeout, TransactionFailed, node_error
from chainnode.client.proof import ProvenState, verify_receipt_proof, verify_state_proof
from chainnode.client.receipt import ReceiptInfo
from chainnode.client.subscriptions import Connect, Subscription, open_subscription, ws_connect
from chainnode.client.transport import METHOD_NOT_FOUND, Session, is_connection_error
from chainnode.crypto import CryptoSuite, get_suite
from chainnode.protocol.codec import pack, unpack
from chainnode.protocol.hexstr import parse_hex, to_hex
from chainnode.protocol.types import BlockHeader, Receipt, Transaction, sealer_set_hash
from chainnode.security.certs import CertChain, Certificate
from chainnode.system.state import NODES_KEY, PENDING_NODES_KEY, sealers_at

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
    """`async with Client(url, key=..., cert=..., group="group0") as c: ...`

    `url` is a node's channel address (chainnode://host:port, the node's [channel] listen),
    or its JSON-RPC address (http://host:port, for tools on the node's machine), or a list
    of several nodes' addresses of the same chain: requests go to one of them and fail over
    to the next when it cannot be reached.

    Over the channel the client proves its client certificate: `key` is its account (an
    `Account`, or a key file with `password`) and `cert` the chain file `chainnode ca
    issue-client --key` wrote for that key. The node's own certificate is checked against
    the CA of `cert` (or `ca`, a ca.cert file). One connection per node carries every
    request and subscription; it is opened on first use, and again after it drops.
    A node that refuses the certificate raises `RefusedByNode` with its reason.

    `ws_url` is the WebSocket address for subscriptions with an HTTP `url`; by default the
    current node's RPC port (ws://host:port/). Pass `ws_url=""` to never use WebSocket
    (then `wait_for_receipt` polls); an explicit address goes with a single `url` only.
    `timeout_s` bounds each request (beyond any receipt wait the node is asked for).
    Errors: `NodeError` (the node's JSON-RPC error: code, message, data; `Forbidden` for a
    call the certificate's role may not make), `RefusedByNode`, `ConnectionError` (no node
    reachable), `ReceiptTimeout`, `TransactionFailed`, `ProofError`.
    """

    def __init__(
        self, url: str | Sequence[str], *, key: Account | str | os.PathLike | None = None, password: str | None = None,
        cert: CertChain | str | os.PathLike | None = None, ca: Certificate | Sequence[Certificate] | str | os.PathLike | None = None,
        group: str = "group0", node: str = "", timeout_s: float = 10.0, ws_url: str | None = None,
    ) -> None:
        urls = [url] if isinstance(url, str) else list(url)
        if not urls or not all(isinstance(u, str) and u for u in urls):
            raise ValueError("Client needs one node URL or a list of them, like chainnode://127.0.0.1:20200 or http://127.0.0.1:8545")
        for u in urls:
            if is_channel_url(u):
                parse_channel_url(u)
            elif not u.startswith(("http://", "https://")):
                raise ValueError(f"{u!r}: a node URL is chainnode://HOST:PORT (its channel port) or http(s)://HOST:PORT (its JSON-RPC port)")
        if ws_url and len(urls) > 1:
            raise ValueError("ws_url names one node's WebSocket; with several URLs leave it out (each node's is used) or pass \"\"")
        self.urls = [u.rstrip("/") if is_channel_url(u) else u.rstrip("/") + "/" for u in urls]
        self._credentials: ClientCredentials | None = None
        if any(is_channel_url(u) for u in urls):
            if key is None:
                raise ValueError("a chainnode:// URL needs the client's key (key=Account or key file, password=) and its certificate chain (cert=)")
            self._credentials = ClientCredentials.load(key, password=password, cert=cert, ca=ca)
        self._current = 0  # index in urls of the node in use
        self._ws_url = ws_url
        self.group = group
        self.node = node
        self.timeout_s = timeout_s
        self._ws_subscriptions_ok = bool(self.ws_url)  # False once a node says it has none
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._ids = itertools.count(1)
        self._info: dict | None = None
        self._channels: dict[str, ChannelConnection] = {}
        self._channel_locks: dict[str, trio.Lock] = {}
        self._genesis_hash = b""  # of the first node met on a channel: every other must share it
        self._exit_stack: AsyncExitStack | None = None
        self._nursery: trio.Nursery | None = None

    @property
    def url(self) -> str:
        """The node in use."""
        return self.urls[self._current]

    @property
    def ws_url(self) -> str:
        """The WebSocket address for subscriptions ("" over a channel: they use the channel)."""
        if is_channel_url(self.url):
            return ""
        return ws_url_for(self.url) if self._ws_url is None else self._ws_url

    def _next_node(self) -> None:
        self._current = (self._current + 1) % len(self.urls)

    async def __aenter__(self) -> "Client":
        stack = AsyncExitStack()
        # Channel connections' reader tasks live in this nursery, for as long as the client.
        self._nursery = await stack.enter_async_context(trio.open_nursery())
        self._exit_stack = stack
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        for connection in list(self._channels.values()):
            await connection.aclose()
        self._channels.clear()
        await self._http.aclose()
        if self._exit_stack is not None:
            stack, self._exit_stack, self._nursery = self._exit_stack, None, None
            await stack.aclose()

    @property
    def channel(self) -> ChannelConnection | None:
        """The open channel connection to the node in use, if any (its `node`, `protocol`)."""
        connection = self._channels.get(self.url)
        return connection if connection is not None and not connection.closed else None

    async def _channel(self, url: str) -> ChannelConnection:
        """The open channel to `url`, connecting (once, for every task waiting) if needed."""
        connection = self._channels.get(url)
        if connection is not None and not connection.closed:
            return connection
        if self._nursery is None:
            raise RuntimeError("a chainnode:// URL needs the client opened with `async with Client(...) as client:`")
        lock = self._channel_locks.setdefault(url, trio.Lock())
        async with lock:
            connection = self._channels.get(url)
            if connection is None or connection.closed:
                assert self._credentials is not None
                connection = await open_channel(url, self._credentials, genesis_hash=self._genesis_hash, timeout_s=self.timeout_s)
                self._genesis_hash = self._genesis_hash or connection.genesis_hash
                self._nursery.start_soon(connection.run)
                self._channels[url] = connection
                log.debug("channel to %s open (%s, node %r)", url, connection.protocol, connection.node.subject)
        return connection

    async def _exchange(self, url: str, body: dict, timeout_s: float) -> dict:
        """One request to one node: its whole JSON-RPC response. ConnectionError (or
        httpx.HTTPError) when that node cannot be reached."""
        if is_channel_url(url):
            connection = await self._channel(url)
            return await connection.call(body["method"], body["params"], timeout_s=timeout_s)
        response = await self._http.post(url, json=body, timeout=timeout_s)
        try:
            reply = response.json()
        except ValueError:
            raise NodeError(-32700, f"the node answered HTTP {response.status_code} with a body that is not JSON") from None
        return reply if isinstance(reply, dict) else {"error": {"code": -32700, "message": "the node answered with JSON that is not a response object"}}

    async def request(self, method: str, *params: Any, timeout_s: float | None = None) -> Any:
        """One JSON-RPC call with the group and node names in front of `params`. A node that
        cannot be reached is left for the next one; `ConnectionError` once none answered.
        Every method is safe to repeat (sendTransaction is idempotent by hash)."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": [self.group, self.node, *params]}
        failures = []
        # A channel the node closed (idle, restarted) is seen only when used: one more try
        # reconnects, to the same node if it is the only one.
        for _ in range(len(self.urls) + (1 if self._credentials is not None else 0)):
            try:
                reply = await self._exchange(self.url, body, timeout_s or self.timeout_s)
                break
            except (httpx.HTTPError, ConnectionError) as exc:
                failures.append(f"{self.url} ({exc or type(exc).__name__})")
                self._next_node()
        else:
            failures = list(dict.fromkeys(failures))
            where = "the node at " + failures[0] if len(failures) == 1 else "any node: " + ", ".join(failures)
            which = "channel listen address ([channel] listen in its node.toml)" if is_channel_url(self.url) else "rpc listen address"
            raise ConnectionError(f"cannot reach {where}; is it running, and is this its {which}?")
        if "error" in reply:
            raise node_error(reply["error"])
        return reply.get("result")

    async def request_batch(self, calls: Sequence[tuple[str, Sequence[Any]]], *, timeout_s: float | None = None) -> list[dict]:
        """Several calls in one JSON-RPC batch (group and node names in front of each call's
        params): each call's whole response, "result" or "error", in the order of `calls`.
        Fails over like `request`; `ConnectionError` once no node answered."""
        wait_s = timeout_s or self.timeout_s
        full = [(method, [self.group, self.node, *params]) for method, params in calls]
        failures = []
        for _ in range(len(self.urls) + (1 if self._credentials is not None else 0)):
            url = self.url
            try:
                if is_channel_url(url):
                    return await (await self._channel(url)).batch(full, timeout_s=wait_s)
                body = [{"jsonrpc": "2.0", "id": j, "method": m, "params": p} for j, (m, p) in enumerate(full)]
                reply = (await self._http.post(url, json=body, timeout=wait_s)).json()
                if not isinstance(reply, list):  # the whole batch refused (too large, say)
                    return [reply] * len(full)
                by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
                return [by_id.get(j, {"error": {"code": -32603, "message": "no answer for this request in the batch reply"}}) for j in range(len(full))]
            except (httpx.HTTPError, ConnectionError) as exc:
                failures.append(f"{url} ({exc or type(exc).__name__})")
                self._next_node()
            except ValueError:
                raise NodeError(-32700, f"the node at {url} answered a batch with a body that is not JSON") from None
        raise ConnectionError(f"cannot reach any node for a batch: {', '.join(dict.fromkeys(failures))}")

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
            if self._ws_subscriptions_ok or is_channel_url(self.url):
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

    def _sessions(self) -> Connect:
        """Where subscriptions connect: the channel of the node in use (moving on to the next
        node when it cannot be reached), else the WebSocket address."""
        if not is_channel_url(self.url):
            return ws_connect(self._require_ws())

        @asynccontextmanager
        async def connect() -> AsyncIterator[Session]:
            try:
                connection = await self._channel(self.url)
            except ConnectionError:
                self._next_node()
                raise
            session = ChannelSession(connection, timeout_s=self.timeout_s)
            try:
                yield session
            finally:
                await session.aclose()

        return connect

    async def _receipt_by_subscription(self, tx_hash: bytes) -> ReceiptInfo | None:
        """The receipt through a `receipt` subscription; None to fall back to polling."""
        where = self.url if is_channel_url(self.url) else self.ws_url
        try:
            async with self._sessions()() as session:
                sub_id = await session.subscribe([self.group, self.node, "receipt", {"transactionHash": to_hex(tx_hash)}])
                out = await session.notification(sub_id)
                return ReceiptInfo(Receipt.decode(parse_hex(out["raw"])), out["blockNumber"], out["transactionIndex"])
        except NodeError as exc:
            if exc.code != METHOD_NOT_FOUND:
                raise
            self._ws_subscriptions_ok = False  # an older node: poll from now on
            return None
        except BaseException as exc:
            if not is_connection_error(exc):
                raise
            log.debug("receipt subscription at %s failed (%s); polling instead", where, exc)
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
        return open_subscription(self._sessions(), self._where(), self.group, self.node, "events", options, from_block,
                                 reconnect_attempts_max=reconnect_attempts_max, resume_after=resume_after)

    def subscribe_blocks(self, *, from_block: int | None = None, reconnect_attempts_max: int = 20) -> AbstractAsyncContextManager[Subscription]:
        """Committed blocks, as an async iterator of `BlockNotification` (header and
        certificate), each height once and in order; see `subscribe_events`."""
        return open_subscription(self._sessions(), self._where(), self.group, self.node, "newBlocks", {}, from_block, reconnect_attempts_max=reconnect_attempts_max)

    def _where(self) -> str:
        return self.url if is_channel_url(self.url) else self._require_ws()

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

    async def get_verified_state(
        self, state_key: bytes, sealer_pubs: list[bytes], *, block_number: int | None = None, suite: CryptoSuite | None = None,
        sealer_weights: list[int] | None = None,
    ) -> ProvenState:
        """The value of `state_key` (`contract_state_key(address, key)`, `system_state_key(name)`)
        after block `block_number` (default: the head), proven against `sealer_pubs`, the
        set that certified that block (see `verify_state_proof`, `follow_sealer_sets`)."""
        params = ["raw", to_hex(state_key)] + ([] if block_number is None else [block_number])
        out = await self.request("getStateProof", *params)
        return verify_state_proof(out, state_key, sealer_pubs, suite or await self.suite(), sealer_weights=sealer_weights)

    async def follow_sealer_sets(
        self, sealer_pubs: list[bytes], sealer_weights: list[int] | None, to_height: int, *, suite: CryptoSuite | None = None,
    ) -> tuple[list[bytes], list[int]]:
        """The sealer set that certifies block `to_height`, trusting only `sealer_pubs` (e.g.
        the genesis file's) and proofs: each later set is proven from the state of the last
        block the set before it certified, which schedules it (sys/nodes and
        sys/nodes_pending: the set of block h is the state after h - 1's, as every node
        computes it). The node is asked for headers, never trusted for them."""
        suite = suite or await self.suite()
        pubs, weights = list(sealer_pubs), list(sealer_weights or [1] * len(sealer_pubs))
        low = 0  # a height whose header names the trusted set, or genesis
        while True:
            trusted = sealer_set_hash(suite, pubs, weights)
            target = await self._header(to_height)
            if target.sealer_set_hash == trusted:
                return pubs, weights
            # The first block after `low` certified by another set (headers name their set).
            lo, hi = low, to_height
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if (await self._header(mid)).sealer_set_hash == trusted:
                    lo = mid
                else:
                    hi = mid
            if hi == 1:  # no change is in force before block 3: block 1 is the genesis set's
                raise ProofError("block 1 was certified by another sealer set than the one given: it is not this chain's genesis set "
                                 "(take the sealers from its genesis file)")
            changed = await self._header(hi)
            # sys/sset/<hash> cannot serve: block hi itself writes its set there, in a state
            # only the new set certifies. The state after hi - 1 holds the schedule.
            schedule: dict[bytes, bytes] = {}
            for key in (NODES_KEY, PENDING_NODES_KEY):
                proven = await self.get_verified_state(key, pubs, block_number=hi - 1, suite=suite, sealer_weights=weights)
                if proven.value is not None:
                    schedule[key] = proven.value
            sealers = sealers_at(schedule, hi)
            found = [s.consensus_pub for s in sealers], [s.weight for s in sealers]
            if not sealers or sealer_set_hash(suite, *found) != changed.sealer_set_hash:
                raise ProofError(f"block {hi} names sealer set 0x{changed.sealer_set_hash.hex()}, not the one the state after block {hi - 1} schedules for it")
            pubs, weights = found
            low = hi

    async def _header(self, height: int) -> BlockHeader:
        block = await self.request("getBlockByNumber", height, True)
        return BlockHeader.decode(parse_hex(block["raw"]))

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

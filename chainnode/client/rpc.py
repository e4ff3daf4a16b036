"""An async JSON-RPC client for one node (trio or asyncio, through httpx).

Exact values come from the canonical encodings the node returns (`raw`), never from the
human-readable JSON views, so bytes and text are never confused.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from chainnode.client.account import DEFAULT_GAS_LIMIT, Account
from chainnode.types import Event, Receipt, Transaction

BLOCK_LIMIT_MARGIN = 10  # blocks kept in hand below the node's window, for clock skew between nodes


class NodeError(Exception):
    """The node answered with a JSON-RPC error; `code`, `message` and `data` are the node's."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data

    @property
    def reason(self) -> str | None:
        """For a rejected transaction, the pool's reason code (e.g. "block_limit_expired")."""
        return self.data.get("reason") if isinstance(self.data, dict) else None


class ReceiptTimeout(Exception):
    pass


class TransactionFailed(Exception):
    def __init__(self, receipt: "ReceiptInfo") -> None:
        what = receipt.error_type + (f": {receipt.error_message}" if receipt.error_message else "")
        super().__init__(f"transaction 0x{receipt.tx_hash.hex()} failed in block {receipt.block_number}: {what}")
        self.receipt = receipt


@dataclass(frozen=True)
class ReceiptInfo:
    receipt: Receipt
    block_number: int
    index: int

    @property
    def tx_hash(self) -> bytes:
        return self.receipt.tx_hash

    @property
    def ok(self) -> bool:
        return self.receipt.ok

    @property
    def output(self) -> Any:
        return self.receipt.output

    @property
    def events(self) -> list[Event]:
        return self.receipt.events

    @property
    def contract_address(self) -> bytes:
        return self.receipt.contract_address

    @property
    def gas_used(self) -> int:
        return self.receipt.gas_used

    @property
    def error_type(self) -> str:
        return self.receipt.error_type

    @property
    def error_message(self) -> str:
        return self.receipt.error_message


def _unhex(s: str) -> bytes:
    return bytes.fromhex(s[2:] if s.startswith("0x") else s)


class Client:
    """`async with Client(url, group="group0") as c: ...`"""

    def __init__(self, url: str, *, group: str = "group0", node: str = "", timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/") + "/"
        self.group = group
        self.node = node
        self._http = httpx.AsyncClient(timeout=timeout_s)
        self._ids = itertools.count(1)
        self._info: dict | None = None

    async def __aenter__(self) -> "Client":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, *params: Any) -> Any:
        """One JSON-RPC call with the group and node names in front of `params`."""
        body = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": [self.group, self.node, *params]}
        try:
            response = await self._http.post(self.url, json=body)
        except httpx.HTTPError as exc:
            raise ConnectionError(f"cannot reach the node at {self.url}: {exc}; is it running, and is this its rpc listen address?") from None
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
        out = await self.request("getTransactionReceipt", "0x" + tx_hash.hex(), require_proof)
        if out is None:
            return None
        return ReceiptInfo(Receipt.decode(_unhex(out["raw"])), out["blockNumber"], out["transactionIndex"])

    async def wait_for_receipt(self, tx_hash: bytes, *, timeout_s: float = 30.0, poll_ms: int = 100) -> ReceiptInfo:
        with trio.move_on_after(timeout_s):
            while True:
                receipt = await self.get_receipt(tx_hash)
                if receipt is not None:
                    return receipt
                await trio.sleep(poll_ms / 1000)
        raise ReceiptTimeout(f"no receipt for 0x{tx_hash.hex()} after {timeout_s} s; it may still be pending (check getTransaction) or may have expired")

    # ---- writes --------------------------------------------------------------------------

    async def send_transaction(self, tx: Transaction) -> bytes:
        """Submit a signed transaction; returns its hash once the node's pool accepted it."""
        out = await self.request("sendTransaction", "0x" + tx.encode().hex())
        return _unhex(out["transactionHash"])

    async def build(self, account: Account, to: bytes, method: str, args: list, *, gas_limit: int = DEFAULT_GAS_LIMIT) -> Transaction:
        info = await self.group_info()
        height = await self.block_number()
        window = max(1, info["blockLimitWindow"] - BLOCK_LIMIT_MARGIN)
        return account.transaction(chain_id=info["chainId"], group_id=info["groupId"], block_limit=height + window, to=to, method=method, args=args, gas_limit=gas_limit)

    async def send(self, account: Account, to: bytes, method: str, args: list, *, gas_limit: int = DEFAULT_GAS_LIMIT, timeout_s: float = 30.0, check: bool = True) -> ReceiptInfo:
        """Sign, send and wait for the receipt; raises `TransactionFailed` if it failed (unless check=False)."""
        tx = await self.build(account, to, method, args, gas_limit=gas_limit)
        receipt = await self.wait_for_receipt(await self.send_transaction(tx), timeout_s=timeout_s)
        if check and not receipt.ok:
            raise TransactionFailed(receipt)
        return receipt

    async def deploy(self, account: Account, source: str, init_args: list | None = None, **kwargs: Any) -> ReceiptInfo:
        """Deploy a contract; the receipt's `contract_address` is where it lives."""
        return await self.send(account, b"", "", [source, list(init_args or [])], **kwargs)

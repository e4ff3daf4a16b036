"""The errors the SDK raises (besides `ConnectionError` when no node can be reached)."""

from __future__ import annotations

from typing import Any, Sequence

from chainnode.client.receipt import ReceiptInfo


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
    """No receipt within the time asked; the transaction may still be pending or may expire.
    `acknowledged_by` lists the nodes that hold it durably (when the Client sent it)."""

    def __init__(self, message: str, acknowledged_by: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.acknowledged_by = list(acknowledged_by)


class TransactionFailed(Exception):
    """The transaction was committed with a failed receipt (`.receipt` has the details)."""

    def __init__(self, receipt: ReceiptInfo) -> None:
        what = receipt.error_type + (f": {receipt.error_message}" if receipt.error_message else "")
        super().__init__(f"transaction 0x{receipt.tx_hash.hex()} failed in block {receipt.block_number}: {what}")
        self.receipt = receipt


class CallFailed(Exception):
    """A read-only `call` failed: `error_type` (NoContract, MethodNotFound, ContractError,
    OutOfGas, PermissionError, ...) and the contract's own `error_message`."""

    def __init__(self, to: bytes, method: str, error_type: str, error_message: str) -> None:
        what = error_type + (f": {error_message}" if error_message else "")
        super().__init__(f"call of {method!r} on 0x{to.hex()} failed: {what}")
        self.error_type = error_type
        self.error_message = error_message


class ProofError(Exception):
    """A receipt proof that does not prove what it claims; the message says which link broke."""

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


FORBIDDEN = -32007  # the client certificate's role may not call this method


class Forbidden(NodeError):
    """The node refused a call this client certificate's role may not make (an auditor, say,
    sending a transaction); `message` is the node's: it names the role, the method and what
    to do."""


def node_error(error: Any) -> NodeError:
    """The exception for a JSON-RPC "error" member."""
    err = error if isinstance(error, dict) else {}
    code, message = err.get("code", 0), err.get("message", "")
    return (Forbidden if code == FORBIDDEN else NodeError)(code, message, err.get("data"))


# The node's refusal reasons (chainnode.security.certs REASON_*) and what the user does about them.
_CERTIFICATE_HINT = "ask your agency for a new client certificate (chainnode ca issue-client) and pass it (cert=, --cert)"
REFUSAL_HINTS = {
    "no certificate": "pass this client's certificate chain (cert=, --cert): the file `chainnode ca issue-client --key` wrote for its key",
    "certificate revoked": _CERTIFICATE_HINT,
    "certificate expired": _CERTIFICATE_HINT,
    "certificate not yet valid": "check this machine's clock, or wait until the certificate's validity starts",
    "wrong CA": "this certificate is from another consortium's CA; " + _CERTIFICATE_HINT,
    "agency mismatch": _CERTIFICATE_HINT,
    "bad certificate": _CERTIFICATE_HINT,
    "bad certificate signature": _CERTIFICATE_HINT,
    "certificate key mismatch": "pass the key the certificate was issued for (key=, --key) with its chain file (cert=, --cert)",
    "not a consortium node": "the other side is not a node of your consortium: check the URL, and the CA your certificate is from",
    "another chain": "every URL given must be a node of the same chain",
    "wrong chain": "connect to a node of your chain",
    "not a client": "connect with a client certificate (chainnode ca issue-client), not a node's",
}
REFUSAL_HINT_DEFAULT = "check the node's log for this refusal, and your client certificate (chainnode ca show FILE)"


class RefusedByNode(Exception):
    """The channel handshake was refused: by the node (`by_us` False: it does not accept this
    client's certificate) or by us (the node failed our check). `reason` is the short reason,
    `detail` the rest; the message adds what to do. Not a ConnectionError: another node of
    the same chain would refuse the same certificate, so there is nothing to fail over to."""

    def __init__(self, url: str, reason: str, detail: str = "", *, by_us: bool = False) -> None:
        hint = REFUSAL_HINTS.get(reason, REFUSAL_HINT_DEFAULT)
        if by_us:
            text = f"refused the node at {url}: {reason}: {detail}; {hint}" if detail else f"refused the node at {url}: {reason}; {hint}"
        else:
            # The node's detail already says what to do about its reason; ours is for a terse node.
            text = f"the node at {url} refused this client certificate: {reason}: {detail}" if detail else (
                f"the node at {url} refused this client certificate: {reason}; {hint}")
        super().__init__(text)
        self.url = url
        self.reason = reason
        self.detail = detail
        self.by_us = by_us


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

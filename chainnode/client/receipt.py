"""What the SDK returns for a committed transaction: its receipt and where it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chainnode.protocol.types import Event, Receipt


@dataclass(frozen=True)
class ReceiptInfo:
    """A receipt (decoded from its exact encoding) and where its transaction was committed."""

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

"""A payment-style workload for the integration tests: the token contract of `devnet
bench`, and pre-signed transfers (two balance reads, a check, two writes, an event)."""

from __future__ import annotations

import os

from chainnode.client import Account
from chainnode.protocol.types import Transaction
from devnet.bench import TOKEN

__all__ = ["TOKEN", "transfers"]


def transfers(account: Account, token: bytes, count: int, *, chain_id: str = "chain0", group_id: str = "group0", block_limit: int) -> list[Transaction]:
    """`count` signed transfers of 1 unit each to random addresses."""
    return [
        account.transaction(chain_id=chain_id, group_id=group_id, block_limit=block_limit, to=token, method="transfer", args=[os.urandom(20), 1], gas_limit=1_000_000)
        for _ in range(count)
    ]

"""A payment-style workload shared by the integration tests and the chain benchmark: a
token contract, and pre-signed transfers (two balance reads, a check, two writes, an event)."""

from __future__ import annotations

import os

from chainnode.client import Account
from chainnode.types import Transaction

TOKEN = '''
def init(supply):
    storage["bal:" + ctx.sender.hex()] = supply

def transfer(to, amount):
    require(amount > 0, "amount must be positive")
    src = "bal:" + ctx.sender.hex()
    dst = "bal:" + to.hex()
    balance = storage.get(src, 0)
    require(balance >= amount, "insufficient balance")
    storage[src] = balance - amount
    storage[dst] = storage.get(dst, 0) + amount
    emit("Transfer", to=to, amount=amount)
    return True

def balance_of(who):
    return storage.get("bal:" + who.hex(), 0)
'''


def transfers(account: Account, token: bytes, count: int, *, chain_id: str = "chain0", group_id: str = "group0", block_limit: int) -> list[Transaction]:
    """`count` signed transfers of 1 unit each to random addresses."""
    return [
        account.transaction(chain_id=chain_id, group_id=group_id, block_limit=block_limit, to=token, method="transfer", args=[os.urandom(20), 1], gas_limit=1_000_000)
        for _ in range(count)
    ]

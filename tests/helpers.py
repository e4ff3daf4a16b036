"""Builders shared by tests and benchmarks: real signed transactions, and whole blocks with
roots and commit certificates that verify (the work an executor and PBFT will do)."""

from __future__ import annotations

import os

from chainnode.crypto import CryptoSuite
from chainnode.protocol.merkle import merkle_root
from chainnode.protocol.types import (
    ZERO_HASH,
    Block,
    BlockHeader,
    CommitCertificate,
    Event,
    Receipt,
    Transaction,
    commit_signing_bytes,
    quorum_size,
    sealer_set_hash,
)
from chainnode.store.state import next_state_root
from devnet.layout import kernel_ports

# `count` distinct free loopback ports, chosen by the kernel: the devnet's own picker.
free_ports = kernel_ports


def free_port() -> int:
    return free_ports(1)[0]


def payment_tx(suite: CryptoSuite, priv: bytes, pub: bytes, *, to: bytes = b"\x01" * 20, amount: int = 100, block_limit: int = 1000, nonce: bytes | None = None) -> Transaction:
    tx = Transaction("chain0", "group0", nonce or os.urandom(16), block_limit, to, "transfer", [b"\x02" * 20, amount, "memo"], 100_000, pub)
    return tx.signed(suite, priv)


def receipt_for(suite: CryptoSuite, tx: Transaction) -> Receipt:
    return Receipt(
        tx_hash=tx.hash(suite),
        status=0,
        gas_used=1_234,
        output=True,
        events=[Event(tx.to or b"\x00" * 20, "Transfer", {"from": tx.sender(suite), "to": b"\x02" * 20, "amount": 100})],
    )


def next_block(ledger, txs, writes, sealer_keys, timestamp_ms: int = 0, header_version: int = 2):
    """(block, receipts, certificate or None for genesis, writes, tree update) extending
    `ledger`'s head (genesis if it has none), ready for Ledger.commit_block. Header version
    1 is the chained state digest of chains before the state tree."""
    suite = ledger.suite
    head = ledger.head_header
    height = ledger.head_height + 1
    receipts = [receipt_for(suite, tx) for tx in txs]
    tree_update = None
    if header_version >= 2:
        tree_update = ledger.state.tree_update(height, writes)
        state_root = tree_update.root
    else:
        state_root = next_state_root(suite, head.state_root if head else ZERO_HASH, writes)
    header = BlockHeader(
        parent_hash=ledger.head_hash if head else ZERO_HASH,
        height=height,
        timestamp_ms=timestamp_ms,
        proposer_index=height % max(1, len(sealer_keys)),
        sealer_set_hash=sealer_set_hash(suite, [pub for _, pub in sealer_keys]),
        tx_root=merkle_root([tx.hash(suite) for tx in txs], suite.hash),
        receipt_root=merkle_root([r.encode() for r in receipts], suite.hash),
        state_root=state_root,
        gas_used=sum(r.gas_used for r in receipts),
        tx_count=len(txs),
        version=header_version,
    )
    cert = None
    if height > 0:
        block_hash = header.hash(suite)
        msg = commit_signing_bytes(height, block_hash)
        signers = range(quorum_size(len(sealer_keys)))
        cert = CommitCertificate(height, block_hash, [(i, suite.sign(sealer_keys[i][0], msg)) for i in signers])
    return Block(header, txs), receipts, cert, writes, tree_update

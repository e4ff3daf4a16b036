"""A child process for the crash-consistency test: commits blocks to a real ledger as fast
as it can, printing each committed height, until it is killed.

The "executor" is a tiny deterministic function of the prior state and the transactions,
so the test can replay the stored blocks from genesis and recompute every state root.
Run: python -m tests.integration.crash_writer DATA_DIR
"""

from __future__ import annotations

import sys

from chainnode.crypto import get_suite
from chainnode.store.ledger import Ledger
from chainnode.store.state import StateOverlay
from tests.helpers import next_block, payment_tx

SUITE_NAME = "sm"
TXS_PER_BLOCK = 20
SEALERS = 4


def execute(state, txs) -> dict[bytes, bytes | None]:
    """Each transfer adds its amount to one of 16 accounts; an account past 5,000 is deleted."""
    overlay = StateOverlay(state)
    for tx in txs:
        key = b"acct/%d" % (tx.nonce[0] % 16)
        balance = int(overlay.get(key) or b"0") + tx.args[1]
        if balance > 5_000:
            overlay.delete(key)
        else:
            overlay.set(key, str(balance).encode())
    return overlay.writes()


def sealer_keys(suite):
    # Fixed keys so every run of the writer signs with the same sealer set.
    return [suite.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(SEALERS)]


def main(data_dir: str) -> None:
    suite = get_suite(SUITE_NAME)
    sealers = sealer_keys(suite)
    user = suite.generate_keypair()
    ledger = Ledger.open(data_dir, suite)
    if ledger.head_height < 0:
        ledger.commit_block(*next_block(ledger, [], {b"acct/0": b"0"}, sealers))
    print("ready", ledger.head_height, flush=True)
    while True:
        txs = [payment_tx(suite, *user, amount=(ledger.head_height * 7 + i) % 300) for i in range(TXS_PER_BLOCK)]
        writes = execute(ledger.state, txs)
        ledger.commit_block(*next_block(ledger, txs, writes, sealers, timestamp_ms=ledger.head_height))
        print("committed", ledger.head_height, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])

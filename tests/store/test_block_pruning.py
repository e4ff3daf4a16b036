"""Block bodies pruned below the retain height (`block_history_blocks`) on a real ledger:
headers, hashes and certificates stay; a body goes only once none of its transactions can
be in a later block (their block_limit is behind the head), so a replay is still refused."""

from __future__ import annotations

import os

import pytest

from chainnode.execution.executor import InvalidBlock
from chainnode.protocol.codec import pack, unpack
from chainnode.protocol.merkle import verify_proof
from chainnode.protocol.stateproof import EMPTY_ROOT
from chainnode.protocol.types import BlockHeader, Transaction
from chainnode.store.ledger import BLOCKS_PRUNED_KEY, LIMIT_PREFIX, PRUNE_HEIGHTS_PER_BLOCK_MAX, Ledger
from tests.chain_fixtures import SOURCE, SUITE, USER, certify, grow, open_chain
from tests.helpers import next_block, payment_tx

SEALERS = [SUITE.generate_keypair() for _ in range(4)]


def h8(height: int) -> bytes:
    return height.to_bytes(8, "big")


def commit(ledger: Ledger, block_limits: list[int]) -> list[bytes]:
    """A block of payments with these block_limits; their hashes."""
    txs = [payment_tx(SUITE, *USER, block_limit=limit) for limit in block_limits]
    ledger.commit_block(*next_block(ledger, txs, {b"k": b"%d" % ledger.head_height}, SEALERS))
    return [tx.hash(SUITE) for tx in txs]


def body_keys(ledger: Ledger, height: int, tx_hashes: list[bytes]) -> list[bytes | None]:
    get = ledger.store_get
    return [get(b"b:" + h8(height)), get(LIMIT_PREFIX + h8(height))] + [get(p + h) for h in tx_hashes for p in (b"t:", b"r:")]


def test_bodies_below_the_retain_height_go_and_headers_and_certificates_stay(tmp_path):
    with Ledger.open(tmp_path, SUITE, block_history_blocks=5) as ledger:
        hashes = {}
        for height in range(21):
            hashes[height] = commit(ledger, [height, height] if height else [])  # each expires with its own block
            kept_from = max(0, height - 4)
            assert ledger.oldest_block_height() == kept_from, height
        assert unpack(ledger.store_get(BLOCKS_PRUNED_KEY), max_bytes=16) == 16
        for height in range(16):
            assert body_keys(ledger, height, hashes[height]) == [None] * (2 + 2 * len(hashes[height]))
            assert ledger.get_block(height) is None and ledger.get_block_tx_hashes(height) is None
            assert all(ledger.get_transaction(h) is None and ledger.get_receipt(h) is None for h in hashes[height])
            assert ledger.transaction_proof(hashes[height][0] if hashes[height] else b"\0" * 32) is None
        for height in range(16, 21):
            assert None not in body_keys(ledger, height, hashes[height])
            assert len(ledger.get_block(height).transactions) == 2
            proof, at = ledger.receipt_proof(hashes[height][1])
            assert at == height and verify_proof(ledger.get_header(height).receipt_root, ledger.get_receipt(hashes[height][1]).encode(), proof)
        # Every header still chains to the genesis, each under its certificate.
        for height in range(1, 21):
            header = ledger.get_header(height)
            assert header.parent_hash == ledger.get_header(height - 1).hash(SUITE)
            assert ledger.get_height_by_hash(header.hash(SUITE)) == height
            ledger.get_certificate(height).verify(SUITE, [pub for _, pub in SEALERS])
        assert ledger.total_tx_count == 40  # committed, pruned or not
    with Ledger.open(tmp_path, SUITE) as archive:  # reopened without pruning: what is gone stays gone
        commit(archive, [21])
        assert archive.oldest_block_height() == 16


def test_pruning_waits_for_every_transaction_of_a_block_to_expire(tmp_path):
    with Ledger.open(tmp_path, SUITE, block_history_blocks=3) as ledger:
        commit(ledger, [])  # genesis
        commit(ledger, [1])
        held = commit(ledger, [2, 12, 3])  # block 2: one transaction may be in blocks up to 12
        while ledger.head_height < 12:
            commit(ledger, [ledger.head_height + 1])
            assert ledger.oldest_block_height() == min(2, ledger.head_height - 2), ledger.head_height  # held back at 2, and all after it
        assert all(ledger.get_transaction(h) is not None for h in held)
        commit(ledger, [13])  # block 13: nothing can take a transaction with block_limit 12 any more
        assert ledger.oldest_block_height() == 2 + PRUNE_HEIGHTS_PER_BLOCK_MAX  # then catching up, a few heights per block
        assert all(ledger.get_transaction(h) is None for h in held)
        while ledger.oldest_block_height() < ledger.head_height - 2:
            commit(ledger, [ledger.head_height + 1])
        assert ledger.head_height == 15 and ledger.oldest_block_height() == 13


def test_a_block_without_a_block_limit_record_is_read_once_and_waited_for(tmp_path):
    # Blocks written before l: records existed: their transactions give the highest block_limit.
    with Ledger.open(tmp_path, SUITE, block_history_blocks=2) as ledger:
        commit(ledger, [])
        commit(ledger, [9, 1])
        ledger._store.write_batch([], [LIMIT_PREFIX + h8(1)])
        while ledger.head_height < 9:
            commit(ledger, [ledger.head_height + 1])
            assert ledger.oldest_block_height() == 1
        assert unpack(ledger.store_get(LIMIT_PREFIX + h8(1)), max_bytes=16) == 9  # computed, and kept for the next blocks
        commit(ledger, [10])
        assert ledger.oldest_block_height() == 5 and ledger.get_block_tx_hashes(1) is None


def test_a_pruned_chain_refuses_a_replay_while_it_could_be_in_a_block_and_then_by_its_block_limit(tmp_path):
    chain = open_chain(tmp_path)
    ledger = chain.ledger
    ledger.block_history_blocks = 5  # as `[storage] block_history_blocks` opens it (at least 128 in node.toml)
    replayed = Transaction("c", "g", os.urandom(16), 30, b"", "", [SOURCE], 1_000_000, USER[1]).signed(SUITE, USER[0])
    proposal = chain.execute_proposal([replayed], timestamp_ms=1, proposer_index=0)
    chain.commit(proposal, certify(proposal.header))
    grow(chain, 25)  # each block's transaction may be in blocks up to 10 after it
    assert ledger.head_height == 26 and ledger.oldest_block_height() == 1  # block 1 is held back
    assert chain.is_committed(replayed.hash(SUITE))
    with pytest.raises(InvalidBlock, match="is already committed"):
        chain.execute_proposal([replayed], timestamp_ms=27, proposer_index=0)
    grow(chain, 4)  # block 30 is the last that could hold it
    assert ledger.oldest_block_height() == 1 and chain.is_committed(replayed.hash(SUITE))
    grow(chain, 1)
    assert ledger.oldest_block_height() > 1 and not chain.is_committed(replayed.hash(SUITE))
    with pytest.raises(InvalidBlock, match=r"has block_limit 30, outside \[32, "):  # gone, and still refused
        chain.execute_proposal([replayed], timestamp_ms=32, proposer_index=0)
    grow(chain, 10)
    assert ledger.oldest_block_height() == ledger.head_height - 9  # each block held back by its own transaction's 10 blocks
    ledger.close()


def test_a_node_started_from_a_snapshot_keeps_bodies_from_after_its_block(tmp_path):
    with Ledger.open(tmp_path, SUITE, block_history_blocks=2) as ledger:
        commit(ledger, [])
        genesis = ledger.get_header(0)
        header = BlockHeader(parent_hash=b"\1" * 32, height=40, timestamp_ms=5, proposer_index=0, sealer_set_hash=genesis.sealer_set_hash,
                             tx_root=genesis.tx_root, receipt_root=genesis.receipt_root, state_root=EMPTY_ROOT, gas_used=0, tx_count=0)
        ledger.begin_snapshot(header, certify(header), 77)
        ledger.finish_snapshot()
        assert (ledger.head_height, ledger.oldest_block_height()) == (40, 41)  # none of its own
        commit(ledger, [41])
        assert ledger.oldest_block_height() == 41
        ledger._store.write_batch([], [BLOCKS_PRUNED_KEY])  # as a build that set no mark left it
        assert ledger.oldest_block_height() == 41
        for _ in range(3):
            commit(ledger, [ledger.head_height + 1])
        assert ledger.oldest_block_height() == 43 and ledger.get_block(0) is not None  # block 0's empty body is below the mark


def test_the_mark_is_written_only_when_it_moves_and_an_archive_writes_none(tmp_path):
    with Ledger.open(tmp_path / "archive", SUITE) as archive:
        commit(archive, [])
        for _ in range(3):
            commit(archive, [archive.head_height + 1])
        assert archive.store_get(BLOCKS_PRUNED_KEY) is None and archive.oldest_block_height() == 0
        assert unpack(archive.store_get(LIMIT_PREFIX + h8(3)), max_bytes=16) == 3
        assert unpack(archive.store_get(LIMIT_PREFIX + h8(0)), max_bytes=16) == 0  # no transactions
    with Ledger.open(tmp_path / "empty", SUITE, block_history_blocks=1) as empty:
        assert empty.oldest_block_height() == 0
        commit(empty, [])
        assert empty.oldest_block_height() == 0 and empty.store_get(BLOCKS_PRUNED_KEY) is None
        commit(empty, [])
        assert empty.oldest_block_height() == 1 and empty.store_get(BLOCKS_PRUNED_KEY) == pack(1)

"""`verify` of a ledger that started from a snapshot, built by the real snapshot sync from a
real serving ledger (only the transport is a function call): block 0, nothing up to the
blocks fetched before the snapshot for replay protection, those without receipts, then
whole blocks. What is absent by design passes and is reported; damage is still named."""

from __future__ import annotations

import dataclasses

import pytest

from chainnode.blocksync.recent import fetch_recent_bodies
from chainnode.blocksync.snapshot import SnapshotServer, SnapshotSyncer
from chainnode.blocksync.syncer import serve_request
from chainnode.execution.chain import Chain
from chainnode.protocol.codec import pack, unpack
from chainnode.store.ledger import Ledger
from chainnode.store.verify import Report, verify
from chainnode.system.genesis import new_chain_config, parse_genesis
from chainnode.system.state import read_sealer_set
from tests.chain_fixtures import GENESIS_DOC, grow, open_chain

# block_limit_window 10 (its minimum): a snapshot at block 20 fetches blocks 12..20.
GENESIS_WINDOW_10 = parse_genesis({**GENESIS_DOC, "config": new_chain_config({"block_limit_window": 10})})
SNAPSHOT_AT = 20
FETCHED_FROM = SNAPSHOT_AT + 2 - 10


async def joined_by_snapshot(server: Chain, path, *, recent_from: int | None = FETCHED_FROM) -> Chain:
    """A node that installed the state at `server`'s head, then fetched the blocks before it
    down to `recent_from`: all that replays need when it is FETCHED_FROM (the flag cleared),
    only the top ones when higher (killed halfway), none when None."""
    joiner = open_chain(path, GENESIS_WINDOW_10)
    snapshots = SnapshotServer(server.ledger)

    async def fetch_nodes(peer: int, request: bytes) -> bytes:
        return snapshots.serve(request)

    await SnapshotSyncer(joiner.ledger, fetch_nodes, nodes_per_request=64).run(lambda: [0])
    if recent_from == FETCHED_FROM:
        async def fetch_blocks(peer: int, request: bytes) -> bytes:
            return serve_request(server.ledger, request, blocks_max=32)
        assert await fetch_recent_bodies(joiner.ledger, fetch_blocks, lambda: [0]) == SNAPSHOT_AT - FETCHED_FROM + 1
    elif recent_from is not None:
        joiner.ledger.put_recent_blocks([(server.ledger.get_block(h), server.ledger.get_certificate(h))
                                         for h in range(recent_from, joiner.height + 1)])
    return joiner


def follow(joiner: Chain, server: Chain, blocks: int) -> None:
    """The server commits `blocks` more, which the joiner applies as block sync does."""
    grow(server, blocks)
    for height in range(joiner.height + 1, server.height + 1):
        assert joiner.apply_certified(server.ledger.get_block(height), server.ledger.get_certificate(height))


def checked(ledger: Ledger) -> Report:
    return verify(ledger, lambda set_hash: read_sealer_set(ledger.state, set_hash))


@pytest.fixture
def server(tmp_path):
    chain = open_chain(tmp_path / "server", GENESIS_WINDOW_10)
    grow(chain, SNAPSHOT_AT)
    yield chain
    chain.ledger.close()


@pytest.fixture
async def joiner(tmp_path, server):
    chain = await joined_by_snapshot(server, tmp_path / "joiner")
    follow(chain, server, 3)  # blocks 21..23, executed here: with receipts
    yield chain
    chain.ledger.close()


async def test_a_snapshot_node_verifies_and_says_what_it_never_had(joiner):
    report = checked(joiner.ledger)
    assert report.problems == [] and report.ok
    assert (report.from_snapshot, report.headers_from, report.bodies_from, report.blocks) == (True, FETCHED_FROM, FETCHED_FROM, 1 + 23 - 11)
    assert (report.without_receipts_from, report.without_receipts_to, report.without_receipts_transactions) == (FETCHED_FROM, SNAPSHOT_AT, 9)
    assert (report.transactions, report.absent_transactions, report.recent_bodies_pending) == (12, 11, False)  # (one per block)


async def test_before_and_during_the_fetch_of_the_blocks_before_the_snapshot(tmp_path, server):
    installed = await joined_by_snapshot(server, tmp_path / "installed", recent_from=None)
    try:
        report = checked(installed.ledger)  # block 0 and the snapshot's block, no body of it
        assert report.problems == []
        assert (report.headers_from, report.bodies_from, report.blocks, report.recent_bodies_pending) == (SNAPSHOT_AT, SNAPSHOT_AT + 1, 2, True)
        assert (report.pruned_transactions, report.absent_transactions) == (1, SNAPSHOT_AT - 1)
        assert report.without_receipts_from > report.without_receipts_to  # none
    finally:
        installed.ledger.close()
    halfway = await joined_by_snapshot(server, tmp_path / "halfway", recent_from=17)
    try:
        follow(halfway, server, 1)
        report = checked(halfway.ledger)
        assert report.problems == []
        assert (report.headers_from, report.without_receipts_from, report.without_receipts_to, report.recent_bodies_pending) == (17, 17, 20, True)
    finally:
        halfway.ledger.close()


async def test_a_snapshot_node_that_prunes_bodies_and_past_states_still_verifies(tmp_path, server):
    chain = await joined_by_snapshot(server, tmp_path / "joiner")
    try:
        # Bodies 10 blocks behind the head (grow's block_limits), state trees 2 behind: past the snapshot's.
        chain.ledger.block_history_blocks, chain.ledger.state_history_blocks = 2, 2
        follow(chain, server, 6)
        assert chain.ledger.oldest_block_height() > FETCHED_FROM and unpack(chain.ledger.store_get(b"m:state_pruned"), max_bytes=16) > SNAPSHOT_AT
        report = checked(chain.ledger)
        assert report.problems == []
        assert report.headers_from == FETCHED_FROM and report.bodies_from == chain.ledger.oldest_block_height()
        assert (report.without_receipts_from, report.without_receipts_to) == (report.bodies_from, SNAPSHOT_AT)
    finally:
        chain.ledger.close()


def put(ledger: Ledger, key: bytes, value: bytes | None) -> None:
    ledger._store.write_batch([] if value is None else [(key, value)], [key] if value is None else [])


def h(height: int) -> bytes:
    return height.to_bytes(8, "big")


def other_tx_list(ledger: Ledger, height: int) -> bytes:
    hashes = ledger.get_block_tx_hashes(height)
    return pack([hashes[0][:-1] + bytes([hashes[0][-1] ^ 1])])


def rehashed(ledger: Ledger, height: int) -> bytes:
    header = ledger.get_header(height)
    return dataclasses.replace(header, extra=b"x").encode()  # another header at that height: another hash


@pytest.mark.parametrize("damage, says", [
    (lambda l: put(l, b"h:" + h(15), rehashed(l, 15)), "block 16: its parent hash is not block 15's hash"),
    (lambda l: put(l, b"h:" + h(15), None), "block 15: its header is missing (h:15)"),
    (lambda l: put(l, b"h:" + h(FETCHED_FROM), None),
     f"block {FETCHED_FROM}: its commit certificate (c:{FETCHED_FROM}) is here, but not its header"),
    (lambda l: put(l, b"b:" + h(14), other_tx_list(l, 14)), "block 14: its transactions do not hash to its tx root"),
    (lambda l: put(l, b"t:" + l.get_block_tx_hashes(14)[0], l._store.get(b"t:" + l.get_block_tx_hashes(15)[0])),
     "block 14: transaction 0 ("),
    (lambda l: put(l, b"r:" + l.get_block_tx_hashes(SNAPSHOT_AT + 1)[0], None),
     f"block {SNAPSHOT_AT + 1}: the receipt of transaction 0"),
    (lambda l: put(l, b"c:" + h(5), l._store.get(b"c:" + h(15))), "block 5: its commit certificate (c:5) is here, but not its header"),
    (lambda l: put(l, b"m:txcount", pack(3)), "the transaction count (m:txcount) says 3, the blocks hold 12"),
])
async def test_damage_to_a_snapshot_node_is_named(joiner, damage, says):
    damage(joiner.ledger)
    problems = checked(joiner.ledger).problems
    assert any(says in p for p in problems), problems


async def test_a_receipt_lost_after_a_block_with_receipts_is_named_even_below_the_state_mark(joiner):
    # As if the state were pruned up to block 22: blocks without receipts may reach it, but
    # only as the lowest bodies. Block 22's receipt lost after block 21's was seen is damage.
    put(joiner.ledger, b"m:state_pruned", pack(22))
    put(joiner.ledger, b"r:" + joiner.ledger.get_block_tx_hashes(22)[0], None)
    problems = checked(joiner.ledger).problems
    assert [p.split(" (")[0] for p in problems] == ["block 22: the receipt of transaction 0", "2 r: index records, where the blocks make 3"]


def test_a_node_that_never_took_a_snapshot_needs_every_header_and_receipt(tmp_path):
    chain = open_chain(tmp_path / "chain", GENESIS_WINDOW_10)
    try:
        grow(chain, 4)
        put(chain.ledger, b"r:" + chain.ledger.get_block_tx_hashes(1)[0], None)
        put(chain.ledger, b"h:" + h(1), None)
        report = checked(chain.ledger)
        assert not report.from_snapshot
        assert [p.split(" (")[0] for p in report.problems] == ["block 1: its header is missing", "3 r: index records, where the blocks make 4"]
    finally:
        chain.ledger.close()

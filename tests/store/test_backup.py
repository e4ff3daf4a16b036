"""Backups and block archives on a real LevelDB: a backup restores to the same chain at a
whole block (also one taken while blocks commit), a damaged file or a directory that
holds a chain is refused with what to do and leaves the target as it was, and an archive
reads back the blocks it was written from."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from chainnode.store.backup import (
    BackupError,
    BlockArchive,
    check_archive,
    export_blocks,
    open_offline,
    read_backup_header,
    restore,
    write_backup,
)
from chainnode.store.ledger import Ledger
from chainnode.store.leveldb import Store
from chainnode.store.verify import verify
from chainnode.system.state import read_sealer_set
from tests.chain_fixtures import GENESIS, SUITE, grow, open_chain

BLOCKS = 6


@pytest.fixture
def chain_dir(tmp_path) -> Path:
    data = tmp_path / "chain"
    chain = open_chain(data)
    grow(chain, BLOCKS)
    chain.ledger.close()
    return data


def backup_of(data_dir: Path, out: Path) -> dict:
    with open_offline(data_dir) as store:
        snapshot = store.snapshot()
        try:
            return write_backup(snapshot, out, chain_id="c", suite=SUITE)
        finally:
            snapshot.close()


def records(data_dir: Path) -> list[tuple[bytes, bytes]]:
    with open_offline(data_dir) as store:
        snapshot = store.snapshot()
        try:
            with snapshot.iterator() as it:
                return list(it)
        finally:
            snapshot.close()


def problems(data_dir: Path) -> list[str]:
    with Ledger(open_offline(data_dir), SUITE) as ledger:
        return verify(ledger, lambda h: read_sealer_set(ledger.state, h)).problems


def test_a_backup_restores_to_the_same_chain_which_goes_on(tmp_path, chain_dir):
    written = backup_of(chain_dir, tmp_path / "chain.backup")
    assert written["height"] == BLOCKS and written["keys"] == len(records(chain_dir))
    header = read_backup_header(tmp_path / "chain.backup")
    assert (header.chain_id, header.suite, header.genesis_hash, header.height) == ("c", "sm", GENESIS.hash(), BLOCKS)

    restored = restore(tmp_path / "chain.backup", tmp_path / "restored", genesis_hash=GENESIS.hash())
    assert restored["height"] == BLOCKS and restored["keys"] == written["keys"]
    assert records(tmp_path / "restored") == records(chain_dir)  # every key and value, the version history too
    assert not (tmp_path / "restored" / "restore.tmp").exists()
    assert problems(tmp_path / "restored") == []
    chain = open_chain(tmp_path / "restored")
    try:
        assert chain.ledger.head_hash.hex() == written["headHash"]
        grow(chain, 2)
        assert chain.height == BLOCKS + 2
    finally:
        chain.ledger.close()


def test_values_larger_than_a_digest_chunk_round_trip(tmp_path, chain_dir):
    big = [(b"q:test/%d" % i, os.urandom((1 << 20) + 7 * i)) for i in range(3)]  # the digest chains 1 MiB chunks
    with Store(chain_dir) as store:
        store.write_batch(big)
    assert backup_of(chain_dir, tmp_path / "big.backup")["bytes"] > 3 << 20
    restore(tmp_path / "big.backup", tmp_path / "restored")
    assert records(tmp_path / "restored") == records(chain_dir)


def test_a_snapshot_taken_while_blocks_commit_restores_to_a_whole_block(tmp_path):
    chain = open_chain(tmp_path / "live")
    grow(chain, 2)
    committing = threading.Thread(target=grow, args=(chain, 8))
    committing.start()
    try:
        snapshot = chain.ledger.snapshot()  # while another thread commits blocks
        try:
            written = write_backup(snapshot, tmp_path / "live.backup", chain_id="c", suite=SUITE)
        finally:
            snapshot.close()
    finally:
        committing.join()
    assert chain.height == 10
    chain.ledger.close()
    restore(tmp_path / "live.backup", tmp_path / "restored")
    with open_offline(tmp_path / "restored") as store:
        ledger = Ledger(store, SUITE)
        assert 2 <= ledger.head_height == written["height"] <= 10
    assert problems(tmp_path / "restored") == []


def damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "digest cut":
        data = data[:-5]
    elif how == "flipped":
        data[len(data) // 2] ^= 0x01
    elif how == "appended":
        data += b"\x00"
    elif how == "magic":
        data[:9] = b"something"
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how, says", [
    ("truncated", "it is truncated; copy it again"),
    ("digest cut", "truncated; copy it again"),
    ("flipped", "the file is damaged"),
    ("appended", "bytes after its digest"),
    ("magic", "is not a chainnode backup"),
])
def test_restore_refuses_a_damaged_file_and_writes_nothing(tmp_path, chain_dir, how, says):
    backup_of(chain_dir, tmp_path / "chain.backup")
    damage(tmp_path / "chain.backup", how)
    target = tmp_path / "restored"
    with pytest.raises(BackupError, match=says):
        restore(tmp_path / "chain.backup", target)
    assert not (target / "chain.db").exists() and not (target / "restore.tmp").exists()


def test_restore_refuses_a_directory_that_holds_a_chain_or_votes(tmp_path, chain_dir):
    backup = tmp_path / "chain.backup"
    backup_of(chain_dir, backup)
    with pytest.raises(BackupError, match=r"already holds a chain at block 6 \(chain.db\); restore into an empty directory, or stop"):
        restore(backup, chain_dir)
    votes = tmp_path / "votes"
    votes.mkdir()
    (votes / "consensus.state").write_bytes(b"x")
    with pytest.raises(BackupError, match=r"holds a node's data \(consensus.state\).*move consensus.state away"):
        restore(backup, votes)
    with pytest.raises(BackupError, match="a backup of another chain"):
        restore(backup, tmp_path / "other", genesis_hash=bytes(32))
    assert not (tmp_path / "other" / "chain.db").exists()
    # What `chainnode init` leaves, block 0 of the same chain, is replaced.
    fresh = tmp_path / "fresh"
    open_chain(fresh).ledger.close()
    assert restore(backup, fresh, genesis_hash=GENESIS.hash())["height"] == BLOCKS
    assert records(fresh) == records(chain_dir)


def test_a_block_archive_holds_the_blocks_it_was_written_from(tmp_path, chain_dir):
    with Ledger(open_offline(chain_dir), SUITE) as ledger:
        written = export_blocks(ledger, tmp_path / "blocks.archive", chain_id="c", from_height=2, to_height=5)
        expected = [(ledger.get_block(h), ledger.get_certificate(h)) for h in range(2, 6)]
        with pytest.raises(BackupError, match="the head is block 6; choose 1 <= --from <= --to <= 6"):
            export_blocks(ledger, tmp_path / "more.archive", chain_id="c", from_height=5, to_height=9)
        with pytest.raises(BackupError, match="exists; choose another --out"):
            export_blocks(ledger, tmp_path / "blocks.archive", chain_id="c", from_height=1)
    assert (written["from"], written["to"], written["blocks"]) == (2, 5, 4)
    header = check_archive(tmp_path / "blocks.archive")
    assert (header.genesis_hash, header.from_height, header.to_height) == (GENESIS.hash(), 2, 5)
    with BlockArchive(tmp_path / "blocks.archive") as archive:
        assert [(b, c) for b, c, _ in archive.blocks()] == expected
    with pytest.raises(BackupError, match="is a block archive, not a backup: use it with `chainnode db import-blocks`"):
        restore(tmp_path / "blocks.archive", tmp_path / "restored")
    damage(tmp_path / "blocks.archive", "flipped")
    with pytest.raises(BackupError, match="damaged"):
        check_archive(tmp_path / "blocks.archive")


def test_an_export_that_pruning_overtakes_names_the_oldest_block_kept(tmp_path):
    chain = open_chain(tmp_path / "chain")
    chain.ledger.block_history_blocks = 2  # grow's bodies go 10 blocks behind the head
    grow(chain, 12)
    assert chain.ledger.oldest_block_height() == 3

    def commit_more(blocks: int, written: int) -> None:  # a running node commits, and prunes, faster than the export reads
        grow(chain, 2)

    with pytest.raises(BackupError, match="blocks 4..4 are not all kept here: this node keeps block bodies from block 5 on"):
        export_blocks(chain.ledger, tmp_path / "blocks.archive", chain_id="c", from_height=3, tick=commit_more)
    assert not (tmp_path / "blocks.archive").exists() and not (tmp_path / "blocks.archive.tmp").exists()
    chain.ledger.close()

"""The ledger on real LevelDB: commits, reads, proofs, and refusing bad data directories."""

import os
import subprocess
import sys
import textwrap

import plyvel
import pytest

from chainnode.crypto import get_suite
from chainnode.protocol.merkle import verify_proof
from chainnode.store.ledger import Ledger
from chainnode.store.leveldb import DataDirInUse, StorageError
from tests.helpers import next_block, payment_tx

SUITE = get_suite("sm")


@pytest.fixture(scope="module")
def sealers():
    return [SUITE.generate_keypair() for _ in range(4)]


@pytest.fixture(scope="module")
def user():
    return SUITE.generate_keypair()


def commit(ledger, sealers, txs=(), writes=None):
    ledger.commit_block(*next_block(ledger, list(txs), writes or {}, sealers))


def test_commit_and_read_back(tmp_path, sealers, user):
    with Ledger.open(tmp_path, SUITE) as ledger:
        assert ledger.head_height == -1
        commit(ledger, sealers, writes={b"genesis/k": b"v"})
        txs = [payment_tx(SUITE, *user) for _ in range(5)]
        commit(ledger, sealers, txs, {b"a": b"1", b"b": b"2", b"genesis/k": None})
        assert ledger.head_height == 1 and ledger.total_tx_count == 5
        block = ledger.get_block(1)
        assert block.transactions == txs
        assert ledger.get_height_by_hash(ledger.head_hash) == 1
        tx, loc = ledger.get_transaction(txs[3].hash(SUITE))
        assert tx == txs[3] and (loc.height, loc.index) == (1, 3)
        assert ledger.get_receipt(txs[3].hash(SUITE)).tx_hash == txs[3].hash(SUITE)
        ledger.get_certificate(1).verify(SUITE, [pub for _, pub in sealers])
        assert ledger.get_certificate(0) is None
        assert ledger.state.get(b"a") == b"1" and ledger.state.get(b"genesis/k") is None
        assert ledger.state.items() == [(b"a", b"1"), (b"b", b"2")]
        genesis = ledger.genesis_hash
    with Ledger.open(tmp_path, SUITE) as ledger:
        assert (ledger.head_height, ledger.total_tx_count, ledger.genesis_hash) == (1, 5, genesis)
        assert ledger.state.get(b"b") == b"2"


def test_proofs_verify_against_the_header(tmp_path, sealers, user):
    with Ledger.open(tmp_path, SUITE) as ledger:
        commit(ledger, sealers)
        txs = [payment_tx(SUITE, *user) for _ in range(7)]
        commit(ledger, sealers, txs)
        for tx in txs:
            h = tx.hash(SUITE)
            proof, height = ledger.transaction_proof(h)
            header = ledger.get_header(height)
            assert verify_proof(header.tx_root, h, proof)
            rproof, _ = ledger.receipt_proof(h)
            assert verify_proof(header.receipt_root, ledger.get_receipt(h).encode(), rproof)
        assert ledger.transaction_proof(b"\x00" * 32) is None


def test_blocks_that_do_not_fit_are_refused_and_change_nothing(tmp_path, sealers, user):
    with Ledger.open(tmp_path, SUITE) as ledger:
        commit(ledger, sealers)
        good = next_block(ledger, [payment_tx(SUITE, *user)], {b"x": b"1"}, sealers)
        block, receipts, cert, writes, _ = good
        with pytest.raises(ValueError, match="state root"):
            ledger.commit_block(block, receipts, cert, {b"x": b"2"})
        with pytest.raises(ValueError, match="receipts"):
            ledger.commit_block(block, [], cert, writes)
        with pytest.raises(ValueError, match="certificate"):
            ledger.commit_block(block, receipts, None, writes)
        with pytest.raises(ValueError, match="receipt root"):
            ledger.commit_block(block, [receipts[0].__class__(receipts[0].tx_hash, 1, 0)], cert, writes)
        assert ledger.head_height == 0 and ledger.state.get(b"x") is None
        ledger.commit_block(*good)
        with pytest.raises(ValueError, match="does not extend"):
            ledger.commit_block(*good)


def test_a_second_process_is_told_the_directory_is_in_use(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from chainnode.crypto import get_suite
            from chainnode.store.ledger import Ledger
            l = Ledger.open({str(tmp_path)!r}, get_suite("sm"))
            print("open", flush=True)
            sys.stdin.read()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(DataDirInUse, match=rf"in use by another node \(pid {holder.pid}\)"):
            Ledger.open(tmp_path, SUITE)
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    Ledger.open(tmp_path, SUITE).close()  # free again once that process is gone


def test_foreign_leveldb_is_refused(tmp_path):
    db = plyvel.DB(str(tmp_path / "chain.db"), create_if_missing=True)
    db.put(b"someone", b"else")
    db.close()
    with pytest.raises(StorageError, match="did not create"):
        Ledger.open(tmp_path, SUITE)


def test_non_leveldb_directory_is_refused(tmp_path):
    (tmp_path / "chain.db").mkdir()
    (tmp_path / "chain.db" / "photo.jpg").write_bytes(b"\xff\xd8")
    with pytest.raises(StorageError, match="not a LevelDB database"):
        Ledger.open(tmp_path, SUITE)


def test_data_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(StorageError, match="not a directory"):
        Ledger.open(tmp_path / "file", SUITE)


def test_missing_dir_without_create(tmp_path):
    with pytest.raises(StorageError, match="chainnode init"):
        Ledger.open(tmp_path / "nope", SUITE, create=False)


def test_other_format_version_is_refused(tmp_path):
    Ledger.open(tmp_path, SUITE).close()
    db = plyvel.DB(str(tmp_path / "chain.db"))
    db.put(b"m:format", b"chainnode-ledger/99")
    db.close()
    with pytest.raises(StorageError, match="ledger/99"):
        Ledger.open(tmp_path, SUITE)


def test_corrupt_head_is_refused(tmp_path, sealers):
    with Ledger.open(tmp_path, SUITE) as ledger:
        commit(ledger, sealers)
        commit(ledger, sealers)
    db = plyvel.DB(str(tmp_path / "chain.db"))
    db.delete(b"h:" + (1).to_bytes(8, "big"))
    db.close()
    with pytest.raises(StorageError, match="head block 1"):
        Ledger.open(tmp_path, SUITE)


def test_garbage_head_is_refused(tmp_path, sealers):
    with Ledger.open(tmp_path, SUITE) as ledger:
        commit(ledger, sealers)
    db = plyvel.DB(str(tmp_path / "chain.db"))
    db.put(b"m:head", b"\xc1garbage")
    db.close()
    with pytest.raises(StorageError, match="corrupt"):
        Ledger.open(tmp_path, SUITE)


def test_wrong_suite_is_refused(tmp_path, sealers):
    with Ledger.open(tmp_path, SUITE) as ledger:
        commit(ledger, sealers)
    with pytest.raises(StorageError, match="crypto suite"):
        Ledger.open(tmp_path, get_suite("ed25519"))


def test_corrupt_leveldb_files_are_refused(tmp_path, sealers):
    with Ledger.open(tmp_path, SUITE) as ledger:
        commit(ledger, sealers)
    for name in os.listdir(tmp_path / "chain.db"):
        if name.startswith("MANIFEST"):
            (tmp_path / "chain.db" / name).write_bytes(b"\x00garbage" * 10)
    with pytest.raises(StorageError, match="corrupt|cannot open"):
        Ledger.open(tmp_path, SUITE)

"""The pool's journal: what sendTransaction acknowledged is on disk first (one fsync shared by
concurrent submissions), survives a torn last record, stays bounded, and comes back at start
through the pool's normal checks."""

import os
import threading

import pytest
import trio
import trio.testing

from chainnode.txpool.journal import COMPACT_BYTES_MIN, MAGIC, JournalFull, TxJournal, framed_size
from chainnode.txpool.pool import ADDED, COMMITTED, PENDING, PoolLimits, Rejected, TxPool
from tests.txpool.test_txpool import SUITE, tx


class Disk:
    """An fsync that counts, and can be held (to see that nothing is acknowledged before it
    returns) or made to fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.entered = False
        self.release = threading.Event()
        self.release.set()
        self.fail = False

    def __call__(self, fd: int) -> None:
        self.entered = True
        self.release.wait()
        if self.fail:
            raise OSError(28, "No space left on device")
        os.fsync(fd)
        self.calls += 1


def journal_at(path, *, disk=None, bytes_max=64 << 20):
    return TxJournal(path, bytes_max=bytes_max, fsync=disk or Disk())


def pool_with(journal, head=10, committed=()):
    return TxPool(SUITE, "chain0", "group0", head_height=lambda: head, is_committed=lambda h: h in committed, limits=PoolLimits(), journal=journal)


def h(i: int) -> bytes:
    return i.to_bytes(32, "big", signed=True)


async def test_acknowledged_only_after_fsync_and_readable_after_reopen(tmp_path):
    disk = Disk()
    journal = journal_at(tmp_path / "j", disk=disk)
    pool = pool_with(journal)
    t = tx()
    acked = []
    disk.release.clear()
    async with trio.open_nursery() as n:
        n.start_soon(_ack, pool, t.encode(), acked)
        while not disk.entered:  # the signature check is done; the write is at the disk
            await trio.sleep(0.001)
        await trio.testing.wait_all_tasks_blocked()
        assert acked == [], "answered before the journal reached the disk"
        disk.release.set()
    assert acked[-1] == (t.hash(SUITE), ADDED)
    assert disk.calls >= 1
    assert journal_at(tmp_path / "j").recovered == [t.encode()]


async def _ack(pool, raw, acked):
    acked.append(await pool.submit_durably(raw))


async def test_concurrent_submissions_share_one_fsync(tmp_path):
    disk = Disk()
    journal = journal_at(tmp_path / "j", disk=disk)
    raws = [os.urandom(200) for _ in range(20)]
    disk.release.clear()  # the first flush is held on the disk while the others arrive
    async with trio.open_nursery() as n:
        for i, raw in enumerate(raws):
            n.start_soon(journal.append, h(i), raw)
        await trio.testing.wait_all_tasks_blocked()
        disk.release.set()
    # one flush for the first arrival, one for the 19 that queued behind it
    assert journal.syncs == 2
    assert sorted(journal_at(tmp_path / "j").recovered) == sorted(raws)


async def test_a_torn_or_corrupt_last_record_is_cut_off_never_fatal(tmp_path):
    path = tmp_path / "j"
    journal = journal_at(path)
    raws = [os.urandom(300) for _ in range(3)]
    for i, raw in enumerate(raws):
        await journal.append(h(i), raw)
    journal.close()
    size = path.stat().st_size
    with open(path, "r+b") as f:  # a crash halfway through writing the third record
        f.truncate(size - 100)
    journal = journal_at(path)
    assert journal.recovered == raws[:2]
    assert path.stat().st_size == len(MAGIC) + framed_size(raws[0]) + framed_size(raws[1])
    # new records go after the good ones, not after the torn bytes
    await journal.append(h(9), b"after the crash")
    journal.close()
    assert journal_at(path).recovered == raws[:2] + [b"after the crash"]
    # a flipped byte in the last record: its checksum fails, it is dropped
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert journal_at(path).recovered == raws[:2]
    # garbage length field
    path.write_bytes(path.read_bytes() + b"\xff\xff\xff\xff\x00\x00")
    assert journal_at(path).recovered == raws[:2]


async def test_a_file_that_is_not_a_journal_is_moved_aside(tmp_path):
    path = tmp_path / "j"
    path.write_bytes(b"something else entirely")
    journal = journal_at(path)
    assert journal.recovered == []
    assert (tmp_path / "j.unreadable").read_bytes() == b"something else entirely"
    await journal.append(h(1), b"x")
    assert journal_at(path).recovered == [b"x"]


async def test_settled_records_are_compacted_away(tmp_path):
    path = tmp_path / "j"
    journal = journal_at(path)
    raws = [os.urandom(100_000) for _ in range(12)]  # past COMPACT_BYTES_MIN
    for i, raw in enumerate(raws):
        await journal.append(h(i), raw)
    assert path.stat().st_size > COMPACT_BYTES_MIN and journal.compactions == 0
    journal.forget([h(i) for i in range(10)])  # committed
    await journal.append(h(99), b"new")  # the dead outweigh the live: rewritten
    assert journal.compactions == 1
    assert path.stat().st_size == journal.file_bytes == len(MAGIC) + framed_size(raws[10]) + framed_size(raws[11]) + framed_size(b"new")
    journal.close()
    assert journal_at(path).recovered == raws[10:] + [b"new"]


async def test_the_file_stays_within_its_limit(tmp_path):
    path = tmp_path / "j"
    bytes_max = 1 << 20
    journal = journal_at(path, bytes_max=bytes_max)
    for i in range(200):  # 200 records of 20 KB pass through, 20 live at a time
        await journal.append(h(i), os.urandom(20_000))
        journal.forget([h(i - 20)])
        assert path.stat().st_size <= bytes_max
    assert journal.compactions > 0
    # live records alone over the limit: refused, and nothing of it is kept
    with pytest.raises(JournalFull):
        for i in range(1000, 1100):
            await journal.append(h(i), os.urandom(20_000))
    assert path.stat().st_size <= bytes_max and journal.live_bytes <= bytes_max


async def test_a_full_journal_is_pool_full_for_the_client(tmp_path):
    pool = pool_with(journal_at(tmp_path / "j", bytes_max=1 << 20))
    big = [tx(args=["x" * 100_000], key=SUITE.generate_keypair()) for _ in range(11)]
    for t in big[:10]:
        await pool.submit_durably(t.encode())
    with pytest.raises(Rejected) as info:
        await pool.submit_durably(big[10].encode())
    assert info.value.code == "pool_full"


async def test_a_failed_write_is_not_acknowledged_and_the_next_rewrites(tmp_path):
    disk = Disk()
    path = tmp_path / "j"
    pool = pool_with(journal_at(path, disk=disk))
    kept = tx()
    await pool.submit_durably(kept.encode())
    disk.fail = True
    lost = tx()
    with pytest.raises(Rejected) as info:
        await pool.submit_durably(lost.encode())
    assert info.value.code == "journal_failed" and "send it again" in info.value.message
    assert lost.hash(SUITE) not in pool.journal
    disk.fail = False
    # resending the same bytes (it is pending here) now journals it; the file is rewritten
    # whole, in case the failed write left part of a record behind
    assert await pool.submit_durably(lost.encode()) == (lost.hash(SUITE), PENDING)
    assert pool.journal.compactions == 1
    assert journal_at(path).recovered == [kept.encode(), lost.encode()]


async def test_resubmission_is_answered_with_the_hash_and_what_it_found(tmp_path):
    committed = set()
    pool = pool_with(journal_at(tmp_path / "j"), committed=committed)
    t = tx()
    assert await pool.submit_durably(t.encode()) == (t.hash(SUITE), ADDED)
    assert await pool.submit_durably(t.encode()) == (t.hash(SUITE), PENDING)
    # the same body with another signature is the same transaction (the hash excludes it)
    assert await pool.submit_durably(t.signed(SUITE, SUITE.generate_keypair()[0]).encode()) == (t.hash(SUITE), PENDING)
    committed.add(t.hash(SUITE))
    pool.remove([t.hash(SUITE)])
    assert await pool.submit_durably(t.encode()) == (t.hash(SUITE), COMMITTED)
    # committed long ago (its block_limit passed): still "committed", not "expired"
    old = tx(block_limit=5)
    committed.add(old.hash(SUITE))
    assert await pool.submit_durably(old.encode()) == (old.hash(SUITE), COMMITTED)
    # a transaction that arrived by gossip (not journalled) is journalled once a client sends it
    gossiped = tx()
    await pool.submit(gossiped.encode())
    assert gossiped.hash(SUITE) not in pool.journal
    assert await pool.submit_durably(gossiped.encode()) == (gossiped.hash(SUITE), PENDING)
    assert gossiped.hash(SUITE) in pool.journal


async def test_restart_readmits_only_what_is_still_valid(tmp_path):
    path = tmp_path / "j"
    pool = pool_with(journal_at(path))
    committed_tx, expiring, valid = tx(block_limit=100), tx(block_limit=12), tx(block_limit=100)
    for t in (committed_tx, expiring, valid):
        await pool.submit_durably(t.encode())
    # kill -9: nothing is closed. Meanwhile the chain went on to height 20 and committed one.
    pool = pool_with(journal_at(path), head=20, committed={committed_tx.hash(SUITE)})
    readmitted = await pool.recover()
    assert readmitted == [valid.encode()]
    assert len(pool) == 1 and pool.get(valid.hash(SUITE)) is not None
    # the journal now holds only the survivor, and it is still journalled (a second crash)
    assert valid.hash(SUITE) in pool.journal
    assert journal_at(path).recovered == [valid.encode()]
    # settling it through the pool settles it in the journal
    pool.remove([valid.hash(SUITE)])
    assert valid.hash(SUITE) not in pool.journal and len(pool.journal) == 0

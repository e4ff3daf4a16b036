"""The transaction pool admits exactly the valid transactions, each refusal with a reason."""

import os

import pytest
import trio

from chainnode.crypto import get_suite
from chainnode.protocol.codec import pack
from chainnode.protocol.types import Transaction
from chainnode.txpool.pool import COMMITS_REMEMBERED, PoolLimits, Rejected, TxPool

SUITE = get_suite("sm")
USER = SUITE.generate_keypair()


def tx(*, chain="chain0", group="group0", block_limit=100, nonce=None, key=USER, method="transfer", args=None):
    priv, pub = key
    return Transaction(chain, group, nonce or os.urandom(16), block_limit, b"\x01" * 20, method, args or [b"\x02" * 20, 5], 100_000, pub).signed(SUITE, priv)


def make_pool(head=10, committed=(), **limits):
    return TxPool(SUITE, "chain0", "group0", head_height=lambda: head, is_committed=lambda h: h in committed, limits=PoolLimits(**limits))


async def test_valid_transaction_is_admitted_and_taken_in_order():
    pool = make_pool()
    txs = [tx() for _ in range(5)]
    hashes = [await pool.submit(t.encode()) for t in txs]
    assert hashes == [t.hash(SUITE) for t in txs]
    assert [p.tx_hash for p in pool.take(3, height=11)] == hashes[:3]
    assert len(pool) == 5 and pool.get(hashes[0]).tx == txs[0]
    assert pool.remove(hashes[:2]) == 2
    assert [p.tx_hash for p in pool.take(10, height=11)] == hashes[2:]


async def reject(pool, raw, code):
    with pytest.raises(Rejected) as info:
        await pool.submit(raw)
    assert info.value.code == code, info.value.message
    return info.value


async def test_each_rejection_has_its_reason():
    pool = make_pool()
    good = tx()
    await reject(pool, b"\x00garbage", "malformed")
    await reject(pool, b"", "malformed")
    await reject(pool, pack([1, "x"]), "malformed")
    await reject(pool, tx(chain="other").encode(), "wrong_chain")
    await reject(pool, tx(group="other").encode(), "wrong_group")
    await reject(pool, tx(block_limit=10).encode(), "block_limit_expired")
    await reject(pool, tx(block_limit=10 + 1001).encode(), "block_limit_too_far")
    bad_sig = Transaction.decode(good.encode())
    forged = Transaction(*[getattr(bad_sig, f) for f in ("chain_id", "group_id", "nonce", "block_limit", "to", "method", "args", "gas_limit", "sender_pub")], signature=SUITE.sign(USER[0], b"other"))
    await reject(pool, forged.encode(), "bad_signature")
    other = SUITE.generate_keypair()
    stolen = Transaction(*[getattr(good, f) for f in ("chain_id", "group_id", "nonce", "block_limit", "to", "method", "args", "gas_limit")], sender_pub=other[1], signature=good.signature)
    await reject(pool, stolen.encode(), "bad_signature")
    ed = get_suite("ed25519").generate_keypair()
    await reject(pool, Transaction("chain0", "group0", b"n", 50, b"", "m", [], 1, ed[1], bytes(64)).encode(), "bad_signature")
    await pool.submit(good.encode())
    await reject(pool, good.encode(), "already_in_pool")
    await reject(pool, tx(nonce=good.nonce, args=[b"\x03" * 20, 6]).encode(), "nonce_reused")
    assert len(pool) == 1
    assert pool.rejected["bad_signature"] == 3


async def test_oversized_transaction():
    pool = make_pool(tx_bytes_max=1000)
    await reject(pool, tx(args=["x" * 2000]).encode(), "too_large")


async def test_replay_of_a_committed_transaction():
    t = tx()
    pool = make_pool(committed={t.hash(SUITE)})
    await reject(pool, t.encode(), "already_committed")
    # re-signing does not change the hash, so it is still a replay
    await reject(pool, t.signed(SUITE, USER[0]).encode(), "already_committed")


async def test_pool_and_sender_limits():
    pool = make_pool(pool_txs_max=10, sender_share_pct=30)
    for _ in range(3):
        await pool.submit(tx().encode())
    await reject(pool, tx().encode(), "sender_quota")
    for _ in range(7):
        await pool.submit(tx(key=SUITE.generate_keypair()).encode())
    await reject(pool, tx(key=SUITE.generate_keypair()).encode(), "pool_full")
    small = make_pool(pool_bytes_max=300)
    await small.submit(tx().encode())
    await reject(small, tx(key=SUITE.generate_keypair()).encode(), "pool_full")


async def test_batch_results_in_order_with_duplicates_in_the_batch():
    pool = make_pool()
    a, b = tx(), tx()
    results = await pool.submit_many([a.encode(), b"junk", b.encode(), a.encode()])
    assert results[0] == a.hash(SUITE) and results[2] == b.hash(SUITE)
    assert isinstance(results[1], Rejected) and results[1].code == "malformed"
    assert isinstance(results[3], Rejected) and results[3].code == "already_in_pool"
    assert len(pool) == 2


async def test_concurrent_submissions_admit_each_transaction_once():
    pool = make_pool()
    t = tx()
    outcomes = []

    async def send():
        try:
            outcomes.append(await pool.submit(t.encode()))
        except Rejected as exc:
            outcomes.append(exc.code)

    async with trio.open_nursery() as n:
        for _ in range(5):
            n.start_soon(send)
    assert outcomes.count(t.hash(SUITE)) == 1 and len(pool) == 1


async def test_expired_transactions_are_dropped_and_not_taken():
    pool = make_pool()
    soon, later = tx(block_limit=12), tx(block_limit=50)
    await pool.submit(soon.encode())
    await pool.submit(later.encode())
    assert [p.tx_hash for p in pool.take(10, height=13)] == [later.hash(SUITE)]
    assert pool.drop_expired(12) == 1 and len(pool) == 1
    # the freed nonce and quota are released
    assert pool.bytes == len(later.encode())


async def test_wait_for_transactions_wakes_on_arrival():
    pool = make_pool()
    woke = []

    async def waiter():
        await pool.wait_for_transactions()
        woke.append(True)

    async with trio.open_nursery() as n:
        n.start_soon(waiter)
        await trio.sleep(0.01)
        assert not woke
        await pool.submit(tx().encode())
    assert woke


async def test_proposals_take_senders_round_robin_so_a_backlog_does_not_push_others_back():
    # First come first served let one sender's backlog of heavy transactions (blocks are cut
    # by gas) hold an ordinary payment back for dozens of blocks.
    pool = make_pool()
    mallory, alice, bob = SUITE.generate_keypair(), SUITE.generate_keypair(), SUITE.generate_keypair()
    backlog = [await pool.submit(tx(key=mallory).encode()) for _ in range(50)]
    payment = await pool.submit(tx(key=alice).encode())
    expired = await pool.submit(tx(key=bob, block_limit=11).encode())
    other = await pool.submit(tx(key=bob).encode())
    taken = [p.tx_hash for p in pool.take(3, height=12)]
    assert taken == [backlog[0], payment, other]  # bob's expired one is skipped, not his next
    assert [p.tx_hash for p in pool.take(6, height=12)][3:] == backlog[1:4]  # then mallory's, in order
    pool.remove([backlog[0], payment])
    assert [p.tx_hash for p in pool.take(2, height=11)] == [expired, backlog[1]]  # bob was not served yet


async def test_a_sender_a_block_just_served_goes_behind_the_others():
    # With blocks cut by gas, round-robin from the same first sender every time let a backlog
    # of 30M-gas transactions fill every block before anyone else's turn.
    pool = make_pool()
    mallory, alice = SUITE.generate_keypair(), SUITE.generate_keypair()
    backlog = [await pool.submit(tx(key=mallory).encode()) for _ in range(5)]
    payment = await pool.submit(tx(key=alice).encode())
    assert [p.tx_hash for p in pool.take(1, height=11)] == [backlog[0]]  # the older sender first ...
    pool.remove([backlog[0]])  # ... committed alone (the block was full)
    assert [p.tx_hash for p in pool.take(1, height=11)] == [payment]  # ... then the one not served yet
    pool.remove([payment])
    assert [p.tx_hash for p in pool.take(2, height=11)] == backlog[1:3]
    pool.drop_expired(head_height=200)  # expiry is no service
    assert len(pool) == 0 and not pool._served


async def test_a_copy_of_a_pending_transaction_is_refused_before_it_is_decoded(monkeypatch):
    # Gossip delivers pending transactions again and again (every peer, and regossip); each
    # copy was decoded in full before the pool saw it knew it: at 1,000,000 accounts most of
    # a node's admission work went to 7 copies per new transaction.
    pool = make_pool()
    first, other = tx(), tx()
    await pool.submit(first.encode())
    decoded = []
    real_decode = Transaction.decode
    monkeypatch.setattr(Transaction, "decode", staticmethod(lambda raw, **kw: decoded.append(raw) or real_decode(raw, **kw)))
    results = await pool.submit_many([bytearray(first.encode()), first.encode(), other.encode()])
    assert [r.code if isinstance(r, Rejected) else r for r in results] == ["already_in_pool", "already_in_pool", other.hash(SUITE)]
    assert results[0].tx_hash == first.hash(SUITE)
    assert decoded == [other.encode()]
    # A committed one's copies (a peer a block behind still gossips it) are refused undecoded for a
    # few blocks, then checked in full again (and refused by the chain's index).
    pool.remove([first.hash(SUITE)])
    await reject(pool, first.encode(), "already_committed")
    assert decoded == [other.encode()]
    for _ in range(COMMITS_REMEMBERED):
        pool.remove([])
    assert pool._raws == {other.encode(): other.hash(SUITE)}
    assert await pool.submit(first.encode()) == first.hash(SUITE)  # this test's chain index knows nothing
    assert decoded[-1] == first.encode()
    # Dropped without a commit (expired): forgotten at once.
    assert pool.remove([first.hash(SUITE), other.hash(SUITE)], committed=False) == 2 and pool._raws == {}

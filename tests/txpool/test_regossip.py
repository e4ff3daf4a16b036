"""Re-gossip of pending transactions: what waited is sent again, at doubling intervals,
bounded per round."""

from dataclasses import dataclass

from chainnode.txpool.regossip import Regossip


@dataclass
class Tx:
    tx_hash: bytes
    raw: bytes
    arrived_s: float


def test_waiting_transactions_are_gossiped_again_at_doubling_intervals():
    old, new = Tx(b"o", b"old-raw", 0.0), Tx(b"n", b"new-raw", 9.5)
    r = Regossip(after_s=2, interval_max_s=8, batch_bytes_max=1000)
    pending = lambda h: True  # noqa: E731
    assert r.pick([old, new], 1.0, pending) == []  # nothing has waited long enough
    assert r.pick([old, new], 2.0, pending) == [b"old-raw"]  # the new one has not waited enough
    sent_at = [t for t in range(3, 40) if r.pick([old], float(t), pending)]
    assert sent_at == [4, 8, 16, 24, 32]  # at intervals 2, 4, 8 (the cap), 8, 8
    assert r.pick([old, new], 40.0, pending) == [b"old-raw", b"new-raw"]
    assert r.sent_txs == 8


def test_committed_transactions_are_forgotten_and_a_round_is_bounded():
    txs = [Tx(bytes([i]), bytes([i]) * 395, 0.0) for i in range(5)]  # 400 bytes each in a batch
    r = Regossip(after_s=1, interval_max_s=60, batch_bytes_max=1000)
    assert r.pick(txs, 5.0, lambda h: True) == [txs[0].raw, txs[1].raw]  # 800 of 1000 bytes
    assert r.pick(txs, 5.0, lambda h: True) == [txs[2].raw, txs[3].raw]  # the next ones, not the same again
    committed = {txs[0].tx_hash}
    assert r.pick([t for t in txs if t.tx_hash not in committed], 5.0, lambda h: h not in committed) == [txs[4].raw]
    assert txs[0].tx_hash not in r._due
    huge = Tx(b"h", b"x" * 5000, 0.0)  # over a whole batch: never gossiped, only fetched
    assert r.pick([huge, txs[1]], 100.0, lambda h: True) == [txs[1].raw]


def test_a_full_batch_packs_within_what_receivers_accept():
    # Batches were sized by their transactions' bytes alone; a full one packed ~1 KiB over
    # the receivers' limit, and they banned the sender for it.
    from chainnode.protocol.codec import pack
    from chainnode.txpool.regossip import BATCH_HEADER_BYTES_MAX

    batch_bytes_max = 256 * 1024
    txs = [Tx(i.to_bytes(4, "big"), b"t" * 300, 0.0) for i in range(2000)]
    batch = Regossip(after_s=0, interval_max_s=1, batch_bytes_max=batch_bytes_max).pick(txs, 1.0, lambda h: True)
    assert len(batch) > 800
    assert len(pack([1, batch])) <= batch_bytes_max + BATCH_HEADER_BYTES_MAX


def test_while_blocks_commit_waiting_counts_from_the_last_block():
    # A backlog waits for room in blocks, not for gossip: every node re-sent it every round
    # and every peer decoded and refused the copies (7 per new transaction at 1,000,000 accounts).
    old = Tx(b"o", b"old-raw", 0.0)
    r = Regossip(after_s=2, interval_max_s=30, batch_bytes_max=1000)
    pending = lambda h: True  # noqa: E731
    assert r.pick([old], 10.0, pending, chain_moved_s=9.0) == []  # a block 1 s ago
    assert r.pick([old], 11.0, pending, chain_moved_s=9.0) == [b"old-raw"]  # the chain stood still for 2 s
    young = Tx(b"y", b"young-raw", 20.0)
    assert [t for t in range(21, 40) if r.pick([young], float(t), pending, chain_moved_s=float(t) - 0.5)] == []
    # However busy the chain, what waited interval_max_s since it arrived goes again.
    assert r.pick([young], 50.0, pending, chain_moved_s=49.5) == [b"young-raw"]

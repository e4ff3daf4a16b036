"""Replay protection after a snapshot: a node that installed the state at block S fetches the
transactions of the blocks before S that a replay could repeat, from real ledgers' sync
answers (`serve_request`, bytes as on the wire; only the transport is a function call)."""

from __future__ import annotations

import trio

from chainnode.blocksync.recent import fetch_recent_bodies, recent_bodies_from
from chainnode.blocksync.snapshot import SnapshotServer, SnapshotSyncer
from chainnode.blocksync.syncer import FetchFailed, serve_request
from chainnode.protocol.codec import pack, unpack
from tests.chain_fixtures import grow, open_chain


def sync_peer(chain, *, tamper: bool = False, response_bytes_max: int = 64 << 20, gone: bool = False, asked: list | None = None):
    async def fetch(peer: int, request: bytes) -> bytes:
        if asked is not None:
            asked.append((peer, unpack(request, max_bytes=64)))
        if gone:
            raise FetchFailed("not connected")
        answer = serve_request(chain.ledger, request, blocks_max=32, response_bytes_max=response_bytes_max)
        if tamper:  # a different nonce in the first block's first transaction: its hash no longer chains
            f = unpack(answer, max_bytes=1 << 26)
            if f[1]:
                tx = f[1][0][0][2][0]  # [block, certificate] -> block [version, header, txs] -> txs[0]
                tx[3] = bytes(len(tx[3]))  # its nonce
                answer = pack(f)
        await trio.sleep(0)
        return answer
    return fetch


def peers(*fetches):
    async def fetch(peer: int, request: bytes) -> bytes:
        return await fetches[peer](peer, request)
    return fetch


async def install_snapshot(chain, path):
    joiner = open_chain(path)
    server = SnapshotServer(chain.ledger)

    async def fetch(peer: int, request: bytes) -> bytes:
        return server.serve(request)
    await SnapshotSyncer(joiner.ledger, fetch, nodes_per_request=64).run(lambda: [0])
    return joiner


async def test_a_snapshot_node_refuses_replays_once_it_fetched_the_blocks_before_its_snapshot(tmp_path):
    chain = open_chain(tmp_path / "server")
    grow(chain, 12)
    joiner = await install_snapshot(chain, tmp_path / "joiner")
    try:
        old = [chain.ledger.get_block(h).transactions[0].hash(chain.suite) for h in (1, 12)]
        assert joiner.ledger.recent_bodies_pending
        assert not any(joiner.is_committed(h) for h in old)  # what a replay would exploit
        penalised = []
        asked: list = []
        stored = await fetch_recent_bodies(joiner.ledger, peers(sync_peer(chain, tamper=True), sync_peer(chain, gone=True),
                                                                 sync_peer(chain, asked=asked)),
                                           lambda: [0, 1, 2], penalise=lambda p, why: penalised.append((p, why)), blocks_per_request=5)
        assert stored == 12 and recent_bodies_from(joiner.ledger) == 1  # the window (1,000) reaches genesis
        assert all(joiner.is_committed(h) for h in old) and not joiner.ledger.recent_bodies_pending
        assert [p for p, _ in penalised] == [0, 0, 0] and "do not chain" in penalised[0][1]  # the tampering peer, each range
        assert [r[1:] for _, r in asked] == [[8, 5], [3, 5], [1, 2]]  # newest first, each range checked against the one above
        assert joiner.ledger.get_block(5) == chain.ledger.get_block(5)  # the blocks, whole
        assert joiner.ledger.get_receipt(old[0]) is None  # (without receipts)
        assert joiner.ledger.oldest_block_height() == 1
        # It follows the chain from there as any node.
        grow(chain, 1)
        assert joiner.apply_certified(chain.ledger.get_block(13), chain.ledger.get_certificate(13))
    finally:
        joiner.ledger.close()
        chain.ledger.close()


async def test_a_short_answer_is_asked_again_in_smaller_ranges_and_a_kill_resumes(tmp_path):
    chain = open_chain(tmp_path / "server")
    grow(chain, 12)
    path = tmp_path / "joiner"
    joiner = await install_snapshot(chain, path)
    one_block = len(serve_request(chain.ledger, pack([1, 12, 1]), blocks_max=1)) + 64
    with trio.move_on_after(0.05):  # a peer that answers slowly, one block at a time: killed halfway
        async def slow(peer: int, request: bytes) -> bytes:
            await trio.sleep(0.01)
            return serve_request(chain.ledger, request, blocks_max=32, response_bytes_max=one_block)
        await fetch_recent_bodies(joiner.ledger, slow, lambda: [0])
    left = joiner.ledger.oldest_block_height()
    assert 1 < left <= 13 and joiner.ledger.recent_bodies_pending
    joiner.ledger.close()

    joiner = open_chain(path)  # the restart goes on below what is stored
    try:
        assert joiner.ledger.recent_bodies_pending and joiner.ledger.oldest_block_height() == left
        stored = await fetch_recent_bodies(joiner.ledger, sync_peer(chain, response_bytes_max=one_block), lambda: [0])
        assert stored == left - 1 and not joiner.ledger.recent_bodies_pending
        assert joiner.is_committed(chain.ledger.get_block(1).transactions[0].hash(chain.suite))
    finally:
        joiner.ledger.close()
        chain.ledger.close()

"""Block sync between two real ledgers: the server side answers ranges, the syncer verifies
and applies them, and bad or missing peers cannot make it commit junk or hang."""

from dataclasses import replace

import pytest
import trio

from chainnode.blocksync.syncer import BlockSyncer, BodiesNotKept, FetchFailed, decode_response, encode_request, serve_request
from chainnode.protocol.codec import DecodeError, pack, unpack
from chainnode.protocol.types import Block
from tests.chain_fixtures import certify, grow, open_chain


@pytest.fixture
def pair(tmp_path):
    ahead, behind = open_chain(tmp_path / "a"), open_chain(tmp_path / "b")
    yield ahead, behind
    ahead.ledger.close()
    behind.ledger.close()


def server(chain, blocks_max=5):
    async def fetch(peer, request):
        await trio.sleep(0)
        return serve_request(chain.ledger, request, blocks_max=blocks_max)
    return fetch


async def test_catch_up_from_a_peer(pair):
    ahead, behind = pair
    grow(ahead, 12)
    syncer = BlockSyncer(behind, server(ahead), blocks_per_request=5)
    syncer.peer_head(1, ahead.height)
    assert await syncer.catch_up() == 12
    assert behind.height == 12 and behind.ledger.head_hash == ahead.ledger.head_hash
    assert behind.ledger.head_header.state_root == ahead.ledger.head_header.state_root


async def test_server_bounds_and_garbage(pair):
    ahead, _ = pair
    grow(ahead, 3)
    assert serve_request(ahead.ledger, b"junk", blocks_max=5) == pack([1, []])
    assert serve_request(ahead.ledger, encode_request(1, 6), blocks_max=5) == pack([1, []])  # count over the limit
    assert serve_request(ahead.ledger, encode_request(10, 2), blocks_max=5) == pack([1, []])


async def test_liar_and_dead_peers_are_skipped(pair):
    ahead, behind = pair
    grow(ahead, 4)
    honest = server(ahead)

    async def forger(peer, request):
        # a block that was never certified: certificate signed by too few sealers
        items = []
        for h in range(1, 3):
            block = ahead.ledger.get_block(h)
            items.append([block.to_fields(), certify(block.header, signers=(0,)).to_fields()])
        return pack([1, items])

    async def tamperer(peer, request):
        block = ahead.ledger.get_block(1)
        bad = Block(replace(block.header, state_root=b"\x66" * 32), block.transactions)
        return pack([1, [[bad.to_fields(), certify(bad.header).to_fields()]]])  # certified by keys, but wrong execution

    async def dead(peer, request):
        raise FetchFailed("connection reset")

    async def fetch(peer, request):
        return await {1: dead, 2: forger, 3: tamperer, 4: honest}[peer](peer, request)

    syncer = BlockSyncer(behind, fetch, penalty_ms=60_000)
    for peer in (1, 2, 3):
        syncer.peer_head(peer, 100)  # they claim far more than they have
    syncer.peer_head(4, ahead.height)
    await syncer.catch_up()
    assert behind.height == 4 and behind.ledger.head_hash == ahead.ledger.head_hash
    # nothing else to get: the liars are penalised, so catch_up returns instead of spinning
    with trio.fail_after(2):
        assert await syncer.catch_up() == 0


async def test_run_wakes_on_announcement(pair):
    ahead, behind = pair
    syncer = BlockSyncer(behind, server(ahead))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(syncer.run)
        grow(ahead, 3)
        syncer.peer_head(1, ahead.height)
        with trio.fail_after(5):
            while behind.height < 3:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    assert behind.ledger.head_hash == ahead.ledger.head_hash


async def test_ranges_are_spread_over_peers(pair):
    ahead, behind = pair
    grow(ahead, 12)
    served = {1: 0, 2: 0}
    inner = server(ahead, blocks_max=3)

    async def fetch(peer, request):
        served[peer] += 1
        return await inner(peer, request)

    syncer = BlockSyncer(behind, fetch, blocks_per_request=3)
    syncer.peer_head(1, 12)
    syncer.peer_head(2, 12)
    assert await syncer.catch_up() == 12
    assert served[1] >= 2 and served[2] >= 2, served


async def test_a_block_we_already_have_is_skipped_and_a_conflicting_one_refused(pair):
    ahead, behind = pair
    grow(ahead, 2)
    syncer = BlockSyncer(behind, server(ahead))
    syncer.peer_head(1, 2)
    await syncer.catch_up()
    block, cert = ahead.ledger.get_block(2), ahead.ledger.get_certificate(2)
    assert behind.apply_certified(block, cert) is False  # already committed: nothing written
    other = Block(replace(block.header, timestamp_ms=block.header.timestamp_ms + 1), block.transactions)
    with pytest.raises(Exception, match="conflicts"):
        behind.apply_certified(other, certify(other.header))


async def test_requests_that_time_out_ask_the_next_peer_for_fewer_blocks(pair):
    # Under CPU load a peer could not serve 64 blocks within the timeout, and every retry asked
    # for as many again: the node stalled. A timeout now halves the request for the next peer.
    ahead, behind = pair
    grow(ahead, 8)
    asked = []

    async def fetch(peer, request):
        count = unpack(request, max_bytes=64)[2]
        asked.append((peer, count))
        if count > 2:
            raise FetchFailed("request timed out after 1000 ms")
        return serve_request(ahead.ledger, request, blocks_max=8)

    syncer = BlockSyncer(behind, fetch, blocks_per_request=8, penalty_ms=0)
    for peer in (1, 2, 3):
        syncer.peer_head(peer, 8)
    for _ in range(10):
        await syncer.catch_up()
    assert behind.ledger.head_hash == ahead.ledger.head_hash
    assert [count for _, count in asked[:3]] == [8, 4, 2]  # each on the next peer, for half as many
    assert len({peer for peer, _ in asked[:3]}) == 3



async def test_a_peer_that_pruned_the_bodies_says_so_and_another_serves_them(pair, tmp_path, caplog):
    archive, behind = pair
    grow(archive, 20)
    pruning = open_chain(tmp_path / "pruning")
    try:
        pruning.ledger.block_history_blocks = 3  # (node.toml's minimum is 128; the rule is the same)
        for h in range(1, 21):
            pruning.apply_certified(archive.ledger.get_block(h), archive.ledger.get_certificate(h))
        oldest = pruning.ledger.oldest_block_height()
        assert oldest > 1
        assert unpack(serve_request(pruning.ledger, encode_request(1, 5), blocks_max=5), max_bytes=64) == [1, [], oldest]

        async def fetch(peer, request):
            return await server(pruning if peer == 1 else archive)(peer, request)
        syncer = BlockSyncer(behind, fetch, blocks_per_request=5)
        syncer.peer_head(1, 20)
        assert await syncer.catch_up() == 0  # only the pruning peer: nothing to replay from, and it says why
        assert "no peer keeps block 1's body any more" in caplog.text and "--sync snapshot" in caplog.text
        assert syncer.peers[1].skip_until_ms == 0  # not a misbehaving peer: just not an archive
        syncer.peer_head(2, 20)
        assert await syncer.catch_up() == 20 and behind.ledger.head_hash == archive.ledger.head_hash
    finally:
        pruning.ledger.close()


@pytest.mark.parametrize("response", [pack([1]), pack([1, [], 1]), pack([1, [], "5"]), pack([1, [[0, 0]], 9]), pack([1, [], 9, 9])])
def test_malformed_sync_responses_and_pruning_marks_are_refused(response):
    with pytest.raises(DecodeError):
        decode_response(response, 1)
    with pytest.raises(BodiesNotKept, match="from block 9 on"):
        decode_response(pack([1, [], 9]), 1)

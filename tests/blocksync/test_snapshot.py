"""Snapshot sync between two real ledgers: the server's answers travel as bytes exactly as
on the wire (`SnapshotServer.serve`), only the transport is a function call."""

from __future__ import annotations

import pytest
import trio

from chainnode.blocksync.snapshot import NODES, SnapshotError, SnapshotServer, SnapshotSyncer, check_node, verify_manifest
from chainnode.blocksync.syncer import FetchFailed
from chainnode.crypto import get_suite
from chainnode.protocol.codec import pack, unpack
from chainnode.protocol.stateproof import internal_hash, leaf_hash
from chainnode.store.tree import StateTree, fetched_node_checker, treespeed
from tests.chain_fixtures import GENESIS_GOVERNED, certify, change_sealers, commit_by_sealers, grow, open_chain


@pytest.fixture
def served(tmp_path):
    chain = open_chain(tmp_path / "server")
    grow(chain, 12)
    yield chain, SnapshotServer(chain.ledger)
    chain.ledger.close()


def peers_of(server: SnapshotServer, bad: set[int] = frozenset(), gone: set[int] = frozenset(), log: list | None = None):
    async def fetch(peer: int, request: bytes) -> bytes:
        if log is not None:
            log.append((peer, request))
        if peer in gone:
            raise FetchFailed(f"peer {peer} is not connected")
        answer = server.serve(request)
        f = unpack(request, max_bytes=1 << 20)
        if peer in bad and f[1] == NODES:  # flips one byte of the first record it sends
            records = unpack(answer, max_bytes=1 << 24)[1]
            records[0] = records[0][:-1] + bytes([records[0][-1] ^ 1])
            answer = pack([1, records])
        await trio.sleep(0)
        return answer

    return fetch


async def test_a_new_node_installs_the_state_at_the_certified_head_and_follows_blocks(tmp_path, served):
    chain, server = served
    joiner = open_chain(tmp_path / "joiner")
    penalised = []
    try:
        syncer = SnapshotSyncer(joiner.ledger, peers_of(server, bad={1}), nodes_per_request=8, penalise=lambda p, why: penalised.append((p, why)))
        manifest = await syncer.run(lambda: [1, 2])
        assert manifest.height == chain.height == joiner.height
        assert joiner.ledger.head_hash == chain.ledger.head_hash
        assert joiner.ledger.state.items() == chain.ledger.state.items()  # the flat state is exactly the tree's
        assert joiner.ledger.state.tree.root == chain.ledger.head_header.state_root
        assert penalised and penalised[0][0] == 1 and "fails its check" in penalised[0][1]  # the tampering peer, caught
        assert joiner.ledger.get_block(3) is None  # blocks before the snapshot are not here
        # And it follows the chain from there, block by block, fully checked.
        grow(chain, 2)
        for height in (chain.height - 1, chain.height):
            assert joiner.apply_certified(chain.ledger.get_block(height), chain.ledger.get_certificate(height))
        assert joiner.ledger.head_hash == chain.ledger.head_hash
    finally:
        joiner.ledger.close()


async def test_the_tree_is_fetched_from_every_peer_that_offers_it(tmp_path, served):
    chain, server = served
    joiner = open_chain(tmp_path / "joiner")
    log: list = []
    try:
        await SnapshotSyncer(joiner.ledger, peers_of(server, log=log), nodes_per_request=4).run(lambda: [1, 2, 3])
        asked = {peer for peer, request in log if unpack(request, max_bytes=1 << 20)[1] == NODES}
        assert asked == {1, 2, 3} and joiner.ledger.head_hash == chain.ledger.head_hash
    finally:
        joiner.ledger.close()


async def test_a_killed_sync_resumes_with_what_it_fetched(tmp_path, served):
    chain, server = served
    path = tmp_path / "joiner"
    joiner = open_chain(path)
    first = SnapshotSyncer(joiner.ledger, peers_of(server), nodes_per_request=4)
    with trio.move_on_after(10):  # the kill: cancelled once a good part of the tree is on disk
        async def killer():
            while first.nodes_fetched < 30:
                await trio.sleep(0)
            nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(killer)
            nursery.start_soon(lambda: first.run(lambda: [1]))
    assert joiner.ledger.snapshot_pending == chain.height and joiner.height == 0
    joiner.ledger.close()
    joiner = open_chain(path)  # the restart, while the chain went on
    pending = chain.height
    grow(chain, 2)
    try:
        assert joiner.ledger.snapshot_pending == pending
        again = SnapshotSyncer(joiner.ledger, peers_of(server), nodes_per_request=4)
        await again.run(lambda: [1])
        assert again.nodes_present > 0 and joiner.height == pending  # the block it began with, still kept by the peer
        assert joiner.ledger.head_hash == chain.ledger.get_header(pending).hash(joiner.suite)
        assert joiner.ledger.snapshot_pending is None
        for height in (pending + 1, pending + 2):  # and it catches up from there
            assert joiner.apply_certified(chain.ledger.get_block(height), chain.ledger.get_certificate(height))
        assert joiner.ledger.state.items() == chain.ledger.state.items()
    finally:
        joiner.ledger.close()


async def test_peers_that_fail_are_left_and_without_any_the_sync_says_so(tmp_path, served):
    _, server = served
    joiner = open_chain(tmp_path / "joiner")
    try:
        syncer = SnapshotSyncer(joiner.ledger, peers_of(server, bad={1, 2}), nodes_per_request=8)
        with pytest.raises(Exception, match="every peer offering the snapshot failed"):
            await syncer.run(lambda: [1, 2])
        assert syncer.bad_answers == 2 and joiner.height == 0
        assert await SnapshotSyncer(joiner.ledger, peers_of(server, gone={3})).run(lambda: [3], wait_for_peers_s=0) is None
    finally:
        joiner.ledger.close()


def test_a_manifest_must_lead_from_the_genesis_sealers(tmp_path, served):
    chain, server = served
    joiner = open_chain(tmp_path / "joiner")
    try:
        raw = server.serve(pack([1, 0]))
        assert verify_manifest(joiner.ledger, raw).height == chain.height
        f = unpack(raw, max_bytes=1 << 24)
        forged = certify(chain.ledger.head_header, signers=(0,))  # one sealer of four is no quorum
        f[3] = forged.encode()
        with pytest.raises(Exception, match="quorum|weight|signatures"):
            verify_manifest(joiner.ledger, pack(f))
        f = unpack(raw, max_bytes=1 << 24)
        f[2] = chain.ledger.get_header(chain.height - 1).encode()  # a header the certificate is not for
        with pytest.raises(Exception, match="names|another block"):
            verify_manifest(joiner.ledger, pack(f))
        for junk in (b"", b"\x91", pack([1, 0, "x"]), pack([2, 0])):
            with pytest.raises(Exception):
                server.serve(junk)
    finally:
        joiner.ledger.close()


def test_a_node_request_names_positions_and_a_malformed_one_is_refused(served):
    """Nodes are asked for by [depth, path] only: the joiner checks each record against the
    hash its parent promised, so the hash need not travel."""
    chain, server = served
    height = chain.height
    root = unpack(server.serve(pack([1, NODES, height, [[0, b""]]])), max_bytes=1 << 24)[1][0]
    bitmap = unpack(root, max_bytes=1 << 20)[1]
    first = (bitmap & -bitmap).bit_length() - 1
    child, absent = [1, bytes((first << 4,))], [5, b"\xff\xff\xf0"]
    records = unpack(server.serve(pack([1, NODES, height, [child, absent]])), max_bytes=1 << 24)[1]
    assert type(records[0]) is bytes and records[1] is None  # nothing lies at that position
    for junk, why in (
        (pack([1, NODES, height, [[1, child[1], bytes(32)]]]), "node position"),  # the hash does not travel
        (pack([1, NODES, height, [[1, b"\x10\x00"]]]), "node path"),  # depth 1 has a path of one byte
        (pack([1, NODES, height, [[99, b"\x10"]]]), "node depth"),
        (pack([1, NODES, height, [["1", b"\x10"]]]), "node depth"),
        (pack([1, NODES, height, [child] * (server.nodes_max + 1)]), "nodes request nodes"),
        (pack([1, NODES, height, child]), "node position"),
    ):
        with pytest.raises(Exception, match=why):
            server.serve(junk)


async def test_the_sealer_set_changes_are_handed_over_from_the_genesis_set(tmp_path):
    chain = open_chain(tmp_path / "server", GENESIS_GOVERNED)
    joiner = open_chain(tmp_path / "joiner", GENESIS_GOVERNED)
    try:
        change_sealers(chain)  # two changes: a fifth sealer from block 4, a new weight from block 7
        commit_by_sealers(chain, [])
        server = SnapshotServer(chain.ledger)
        manifest = verify_manifest(joiner.ledger, server.serve(pack([1, 0])))
        assert manifest.height == 8 and len(unpack(server.serve(pack([1, 0])), max_bytes=1 << 24)[4]) == 2
        # A hand-over whose proofs are of other keys, or whose header is not the block before the change, fails.
        f = unpack(server.serve(pack([1, 0])), max_bytes=1 << 24)
        f[4][0][3].reverse()
        with pytest.raises(Exception, match="proves"):
            verify_manifest(joiner.ledger, pack(f))
        f = unpack(server.serve(pack([1, 0])), max_bytes=1 << 24)
        f[4][0][0] += 1
        with pytest.raises(Exception, match="not block"):
            verify_manifest(joiner.ledger, pack(f))
        await SnapshotSyncer(joiner.ledger, peers_of(server), nodes_per_request=8).run(lambda: [1])
        assert [s.weight for s in joiner.sealers()] == [3, 1, 1, 1, 1]
        height = commit_by_sealers(chain, [])  # certified by the five: the joiner checks it with what it learnt
        assert joiner.apply_certified(chain.ledger.get_block(height), chain.ledger.get_certificate(height))
    finally:
        chain.ledger.close()
        joiner.ledger.close()


@pytest.mark.parametrize("suite_name", ["sm", "ed25519"])
def test_the_accelerated_node_check_agrees_with_check_node(suite_name):
    """The C check (chainnode/store/_treespeed.c check_nodes) takes exactly the records
    check_node takes, with the same result; what it does not take, check_node judges."""
    suite = get_suite(suite_name)
    h = suite.hash
    fast = fetched_node_checker(h)
    if treespeed is None:
        assert fast is None
        pytest.skip("the reference implementation is running")
    writes = {b"key%d" % i: b"v" * (i % 300) for i in range(300)}
    u = StateTree(lambda k: None, h).update(0, writes, lambda k: False, from_empty=True)
    # Each record with the hash its parent promises, from the update's own nodes.
    promised = {}
    for k, record in u.nodes.items():
        f = unpack(record, max_bytes=1 << 24)
        promised[record] = (leaf_hash(h, h(f[1]), h(f[2])) if f[0] == 0 else internal_hash(h, f[1], [f[2]]))
    records, hashes = list(promised), list(promised.values())
    leaf = next(r for r in records if unpack(r, max_bytes=1 << 24)[0] == 0)
    internal = next(r for r in records if unpack(r, max_bytes=1 << 24)[0] == 1)
    odd = [
        leaf[:-1] + bytes([leaf[-1] ^ 1]), internal[:-1] + bytes([internal[-1] ^ 1]),  # a value byte, the leaf mask
        leaf + b"\x00", leaf[:-1], b"", b"\xc0", pack([0, b"k"]), pack([False] + unpack(leaf, max_bytes=1 << 24)[1:]),
        pack([2] + unpack(internal, max_bytes=1 << 24)[1:]), pack([1, 0, b"", [], 0]),
        pack(unpack(internal, max_bytes=1 << 24)[:3] + [[-1], 0]),  # heights the check ignores, in a form C does not read
        b"\x93\x00\xd9\x01k\xc4\x01v",  # a str key
        b"\x93\x00\xc5\x00\x01k\xc4\x01v",  # a key's length in a longer form than needed
    ]
    expected_hash = {r: promised.get(leaf if r.startswith(leaf[:3]) else internal) for r in odd}
    for record in records + odd:
        want = promised.get(record) or expected_hash[record] or bytes(32)
        try:
            reference = ("ok", check_node(h, want, record))
        except SnapshotError as exc:
            reference = ("error", str(exc))
        got, stop = fast([want], [record], 0)
        if stop == 1:
            assert reference == ("ok", got[0]), record
        else:  # left to check_node
            assert got == [] and stop == 0
    # A batch: checked up to the first record it leaves to check_node, or a missing one.
    got, stop = fast(hashes, records, 0)
    assert stop == len(records) and got == [check_node(h, w, r) for w, r in zip(hashes, records)]
    got, stop = fast(hashes, records[:5] + [None] + records[6:], 2)
    assert stop == 5 and len(got) == 3
    got, stop = fast(hashes[:3] + [bytes(32)] + hashes[4:], records, 0)
    assert stop == 3

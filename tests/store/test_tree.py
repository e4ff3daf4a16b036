"""The state tree: incremental updates agree with a tree built at once from the same keys
(its shape depends on the key set only), every proof of presence and absence verifies
against the root, and no proof verifies a wrong value or survives a changed byte."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainnode.crypto import get_suite
from chainnode.protocol.codec import DecodeError, unpack
from chainnode.protocol.stateproof import EMPTY_ROOT, ProofError, StateProof
from chainnode.store.leveldb import Store
from chainnode.store.tree import STALE_PREFIX, StateTree, leaves_written_at, tree_root

SUITE = get_suite("sm")
H = SUITE.hash

keys = st.binary(min_size=1, max_size=6)
values = st.binary(min_size=0, max_size=12)
blocks = st.lists(st.dictionaries(keys, st.none() | values, max_size=12), min_size=1, max_size=8)


class DictTree:
    """A tree on a dict store, committed block by block as the ledger does."""

    def __init__(self) -> None:
        self.db: dict[bytes, bytes] = {}
        self.tree = StateTree(self.db.get, H)
        self.state: dict[bytes, bytes] = {}
        self.roots: list[tuple[object, dict]] = []  # (root ref, state) per height

    def commit(self, writes: dict) -> bytes:
        height = self.tree.head_height + 1
        update = self.tree.update(height, writes, lambda k: k in self.state)
        for k, v in update.batch_ops():
            self.db[k] = v
        self.tree.moved(height, update)
        for k, v in writes.items():
            if v is None:
                self.state.pop(k, None)
            else:
                self.state[k] = v
        self.roots.append((update.root_ref, dict(self.state)))
        return update.root


@settings(max_examples=150, deadline=None)
@given(blocks, st.lists(keys, max_size=8))
def test_incremental_roots_equal_a_fresh_build_and_every_proof_verifies(history, probes):
    t = DictTree()
    for writes in history:
        root = t.commit(writes)
        assert root == tree_root(H, t.state)
        for key in list(t.state)[:6] + probes:
            proof = t.tree.prove("sm", key, t.tree.head_ref)
            assert proof.value == t.state.get(key)
            proof.verify(SUITE, root)
            again = StateProof.decode(proof.encode())
            assert again == proof
            wrong = StateProof(proof.suite, key, (proof.value or b"") + b"!", proof.steps, None)
            with pytest.raises(ProofError):
                wrong.verify(SUITE, root)
            if proof.value is not None:
                with pytest.raises(ProofError):  # claiming absence of a present key
                    StateProof(proof.suite, key, None, proof.steps, None).verify(SUITE, root)


@settings(max_examples=60, deadline=None)
@given(blocks)
def test_every_past_height_stays_provable(history):
    t = DictTree()
    for writes in history:
        t.commit(writes)
    for ref, state in t.roots:
        root = EMPTY_ROOT if ref is None else ref[0]
        for key, value in list(state.items())[:5]:
            proof = t.tree.prove("sm", key, ref)
            assert proof.value == value
            proof.verify(SUITE, root)
        assert dict(t.tree.items(ref)) == state


def test_a_flipped_byte_anywhere_in_a_proof_fails():
    t = DictTree()
    t.commit({b"k%d" % i: b"v%d" % i for i in range(300)})
    root = t.tree.root
    for key in (b"k7", b"absent"):
        raw = t.tree.prove("sm", key, t.tree.head_ref).encode()
        for i in range(len(raw)):
            for bit in (0x01, 0x80):
                bad = bytearray(raw)
                bad[i] ^= bit
                try:
                    proof = StateProof.decode(bytes(bad))
                except DecodeError:
                    continue
                if proof.key != key:
                    continue  # a proof about another key: the SDK checks it is the key it asked for
                with pytest.raises(ProofError):
                    proof.verify(SUITE, root)


def test_deletions_collapse_back_to_the_shape_of_the_remaining_keys():
    t = DictTree()
    t.commit({b"k%d" % i: b"v" for i in range(200)})
    t.commit({b"k%d" % i: None for i in range(1, 200)})
    assert t.tree.root == tree_root(H, {b"k0": b"v"})
    assert t.tree.head_ref[2], "a tree of one key is that key's leaf"
    t.commit({b"k0": None})
    assert t.tree.root == EMPTY_ROOT and t.tree.head_ref is None
    proof = t.tree.prove("sm", b"k0", None)
    assert proof.value is None and proof.steps == ()
    proof.verify(SUITE, EMPTY_ROOT)


def test_a_block_writes_only_the_nodes_on_its_paths_and_lists_what_it_replaced(tmp_path):
    with Store(tmp_path) as store:
        tree = StateTree(store.get, H)
        first = tree.update(0, {b"k%d" % i: b"v" for i in range(5000)}, lambda k: False)
        store.write_batch(first.batch_ops())
        tree.moved(0, first)
        second = tree.update(1, {b"k1": b"changed"}, lambda k: True)
        store.write_batch(second.batch_ops())
        tree.moved(1, second)
        # One leaf and the internal nodes above it: 5,000 keys make a tree ~4 levels deep.
        assert len(second.nodes) <= 5
        stale = unpack(store.get(STALE_PREFIX + (1).to_bytes(8, "big")), max_bytes=1 << 20)
        assert len(stale) == len(second.nodes)
        # Reopened on the same store, it continues from the head's root.
        again = StateTree(store.get, H, head_height=1)
        assert again.head_ref == tree.head_ref and again.head_has_tree
        assert again.prove("sm", b"k1", again.head_ref).value == b"changed"
        assert again.prove("sm", b"k1", first.root_ref).value == b"v"


def test_unchanged_values_write_nothing():
    t = DictTree()
    t.commit({b"a": b"1", b"b": b"2"})
    before = dict(t.db)
    update = t.tree.update(1, {b"a": b"1", b"zz": None}, lambda k: k in t.state)
    assert update.root_ref == t.tree.head_ref and not update.nodes and not update.stale
    assert t.db == before


def test_old_states_are_pruned_exactly_and_a_pruned_height_says_what_is_kept(tmp_path):
    from chainnode.store.ledger import Ledger, StateNotKept
    from chainnode.store.tree import NODE_PREFIX, decode_ref, root_key
    from tests.helpers import next_block

    sealers = [SUITE.generate_keypair() for _ in range(4)]
    with Ledger.open(tmp_path, SUITE, state_history_blocks=3) as ledger:
        for height in range(12):
            writes = {b"k%d" % (i % 40): b"v%d.%d" % (i, height) for i in range(height * 7, height * 7 + 25)}
            if height % 3 == 2:
                writes[b"k%d" % height] = None
            ledger.commit_block(*next_block(ledger, [], writes, sealers))
        store = ledger._store
        kept = range(ledger.head_height - 2, ledger.head_height + 1)
        assert ledger.oldest_state_height() == kept[0]
        live = {k for h in kept for k, _, _ in ledger.state.tree.walk(decode_ref(store.get(root_key(h))))}
        assert {k for k, _ in store.iterate(NODE_PREFIX)} == live  # nothing a kept height uses is gone, nothing else stays
        for h in kept:
            ledger.state_proof(b"k5", h).verify(SUITE, ledger.get_header(h).state_root)
        with pytest.raises(StateNotKept, match=f"pruned on this node; it keeps the state from block {kept[0]} on"):
            ledger.state_proof(b"k5", kept[0] - 1)


def test_a_chain_that_gets_its_tree_by_an_upgrade_prunes_from_there(tmp_path):
    from chainnode.store.ledger import Ledger
    from tests.helpers import next_block

    sealers = [SUITE.generate_keypair() for _ in range(4)]
    with Ledger.open(tmp_path, SUITE, state_history_blocks=2) as ledger:
        for height in range(30):  # 0.2.0's rules up to block 19, then the tree
            version = 1 if height < 20 else 2
            ledger.commit_block(*next_block(ledger, [], {b"k%d" % (height % 7): b"v%d" % height}, sealers, header_version=version))
            if version == 2:
                assert ledger.oldest_state_height() == max(20, height - 1)
        assert dict(ledger.state.tree.items(ledger.state.tree.head_ref)) == dict(ledger.state.items())


def test_the_leaves_written_at_a_height_are_read_in_one_pass_over_the_nodes():
    """leaves_written_at (a snapshot's flat state, chainnode/store/ledger.py finish_snapshot):
    the key and value of exactly the leaves written at that height, whatever else is there."""
    h = get_suite("sm").hash
    first = {b"key%d" % i: b"v%d" % i for i in range(200)}
    u0 = StateTree(lambda k: None, h).update(0, first, lambda k: False, from_empty=True)
    changed = {b"key%d" % i: b"w" * i for i in range(0, 300, 3)}
    u1 = StateTree(lambda k: None, h, head_height=6).update(7, {**first, **changed}, lambda k: False, from_empty=True)
    nodes = sorted([*u0.nodes.items(), *u1.nodes.items()])  # z: order, two heights' nodes mixed
    assert dict(leaves_written_at(nodes, 7)) == {**first, **changed}
    assert dict(leaves_written_at(nodes, 0)) == first
    assert list(leaves_written_at(nodes, 3)) == []

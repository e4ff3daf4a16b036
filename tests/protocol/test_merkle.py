"""Merkle roots and inclusion proofs: every leaf of every size proves, nothing else does."""

import pytest

from chainnode.crypto import get_suite
from chainnode.protocol.merkle import LEAF_PREFIX, NODE_PREFIX, MerkleProof, merkle_proof, merkle_root, verify_proof


@pytest.mark.parametrize("suite_name", ["sm", "ed25519"])
@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33])
def test_every_leaf_proves_and_no_other(suite_name, n):
    h = get_suite(suite_name).hash
    leaves = [f"leaf-{i}".encode() for i in range(n)]
    root = merkle_root(leaves, h)
    for i, leaf in enumerate(leaves):
        proof = merkle_proof(leaves, i, suite_name)
        assert verify_proof(root, leaf, proof)
        assert MerkleProof.decode(proof.encode()) == proof
        assert not verify_proof(root, leaf + b"x", proof)
        assert not verify_proof(h(b"other"), leaf, proof)
        if n > 1:
            other = (i + 1) % n
            assert not verify_proof(root, leaves[other], proof)
            moved = MerkleProof(proof.suite, other, proof.leaf_count, proof.siblings)
            assert not verify_proof(root, leaf, moved)
        wrong_suite = MerkleProof("ed25519" if suite_name == "sm" else "sm", i, n, proof.siblings)
        assert not verify_proof(root, leaf, wrong_suite)


def test_known_small_trees():
    h = get_suite("sm").hash
    a, b, c = b"a", b"b", b"c"
    la, lb, lc = (h(LEAF_PREFIX + x) for x in (a, b, c))
    assert merkle_root([], h) == h(b"")
    assert merkle_root([a], h) == la
    assert merkle_root([a, b], h) == h(NODE_PREFIX + la + lb)
    # the odd leaf is promoted, not duplicated
    assert merkle_root([a, b, c], h) == h(NODE_PREFIX + h(NODE_PREFIX + la + lb) + lc)
    assert merkle_root([a, b, c], h) != merkle_root([a, b, c, c], h)


def test_a_leaf_cannot_pose_as_an_inner_node():
    h = get_suite("sm").hash
    leaves = [b"a", b"b", b"c", b"d"]
    root = merkle_root(leaves, h)
    inner = h(NODE_PREFIX + h(LEAF_PREFIX + b"a") + h(LEAF_PREFIX + b"b"))
    fake = MerkleProof("sm", 0, 2, [merkle_proof(leaves, 2, "sm").siblings[-1]])
    assert not verify_proof(root, NODE_PREFIX[1:] + inner, fake)


@pytest.mark.parametrize(
    "proof",
    [
        MerkleProof("sm", 0, 0, []),
        MerkleProof("sm", 5, 3, []),
        MerkleProof("sm", 0, 4, []),  # too few siblings
        MerkleProof("sm", 0, 1, [b"x" * 32]),  # too many
        MerkleProof("nope", 0, 1, []),
        MerkleProof("sm", 0, 2, [b"short"]),
        "not a proof",
        None,
    ],
)
def test_malformed_proofs_return_false(proof):
    assert verify_proof(b"r" * 32, b"leaf", proof) is False

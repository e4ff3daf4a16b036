"""Binary Merkle trees over a suite hash, with inclusion proofs.

Shape (documented in docs/protocol.md):
- leaf hash = H(0x00 || leaf), inner node = H(0x01 || left || right): the prefixes keep a
  leaf from being passed off as an inner node (second-preimage attacks);
- an odd node at the end of a level is promoted to the next level unchanged, never
  duplicated, so no two different lists share a root (the duplication flaw, CVE-2012-2459);
- the root of an empty list is H(b"").

A proof carries the suite name, the leaf's index, the number of leaves and the sibling
hashes from the bottom up; the verifier recomputes which side each sibling is on from the
index and count, so a proof cannot lie about the position of its leaf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from chainnode.crypto import get_suite
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_str, expect_version, pack, unpack

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
PROOF_DEPTH_MAX = 64

HashFn = Callable[[bytes], bytes]


def _levels(leaves: list[bytes], h: HashFn) -> list[list[bytes]]:
    level = [h(LEAF_PREFIX + leaf) for leaf in leaves]
    levels = [level]
    while len(level) > 1:
        nxt = [h(NODE_PREFIX + level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
        levels.append(level)
    return levels


def merkle_root(leaves: list[bytes], h: HashFn) -> bytes:
    if not leaves:
        return h(b"")
    return _levels(leaves, h)[-1][0]


@dataclass(frozen=True, slots=True)
class MerkleProof:
    VERSION = 1

    suite: str
    index: int
    leaf_count: int
    siblings: list[bytes]

    def to_fields(self) -> list:
        return [self.VERSION, self.suite, self.index, self.leaf_count, self.siblings]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    @classmethod
    def from_fields(cls, f: Any) -> "MerkleProof":
        f = expect_list(f, "merkle proof")
        expect_version(f, "merkle proof", cls.VERSION)
        expect_list(f, "merkle proof", length=5)
        siblings = [expect_bytes(s, "merkle proof sibling", length=32) for s in expect_list(f[4], "merkle proof siblings", max_length=PROOF_DEPTH_MAX)]
        return cls(
            suite=expect_str(f[1], "merkle proof suite", max_length=16),
            index=expect_int(f[2], "merkle proof index"),
            leaf_count=expect_int(f[3], "merkle proof leaf count"),
            siblings=siblings,
        )

    @classmethod
    def decode(cls, data: bytes) -> "MerkleProof":
        return cls.from_fields(unpack(data, max_bytes=PROOF_DEPTH_MAX * 40 + 64))


def merkle_proof(leaves: list[bytes], index: int, suite_name: str) -> MerkleProof:
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} of {len(leaves)}")
    levels = _levels(leaves, get_suite(suite_name).hash)
    siblings = []
    i = index
    for level in levels[:-1]:
        sibling = i ^ 1
        if sibling < len(level):
            siblings.append(level[sibling])
        i //= 2
    return MerkleProof(suite_name, index, len(leaves), siblings)


def verify_proof(root: bytes, leaf: bytes, proof: MerkleProof) -> bool:
    """True when `leaf` is at `proof.index` in a list of `proof.leaf_count` leaves with `root`.

    Standalone: needs only the root (from a header whose commit certificate was checked),
    the leaf bytes and the proof. Never raises on a malformed proof; returns False.
    """
    try:
        if not isinstance(proof, MerkleProof) or not 0 <= proof.index < proof.leaf_count:
            return False
        h = get_suite(proof.suite).hash
        node = h(LEAF_PREFIX + leaf)
        i, width = proof.index, proof.leaf_count
        siblings = iter(proof.siblings)
        while width > 1:
            if i % 2 == 1:
                node = h(NODE_PREFIX + next(siblings) + node)
            elif i + 1 < width:
                node = h(NODE_PREFIX + node + next(siblings))
            # else: the last, odd node is promoted unchanged
            i //= 2
            width = (width + 1) // 2
        if next(siblings, None) is not None:
            return False  # extra siblings: not a proof for this position
        return node == root
    except (StopIteration, ValueError, TypeError, DecodeError):
        return False

"""The state tree's hashing and its proofs: what anyone holding a trusted state root needs to
check one key's value, or its absence, with no node to ask.

The tree (built and stored by chainnode/store/tree.py; the reasons for its shape in
docs/architecture.md, "The state tree") is a 16-ary sparse Merkle tree:

- a key's path is H(key): 64 nibbles, high nibble of each byte first;
- leaf hash     = H(0x00 || H(key) || H(value));
- internal hash = H(0x01 || bitmap || children's hashes in nibble order), the bitmap two
  bytes big-endian with bit i set when there is a child at nibble i;
- the empty tree's root is 32 zero bytes.

Its shape depends only on the set of keys, never on the order they were written in: a leaf
sits at the shallowest depth where no other key shares its path, and there is an internal
node at each path prefix that two or more keys share. So the path of K, followed from the
root, ends at K's leaf when K is present, and otherwise at an empty slot or at the leaf of
another key, which shows K's absence.

A proof (`StateProof`, canonical encoding in docs/protocol.md):

    [1, suite, key, value or nil, steps, terminal]

- steps: one per internal node on the path, root first: [bitmap, siblings], siblings being
  the node's other children's hashes in nibble order;
- terminal: nil when the value is present (its leaf is computed from key and value) or the
  path ends at an empty slot; [other key's H(key), H(value)] when it ends at another leaf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_str, expect_version, pack, unpack

HASH_BYTES = 32
EMPTY_ROOT = bytes(HASH_BYTES)
LEAF_TAG = b"\x00"
INTERNAL_TAG = b"\x01"
DEPTH_MAX = 2 * HASH_BYTES  # nibbles in a path
KEY_BYTES_MAX = 1024  # chainnode/store/state.py STATE_KEY_BYTES_MAX
VALUE_BYTES_MAX = 1 << 20  # STATE_VALUE_BYTES_MAX
PROOF_BYTES_MAX = VALUE_BYTES_MAX + 64 * 1024

HashFn = Callable[[bytes], bytes]


def nibble(path: bytes, depth: int) -> int:
    byte = path[depth >> 1]
    return byte & 15 if depth & 1 else byte >> 4


def leaf_hash(h: HashFn, key_hash: bytes, value_hash: bytes) -> bytes:
    return h(LEAF_TAG + key_hash + value_hash)


def internal_hash(h: HashFn, bitmap: int, child_hashes: list[bytes]) -> bytes:
    return h(INTERNAL_TAG + bitmap.to_bytes(2, "big") + b"".join(child_hashes))


# Where things live in the state (the layouts' homes: contracts/engine/store.py for contract
# storage, chainnode/system/state.py for the system keys).
CONTRACT_STORAGE_PREFIX = b"c"
SYSTEM_PREFIX = b"sys/"
ADDRESS_BYTES = 20


def contract_state_key(address: bytes, storage_key: Any) -> bytes:
    """The state key of a contract's `storage[storage_key]` (a plain value: str, bytes,
    int, ...), as the engine stores it: b"c" + address + b"/" + canonical encoding."""
    if type(address) is not bytes or len(address) != ADDRESS_BYTES:
        raise ValueError(f"a contract address is {ADDRESS_BYTES} bytes")
    return CONTRACT_STORAGE_PREFIX + address + b"/" + pack(storage_key)


def system_state_key(name: str) -> bytes:
    """The state key of system state `name`, e.g. "nodes", "committee", "config/tx_count_limit"."""
    if type(name) is not str or not name:
        raise ValueError("a system state name is a non-empty string, e.g. \"nodes\"")
    return SYSTEM_PREFIX + name.encode()


class ProofError(ValueError):
    """The proof does not show what it claims against the given root; the message says why."""


@dataclass(frozen=True, slots=True)
class StateProof:
    suite: str
    key: bytes
    value: bytes | None  # None: the proof shows the key is absent
    steps: tuple[tuple[int, tuple[bytes, ...]], ...]
    other_leaf: tuple[bytes, bytes] | None = None  # (H(key), H(value)) of the leaf the path ends at

    VERSION = 1

    def to_fields(self) -> list:
        return [self.VERSION, self.suite, self.key, self.value, [[b, list(s)] for b, s in self.steps],
                None if self.other_leaf is None else list(self.other_leaf)]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    @classmethod
    def decode(cls, data: bytes) -> "StateProof":
        f = expect_list(unpack(data, max_bytes=PROOF_BYTES_MAX), "state proof")
        expect_version(f, "state proof", cls.VERSION)
        expect_list(f, "state proof", length=6)
        key = expect_bytes(f[2], "state proof key", max_length=KEY_BYTES_MAX)
        if not key:
            raise DecodeError("state proof key: must not be empty")
        value = None if f[3] is None else expect_bytes(f[3], "state proof value", max_length=VALUE_BYTES_MAX)
        steps = []
        for raw in expect_list(f[4], "state proof steps", max_length=DEPTH_MAX):
            bitmap, siblings = expect_list(raw, "state proof step", length=2)
            bitmap = expect_int(bitmap, "state proof bitmap", lo=1, hi=0xFFFF)
            siblings = expect_list(siblings, "state proof siblings", max_length=16)
            steps.append((bitmap, tuple(expect_bytes(s, "state proof sibling", length=HASH_BYTES) for s in siblings)))
        other = None
        if f[5] is not None:
            pair = expect_list(f[5], "state proof other leaf", length=2)
            other = (expect_bytes(pair[0], "state proof other key hash", length=HASH_BYTES),
                     expect_bytes(pair[1], "state proof other value hash", length=HASH_BYTES))
        return cls(expect_str(f[1], "state proof suite", max_length=16), key, value, tuple(steps), other)

    def verify(self, suite: CryptoSuite, root: bytes) -> None:
        """Raise `ProofError` unless this proof shows `self.value` (or absence) under `root`
        in a chain of `suite`."""
        if self.suite != suite.name:
            raise ProofError(f"the proof is for suite {self.suite!r}, the chain uses {suite.name!r}")
        h = suite.hash
        if self.value is not None and self.other_leaf is not None:
            raise ProofError("a proof of a value cannot end at another key's leaf")
        path = h(self.key)
        depth = len(self.steps)
        if self.other_leaf is not None:
            other_path = self.other_leaf[0]
            if other_path == path:
                raise ProofError("the leaf the proof ends at is the key's own: it proves nothing absent")
            if any(nibble(other_path, d) != nibble(path, d) for d in range(depth)):
                raise ProofError("the leaf the proof ends at is not on the key's path")
            current: bytes | None = leaf_hash(h, *self.other_leaf)
        elif self.value is not None:
            current = leaf_hash(h, path, h(self.value))
        else:
            current = None  # an empty slot (or an empty tree, with no steps)
        for d in range(depth - 1, -1, -1):
            bitmap, siblings = self.steps[d]
            nib = nibble(path, d)
            has_slot = bool(bitmap >> nib & 1)
            if bin(bitmap).count("1") != len(siblings) + (1 if current is not None else 0):
                raise ProofError(f"step {d}: the bitmap does not match the number of children given")
            if current is None:
                if has_slot:
                    raise ProofError(f"step {d}: the node has a child on the key's path, the proof says it ends there")
                children = list(siblings)
            else:
                if not has_slot:
                    raise ProofError(f"step {d}: the node has no child on the key's path")
                at = bin(bitmap & ((1 << nib) - 1)).count("1")
                children = [*siblings[:at], current, *siblings[at:]]
            current = internal_hash(h, bitmap, children)
        if (current or EMPTY_ROOT) != root:
            what = "its value" if self.value is not None else "its absence"
            raise ProofError(f"the proof of {what} does not lead to the state root 0x{root.hex()}")


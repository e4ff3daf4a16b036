"""The state tree in LevelDB: a 16-ary sparse Merkle tree over the whole state, updated
once per block in the block's one synced batch, with every height's tree kept until pruned.

Hashing, shape and proofs are chainnode/protocol/stateproof.py's; why this tree and not
another, docs/architecture.md ("The state tree"). Nodes are stored Jellyfish-style, under
the height that wrote them and their position, never under their hash: a block writes only
the nodes on the paths of its keys, every earlier height's tree stays readable (proofs at a
past height), and a replaced node is recorded as stale at the height that replaced it, so
pruning can delete exactly the nodes no kept height uses.

    z:<depth:1><path:ceil(depth/2)><height:8>   a node at that position, written at that height:
                                                leaf     pack([0, key, value])
                                                internal pack([1, bitmap, hashes, heights, leaf mask])
    x:<height:8>                                the root after that block: pack([hash, height, is leaf]) or pack(None)
    y:<height:8>                                pack([node key, ...]): the nodes that block replaced

A leaf keeps the key and the value (the state as of its height, for proofs and snapshots);
`s:` keeps the latest values flat, for execution's one-read lookups (chainnode/store/state.py).

An update never needs to read a leaf to change it: the flat state says whether the key
existed, and an existing key's path always ends at its own leaf. Only an insertion that
lands on another key's leaf reads that leaf, to push it down.
"""

from __future__ import annotations

import ctypes
import functools
import os
from dataclasses import dataclass, field
from itertools import islice
from typing import Any, Callable, Iterable, Iterator, Mapping

import msgpack

from chainnode.crypto import CryptoUnavailable
from chainnode.crypto.libcrypto import load_libcrypto
from chainnode.protocol.codec import DecodeError, pack, unpack
from chainnode.protocol.stateproof import EMPTY_ROOT, INTERNAL_TAG, LEAF_TAG, HashFn, StateProof, leaf_hash, nibble

# The C accelerator of `StateTree.update` (chainnode/store/_treespeed.c): the same result,
# node for node and byte for byte, as the Python code here, which stays the reference and
# runs whenever the extension is not built (no C compiler at install) or
# CHAINNODE_PURE_PYTHON=1 is set, as for the contract engine's (contracts/engine/accelerator.py).
treespeed: Any = None
if os.environ.get("CHAINNODE_PURE_PYTHON") != "1":
    try:
        import chainnode.store._treespeed as treespeed
    except ImportError:  # pragma: no cover - depends on the install
        treespeed = None

NODE_PREFIX = b"z:"
ROOT_PREFIX = b"x:"
STALE_PREFIX = b"y:"
NODE_CACHE_ENTRIES_MAX = 50_000  # internal nodes' records (the top four levels alone are 4,369)
NODE_RECORD_BYTES_MAX = 2 << 20  # a leaf holds a key and value within state.py's limits

Ref = tuple  # (hash, height written, is leaf): how a parent points at a child
Get = Callable[[bytes], "bytes | None"]


def _h8(height: int) -> bytes:
    return height.to_bytes(8, "big")


_NODE_DEPTH = [NODE_PREFIX + bytes((d,)) for d in range(65)]


def node_key(depth: int, path: bytes, height: int) -> bytes:
    return _NODE_DEPTH[depth] + path + _h8(height)


def path_prefix(path: bytes, depth: int) -> bytes:
    """The path of the node `depth` nibbles deep on the way to `path`."""
    whole = path[:depth >> 1]
    return whole + bytes((path[depth >> 1] & 0xF0,)) if depth & 1 else whole


def child_path(path: bytes, depth: int, nib: int) -> bytes:
    return path[:-1] + bytes((path[-1] | nib,)) if depth & 1 else path + bytes((nib << 4,))


def root_key(height: int) -> bytes:
    return ROOT_PREFIX + _h8(height)


def encode_ref(ref: Ref | None) -> bytes:
    return pack(None if ref is None else list(ref))


def decode_ref(raw: bytes) -> Ref | None:
    f = unpack(raw, max_bytes=64)
    return None if f is None else (f[0], f[1], f[2])


def _load(get: Get, k: bytes) -> bytes:
    raw = get(k)
    if raw is None:
        raise KeyError(f"state tree node {k.hex()} is missing from the database")
    return raw


def encode_internal(bitmap: int, hashes: bytes, heights: list[int], leaves: int) -> bytes:
    """An internal node's record (the layout above; decode_internal reads it back)."""
    return pack([1, bitmap, hashes, heights, leaves])


def decode_internal(raw: bytes) -> list:
    """The 16 children (a ref or None) of an internal node's record."""
    f = unpack(raw, max_bytes=NODE_RECORD_BYTES_MAX)
    if type(f) is not list or len(f) != 5 or type(f[0]) is not int or f[0] != 1:
        raise DecodeError("state tree node: not an internal node's record")
    _, bitmap, hashes, heights, leaves = f
    if not (type(bitmap) is int and 0 < bitmap <= 0xFFFF and type(leaves) is int and 0 <= leaves and not leaves & ~bitmap
            and type(hashes) is bytes and type(heights) is list and len(hashes) == 32 * len(heights) == 32 * bitmap.bit_count()
            and all(type(h) is int and h >= 0 for h in heights)):
        raise DecodeError("state tree node: an internal node's bitmap, hashes, heights and leaf mask disagree")
    return _children(bitmap, hashes, heights, leaves)


def _cached_children(record: bytes) -> list:
    """decode_internal of a record from the node cache, which holds only records this tree
    wrote or decode_internal read: without the checks again."""
    return _children(*msgpack.unpackb(record)[1:])


def _children(bitmap: int, hashes: bytes, heights: list, leaves: int) -> list:
    children: list = [None] * 16
    j = 0
    while bitmap:
        low = bitmap & -bitmap
        children[low.bit_length() - 1] = (hashes[32 * j:32 * j + 32], heights[j], bool(leaves & low))
        j += 1
        bitmap ^= low
    return children


def _leaf_fields(raw: bytes) -> tuple[bytes, bytes]:
    """The key and value of a leaf's record."""
    f = unpack(raw, max_bytes=NODE_RECORD_BYTES_MAX)
    if type(f) is not list or len(f) != 3 or type(f[0]) is not int or f[0] != 0 or type(f[1]) is not bytes or type(f[2]) is not bytes:
        raise DecodeError("state tree node: not a leaf's record")
    return f[1], f[2]


def _trim(cache: dict, size: int) -> None:
    """Drop the oldest entries of `cache` until at most `size` are left, in one pass: each
    `next(iter(cache))` walks over the slots deleted before it, so dropping one entry at a
    time costs O(n) per entry once the cache is full."""
    excess = len(cache) - size
    if excess > 0:
        for k in list(islice(cache, excess)):
            del cache[k]


@functools.cache
def _accelerator_digests() -> dict[bytes, int]:
    """H(b"abc") -> the address of libcrypto's EVP_MD for H, for the hashes the accelerator
    can compute; configures it on first use (empty when libcrypto cannot be loaded)."""
    try:
        lib = load_libcrypto()
        address = {name: ctypes.cast(lib[name], ctypes.c_void_p).value for name in (
            "EVP_MD_fetch", "EVP_MD_CTX_new", "EVP_MD_CTX_free", "EVP_DigestInit_ex", "EVP_DigestUpdate", "EVP_DigestFinal_ex")}
    except (CryptoUnavailable, AttributeError):
        return {}
    # Fetched once, not EVP_sm3(): initialising a digest with a fetched EVP_MD skips the
    # provider lookup that a legacy one costs on every hash. Held for the process's life.
    fetch = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p)(address["EVP_MD_fetch"])
    mds = tuple(md for md in (fetch(None, b"SM3", None), fetch(None, b"SHA256", None)) if md)
    if not mds:
        return {}
    treespeed.configure(address["EVP_MD_CTX_new"], address["EVP_MD_CTX_free"], address["EVP_DigestInit_ex"],
                        address["EVP_DigestUpdate"], address["EVP_DigestFinal_ex"], mds,
                        decode_internal, _leaf_fields, NODE_RECORD_BYTES_MAX)
    return {treespeed.digest(md, b"abc"): md for md in mds}


def _accelerator_digest(h: HashFn) -> int | None:
    """The EVP_MD the accelerator computes `h` with, or None: the Python code runs."""
    if treespeed is None:
        return None
    md = _accelerator_digests().get(h(b"abc"))
    probe = bytes(range(256)) * 3  # and one of several blocks, to be sure
    return md if md is not None and treespeed.digest(md, probe) == h(probe) else None


def fetched_node_checker(h: HashFn) -> Callable[[list, list, int], tuple[list, int]] | None:
    """The accelerator's check of tree nodes fetched by snapshot sync, for `h`:
    f(hashes, records, start) -> (checked, stop), each checked record None for a leaf or
    (bitmap, its children's hashes joined), up to the first record at `stop` that is missing or
    that it leaves to chainnode/blocksync/snapshot.py `check_node`. None: no accelerator."""
    md = _accelerator_digest(h)
    return None if md is None else functools.partial(treespeed.check_nodes, md)


def push_child_asks_reference(out: list, depth: int, path: bytes, bitmap: int, hashes: bytes, parent: Any, first: int, count: int) -> None:
    """Append ([depth + 1, path], hash, parent, nibble) for `count` children, from the
    `first`-th on in nibble order, of the internal node at (depth, path) whose bitmap and
    joined child hashes are these: snapshot sync's walk (chainnode/blocksync/snapshot.py),
    one entry for every node of a tree, so the accelerator's when it is built."""
    nibs = [nib for nib in range(16) if bitmap >> nib & 1]
    if not (0 <= first and 0 <= count and first + count <= len(nibs)):
        raise ValueError("push_child_asks: first and count are not within the node's children")
    for j in range(first, first + count):
        out.append(([depth + 1, child_path(path, depth, nibs[j])], hashes[32 * j:32 * j + 32], parent, nibs[j]))


push_child_asks = push_child_asks_reference if treespeed is None else treespeed.push_child_asks


def _bitmap_and_hashes(children: list) -> tuple[int, list[bytes]]:
    bitmap, bit, hashes = 0, 1, []
    for c in children:
        if c is not None:
            bitmap |= bit
            hashes.append(c[0])
        bit <<= 1
    return bitmap, hashes


def _groups(entries: list, depth: int):
    """Runs of entries (sorted by path) that share the nibble at `depth`."""
    i, n = 0, len(entries)
    shift = 0 if depth & 1 else 4
    at = depth >> 1
    while i < n:
        nib = entries[i][0][at] >> shift & 15
        j = i + 1
        while j < n and entries[j][0][at] >> shift & 15 == nib:
            j += 1
        yield nib, entries[i:j]
        i = j


@dataclass
class TreeUpdate:
    """One block's change to the tree, not yet written: the ledger puts `batch_ops()` into
    the block's batch and calls `StateTree.applied` once it is durable."""

    height: int
    parent: Ref | None
    root_ref: Ref | None = None
    nodes: dict[bytes, bytes] = field(default_factory=dict)  # node key -> record
    internal: dict[bytes, bytes] = field(default_factory=dict)  # the internal nodes of `nodes`, for the cache
    stale: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.height_key = _h8(self.height)

    @property
    def root(self) -> bytes:
        return EMPTY_ROOT if self.root_ref is None else self.root_ref[0]

    def batch_ops(self) -> list[tuple[bytes, bytes]]:
        ops = list(self.nodes.items())
        if self.stale:
            ops.append((STALE_PREFIX + self.height_key, pack(self.stale)))
        ops.append((root_key(self.height), encode_ref(self.root_ref)))
        return ops


class StateTree:
    """The tree as of the head (`head_height`, `head_ref`), reading committed nodes
    through `get` (the store's, or a snapshot's) and a bounded cache of internal nodes.

    The cache holds records, not decoded children: a record is one bytes object the
    collector never visits, where 16 children are a list of up to 16 tuples of bytes and
    ints (~2 KB, ~50 objects): at 100,000 accounts the cache holds the whole tree's ~40,000
    internal nodes, which as lists cost ~45 ms in every full collection and made a block's
    update wait on memory more than on hashing.

    `update` runs on the C accelerator when it is built and computes `h` (SM3 or SHA-256),
    unless `accelerate` is False (the tests compare the two)."""

    def __init__(self, get: Get, h: HashFn, *, head_height: int = -1, cache_entries_max: int = NODE_CACHE_ENTRIES_MAX,
                 accelerate: bool = True) -> None:
        assert cache_entries_max >= 1, "the node cache holds at least one node"
        self._get = get
        self._h = h
        self._cache: dict[bytes, bytes] = {}  # internal node key -> record, oldest first
        self._cache_max = cache_entries_max
        self._md = _accelerator_digest(h) if accelerate else None  # the accelerator's EVP_MD for h, or None
        self.head_height = head_height
        self.head_ref: Ref | None = None
        self.head_has_tree = False  # False for a chain whose head block predates the tree (header version 1)
        if head_height >= 0:
            raw = get(root_key(head_height))
            self.head_has_tree = raw is not None
            self.head_ref = decode_ref(raw) if raw is not None else None

    @property
    def root(self) -> bytes:
        return EMPTY_ROOT if self.head_ref is None else self.head_ref[0]

    @property
    def accelerated(self) -> bool:
        """Whether `update` runs on the C accelerator."""
        return self._md is not None

    # ---- updating -----------------------------------------------------------------------

    def update(self, height: int, writes: Mapping[bytes, bytes | None], existed: Callable[[bytes], bool], *, from_empty: bool = False) -> TreeUpdate:
        """The tree after applying `writes` (None deletes) to the head's as block `height`.

        `existed(key)`: whether the key is in the head's state. `from_empty` starts from
        an empty tree instead (the chain's first block with a tree: `writes` is then the
        whole state)."""
        assert height == self.head_height + 1, f"tree update for block {height} on a head at {self.head_height}"
        h = self._h
        parent = None if from_empty else self.head_ref
        u = TreeUpdate(height, parent)
        if self._md is not None:
            done = treespeed.update(parent, writes, None if from_empty else existed, height,
                                    self._get, self._cache, self._cache_max, self._md)
            if done is not NotImplemented:  # it leaves keys or values that are not bytes to the reference
                u.root_ref, u.nodes, u.internal, u.stale = done
                return u
        entries = sorted((h(k), k, v, (not from_empty) and existed(k)) for k, v in writes.items())
        entries = [e for e in entries if e[2] is not None or e[3]]  # deleting an absent key changes nothing
        u.root_ref = self._apply(parent, 0, b"", entries, u) if entries else parent
        return u

    def moved(self, height: int, u: TreeUpdate | None) -> None:
        """Called once block `height` is durable, with its update (None: a block of header
        version 1, which leaves no tree)."""
        assert height == self.head_height + 1
        if u is None:
            self.head_height, self.head_ref, self.head_has_tree = height, None, False
            return
        assert u.height == height
        cache = self._cache
        for k in u.stale:
            cache.pop(k, None)
        cache.update(u.internal)
        _trim(cache, self._cache_max)  # oldest first
        self.head_height, self.head_ref, self.head_has_tree = u.height, u.root_ref, True

    def _remember(self, k: bytes, record: bytes) -> None:
        cache = self._cache
        if len(cache) >= self._cache_max:
            _trim(cache, self._cache_max - 1 - self._cache_max // 8)  # the oldest eighth at once
        cache[k] = record

    def _internal(self, k: bytes) -> list:
        record = self._cache.get(k)
        if record is not None:
            return _cached_children(record)
        raw = _load(self._get, k)
        children = decode_internal(raw)
        self._remember(k, bytes(raw))
        return children

    def _apply(self, ref: Ref | None, depth: int, path: bytes, entries: list, u: TreeUpdate) -> Ref | None:
        """The subtree at (depth, path), now `ref`, after `entries` (all on this path)."""
        if ref is None:
            return self._build(depth, path, entries, u)
        k = node_key(depth, path, ref[1])
        if ref[2]:  # a leaf
            if len(entries) == 1 and entries[0][3]:  # its own key, changed or deleted in place
                kh, key, value, _ = entries[0]
                if value is None:
                    self._stale(k, u)
                    return None
                hashed = leaf_hash(self._h, kh, self._h(value))
                if hashed == ref[0]:
                    return ref  # written with the value it had
                self._stale(k, u)
                return self._put_leaf(depth, path, kh, key, value, u, hashed)
            if not any(e[3] for e in entries):  # only new keys: the leaf is another key's, pushed down
                leaf_key, leaf_value = _leaf_fields(_load(self._get, k))
                entries = sorted(entries + [(self._h(leaf_key), leaf_key, leaf_value, True)])
            self._stale(k, u)
            return self._build(depth, path, entries, u)
        old = self._internal(k)
        children = list(old)
        for nib, group in _groups(entries, depth):
            children[nib] = self._apply(children[nib], depth + 1, child_path(path, depth, nib), group, u)
        if children == old:
            return ref
        self._stale(k, u)
        return self._internal_node(depth, path, children, u)

    def _build(self, depth: int, path: bytes, entries: list, u: TreeUpdate) -> Ref | None:
        """A subtree of exactly the live entries, where there was nothing."""
        live = [e for e in entries if e[2] is not None]
        if not live:
            return None
        if len(live) == 1:
            kh, key, value, _ = live[0]
            return self._put_leaf(depth, path, kh, key, value, u)
        children: list = [None] * 16
        for nib, group in _groups(live, depth):
            children[nib] = self._build(depth + 1, child_path(path, depth, nib), group, u)
        return self._put_internal(depth, path, children, u)

    def _internal_node(self, depth: int, path: bytes, children: list, u: TreeUpdate) -> Ref | None:
        """The node for changed `children`: nothing, a lone leaf moved up, or an internal node."""
        present = [i for i in range(16) if children[i] is not None]
        if not present:
            return None
        if len(present) == 1 and children[present[0]][2]:
            nib = present[0]
            leaf = children[nib]
            k = node_key(depth + 1, child_path(path, depth, nib), leaf[1])
            record = u.nodes.pop(k, None)
            if record is None:  # written by an earlier block
                record = _load(self._get, k)
                self._stale(k, u)
            u.nodes[node_key(depth, path, u.height)] = record
            return (leaf[0], u.height, True)
        return self._put_internal(depth, path, children, u)

    def _put_leaf(self, depth: int, path: bytes, kh: bytes, key: bytes, value: bytes, u: TreeUpdate, hashed: bytes | None = None) -> Ref:
        """`hashed`: the leaf's hash, when the caller computed it already."""
        h = self._h
        u.nodes[_NODE_DEPTH[depth] + path + u.height_key] = pack([0, key, value])
        return (hashed or h(LEAF_TAG + kh + h(value)), u.height, True)

    def _put_internal(self, depth: int, path: bytes, children: list, u: TreeUpdate) -> Ref:
        # One pass makes both the record and the hash: this runs for every node on every
        # changed path, the tree's hottest code.
        bitmap = leaves = 0
        bit = 1
        hashes, heights = [], []
        for c in children:
            if c is not None:
                bitmap |= bit
                hashes.append(c[0])
                heights.append(c[1])
                if c[2]:
                    leaves |= bit
            bit <<= 1
        joined = b"".join(hashes)
        k = _NODE_DEPTH[depth] + path + u.height_key
        u.nodes[k] = u.internal[k] = encode_internal(bitmap, joined, heights, leaves)
        return (self._h(INTERNAL_TAG + bitmap.to_bytes(2, "big") + joined), u.height, False)

    @staticmethod
    def _stale(k: bytes, u: TreeUpdate) -> None:
        if k in u.nodes:  # written by this same update: it was never durable
            del u.nodes[k]
            u.internal.pop(k, None)
        else:
            u.stale.append(k)

    # ---- pruning ------------------------------------------------------------------------

    def prune_ops(self, keep_from: int, pruned_through: int, heights_max: int) -> tuple[list[bytes], int]:
        """The deletes that drop the trees of heights below `keep_from`, continuing from
        `pruned_through` (the last height whose stale list was deleted), at most
        `heights_max` heights at a time; and the new `pruned_through`.

        A node on the stale list of height s is used only by the trees of heights below s,
        so once s <= keep_from it is deleted, with the list and the root of height s - 1."""
        deletes: list[bytes] = []
        s = pruned_through + 1
        last = min(keep_from, pruned_through + heights_max)
        while s <= last:
            listed = STALE_PREFIX + _h8(s)
            raw = self._get(listed)
            if raw is not None:
                deletes += unpack(raw, max_bytes=64 << 20)
                deletes.append(listed)
            deletes.append(root_key(s - 1))
            s += 1
        return deletes, s - 1

    # ---- reading ------------------------------------------------------------------------

    def prove(self, suite_name: str, key: bytes, root_ref: Ref | None, get: Get | None = None) -> StateProof:
        """A proof of `key`'s value, or absence, in the tree whose root is `root_ref`
        (read from `get`: a snapshot's, for a consistent view of a past height)."""
        get = get or self._get
        h = self._h
        path = h(key)
        steps = []
        ref, depth, node_path = root_ref, 0, b""
        value = other = None
        while ref is not None:
            k = node_key(depth, node_path, ref[1])
            if ref[2]:
                leaf_key, leaf_value = unpack(get(k), max_bytes=NODE_RECORD_BYTES_MAX)[1:]
                if leaf_key == key:
                    value = leaf_value
                else:
                    other = (h(leaf_key), h(leaf_value))
                break
            record = self._cache.get(k) if get is self._get else None
            children = _cached_children(record) if record is not None else decode_internal(get(k))
            nib = nibble(path, depth)
            bitmap, _ = _bitmap_and_hashes(children)
            steps.append((bitmap, tuple(c[0] for i, c in enumerate(children) if c is not None and i != nib)))
            ref = children[nib]
            node_path = child_path(node_path, depth, nib)
            depth += 1
        return StateProof(suite_name, key, value, tuple(steps), other)

    def walk(self, root_ref: Ref | None, get: Get | None = None) -> Iterable[tuple[bytes, Ref, bytes]]:
        """(node key, ref, record) of every node of the tree under `root_ref`, depth first in
        path order; KeyError names a node that is missing."""
        get = get or self._get
        stack = [] if root_ref is None else [(root_ref, 0, b"")]
        while stack:
            ref, depth, node_path = stack.pop()
            k = node_key(depth, node_path, ref[1])
            raw = get(k)
            if raw is None:
                raise KeyError(f"state tree node {k.hex()} is missing from the database")
            yield k, ref, raw
            if not ref[2]:
                children = decode_internal(raw)
                stack += [(children[nib], depth + 1, child_path(node_path, depth, nib)) for nib in range(15, -1, -1) if children[nib] is not None]

    def items(self, root_ref: Ref | None, get: Get | None = None) -> Iterable[tuple[bytes, bytes]]:
        """Every key and value in the tree under `root_ref`, in path order."""
        for _, ref, raw in self.walk(root_ref, get):
            if ref[2]:
                _, key, value = unpack(raw, max_bytes=NODE_RECORD_BYTES_MAX)
                yield key, value


def leaves_written_at(nodes: Iterable[tuple[bytes, bytes]], height: int) -> Iterator[tuple[bytes, bytes]]:
    """The key and value of every leaf among `nodes` (node key, record), in any order, that
    was written at `height`: read in one sequential pass over z:, where a walk from the root
    reads each node at random (a 1,000,000-key state: ~2 s against ~3.5 s). For records
    that were checked when written (snapshot sync's own, canonical: a leaf is [0, key,
    value], its first two bytes 0x93 0x00; an internal node's 0x95 0x01)."""
    suffix = _h8(height)
    unpackb = msgpack.unpackb
    for k, record in nodes:
        if record[1] == 0 and k.endswith(suffix) and record[0] == 0x93:
            _, key, value = unpackb(record)
            yield key, value


def tree_root(h: HashFn, items: Mapping[bytes, bytes]) -> bytes:
    """The root of a tree holding exactly `items` (genesis, and checks), computed in memory."""
    tree = StateTree(lambda k: None, h)
    return tree.update(0, items, lambda k: False, from_empty=True).root

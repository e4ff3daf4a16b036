"""Snapshot sync: a node starts from the state at a certified height instead of replaying
every block since genesis, then follows blocks from there (docs/operations.md, "Joining
by snapshot").

Trust. The joining node trusts only its genesis sealers. A peer's manifest names a height
h with its header and commit certificate, and the hand-overs since genesis: for each change
of sealer set, at the block q the new set first certifies, the header and certificate of
block q - 1 and state proofs, against that header, of `sys/nodes` and `sys/nodes_pending`:
the schedule from which every node computes the set of block q (chainnode/system/state.py,
`sealers_at`). Each hand-over is certified by the set before it, so the node learns each
set from the one it already trusts, and checks h's certificate with the last. Every tree node it then fetches is
checked against the hash its parent (ultimately the certified root) promised, so a peer can
only waste the node's time, never change its state: a node that fails the check costs its
sender a penalty and is asked of another peer.

Wire (request/response on `/chainnode/snapshot/1`):

    manifest  request pack([1, 0]) for the peer's head, pack([1, 0, height]) for an earlier block
              response pack([1, height, header, certificate, [hand-over, ...], tx count])
              hand-over = [q, header of q - 1, its certificate, [proof of sys/nodes, proof of sys/nodes_pending]]
    nodes     request pack([1, 1, height, [[depth, path], ...]])
              response pack([1, [record or nil, ...]])   nil: no such node in that block's tree here

A node is asked for by its position in the tree of block `height`, never by the storage
key a peer named, and checked against the hash its parent promised: the record's bitmap
and child hashes are what the hash covers, while the heights and leaf mask a record also
holds are storage details that a lying peer could falsify unseen. So the joining node keeps only what the
hashes prove and writes its own records, every node as written at the snapshot's height,
each internal node once all its children are on disk (post-order).

Progress is durable and resumable: a node on disk means its whole subtree is, so a restart
walks from the root and skips every complete subtree. The flat state (`s:`) is written
from the finished tree at the end, so a sync that moves to a newer height leaves nothing
stale behind. Memory is bounded by the walk (depth x 16 x a request's nodes x the
requests in flight), not by the state's size.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import trio

from chainnode.blocksync.syncer import FetchFailed
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_version, pack, unpack
from chainnode.protocol.stateproof import DEPTH_MAX, EMPTY_ROOT, HASH_BYTES, ProofError, StateProof, internal_hash, leaf_hash, nibble
from chainnode.protocol.types import BlockHeader, CommitCertificate, InvalidCertificate, sealer_set_hash
from chainnode.store.ledger import Ledger, StateNotKept
from chainnode.store.tree import (
    NODE_RECORD_BYTES_MAX,
    decode_internal,
    encode_internal,
    fetched_node_checker,
    node_key,
    path_prefix,
    push_child_asks,
)
from chainnode.system.state import MEMBERSHIP_DELAY_BLOCKS, NODES_KEY, PENDING_NODES_KEY, nodes_at, sealers_at

log = logging.getLogger("chainnode.snapshot")

SNAPSHOT_PROTOCOL = "/chainnode/snapshot/1"
MANIFEST, NODES = 0, 1
NODE_ASK_BYTES_MAX = 2 + 34  # [depth, path], encoded
# Internal nodes whose children the server remembers (decoded, ~2 KB each): a walk asks
# for a node's children soon after the node, and the REQUESTS_PER_PEER requests a peer has
# out to this server hold at most 2 x 4,096 nodes, so as many parents; at 65,536 a serving
# node held ~130 MB more at 1,000,000 accounts.
CHILDREN_REMEMBERED_MAX = 8_192
# Fetched nodes are written once this many requests' worth are ready (and at the end): one
# synced write per request cost about as much as checking its nodes.
WRITE_REQUESTS = 4
HANDOVERS_MAX = 10_000
# Nodes a request asks for (`[limits] snapshot_nodes_per_request_max`): each request is a new
# stream and its round trip, ~3 ms of a node's CPU on both ends; at 512 a 1,000,000-account
# sync spent ~60 s, at 2,048 ~38 s, at 4,096 ~30 s (docs/performance.md, "Snapshot sync speed").
NODES_PER_REQUEST_DEFAULT = NODES_PER_REQUEST_MAX = 4_096
REQUESTS_IN_FLIGHT = 8  # node requests a syncing node has out at once (to the peers in turn)
REQUESTS_PER_PEER = 2  # while one answer is checked and written, the next is read
RESPONSE_BYTES_MAX = 16 << 20
# A test hook, not a setting: with it set to 1 this node serves every tree node with its last
# byte flipped, a hostile peer for tests/integration/test_snapshot_sync.py.
TAMPER_ENV = "CHAINNODE_TEST_TAMPER_SNAPSHOT"


_DEPTH_KEY = [node_key(depth, b"", 0)[:-8] for depth in range(DEPTH_MAX + 1)]  # z:<depth>


class SnapshotError(Exception):
    """A peer's manifest or node failed a check; the message says which."""


# ---- the server ---------------------------------------------------------------------------


_NOTHING = pack([1, -1, b"", b"", [], 0])


class SnapshotServer:
    """Answers manifests and node requests from the ledger (reads only; any thread)."""

    def __init__(self, ledger: Ledger, *, nodes_max: int = NODES_PER_REQUEST_MAX, response_bytes_max: int = RESPONSE_BYTES_MAX) -> None:
        self.ledger = ledger
        self.nodes_max = nodes_max
        self.response_bytes_max = response_bytes_max
        self._children: dict[tuple[int, int, bytes], list] = {}  # (height, depth, path) -> child refs
        self._lock = threading.Lock()
        self._tamper = os.environ.get(TAMPER_ENV) == "1"
        self._set_changes: list[int] = []  # heights whose header names another set than the block before
        self._scanned_to = 0

    def serve(self, payload: bytes) -> bytes:
        f = expect_list(unpack(payload, max_bytes=NODE_ASK_BYTES_MAX * self.nodes_max + 64), "snapshot request")
        expect_version(f, "snapshot request", 1)
        kind = expect_int(f[1] if len(f) > 1 else None, "snapshot request kind", hi=NODES)
        if kind == MANIFEST:
            if len(f) == 3:
                return self._manifest(expect_int(f[2], "manifest height", lo=1))
            expect_list(f, "manifest request", length=2)
            return self._manifest(self.ledger.head_height)
        expect_list(f, "nodes request", length=4)
        height = expect_int(f[2], "nodes request height")
        asks = expect_list(f[3], "nodes request nodes", max_length=self.nodes_max)
        records, size = [], 0
        get, limit = self.ledger.store_get, self.response_bytes_max
        parent_key = parent_children = None  # siblings come together: their parent's children, once
        for ask in asks:
            if type(ask) is list and len(ask) == 2:
                depth, path = ask
            else:
                depth, path = expect_list(ask, "node position", length=2)
            if not (type(depth) is int and 0 < depth < DEPTH_MAX and type(path) is bytes and len(path) == (depth + 1) >> 1):
                depth = expect_int(depth, "node depth", hi=DEPTH_MAX - 1)
                path = expect_bytes(path, "node path", length=(depth + 1) // 2)
            if depth == 0:
                ref = self.ledger.state_root_ref(height)
            else:
                up = depth - 1
                key = (up, path_prefix(path, up))
                if key != parent_key:
                    parent_key, parent_children = key, self._children_of(height, *key)
                ref = None if parent_children is None else parent_children[path[up >> 1] & 15 if up & 1 else path[up >> 1] >> 4]
            record = None if ref is None else get(_DEPTH_KEY[depth] + path + ref[1].to_bytes(8, "big"))
            size += len(record or b"") + 8
            if size > limit:
                break  # the client asks again for the rest
            records.append(record)
        if self._tamper:
            records = [r if r is None else r[:-1] + bytes((r[-1] ^ 1,)) for r in records]
        return pack([1, records])

    def _children_of(self, height: int, depth: int, path: bytes) -> list | None:
        """The child refs of the internal node at (depth, path) in block `height`'s tree. A
        walk asks for a node's children soon after the node, so they are remembered
        (bounded): a lookup is then one read; a miss walks down from the root."""
        key = (height, depth, path)
        with self._lock:
            children = self._children.get(key)
        if children is not None:
            return children
        if depth == 0:
            ref = self.ledger.state_root_ref(height)
        else:
            parent = self._children_of(height, depth - 1, path_prefix(path, depth - 1))
            ref = None if parent is None else parent[nibble(path, depth - 1)]
        record = None if ref is None or ref[2] else self.ledger.store_get(node_key(depth, path, ref[1]))
        if record is None:
            return None
        children = decode_internal(record)
        with self._lock:  # requests are served on several threads at once
            if len(self._children) >= CHILDREN_REMEMBERED_MAX:
                del self._children[next(iter(self._children))]
            self._children[key] = children
        return children

    def _manifest(self, height: int) -> bytes:
        ledger = self.ledger
        header, cert = ledger.get_header(height), ledger.get_certificate(height)
        if header is None or cert is None or header.version < 2:
            return _NOTHING  # nothing to offer (genesis only, or no state tree)
        if header.state_root != EMPTY_ROOT and ledger.state_root_ref(height) is None:
            return _NOTHING  # that block's state is pruned here
        handovers = []
        for q in self._changes_up_to(height):
            try:
                proofs = [ledger.state_proof(key, q - 1).encode() for key in (NODES_KEY, PENDING_NODES_KEY)]
            except StateNotKept:
                return _NOTHING  # a hand-over older than the state kept here
            before = ledger.get_certificate(q - 1)
            handovers.append([q, ledger.get_header(q - 1).encode(), before.encode() if before else b"", proofs])
        return pack([1, height, header.encode(), cert.encode(), handovers, ledger.total_tx_count])

    def _changes_up_to(self, height: int) -> list[int]:
        """Heights q whose header names another sealer set than q - 1's (scanned once, then
        extended as the chain grows)."""
        ledger = self.ledger
        previous = ledger.get_header(self._scanned_to)
        for q in range(self._scanned_to + 1, height + 1):
            header = ledger.get_header(q)
            if header is None:
                break
            if previous is not None and header.sealer_set_hash != previous.sealer_set_hash:
                self._set_changes.append(q)
            previous = header
            self._scanned_to = q
        return [q for q in self._set_changes if q <= height]


# ---- the client ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Manifest:
    height: int
    header: BlockHeader
    certificate: CommitCertificate
    tx_count: int


Fetch = Callable[[int, bytes], Awaitable[bytes]]


def verify_manifest(ledger: Ledger, raw: bytes) -> Manifest | None:
    """The peer's offer, checked from the genesis sealers on (None: it offers nothing);
    SnapshotError or DecodeError if any link fails."""
    f = expect_list(unpack(raw, max_bytes=RESPONSE_BYTES_MAX), "manifest", length=6)
    expect_version(f, "manifest", 1)
    height = f[1]
    if height == -1:
        return None
    height = expect_int(height, "manifest height", lo=1)
    suite = ledger.suite
    if ledger.head_height != 0:
        raise SnapshotError(f"a snapshot is taken from genesis, and this node is at block {ledger.head_height}")
    # The set that certifies block 1 is the genesis state's, the ledger's state now.
    sealers = [n for n in nodes_at(ledger.state, 1) if n.role == "sealer"]
    pubs, weights = [n.consensus_pub for n in sealers], [n.weight for n in sealers]
    for i, item in enumerate(expect_list(f[4], "manifest hand-overs", max_length=HANDOVERS_MAX)):
        q, header_raw, cert_raw, proofs = expect_list(item, "hand-over", length=4)
        q = expect_int(q, "hand-over height", lo=MEMBERSHIP_DELAY_BLOCKS + 1, hi=height)
        header = BlockHeader.decode(expect_bytes(header_raw, "hand-over header"))
        if header.height != q - 1:
            raise SnapshotError(f"hand-over {i}: the header is block {header.height}, not block {q - 1}")
        _check_certified(suite, header, CommitCertificate.decode(expect_bytes(cert_raw, "hand-over certificate")), pubs, weights, f"hand-over {i}")
        schedule = {}
        for key, raw_proof in zip((NODES_KEY, PENDING_NODES_KEY), expect_list(proofs, "hand-over proofs", length=2)):
            proof = StateProof.decode(expect_bytes(raw_proof, "hand-over proof"))
            if proof.key != key:
                raise SnapshotError(f"hand-over {i} proves {proof.key!r}, not {key!r}")
            try:
                proof.verify(suite, header.state_root)
            except ProofError as exc:
                raise SnapshotError(f"hand-over {i}: {exc}") from None
            if proof.value is not None:
                schedule[key] = proof.value
        sealers = sealers_at(schedule, q)
        if not sealers:
            raise SnapshotError(f"hand-over {i}: the state after block {q - 1} schedules no sealers for block {q}")
        pubs, weights = [s.consensus_pub for s in sealers], [s.weight for s in sealers]
    header = BlockHeader.decode(expect_bytes(f[2], "manifest header"))
    if header.height != height or header.version < 2:
        raise SnapshotError(f"the manifest's header is block {header.height} (version {header.version}), it names {height}")
    certificate = CommitCertificate.decode(expect_bytes(f[3], "manifest certificate"))
    _check_certified(suite, header, certificate, pubs, weights, f"block {height}")
    return Manifest(height, header, certificate, expect_int(f[5], "manifest tx count"))


def _check_certified(suite, header: BlockHeader, cert: CommitCertificate, pubs: list[bytes], weights: list[int], what: str) -> None:
    if header.sealer_set_hash != sealer_set_hash(suite, pubs, weights):
        raise SnapshotError(f"{what} names a sealer set the hand-overs do not lead to")
    if cert.height != header.height or cert.block_hash != header.hash(suite):
        raise SnapshotError(f"{what}: the certificate is for another block")
    try:
        cert.verify(suite, pubs, weights)
    except InvalidCertificate as exc:
        raise SnapshotError(f"{what}: {exc}") from None


def check_node(h, node_hash: bytes, record: bytes) -> tuple[int, bytes] | None:
    """Raise SnapshotError unless `record` is a node whose hash is `node_hash`; return None
    for a leaf, (bitmap, its children's hashes joined) for an internal node."""
    try:
        f = expect_list(unpack(record, max_bytes=NODE_RECORD_BYTES_MAX), "tree node")
        if f and type(f[0]) is int and f[0] == 0:
            _, key, value = expect_list(f, "leaf", length=3)
            if leaf_hash(h, h(expect_bytes(key, "leaf key")), h(expect_bytes(value, "leaf value"))) != node_hash:
                raise SnapshotError("a leaf does not hash to what its parent promised")
            return None
        tag, bitmap, hashes = expect_list(f, "internal node", length=5)[:3]
        if type(tag) is not int or tag != 1:
            raise SnapshotError("a tree node is neither a leaf (0) nor an internal node (1)")
        bitmap = expect_int(bitmap, "bitmap", lo=1, hi=0xFFFF)
        hashes = expect_bytes(hashes, "child hashes", length=HASH_BYTES * bin(bitmap).count("1"))
    except DecodeError as exc:
        raise SnapshotError(f"a malformed tree node: {exc}") from None
    if internal_hash(h, bitmap, [hashes]) != node_hash:
        raise SnapshotError("an internal node does not hash to what its parent promised")
    return bitmap, hashes


@dataclass
class _Pending:
    """An internal node fetched, waiting for its children to be complete on disk."""

    depth: int
    path: bytes
    bitmap: int
    hashes: bytes  # the children's, joined, as the parent's record holds them
    left: int  # children not complete yet
    parent: "_Pending | None"
    nib: int  # this node's place in its parent
    leaves: int = 0  # the children complete on disk that are leaves, as a bitmap
    asked: int = 0  # the children put in a request so far (in nibble order)


def _leave(good: list[int], peer: int) -> None:
    """Drop `peer` from the peers asked (another walker may have dropped it already)."""
    if peer in good:
        good.remove(peer)


class SnapshotSyncer:
    """Fetches the state at a certified height from peers and installs it in the ledger."""

    def __init__(self, ledger: Ledger, fetch: Fetch, *, nodes_per_request: int = NODES_PER_REQUEST_DEFAULT,
                 penalise: Callable[[int, str], None] = lambda peer, why: None) -> None:
        self.ledger = ledger
        self.fetch = fetch
        self.nodes_per_request = nodes_per_request
        self.penalise = penalise
        self._turn = 0
        self.height: int | None = None  # the snapshot's, once chosen
        self.nodes_fetched = 0
        self.nodes_present = 0  # found already on disk (a resumed sync)
        self.bad_answers = 0
        self._check_fast = fetched_node_checker(ledger.suite.hash)

    async def choose(self, peers: list[int], height: int | None = None) -> tuple[Manifest, list[int]] | None:
        """The highest certified offer among `peers` (of block `height`, if given), and the
        peers offering it (or at least that height: their trees there serve the same nodes)."""
        offers: dict[int, Manifest] = {}
        request = pack([1, MANIFEST] if height is None else [1, MANIFEST, height])
        for peer in peers:
            try:
                manifest = await trio.to_thread.run_sync(verify_manifest, self.ledger, await self.fetch(peer, request))
            except FetchFailed as exc:
                log.info("snapshot: no manifest from peer %d: %s", peer, exc)
                continue
            except (SnapshotError, DecodeError, InvalidCertificate, ValueError, TypeError) as exc:
                self._bad(peer, f"its snapshot manifest fails: {exc}")
                continue
            if manifest is not None:
                offers[peer] = manifest
        if height is not None:
            offers = {p: m for p, m in offers.items() if m.height == height}
        if not offers:
            return None
        best = max(offers.values(), key=lambda m: m.height)
        return best, [p for p, m in offers.items() if m.height >= best.height]

    def _bad(self, peer: int, why: str) -> None:
        self.bad_answers += 1
        log.warning("snapshot: peer %d: %s", peer, why)
        self.penalise(peer, why)

    async def fetch_tree(self, manifest: Manifest, peers: list[int]) -> None:
        """Every node of the tree under the manifest's root, verified, on disk.

        REQUESTS_IN_FLIGHT walkers share the walk, each with a request out to the next peer
        in turn: a node's answer is a round trip and the peer's reads, which one request at
        a time left this node idle for (~16 ms a request under load, as long as checking
        its 512 nodes). What they fetched is checked and written one batch at a time, in
        order (`_write_lock`), so a parent is written with or after the writes that hold its
        children: post-order holds on disk, and with it resuming."""
        ledger = self.ledger
        # Only a sync of this same block begun before can have nodes of its tree on disk.
        resumed = ledger.snapshot_pending == manifest.height
        await trio.to_thread.run_sync(ledger.begin_snapshot, manifest.header, manifest.certificate, manifest.tx_count)
        if manifest.header.state_root == EMPTY_ROOT:
            return
        self._height = manifest.height
        # To fetch: the children not asked for yet of internal nodes fetched (the newest
        # last), and first the root, as ([depth, path] as a request asks for it, the hash
        # its parent promised, waiting parent, nibble in it). A node's children are made
        # into asks only when a request takes them: the stack holds a node, not its up to 16
        # children (at 2,048 nodes a request, ~130,000 asks, ~35 MB, at once at 1,000,000
        # accounts).
        self._stack: list = [([0, b""], manifest.header.state_root, None, 0)]
        self._hkey = manifest.height.to_bytes(8, "big")
        self._walking = 0  # walkers with a batch out: their answers may add to the stack
        self._changed = trio.Event()
        self._write_lock = trio.Lock()
        self._error: BaseException | None = None
        self._writes: list[tuple[bytes, bytes]] = []
        good = list(peers)
        async with trio.open_nursery() as nursery:
            for _ in range(max(1, min(REQUESTS_IN_FLIGHT, REQUESTS_PER_PEER * len(good)))):
                nursery.start_soon(self._walker, manifest.height, good, resumed, nursery.cancel_scope)
        if self._error is not None:
            raise self._error
        await self._flush()

    async def _walker(self, height: int, good: list[int], resumed: bool, cancel: trio.CancelScope) -> None:
        try:
            while True:
                stack = self._stack
                if not stack:
                    if not self._walking:
                        self._changed.set()  # the walk is done: wake the others to end too
                        return
                    await self._changed.wait()
                    continue
                batch = self._take(self.nodes_per_request)
                self._walking += 1
                try:
                    await self._fetch_batch(height, batch, good, resumed)
                finally:
                    self._walking -= 1
                    self._changed.set()
                    self._changed = trio.Event()
        except (SnapshotError, DecodeError) as exc:
            self._error = self._error or exc
            cancel.cancel()

    async def _fetch_batch(self, height: int, batch: list, good: list[int], resumed: bool) -> None:
        ledger = self.ledger
        if resumed:
            local = await trio.to_thread.run_sync(lambda: [ledger.store_get(node_key(d, p, height)) for (d, p), *_ in batch])
        else:
            local = [None] * len(batch)
        records_asked = [b for b, r in zip(batch, local) if r is None]
        records = await self._records(height, records_asked, good)
        records.reverse()  # taken from the end, in batch order
        async with self._write_lock:
            stack, writes, hkey, complete = self._stack, self._writes, self._hkey, self._complete
            for ((depth, path), _, parent, nib), record in zip(batch, local):
                if record is not None:  # complete on disk already (a resumed sync)
                    self.nodes_present += 1
                    complete(parent, nib, unpack(record, max_bytes=NODE_RECORD_BYTES_MAX)[0] == 0)
                    continue
                record, internal = records.pop()  # checked by _records already
                if internal is None:  # a leaf
                    writes.append((_DEPTH_KEY[depth] + path + hkey, record))
                    if parent is not None:  # _complete(parent, nib, True), inline: this runs for every leaf
                        parent.leaves |= 1 << nib
                        parent.left -= 1
                        if not parent.left:
                            complete(parent, -1, False)
                    continue
                bitmap, hashes = internal
                stack.append(_Pending(depth, path, bitmap, hashes, bitmap.bit_count(), parent, nib))
            self.nodes_fetched += len(records_asked)
            if len(writes) >= WRITE_REQUESTS * self.nodes_per_request:
                await self._flush()

    def _take(self, n: int) -> list:
        """Up to `n` asks off the stack: the next children of the internal nodes fetched last."""
        stack, batch = self._stack, []
        while stack and len(batch) < n:
            top = stack[-1]
            if type(top) is tuple:  # the root
                batch.append(stack.pop())
                continue
            count = min(top.bitmap.bit_count() - top.asked, n - len(batch))
            push_child_asks(batch, top.depth, top.path, top.bitmap, top.hashes, top, top.asked, count)
            top.asked += count
            if top.asked == top.bitmap.bit_count():
                stack.pop()
        return batch

    async def _flush(self) -> None:
        """Write what was fetched, in the order it completed (under `_write_lock`, or at the
        end): a parent is in the same write as its last children, or a later one."""
        writes, self._writes = self._writes, []
        if writes:
            await trio.to_thread.run_sync(self.ledger.put_tree_nodes, writes)

    def _complete(self, parent: _Pending | None, nib: int, is_leaf: bool) -> None:
        """The child at `nib` of `parent` is complete on disk (nib -1: `parent` has just
        become complete itself): its parent may now be written (post-order)."""
        while parent is not None:
            if nib >= 0:
                parent.leaves |= (1 << nib) if is_leaf else 0
                parent.left -= 1
                if parent.left:
                    return
            record = encode_internal(parent.bitmap, parent.hashes, [self._height] * parent.bitmap.bit_count(), parent.leaves)
            self._writes.append((_DEPTH_KEY[parent.depth] + parent.path + self._hkey, record))
            parent, nib, is_leaf = parent.parent, parent.nib, False

    async def _records(self, height: int, asks: list, good: list[int]) -> list[tuple[bytes, tuple[int, bytes] | None]]:
        """(record, None for a leaf or (bitmap, children's hashes)) of `asks` (([depth, path], hash, ...), ...),
        verified against their hashes, from the peers in `good` in turn (a peer that fails is
        dropped from it)."""
        out: list[tuple[bytes, tuple[int, bytes] | None]] = []
        while len(out) < len(asks):
            if not good:
                raise SnapshotError("every peer offering the snapshot failed; retry later or sync fully (--sync full)")
            peer = good[self._turn % len(good)]
            self._turn += 1
            rest = asks[len(out):]
            try:
                answer = await self.fetch(peer, pack([1, NODES, height, [a[0] for a in rest]]))
                records = expect_list(expect_list(unpack(answer, max_bytes=RESPONSE_BYTES_MAX), "nodes answer", length=2)[1], "records", max_length=len(rest))
                got = await trio.to_thread.run_sync(self._check_all, [a[1] for a in rest], records)
            except FetchFailed as exc:
                log.info("snapshot: peer %d did not answer: %s", peer, exc)
                _leave(good, peer)
                continue
            except (SnapshotError, DecodeError) as exc:
                if peer in good:  # once per peer: other walkers may have had requests out to it too
                    self._bad(peer, f"sent a tree node that fails its check: {exc}")
                _leave(good, peer)
                continue
            out += got
            if len(got) < len(records) or not records:
                _leave(good, peer)  # it lacks a node (pruned, or not that block's tree): others may have it
        return out

    def _check_all(self, hashes: list[bytes], records: list) -> list[tuple[bytes, tuple[int, bytes] | None]]:
        """(record, None for a leaf or (bitmap, the children's hashes)) of the records that are
        there and check, in order, up to the first one missing. The accelerator checks the
        canonical records an honest peer sends; anything else goes to `check_node`, which
        accepts it or says what is wrong."""
        h, fast = self.ledger.suite.hash, self._check_fast
        checked: list = []
        i, n = 0, min(len(hashes), len(records))
        while i < n:
            if fast is not None:
                got, i = fast(hashes, records, i)
                checked += got
                if i == n:
                    break
            record = records[i]
            if record is None:
                break
            if type(record) is not bytes:
                raise SnapshotError("a tree node record is not bytes")
            checked.append(check_node(h, hashes[i], record))
            i += 1
        return list(zip(records, checked))

    async def run(self, peers: Callable[[], list[int]], *, wait_for_peers_s: float = 30.0, peers_wanted: int = 1,
                  settle_s: float = 5.0) -> Manifest | None:
        """Sync from the best offer of the peers `peers()` names; None if none offers one
        within `wait_for_peers_s` (the node then syncs block by block). It waits up to
        `settle_s` for `peers_wanted` peers, so that the tree comes from several of them."""
        started = trio.current_time()
        while len(peers()) < peers_wanted and trio.current_time() < started + settle_s:
            await trio.sleep(0.1)
        while True:
            # A sync begun before goes on with the same block while peers still keep its
            # state: what is on disk is of that block's tree.
            pending = self.ledger.snapshot_pending
            chosen = (await self.choose(peers(), pending) if pending is not None else None) or await self.choose(peers())
            if chosen is not None:
                break
            if trio.current_time() >= started + wait_for_peers_s:
                return None
            await trio.sleep(1.0)
        manifest, offering = chosen
        self.height = manifest.height
        began = time.monotonic()
        log.info("snapshot: syncing the state at block %d from %d peer(s)", manifest.height, len(offering))
        await self.fetch_tree(manifest, offering)
        await trio.to_thread.run_sync(self.ledger.finish_snapshot)
        log.info("snapshot: installed block %d: %d tree nodes fetched, %d already here, in %.1f s",
                 manifest.height, self.nodes_fetched, self.nodes_present, time.monotonic() - began)
        return manifest

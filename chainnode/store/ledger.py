"""The ledger: committed blocks, transactions, receipts, certificates, state and the head,
all in one LevelDB, each block written as ONE synced batch.

Key layout (docs/protocol.md, "Storage"):

    m:format            b"chainnode-ledger/1"           (storage.py)
    m:head              pack([height, block hash])
    m:genesis           genesis block hash (the chain's identity)
    m:genesis_source    SM3 (the suite's hash) of the genesis file's canonical content it was made from
    m:txcount           pack(total committed transactions)
    h:<height:8>        header encoding
    n:<block hash>      height, 8 bytes big-endian
    b:<height:8>        pack([tx hash, ...]) in block order
    l:<height:8>        pack(the highest block_limit of its transactions; 0 for none)
    t:<tx hash>         pack([height, index, tx encoding])
    r:<tx hash>         receipt encoding
    c:<height:8>        commit certificate encoding (none for genesis)
    m:blocks_pruned     pack(B): the bodies (b:, l:, t:, r:) of the blocks below B are deleted
    s:<state key>       state value (state.py)
    z:, x:, y:          the state tree's nodes, roots and stale lists (tree.py)

Because the head moves in the same batch as everything else, a node killed at any instant
reopens at a whole block (DESIGN.md rule 4), and `open` checks that this holds.

A block's body is its transactions and receipts; its header, hash index and certificate are
never deleted, so the headers still chain and still certify the tx and receipt roots.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, pack, unpack
from chainnode.protocol.merkle import MerkleProof, merkle_proof, merkle_root
from chainnode.protocol.stateproof import EMPTY_ROOT, StateProof
from chainnode.protocol.types import (
    ZERO_HASH,
    Block,
    BlockHeader,
    CommitCertificate,
    Receipt,
    Transaction,
)
from chainnode.store.leveldb import StorageError, Store
from chainnode.store.state import STATE_PREFIX, StateStore, next_state_root
from chainnode.store.tree import (
    NODE_PREFIX,
    NODE_RECORD_BYTES_MAX,
    ROOT_PREFIX,
    TreeUpdate,
    decode_ref,
    encode_ref,
    leaves_written_at,
    node_key,
    root_key,
)

HEAD_KEY = b"m:head"
GENESIS_KEY = b"m:genesis"
GENESIS_SOURCE_KEY = b"m:genesis_source"  # the digest of the genesis content block 0 was checked against
TXCOUNT_KEY = b"m:txcount"
STATE_PRUNED_KEY = b"m:state_pruned"  # pack(height): the state trees below it are deleted
BLOCKS_PRUNED_KEY = b"m:blocks_pruned"  # pack(height): the first height whose body is kept
LIMIT_PREFIX = b"l:"  # l:<height:8>: the highest block_limit of the block's transactions
SNAPSHOT_KEY = b"m:snapshot"  # a snapshot sync under way: pack([header, certificate, tx count])
# A snapshot installed, the blocks before it that replays need not fetched yet (blocksync/recent.py).
RECENT_BODIES_KEY = b"m:recent_bodies"
FLAT_STATE_BATCH = 10_000  # keys per batch when the flat state is rewritten from a snapshot's tree
# Past states kept for proofs (`[storage] state_history_blocks`; 0 keeps all: an archive node).
STATE_HISTORY_BLOCKS_DEFAULT = 10_000
# Past block bodies kept (`[storage] block_history_blocks`; 0 keeps all: an archive of blocks).
BLOCK_HISTORY_BLOCKS_DEFAULT = 0
# Heights of old trees, and of old bodies, one block's batch deletes at most: pruning catches
# up after a setting is lowered without making any one block's write much bigger.
PRUNE_HEIGHTS_PER_BLOCK_MAX = 4


def _h(height: int) -> bytes:
    return height.to_bytes(8, "big")


def _batches(items, size: int):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


class StateNotKept(LookupError):
    """The state at that height cannot be proven here; the message says why and what is kept."""


def block_not_kept_message(height: int, oldest: int) -> str:
    """What a node says when asked for the body of a block it does not keep."""
    return (f"block {height}'s transactions and receipts are not kept on this node: it keeps block bodies from block {oldest} on "
            "(older ones are pruned, [storage] block_history_blocks, or were never here: it started from a snapshot); "
            "its header and certificate are kept: ask with onlyHeader=true, or ask an archive node for the body")


def header_not_kept_message(height: int, oldest: int) -> str:
    """What a node that started from a snapshot says when asked for a block it never had."""
    return (f"block {height} is not on this node: it started from a snapshot and holds block 0 and the blocks from {oldest} on; "
            "ask an archive node for older blocks")


@dataclass(frozen=True, slots=True)
class TxLocation:
    height: int
    index: int


class Ledger:
    """Open with `Ledger.open(data_dir, suite)`; close when done (or use `with`)."""

    def __init__(self, store: Store, suite: CryptoSuite, *, state_history_blocks: int = STATE_HISTORY_BLOCKS_DEFAULT,
                 block_history_blocks: int = BLOCK_HISTORY_BLOCKS_DEFAULT) -> None:
        self.suite = suite
        self._store = store
        self.state_history_blocks = state_history_blocks
        assert block_history_blocks >= 0, "block_history_blocks: 0 keeps every body, N keeps the newest N"
        self.block_history_blocks = block_history_blocks
        self.head_height: int = -1  # -1: no genesis yet
        self.head_hash: bytes = ZERO_HASH
        self.head_header: BlockHeader | None = None
        self.total_tx_count = 0
        self._load_head()
        self.state = StateStore(store, suite, self.head_height)

    @classmethod
    def open(cls, data_dir: str | os.PathLike, suite: CryptoSuite, *, create: bool = True,
             state_history_blocks: int = STATE_HISTORY_BLOCKS_DEFAULT, block_history_blocks: int = BLOCK_HISTORY_BLOCKS_DEFAULT) -> "Ledger":
        store = Store(data_dir, create=create)
        try:
            return cls(store, suite, state_history_blocks=state_history_blocks, block_history_blocks=block_history_blocks)
        except BaseException:
            store.close()
            raise

    def close(self) -> None:
        self._store.close()

    def __enter__(self) -> "Ledger":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- opening checks -----------------------------------------------------------------

    def _load_head(self) -> None:
        raw = self._store.get(HEAD_KEY)
        if raw is None:
            if not self._store.is_empty:
                raise StorageError(f"{self._store.data_dir}: the chain database has data but no head; it is corrupt")
            return
        where = self._store.data_dir
        try:
            fields = expect_list(unpack(raw, max_bytes=64), "head", length=2)
            height = expect_int(fields[0], "head height")
            block_hash = expect_bytes(fields[1], "head hash", length=32)
            header = self.get_header(height)
            genesis = self._store.get(GENESIS_KEY)
            count = unpack(self._store.get(TXCOUNT_KEY) or b"", max_bytes=16)
        except DecodeError as exc:
            raise StorageError(f"{where}: the chain database is corrupt ({exc}); restore a backup or resync") from None
        if header is None or header.hash(self.suite) != block_hash:
            raise StorageError(
                f"{where}: the head block {height} does not match its stored header; the database is corrupt "
                "or was written with another crypto suite (check the genesis suite)"
            )
        if genesis is None or (height > 0 and self._store.get(b"c:" + _h(height)) is None):
            raise StorageError(f"{where}: the head block {height} has no commit certificate or genesis; corrupt")
        self.head_height, self.head_hash, self.head_header = height, block_hash, header
        self.total_tx_count = count

    # ---- reads --------------------------------------------------------------------------

    @property
    def genesis_hash(self) -> bytes | None:
        return self._store.get(GENESIS_KEY)

    @property
    def genesis_source(self) -> bytes | None:
        return self._store.get(GENESIS_SOURCE_KEY)

    def set_genesis_source(self, digest: bytes) -> None:
        """Record that block 0 here is the one made from the genesis content of this digest."""
        self._store.write_batch([(GENESIS_SOURCE_KEY, digest)])

    def snapshot(self):
        """The database as of now, whole blocks only (chainnode/rpc/headview.py reads it)."""
        return self._store.snapshot()

    def get_header(self, height: int) -> BlockHeader | None:
        raw = self._store.get(b"h:" + _h(height))
        return None if raw is None else BlockHeader.decode(raw)

    def get_height_by_hash(self, block_hash: bytes) -> int | None:
        raw = self._store.get(b"n:" + block_hash)
        return None if raw is None else int.from_bytes(raw, "big")

    def get_block_tx_hashes(self, height: int) -> list[bytes] | None:
        raw = self._store.get(b"b:" + _h(height))
        return None if raw is None else unpack(raw, max_bytes=64 << 20)

    def get_block(self, height: int) -> Block | None:
        """The whole block; None without its body (pruned, or before a snapshot this node
        started from), also when a commit prunes it during the read."""
        header = self.get_header(height)
        hashes = self.get_block_tx_hashes(height)
        if header is None or hashes is None:
            return None
        found = [self.get_transaction(h) for h in hashes]
        if None in found:
            return None
        return Block(header=header, transactions=[tx for tx, _ in found])

    def get_transaction(self, tx_hash: bytes) -> tuple[Transaction, TxLocation] | None:
        raw = self._store.get(b"t:" + tx_hash)
        if raw is None:
            return None
        height, index, tx_raw = unpack(raw, max_bytes=8 << 20)
        return Transaction.decode(tx_raw), TxLocation(height, index)

    def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        raw = self._store.get(b"r:" + tx_hash)
        return None if raw is None else Receipt.decode(raw)

    def get_certificate(self, height: int) -> CommitCertificate | None:
        raw = self._store.get(b"c:" + _h(height))
        return None if raw is None else CommitCertificate.decode(raw)

    def transaction_proof(self, tx_hash: bytes) -> tuple[MerkleProof, int] | None:
        """A proof that `tx_hash` is in its block's tx root, and the block height."""
        found = self.get_transaction(tx_hash)
        if found is None:
            return None
        _, loc = found
        hashes = self.get_block_tx_hashes(loc.height)
        if hashes is None:  # pruned since the read above
            return None
        return merkle_proof(hashes, loc.index, self.suite.name), loc.height

    def receipt_proof(self, tx_hash: bytes) -> tuple[MerkleProof, int] | None:
        """A proof that the receipt of `tx_hash` is in its block's receipt root."""
        found = self.get_transaction(tx_hash)
        if found is None:
            return None
        _, loc = found
        leaves = [self._store.get(b"r:" + h) for h in self.get_block_tx_hashes(loc.height) or []]
        if not leaves or None in leaves:  # pruned since the read above
            return None
        return merkle_proof(leaves, loc.index, self.suite.name), loc.height

    def state_proof(self, key: bytes, height: int) -> StateProof:
        """A proof of `key`'s value (or absence) in the state after block `height`, against
        that block's header. `StateNotKept` if this node cannot give one."""
        header = self.get_header(height)
        if header is None:
            raise StateNotKept(f"block {height} is not on this node; the chain is at height {self.head_height}")
        if header.version < 2:
            raise StateNotKept(f"block {height} predates the state tree (header version 1, from before compatibility_version 0.3.0): "
                               "its state root proves no single key; ask for a later block")
        raw = self._store.get(root_key(height))
        if raw is None:
            raise StateNotKept(f"the state at block {height} is pruned on this node; it keeps the state from block "
                               f"{self.oldest_state_height()} on (ask an archive node for older state)")
        return self.state.tree.prove(self.suite.name, key, decode_ref(raw))

    def state_root_ref(self, height: int):
        """Where the state tree of block `height` is rooted (None: an empty tree, or none kept)."""
        raw = self._store.get(root_key(height))
        return None if raw is None else decode_ref(raw)

    def store_get(self, key: bytes) -> bytes | None:
        """A raw read (tree nodes for snapshot sync: immutable once written)."""
        return self._store.get(key)

    # ---- installing a snapshot (chainnode/blocksync/snapshot.py) ----------------------------

    @property
    def snapshot_pending(self) -> int | None:
        """The height of a snapshot sync begun and not finished in this directory, if any."""
        raw = self._store.get(SNAPSHOT_KEY)
        return None if raw is None else BlockHeader.decode(unpack(raw, max_bytes=1 << 20)[0]).height

    def begin_snapshot(self, header: BlockHeader, certificate: CommitCertificate, tx_count: int) -> None:
        """Record the certified block whose state is being fetched (a restart goes on).
        The fetched tree is written as if by that block: z:<position><its height>."""
        if self.head_height > 0:
            raise StorageError(f"{self._store.data_dir} already holds blocks up to {self.head_height}; a snapshot starts from genesis only")
        self._store.write_batch([(SNAPSHOT_KEY, pack([header.encode(), certificate.encode(), tx_count]))])

    def put_tree_nodes(self, nodes: list[tuple[bytes, bytes]]) -> None:
        self._store.write_batch(nodes)

    def finish_snapshot(self) -> None:
        """Make the fetched tree the state and its block the head: the flat state is
        rewritten from the tree's leaves, then one synced batch moves the head (until then
        the flat state stays genesis's, to whatever reads it at block 0, and a restart
        finds it so)."""
        raw = self._store.get(SNAPSHOT_KEY)
        assert raw is not None, "no snapshot sync was begun"
        header_raw, cert_raw, tx_count = unpack(raw, max_bytes=1 << 20)
        header = BlockHeader.decode(header_raw)
        root = None
        if header.state_root != EMPTY_ROOT:
            top = self._store.get(node_key(0, b"", header.height))
            assert top is not None, "finish_snapshot before the whole tree is fetched"
            root = (header.state_root, header.height, unpack(top, max_bytes=NODE_RECORD_BYTES_MAX)[0] == 0)
        for batch in _batches((k for k, _ in self._store.iterate(STATE_PREFIX)), FLAT_STATE_BATCH):
            self._store.write_batch([], batch)
        # Every node of this height here is of the snapshot's tree (snapshot sync writes only
        # nodes it checked against it, each as written at its height), and the tree is whole.
        nodes = self._store.iterate(NODE_PREFIX)
        try:
            for batch in _batches(((STATE_PREFIX + k, v) for k, v in leaves_written_at(nodes, header.height)), FLAT_STATE_BATCH):
                self._store.write_batch(batch)
        finally:
            nodes.close()
        height, block_hash = header.height, header.hash(self.suite)
        self._store.write_batch([
            (b"h:" + _h(height), header_raw), (b"n:" + block_hash, _h(height)), (b"c:" + _h(height), cert_raw),
            (root_key(height), encode_ref(root)), (STATE_PRUNED_KEY, pack(height)), (TXCOUNT_KEY, pack(tx_count)),
            (BLOCKS_PRUNED_KEY, pack(height + 1)),  # no body of this block or any before it is here
            (RECENT_BODIES_KEY, b""),
            (HEAD_KEY, pack([height, block_hash])),
        ], [SNAPSHOT_KEY])
        self._load_head()
        self.state = StateStore(self._store, self.suite, self.head_height)

    @property
    def recent_bodies_pending(self) -> bool:
        """A snapshot was installed and the blocks before it whose transactions could still
        be replayed are not all here yet: this node cannot tell a replay from a new one."""
        return self._store.get(RECENT_BODIES_KEY) is not None

    def put_recent_blocks(self, blocks: list[tuple[Block, CommitCertificate]]) -> None:
        """Store consecutive blocks that end just below the oldest block held, without
        receipts (a snapshot node's replay protection: their transactions' records t:).
        Raises ValueError, writing nothing, unless the last one's hash is the hash its
        header here has (the snapshot's block), or else the parent hash of the oldest block
        held, and each block's transactions match its header."""
        suite = self.suite
        oldest = self.oldest_block_height()
        own, above = self.get_header(oldest - 1), self.get_header(oldest)
        if own is not None:
            expected = own.hash(suite)
        elif above is not None:
            expected = above.parent_hash
        else:
            raise ValueError(f"no header at {oldest - 1} or {oldest} to chain blocks to")
        if not blocks:
            raise ValueError("no blocks")
        puts: list[tuple[bytes, bytes]] = []
        for block, cert in reversed(blocks):
            header = block.header
            height, block_hash = header.height, header.hash(suite)
            if height != oldest - 1 or block_hash != expected:
                raise ValueError(f"block {height} is not the block {oldest - 1} that block {oldest} here builds on")
            if cert.height != height or cert.block_hash != block_hash:
                raise ValueError(f"block {height}'s certificate is for another block")
            tx_hashes = [tx.hash(suite) for tx in block.transactions]
            if header.tx_count != len(tx_hashes) or merkle_root(tx_hashes, suite.hash) != header.tx_root:
                raise ValueError(f"block {height}'s transactions do not match its tx root")
            hkey = _h(height)
            puts += [(b"h:" + hkey, header.encode()), (b"n:" + block_hash, hkey), (b"c:" + hkey, cert.encode()),
                     (b"b:" + hkey, pack(tx_hashes)),
                     (LIMIT_PREFIX + hkey, pack(max((tx.block_limit for tx in block.transactions), default=0)))]
            puts += [(b"t:" + h, pack([height, i, tx.encode()])) for i, (h, tx) in enumerate(zip(tx_hashes, block.transactions))]
            oldest, expected = height, header.parent_hash
        puts.append((BLOCKS_PRUNED_KEY, pack(oldest)))
        self._store.write_batch(puts)

    def finish_recent_bodies(self) -> None:
        self._store.write_batch([], [RECENT_BODIES_KEY])

    def oldest_state_height(self) -> int | None:
        """The oldest height whose state tree this node keeps (None: no tree yet)."""
        return self._first_height(ROOT_PREFIX)

    def oldest_block_height(self) -> int:
        """The first height whose body (transactions, receipts) this node keeps: the bodies
        below it are pruned, or were never here (a snapshot sync's block and those before
        it). The head + 1 when it keeps none; 0 on an archive of blocks."""
        raw = self._store.get(BLOCKS_PRUNED_KEY)
        if raw is not None:
            return expect_int(unpack(raw, max_bytes=16), "the pruning mark (m:blocks_pruned)")
        if self.head_height < 1 or self._store.get(b"b:" + _h(1)) is not None:
            return 0  # no mark and block 1's body: nothing was pruned
        # A snapshot installed by a build that set no mark: the bodies after block 0's begin
        # after its block.
        first = self._first_height(b"b:", above=0)
        return self.head_height + 1 if first is None else first

    def oldest_header_height(self) -> int:
        """The first height after block 0 whose header is here: 1, unless this node started
        from a snapshot (it never had the blocks before the oldest it fetched to refuse
        replays); the head + 1 when it holds none after block 0. Headers are never pruned."""
        if self.head_height < 1 or self._store.get(b"h:" + _h(1)) is not None:
            return 1
        first = self._first_height(b"h:", above=0)
        return self.head_height + 1 if first is None else first

    def _first_height(self, prefix: bytes, above: int = -1) -> int | None:
        keys = self._store.iterate(prefix)
        try:
            for k, _ in keys:
                height = int.from_bytes(k[len(prefix):], "big")
                if height > above:
                    return height
            return None
        finally:
            keys.close()

    # ---- the one write per block --------------------------------------------------------

    def commit_block(
        self,
        block: Block,
        receipts: list[Receipt],
        certificate: CommitCertificate | None,
        state_writes: Mapping[bytes, bytes | None],
        tree_update: TreeUpdate | None = None,
    ) -> None:
        """Make `block` the new head, with everything it changes, in one synced batch.

        The caller (consensus or sync) has already checked the certificate against the
        sealer set; here we assert the block is internally whole: it extends the head, its
        roots match its transactions, receipts and writes. A mismatch is a bug upstream.
        `tree_update` is the state tree after `state_writes` as execution computed it
        (header version 2); without it, it is computed here.
        """
        suite = self.suite
        header = block.header
        height = header.height
        block_hash = header.hash(suite)
        expected_height = self.head_height + 1
        if height != expected_height:
            raise ValueError(f"block {height} does not extend head {self.head_height}")
        if header.parent_hash != (self.head_hash if height > 0 else ZERO_HASH):
            raise ValueError(f"block {height} does not build on the head's hash")
        if height == 0:
            if certificate is not None:
                raise ValueError("the genesis block has no commit certificate")
        elif certificate is None or certificate.height != height or certificate.block_hash != block_hash:
            raise ValueError(f"block {height} needs a commit certificate for its own hash")
        if len(receipts) != len(block.transactions) or header.tx_count != len(block.transactions):
            raise ValueError(f"block {height}: {len(block.transactions)} transactions, {len(receipts)} receipts")

        tx_raws = [tx.encode() for tx in block.transactions]
        tx_hashes = [suite.hash(tx.signing_bytes()) for tx in block.transactions]
        receipt_raws = [r.encode() for r in receipts]
        if len(set(tx_hashes)) != len(tx_hashes):
            raise ValueError(f"block {height}: a transaction appears twice")
        if merkle_root(tx_hashes, suite.hash) != header.tx_root:
            raise ValueError(f"block {height}: tx root does not match its transactions")
        if merkle_root(receipt_raws, suite.hash) != header.receipt_root:
            raise ValueError(f"block {height}: receipt root does not match its receipts")
        if header.version >= 2:
            if tree_update is None:
                tree_update = self.state.tree_update(height, state_writes)
            if tree_update.height != height or tree_update.root != header.state_root:
                raise ValueError(f"block {height}: state root does not match the state tree after its writes")
        else:
            tree_update = None
            parent_root = self.head_header.state_root if self.head_header is not None else ZERO_HASH
            if next_state_root(suite, parent_root, state_writes) != header.state_root:
                raise ValueError(f"block {height}: state root does not match its writes")
        for receipt, tx_hash in zip(receipts, tx_hashes):
            if receipt.tx_hash != tx_hash:
                raise ValueError(f"block {height}: receipts are not in transaction order")

        hkey = _h(height)
        puts, deletes = self.state.batch_ops(state_writes)
        if tree_update is not None:
            puts += tree_update.batch_ops()
            if height > 0 and not self.state.tree.head_has_tree:
                # The chain's first tree (an upgraded chain): nothing below it to prune.
                puts.append((STATE_PRUNED_KEY, pack(height - 1)))
            elif self.state_history_blocks > 0:
                pruned = unpack(self._store.get(STATE_PRUNED_KEY) or pack(0), max_bytes=16)
                # (At least the parent's tree is kept: this block's own stale list is not on disk yet.)
                keep_from = height - max(2, self.state_history_blocks) + 1
                old, now_pruned = self.state.tree.prune_ops(keep_from, pruned, PRUNE_HEIGHTS_PER_BLOCK_MAX)
                if now_pruned != pruned:
                    deletes += old
                    puts.append((STATE_PRUNED_KEY, pack(now_pruned)))
        puts.append((b"h:" + hkey, header.encode()))
        puts.append((b"n:" + block_hash, hkey))
        puts.append((b"b:" + hkey, pack(tx_hashes)))
        puts.append((LIMIT_PREFIX + hkey, pack(max((tx.block_limit for tx in block.transactions), default=0))))
        if self.block_history_blocks > 0:
            old, marks = self._body_prune_ops(height)
            deletes += old
            puts += marks
        for index, (tx_hash, tx_raw, receipt_raw) in enumerate(zip(tx_hashes, tx_raws, receipt_raws)):
            puts.append((b"t:" + tx_hash, pack([height, index, tx_raw])))
            puts.append((b"r:" + tx_hash, receipt_raw))
        if certificate is not None:
            puts.append((b"c:" + hkey, certificate.encode()))
        if height == 0:
            puts.append((GENESIS_KEY, block_hash))
        total = self.total_tx_count + len(tx_raws)
        puts.append((TXCOUNT_KEY, pack(total)))
        puts.append((HEAD_KEY, pack([height, block_hash])))
        self._store.write_batch(puts, deletes)

        self.state.applied(state_writes, height, tree_update)
        self.head_height, self.head_hash, self.head_header = height, block_hash, header
        self.total_tx_count = total

    def _body_prune_ops(self, height: int) -> tuple[list[bytes], list[tuple[bytes, bytes]]]:
        """Block `height`'s share of deleting old bodies (`block_history_blocks`): the deletes,
        and the puts that go with them (the new mark; the l: record of a block it waits for).

        The newest `block_history_blocks` bodies stay (from the retain height, `height` -
        `block_history_blocks` + 1, on). An older one may still have to wait, for replay
        protection: a transaction is refused a second time because its record t:<hash> is
        found (Chain.is_committed, the pool), so that record must stay while a later block
        could still hold the transaction. A block at height H may hold a transaction only if
        H <= its block_limit (the executor refuses any other, and the pool refuses one whose
        block_limit is not above the head), and the block_limit is fixed in the signed
        transaction: the window (block_limit_window, which governance may change) only
        bounds how far ahead it may be set, so it never enters. This batch makes block
        `height` the head; the head before it is `height` - 1, and the pool and RPC may read
        that head until the batch lands. So a body goes only once every one of its
        transactions has block_limit <= height - 1: expired for the pool at either head, and
        for every block from `height` on. l:<height> holds the highest block_limit of a
        block's transactions, so that this costs one read per height. Bodies go in height
        order behind one mark, so a block held back holds back the ones after it, at most
        until its block_limit passes (at most the window after it was committed)."""
        first = self.oldest_block_height()
        stop = min(height - self.block_history_blocks + 1, first + PRUNE_HEIGHTS_PER_BLOCK_MAX)
        deletes: list[bytes] = []
        puts: list[tuple[bytes, bytes]] = []
        p = first
        while p < stop:
            hkey = _h(p)
            hashes = self.get_block_tx_hashes(p)
            if hashes is not None:
                raw = self._store.get(LIMIT_PREFIX + hkey)
                limit = unpack(raw, max_bytes=16) if raw is not None else self._highest_block_limit(hashes)
                if limit > height - 1:
                    if raw is None:  # a block from before l: records: computed once, kept for the next blocks
                        puts.append((LIMIT_PREFIX + hkey, pack(limit)))
                    break
                deletes += [b"b:" + hkey, LIMIT_PREFIX + hkey, *(b"t:" + h for h in hashes), *(b"r:" + h for h in hashes)]
            p += 1
        if p != first:
            puts.append((BLOCKS_PRUNED_KEY, pack(p)))
        return deletes, puts

    def _highest_block_limit(self, tx_hashes: list[bytes]) -> int:
        """The highest block_limit of these committed transactions (a block with no l: record)."""
        found = [self.get_transaction(h) for h in tx_hashes]
        assert None not in found, "a block's body is partly missing: the database is corrupt (chainnode db verify)"
        return max((tx.block_limit for tx, _ in found), default=0)

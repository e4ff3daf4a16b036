"""`chainnode db verify`: recompute what a stopped node's data directory commits to, from
its records alone, and name every record that does not hold.

For each block from 0 to the head:
- its header decodes, is at its height, is indexed by its hash (`n:`) and builds on the
  block before it (block 0: on nothing, and it is the chain's genesis `m:genesis`);
- its commit certificate (none for block 0) is for it and verifies against the sealer set
  its header names (`sealer_set`: the `sys/sset/<hash>` state entries, read by the caller
  through chainnode/system/state.py);
- its transactions hash to the tx root, each has its index record at its place and a valid
  signature; its receipts, in transaction order, hash to the receipt root and their gas
  adds up to the header's; its l: record is its transactions' highest block_limit. Below
  the pruning mark (`Ledger.oldest_block_height`, `[storage] block_history_blocks`) the
  bodies are gone by design: those blocks are checked up to here, and count the
  transactions their headers certify.
A node that started from a snapshot at block S holds block 0 whole, no record of the
blocks after it up to the oldest one it fetched before S for replay protection
(chainnode/blocksync/recent.py; they are expected absent, and checked to be: no leftover
record of theirs), then every block from there to the head. Those fetched, up to S, hold
their transactions without receipts; their certificates verify as any others, since the
state keeps every sealer set the chain has used (sys/sset/). See `_SnapshotLayout`.
Then the head record and the transaction count, that no block record lies beyond the head
and that there are exactly as many index records as blocks and transactions; and the state
(`_verify_state`): its bounds, and the state tree against the head's state root.

It reads block by block, in bounded memory, and keeps the first PROBLEMS_KEPT problems
(counting the rest).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, unpack
from chainnode.protocol.merkle import merkle_root
from chainnode.protocol.stateproof import EMPTY_ROOT, internal_hash, leaf_hash
from chainnode.protocol.types import ZERO_HASH, BlockHeader, CommitCertificate, InvalidCertificate, Receipt, Transaction
from chainnode.store.ledger import GENESIS_KEY, HEAD_KEY, LIMIT_PREFIX, RECENT_BODIES_KEY, STATE_PRUNED_KEY, TXCOUNT_KEY, Ledger
from chainnode.store.state import STATE_KEY_BYTES_MAX, STATE_PREFIX, STATE_VALUE_BYTES_MAX
from chainnode.store.tree import NODE_RECORD_BYTES_MAX, StateTree, decode_ref, root_key

PROBLEMS_KEPT = 1000

# The (public keys, weights) of the sealer set with this hash, or None if the state has none.
SealerSets = Callable[[bytes], tuple[list[bytes], list[int]] | None]


@dataclass
class Report:
    head_height: int
    blocks: int = 0  # the blocks held, each checked
    transactions: int = 0  # in the bodies checked
    bodies_from: int = 0  # the first block whose body is kept (and checked)
    pruned_transactions: int = 0  # in the blocks below it, as their headers say
    # A node that started from a snapshot: block 0, then the blocks from `headers_from` on
    # (1 when none is absent); blocks without_receipts_from..without_receipts_to (none when
    # the first is above the second) hold their transactions without receipts.
    from_snapshot: bool = False
    headers_from: int = 1
    without_receipts_from: int = 0
    without_receipts_to: int = -1
    without_receipts_transactions: int = 0
    absent_transactions: int = 0  # in the blocks never here, by the transaction count (m:txcount)
    recent_bodies_pending: bool = False  # m:recent_bodies: it has not fetched all it needs before its snapshot yet
    problems: list[str] = field(default_factory=list)
    problems_total: int = 0

    @property
    def ok(self) -> bool:
        return self.problems_total == 0

    def add(self, problem: str) -> None:
        self.problems_total += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(problem)


def _h(height: int) -> bytes:
    return height.to_bytes(8, "big")


def verify(ledger: Ledger, sealer_set: SealerSets, *, progress: Callable[[int], None] | None = None) -> Report:
    """Check every block held, the head and the state of `ledger`; `progress(height)` after each block."""
    report = Report(ledger.head_height)
    try:
        report.bodies_from = ledger.oldest_block_height()
    except DecodeError as exc:
        report.add(f"the pruning mark (m:blocks_pruned) does not decode ({exc}); checking every block's body")
    if not 0 <= report.bodies_from <= ledger.head_height + 1:
        report.add(f"the pruning mark (m:blocks_pruned) says block {report.bodies_from}, beyond the head block {ledger.head_height} + 1")
        report.bodies_from = 0
    snapshot = ledger.snapshot()
    try:
        checker = _BlockChecker(ledger, snapshot, sealer_set, report)
        if report.bodies_from > 0 and snapshot.get(b"b:" + _h(0)) is not None:
            checker.without_receipts_max = _snapshot_layout(snapshot, report)
        parent: BlockHeader | None = None
        for height in (0, *range(report.headers_from, ledger.head_height + 1)) if ledger.head_height >= 0 else ():
            if height == report.headers_from and height > 1:
                parent = None  # block headers_from - 1 was never here: nothing to chain block headers_from to
            parent = checker.block(height, parent, has_body=height >= report.bodies_from or (height == 0 and report.from_snapshot))
            report.blocks += 1
            if progress is not None:
                progress(height)
        _verify_head(snapshot, ledger, report)
        _verify_indexes(snapshot, ledger.head_height, report)
    finally:
        snapshot.close()
    for problem in _verify_state(ledger, ledger.head_header):
        report.add(problem)
    return report


_ABSENT_BLOCK_RECORDS = ((b"c:", "commit certificate"), (b"b:", "list of transactions"), (LIMIT_PREFIX, "highest block_limit"))


def _snapshot_layout(snapshot: Any, report: Report) -> int:
    """What a ledger that started from a snapshot holds, into `report`; returns the highest
    block that may hold its transactions without receipts.

    Such a ledger keeps block 0 whole below its pruning mark, which no other does: pruning
    deletes bodies from block 0 up, while a snapshot's mark starts above the blocks it
    never had (Ledger.finish_snapshot, put_recent_blocks). After block 0 it holds the
    blocks from the oldest one it fetched before its snapshot (`headers_from`) and none
    between, so a record there is a leftover. The fetched ones, the lowest bodies, have no
    receipts, up to the snapshot's block S: at most m:state_pruned, which was S when the
    state was installed and only rises (as past states are pruned)."""
    report.from_snapshot = True
    report.recent_bodies_pending = snapshot.get(RECENT_BODIES_KEY) is not None
    head = report.head_height
    with snapshot.iterator(start=b"h:" + _h(1), stop=b"h:" + _h(head + 1), include_value=False) as keys:
        first = next(keys, None)
    low = report.headers_from = head + 1 if first is None else int.from_bytes(first[2:10], "big")
    for prefix, what in _ABSENT_BLOCK_RECORDS if low > 1 else ():
        with snapshot.iterator(start=prefix + _h(1), stop=prefix + _h(low), include_value=False) as keys:
            found = next(keys, None)
        if found is not None:
            height = int.from_bytes(found[2:10], "big")
            report.add(f"block {height}: its {what} ({prefix.decode()}{height}) is here, but not its header; a node that started "
                       f"from a snapshot holds no block between 0 and block {low}, its oldest header")
    if report.bodies_from < low:
        report.add(f"the pruning mark (m:blocks_pruned) says block bodies from block {report.bodies_from} on, "
                   f"but the headers after block 0 begin at block {low}")
    raw = snapshot.get(STATE_PRUNED_KEY)
    try:
        return -1 if raw is None else expect_int(unpack(raw, max_bytes=16), "state pruning mark")
    except DecodeError as exc:
        report.add(f"the state pruning mark (m:state_pruned) does not decode ({exc}); checking that every body has its receipts")
        return -1


class _BlockChecker:
    def __init__(self, ledger: Ledger, snapshot: Any, sealer_set: SealerSets, report: Report) -> None:
        self.suite = ledger.suite
        self.get = snapshot.get
        self.sealer_set = sealer_set
        self.report = report
        self._sets: dict[bytes, tuple[list[bytes], list[int]] | None] = {}  # a chain uses few sets, over many blocks
        self.without_receipts_max = -1  # the highest block that may hold transactions without receipts (_snapshot_layout)
        self.receipts_seen = False  # a block with receipts was checked

    def block(self, height: int, parent: BlockHeader | None, has_body: bool = True) -> BlockHeader | None:
        """Check block `height` (its parent's header, if that was readable), and its body
        unless it is below the pruning mark; returns its header."""
        header = self._header(height)
        if header is None:
            # Nothing to check its body against; its transactions still count, so that the
            # totals below blame only what is wrong.
            if has_body:
                tx_hashes = self._tx_hashes(height) or []
                self.report.transactions += len(tx_hashes)
                self._fetched_without_receipts(height, [self.get(b"r:" + tx_hash) for tx_hash in tx_hashes])
            return None
        block_hash = header.hash(self.suite)
        problem = self.report.add
        if self.get(b"n:" + block_hash) != _h(height):
            problem(f"block {height}: its hash has no index record (n:{block_hash.hex()[:16]}…) pointing at it")
        if height == 0:
            if header.parent_hash != ZERO_HASH:
                problem("block 0: its parent hash is not zero")
            if self.get(GENESIS_KEY) != block_hash:
                problem("block 0: its hash is not the chain's genesis hash (m:genesis)")
        elif parent is not None:
            if header.parent_hash != parent.hash(self.suite):
                problem(f"block {height}: its parent hash is not block {height - 1}'s hash")
            if header.timestamp_ms < parent.timestamp_ms:
                problem(f"block {height}: its timestamp is before block {height - 1}'s")
        self._certificate(height, header, block_hash)
        if has_body:
            self._body(height, header)
        else:
            self.report.pruned_transactions += header.tx_count
        return header

    def _header(self, height: int) -> BlockHeader | None:
        raw = self.get(b"h:" + _h(height))
        if raw is None:
            self.report.add(f"block {height}: its header is missing (h:{height})")
            return None
        try:
            header = BlockHeader.decode(raw)
        except DecodeError as exc:
            self.report.add(f"block {height}: its header does not decode ({exc})")
            return None
        if header.height != height:
            self.report.add(f"block {height}: the header stored at its height is block {header.height}'s")
            return None
        return header

    def _certificate(self, height: int, header: BlockHeader, block_hash: bytes) -> None:
        problem = self.report.add
        sealers = self._sealers(height, header)
        raw = self.get(b"c:" + _h(height))
        if height == 0:
            if raw is not None:
                problem("block 0: it has a commit certificate (the genesis has none)")
            return
        if raw is None:
            problem(f"block {height}: its commit certificate is missing (c:{height})")
            return
        try:
            certificate = CommitCertificate.decode(raw)
        except DecodeError as exc:
            problem(f"block {height}: its commit certificate does not decode ({exc})")
            return
        if (certificate.height, certificate.block_hash) != (height, block_hash):
            problem(f"block {height}: its commit certificate is for another block")
        elif sealers is not None:
            try:
                certificate.verify(self.suite, *sealers)
            except InvalidCertificate as exc:
                problem(f"block {height}: its commit certificate does not verify against the sealer set its header names: {exc}")

    def _sealers(self, height: int, header: BlockHeader) -> tuple[list[bytes], list[int]] | None:
        try:
            if header.sealer_set_hash not in self._sets:
                self._sets[header.sealer_set_hash] = self.sealer_set(header.sealer_set_hash)
            sealers = self._sets[header.sealer_set_hash]
        except (DecodeError, ValueError) as exc:
            self.report.add(f"block {height}: the sealer set its header names does not decode ({exc})")
            return None
        if sealers is None:
            self.report.add(f"block {height}: the sealer set its header names (sys/sset/{header.sealer_set_hash.hex()[:16]}…) is not in the state")
        elif not header.proposer_index < len(sealers[0]):
            self.report.add(f"block {height}: its proposer index {header.proposer_index} is not in its sealer set of {len(sealers[0])}")
        return sealers

    def _body(self, height: int, header: BlockHeader) -> None:
        tx_hashes = self._tx_hashes(height)
        if tx_hashes is None:
            return
        problem = self.report.add
        if len(tx_hashes) != header.tx_count:
            problem(f"block {height}: it lists {len(tx_hashes)} transactions, its header says {header.tx_count}")
        if merkle_root(tx_hashes, self.suite.hash) != header.tx_root:
            problem(f"block {height}: its transactions do not hash to its tx root")
        limits = [self._transaction(height, index, tx_hash) for index, tx_hash in enumerate(tx_hashes)]
        self.report.transactions += len(tx_hashes)
        self._limit(height, limits)
        receipts = [self.get(b"r:" + tx_hash) for tx_hash in tx_hashes]
        if self._fetched_without_receipts(height, receipts):
            return
        gas = [self._receipt(height, index, tx_hash, raw) for index, (tx_hash, raw) in enumerate(zip(tx_hashes, receipts))]
        if None in receipts:
            return  # each missing one is reported; the root cannot be recomputed
        if merkle_root(receipts, self.suite.hash) != header.receipt_root:
            problem(f"block {height}: its receipts do not hash to its receipt root")
        if None not in gas and sum(gas) != header.gas_used:  # (a receipt that does not decode is reported already)
            problem(f"block {height}: its receipts used {sum(gas)} gas, its header says {header.gas_used}")

    def _fetched_without_receipts(self, height: int, receipts: list[bytes | None]) -> bool:
        """Whether block `height` is one a snapshot node fetched before its snapshot, without
        receipts: they are the lowest bodies, up to `without_receipts_max` at most, so once
        a block has receipts every later one must (a block without transactions tells nothing)."""
        if any(raw is not None for raw in receipts):
            self.receipts_seen = True
            return False
        if not receipts or self.receipts_seen or height > self.without_receipts_max:
            return False
        report = self.report
        if report.without_receipts_from > report.without_receipts_to:
            report.without_receipts_from = height
        report.without_receipts_to = height
        report.without_receipts_transactions += len(receipts)
        return True

    def _tx_hashes(self, height: int) -> list[bytes] | None:
        raw = self.get(b"b:" + _h(height))
        if raw is None:
            self.report.add(f"block {height}: its list of transactions is missing (b:{height})")
            return None
        try:
            return [expect_bytes(h, "transaction hash", length=32) for h in expect_list(unpack(raw, max_bytes=64 << 20), "transaction list")]
        except DecodeError as exc:
            self.report.add(f"block {height}: its list of transactions does not decode ({exc})")
            return None

    def _limit(self, height: int, limits: list[int | None]) -> None:
        """l:<height>, which pruning trusts to keep a body while its transactions may be
        replayed, holds their highest block_limit (a block written before l: records has none)."""
        raw = self.get(LIMIT_PREFIX + _h(height))
        if raw is None or None in limits:
            return
        try:
            recorded = expect_int(unpack(raw, max_bytes=16), "highest block_limit")
        except DecodeError as exc:
            self.report.add(f"block {height}: its highest block_limit (l:{height}) does not decode ({exc})")
            return
        highest = max(limits, default=0)
        if recorded != highest:
            self.report.add(f"block {height}: its l:{height} record says block_limit {recorded}, its transactions' highest is {highest}")

    def _transaction(self, height: int, index: int, tx_hash: bytes) -> int | None:
        """Check one transaction record; its block_limit (None: unreadable)."""
        where = f"block {height}: transaction {index} ({tx_hash.hex()[:16]}…)"
        raw = self.get(b"t:" + tx_hash)
        if raw is None:
            self.report.add(f"{where}: its record is missing (t:)")
            return None
        try:
            fields = expect_list(unpack(raw, max_bytes=8 << 20), "transaction record", length=3)
            at_height, at_index = expect_int(fields[0], "height"), expect_int(fields[1], "index")
            tx = Transaction.decode(expect_bytes(fields[2], "transaction"))
        except DecodeError as exc:
            self.report.add(f"{where}: its record does not decode ({exc})")
            return None
        if (at_height, at_index) != (height, index):
            self.report.add(f"{where}: its record says it is transaction {at_index} of block {at_height}")
        if tx.hash(self.suite) != tx_hash:
            self.report.add(f"{where}: the stored transaction does not hash to it")
        elif not tx.verify_signature(self.suite):
            self.report.add(f"{where}: its signature does not verify")
        return tx.block_limit

    def _receipt(self, height: int, index: int, tx_hash: bytes, raw: bytes | None) -> int | None:
        """Check one receipt's stored bytes; the gas it used (None: missing or unreadable)."""
        where = f"block {height}: the receipt of transaction {index} ({tx_hash.hex()[:16]}…)"
        if raw is None:
            self.report.add(f"{where} is missing (r:)")
            return None
        try:
            receipt = Receipt.decode(raw)
        except DecodeError as exc:
            self.report.add(f"{where} does not decode ({exc})")
            return None
        if receipt.tx_hash != tx_hash:
            self.report.add(f"{where} is another transaction's")
        return receipt.gas_used


def _verify_head(snapshot: Any, ledger: Ledger, report: Report) -> None:
    """The head record names the last block, and the transaction count adds up."""
    head = ledger.head_header
    if head is None or snapshot.get(HEAD_KEY) is None:
        report.add("the head record (m:head) is missing")
        return
    if unpack(snapshot.get(HEAD_KEY), max_bytes=64) != [ledger.head_height, head.hash(ledger.suite)]:  # (Ledger decoded it)
        report.add(f"the head record (m:head) does not name block {ledger.head_height}'s hash")
    try:
        count = unpack(snapshot.get(TXCOUNT_KEY) or b"\x00", max_bytes=16)
    except DecodeError as exc:
        report.add(f"the transaction count (m:txcount) does not decode ({exc})")
        return
    total = report.transactions + report.pruned_transactions
    if report.headers_from > 1 and type(count) is int and count >= total:
        # The blocks never here held the rest; the node took the count from the snapshot's peer.
        report.absent_transactions = count - total
    elif count != total:
        report.add(f"the transaction count (m:txcount) says {count}, the blocks hold {total}")


def _verify_indexes(snapshot: Any, head_height: int, report: Report) -> None:
    """No block record beyond the head, and one index record per block and per transaction
    (a left-over record would answer queries about something the chain does not hold)."""
    beyond = _h(head_height + 1)
    for prefix in (b"h:", b"b:", b"c:", LIMIT_PREFIX):
        with snapshot.iterator(start=prefix + beyond, stop=prefix[:1] + b";", include_value=False) as extra:
            found = next(extra, None)
        if found is not None:
            report.add(f"a block record beyond the head block {head_height}: {found[:2].decode()}{int.from_bytes(found[2:10], 'big')}")
    expected = {b"n:": report.blocks, b"t:": report.transactions, b"r:": report.transactions - report.without_receipts_transactions}
    for prefix, count in expected.items():
        with snapshot.iterator(prefix=prefix, include_value=False) as keys:
            found = sum(1 for _ in keys)
        if found != count:
            report.add(f"{found} {prefix.decode()} index records, where the blocks make {count}")


def _verify_state(ledger: Ledger, head_header: BlockHeader | None) -> list[str]:
    """The state's problems: every key and value within the state's bounds, and, for a head
    of header version 2, the state tree recomputed against the header's state root.

    A head of header version 1 (a chain below compatibility_version 0.3.0) commits to a
    chained digest of every block's writes, which the state alone cannot reproduce."""
    # state root: chainnode/store/tree.py
    snapshot = ledger.snapshot()
    try:
        problems = _state_bounds_problems(snapshot)
        if head_header is not None and head_header.version >= 2:
            problems += _state_tree_problems(ledger.suite.hash, snapshot, head_header)
        return problems
    finally:
        snapshot.close()


def _state_bounds_problems(snapshot: Any) -> list[str]:
    problems = []
    with snapshot.iterator(prefix=STATE_PREFIX) as entries:
        for key, value in entries:
            name = key[len(STATE_PREFIX):]
            if not 0 < len(name) <= STATE_KEY_BYTES_MAX:
                problems.append(f"state key {name[:32]!r}…: {len(name)} bytes, outside 1..{STATE_KEY_BYTES_MAX}")
            if len(value) > STATE_VALUE_BYTES_MAX:
                problems.append(f"state key {name[:32]!r}: a value of {len(value)} bytes, more than {STATE_VALUE_BYTES_MAX}")
            if len(problems) >= PROBLEMS_KEPT:
                break
    return problems


def _state_tree_problems(h: Callable[[bytes], bytes], snapshot: Any, head_header: BlockHeader) -> list[str]:
    """The head's state tree, depth first in bounded memory: each node's hash recomputed from
    its record (so the root hash covers them all), the root the header's, and its leaves
    exactly the flat state (`s:`) that execution reads."""
    height = head_header.height
    raw = snapshot.get(root_key(height))
    if raw is None:
        return [f"the state tree's root after block {height} (x:{height}) is missing"]
    root_ref = decode_ref(raw)
    if (EMPTY_ROOT if root_ref is None else root_ref[0]) != head_header.state_root:
        return [f"the state tree's root after block {height} is not the state root of its header"]
    problems: list[str] = []
    leaves = 0
    try:
        for _, ref, record in StateTree(snapshot.get, h).walk(root_ref):
            fields = unpack(record, max_bytes=NODE_RECORD_BYTES_MAX)
            if ref[2]:
                leaves += 1
                problems += _leaf_problems(h, snapshot, ref, fields)
            elif internal_hash(h, fields[1], [fields[2][i:i + 32] for i in range(0, len(fields[2]), 32)]) != ref[0]:
                problems.append("a state tree node does not hash to what its parent holds")
            if len(problems) >= PROBLEMS_KEPT:
                return problems
    except KeyError as exc:  # walk: a node its parent points at is not stored
        return problems + [exc.args[0]]
    except (DecodeError, ValueError, TypeError, IndexError) as exc:
        return problems + [f"a state tree node does not decode ({exc})"]
    with snapshot.iterator(prefix=STATE_PREFIX, include_value=False) as keys:
        flat = sum(1 for _ in keys)
    if flat != leaves:
        problems.append(f"{flat} state keys (s:), where the state tree holds {leaves}")
    return problems


def _leaf_problems(h: Callable[[bytes], bytes], snapshot: Any, ref: tuple, fields: list) -> list[str]:
    _, key, value = fields
    if leaf_hash(h, h(key), h(value)) != ref[0]:
        return [f"the state tree's leaf of key {key[:32]!r} does not hash to what its parent holds"]
    if snapshot.get(STATE_PREFIX + key) != value:
        return [f"state key {key[:32]!r}: its value (s:) is not the one the state tree holds"]
    return []

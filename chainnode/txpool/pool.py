"""The transaction pool: admission checks, bounded storage, FIFO proposal order.

A transaction from RPC or gossip is admitted only if, in this order (cheap checks first,
the signature last and off the event loop):

1. it decodes strictly and is at most `tx_bytes_max` bytes;
2. its chain id and group id are this chain's;
3. its `block_limit` is in the window (head, head + block_limit_window]: expired ones can
   never be included and far-future ones would linger;
4. its hash is not already pooled nor committed (replay protection: the hash covers the
   nonce, and a committed transaction outside the window is expired anyway), and its
   sender has not pooled another transaction with the same nonce;
5. the pool has room (count and bytes) and the sender is within its share of the pool;
6. governance allows it: the sender is not frozen, may deploy (for a deploy), and may call
   the method (`policy`, executor.refusal at the head; the block's rules decide for good);
7. its signature verifies against the public key it carries, whose address is the sender.

Signature checks run on worker threads in batches: libcrypto releases the GIL, so two
threads verify ~1.9x as fast as one, and the event loop keeps serving.

A client's transaction (`submit_durably`, from sendTransaction) is also written to the
journal (journal.py) before the call returns, so the acknowledgement survives a kill -9;
`recover` re-admits the journal's transactions at start. Submitting a transaction that is
already pending or committed is not an error there: the answer says which (idempotent by
hash, so a client may resend the same signed bytes to any node).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator

import trio

from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import DecodeError
from chainnode.protocol.types import Transaction
from chainnode.txpool.journal import JournalFull, TxJournal

log = logging.getLogger("chainnode.txpool")

# executor.refusal's error types -> the pool's reason codes
_POLICY_CODES = {"AccountFrozen": "account_frozen", "ContractFrozen": "contract_frozen", "PermissionDenied": "permission_denied"}
VERIFY_BATCH_MAX = 256  # transactions per worker-thread call: amortises the thread hop
# Blocks whose transactions' bytes the pool keeps after they leave it, so that gossip's late
# copies of them are refused undecoded: peers commit a block within a block or so of us.
COMMITS_REMEMBERED = 4

# What `submit_durably` found: a new transaction, or one already pending or committed.
ADDED, PENDING, COMMITTED = "added", "pending", "committed"


@dataclass(frozen=True)
class PoolLimits:
    tx_bytes_max: int = 128 * 1024
    pool_txs_max: int = 100_000
    pool_bytes_max: int = 256 * 1024 * 1024
    sender_share_pct: int = 20  # of pool_txs_max; a single sender cannot fill the pool
    block_limit_window: int = 1_000  # how far ahead of the head block_limit may be
    verify_threads: int = 2


class Rejected(Exception):
    """A transaction the pool refuses; `code` is stable for programs, the message for people."""

    def __init__(self, code: str, message: str, tx_hash: bytes | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.tx_hash = tx_hash  # for already_in_pool and already_committed


@dataclass(frozen=True, slots=True)
class PooledTx:
    tx: Transaction
    tx_hash: bytes
    sender: bytes
    raw: bytes
    arrived_s: float = field(default_factory=time.monotonic)  # for the commit-latency metric


class _PendingCheck:
    __slots__ = ("pooled", "ok", "done")

    def __init__(self, pooled: PooledTx) -> None:
        self.pooled = pooled
        self.ok = False
        self.done = trio.Event()


class TxPool:
    """Pending transactions. `is_committed(hash)` and `head_height()` come from the ledger."""

    def __init__(
        self,
        suite: CryptoSuite,
        chain_id: str,
        group_id: str,
        *,
        head_height: Callable[[], int],
        is_committed: Callable[[bytes], bool],
        limits: PoolLimits = PoolLimits(),
        policy: Callable[[bytes, bytes | None, str], tuple[str, str] | None] | None = None,
        journal: TxJournal | None = None,
    ) -> None:
        self.suite = suite
        self.chain_id = chain_id
        self.group_id = group_id
        self.limits = limits
        self._head_height = head_height
        self._is_committed = is_committed
        self._policy = policy
        self.journal = journal  # None: acknowledgements are not durable (unit tests of admission)
        self._txs: OrderedDict[bytes, PooledTx] = OrderedDict()
        self._nonces: set[tuple[bytes, bytes]] = set()
        # The pooled transactions, and those of the last COMMITS_REMEMBERED blocks, by their
        # exact bytes: gossip delivers a transaction again and again (from every peer,
        # regossip.py repeats it, and a peer a block behind still gossips what we committed),
        # and a copy found here is turned away before it is decoded (~10x this lookup's cost).
        self._raws: dict[bytes, bytes] = {}
        self._committed_raws: deque[list[bytes]] = deque()  # per block, oldest first
        # When a block last removed transactions (time.monotonic()); regossip.py waits from it.
        self.last_commit_s = time.monotonic()
        # Each sender's pending transactions in arrival order; senders in order of their
        # oldest pending transaction (a sender whose queue empties goes to the back).
        self._by_sender: dict[bytes, dict[bytes, PooledTx]] = {}
        # Per pooled sender: the number of the commit that last included one of its
        # transactions; proposals serve the senders served longest ago first.
        self._served: dict[bytes, int] = {}
        self._commits = 0
        self._bytes = 0
        self._verify_limiter = trio.CapacityLimiter(limits.verify_threads)
        self._verify_queue: list[_PendingCheck] = []
        self._drainers = 0
        self.rejected: dict[str, int] = {}  # reason code -> count, for metrics
        self._arrival = trio.Event()
        self._drained = trio.Event()

    # ---- admission ----------------------------------------------------------------------

    def precheck(self, raw: bytes) -> PooledTx:
        """Steps 1-5 (everything but the signature); raises `Rejected`."""
        limits = self.limits
        if not isinstance(raw, (bytes, bytearray)):
            raise self._reject("malformed", "a transaction is raw bytes")
        if len(raw) > limits.tx_bytes_max:
            raise self._reject("too_large", f"transaction is {len(raw)} bytes; the limit is {limits.tx_bytes_max}")
        known = self._raws.get(bytes(raw))
        if known is not None:
            if known in self._txs:
                raise self._reject("already_in_pool", "this transaction is already pending", known)
            raise self._reject("already_committed", "this transaction was already committed (replay)", known)
        try:
            tx = Transaction.decode(bytes(raw), max_bytes=limits.tx_bytes_max)
        except DecodeError as exc:
            raise self._reject("malformed", f"transaction does not decode: {exc}") from None
        if tx.chain_id != self.chain_id:
            raise self._reject("wrong_chain", f"chain id {tx.chain_id!r} is not this chain's {self.chain_id!r}")
        if tx.group_id != self.group_id:
            raise self._reject("wrong_group", f"group id {tx.group_id!r} is not this group's {self.group_id!r}")
        # Known hashes first: a resubmission of a committed transaction is answered as such
        # even once its block_limit has passed.
        tx_hash = tx.hash(self.suite)
        if tx_hash in self._txs:
            raise self._reject("already_in_pool", "this transaction is already pending", tx_hash)
        if self._is_committed(tx_hash):
            raise self._reject("already_committed", "this transaction was already committed (replay)", tx_hash)
        head = self._head_height()
        if tx.block_limit <= head:
            raise self._reject("block_limit_expired", f"block_limit {tx.block_limit} is not above the current height {head}; rebuild it with a later block_limit")
        if tx.block_limit > head + limits.block_limit_window:
            raise self._reject("block_limit_too_far", f"block_limit {tx.block_limit} is more than {limits.block_limit_window} blocks past the current height {head}")
        if len(tx.sender_pub) != self.suite.public_key_bytes:
            raise self._reject("bad_signature", f"the sender key is not a {self.suite.name} public key")
        try:
            sender = self.suite.address(tx.sender_pub)
        except ValueError:
            raise self._reject("bad_signature", "the sender public key is invalid") from None
        if (sender, tx.nonce) in self._nonces:
            raise self._reject("nonce_reused", "this sender already has a pending transaction with this nonce; use a fresh random nonce")
        self._check_room(sender, len(raw))
        if self._policy is not None:
            refused = self._policy(sender, tx.to, tx.method)
            if refused is not None:
                raise self._reject(_POLICY_CODES.get(refused[0], "refused"), refused[1])
        return PooledTx(tx, tx_hash, sender, bytes(raw))

    def _check_room(self, sender: bytes, size: int) -> None:
        limits = self.limits
        if len(self._txs) >= limits.pool_txs_max or self._bytes + size > limits.pool_bytes_max:
            raise self._reject("pool_full", "the transaction pool is full; retry after the next blocks")
        share = max(1, limits.pool_txs_max * limits.sender_share_pct // 100)
        if len(self._by_sender.get(sender, ())) >= share:
            raise self._reject("sender_quota", f"this sender already has {share} pending transactions; wait for them to commit")

    def _reject(self, code: str, message: str, tx_hash: bytes | None = None) -> Rejected:
        self.rejected[code] = self.rejected.get(code, 0) + 1
        return Rejected(code, message, tx_hash)

    def _verify_batch(self, items: list[PooledTx]) -> list[bool]:
        verify = self.suite.verify
        return [verify(p.tx.sender_pub, p.tx_hash, p.tx.signature) for p in items]

    async def _verify(self, items: list[PooledTx]) -> list[bool]:
        """Verify signatures on worker threads, batching concurrent callers together.

        Each caller queues its items; up to `verify_threads` callers at a time drain the
        queue in chunks of VERIFY_BATCH_MAX, one thread hop per chunk, and the others wait
        for their results. Concurrent RPC requests thus cost one hop per chunk, not per
        transaction. Draining is shielded from cancellation (a chunk takes < 100 ms) so a
        caller that goes away cannot strand the ones whose items it took.
        """
        waiters = [_PendingCheck(p) for p in items]
        self._verify_queue.extend(waiters)
        if self._drainers < self.limits.verify_threads:
            self._drainers += 1
            try:
                with trio.CancelScope(shield=True):
                    while self._verify_queue:
                        chunk = self._verify_queue[:VERIFY_BATCH_MAX]
                        del self._verify_queue[: len(chunk)]
                        oks = await trio.to_thread.run_sync(self._verify_batch, [w.pooled for w in chunk], limiter=self._verify_limiter)
                        for w, ok in zip(chunk, oks):
                            w.ok = ok
                            w.done.set()
            finally:
                self._drainers -= 1
        for w in waiters:
            await w.done.wait()
        return [w.ok for w in waiters]

    async def submit(self, raw: bytes) -> bytes:
        """Admit one transaction; returns its hash or raises `Rejected`."""
        result = (await self.submit_many([raw]))[0]
        if isinstance(result, Rejected):
            raise result
        return result

    async def submit_many(self, raws: Iterable[bytes]) -> list[bytes | Rejected]:
        """Admit a batch (from gossip or a busy RPC); one result per input, in order."""
        results: list[bytes | Rejected] = []
        checked: list[tuple[int, PooledTx]] = []
        batch_keys: set[bytes] = set()
        for raw in raws:
            try:
                pooled = self.precheck(raw)
                if pooled.tx_hash in batch_keys:
                    raise self._reject("already_in_pool", "this transaction is already pending", pooled.tx_hash)
                batch_keys.add(pooled.tx_hash)
                checked.append((len(results), pooled))
                results.append(pooled.tx_hash)
            except Rejected as exc:
                results.append(exc)
        if checked:
            oks = await self._verify([p for _, p in checked])
            for (index, pooled), ok in zip(checked, oks):
                if not ok:
                    results[index] = self._reject("bad_signature", "the signature does not verify for this transaction and sender key")
                    continue
                try:
                    self._insert(pooled)  # the pool may have changed while we verified
                except Rejected as exc:
                    results[index] = exc
        return results

    async def submit_durably(self, raw: bytes) -> tuple[bytes, str]:
        """Admit a client's transaction and journal it before returning (hash, status):
        ADDED (new here), PENDING (it was already pending here) or COMMITTED (already in a
        block). Raises `Rejected` for anything else. Once this returns ADDED or PENDING, the
        transaction is on this node's disk and survives a crash (see `recover`)."""
        try:
            tx_hash, status = await self.submit(raw), ADDED
        except Rejected as exc:
            if exc.code == "already_committed":
                return exc.tx_hash, COMMITTED
            if exc.code != "already_in_pool":
                raise
            tx_hash, status = exc.tx_hash, PENDING
        pooled = self._txs.get(tx_hash)
        if pooled is None:  # settled while it was being verified
            if self._is_committed(tx_hash):
                return tx_hash, COMMITTED
            raise self._reject("block_limit_expired", "this transaction expired before it could be pooled; rebuild it with a later block_limit")
        if self.journal is not None:
            # A pending transaction that came by gossip is journalled here too now: this
            # answer makes the same promise as for a new one. The pooled bytes are written,
            # whose signature was verified (the hash does not cover the signature).
            try:
                await self.journal.append(tx_hash, pooled.raw)
            except JournalFull as exc:
                raise self._reject("pool_full", f"{exc}; retry after the next blocks") from None
            except OSError as exc:
                raise self._reject("journal_failed", f"the node could not write its transaction journal ({exc}); the transaction was not acknowledged: send it again, to this node or another") from None
        return tx_hash, status

    async def recover(self) -> list[bytes]:
        """At start: re-admit the journal's transactions through every check (committed,
        expired and now-invalid ones are dropped) and keep only those in the journal.
        Returns the raw bytes of the re-admitted ones, for gossip."""
        if self.journal is None:
            return []
        raws = self.journal.recovered
        results = await self.submit_many(raws)
        kept = [(h, self._txs[h].raw) for h in results if isinstance(h, bytes) and h in self._txs]
        await self.journal.reset(kept)
        if raws:
            log.info("re-admitted %d of the %d journalled transactions (the others were committed, expired or invalid)", len(kept), len(raws))
        return [raw for _, raw in kept]

    def _insert(self, p: PooledTx) -> None:
        if p.tx_hash in self._txs:
            raise self._reject("already_in_pool", "this transaction is already pending", p.tx_hash)
        if self._is_committed(p.tx_hash):  # a block may have committed it while we verified
            raise self._reject("already_committed", "this transaction was already committed (replay)", p.tx_hash)
        if (p.sender, p.tx.nonce) in self._nonces:
            raise self._reject("nonce_reused", "this sender already has a pending transaction with this nonce")
        self._check_room(p.sender, len(p.raw))
        self._txs[p.tx_hash] = p
        self._raws[p.raw] = p.tx_hash
        self._nonces.add((p.sender, p.tx.nonce))
        self._by_sender.setdefault(p.sender, {})[p.tx_hash] = p
        self._bytes += len(p.raw)
        self._arrival.set()

    # ---- proposals and commits ----------------------------------------------------------

    def take(self, count_max: int, height: int) -> list[PooledTx]:
        """Up to `count_max` pending transactions valid at `height`, taken round-robin over
        senders, each sender's oldest first. Senders whose transactions a block included
        longest ago (or never) come first, then by their oldest pending transaction.

        Fair by sender, not first come first served: a sender with a backlog of heavy
        transactions must not push everybody else's payments back, block after block (blocks
        are cut by gas, so what comes first in a proposal is what gets in). Nothing is
        removed: a proposal may fail, and commits remove what was included.
        """
        out: list[PooledTx] = []
        served = self._served
        senders = sorted(self._by_sender, key=lambda sender: served.get(sender, 0))  # stable: arrival order among equals
        queues = [iter(self._by_sender[sender].values()) for sender in senders]
        while queues and len(out) < count_max:
            still = []
            for queue in queues:
                for p in queue:
                    if p.tx.block_limit >= height:
                        out.append(p)
                        still.append(queue)
                        break
                if len(out) >= count_max:
                    break
            queues = still
        return out

    def get(self, tx_hash: bytes) -> PooledTx | None:
        return self._txs.get(tx_hash)

    def pending(self) -> Iterator[PooledTx]:
        """Pooled transactions, oldest first. Do not change the pool while iterating."""
        return iter(self._txs.values())

    def remove(self, tx_hashes: Iterable[bytes], *, committed: bool = True) -> int:
        """Drop committed (or otherwise settled) transactions; returns how many were pooled."""
        tx_hashes = list(tx_hashes)
        removed = 0
        if committed:
            self._commits += 1
            self.last_commit_s = time.monotonic()
            self._committed_raws.append([])
        for h in tx_hashes:
            p = self._txs.pop(h, None)
            if p is not None:
                self._forget(p)
                removed += 1
                if committed:
                    self._committed_raws[-1].append(p.raw)  # its _raws entry stays a while
                else:
                    del self._raws[p.raw]
                if committed and p.sender in self._by_sender:
                    self._served[p.sender] = self._commits
        while len(self._committed_raws) > COMMITS_REMEMBERED:
            for raw in self._committed_raws.popleft():
                del self._raws[raw]
        if self.journal is not None:
            self.journal.forget(tx_hashes)
        if not self._txs:
            self._drained.set()
        return removed

    def drop_expired(self, head_height: int) -> int:
        """Drop transactions whose block_limit the chain has passed."""
        expired = [h for h, p in self._txs.items() if p.tx.block_limit <= head_height]
        return self.remove(expired, committed=False)

    def _forget(self, p: PooledTx) -> None:
        self._nonces.discard((p.sender, p.tx.nonce))
        queue = self._by_sender[p.sender]
        del queue[p.tx_hash]
        if not queue:
            del self._by_sender[p.sender]
            self._served.pop(p.sender, None)
        self._bytes -= len(p.raw)

    async def wait_for_transactions(self) -> None:
        """Return once the pool is non-empty (wakes an idle leader)."""
        while not self._txs:
            self._arrival = trio.Event()
            await self._arrival.wait()

    async def wait_until_empty(self) -> None:
        """Return once the pool has no transactions."""
        while self._txs:
            self._drained = trio.Event()
            await self._drained.wait()

    def __len__(self) -> int:
        return len(self._txs)

    @property
    def bytes(self) -> int:
        return self._bytes

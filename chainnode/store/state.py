"""World state: the committed store with a read cache, overlays for execution, and the
state root.

- `StateStore` reads committed state from LevelDB (keys under `s:`) through a bounded
  cache. Only the ledger changes it, as part of a block's one write batch.
- `StateOverlay` sits on any reader (the store or another overlay): reads see its own
  writes, `snapshot()`/`revert()` nest (a failed contract call reverts only its own writes),
  and `writes()` is the change set a block hands to the ledger.
- The state root of a block with header version 2 is the root of the state tree
  (chainnode/store/tree.py), which `StateStore` keeps beside the flat values: any key's
  value, or absence, can be proven against it.
- `next_state_root` is the state root of header version 1 (chains whose
  compatibility_version is below 0.3.0): a digest of each block's sorted writes chained
  onto the parent's root, FISCO BCOS 2.x's approach. Nodes agree on it exactly when they
  applied the same writes in the same blocks, but it proves nothing about a single key.
"""

from __future__ import annotations

from itertools import islice
from typing import Mapping, Protocol

from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import pack
from chainnode.store.leveldb import Store
from chainnode.store.tree import StateTree, TreeUpdate

STATE_PREFIX = b"s:"
STATE_KEY_BYTES_MAX = 1024
STATE_VALUE_BYTES_MAX = 1 << 20
# The read cache's budget, in bytes of keys and values plus a dict entry's and two bytes
# objects' overhead each: a bound on memory (values go up to STATE_VALUE_BYTES_MAX), not on
# a count. 16 MiB holds ~65,000 token balances: every hot key (config, senders, contracts)
# and a block's recent writes; at 1,000,000 accounts the rest is one LevelDB read away, and
# twice the budget caught only ~6 % more of a block's random payees for 16 MiB more of a
# replaying node's memory (docs/performance.md, "Scale").
STATE_CACHE_BYTES_MAX = 16 << 20
CACHE_ENTRY_OVERHEAD_BYTES = 170

_MISSING = object()


class StateReader(Protocol):
    def get(self, key: bytes) -> bytes | None: ...


class StateStore:
    """Committed state, read through a FIFO cache bounded in bytes (absent keys are cached
    too), and its tree (`tree`, as of `head_height`)."""

    def __init__(self, store: Store, suite: CryptoSuite, head_height: int, cache_bytes_max: int = STATE_CACHE_BYTES_MAX) -> None:
        self._store = store
        self._cache: dict[bytes, bytes | None] = {}
        self._cache_bytes = 0
        self._cache_bytes_max = cache_bytes_max
        self.tree = StateTree(store.get, suite.hash, head_height=head_height)

    def get(self, key: bytes) -> bytes | None:
        value = self._cache.get(key, _MISSING)
        if value is _MISSING:
            value = self._store.get(STATE_PREFIX + key)
            self._remember(key, value)
        return value

    def _remember(self, key: bytes, value: bytes | None) -> None:
        cache = self._cache
        old = cache.pop(key, _MISSING)
        if old is not _MISSING:
            self._cache_bytes -= _entry_bytes(key, old)  # type: ignore[arg-type]
        size = _entry_bytes(key, value)
        if self._cache_bytes + size > self._cache_bytes_max and cache:
            # The oldest sixteenth at once: deleting one at a time from the front makes each
            # `next(iter(cache))` walk over every slot deleted before it.
            for k in list(islice(cache, max(1, len(cache) // 16))):
                self._cache_bytes -= _entry_bytes(k, cache.pop(k))
        if size <= self._cache_bytes_max:
            cache[key] = value
            self._cache_bytes += size

    def batch_ops(self, writes: Mapping[bytes, bytes | None]) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """The LevelDB puts and deletes for a block's writes (the ledger adds them to its batch)."""
        puts = [(STATE_PREFIX + k, v) for k, v in writes.items() if v is not None]
        deletes = [STATE_PREFIX + k for k, v in writes.items() if v is None]
        return puts, deletes

    def tree_update(self, height: int, writes: Mapping[bytes, bytes | None]) -> TreeUpdate:
        """The state tree after block `height` (the head's + 1) applies `writes`. The first
        block of a chain that had no tree (an upgraded one) builds it from the whole state."""
        tree = self.tree
        if tree.head_height < 0 or tree.head_has_tree:
            return tree.update(height, writes, lambda k: self.get(k) is not None)
        whole = dict(self.items())
        whole.update(writes)
        return tree.update(height, whole, lambda k: False, from_empty=True)

    def applied(self, writes: Mapping[bytes, bytes | None], height: int, tree_update: TreeUpdate | None) -> None:
        """Called by the ledger after block `height`'s batch is durable: refresh the cache
        and move the tree's head."""
        for key, value in writes.items():
            self._remember(key, value)
        self.tree.moved(height, tree_update)

    def items(self) -> list[tuple[bytes, bytes]]:
        """Every committed key and value, in key order (for tests and exports)."""
        return [(k[len(STATE_PREFIX):], v) for k, v in self._store.iterate(STATE_PREFIX)]


def _entry_bytes(key: bytes, value: bytes | None) -> int:
    return len(key) + (len(value) if value is not None else 0) + CACHE_ENTRY_OVERHEAD_BYTES


class StateOverlay:
    """Uncommitted writes over a reader, with nested snapshots.

    A journal records each key's previous overlay value, so `revert` undoes exactly the
    writes since its snapshot and reads stay a single dict lookup.
    """

    def __init__(self, base: StateReader) -> None:
        self._base = base
        self._writes: dict[bytes, bytes | None] = {}
        self._journal: list[tuple[bytes, object]] = []

    def get(self, key: bytes) -> bytes | None:
        value = self._writes.get(key, _MISSING)
        if value is _MISSING:
            return self._base.get(key)
        return value  # type: ignore[return-value]

    def set(self, key: bytes, value: bytes) -> None:
        _check_key(key)
        if type(value) is not bytes:
            raise TypeError("state values are bytes")
        if len(value) > STATE_VALUE_BYTES_MAX:
            raise ValueError(f"state value of {len(value)} bytes exceeds {STATE_VALUE_BYTES_MAX}")
        self._journal.append((key, self._writes.get(key, _MISSING)))
        self._writes[key] = value

    def delete(self, key: bytes) -> None:
        _check_key(key)
        self._journal.append((key, self._writes.get(key, _MISSING)))
        self._writes[key] = None

    def snapshot(self) -> int:
        return len(self._journal)

    def revert(self, snapshot: int) -> None:
        assert 0 <= snapshot <= len(self._journal), "revert to a snapshot this overlay never took"
        journal = self._journal
        while len(journal) > snapshot:
            key, previous = journal.pop()
            if previous is _MISSING:
                del self._writes[key]
            else:
                self._writes[key] = previous  # type: ignore[assignment]

    def writes(self) -> dict[bytes, bytes | None]:
        """The net change set: key -> new value, or None for a deletion."""
        return dict(self._writes)


def _check_key(key: bytes) -> None:
    if type(key) is not bytes:
        raise TypeError("state keys are bytes")
    if not 0 < len(key) <= STATE_KEY_BYTES_MAX:
        raise ValueError(f"state keys are 1..{STATE_KEY_BYTES_MAX} bytes")


def writes_digest(suite: CryptoSuite, writes: Mapping[bytes, bytes | None]) -> bytes:
    return suite.hash(pack([[k, writes[k]] for k in sorted(writes)]))


def next_state_root(suite: CryptoSuite, parent_root: bytes, writes: Mapping[bytes, bytes | None]) -> bytes:
    """The state root after a block: H(version, parent root, H(sorted writes))."""
    return suite.hash(pack([1, parent_root, writes_digest(suite, writes)]))

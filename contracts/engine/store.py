"""State seen by contracts: key layout, per-contract scoping, and layered write buffers.

Key layout in the node's base store (bytes -> bytes), fixed by this engine version:

    b"code/" + address            -> contract source, UTF-8
    b"c" + address + b"/" + key   -> a contract's storage; key = msgpack(storage key),
                                     value = msgpack(storage value)

Each call gets a `WriteBuffer` layered on its caller's (the outermost one on the base
store). Reads fall through the layers; writes stay in the call's own layer until the call
succeeds and `merge()` folds them into the parent. A failing call (an error, running out of
gas, a limit) simply drops its buffer, so nothing it wrote is ever seen.
"""

from __future__ import annotations

from typing import Any, Protocol

from chainnode.crypto import ADDRESS_BYTES
from chainnode.protocol.codec import INT64_MIN, UINT64_MAX
from contracts.engine import values
from contracts.engine.accelerator import speedups
from contracts.engine.errors import LimitExceeded, OutOfGas
from contracts.engine.gas import (
    STORAGE_DELETE_GAS,
    STORAGE_KEY_BYTES_MAX,
    STORAGE_READ_BYTE_GAS,
    STORAGE_READ_GAS,
    STORAGE_VALUE_BYTES_MAX,
    STORAGE_WRITE_BYTE_GAS,
    STORAGE_WRITE_GAS,
)

CODE_PREFIX = b"code/"
STORAGE_PREFIX = b"c"


class ByteStore(Protocol):
    """What the engine needs from the node's state overlay (or any test double)."""

    def get(self, key: bytes) -> bytes | None: ...
    def set(self, key: bytes, value: bytes) -> None: ...
    def delete(self, key: bytes) -> None: ...


def code_key(address: bytes) -> bytes:
    assert type(address) is bytes and len(address) == ADDRESS_BYTES, address
    return CODE_PREFIX + address


def storage_prefix(address: bytes) -> bytes:
    assert type(address) is bytes and len(address) == ADDRESS_BYTES, address
    return STORAGE_PREFIX + address + b"/"


class ContractStore:
    """A byte store scoped to one contract: prefixes every key with the contract's prefix."""

    __slots__ = ("base", "prefix")

    def __init__(self, base: ByteStore, address: bytes) -> None:
        self.base = base
        self.prefix = storage_prefix(address)

    def get(self, key: bytes) -> bytes | None:
        return self.base.get(self.prefix + key)

    def set(self, key: bytes, value: bytes) -> None:
        self.base.set(self.prefix + key, value)

    def delete(self, key: bytes) -> None:
        self.base.delete(self.prefix + key)


_MISSING = object()
_decode = values.unpackb  # == values.decode (checked at import), without the wrapper
_pack = values.pack_plain  # == values.encode, without the wrapper
_encode_value = values.encode_value
_to_plain = values.to_plain

# msgpack of recent str/bytes storage keys (accounts, names): a pure function, memoised.
# Only keys within STORAGE_KEY_BYTES_MAX are kept, so a hit needs no length check; the
# memo is emptied when full. Shared by threads: single dict operations are atomic.
_key_cache: dict = {}
_KEY_CACHE_MAX = 1024


def _pack_key(key: Any, gas: list[int]) -> bytes:
    """msgpack of a storage key, length-checked (the slow path of the accessors)."""
    t = type(key)
    k = _pack(key) if t is str or t is bytes else _encode_value(key, "storage key", gas)
    if len(k) > STORAGE_KEY_BYTES_MAX:
        raise LimitExceeded(f"storage key of {len(k)} bytes exceeds {STORAGE_KEY_BYTES_MAX}")
    if t is str or t is bytes:
        if len(_key_cache) >= _KEY_CACHE_MAX:
            _key_cache.clear()
        _key_cache[key] = k
    return k


class WriteBuffer:
    """One call's writes over its parent's view; `None` marks a delete."""

    __slots__ = ("parent", "writes")

    def __init__(self, parent: Any) -> None:
        self.parent = parent
        self.writes: dict[bytes, bytes | None] = {}

    def get(self, key: bytes) -> bytes | None:
        v = self.writes.get(key, _MISSING)
        if v is _MISSING:
            return self.parent.get(key)
        return v  # type: ignore[return-value]

    def set(self, key: bytes, value: bytes) -> None:
        self.writes[key] = value

    def delete(self, key: bytes) -> None:
        self.writes[key] = None

    def merge(self) -> None:
        """Fold this layer into its parent (the call succeeded)."""
        parent = self.parent
        if type(parent) is WriteBuffer:
            parent.writes.update(self.writes)
            return
        # The bottom layer writes through to the caller's store in the order the contract
        # wrote (dict order), so the store sees the same sequence on every node.
        for key, value in self.writes.items():
            if value is None:
                parent.delete(key)
            else:
                parent.set(key, value)


# The C accelerator's fields and fast methods (see accelerator.py), when it is loaded.
_StorageBase: type = speedups.StorageCore if speedups is not None else object


class Storage(_StorageBase):  # type: ignore[misc, valid-type]
    """The `storage` object a contract sees: a mapping of plain keys to plain values.

    Values are copied in and out through msgpack: `storage["a"]["x"] = 1` changes a copy,
    so write the whole value back. Every access charges gas on the transaction's meter
    (`gas`, a list whose first item is the gas left) before touching the store.

    `_writes` and `_parent` are the write buffer's own dict and parent, held directly so an
    access takes one attribute load instead of two. The engine reuses one `Storage` (and
    its `WriteBuffer`) for every top-level call and re-points it per call; a contract
    cannot keep a reference to it past its call (no module state, no closures, and values
    that leave a call are plain values).
    """

    # With the C base, its fields are these (and its __init__ sets them the same way).
    __slots__ = () if speedups is not None else ("_buf", "_writes", "_parent", "_prefix", "_gas", "_readonly")

    if speedups is None:
        def __init__(self, buf: Any, prefix: bytes, gas: list[int], readonly: bool) -> None:
            self._buf = buf
            self._writes = buf.writes
            self._parent = buf.parent
            self._prefix = prefix
            self._gas = gas
            self._readonly = readonly

    # The accessors below inline key encoding and gas charging on purpose: a payment
    # transaction is a handful of storage accesses, and each extra Python call shows.

    def _key(self, key: Any) -> bytes:
        t = type(key)
        k = _key_cache.get(key) if t is bytes or t is str else None
        if k is None:
            k = _pack_key(key, self._gas)
        return self._prefix + k

    def _load(self, key: Any) -> bytes | None:
        t = type(key)
        k = _key_cache.get(key) if t is bytes or t is str else None
        if k is None:
            k = _pack_key(key, self._gas)
        fk = self._prefix + k
        data = self._writes.get(fk, _MISSING)
        if data is _MISSING:
            data = self._parent.get(fk)
        g = self._gas
        g[0] -= STORAGE_READ_GAS + STORAGE_READ_BYTE_GAS * (len(k) + (len(data) if data is not None else 0))
        if g[0] < 0:
            raise OutOfGas("out of gas in storage access")
        return data

    def read(self, key: Any) -> Any:
        data = self._load(key)
        if data is None:
            raise KeyError("storage key not found")
        return _decode(data)

    def _get_py(self, key: Any, default: Any = None) -> Any:
        # _load, inlined: `storage.get(account, 0)` is the most common access of all.
        t = type(key)
        k = _key_cache.get(key) if t is bytes or t is str else None
        if k is None:
            k = _pack_key(key, self._gas)
        n = len(k)
        fk = self._prefix + k
        writes = self._writes
        data = writes.get(fk, _MISSING) if writes else _MISSING
        if data is _MISSING:
            data = self._parent.get(fk)
        g = self._gas
        if data is None:
            g[0] -= STORAGE_READ_GAS + STORAGE_READ_BYTE_GAS * n
            if g[0] < 0:
                raise OutOfGas("out of gas in storage access")
            return default
        g[0] -= STORAGE_READ_GAS + STORAGE_READ_BYTE_GAS * (n + len(data))
        if g[0] < 0:
            raise OutOfGas("out of gas in storage access")
        return _decode(data)

    def contains(self, key: Any) -> bool:
        return self._load(key) is not None

    def write(self, key: Any, value: Any) -> None:
        self._assign(value, key)

    def _assign_py(self, value: Any, key: Any) -> None:
        # `storage[key] = value` compiles to this call: Python evaluates the value first.
        if self._readonly:
            raise PermissionError("storage is read-only in a view call")
        t = type(key)
        k = _key_cache.get(key) if t is bytes or t is str else None
        if k is None:
            k = _pack_key(key, self._gas)
        # values.encode_value, inlined for scalars.
        t = type(value)
        if t is int:
            if not INT64_MIN <= value <= UINT64_MAX:
                raise ValueError("storage value: integer does not fit in 64 bits")
            data = _pack(value)  # at most 9 bytes
        else:
            if t is str or t is bytes or t is bool or value is None:
                data = _pack(value)
            else:
                data = _pack(_to_plain(value, "storage value", self._gas))
            if len(data) > STORAGE_VALUE_BYTES_MAX:
                raise LimitExceeded(f"storage value of {len(data)} bytes exceeds {STORAGE_VALUE_BYTES_MAX}")
        g = self._gas
        g[0] -= STORAGE_WRITE_GAS + STORAGE_WRITE_BYTE_GAS * (len(k) + len(data))
        if g[0] < 0:
            raise OutOfGas("out of gas in storage access")
        self._writes[self._prefix + k] = data

    # `get` and `_assign` are the C base's when it is built: the same code for the common
    # case (a memoised str/bytes key, a scalar value), which calls the two above for the
    # rest. tests/contracts/test_speedups.py holds the two to the same results and gas.
    if speedups is None:
        get = _get_py
        _assign = _assign_py

    def remove(self, key: Any) -> None:
        if self._readonly:
            raise PermissionError("storage is read-only in a view call")
        k = self._key(key)
        g = self._gas
        g[0] -= STORAGE_DELETE_GAS
        if g[0] < 0:
            raise OutOfGas("out of gas in storage access")
        self._writes[k] = None

    # The engine's own methods: contract code names `get` only (the attribute allow-list
    # refuses the rest). The C base has its own `repoint`, the same three stores without a
    # Python frame: the engine calls it on every top-level call.

    if speedups is None:
        def repoint(self, parent: Any, prefix: bytes, readonly: bool) -> None:
            """Point this storage at another contract's state for the next call (the engine
            reuses one storage object for every top-level call); its writes are empty,
            merged or dropped by the call before. The buffer's own parent is left for
            `write_layer` to bring up to date: only a cross-contract call reads it."""
            self._parent = parent
            self._prefix = prefix
            self._readonly = readonly

    def write_layer(self) -> WriteBuffer:
        """The write buffer this storage writes to, reading through to what this storage
        reads: a cross-contract call layers the callee's buffer on it, so the callee sees
        the caller's pending writes."""
        buf = self._buf
        buf.parent = self._parent
        return buf


if speedups is not None:
    speedups.configure(_key_cache, _pack, _decode, OutOfGas, STORAGE_READ_GAS, STORAGE_READ_BYTE_GAS,
                       STORAGE_WRITE_GAS, STORAGE_WRITE_BYTE_GAS, STORAGE_VALUE_BYTES_MAX)

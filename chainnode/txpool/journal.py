"""The pool's journal: the raw bytes of every transaction this node acknowledged to a client,
in an append-only file that is fsynced before the acknowledgement goes out.

Why: sendTransaction's answer promises that the transaction is not lost if this node is
killed at any instant (docs/architecture.md, "What an acknowledgement promises"). On
restart the node reads the journal back and re-admits every transaction through the pool's
normal checks (committed, expired and now-invalid ones are dropped) and gossips them again.

Group commit: concurrent submissions share one write and one fsync. A submitter adds its
record to the open batch; if no flush is running it becomes the flusher and writes the whole
batch (on a worker thread, so the event loop keeps serving); otherwise it waits for the
running flush to end and tries again. Each submitter flushes at most one batch, so none is
kept flushing for others under load.

File format: an 8-byte magic, then records `length (u32 BE) | crc32 (u32 BE) | raw tx`.
A torn or corrupt record (a crash in the middle of a write that was never acknowledged) ends
the journal: it and everything after it are cut off when the file is opened, never fatal.

Size: records are never deleted in place. The pool forgets a record when its transaction
commits or expires, and the file is rewritten with only the live records (write a new file,
fsync, rename, fsync the folder) once the dead ones outweigh the live ones, or before an
append would take the file past `bytes_max`. The live records alone are kept within
`bytes_max` (an append that would pass it is refused), so the file never exceeds it.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from pathlib import Path
from typing import Callable

import trio

log = logging.getLogger("chainnode.txpool")

MAGIC = b"CNTXJ\x00\x00\x01"  # the last byte is the format version
_HEADER = struct.Struct(">II")  # record length, crc32 of the record
RECORD_BYTES_MAX = 1 << 20  # the largest tx_bytes_max a config may set: longer means corrupt
COMPACT_BYTES_MIN = 1 << 20  # below this, dead records are not worth a rewrite


class JournalFull(Exception):
    """The live records would exceed the journal's `bytes_max`."""


def framed_size(raw: bytes) -> int:
    return _HEADER.size + len(raw)


def _frame(raw: bytes) -> bytes:
    return _HEADER.pack(len(raw), zlib.crc32(raw)) + raw


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_records(data: bytes) -> tuple[list[bytes], int]:
    """The whole records after the magic, and the offset where the good part ends."""
    records, at = [], len(MAGIC)
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        end = at + _HEADER.size + length
        if length > RECORD_BYTES_MAX or end > len(data):
            break
        raw = data[at + _HEADER.size:end]
        if zlib.crc32(raw) != crc:
            break
        records.append(raw)
        at = end
    return records, at


class _Batch:
    __slots__ = ("records", "done", "error")

    def __init__(self) -> None:
        self.records: list[bytes] = []
        self.done = trio.Event()
        self.error: OSError | None = None


class TxJournal:
    """`TxJournal(path, bytes_max=...)` opens (or creates) the journal; `recovered` holds the
    transactions found in it, for the pool to re-admit and then hand back with `reset`."""

    def __init__(self, path: Path, *, bytes_max: int, fsync: Callable[[int], None] = os.fsync) -> None:
        assert bytes_max > len(MAGIC)
        self.path = Path(path)
        self.bytes_max = bytes_max
        self._fsync = fsync  # a parameter so tests can see exactly when data reaches the disk
        self._live: dict[bytes, bytes] = {}  # tx hash -> raw, in arrival order: acknowledged, not yet settled
        self._live_bytes = len(MAGIC)  # what a rewrite with only the live records would take
        self._pending: dict[bytes, _Batch] = {}  # tx hash -> the batch that will make it durable
        self._open = _Batch()
        self._flushing = False
        self._idle = trio.Event()
        self._rewrite_next = False  # a failed write may have left a partial record at the end
        self.syncs = 0  # writes that reached the disk (one per batch), for tests and metrics
        self.compactions = 0
        self.recovered, self.file_bytes = self._load()
        self._file = open(self.path, "ab")

    # ---- opening ------------------------------------------------------------------------

    def _load(self) -> tuple[list[bytes], int]:
        if not self.path.exists():
            self._write_file([])
            return [], len(MAGIC)
        data = self.path.read_bytes()
        if data[: len(MAGIC)] != MAGIC:
            # Not a journal of this format: keep it aside for a person to look at, start afresh.
            aside = self.path.with_name(self.path.name + ".unreadable")
            os.replace(self.path, aside)
            log.error("%s is not a transaction journal (bad header); moved it to %s and started a new one", self.path, aside)
            self._write_file([])
            return [], len(MAGIC)
        records, good_end = read_records(data)
        if good_end < len(data):
            # A write that was cut off by a crash: it was never acknowledged, so drop it, and
            # cut it off now so that new records are not appended after unreadable bytes.
            log.warning("%s: ignoring %d bytes of a torn or corrupt record at offset %d (a crash during a write)", self.path, len(data) - good_end, good_end)
            with open(self.path, "r+b") as f:
                f.truncate(good_end)
                f.flush()
                self._fsync(f.fileno())
        return records, good_end

    def _write_file(self, raws: list[bytes]) -> int:
        """Replace the file with these records, atomically; returns its size."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = MAGIC + b"".join(_frame(r) for r in raws)
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            self._fsync(f.fileno())
        os.replace(tmp, self.path)
        _fsync_folder(self.path.parent)
        return len(data)

    async def reset(self, live: list[tuple[bytes, bytes]]) -> None:
        """After re-admission: `live` (hash, raw) are the recovered transactions the pool kept.
        The file is rewritten with only them. Call before any `append`."""
        assert not self._live and not self._flushing, "reset is for start-up, before any append"
        self.recovered = []
        for tx_hash, raw in live:
            if tx_hash not in self._live:
                self._live[tx_hash] = raw
                self._live_bytes += framed_size(raw)
        raws = list(self._live.values())
        self._file.close()
        self.file_bytes = await trio.to_thread.run_sync(self._write_file, raws)
        self._file = open(self.path, "ab")
        self.compactions += 1

    # ---- appending ----------------------------------------------------------------------

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._live

    def __len__(self) -> int:
        return len(self._live)

    @property
    def live_bytes(self) -> int:
        return self._live_bytes

    async def append(self, tx_hash: bytes, raw: bytes) -> None:
        """Return once `raw` is on disk (fsynced). Raises `JournalFull`, or `OSError` if the
        write failed (then nothing was acknowledged and the record is not kept)."""
        batch = self._pending.get(tx_hash)
        if batch is None:
            if tx_hash in self._live:
                return  # already durable
            size = framed_size(raw)
            if self._live_bytes + size > self.bytes_max:
                raise JournalFull(f"the transaction journal holds {self._live_bytes} bytes of pending transactions; its limit is {self.bytes_max}")
            self._live[tx_hash] = raw
            self._live_bytes += size
            batch = self._open
            batch.records.append(raw)
            self._pending[tx_hash] = batch
        while not batch.done.is_set():
            if self._flushing:
                await self._idle.wait()
                continue
            self._flushing = True
            self._idle = trio.Event()
            try:
                # Shielded: the records of other submitters are in this batch too.
                with trio.CancelScope(shield=True):
                    flushing, self._open = self._open, _Batch()
                    await self._flush(flushing)
            finally:
                self._flushing = False
                self._idle.set()
        if batch.error is not None:
            raise batch.error

    async def _flush(self, batch: _Batch) -> None:
        added = sum(framed_size(r) for r in batch.records)
        dead = self.file_bytes - (self._live_bytes - added)
        rewrite = (
            self._rewrite_next
            or self.file_bytes + added > self.bytes_max
            or (self.file_bytes + added > COMPACT_BYTES_MIN and dead > self._live_bytes)
        )
        try:
            if rewrite:
                # The live records include this batch's (taken now, before any await).
                raws = list(self._live.values())
                self.file_bytes = await trio.to_thread.run_sync(self._rewrite, raws)
                self.compactions += 1
            else:
                await trio.to_thread.run_sync(self._append, b"".join(_frame(r) for r in batch.records))
                self.file_bytes += added
            self._rewrite_next = False
            self.syncs += 1
        except OSError as exc:
            log.error("%s: writing %d transactions failed: %s", self.path, len(batch.records), exc)
            batch.error = exc
            self._rewrite_next = True
            for tx_hash, raw in list(self._live.items()):
                if self._pending.get(tx_hash) is batch:
                    self._forget(tx_hash)
        finally:
            for tx_hash in [h for h, b in self._pending.items() if b is batch]:
                del self._pending[tx_hash]
            batch.done.set()

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()
        self._fsync(self._file.fileno())

    def _rewrite(self, raws: list[bytes]) -> int:
        self._file.close()
        try:
            return self._write_file(raws)
        finally:
            self._file = open(self.path, "ab")

    # ---- settling -----------------------------------------------------------------------

    def forget(self, tx_hashes) -> None:
        """These transactions are settled (committed or expired): their records are dead."""
        for tx_hash in tx_hashes:
            if tx_hash in self._live:
                self._forget(tx_hash)

    def _forget(self, tx_hash: bytes) -> None:
        raw = self._live.pop(tx_hash)
        self._live_bytes -= framed_size(raw)
        self._pending.pop(tx_hash, None)

    def close(self) -> None:
        self._file.close()

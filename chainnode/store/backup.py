"""Backup files and block archives, streamed to and from disk in bounded memory, each
ending in a digest over every byte before it (docs/protocol.md, "Backup files").

- A **backup** (`chainnode db snapshot`) holds every key and value of one LevelDB snapshot,
  in key order. A block's write batch is in a snapshot whole or not at all, so a backup
  restores (`restore`) to a chain at a whole block.
- A **block archive** (`chainnode db export-blocks`) holds certified blocks A..B, each with
  its commit certificate and receipts. Importing one replays every block through the
  chain's full checks, as block sync does (chainnode/node/admin.py).

Both are written to FILE.tmp, fsynced and renamed, so FILE is whole or absent. Readers check
the framing, every size, the key order and the digest before anything is committed, and
say what is wrong and what to do.

    file    = magic ‖ frame(header) ‖ frame(record)* ‖ u32(0) ‖ frame([1, record count]) ‖ digest
    frame   = u32 big-endian length (at least 1) ‖ msgpack of that length
    digest  = the chain's hash (SM3 on `sm` chains), chained over 1 MiB chunks (`_Digest`)

The digest protects against damage (a truncated copy, a flipped bit), not against someone
who rewrites the file: an archive's blocks are verified against their certificates when
imported, and a restored directory can be checked with `chainnode db verify`.
"""

from __future__ import annotations

import os
import shutil
import struct
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterator

from chainnode.crypto import HASH_BYTES, SUITE_NAMES, CryptoSuite, get_suite
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_str, expect_version, pack, unpack
from chainnode.protocol.merkle import merkle_root
from chainnode.protocol.types import BLOCK_TXS_MAX, Block, CommitCertificate, Receipt
from chainnode.store.ledger import GENESIS_KEY, HEAD_KEY, Ledger
from chainnode.store.leveldb import DB_DIRNAME, FORMAT, FORMAT_KEY, StorageError, Store, lock_data_dir

BACKUP_MAGIC = b"chainnode-backup/1\n"
ARCHIVE_MAGIC = b"chainnode-blocks/1\n"
HEADER_BYTES_MAX = 4096
# A backup record is one LevelDB key and value: the largest value is a block's list of
# transaction hashes (`b:`, at most 100,000 x 34 bytes), then a transaction record (`t:`, 1 MiB).
BACKUP_RECORD_BYTES_MAX = 8 << 20
# An archive record is one block (at most BLOCK_BYTES_MAX, 64 MiB) with its certificate and receipts.
ARCHIVE_RECORD_BYTES_MAX = 128 << 20
DIGEST_CHUNK_BYTES = 1 << 20
IO_BUFFER_BYTES = 1 << 20
RESTORE_BATCH_BYTES_MAX = 4 << 20  # one synced LevelDB write per this much restored
TICK_RECORDS = 256  # how often a long job reports progress (and may be abandoned)
RESTORE_DIRNAME = "restore.tmp"  # in the target data directory, renamed into place when whole
# Files of a data directory that hold a node's chain or its votes: a restore never mixes
# into them (the votes are chainnode/pbft/driver.py's SAFETY_FILE).
NODE_STATE_FILES = (DB_DIRNAME, "consensus.state")

# (records, bytes) so far; called every TICK_RECORDS records. It may raise to abandon the
# job (the admin socket's cancellation does), and the partial file is then removed.
Tick = Callable[[int, int], None]


class BackupError(ValueError):
    """A backup or archive that cannot be written, read or used; the message says why and
    what to do."""


# ---- the digest -------------------------------------------------------------------------


class _Digest:
    """The suite hash of a byte stream, chained over fixed chunks so that it streams with a
    one-shot hash and does not depend on how the stream was cut into writes:

        d = H("chainnode-backup/digest"); for each whole 1 MiB chunk c: d = H(d ‖ c); digest = H(d ‖ rest)
    """

    DOMAIN = b"chainnode-backup/digest"

    def __init__(self, suite: CryptoSuite) -> None:
        self._hash = suite.hash
        self._state = suite.hash(self.DOMAIN)
        self._pending = bytearray()

    def update(self, data: bytes) -> None:
        self._pending += data
        if len(self._pending) < DIGEST_CHUNK_BYTES:
            return
        whole = len(self._pending) - len(self._pending) % DIGEST_CHUNK_BYTES
        with memoryview(self._pending) as view:
            for start in range(0, whole, DIGEST_CHUNK_BYTES):
                self._state = self._hash(self._state + view[start:start + DIGEST_CHUNK_BYTES].tobytes())
        del self._pending[:whole]

    def digest(self) -> bytes:
        return self._hash(self._state + bytes(self._pending))


# ---- headers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BackupHeader:
    """What a backup is of: the chain, and the head block the snapshot holds."""

    chain_id: str
    suite: str
    genesis_hash: bytes
    height: int
    head_hash: bytes
    ledger_format: str  # the data directory format the records are in (m:format)
    created_ms: int

    def to_fields(self) -> list:
        return [1, self.chain_id, self.suite, self.genesis_hash, self.height, self.head_hash, self.ledger_format, self.created_ms]

    @classmethod
    def from_fields(cls, f: Any) -> "BackupHeader":
        f = expect_list(f, "backup header")
        expect_version(f, "backup header", 1)
        expect_list(f, "backup header", length=8)
        return cls(
            chain_id=expect_str(f[1], "chain id", max_length=64),
            suite=_suite_name(f[2]),
            genesis_hash=expect_bytes(f[3], "genesis hash", length=HASH_BYTES),
            height=expect_int(f[4], "height"),
            head_hash=expect_bytes(f[5], "head hash", length=HASH_BYTES),
            ledger_format=expect_str(f[6], "ledger format", max_length=64),
            created_ms=expect_int(f[7], "created"),
        )


@dataclass(frozen=True)
class ArchiveHeader:
    """What a block archive holds: blocks from_height..to_height of a chain."""

    chain_id: str
    suite: str
    genesis_hash: bytes
    from_height: int
    to_height: int
    created_ms: int

    def to_fields(self) -> list:
        return [1, self.chain_id, self.suite, self.genesis_hash, self.from_height, self.to_height, self.created_ms]

    @classmethod
    def from_fields(cls, f: Any) -> "ArchiveHeader":
        f = expect_list(f, "archive header")
        expect_version(f, "archive header", 1)
        expect_list(f, "archive header", length=7)
        header = cls(
            chain_id=expect_str(f[1], "chain id", max_length=64),
            suite=_suite_name(f[2]),
            genesis_hash=expect_bytes(f[3], "genesis hash", length=HASH_BYTES),
            from_height=expect_int(f[4], "from height", lo=1),
            to_height=expect_int(f[5], "to height", lo=1),
            created_ms=expect_int(f[6], "created"),
        )
        if header.to_height < header.from_height:
            raise DecodeError(f"archive header: blocks {header.from_height}..{header.to_height} is an empty range")
        return header


def _suite_name(v: Any) -> str:
    name = expect_str(v, "suite", max_length=16)
    if name not in SUITE_NAMES:
        raise DecodeError(f"suite {name!r} is not one of {', '.join(SUITE_NAMES)}")
    return name


# ---- writing ----------------------------------------------------------------------------


class _Writer:
    """Frames into FILE.tmp with the running digest; `finish` seals the file and renames it
    to FILE. Leaving the `with` block any other way removes FILE.tmp."""

    def __init__(self, path: str | os.PathLike, magic: bytes, suite: CryptoSuite, header_fields: list) -> None:
        self.path = Path(path)
        if self.path.exists():
            raise BackupError(f"{self.path} exists; choose another --out, or move that file away first")
        if not self.path.parent.is_dir():
            raise BackupError(f"{self.path.parent} is not a directory; create it, or choose another --out")
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.records = 0
        self.bytes = 0
        self._digest = _Digest(suite)
        with self._io("create"):
            # 0600: a backup holds the whole chain state, as readable as the data directory should be.
            self._file: BinaryIO = os.fdopen(os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb", buffering=IO_BUFFER_BYTES)
        try:
            self._raw(magic)
            self._frame(pack(header_fields))
        except BaseException:
            self.__exit__(BackupError)
            raise

    def __enter__(self) -> "_Writer":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if not self._file.closed:
            self._file.close()
        if exc_type is not None:
            self.tmp.unlink(missing_ok=True)

    def _io(self, doing: str):
        return _os_errors(f"cannot {doing} {self.tmp}", "check the free space and permissions of its folder")

    def _raw(self, data: bytes) -> None:
        with self._io("write"):
            self._file.write(data)
        self._digest.update(data)
        self.bytes += len(data)

    def _frame(self, payload: bytes) -> None:
        self._raw(struct.pack(">I", len(payload)))
        self._raw(payload)

    def record(self, payload: bytes, bytes_max: int) -> None:
        if len(payload) > bytes_max:  # the format's bound is above anything the ledger writes: a bug if it is not
            raise BackupError(f"a record of {len(payload)} bytes is more than the file format allows ({bytes_max}); please report it")
        self._frame(payload)
        self.records += 1

    def finish(self) -> None:
        self._raw(struct.pack(">I", 0))
        self._frame(pack([1, self.records]))
        digest = self._digest.digest()
        with self._io("write"):
            self._file.write(digest)
            self._file.flush()
            os.fsync(self._file.fileno())
        self._file.close()
        self.bytes += len(digest)
        if self.path.exists():  # it was not there when we began: someone else wrote it meanwhile
            raise BackupError(f"{self.path} appeared while this one was written; choose another --out")
        with self._io("rename"):
            os.rename(self.tmp, self.path)
            _fsync_dir(self.path.parent)


@contextmanager
def _os_errors(what: str, hint: str) -> Iterator[None]:
    """An OSError as a BackupError that names the file and what to check."""
    try:
        yield
    except OSError as exc:
        raise BackupError(f"{what}: {exc.strerror or exc}; {hint}") from None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_backup(snapshot: Any, path: str | os.PathLike, *, chain_id: str, suite: CryptoSuite, tick: Tick | None = None) -> dict:
    """Write every key and value of `snapshot` (a `Store.snapshot()`, which the caller
    closes) to `path`; returns what was written (file, height, keys, bytes, ms)."""
    started = time.monotonic()
    head = snapshot.get(HEAD_KEY)
    genesis = snapshot.get(GENESIS_KEY)
    if head is None or genesis is None:
        raise BackupError("the data directory has no chain yet (no head block); there is nothing to back up")
    try:
        height, head_hash = unpack(head, max_bytes=64)
    except (DecodeError, ValueError):
        raise BackupError("the data directory's head record (m:head) is corrupt; run `chainnode db verify` on it, or back up another node") from None
    header = BackupHeader(chain_id, suite.name, genesis, height, head_hash, (snapshot.get(FORMAT_KEY) or b"").decode(), int(time.time() * 1000))
    with _Writer(path, BACKUP_MAGIC, suite, header.to_fields()) as out, snapshot.iterator() as records:
        for key, value in records:
            out.record(pack([key, value]), BACKUP_RECORD_BYTES_MAX)
            if tick is not None and out.records % TICK_RECORDS == 0:
                tick(out.records, out.bytes)
        out.finish()
    return {"file": str(path), "height": height, "headHash": head_hash.hex(), "genesisHash": genesis.hex(), "keys": out.records,
            "bytes": out.bytes, "ms": round((time.monotonic() - started) * 1000)}


def export_blocks(ledger: Ledger, path: str | os.PathLike, *, chain_id: str, from_height: int, to_height: int | None = None,
                  tick: Tick | None = None) -> dict:
    """Write blocks from_height..to_height (default: the head) with their certificates and
    receipts to `path`. Committed blocks never change, so a running node's ledger can be
    read while it commits more (a body it prunes meanwhile fails the export, naming the
    oldest block it keeps). Returns what was written (file, from, to, blocks, bytes, ms)."""
    started = time.monotonic()
    head = ledger.head_height
    to_height = head if to_height is None else to_height
    if not 1 <= from_height <= to_height <= head:
        raise BackupError(f"blocks {from_height}..{to_height} are not all committed here: the head is block {head}; "
                          f"choose 1 <= --from <= --to <= {head} (block 0 is the genesis, which every node makes itself)")
    _check_bodies_kept(ledger, from_height, to_height)
    header = ArchiveHeader(chain_id, ledger.suite.name, ledger.genesis_hash, from_height, to_height, int(time.time() * 1000))
    with _Writer(path, ARCHIVE_MAGIC, ledger.suite, header.to_fields()) as out:
        for height in range(from_height, to_height + 1):
            out.record(pack(_archive_record(ledger, height)), ARCHIVE_RECORD_BYTES_MAX)
            if tick is not None:
                tick(out.records, out.bytes)
        out.finish()
    return {"file": str(path), "from": from_height, "to": to_height, "blocks": out.records, "bytes": out.bytes,
            "ms": round((time.monotonic() - started) * 1000)}


def _check_bodies_kept(ledger: Ledger, from_height: int, to_height: int) -> None:
    oldest = ledger.oldest_block_height()
    if from_height < oldest:
        raise BackupError(f"blocks {from_height}..{to_height} are not all kept here: this node keeps block bodies from block {oldest} on "
                          "(older ones are pruned, [storage] block_history_blocks, or it started from a snapshot); "
                          f"choose --from {oldest} or later, or export the older blocks from an archive node")


def _archive_record(ledger: Ledger, height: int) -> list:
    block, certificate, tx_hashes = ledger.get_block(height), ledger.get_certificate(height), ledger.get_block_tx_hashes(height)
    receipts = [ledger.get_receipt(h) for h in tx_hashes or []]
    if block is None or certificate is None or None in receipts:
        _check_bodies_kept(ledger, height, height)  # pruned while the export ran
        raise BackupError(f"block {height} is incomplete in this data directory (its header, certificate or a receipt is missing); "
                          "run `chainnode db verify` on it, or export from another node")
    return [block.to_fields(), certificate.to_fields(), [r.to_fields() for r in receipts]]


# ---- reading ----------------------------------------------------------------------------

_KINDS = {BACKUP_MAGIC: ("backup", "`chainnode db restore`"), ARCHIVE_MAGIC: ("block archive", "`chainnode db import-blocks`")}


class _Reader:
    """The frames of one file, checked as they are read: magic, header, records (each at
    most `record_bytes_max`), the end mark, the trailer's count, the digest (in the suite
    the header names) and nothing after it. `records()` raises BackupError at the first
    thing wrong; it has checked the digest when it ends normally."""

    def __init__(self, path: str | os.PathLike, magic: bytes, record_bytes_max: int) -> None:
        self.path = Path(path)
        self._record_bytes_max = record_bytes_max
        self.bytes_read = 0
        self._digest: _Digest | None = None
        self._seen = bytearray()  # the bytes before the header names the suite of the digest
        try:
            self._file: BinaryIO = open(self.path, "rb", buffering=IO_BUFFER_BYTES)
        except FileNotFoundError:
            raise BackupError(f"{self.path} not found") from None
        except OSError as exc:
            raise BackupError(f"cannot read {self.path}: {exc.strerror}") from None
        try:
            self._check_magic(magic)
            self.header_fields = self._decode(self._frame(HEADER_BYTES_MAX, "header"), HEADER_BYTES_MAX, "header")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "_Reader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_magic(self, magic: bytes) -> None:
        found = self._file.read(len(magic))
        self._note(found)
        if found == magic:
            return
        kind, command = _KINDS[magic]
        if found in _KINDS and found != magic:
            other, other_command = _KINDS[found]
            raise BackupError(f"{self.path} is a {other}, not a {kind}: use it with {other_command}")
        if found.startswith(magic.split(b"/")[0] + b"/"):
            raise BackupError(f"{self.path} is a {kind} of format {found.decode(errors='replace').strip()}, which this release does not "
                              f"read (it reads {magic.decode().strip()}): use the release that wrote it")
        raise BackupError(f"{self.path} is not a chainnode {kind} (it does not begin with {magic.decode().strip()!r}); is it the right file?")

    def begin(self, suite: CryptoSuite) -> None:
        """Start the digest, in the suite the header named."""
        self._digest = _Digest(suite)
        self._digest.update(bytes(self._seen))
        self._seen.clear()

    def _note(self, data: bytes) -> None:
        self.bytes_read += len(data)
        if self._digest is None:
            self._seen += data
        else:
            self._digest.update(data)

    def _exact(self, size: int, what: str) -> bytes:
        try:
            data = self._file.read(size)
        except OSError as exc:
            raise BackupError(f"cannot read {self.path}: {exc.strerror}") from None
        if len(data) != size:
            raise BackupError(f"{self.path} ends early (at byte {self.bytes_read + len(data)}, in {what}): it is truncated; copy it again")
        self._note(data)
        return data

    def _frame(self, bytes_max: int, what: str) -> bytes:
        size = struct.unpack(">I", self._exact(4, what))[0]
        if size > bytes_max:
            raise BackupError(f"{self.path}: {what} at byte {self.bytes_read} claims {size} bytes, more than the format allows ({bytes_max}): "
                              "the file is damaged")
        return self._exact(size, what) if size else b""

    def _decode(self, payload: bytes, bytes_max: int, what: str) -> Any:
        try:
            return unpack(payload, max_bytes=bytes_max)
        except DecodeError as exc:
            raise BackupError(f"{self.path}: {what} at byte {self.bytes_read} is not valid ({exc}): the file is damaged") from None

    def records(self) -> Iterator[Any]:
        assert self._digest is not None, "begin(suite) before reading records"
        count = 0
        while True:
            payload = self._frame(self._record_bytes_max, f"record {count + 1}")
            if not payload:
                break
            yield self._decode(payload, self._record_bytes_max, f"record {count + 1}")
            count += 1
        trailer = self._decode(self._frame(HEADER_BYTES_MAX, "trailer"), HEADER_BYTES_MAX, "trailer")
        expected = self._digest.digest()
        digest = self._file.read(HASH_BYTES)
        if len(digest) != HASH_BYTES:
            raise BackupError(f"{self.path} ends early (in its digest): it is truncated; copy it again")
        if self._file.read(1):
            raise BackupError(f"{self.path} has bytes after its digest: it is damaged or two files were joined; copy it again")
        if digest != expected:
            raise BackupError(f"{self.path}: its digest does not match its contents: the file is damaged (or was changed); use another copy")
        if trailer != [1, count]:
            raise BackupError(f"{self.path}: its trailer does not say {count} records: the file is damaged; use another copy")


def _open_backup(path: str | os.PathLike) -> tuple[_Reader, BackupHeader]:
    reader = _Reader(path, BACKUP_MAGIC, BACKUP_RECORD_BYTES_MAX)
    try:
        header = BackupHeader.from_fields(reader.header_fields)
    except DecodeError as exc:
        reader.close()
        raise BackupError(f"{path}: its header is not valid ({exc}): the file is damaged") from None
    reader.begin(get_suite(header.suite))
    return reader, header


def read_backup_header(path: str | os.PathLike) -> BackupHeader:
    """What a backup file says it holds (its contents are checked by `restore`)."""
    reader, header = _open_backup(path)
    reader.close()
    return header


class BlockArchive:
    """A block archive being read: `header`, then `blocks()`, each checked on the way (its
    height, that its certificate and receipts are its own), and the digest at the end."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._reader = _Reader(path, ARCHIVE_MAGIC, ARCHIVE_RECORD_BYTES_MAX)
        try:
            self.header = ArchiveHeader.from_fields(self._reader.header_fields)
        except DecodeError as exc:
            self._reader.close()
            raise BackupError(f"{path}: its header is not valid ({exc}): the file is damaged") from None
        self.suite = get_suite(self.header.suite)
        self._reader.begin(self.suite)

    def close(self) -> None:
        self._reader.close()

    def __enter__(self) -> "BlockArchive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def blocks(self) -> Iterator[tuple[Block, CommitCertificate, list[Receipt]]]:
        height = self.header.from_height
        for fields in self._reader.records():
            if height > self.header.to_height:
                raise BackupError(f"{self.path} holds more blocks than its header's {self.header.from_height}..{self.header.to_height}: it is damaged")
            yield self._decode_block(fields, height)
            height += 1
        if height != self.header.to_height + 1:
            raise BackupError(f"{self.path} ends at block {height - 1}, its header says {self.header.to_height}: it is damaged")

    def _decode_block(self, fields: Any, height: int) -> tuple[Block, CommitCertificate, list[Receipt]]:
        try:
            f = expect_list(fields, "archived block", length=3)
            block, certificate = Block.from_fields(f[0]), CommitCertificate.from_fields(f[1])
            receipts = [Receipt.from_fields(r) for r in expect_list(f[2], "archived receipts", max_length=BLOCK_TXS_MAX)]
        except (DecodeError, ValueError) as exc:
            raise BackupError(f"{self.path}: block {height} is not valid ({exc}): the archive is damaged; export it again") from None
        header = block.header
        wrong = (f"it is block {header.height}" if header.height != height
                 else "its certificate is for another block" if (certificate.height, certificate.block_hash) != (height, header.hash(self.suite))
                 else "its receipts are not the ones its header commits to"
                 if len(receipts) != header.tx_count or merkle_root([r.encode() for r in receipts], self.suite.hash) != header.receipt_root
                 else "")
        if wrong:
            raise BackupError(f"{self.path}: the record of block {height} is wrong ({wrong}): the archive is damaged; export it again")
        return block, certificate, receipts


def check_archive(path: str | os.PathLike) -> ArchiveHeader:
    """Read a whole archive, checking everything but the certificates' signatures (which
    the import verifies against the chain's sealer sets): nothing is imported from a
    damaged file."""
    with BlockArchive(path) as archive:
        for _ in archive.blocks():
            pass
        return archive.header


# ---- restoring --------------------------------------------------------------------------


def open_offline(data_dir: str | os.PathLike) -> Store:
    """A stopped node's data directory, for reading: locked (so no node starts on it
    meanwhile), its format checked, nothing written to it."""
    store = Store(data_dir, create=False, upgrading=True)
    if store.format != FORMAT.decode():
        found = store.format
        store.close()
        raise StorageError(f"{data_dir} holds format {found or '(none)'!r}, this release reads {FORMAT.decode()!r}: "
                           "run `chainnode db migrate --config node.toml` first, or use the release that wrote it")
    return store


def restore(path: str | os.PathLike, data_dir: str | os.PathLike, *, genesis_hash: bytes | None = None, tick: Tick | None = None) -> dict:
    """Restore a backup into `data_dir`, which must hold no chain yet (a directory that
    `chainnode init` made, holding only block 0 of the same chain, counts as empty).

    The records go into `<data_dir>/restore.tmp/` in bounded batches; only when the digest,
    the key order and the head all check out is its chain.db renamed into place. A restore
    that fails, or is killed, leaves the data directory as it was. `genesis_hash`: the
    chain the node's genesis names (refuses a backup of another). Returns what was restored."""
    started = time.monotonic()
    data_dir = Path(data_dir)
    reader, header = _open_backup(path)
    with reader:
        _check_backup_fits(reader.path, header, genesis_hash)
        if data_dir.exists() and not data_dir.is_dir():
            raise BackupError(f"{data_dir} is not a directory; choose another --data-dir")
        data_dir.mkdir(parents=True, exist_ok=True)
        replaces = _replaceable_chain(data_dir, header)
        lock = lock_data_dir(data_dir)
        scratch = data_dir / RESTORE_DIRNAME
        try:
            shutil.rmtree(scratch, ignore_errors=True)  # a restore killed earlier (we hold the lock: nobody else uses it)
            keys = _restore_records(reader, header, scratch, tick)
            _move_into_place(scratch, data_dir, replaces)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
            os.close(lock)
    return {"dataDir": str(data_dir), "file": str(path), "height": header.height, "headHash": header.head_hash.hex(), "keys": keys,
            "bytes": os.path.getsize(path), "ms": round((time.monotonic() - started) * 1000)}


def _check_backup_fits(path: Path, header: BackupHeader, genesis_hash: bytes | None) -> None:
    if genesis_hash is not None and header.genesis_hash != genesis_hash:
        raise BackupError(f"{path} is a backup of another chain ({header.chain_id}, genesis {header.genesis_hash.hex()[:16]}…) than this "
                          f"node's genesis ({genesis_hash.hex()[:16]}…); restore it with a node.toml of that chain, or use --data-dir")
    if header.ledger_format != FORMAT.decode():
        raise BackupError(f"{path} holds a data directory of format {header.ledger_format!r}, this release restores {FORMAT.decode()!r}: "
                          "restore it with the release that wrote it, then upgrade with `chainnode db migrate`")


def _replaceable_chain(data_dir: Path, header: BackupHeader) -> bool:
    """Whether data_dir holds a chain.db to replace (one with only this chain's block 0);
    BackupError if it holds anything a restore must not overwrite."""
    held = [name for name in NODE_STATE_FILES if (data_dir / name).exists()]
    if held != [DB_DIRNAME]:
        if not held:
            return False
        raise BackupError(f"{data_dir} holds a node's data ({', '.join(held)}); restore into an empty directory, or stop its node and move "
                          f"{' and '.join(held)} away first (docs/operations.md, \"Backup and restore\")")
    with open_offline(data_dir) as store:
        head, genesis = store.get(HEAD_KEY), store.get(GENESIS_KEY)
    height = unpack(head, max_bytes=64)[0] if head else -1
    if height > 0 or (genesis is not None and genesis != header.genesis_hash):
        what = f"a chain at block {height}" if height > 0 else "another chain's genesis"
        raise BackupError(f"{data_dir} already holds {what} (chain.db); restore into an empty directory, or stop its node and move "
                          "chain.db away first (docs/operations.md, \"Backup and restore\")")
    return True


def _restore_records(reader: _Reader, header: BackupHeader, scratch: Path, tick: Tick | None) -> int:
    """Write the backup's records into a new data directory at `scratch`; returns how many."""
    with Store(scratch, create=True) as store:
        batch: list[tuple[bytes, bytes]] = []
        batch_bytes = 0
        previous = b""
        count = 0
        for fields in reader.records():
            key, value = _backup_record(reader.path, fields, previous)
            batch.append((key, value))
            batch_bytes += len(key) + len(value)
            previous = key
            count += 1
            if batch_bytes >= RESTORE_BATCH_BYTES_MAX:
                store.write_batch(batch)
                batch, batch_bytes = [], 0
            if tick is not None and count % TICK_RECORDS == 0:
                tick(count, reader.bytes_read)
        store.write_batch(batch)
        _check_restored_head(reader.path, store, header)
    return count


def _backup_record(path: Path, fields: Any, previous: bytes) -> tuple[bytes, bytes]:
    try:
        f = expect_list(fields, "backup record", length=2)
        key = expect_bytes(f[0], "key", max_length=4096)
        value = expect_bytes(f[1], "value")
    except DecodeError as exc:
        raise BackupError(f"{path}: a record is not valid ({exc}): the file is damaged") from None
    if key <= previous:
        raise BackupError(f"{path}: its keys are not in order (at {key[:32]!r}): the file is damaged; use another copy")
    return key, value


def _check_restored_head(path: Path, store: Store, header: BackupHeader) -> None:
    """The restored records open as a ledger (Ledger checks its head) at the header's block."""
    try:
        ledger = Ledger(store, get_suite(header.suite))
    except StorageError as exc:
        raise BackupError(f"{path}: its records do not open as a chain ({exc}): the file is damaged; use another copy") from None
    if (ledger.head_height, ledger.head_hash, ledger.genesis_hash) != (header.height, header.head_hash, header.genesis_hash):
        raise BackupError(f"{path}: its records hold block {ledger.head_height}, its header says block {header.height}: "
                          "the file is damaged; use another copy")


def _move_into_place(scratch: Path, data_dir: Path, replaces: bool) -> None:
    """The one step that changes data_dir: the new chain.db takes the old one's place."""
    target = data_dir / DB_DIRNAME
    with _os_errors(f"cannot move the restored chain into {target}", "check the permissions of the data directory"):
        if replaces:
            os.rename(target, scratch / "replaced.db")  # only block 0, which `chainnode init` can make again
        os.rename(scratch / DB_DIRNAME, target)
        _fsync_dir(data_dir)

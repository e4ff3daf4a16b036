"""The node's embedded LevelDB (plyvel), opened safely.

Opening a data directory:
1. takes an exclusive lock on `<data_dir>/node.pid` holding our pid, so a second node on
   the same directory is told which process has it, not a LevelDB lock error;
2. opens `<data_dir>/chain.db`, turning LevelDB's errors into `StorageError`s that say what
   to do;
3. checks the format marker: a new, empty database gets one; a database without it (some
   other program's) or with another version is refused, an older one with the command that
   upgrades it (`chainnode db migrate`, chainnode/store/migrate.py);
4. records the software version that opened it, when it differs from the last one
   recorded (`m:versions`, the directory's upgrade history).

Writes happen only through `write_batch`, synced: a block's changes are one atomic,
durable LevelDB write (DESIGN.md rule 4).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from pathlib import Path
from typing import Iterable, Iterator

import plyvel

from chainnode.protocol.codec import DecodeError, pack, unpack
from chainnode.protocol.versions import SOFTWARE_VERSION
from chainnode.store import mmap_limit

FORMAT_KEY = b"m:format"
FORMAT = b"chainnode-ledger/2"
# Formats `chainnode db migrate` upgrades from, with the releases that wrote them.
OLDER_FORMATS = {b"chainnode-ledger/1": "chainnode 0.1"}
VERSIONS_KEY = b"m:versions"  # pack([[software version, unix ms], ...]): who opened it, oldest first
VERSIONS_KEPT = 64
DB_DIRNAME = "chain.db"
# LevelDB reads its tables with `pread`, not through memory maps (chainnode/store/mmap_limit.py):
# mapped, every page a read touched stayed in the node's resident set while its table was open.
MMAP_LIMIT_PROBLEM = mmap_limit.disable()  # before the first plyvel.DB: None, or why not
_mmap_problem_told = False
# Bloom filters in new tables (older ones are read as before): a key that is absent, as every
# new transaction's hash is in the t: index (looked up at admission and at execution), is
# found absent without reading a block of each level's table that covers it: 1-2 us against
# 10-16 us per lookup in a 1,000,000-transaction chain.
BLOOM_FILTER_BITS = 10
# Snappy compression stays on: without it LevelDB's compactions used 12 % less CPU (30 blocks
# of 2,000 transfers at 1,000,000 accounts: 5.1 s against 5.8 s), but the database was 2.1x
# larger (1.4 GB against 666 MB: transactions and receipts repeat their chain, group,
# contract and method names).
PID_FILENAME = "node.pid"

log = logging.getLogger("chainnode.store")


class StorageError(RuntimeError):
    """The data directory cannot be used; the message says why and what to do."""


class DataDirInUse(StorageError):
    pass


def lock_data_dir(data_dir: Path) -> int:
    """Take the exclusive lock on `<data_dir>/node.pid` and write our pid into it; returns
    the file descriptor, whose closing releases the lock. Besides a node, a restore holds it
    (chainnode/store/backup.py), so that no node starts on a directory being written."""
    path = data_dir / PID_FILENAME
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot open {path}: {exc.strerror}; check the directory's permissions") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise DataDirInUse(
                f"data directory {data_dir} is in use by another node (pid {holder}); "
                "stop that node first, or give this one its own --data-dir"
            ) from None
        raise StorageError(f"cannot lock {path}: {exc.strerror}") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Store:
    def __init__(self, data_dir: str | os.PathLike, *, create: bool = True, upgrading: bool = False) -> None:
        """`upgrading`: open a directory of an older format for `chainnode db migrate`
        (which checks the format itself and records no version)."""
        self.data_dir = Path(data_dir)
        self._pid_fd: int | None = None
        self._db: plyvel.DB | None = None
        if not self.data_dir.exists():
            if not create:
                raise StorageError(f"data directory {self.data_dir} does not exist; run `chainnode init` first")
            self.data_dir.mkdir(parents=True)
        elif not self.data_dir.is_dir():
            raise StorageError(f"{self.data_dir} is not a directory; choose another --data-dir")
        self._pid_fd = lock_data_dir(self.data_dir)
        try:
            self._open_db(create)
            if not upgrading:
                self._check_format()
                self._record_version()
        except BaseException:
            self.close()
            raise

    # ---- opening ------------------------------------------------------------------------

    def _open_db(self, create: bool) -> None:
        path = self.data_dir / DB_DIRNAME
        if path.exists() and not (path / "CURRENT").exists():
            raise StorageError(
                f"{path} exists but is not a LevelDB database; move it away or choose another --data-dir"
            )
        if not path.exists() and not create:
            raise StorageError(f"no chain database in {self.data_dir}; run `chainnode init` first")
        global _mmap_problem_told
        if MMAP_LIMIT_PROBLEM is not None and not _mmap_problem_told:
            _mmap_problem_told = True
            log.warning("LevelDB maps its table files into memory here (%s): the node's resident memory grows with the pages "
                        "it reads, up to the database's size (the node works as before; plyvel's wheels from PyPI avoid it)",
                        MMAP_LIMIT_PROBLEM)
        try:
            self._db = plyvel.DB(str(path), create_if_missing=create, paranoid_checks=True, bloom_filter_bits=BLOOM_FILTER_BITS)
        except plyvel.CorruptionError as exc:
            raise StorageError(
                f"the chain database in {path} is corrupt ({exc}); restore it from a backup, "
                "or move it away and let the node sync from its peers"
            ) from None
        except plyvel.IOError as exc:
            raise StorageError(f"cannot open the chain database in {path}: {exc}") from None
        except plyvel.Error as exc:
            raise StorageError(f"cannot open the chain database in {path}: {exc}") from None

    def _check_format(self) -> None:
        marker = self._db.get(FORMAT_KEY)
        if marker == FORMAT:
            return
        if marker is None:
            with self._db.iterator(include_value=False) as it:
                if next(it, None) is not None:
                    raise StorageError(
                        f"{self.data_dir / DB_DIRNAME} is a LevelDB database that chainnode did not create; "
                        "choose an empty --data-dir"
                    )
            self._db.put(FORMAT_KEY, FORMAT, sync=True)
            return
        if marker in OLDER_FORMATS:
            raise StorageError(
                f"{self.data_dir} holds format {marker.decode()!r}, written by {OLDER_FORMATS[marker]}; this node reads "
                f"{FORMAT.decode()!r}: stop the node, back the directory up, then run `chainnode db migrate --config <node.toml>` "
                "(docs/operations.md, \"Rolling upgrades\")"
            )
        raise StorageError(
            f"{self.data_dir} holds format {marker.decode(errors='replace')!r}, this node reads "
            f"{FORMAT.decode()!r}; use the chainnode version that wrote it, or migrate (docs/operations.md)"
        )

    def _record_version(self) -> None:
        try:
            history = unpack(self._db.get(VERSIONS_KEY) or pack([]), max_bytes=1 << 16)
        except DecodeError:
            history = []
        if not history or history[-1][0] != SOFTWARE_VERSION:
            history = (history + [[SOFTWARE_VERSION, int(time.time() * 1000)]])[-VERSIONS_KEPT:]
            self._db.put(VERSIONS_KEY, pack(history), sync=True)

    @property
    def format(self) -> str:
        return (self._db.get(FORMAT_KEY) or b"").decode(errors="replace")

    def versions(self) -> list[tuple[str, int]]:
        """The software versions that opened this directory, oldest first, with when."""
        raw = self._db.get(VERSIONS_KEY)
        return [(v, ms) for v, ms in unpack(raw, max_bytes=1 << 16)] if raw else []

    # ---- access -------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        """True when nothing but the format marker (and version record) has been written."""
        with self._db.iterator(include_value=False) as it:
            for key in it:
                if key not in (FORMAT_KEY, VERSIONS_KEY):
                    return False
        return True

    def get(self, key: bytes) -> bytes | None:
        return self._db.get(key)

    def snapshot(self):
        """A consistent read-only view as of now (plyvel Snapshot: `get`, `close`); a write
        batch is in it whole or not at all."""
        return self._db.snapshot()

    def iterate(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        with self._db.iterator(prefix=prefix) as it:
            yield from it

    def write_batch(self, puts: Iterable[tuple[bytes, bytes]], deletes: Iterable[bytes] = ()) -> None:
        """Apply all puts and deletes as one atomic, synced LevelDB write."""
        with self._db.write_batch(transaction=True, sync=True) as batch:
            for key in deletes:
                batch.delete(key)
            for key, value in puts:
                batch.put(key, value)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        if self._pid_fd is not None:
            os.close(self._pid_fd)  # releases the flock
            self._pid_fd = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

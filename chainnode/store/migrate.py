"""`chainnode db migrate`: upgrade a data directory written by an older release, in place.

Each step takes the database from one format to the next in ONE synced LevelDB batch that
also moves the format marker, so a migration killed at any moment leaves the directory in
the old format or the new one, never between; running it again continues from where it
is. The node must be stopped (the data directory's lock says so if it is not). Back the
directory up first: a downgrade afterwards needs the backup (docs/operations.md, "Rolling
upgrades").

Steps:
- chainnode-ledger/1 -> /2 (0.1 -> 0.2): the directory records which software versions
  opened it (`m:versions`, leveldb.py); the history starts empty here, and the first start
  of the new version adds itself.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from chainnode.protocol.codec import pack
from chainnode.store.leveldb import FORMAT, FORMAT_KEY, OLDER_FORMATS, VERSIONS_KEY, StorageError, Store


@dataclass(frozen=True)
class Step:
    source: bytes
    target: bytes
    what: str
    writes: Callable[[Store], list[tuple[bytes, bytes]]]


def _versions_history(store: Store) -> list[tuple[bytes, bytes]]:
    return [(VERSIONS_KEY, pack([]))]


STEPS = [Step(b"chainnode-ledger/1", b"chainnode-ledger/2", "start the record of the software versions that open the directory", _versions_history)]


def plan(data_dir: str | os.PathLike) -> tuple[str, list[Step]]:
    """(the directory's format, the steps that bring it to ours); StorageError for a
    directory this release cannot read or upgrade."""
    with Store(data_dir, create=False, upgrading=True) as store:
        return _plan(store)


def _plan(store: Store) -> tuple[str, list[Step]]:
    marker = store.get(FORMAT_KEY)
    if marker is None:
        raise StorageError(f"{store.data_dir} has no chainnode format marker: not a chainnode data directory")
    steps, at = [], marker
    while at != FORMAT:
        step = next((s for s in STEPS if s.source == at), None)
        if step is None:
            known = ", ".join(m.decode() for m in [*OLDER_FORMATS, FORMAT])
            raise StorageError(f"{store.data_dir} holds format {marker.decode(errors='replace')!r}, which this release neither reads nor "
                               f"upgrades (it knows {known}); a newer release wrote it: run that release")
        steps.append(step)
        at = step.target
    return marker.decode(), steps


def migrate(data_dir: str | os.PathLike, *, dry_run: bool = False) -> tuple[str, list[Step]]:
    """Run every step (each one synced batch with its marker); returns (format before, steps)."""
    with Store(data_dir, create=False, upgrading=True) as store:
        before, steps = _plan(store)
        if not dry_run:
            for step in steps:
                store.write_batch([*step.writes(store), (FORMAT_KEY, step.target)])
        return before, steps

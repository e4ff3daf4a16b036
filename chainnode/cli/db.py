"""`chainnode db`: a node's data directory: inspect, upgrade, back up, restore, verify,
and export or import a range of blocks (docs/operations.md, "Backup and restore").

    chainnode db info --config node.toml       format, head, the versions that opened it
    chainnode db migrate --config node.toml    upgrade a directory an older release wrote
    chainnode db snapshot --config node.toml --out FILE        a backup; the node running or not
    chainnode db restore --in FILE --config node.toml          into a directory without a chain
    chainnode db verify --config node.toml     recompute every root from the data (node stopped)
    chainnode db export-blocks --config node.toml --from A --to B --out FILE   the node running or not
    chainnode db import-blocks --in FILE --config node.toml    every block verified (node stopped)

A running node holds its data directory, so `snapshot` and `export-blocks` ask it to write
the file through its admin socket (chainnode/node/admin.py); with the node stopped they
read the directory themselves. The other commands need the node stopped.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import click

from chainnode.cli.common import emit
from chainnode.crypto import get_suite
from chainnode.node.admin import ADMIN_SOCKET_NAME, AdminError, AdminUnavailable, Request, call, import_blocks
from chainnode.node.config import ConfigError, NodeConfig, load_config
from chainnode.node.init import InitError
from chainnode.protocol.codec import unpack
from chainnode.store.backup import BackupError, export_blocks, open_offline, restore, write_backup
from chainnode.store.ledger import HEAD_KEY, Ledger
from chainnode.store.leveldb import FORMAT, DataDirInUse, StorageError, Store
from chainnode.store.migrate import migrate
from chainnode.store.state import STATE_PREFIX
from chainnode.store.verify import verify
from chainnode.system.genesis import Genesis, GenesisError, load_genesis
from chainnode.system.state import read_chain, read_sealer_set

PROBLEMS_SHOWN = 20


@click.group("db")
def db_group() -> None:
    """A node's data directory: inspect, upgrade, back up and restore, verify, export and import blocks."""


def _config(config_path: str) -> NodeConfig:
    try:
        return load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _data_dir(config_path: str):
    return _config(config_path).data_dir


def _genesis(config: NodeConfig) -> Genesis:
    try:
        return load_genesis(config.genesis_file)
    except GenesisError as exc:
        raise click.ClickException(str(exc)) from None


def _target(config_path: str | None, data_dir: str | None) -> tuple[Path, Genesis | None]:
    """The data directory (and the genesis, with --config) of a command that takes either."""
    if (config_path is None) == (data_dir is None):
        raise click.UsageError("pass either --config node.toml or --data-dir DIR")
    if data_dir is not None:
        return Path(data_dir).resolve(), None
    config = _config(config_path)
    return config.data_dir, _genesis(config)


@contextlib.contextmanager
def _failures() -> Iterator[None]:
    """The expected failures of these commands as one-line messages (exit status 1)."""
    try:
        yield
    except (BackupError, StorageError, AdminError, InitError) as exc:
        raise click.ClickException(str(exc)) from None


@contextlib.contextmanager
def _status(as_json: bool, label: str) -> Iterator[Callable[[str], None]]:
    """A status line on stderr for people (`update(text)`), nothing for scripts (--json, pipes)."""
    if as_json or not sys.stderr.isatty():
        yield lambda text: None
        return
    from rich.console import Console

    with Console(stderr=True).status(label) as status:
        yield lambda text: status.update(f"{label}: {text}")


def _size(result: dict) -> str:
    seconds = max(result["ms"], 1) / 1000
    size = result["bytes"]
    amount = f"{size / 1e6:.1f} MB" if size >= 100_000 else f"{size / 1e3:.1f} kB"
    return f"{amount} in {seconds:.2f} s ({size / 1e6 / seconds:.1f} MB/s)"


def _in_use(exc: DataDirInUse, data_dir: Path) -> click.ClickException:
    return click.ClickException(f"{exc}; a running node writes this file itself, through {data_dir / ADMIN_SOCKET_NAME}, which did not "
                                "answer: see the node's log (\"no admin socket\")")


def _written_here(result: dict) -> dict:
    """The node wrote the file in its own view of the filesystem; under systemd's sandbox
    (PrivateTmp=, ReadWritePaths=) that may not be ours: say so rather than report a file
    nobody can find."""
    if not Path(result["file"]).exists():
        raise click.ClickException(f"the node reports it wrote {result['file']}, but it is not there for this command: the node runs in a "
                                   "sandbox with a /tmp of its own (PrivateTmp=); write into a folder the unit lets it write "
                                   "(ReadWritePaths=, docs/operations.md, \"Backup and restore\")")
    return result


class _FlatState:
    """The committed state values straight from the store: enough to read sys/chain before
    the suite (which a Ledger needs) is known."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def get(self, key: bytes) -> bytes | None:
        return self._store.get(STATE_PREFIX + key)


def _offline_ledger(data_dir: Path, genesis: Genesis | None) -> Ledger:
    """A stopped node's ledger, read-only; the suite is the genesis's, or the chain's own."""
    store = open_offline(data_dir)
    try:
        return Ledger(store, get_suite(genesis.suite if genesis is not None else _chain_suite(store, data_dir)))
    except BaseException:
        store.close()
        raise


def _chain_suite(store: Store, data_dir: Path) -> str:
    chain = read_chain(_FlatState(store))
    if chain is None:
        raise StorageError(f"{data_dir} holds no chain (no sys/chain in its state); is it a node's data directory?")
    return chain[2]


@db_group.command("migrate")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's node.toml.")
@click.option("--dry-run", is_flag=True, help="Say what would be done, change nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_migrate(config_path: str, dry_run: bool, as_json: bool) -> None:
    """Upgrade the data directory to this release's format (stop the node and back it up first)."""
    data_dir = _data_dir(config_path)
    try:
        before, steps = migrate(data_dir, dry_run=dry_run)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    done = "would run" if dry_run else "ran"
    lines = [f"{data_dir}: format {before}" + ("" if steps else f", already {FORMAT.decode()}: nothing to do")]
    lines += [f"  {done} {s.source.decode()} -> {s.target.decode()}: {s.what}" for s in steps]
    if steps and not dry_run:
        lines.append(f"next: chainnode start --config {config_path}")
    emit(as_json, {"dataDir": str(data_dir), "formatBefore": before, "format": steps[-1].target.decode() if steps else before,
                   "dryRun": dry_run, "steps": [{"from": s.source.decode(), "to": s.target.decode(), "what": s.what} for s in steps]}, lines)


@db_group.command("info")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's node.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_info(config_path: str, as_json: bool) -> None:
    """The data directory's format, head and the software versions that opened it."""
    data_dir = _data_dir(config_path)
    try:
        with Store(data_dir, create=False, upgrading=True) as store:
            fmt, versions, head = store.format, store.versions() if store.format == FORMAT.decode() else [], store.get(HEAD_KEY)
    except StorageError as exc:
        raise click.ClickException(str(exc)) from None
    height = unpack(head, max_bytes=64)[0] if head else -1
    emit(as_json, {"dataDir": str(data_dir), "format": fmt, "current": fmt == FORMAT.decode(), "height": height,
                   "versions": [{"version": v, "sinceMs": ms} for v, ms in versions]},
         [f"{data_dir}: format {fmt}" + ("" if fmt == FORMAT.decode() else f" (this release reads {FORMAT.decode()}: run `chainnode db migrate`)"),
          f"  head: block {height}",
          *(f"  opened by chainnode {v} since {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(ms / 1000))} UTC" for v, ms in versions)])


@db_group.command("snapshot")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's node.toml.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The backup file to write (must not exist).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_snapshot(config_path: str, out_path: str, as_json: bool) -> None:
    """Back up the node's chain to a file: a consistent snapshot, while the node runs or not."""
    config = _config(config_path)
    out = Path(out_path).resolve()
    with _failures(), _status(as_json, f"writing {out}") as update:
        try:
            result = _written_here(call(config.data_dir / ADMIN_SOCKET_NAME, Request("snapshot", out),
                                        on_progress=lambda p: update(f"{p['records']:,} keys, {p['bytes'] / 1e6:.1f} MB")))
            result["online"] = True
        except AdminUnavailable:
            result = {**_offline_snapshot(config, out, update), "online": False}
    emit(as_json, result, [
        f"wrote {result['file']}: block {result['height']} ({result['headHash'][:16]}…), {result['keys']:,} keys, {_size(result)}, "
        + ("from the running node" if result["online"] else "with the node stopped"),
        f"restore it with: chainnode db restore --in {result['file']} --config node.toml   (into a directory without a chain)",
    ])


def _offline_snapshot(config: NodeConfig, out: Path, update: Callable[[str], None]) -> dict:
    genesis = _genesis(config)
    try:
        store = open_offline(config.data_dir)
    except DataDirInUse as exc:
        raise _in_use(exc, config.data_dir) from None
    try:
        snapshot = store.snapshot()
        try:
            return write_backup(snapshot, out, chain_id=genesis.chain_id, suite=get_suite(genesis.suite),
                                tick=lambda keys, written: update(f"{keys:,} keys, {written / 1e6:.1f} MB"))
        finally:
            snapshot.close()
    finally:
        store.close()


@db_group.command("restore")
@click.option("--in", "in_path", required=True, type=click.Path(dir_okay=False), help="The backup file (from `db snapshot`).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The node.toml of the node to restore (its genesis must match).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Or a data directory to restore into (made if absent).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_restore(in_path: str, config_path: str | None, data_dir: str | None, as_json: bool) -> None:
    """Restore a backup into a data directory that holds no chain yet (the node stopped)."""
    target, genesis = _target(config_path, data_dir)
    with _failures(), _status(as_json, f"restoring {in_path}") as update:
        result = restore(in_path, target, genesis_hash=genesis.hash() if genesis is not None else None,
                         tick=lambda keys, read: update(f"{keys:,} keys, {read / 1e6:.1f} MB"))
    where = f"--config {config_path}" if config_path else f"--data-dir {target}"
    emit(as_json, result, [
        f"restored block {result['height']} ({result['headHash'][:16]}…), {result['keys']:,} keys, into {result['dataDir']}: {_size(result)}",
        f"next: chainnode db verify {where}, then start the node; it syncs the blocks after {result['height']} from its peers",
    ])


@db_group.command("verify")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="The node's node.toml.")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Or the data directory itself.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with up to 1000 problems).")
def db_verify(config_path: str | None, data_dir: str | None, as_json: bool) -> None:
    """Recompute every block's hashes, certificate, roots and indexes, and the state tree, from the data (the node stopped)."""
    target, genesis = _target(config_path, data_dir)
    started_s = time.monotonic()
    with _failures(), _status(as_json, f"verifying {target}") as update:
        ledger = _offline_ledger(target, genesis)
        try:
            head = ledger.head_height
            report = verify(ledger, lambda set_hash: read_sealer_set(ledger.state, set_hash), progress=lambda h: update(f"block {h} of {head}"))
            if genesis is not None and ledger.genesis_hash != genesis.hash():
                report.add(f"the directory holds another chain (genesis {ledger.genesis_hash.hex()[:16]}…) than node.toml's genesis")
        finally:
            ledger.close()
    seconds = time.monotonic() - started_s
    data = {"dataDir": str(target), "height": report.head_height, "blocks": report.blocks, "transactions": report.transactions,
            "bodiesFrom": report.bodies_from, "fromSnapshot": report.from_snapshot, "headersFrom": report.headers_from,
            "withoutReceipts": ([report.without_receipts_from, report.without_receipts_to]
                                if report.without_receipts_from <= report.without_receipts_to else None),
            "absentTransactions": report.absent_transactions, "recentBodiesPending": report.recent_bodies_pending,
            "ok": report.ok, "problemsTotal": report.problems_total, "problems": report.problems, "ms": round(seconds * 1000)}
    if report.ok:
        emit(as_json, data, [f"{target}: {_verified(report)} verified in {seconds:.1f} s: every hash, certificate, root and index holds"])
        return
    more = report.problems_total - PROBLEMS_SHOWN
    emit(as_json, data, [
        f"{target}: {report.problems_total} problem(s) in blocks 0..{report.head_height}:",
        *(f"  {p}" for p in report.problems[:PROBLEMS_SHOWN]),
        *([f"  ... and {more} more (--json lists up to {len(report.problems)})"] if more > 0 else []),
        "restore the directory from a backup (chainnode db restore), or move it away and let the node sync from its peers",
    ])
    click.get_current_context().exit(1)


def _verified(report) -> str:
    """What `db verify` checked, for the line it prints when everything holds."""
    head = report.head_height
    if not report.from_snapshot:
        if report.bodies_from == 0:
            return f"blocks 0..{head} ({report.transactions:,} transactions)"
        return (f"blocks 0..{head} (bodies from block {report.bodies_from} on, {report.transactions:,} transactions; those before are "
                "pruned: their headers and certificates checked)")
    low = report.headers_from
    notes = ["started from a snapshot" + (f": blocks 1..{low - 1} were never here" if low > 1 else "")]
    if report.without_receipts_from <= report.without_receipts_to:
        notes.append(f"blocks {report.without_receipts_from}..{report.without_receipts_to} hold their transactions without receipts, "
                     "as fetched to refuse replays")
    if report.bodies_from > low:
        notes.append(f"bodies from block {report.bodies_from} on, the headers and certificates before checked")
    notes.append(f"{report.transactions:,} transactions")
    if report.recent_bodies_pending:
        notes.append("the blocks before the snapshot that replays need are not all fetched yet: the node goes on when it starts")
    return f"blocks 0{f' and {low}' if low > 1 else ''}..{head} ({'; '.join(notes)})"


@db_group.command("export-blocks")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's node.toml.")
@click.option("--from", "from_height", type=click.IntRange(1), default=1, show_default=True, help="The first block.")
@click.option("--to", "to_height", type=click.IntRange(1), default=None, help="The last block (default: the head).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The archive file to write (must not exist).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_export_blocks(config_path: str, from_height: int, to_height: int | None, out_path: str, as_json: bool) -> None:
    """Archive certified blocks with their receipts to a file, while the node runs or not."""
    config = _config(config_path)
    out = Path(out_path).resolve()
    with _failures(), _status(as_json, f"writing {out}") as update:
        try:
            result = _written_here(call(config.data_dir / ADMIN_SOCKET_NAME, Request("export-blocks", out, from_height, to_height),
                                        on_progress=lambda p: update(f"{p['records']:,} blocks, {p['bytes'] / 1e6:.1f} MB")))
        except AdminUnavailable:
            genesis = _genesis(config)
            try:
                ledger = _offline_ledger(config.data_dir, genesis)
            except DataDirInUse as exc:
                raise _in_use(exc, config.data_dir) from None
            with ledger:
                result = export_blocks(ledger, out, chain_id=genesis.chain_id, from_height=from_height, to_height=to_height,
                                       tick=lambda blocks, written: update(f"{blocks:,} blocks, {written / 1e6:.1f} MB"))
    emit(as_json, result, [
        f"wrote {result['file']}: blocks {result['from']}..{result['to']}, {_size(result)}",
        f"import it with: chainnode db import-blocks --in {result['file']} --config node.toml   (the node stopped)",
    ])


@db_group.command("import-blocks")
@click.option("--in", "in_path", required=True, type=click.Path(dir_okay=False), help="The archive (from `db export-blocks`).")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's node.toml.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def db_import_blocks(in_path: str, config_path: str, as_json: bool) -> None:
    """Apply an archive's blocks to the stopped node, each verified as block sync verifies it."""
    config = _config(config_path)
    genesis = _genesis(config)
    with _failures(), _status(as_json, f"importing {in_path}") as update:
        result = import_blocks(config, genesis, Path(in_path), progress=lambda h: update(f"block {h}"))
    emit(as_json, result, [
        f"imported blocks {result['from']}..{result['to']} of {result['file']}: {result['applied']} applied (each verified), "
        f"{result['to'] - result['from'] + 1 - result['applied']} already here; the node is at block {result['height']} ({result['ms'] / 1000:.1f} s)",
        f"next: chainnode start --config {config_path}",
    ])

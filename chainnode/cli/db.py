"""`chainnode db`: a node's data directory, offline (the node stopped).

    chainnode db info --config node.toml       format, head, the versions that opened it
    chainnode db migrate --config node.toml    upgrade a directory an older release wrote
"""

from __future__ import annotations

import time

import click

from chainnode.cli.common import emit
from chainnode.node.config import ConfigError, load_config
from chainnode.protocol.codec import unpack
from chainnode.store.ledger import HEAD_KEY
from chainnode.store.leveldb import FORMAT, StorageError, Store
from chainnode.store.migrate import migrate


@click.group("db")
def db_group() -> None:
    """A node's data directory while the node is stopped: inspect it, upgrade its format."""


def _data_dir(config_path: str):
    try:
        return load_config(config_path).data_dir
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


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

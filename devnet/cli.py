"""The `devnet` command line for testers: a local multi-node network.

`devnet keys` makes the node keys a local network needs; `devnet up` (starting the nodes)
arrives with the node itself (issue 6).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from chainnode.crypto import SUITE_NAMES, get_suite
from chainnode.keyfile import SCRYPT_N_DEFAULT, KeyFileError, encrypt_key, write_key_file

DEVNET_PASSWORD = "devnet"  # local test networks only; documented in the README


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """devnet: a local multi-node chainnode network for testing."""


@main.command()
@click.option("--nodes", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--suite", type=click.Choice(SUITE_NAMES), default="sm", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="devnet-data", show_default=True)
@click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keys(nodes: int, suite: str, out_dir: str, scrypt_n: int, as_json: bool) -> None:
    """Generate one encrypted key file per node (password "devnet")."""
    s = get_suite(suite)
    out = Path(out_dir)
    rows = []
    for i in range(nodes):
        node_dir = out / f"node{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        priv, _ = s.generate_keypair()
        doc = encrypt_key(suite, priv, DEVNET_PASSWORD, scrypt_n=scrypt_n)
        try:
            write_key_file(node_dir / "node.key", doc)
        except KeyFileError as exc:
            raise click.ClickException(f"{exc} (or run with a fresh --out)") from None
        rows.append({"node": f"node{i}", "key": str(node_dir / "node.key"), "address": doc["address"]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            click.echo(f"{row['node']}: 0x{row['address']}  {row['key']}")


if __name__ == "__main__":
    main()

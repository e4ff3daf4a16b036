"""`devnet migrate`: convert a devnet made by chainnode 0.1, whose certificates were a msgpack
format in JSON files (ca.cert, agency.cert, *.chain), to X.509.

A devnet folder holds every private key of its consortium (CA, agency, nodes, clients, role
accounts), so the conversion re-issues each certificate as X.509 with the same key, name,
role and peer id: addresses, peer ids and the consensus keys stay. The genesis names the CA
as "ca_certs" instead of "ca_cert", and because the CA is part of block 0, the genesis hash
changes: each node's chain data is re-initialised at block 0 (a devnet's chain is a test
chain; a consortium's real chain is migrated by its members, docs/certificates.md).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from chainnode.crypto import get_suite
from chainnode.node.init import init_node
from chainnode.security.keyfile import load_key
from devnet.layout import (
    CHAIN_FILE,
    CLIENT_ROLES,
    CLIENTS_DIR,
    DEVNET_PASSWORD,
    certify_pki,
    client_files,
    issue_client_certificate,
    issue_node_certificate,
)

OLD_CERT_FILES = ("ca/ca.cert", "ca/revoked.crl", "agency/agency.cert", "agency/ca.cert")
OLD_CHAIN_FILE = "node.chain"


class MigrateError(Exception):
    """The folder is not a convertible 0.1 devnet; the message says why."""


def is_old_devnet(folder: Path) -> bool:
    return (Path(folder) / "ca" / "ca.cert").exists()


def migrate(folder: Path, layout_file: str) -> list[dict]:
    """Convert the devnet in `folder` in place; returns its new layout rows."""
    folder = Path(folder)
    if not is_old_devnet(folder):
        raise MigrateError(f"{folder} holds no devnet of chainnode 0.1 (no ca/ca.cert): there is nothing to convert")
    genesis_path = folder / "genesis.json"
    genesis = json.loads(genesis_path.read_text())
    rows = json.loads((folder / layout_file).read_text())["nodes"]
    suite = genesis["suite"]

    def keys(path: Path) -> tuple[bytes, bytes]:
        key = load_key(path, DEVNET_PASSWORD)
        return key.private_key, key.public_key

    ca = certify_pki(folder, suite, keys(folder / "ca" / "ca.key"), keys(folder / "agency" / "agency.key")[1])
    for role in CLIENT_ROLES:
        key, chain = client_files(folder, role)
        if key.exists():
            issue_client_certificate(folder, keys(key)[1], name=f"devnet-{role}", role=role, out=chain)
    genesis.pop("ca_cert", None)
    genesis["ca_certs"] = [ca.der.hex()]
    genesis_path.write_text(json.dumps(genesis, indent=2) + "\n")

    new_rows = []
    for row in rows:
        node = folder / row["name"]  # not row["folder"]: the devnet may have been moved
        chain = issue_node_certificate(folder, bytes.fromhex(row["consensus_pub"]), row["peer_id"], name=row["name"], role=row["role"],
                                       out=node / CHAIN_FILE)
        # The genesis changed, so block 0 did: the old chain data cannot continue.
        shutil.rmtree(node / "chain.db", ignore_errors=True)
        for stale in ("node.toml", "genesis.json", OLD_CHAIN_FILE):
            (node / stale).unlink(missing_ok=True)
        info = init_node(
            genesis_path, node / "node.key", node, p2p_listen=f"/ip4/127.0.0.1/tcp/{row['p2p_port']}", rpc_listen=f"127.0.0.1:{row['rpc_port']}",
            channel_listen=f"127.0.0.1:{row.get('channel_port') or 20200}", password_file=node / "password.txt", cert_file=node / CHAIN_FILE,
        )
        row = {k: v for k, v in row.items() if k != "cert_serial"}
        new_rows.append({
            **row, "folder": str(node.resolve()), "config": info["config"], "cert_file": str((node / CHAIN_FILE).resolve()),
            "revocation_id": chain.leaf.revocation_id(chain.agency).hex(),
            "address": get_suite(suite).address(bytes.fromhex(row["consensus_pub"])).hex(),
        })
    for name in OLD_CERT_FILES:
        (folder / name).unlink(missing_ok=True)
    for old in (folder / CLIENTS_DIR).glob("*.chain"):
        old.unlink()
    return new_rows

"""Lay out a local network in one folder: keys, genesis, one initialised data directory
and config per node. Everything a tester needs to start the nodes as processes.

    out/
      genesis.json
      node0/ node.key password.txt node.toml genesis.json chain.db/ ...
      node1/ ...
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from chainnode.crypto import get_suite
from chainnode.keyfile import SCRYPT_N_DEFAULT, encrypt_key, write_key_file
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.node_init import init_node

DEVNET_PASSWORD = "devnet"  # local test networks only


@dataclass(frozen=True)
class NodeLayout:
    name: str
    role: str
    folder: Path
    config: Path
    rpc_url: str
    rpc_port: int
    p2p_port: int
    address: str


def create_network(
    out_dir: Path,
    *,
    sealers: int = 4,
    observers: int = 0,
    suite: str = "sm",
    p2p_port_base: int = 30300,
    rpc_port_base: int = 8545,
    chain_id: str = "chain0",
    group_id: str = "group0",
    config: dict | None = None,
    scrypt_n: int = SCRYPT_N_DEFAULT,
    ports: tuple[list[int], list[int]] | None = None,
) -> list[NodeLayout]:
    """`ports`, if given, is (p2p ports, rpc ports), one per node, instead of base + index."""
    s = get_suite(suite)
    count = sealers + observers
    p2p_ports, rpc_ports = ports or ([p2p_port_base + i for i in range(count)], [rpc_port_base + i for i in range(count)])
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    entries, keys = [], []
    for i in range(count):
        folder = out_dir / f"node{i}"
        folder.mkdir(exist_ok=True)
        priv, pub = s.generate_keypair()
        write_key_file(folder / "node.key", encrypt_key(suite, priv, DEVNET_PASSWORD, scrypt_n=scrypt_n), overwrite=True)
        (folder / "password.txt").write_text(DEVNET_PASSWORD + "\n")
        peer_id = peer_id_from_seed(host_seed_from_consensus_key(s, priv))
        role = "sealer" if i < sealers else "observer"
        entries.append({
            "name": f"node{i}", "role": role, "consensus_pub": pub.hex(), "peer_id": peer_id,
            "addrs": [f"/ip4/127.0.0.1/tcp/{p2p_ports[i]}"],
        })
        keys.append((priv, pub))
    genesis = {
        "format": "chainnode-genesis/1",
        "chain_id": chain_id,
        "group_id": group_id,
        "suite": suite,
        "timestamp_ms": int(time.time() * 1000),
        "nodes": entries,
        "committee": [{"address": s.address(pub).hex(), "weight": 1} for _, pub in keys[:sealers]],
        "governance": {"participation_rate_pct": 51, "win_rate_pct": 51},
        "config": config or {},
    }
    genesis_path = out_dir / "genesis.json"
    genesis_path.write_text(json.dumps(genesis, indent=2) + "\n")
    layout = []
    for i, entry in enumerate(entries):
        folder = out_dir / entry["name"]
        info = init_node(
            genesis_path, folder / "node.key", folder,
            p2p_listen=entry["addrs"][0], rpc_listen=f"127.0.0.1:{rpc_ports[i]}", password_file=folder / "password.txt",
        )
        layout.append(NodeLayout(
            name=entry["name"], role=entry["role"], folder=folder, config=Path(info["config"]),
            rpc_url=f"http://127.0.0.1:{rpc_ports[i]}", rpc_port=rpc_ports[i], p2p_port=p2p_ports[i],
            address=s.address(keys[i][1]).hex(),
        ))
    return layout

"""Nodes refuse peers that run another genesis or are not members."""

import json
import subprocess
import time

import pytest

from chainnode.crypto import get_suite
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.node.init import init_node
from chainnode.security.keyfile import encrypt_key, write_key_file
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import ROOT, Cluster, free_ports


@pytest.fixture
def cluster(tmp_path):
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100}) as c:
        for i in range(3):  # node3's seat stays empty: the intruders use it
            c.start(i)
        for i in range(3):
            c.wait_rpc(i)
        yield c


def start_intruder(cluster, tmp_path, genesis: dict, key_path, name: str) -> subprocess.Popen:
    # Without the CA, the intruder needs no certificate of its own to start: what is tested
    # here is what the members' network does with it.
    genesis.pop("ca_certs", None)
    genesis_path = tmp_path / f"{name}-genesis.json"
    genesis_path.write_text(json.dumps(genesis))
    p2p, rpc = free_ports(2)
    folder = tmp_path / name
    info = init_node(genesis_path, key_path, folder, p2p_listen=f"/ip4/127.0.0.1/tcp/{p2p}", rpc_listen=f"127.0.0.1:{rpc}", password_file=cluster.layout[0].folder / "password.txt")
    log = open(folder / "node.log", "wb")
    return subprocess.Popen([CHAINNODE, "start", "--config", info["config"]], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)


def wait_for_log(cluster, nodes, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if all(text in cluster.log(i) for i in nodes):
            return
        time.sleep(0.2)
    raise AssertionError(f"{text!r} not logged by nodes {nodes}:\n" + "\n".join(cluster.log(i)[-1500:] for i in nodes))


def test_member_key_with_another_genesis_is_refused(cluster, tmp_path):
    genesis = json.loads((cluster.folder / "genesis.json").read_text())
    genesis["chain_id"] = "forked-chain"
    genesis["nodes"][3]["addrs"] = []  # listing no address of its own, it dials every member
    intruder = start_intruder(cluster, tmp_path, genesis, cluster.layout[3].folder / "node.key", "forked")
    try:
        wait_for_log(cluster, [0, 1, 2], "genesis")
        assert all(cluster.rpc(i, "getSyncStatus")["peers"][-1]["connected"] is False for i in range(3))
    finally:
        intruder.terminate()
        intruder.wait(timeout=15)
    cluster.wait_height(range(3), 0)  # the members are unaffected and still serve


def test_peer_not_in_genesis_is_refused(cluster, tmp_path):
    suite = get_suite("sm")
    priv, pub = suite.generate_keypair()
    key_path = tmp_path / "outsider.key"
    write_key_file(key_path, encrypt_key("sm", priv, "devnet", scrypt_n=1024))
    genesis = json.loads((cluster.folder / "genesis.json").read_text())
    # The outsider's own genesis lists the members (so it dials them) and itself.
    genesis["nodes"][3] = {"name": "outsider", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": peer_id_from_seed(host_seed_from_consensus_key(suite, priv)), "addrs": []}
    intruder = start_intruder(cluster, tmp_path, genesis, key_path, "outsider")
    try:
        wait_for_log(cluster, [0, 1, 2], "not admitted")
    finally:
        intruder.terminate()
        intruder.wait(timeout=15)
    for i in range(3):
        assert cluster.running(i)

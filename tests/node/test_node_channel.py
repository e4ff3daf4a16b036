"""The node serves the channel port when the genesis has a CA (and only then), refuses a
channel port in use, and reports channel sessions in its metrics: a real Node in-process on
a real ledger, network and ports, reached by a raw channel client."""

from __future__ import annotations

import json
import socket
import time

import pytest
import trio

from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.node.config import load_config
from chainnode.node.init import init_node
from chainnode.node.node import Node, NodeError
from chainnode.security.certs import cert_pem, write_pem
from chainnode.security.keyfile import encrypt_key, load_key, write_key_file
from chainnode.system.genesis import load_genesis
from tests.chain_fixtures import SUITE
from tests.helpers import free_ports
from tests.rpc.test_channel_server import Dapp, Pki, Rpc, open_channel

PASSWORD = "pw"


def make_node_folder(tmp_path, *, with_ca: bool):
    """A one-sealer chain (with or without a consortium CA) and its node folder."""
    p2p, rpc, channel = free_ports(3)
    pki = Pki(now_ms=int(time.time() * 1000))
    priv, pub = SUITE.generate_keypair()
    peer_id = peer_id_from_seed(host_seed_from_consensus_key(SUITE, priv))
    key_path = tmp_path / "node.key"
    write_key_file(key_path, encrypt_key("sm", priv, PASSWORD, scrypt_n=1024))
    (tmp_path / "password.txt").write_text(PASSWORD + "\n")
    genesis = {
        "format": "chainnode-genesis/1", "chain_id": "c", "group_id": "g", "suite": "sm", "timestamp_ms": 0,
        "nodes": [{"name": "node0", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": peer_id, "addrs": [f"/ip4/127.0.0.1/tcp/{p2p}"]}],
        "committee": [{"address": SUITE.address(pub).hex()}],
    }
    cert_file = None
    if with_ca:
        genesis["ca_certs"] = [pki.ca.der.hex()]
        cert_file = tmp_path / "node.pem"
        write_pem(cert_file, pki.chain("node", "sealer", pub, name="node0", peer_id=peer_id).to_pem())
        write_pem(tmp_path / "ca.pem", cert_pem(pki.ca))
    (tmp_path / "genesis.json").write_text(json.dumps(genesis))
    info = init_node(
        tmp_path / "genesis.json", key_path, tmp_path / "data", p2p_listen=None, rpc_listen=f"127.0.0.1:{rpc}",
        channel_listen=f"127.0.0.1:{channel}", password_file=tmp_path / "password.txt", cert_file=cert_file,
    )
    config = load_config(info["config"])
    return config, load_genesis(config.genesis_file), load_key(key_path, PASSWORD), pki


async def test_the_node_serves_the_channel_port_and_counts_its_sessions(tmp_path):
    config, genesis, key, pki = make_node_folder(tmp_path, with_ca=True)
    node = Node(config, genesis, key)
    try:
        assert node.channel is not None and node.channel.on_commit in node.commit_listeners
        async with trio.open_nursery() as nursery:
            await nursery.start(node.run)
            async with open_channel(config.channel_port, Dapp("auditor", pki=pki)) as channel:
                assert channel.handshake.accepted.leaf.subject == "node0"
                rpc = Rpc(channel)
                assert (await rpc.call("getBlockNumber", "g", ""))["result"] == 0
                _, _, body = await node.metrics.route()
                text = body.decode()
                assert "chainnode_channel_sessions 1.0" in text and "chainnode_channel_handshakes_total 1.0" in text
            with pytest.raises(Exception, match="certificate"):
                async with open_channel(config.channel_port, Dapp("user", pki=Pki(now_ms=pki.now_ms))):
                    pass
            _, _, body = await node.metrics.route()
            assert 'chainnode_channel_handshakes_refused_total{reason="wrong CA"} 1.0' in body.decode()
            nursery.cancel_scope.cancel()
    finally:
        node.chain.ledger.close()


def test_a_channel_port_in_use_is_refused_at_start(tmp_path):
    config, genesis, key, _ = make_node_folder(tmp_path, with_ca=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", config.channel_port))
        s.listen()
        with pytest.raises(NodeError, match=rf"port {config.channel_port} on 127.0.0.1 is in use; .*\[channel\] listen"):
            Node(config, genesis, key)


def test_no_channel_port_without_a_ca(tmp_path):
    config, genesis, key, _ = make_node_folder(tmp_path, with_ca=False)
    node = Node(config, genesis, key)
    try:
        assert node.channel is None
    finally:
        node.chain.ledger.close()

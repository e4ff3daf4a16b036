"""A member brings its own PKI: its root CA, agency and node certificate are made entirely with
the `openssl` command line, the genesis trusts that root beside the consortium's, and the
node, added by vote, is admitted by the other nodes' handshakes and syncs the chain."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import trio
from asn1crypto import keys, pem

from chainnode.client import Client
from chainnode.security.certs import read_cert_file, read_chain_file
from chainnode.security.x509 import SM2_CURVE
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster
from tests.integration.test_governance import governors, passed
from tests.security.test_x509 import DISTID, Openssl

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")

NODE_EXTENSIONS = """[node]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
subjectAltName = URI:p2p:{peer_id}
"""


def openssl(folder, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)


def member_pki(folder):
    """Bank M's root and agency, as its own CA team makes them."""
    tool = Openssl(folder, "sm")
    tool.root("root")
    tool.key("agency")
    openssl(folder, "req", "-new", "-key", "agency.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=Bank M/O=Bank M", "-out", "agency.csr")
    openssl(folder, "x509", "-req", "-in", "agency.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-sm3", "-sigopt", DISTID,
            "-vfyopt", DISTID, "-extfile", "ext.cnf", "-extensions", "agency", "-days", "30", "-out", "agency.pem")
    return read_cert_file(folder / "root.pem")


def certify_node(folder, consensus_pub: bytes, peer_id: str, out) -> None:
    """Bank M's agency certifies the node's consensus public key (handed over as a PEM public
    key: `-force_pubkey`; the request only carries the subject)."""
    spki = keys.PublicKeyInfo({"algorithm": {"algorithm": "ec", "parameters": {"named": SM2_CURVE}}, "public_key": consensus_pub})
    (folder / "node-pub.pem").write_bytes(pem.armor("PUBLIC KEY", spki.dump()))
    (folder / "node.cnf").write_text(NODE_EXTENSIONS.format(peer_id=peer_id))
    openssl(folder, "req", "-new", "-key", "agency.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=node4/O=Bank M/OU=observer", "-out", "node.csr")
    openssl(folder, "x509", "-req", "-in", "node.csr", "-force_pubkey", "node-pub.pem", "-CA", "agency.pem", "-CAkey", "agency.key",
            "-CAcreateserial", "-sm3", "-sigopt", DISTID, "-vfyopt", DISTID, "-extfile", "node.cnf", "-extensions", "node", "-days", "30",
            "-out", "node.pem")
    out.write_bytes((folder / "node.pem").read_bytes() + (folder / "agency.pem").read_bytes())


async def test_an_openssl_made_chain_admits_a_node_to_the_devnet(tmp_path):
    member = tmp_path / "bank-m"
    member.mkdir()
    root = member_pki(member)
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}, extra_roots=(root,)) as cluster:
        cluster.start_all()
        extra = cluster.add_node("node4")
        chain_file = extra.folder / "node.pem"  # node.toml's cert_file: replaced by the member's own chain
        certify_node(member, bytes.fromhex(extra.consensus_pub), extra.peer_id, chain_file)
        chain = read_chain_file(chain_file)
        assert (chain.leaf.kind, chain.leaf.role, chain.agency.organisation) == ("node", "observer", "Bank M") and chain.root is None
        shown = subprocess.run([CHAINNODE, "ca", "show", str(chain_file), "--ca", str(member / "root.pem")],
                               capture_output=True, text=True)
        assert shown.returncode == 0 and shown.stdout.rstrip().endswith("valid"), shown.stdout + shown.stderr

        async with Client(cluster.layout[0].rpc_url, timeout_s=30) as client:
            await passed(client, governors(cluster), "add_observer", [bytes.fromhex(extra.consensus_pub), extra.peer_id, 1,
                                                                       [f"/ip4/127.0.0.1/tcp/{extra.p2p_port}"]])
            head = await client.block_number()
        cluster.start(4)
        cluster.wait_rpc(4)
        await trio.to_thread.run_sync(lambda: cluster.wait_height([4], head, timeout_s=60))
        # It synced, so at least one member's handshake admitted its openssl-made chain (which
        # member, and whether node0 has dialed it yet, is up to the network).
        assert any(p["connected"] for p in cluster.rpc(4, "getSyncStatus")["peers"])

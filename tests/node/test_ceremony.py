"""The consortium ceremony's checks (chainnode/node/ceremony.py): a request proves its key,
a genesis is only written from requests and certificates that all fit together."""

from __future__ import annotations

import json
import time

import pytest

from chainnode.crypto import get_suite
from chainnode.node.ceremony import CeremonyError, build_genesis, make_request, parse_request, read_request, write_request
from chainnode.security.certs import CertChain, issue
from chainnode.security.keyfile import KeyPair
from chainnode.system.genesis import parse_genesis

SUITE = get_suite("sm")
DAY_MS = 86_400_000


def keypair(suite=SUITE) -> KeyPair:
    priv, pub = suite.generate_keypair()
    return KeyPair(suite.name, priv, pub, suite.address(pub))


def pki(org: str, suite: str = "sm"):
    now = int(time.time() * 1000) - 60_000
    root_key, agency_key = keypair(get_suite(suite)), keypair(get_suite(suite))
    window = dict(not_before_ms=now, not_after_ms=now + DAY_MS)
    root = issue(kind="ca", subject=f"{org} CA", organisation=org, role="", public_key=root_key.public_key, peer_id="", suite=suite,
                 issuer_priv=root_key.private_key, issuer=None, **window)
    agency = issue(kind="agency", subject=org, organisation=org, role="", public_key=agency_key.public_key, peer_id="", suite=suite,
                   issuer_priv=root_key.private_key, issuer=root, **window)

    def certify(request, role=None, peer_id=None):
        leaf = issue(kind="node", subject=request.name, organisation=org, role=role or request.role, public_key=request.consensus_pub,
                     peer_id=peer_id or request.peer_id, suite=suite, issuer_priv=agency_key.private_key, issuer=agency, **window)
        return CertChain(leaf, agency, root)

    return root, certify


def members(n: int, org: str = "Bank A"):
    return [make_request(keypair(), name=f"node{i}", organisation=org, role="sealer", addrs=[f"10.0.0.{i + 1}:30300"]) for i in range(n)]


GOV = [(b"\x01" * 20, 1)]


def test_a_request_round_trips_through_its_file_and_proves_its_key(tmp_path):
    request = members(1)[0]
    assert request.addrs == ("/ip4/10.0.0.1/tcp/30300",)
    write_request(tmp_path / "r.json", request)
    assert read_request(tmp_path / "r.json") == request
    doc = json.loads((tmp_path / "r.json").read_text())
    assert "private" not in json.dumps(doc)  # public parts only

    def refused(change) -> str:
        bad = dict(doc)
        change(bad)
        with pytest.raises(CeremonyError) as e:
            parse_request(bad, "r.json")
        assert str(e.value).startswith("r.json")
        return str(e.value)

    # Each field is signed: changed, the request no longer verifies.
    assert "was altered" in refused(lambda d: d.update(addrs=["10.9.9.9:1"]))
    assert "was altered" in refused(lambda d: d.update(role="observer"))
    other = members(1)[0]
    assert "was altered" in refused(lambda d: d.update(peer_id=other.peer_id))
    assert "not a node request" in refused(lambda d: d.update(format="x"))
    assert "exactly the fields" in refused(lambda d: d.update(extra=1))
    assert "role must be" in refused(lambda d: d.update(role="king"))
    assert "suite must be" in refused(lambda d: d.update(suite="rsa"))
    assert "peer id" in refused(lambda d: d.update(peer_id="nope"))
    assert "TCP port" in refused(lambda d: d.update(addrs=["10.0.0.1:0"]))
    assert refused(lambda d: d.update(csr="!!not base64"))
    assert refused(lambda d: d.update(consensus_pub="00" * 65))
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(CeremonyError, match="not JSON"):
        read_request(tmp_path / "bad.json")


def test_a_request_swapping_in_another_csr_is_refused():
    a, b = members(2)
    doc = a.to_json() | {"csr": b.to_json()["csr"]}
    with pytest.raises(CeremonyError):
        parse_request(doc, "r.json")  # the signature covers the CSR too


def test_build_genesis_checks_everything_it_is_given():
    root, certify = pki("Bank A")
    reqs = members(4)
    chains = [certify(r) for r in reqs]
    doc = build_genesis(reqs, chains=chains, roots=[root], governors=GOV, chain_id="c1")
    genesis = parse_genesis(doc)
    assert [n.name for n in genesis.nodes] == ["node0", "node1", "node2", "node3"]
    assert genesis.nodes[2].addrs == ["/ip4/10.0.0.3/tcp/30300"] and genesis.ca_certs[0].der == root.der

    def refused(*args, **kwargs) -> str:
        with pytest.raises(CeremonyError) as e:
            build_genesis(*args, **{"governors": GOV, **kwargs})
        return str(e.value)

    assert "at least one member" in refused([])
    assert "same name" in refused([reqs[0], make_request(keypair(), name="node0", organisation="Bank A", role="sealer", addrs=[])])
    assert "same dial address" in refused([reqs[0], make_request(keypair(), name="x", organisation="Bank A", role="sealer", addrs=["10.0.0.1:30300"])])
    twice = keypair()
    assert "same consensus key" in refused([make_request(twice, name=n, organisation="Bank A", role="sealer", addrs=[]) for n in ("a", "b")])
    assert "no request is a sealer" in refused([make_request(keypair(), name="o", organisation="Bank A", role="observer", addrs=[])])
    assert "at least one governor" in refused(reqs, governors=[])
    assert "missing for: node3" in refused(reqs, chains=chains[:3], roots=[root])
    assert "no root CA" in refused(reqs, chains=chains)
    other_root, other_certify = pki("Bank B")
    assert "wrong or missing CA" in refused(reqs, chains=chains, roots=[other_root])
    stranger = members(1)[0]
    assert "no request has" in refused(reqs, chains=chains + [certify(stranger)], roots=[root])
    assert "not a node certificate for node0" in refused(reqs, chains=[certify(reqs[0], peer_id=reqs[1].peer_id)] + chains[1:], roots=[root])
    assert "asks to be a sealer, its certificate says observer" in refused(reqs, chains=[certify(reqs[0], role="observer")] + chains[1:], roots=[root])
    ed_root, _ = pki("Bank E", "ed25519")
    assert "ed25519 certificate" in refused(reqs, chains=chains, roots=[ed_root])
    ed = make_request(keypair(get_suite("ed25519")), name="e", organisation="E", role="sealer", addrs=[])
    assert "different suites" in refused([reqs[0], ed])
    assert "config" in refused(reqs, config={"tx_count_limit": 0})

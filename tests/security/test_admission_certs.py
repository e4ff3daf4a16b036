"""Certificates at the node: the genesis "ca_certs" field, node.toml `cert_file`, the start
checks of chainnode/security/admission.py (each refusal names the file and the fix), the verifier
callback the network calls, `chainnode init` with a chain, and the devnet layout."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from chainnode.crypto import get_suite
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.node.config import ConfigError, load_config
from chainnode.node.init import InitError, init_node
from chainnode.protocol.codec import pack
from chainnode.security.admission import Admission, AdmissionError
from chainnode.security.certs import CertChain, Certificate, CertificateError, cert_pem, issue, read_cert_file, read_chain_file, write_pem
from chainnode.security.keyfile import load_key
from chainnode.store.ledger import Ledger
from chainnode.system.genesis import GenesisError, load_genesis, parse_genesis
from chainnode.system.state import CA_KEY
from devnet.layout import DEVNET_PASSWORD, create_network, issue_node_certificate, prepare_extra_node

FIXTURE_0_1 = Path(__file__).parent.parent / "devnet" / "fixtures" / "devnet-0.1"  # a devnet made by chainnode 0.1

DAY_MS = 86_400_000
SUITE = get_suite("sm")


def _now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    """A 2-node devnet with certificates; tests copy what they change."""
    out = tmp_path_factory.mktemp("devnet")
    layout = create_network(out, sealers=2, scrypt_n=1024, ports=([31901, 31902], [31903, 31904]))
    return out, layout


def _node(net, i=0):
    out, layout = net
    n = layout[i]
    config = load_config(n.config)
    genesis = load_genesis(config.genesis_file)
    key = load_key(config.key_file, DEVNET_PASSWORD)
    peer_id = peer_id_from_seed(host_seed_from_consensus_key(SUITE, key.private_key))
    return out, n, config, genesis, key, peer_id


# ---- genesis ------------------------------------------------------------------------------


def test_genesis_ca_certs_are_parsed_hashed_and_written_to_state(net, tmp_path):
    out, layout = net
    doc = json.loads((out / "genesis.json").read_text())
    ca = read_cert_file(out / "ca" / "ca.pem")
    g = parse_genesis(doc, "genesis.json")
    assert g.ca_certs == (ca,)
    # The roots are part of what the consortium agreed on: in state, so in the genesis hash.
    without = copy.deepcopy(doc)
    del without["ca_certs"]
    g0 = parse_genesis(without)
    assert g0.ca_certs == () and CA_KEY not in g0.state_writes()
    assert g.state_writes()[CA_KEY] == pack([ca.der])
    assert g.hash() != g0.hash()
    # PEM text is the same root, the same hash; to_json round-trips.
    assert parse_genesis(dict(doc, ca_certs=[cert_pem(ca).decode()])).hash() == g.hash()
    assert parse_genesis(g.to_json()).hash() == g.hash()
    # A second member's root: another genesis, both trusted.
    other = tmp_path / "other"
    create_network(other, sealers=1, scrypt_n=1024, ports=([31941], [31942]))
    member_root = read_cert_file(other / "ca" / "ca.pem")
    both = parse_genesis(dict(doc, ca_certs=[ca.der.hex(), member_root.der.hex()]))
    assert both.ca_certs == (ca, member_root) and both.hash() != g.hash()


def test_bad_ca_certs_fields_name_the_file_and_field(net):
    out, _ = net
    doc = json.loads((out / "genesis.json").read_text())
    agency = read_cert_file(out / "agency" / "agency.pem")
    ca = read_cert_file(out / "ca" / "ca.pem")
    node = read_chain_file(out / "node0" / "node.pem").leaf
    ed_priv, ed_pub = get_suite("ed25519").generate_keypair()
    ed_ca = issue(kind="ca", subject="Ed CA", organisation="Ed CA", role="", public_key=ed_pub, peer_id="", suite="ed25519",
                  not_before_ms=0, not_after_ms=_now_ms() + DAY_MS, issuer_priv=ed_priv, issuer=None)
    forged = bytearray(ca.der)
    forged[-1] ^= 1  # the last byte of the signature
    cases = [
        (["zz-not-hex"], "genesis.json: ca_certs[0]: neither hex nor PEM"),
        ([""], "genesis.json: ca_certs[0]: must be text"),
        ([42], "genesis.json: ca_certs[0]: must be text"),
        ([], "genesis.json: 'ca_certs' must be a list of 1 to"),
        (ca.der.hex(), "genesis.json: 'ca_certs' must be a list"),
        (["deadbeef"], "genesis.json: ca_certs[0]: not a DER X.509 certificate"),
        ([node.der.hex()], "genesis.json: ca_certs[0]: wrong or missing CA: node certificate 'node0'"),
        ([ed_ca.der.hex()], "genesis.json: ca_certs[0]: the CA 'Ed CA' is for suite ed25519, this chain uses sm"),
        ([bytes(forged).hex()], "genesis.json: ca_certs[0]: ca certificate 'Devnet CA' (serial"),
        ([ca.der.hex(), ca.der.hex()], "genesis.json: ca_certs[1]: the CA 'Devnet CA' is listed twice"),
    ]
    for value, message in cases:
        with pytest.raises(GenesisError) as e:
            parse_genesis(dict(doc, ca_certs=value), "genesis.json")
        assert str(e.value).startswith(message), (value, str(e.value))
    assert agency.kind == "agency"  # an agency is a CA too: a consortium may list it as a root if it trusts no one above


def test_a_genesis_or_chain_file_of_chainnode_0_1_names_the_conversion():
    with pytest.raises(GenesisError) as e:
        load_genesis(FIXTURE_0_1 / "genesis.json")
    assert "'ca_cert' is the certificate format of chainnode 0.1" in str(e.value) and "devnet migrate --dir" in str(e.value)
    with pytest.raises(CertificateError) as e:
        read_chain_file(FIXTURE_0_1 / "node0" / "node.chain")
    assert "node.chain is in the certificate format of chainnode 0.1, before X.509" in str(e.value)
    assert "devnet migrate --dir" in str(e.value) and "Migrating from chainnode 0.1 certificates" in str(e.value)


# ---- node.toml ----------------------------------------------------------------------------


def test_config_cert_file_is_optional_and_relative_to_the_file(tmp_path):
    (tmp_path / "sub").mkdir()
    path = tmp_path / "sub" / "node.toml"
    path.write_text('[node]\ncert_file = "certs/node.chain"\n')
    assert load_config(path).cert_file == tmp_path / "sub" / "certs" / "node.chain"
    path.write_text("[node]\n")
    assert load_config(path).cert_file is None
    path.write_text('[node]\ncert_file = ""\n')
    with pytest.raises(ConfigError, match=r"\[node\] cert_file must be a non-empty string"):
        load_config(path)


# ---- start checks -------------------------------------------------------------------------


def test_valid_chain_loads_and_its_check_accepts_the_peer(net):
    out, n, config, genesis, key, peer_id = _node(net)
    adm = Admission.load(config, genesis, key.public_key, peer_id)
    assert adm.required and adm.credentials == read_chain_file(config.cert_file).encode()
    assert adm.network_kwargs() == {"credentials": adm.credentials, "check_credentials": adm.check}
    leaf = adm.check(adm.credentials, key.public_key, peer_id)
    assert leaf.subject == n.name and leaf.revocation_id(read_chain_file(config.cert_file).agency).hex() == n.revocation_id
    # node1's chain, checked by node0: the same verifier every peer runs.
    _, n1, c1, _, k1, p1 = _node(net, 1)
    assert adm.check(read_chain_file(c1.cert_file).encode(), k1.public_key, p1).subject == "node1"


def test_no_ca_means_no_certificates(net):
    out, n, config, genesis, key, peer_id = _node(net)
    plain = replace(genesis, ca_certs=())
    adm = Admission.load(replace(config, cert_file=None), plain, key.public_key, peer_id)
    assert not adm.required
    assert adm.network_kwargs() == {"credentials": b"", "check_credentials": None}


def _refusal(config, genesis, key, peer_id, **kw) -> str:
    with pytest.raises(AdmissionError) as e:
        Admission.load(config, genesis, key.public_key, peer_id, **kw)
    return str(e.value)


def test_start_refusals_name_the_file_and_the_fix(net, tmp_path):
    out, n, config, genesis, key, peer_id = _node(net)
    chain = read_chain_file(config.cert_file)
    cf = tmp_path / "node.pem"

    msg = _refusal(replace(config, cert_file=None), genesis, key, peer_id)
    assert f"{config.genesis_file} names root CAs ('Devnet CA')" in msg
    assert f"{config.path} sets no cert_file" in msg and 'cert_file = "node.pem"' in msg

    msg = _refusal(replace(config, cert_file=tmp_path / "gone.pem"), genesis, key, peer_id)
    assert f"{tmp_path / 'gone.pem'} not found (cert_file in {config.path})" in msg

    write_pem(cf, cert_pem(chain.root))
    assert "holds 1 certificate(s); a chain is the leaf, then its agency" in _refusal(replace(config, cert_file=cf), genesis, key, peer_id)

    # Issued under another CA (of the same name: the devnet's): the name matches, the key does not.
    other_out = tmp_path / "other"
    create_network(other_out, sealers=1, scrypt_n=1024, ports=([31911], [31912]))
    issue_node_certificate(other_out, key.public_key, peer_id, name="node0", role="sealer", out=tmp_path / "o.pem")
    msg = _refusal(replace(config, cert_file=tmp_path / "o.pem"), genesis, key, peer_id)
    assert msg.startswith(f"{tmp_path / 'o.pem'}: wrong or missing CA: the agency certificate 'Devnet Agency'")
    assert "another CA of the same name issued it" in msg
    # ...and under a CA of another name: wrong CA.
    stranger_priv, stranger_pub = SUITE.generate_keypair()
    stranger = issue(kind="ca", subject="Stranger CA", organisation="Stranger", role="", public_key=stranger_pub, peer_id="", suite="sm",
                     not_before_ms=0, not_after_ms=_now_ms() + DAY_MS, issuer_priv=stranger_priv, issuer=None)
    stray_agency = issue(kind="agency", subject="Devnet Agency", organisation="Devnet Agency", role="", public_key=chain.agency.public_key,
                         peer_id="", suite="sm", not_before_ms=0, not_after_ms=_now_ms() + DAY_MS, issuer_priv=stranger_priv, issuer=stranger)

    def write(ch: CertChain) -> object:
        write_pem(cf, ch.to_pem(), overwrite=True)
        return replace(config, cert_file=cf)

    msg = _refusal(write(CertChain(chain.leaf, stray_agency, stranger)), genesis, key, peer_id)
    assert "wrong or missing CA: the agency certificate 'Devnet Agency'" in msg and "which is not a root CA of this chain" in msg
    assert "ask an agency of one of this consortium's root CAs" in msg

    # Agency mismatch: the node certificate was signed by another agency's key.
    other_agency_key = load_key(other_out / "agency" / "agency.key", DEVNET_PASSWORD)
    leaf = chain.leaf
    other_agency = read_cert_file(other_out / "agency" / "agency.pem")
    renamed = issue(kind="ca", subject="Other Agency", organisation="Devnet Agency", role="", public_key=other_agency.public_key,
                    peer_id="", suite="sm", not_before_ms=0, not_after_ms=_now_ms() + DAY_MS, issuer_priv=other_agency_key.private_key,
                    issuer=None)
    stray = issue(kind="node", subject=leaf.subject, organisation=leaf.organisation, role=leaf.role, public_key=leaf.public_key,
                  peer_id=leaf.peer_id, suite="sm", not_before_ms=leaf.not_before_ms, not_after_ms=leaf.not_after_ms,
                  issuer_priv=other_agency_key.private_key, issuer=renamed)
    msg = _refusal(write(CertChain(stray, chain.agency, chain.root)), genesis, key, peer_id)
    assert msg.startswith(f"{cf}: agency mismatch: the node certificate 'node0'") and "--agency-dir" in msg

    # Bad signature (modified).
    tampered = bytearray(leaf.der)
    tampered[tampered.index(b"node0")] = ord("m")
    forged = Certificate.decode(bytes(tampered))
    msg = _refusal(write(CertChain(forged, chain.agency, chain.root)), genesis, key, peer_id)
    assert "does not verify" in msg and "modified or damaged" in msg

    # Key and peer id of another node.
    _, _, _, _, k1, p1 = _node(net, 1)
    msg = _refusal(config, genesis, k1, p1)
    assert msg.startswith(f"{config.cert_file} certifies key {key.public_key.hex()[:16]}… (node certificate 'node0'")
    assert f"but {config.key_file} is {k1.public_key.hex()[:16]}…" in msg
    msg = _refusal(config, genesis, key, p1)
    assert msg.startswith(f"{config.cert_file} certifies peer id {peer_id} but {config.key_file} derives peer id {p1}")

    # Expired / not yet valid: by the clock.
    msg = _refusal(config, genesis, key, peer_id, now_ms=lambda: leaf.not_after_ms + 1)
    assert "node certificate 'node0'" in msg and "expired at" in msg and "ask your agency for a new certificate" in msg
    msg = _refusal(config, genesis, key, peer_id, now_ms=lambda: leaf.not_before_ms - 1)
    assert "is not valid before" in msg and "check this machine's clock" in msg

    # Revoked on chain.
    msg = _refusal(config, genesis, key, peer_id, revoked=lambda: [leaf.revocation_id(chain.agency)])
    assert msg.startswith(f"{config.cert_file}: node certificate 'node0' (serial {leaf.serial:x}) is revoked")
    assert "the consortium revoked this certificate" in msg


def test_check_refuses_peers_with_a_reason(net):
    out, n, config, genesis, key, peer_id = _node(net)
    revoked: set[bytes] = set()
    adm = Admission.load(config, genesis, key.public_key, peer_id, lambda: revoked)
    _, n1, c1, _, k1, p1 = _node(net, 1)
    chain1 = read_chain_file(c1.cert_file)

    def reason(chain_bytes, pub=k1.public_key, pid=p1) -> str:
        with pytest.raises(CertificateError) as e:
            adm.check(chain_bytes, pub, pid)
        return e.value.reason

    assert reason(b"") == "no certificate"
    assert reason(b"\x93garbage") == "bad certificate"
    assert reason(chain1.encode(), pub=key.public_key) == "certificate key mismatch"
    assert reason(chain1.encode(), pid=peer_id) == "certificate peer id mismatch"
    revoked.add(chain1.leaf.revocation_id(chain1.agency))  # read at every check: the on-chain list as it is now
    assert reason(chain1.encode()) == "certificate revoked"
    revoked.clear()
    assert adm.check(chain1.encode(), k1.public_key, p1).subject == "node1"
    # A client chain is not a node's.
    agency_key = load_key(out / "agency" / "agency.key", DEVNET_PASSWORD)
    client = issue(kind="client", subject="alice", organisation=chain1.agency.organisation, role="user", public_key=k1.public_key,
                   peer_id="", suite="sm", not_before_ms=_now_ms() - DAY_MS, not_after_ms=_now_ms() + DAY_MS,
                   issuer_priv=agency_key.private_key, issuer=chain1.agency)
    assert reason(CertChain(client, chain1.agency).encode()) == "bad certificate"
    late = replace(adm, now_ms=lambda: chain1.leaf.not_after_ms + 1)
    with pytest.raises(CertificateError) as e:
        late.check(chain1.encode(), k1.public_key, p1)
    assert e.value.reason == "certificate expired"


# ---- init and devnet ----------------------------------------------------------------------


def test_init_writes_cert_file_and_checks_it(net, tmp_path):
    out, n, config, genesis, key, peer_id = _node(net)
    d = tmp_path / "d"
    info = init_node(out / "genesis.json", config.key_file, d, p2p_listen=None, rpc_listen="127.0.0.1:1", cert_file=config.cert_file)
    assert info["certificates_required"] and info["cert_file"] == str(config.cert_file)
    assert load_config(d / "node.toml").cert_file == config.cert_file
    # Without a chain the config says it is required.
    d2 = tmp_path / "d2"
    init_node(out / "genesis.json", config.key_file, d2, p2p_listen=None, rpc_listen="127.0.0.1:1")
    assert "# cert_file = \"node.pem\"   # REQUIRED" in (d2 / "node.toml").read_text()
    assert load_config(d2 / "node.toml").cert_file is None
    # Another node's chain is refused at init already.
    _, _, c1, _, _, _ = _node(net, 1)
    with pytest.raises(InitError, match="certifies key"):
        init_node(out / "genesis.json", config.key_file, tmp_path / "d3", p2p_listen=None, rpc_listen="127.0.0.1:1", cert_file=c1.cert_file)


def test_devnet_has_certificates_and_an_extra_node_can_be_prepared(net):
    out, layout = net
    assert all(n.cert_file and n.peer_id and n.consensus_pub and n.revocation_id for n in layout)
    assert (out / "ca" / "ca.key").exists() and (out / "agency" / "agency.pem").exists()
    extra = prepare_extra_node(out, "extra", p2p_port=31921, rpc_port=31922, scrypt_n=1024)
    config = load_config(extra.config)
    genesis = load_genesis(config.genesis_file)
    assert all(node.entry.peer_id != extra.peer_id for node in genesis.nodes)  # not a member yet
    assert extra.role == "observer" and config.rpc_port == 31922 and config.p2p_listen.endswith("/tcp/31921")
    key = load_key(config.key_file, DEVNET_PASSWORD)
    assert key.public_key.hex() == extra.consensus_pub
    adm = Admission.load(config, genesis, key.public_key, extra.peer_id)
    assert adm.check(adm.credentials, key.public_key, extra.peer_id).role == "observer"
    with Ledger.open(extra.folder, SUITE) as ledger:
        assert ledger.genesis_hash == genesis.hash()
    with pytest.raises(FileExistsError):
        prepare_extra_node(out, "extra", p2p_port=31923, rpc_port=31924, scrypt_n=1024)
    without = create_network(Path(out) / "plain", sealers=1, scrypt_n=1024, ports=([31931], [31932]), certificates=False)
    assert without[0].cert_file == "" and load_genesis(Path(out) / "plain" / "genesis.json").ca_certs == ()

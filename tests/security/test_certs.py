"""The consortium certificate profile (chainnode/security/certs.py) on X.509 v3
(chainnode/security/x509.py), for both chain suites:

- a root -> agency -> node/client hierarchy round-trips through DER, PEM and the wire form
  and verifies, with every field intact;
- every hostile or broken chain is refused with its `reason` and a message that names the
  certificate at fault;
- the wire decoder, the CRL reader and the file readers refuse bad input with a
  CertificateError and nothing else;
- hypothesis properties: issue -> encode -> parse -> verify round-trips for any names,
  windows and roles, and no single changed byte of a leaf ever verifies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from asn1crypto import algos, x509 as asn1_x509
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from chainnode.crypto import get_suite
from chainnode.network.identity import peer_id_from_seed
from chainnode.protocol.codec import pack
from chainnode.security import x509
from chainnode.security.certs import (
    CERT_BYTES_MAX,
    CHAIN_BYTES_MAX,
    CLIENT_ROLES,
    NODE_ROLES,
    REASON_AGENCY_MISMATCH,
    REASON_BAD,
    REASON_BAD_SIGNATURE,
    REASON_EXPIRED,
    REASON_LEAF_IS_CA,
    REASON_MISSING_EXTENSION,
    REASON_NOT_CA,
    REASON_NOT_YET_VALID,
    REASON_PATH_LENGTH,
    REASON_REVOKED,
    REASON_UNKNOWN_CRITICAL,
    REASON_WRONG_CA,
    CertChain,
    Certificate,
    CertificateError,
    cert_pem,
    crl_to_pem,
    issue,
    issue_crl,
    load_certificates,
    load_crl,
    read_cert_file,
    read_chain_file,
    read_crl_file,
    revoked_by,
    verify_chain,
)

SUITES = ("sm", "ed25519")
SECOND_MS = 1000
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
NOW_MS = 1_800_000_000_000  # 2027-01-15
PEER_ID = peer_id_from_seed(b"\x07" * 32)
OTHER_PEER_ID = peer_id_from_seed(b"\x09" * 32)

# Key pairs made once: issuing is then a few signatures. Index 0 root, 1 agency, 2 leaf,
# 3 another root, 4 another agency, 5 a sub-CA.
KEYS = {name: [get_suite(name).generate_keypair() for _ in range(6)] for name in SUITES}
ROOT, AGENCY, LEAF, OTHER_ROOT, OTHER_AGENCY, SUB_CA = range(6)


# ---- a small consortium ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    suite: str
    root: Certificate
    agency: Certificate
    leaf: Certificate
    root_priv: bytes
    agency_priv: bytes

    @property
    def chain(self) -> CertChain:
        return CertChain(self.leaf, self.agency)


def window(start_ms: int, end_ms: int) -> dict:
    return dict(not_before_ms=start_ms, not_after_ms=end_ms)


WIDE = (NOW_MS - 30 * DAY_MS, NOW_MS + 30 * DAY_MS)
LEAF_WINDOW = (NOW_MS - 10 * DAY_MS, NOW_MS + 10 * DAY_MS)


def make_pki(suite: str, *, leaf_kind: str = "node", root_window=WIDE, agency_window=WIDE, leaf_window=LEAF_WINDOW, root_key: int = ROOT,
             agency_key: int = AGENCY, agency_name: str = "Bank A") -> Pki:
    """Consortium CA -> `agency_name` -> node0 (sealer) or alice (user), all valid at NOW_MS."""
    keys = KEYS[suite]
    root_priv, root_pub = keys[root_key]
    agency_priv, agency_pub = keys[agency_key]
    root = issue(kind="ca", subject="Consortium CA", organisation="Consortium", role="", public_key=root_pub, peer_id="", suite=suite,
                 issuer_priv=root_priv, issuer=None, **window(*root_window))
    agency = issue(kind="agency", subject=agency_name, organisation=agency_name, role="", public_key=agency_pub, peer_id="", suite=suite,
                   issuer_priv=root_priv, issuer=root, **window(*agency_window))
    node = leaf_kind == "node"
    leaf = issue(kind=leaf_kind, subject="node0" if node else "alice", organisation=agency_name, role="sealer" if node else "user",
                 public_key=keys[LEAF][1], peer_id=PEER_ID if node else "", suite=suite, issuer_priv=agency_priv, issuer=agency,
                 **window(*leaf_window))
    return Pki(suite, root, agency, leaf, root_priv, agency_priv)


@pytest.fixture(scope="module", params=SUITES)
def pki(request) -> Pki:
    return make_pki(request.param)


@pytest.fixture(scope="module")
def twin(pki) -> Pki:
    """Another consortium with the same names (Consortium CA, Bank A) but other keys."""
    return make_pki(pki.suite, root_key=OTHER_ROOT, agency_key=OTHER_AGENCY)


def raw_leaf(p: Pki, **overrides) -> Certificate:
    """A leaf under p's agency made with the X.509 layer directly, so it can break the profile."""
    fields = dict(suite=p.suite, issuer_priv=p.agency_priv, issuer=p.agency.x509, common_name="node0", organisation="Bank A",
                  public_key=KEYS[p.suite][LEAF][1], serial=0x99, ca=False, unit="sealer", uris=(f"p2p:{PEER_ID}",), **window(*LEAF_WINDOW))
    fields.update(overrides)
    return Certificate.of(x509.issue(**fields))


def raw_agency(p: Pki, **overrides) -> Certificate:
    """An agency-like certificate under p's root, made with the X.509 layer directly."""
    fields = dict(suite=p.suite, issuer_priv=p.root_priv, issuer=p.root.x509, common_name="Bank A", organisation="Bank A",
                  public_key=KEYS[p.suite][AGENCY][1], serial=0x5, ca=True, path_length=0, **window(*WIDE))
    fields.update(overrides)
    return Certificate.of(x509.issue(**fields))


def signed(suite: str, priv: bytes, tbs: asn1_x509.TbsCertificate) -> bytes:
    """The DER of a certificate over `tbs`, signed by hand as a CA would (SM2: DER {r, s})."""
    signature = get_suite(suite).sign(priv, tbs.dump())
    if suite == "sm":
        signature = algos.DSASignature({"r": int.from_bytes(signature[:32], "big"), "s": int.from_bytes(signature[32:], "big")}).dump()
    algorithm = {"algorithm": x509.SM2_WITH_SM3 if suite == "sm" else "ed25519"}
    return asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature}).dump()


def with_extensions(cert: Certificate, priv: bytes, *, drop: str = "", add: tuple[dict, ...] = ()) -> bytes:
    """`cert` re-signed with `priv` after removing extension `drop` and appending `add`."""
    tbs = asn1_x509.TbsCertificate.load(cert.x509.tbs)
    tbs["extensions"] = [e for e in tbs["extensions"] if e["extn_id"].native != drop] + list(add)
    return signed(cert.suite, priv, tbs)


def refusal(chain: CertChain, roots, now_ms: int = NOW_MS, revoked=()) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        verify_chain(chain, roots, now_ms, revoked)
    return info.value


def decode_refusal(data) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        Certificate.decode(data)
    return info.value


def replace_once(data: bytes, old: bytes, new: bytes) -> bytes:
    assert data.count(old) == 1 and len(old) == len(new)
    return data.replace(old, new)


# ---- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("leaf_kind", ["node", "client"])
@pytest.mark.parametrize("suite", SUITES)
def test_a_chain_round_trips_through_der_pem_and_the_wire(suite, leaf_kind):
    """Each encoding gives back equal certificates, and each verifies to the leaf."""
    p = make_pki(suite, leaf_kind=leaf_kind)
    full = CertChain(p.leaf, p.agency, p.root)
    assert verify_chain(full, [p.root], NOW_MS) == p.leaf

    assert [Certificate.decode(c.der) for c in (p.leaf, p.agency, p.root)] == [p.leaf, p.agency, p.root]
    assert Certificate.decode(p.leaf.encode()) == p.leaf

    from_pem = CertChain.of(load_certificates(full.to_pem(), "chain.pem"))
    assert from_pem == full and list(from_pem) == [p.root, p.agency, p.leaf]
    assert verify_chain(from_pem, [p.root], NOW_MS) == p.leaf

    wire = CertChain.decode(full.encode())
    assert wire == CertChain(p.leaf, p.agency)  # the root never goes on the wire
    assert len(full.encode()) <= CHAIN_BYTES_MAX
    assert verify_chain(wire, [p.root], NOW_MS) == p.leaf


@pytest.mark.parametrize("suite", SUITES)
def test_the_fields_of_each_certificate_survive(suite):
    p = make_pki(suite)
    root, agency, node = p.root, p.agency, p.leaf
    client = make_pki(suite, leaf_kind="client").leaf
    for cert in (root, agency, node, client):
        back = Certificate.decode(cert.der)
        assert (back.kind, back.subject, back.organisation, back.role, back.peer_id, back.serial, back.suite, back.public_key) == (
            cert.kind, cert.subject, cert.organisation, cert.role, cert.peer_id, cert.serial, cert.suite, cert.public_key)
        assert 0 < back.serial < 1 << 159
    assert (root.kind, root.subject, root.organisation, root.x509.is_ca) == ("ca", "Consortium CA", "Consortium", True)
    assert (agency.kind, agency.subject, agency.organisation, agency.x509.path_length) == ("agency", "Bank A", "Bank A", 0)
    assert (node.kind, node.subject, node.organisation, node.role, node.peer_id) == ("node", "node0", "Bank A", "sealer", PEER_ID)
    assert (client.kind, client.subject, client.role, client.peer_id) == ("client", "alice", "user", "")
    assert (node.not_before_ms, node.not_after_ms) == LEAF_WINDOW
    assert node.describe()["not_after"] == "2027-01-25T08:00:00Z" and node.describe()["peer_id"] == PEER_ID


def test_issuing_with_a_serial_keeps_it_and_times_are_whole_seconds(pki):
    """X.509 times have second precision: a window given in ms reads back truncated."""
    leaf = issue(kind="client", subject="bob", organisation="Bank A", role="auditor", public_key=KEYS[pki.suite][LEAF][1], peer_id="",
                 suite=pki.suite, issuer_priv=pki.agency_priv, issuer=pki.agency, serial=0xC0FFEE, not_before_ms=NOW_MS + 999,
                 not_after_ms=NOW_MS + DAY_MS + 999)
    back = Certificate.decode(leaf.der)
    assert (back.serial, back.not_before_ms, back.not_after_ms) == (0xC0FFEE, NOW_MS, NOW_MS + DAY_MS)


def test_a_chain_file_is_read_back(pki, tmp_path):
    full = CertChain(pki.leaf, pki.agency, pki.root)
    (tmp_path / "node0.pem").write_bytes(full.to_pem())
    assert read_chain_file(tmp_path / "node0.pem") == full
    (tmp_path / "leaf.pem").write_bytes(cert_pem(pki.leaf))
    assert read_cert_file(tmp_path / "leaf.pem") == pki.leaf
    (tmp_path / "leaf.der").write_bytes(pki.leaf.der)
    assert read_cert_file(tmp_path / "leaf.der") == pki.leaf


def test_the_validity_window_includes_both_ends(pki):
    leaf = pki.leaf
    assert verify_chain(pki.chain, [pki.root], leaf.not_before_ms) == leaf
    assert verify_chain(pki.chain, [pki.root], leaf.not_after_ms) == leaf
    assert refusal(pki.chain, [pki.root], leaf.not_before_ms - 1).reason == REASON_NOT_YET_VALID
    assert refusal(pki.chain, [pki.root], leaf.not_after_ms + 1).reason == REASON_EXPIRED


def test_any_trusted_root_will_do_and_a_chain_s_own_root_counts_for_nothing(pki, twin):
    assert verify_chain(pki.chain, [twin.root, pki.root], NOW_MS) == pki.leaf
    assert verify_chain(pki.chain, [pki.root, twin.root], NOW_MS) == pki.leaf  # same name, told apart by signature
    carried = CertChain(pki.leaf, pki.agency, pki.root)
    assert refusal(carried, [twin.root]).reason == REASON_WRONG_CA


# ---- refusals: which CA ---------------------------------------------------------------------


def test_an_agency_of_an_untrusted_root_is_refused(pki):
    stranger = issue(kind="ca", subject="Stranger CA", organisation="Stranger", role="", public_key=KEYS[pki.suite][OTHER_ROOT][1],
                     peer_id="", suite=pki.suite, issuer_priv=KEYS[pki.suite][OTHER_ROOT][0], issuer=None, **window(*WIDE))
    error = refusal(pki.chain, [stranger])
    assert error.reason == REASON_WRONG_CA
    assert "agency certificate 'Bank A'" in str(error) and "not a root CA" in str(error) and "Stranger" in str(error)
    assert "node certificate 'node0'" in str(error)  # whose chain it is
    assert refusal(pki.chain, []).reason == REASON_WRONG_CA


def test_an_agency_from_a_same_named_root_with_another_key_is_refused(pki, twin):
    error = refusal(twin.chain, [pki.root])
    assert error.reason == REASON_WRONG_CA
    assert "agency certificate 'Bank A'" in str(error) and "another CA of the same name" in str(error)


def test_a_tampered_agency_is_refused_as_not_from_its_root(pki):
    tampered = Certificate.decode(pki.agency.der[:-1] + bytes([pki.agency.der[-1] ^ 0x01]))
    error = refusal(CertChain(pki.leaf, tampered), [pki.root])
    assert error.reason == REASON_WRONG_CA
    assert "agency certificate 'Bank A'" in str(error) and "or it was modified" in str(error)


# ---- refusals: agency and leaf ---------------------------------------------------------------


def test_a_leaf_of_another_agency_is_refused(pki):
    bank_b = make_pki(pki.suite, agency_key=OTHER_AGENCY, agency_name="Bank B")
    error = refusal(CertChain(bank_b.leaf, pki.agency), [pki.root])
    assert error.reason == REASON_AGENCY_MISMATCH
    assert "node certificate 'node0'" in str(error) and "Bank B" in str(error) and "not by the agency" in str(error)


def test_a_leaf_naming_another_organisation_is_refused(pki):
    error = refusal(CertChain(raw_leaf(pki, organisation="Bank Z"), pki.agency), [pki.root])
    assert error.reason == REASON_AGENCY_MISMATCH
    assert "node certificate 'node0'" in str(error) and "'Bank Z'" in str(error) and "'Bank A'" in str(error)


def test_a_leaf_of_a_same_named_agency_with_another_key_is_refused(pki, twin):
    error = refusal(CertChain(twin.leaf, pki.agency), [pki.root])
    assert error.reason == REASON_BAD_SIGNATURE
    assert "node certificate 'node0'" in str(error) and "does not verify" in str(error)


@pytest.mark.parametrize("where", ["signature", "subject"])
def test_a_tampered_leaf_is_refused(pki, where):
    der = pki.leaf.der
    if where == "signature":
        der = der[:-1] + bytes([der[-1] ^ 0x01])
    else:
        der = replace_once(der, b"node0", b"node1")
    error = refusal(CertChain(Certificate.decode(der), pki.agency), [pki.root])
    assert error.reason == REASON_BAD_SIGNATURE
    assert "node certificate 'node" in str(error) and "agency certificate 'Bank A'" in str(error)


EXPIRED = (NOW_MS - 2 * DAY_MS, NOW_MS - DAY_MS)
NOT_YET = (NOW_MS + DAY_MS, NOW_MS + 2 * DAY_MS)
VERY_WIDE = (NOW_MS - 90 * DAY_MS, NOW_MS + 90 * DAY_MS)


@pytest.mark.parametrize("bad_window, reason, phrase", [(EXPIRED, REASON_EXPIRED, "expired at"), (NOT_YET, REASON_NOT_YET_VALID, "not valid before")])
@pytest.mark.parametrize("which, named", [("leaf", "node certificate 'node0'"), ("agency", "agency certificate 'Bank A'"), ("root", "Consortium CA")])
@pytest.mark.parametrize("suite", SUITES)
def test_a_certificate_outside_its_window_is_refused(suite, which, named, bad_window, reason, phrase):
    """Each of leaf, agency and root is checked, even when the others are valid."""
    windows = {"root_window": VERY_WIDE, "agency_window": VERY_WIDE, "leaf_window": VERY_WIDE, f"{which}_window": bad_window}
    p = make_pki(suite, **windows)
    error = refusal(p.chain, [p.root])
    assert error.reason == reason
    assert named in str(error) and phrase in str(error)


@pytest.mark.parametrize("which", ["leaf", "agency"])
def test_a_revoked_leaf_or_agency_is_refused(pki, twin, which):
    revoked_id = pki.leaf.revocation_id(pki.agency) if which == "leaf" else pki.agency.revocation_id(pki.root)
    error = refusal(pki.chain, [pki.root], revoked=[revoked_id])
    assert error.reason == REASON_REVOKED
    assert ("node certificate 'node0'" if which == "leaf" else "agency certificate 'Bank A'") in str(error) and "is revoked" in str(error)
    # The same serial from another issuer is another certificate.
    other_id = pki.leaf.revocation_id(twin.agency) if which == "leaf" else pki.agency.revocation_id(twin.root)
    assert other_id != revoked_id
    assert verify_chain(pki.chain, [pki.root], NOW_MS, [other_id]) == pki.leaf


def test_a_leaf_that_is_a_ca_is_refused(pki):
    error = refusal(CertChain(raw_leaf(pki, ca=True, path_length=0), pki.agency), [pki.root])
    assert error.reason == REASON_LEAF_IS_CA
    assert "the leaf certificate 'node0'" in str(error) and "is a CA" in str(error)
    # A chain file in the wrong order (agency first) is the same mistake.
    assert refusal(CertChain(pki.agency, pki.leaf), [pki.root]).reason == REASON_LEAF_IS_CA


def test_an_agency_that_is_not_a_ca_is_refused(pki):
    error = refusal(CertChain(pki.leaf, raw_agency(pki, ca=False)), [pki.root])
    assert error.reason == REASON_NOT_CA
    assert "the agency certificate 'Bank A'" in str(error) and "is not a CA" in str(error)


def test_an_agency_without_key_cert_sign_is_refused(pki):
    usage = {"extn_id": "key_usage", "critical": True, "extn_value": {"crl_sign"}}
    agency = Certificate.decode(with_extensions(pki.agency, pki.root_priv, drop="key_usage", add=(usage,)))
    assert agency.kind == "agency"
    error = refusal(CertChain(pki.leaf, agency), [pki.root])
    assert error.reason == REASON_NOT_CA and "agency certificate 'Bank A'" in str(error)


def test_a_root_allowing_no_ca_below_it_has_no_agencies(pki):
    priv, pub = KEYS[pki.suite][OTHER_ROOT]
    strict = Certificate.of(x509.issue(suite=pki.suite, issuer_priv=priv, issuer=None, common_name="Strict CA", organisation="Strict",
                                       public_key=pub, serial=1, ca=True, path_length=0, **window(*WIDE)))
    agency = raw_agency(pki, issuer_priv=priv, issuer=strict.x509)
    leaf = raw_leaf(pki, issuer=agency.x509)
    error = refusal(CertChain(leaf, agency), [strict])
    assert error.reason == REASON_PATH_LENGTH
    assert "Strict CA" in str(error) and "allows no CA below it" in str(error)


def test_a_sub_ca_under_an_agency_is_no_agency(pki, tmp_path):
    """root -> agency -> sub-CA -> leaf: too long for the profile, however it is presented."""
    sub_priv, sub_pub = KEYS[pki.suite][SUB_CA]
    sub = Certificate.of(x509.issue(suite=pki.suite, issuer_priv=pki.agency_priv, issuer=pki.agency.x509, common_name="Bank A branch",
                                    organisation="Bank A", public_key=sub_pub, serial=7, ca=True, path_length=0, **window(*WIDE)))
    leaf = raw_leaf(pki, issuer_priv=sub_priv, issuer=sub.x509)
    # As a two-certificate chain the sub-CA stands where an agency should: no root issued it.
    error = refusal(CertChain(leaf, sub), [pki.root])
    assert error.reason == REASON_WRONG_CA and "'Bank A branch'" in str(error)
    # The X.509 layer refuses the full path: the agency's pathlen 0 allows no CA below it.
    with pytest.raises(CertificateError) as info:
        x509.verify_path([leaf.x509, sub.x509, pki.agency.x509], [pki.root.x509], NOW_MS)
    assert info.value.reason == REASON_PATH_LENGTH and "Bank A" in str(info.value)
    # As a file of four certificates it is not a chain at all.
    path = tmp_path / "long.pem"
    path.write_bytes(b"".join(cert_pem(c) for c in (leaf, sub, pki.agency, pki.root)))
    with pytest.raises(CertificateError, match="holds 4 certificate") as info:
        read_chain_file(path)
    assert info.value.reason == REASON_BAD and str(path) in str(info.value)


# ---- refusals: extensions and names ---------------------------------------------------------

UNKNOWN = {"extn_id": "1.2.3.4.5", "critical": True, "extn_value": b"\x05\x00"}


@pytest.mark.parametrize("which", ["leaf", "agency"])
def test_an_unknown_critical_extension_is_refused(pki, which):
    cert, priv = (pki.leaf, pki.agency_priv) if which == "leaf" else (pki.agency, pki.root_priv)
    der = with_extensions(cert, priv, add=(UNKNOWN,))
    error = decode_refusal(der)
    assert error.reason == REASON_UNKNOWN_CRITICAL
    assert "1.2.3.4.5" in str(error) and ("node0" if which == "leaf" else "Bank A") in str(error)
    wire = pack([der, pki.agency.der] if which == "leaf" else [pki.leaf.der, der])
    with pytest.raises(CertificateError) as info:
        CertChain.decode(wire)
    assert info.value.reason == REASON_UNKNOWN_CRITICAL


def test_an_unknown_extension_that_is_not_critical_is_ignored(pki):
    leaf = Certificate.decode(with_extensions(pki.leaf, pki.agency_priv, add=({**UNKNOWN, "critical": False},)))
    assert verify_chain(CertChain(leaf, pki.agency), [pki.root], NOW_MS) == leaf


@pytest.mark.parametrize("unit", ["", "admin", "Sealer"])
def test_a_leaf_without_a_chainnode_role_is_refused(pki, unit):
    leaf = raw_leaf(pki, unit=unit)
    assert (leaf.kind, leaf.role) == ("", "")
    error = refusal(CertChain(leaf, pki.agency), [pki.root])
    assert error.reason == REASON_MISSING_EXTENSION
    assert "end-entity certificate 'node0'" in str(error) and "names no chainnode role" in str(error)


def test_a_node_without_its_peer_id_is_refused(pki):
    for uris in ((), ("https://bank-a.example/node0",), ("p2p:",)):
        error = refusal(CertChain(raw_leaf(pki, uris=uris), pki.agency), [pki.root])
        assert error.reason == REASON_MISSING_EXTENSION, uris
        assert "node certificate 'node0'" in str(error) and "names no peer id" in str(error)


def test_a_node_with_a_malformed_peer_id_is_refused(pki):
    error = refusal(CertChain(raw_leaf(pki, uris=("p2p:QmNotAnEd25519PeerId",)), pki.agency), [pki.root])
    assert error.reason == REASON_BAD and "node certificate 'node0'" in str(error) and "QmNotAnEd25519PeerId" in str(error)


def test_a_node_with_two_peer_ids_is_refused(pki):
    with pytest.raises(CertificateError, match="names 2 peer ids") as info:
        raw_leaf(pki, uris=(f"p2p:{PEER_ID}", f"p2p:{OTHER_PEER_ID}"))
    assert info.value.reason == REASON_BAD and "node0" in str(info.value)


def test_a_leaf_whose_key_may_not_sign_is_refused(pki):
    usage = {"extn_id": "key_usage", "critical": True, "extn_value": {"key_agreement"}}
    leaf = Certificate.decode(with_extensions(raw_leaf(pki), pki.agency_priv, drop="key_usage", add=(usage,)))
    error = refusal(CertChain(leaf, pki.agency), [pki.root])
    assert error.reason == REASON_MISSING_EXTENSION and "lacks keyUsage digitalSignature" in str(error)


def rdn(attribute: str, value: str) -> asn1_x509.RelativeDistinguishedName:
    return asn1_x509.RelativeDistinguishedName([{"type": attribute, "value": asn1_x509.DirectoryString(name="utf8_string", value=value)}])


@pytest.mark.parametrize("attribute, second", [("organization_name", "Bank B"), ("organizational_unit_name", "governor"),
                                               ("common_name", "node9")])
def test_a_name_with_two_organisations_roles_or_names_is_refused(pki, attribute, second):
    """One O, one OU, one CN: a certificate cannot claim two organisations or two roles."""
    tbs = asn1_x509.TbsCertificate.load(raw_leaf(pki).x509.tbs)
    rdns = [rdn("common_name", "node0"), rdn("organization_name", "Bank A"), rdn("organizational_unit_name", "sealer"), rdn(attribute, second)]
    tbs["subject"] = asn1_x509.Name(name="", value=asn1_x509.RDNSequence(rdns))
    error = decode_refusal(signed(pki.suite, pki.agency_priv, tbs))
    assert error.reason == REASON_BAD and f"more than one {attribute}" in str(error)


def test_a_certificate_for_another_peer_id_verifies_and_names_that_peer(pki):
    """The X.509 chain is valid; the admission layer compares the peer id with the peer's."""
    leaf = raw_leaf(pki, uris=(f"p2p:{OTHER_PEER_ID}",))
    assert verify_chain(CertChain(leaf, pki.agency), [pki.root], NOW_MS).peer_id == OTHER_PEER_ID != PEER_ID


def test_a_chain_of_the_other_suite_is_refused():
    sm, ed = make_pki("sm"), make_pki("ed25519")
    error = refusal(ed.chain, [sm.root])
    assert error.reason == REASON_BAD and "ed25519 certificate, but this chain uses sm" in str(error)
    with pytest.raises(CertificateError):
        verify_chain(pack([ed.leaf.der, ed.agency.der]), [ed.root], NOW_MS)  # bytes, not a CertChain


# ---- refusals: bytes that are no certificate ------------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"garbage, not DER",
    b"\x30",
    b"\x30\x82\xff\xff" + b"\x00" * 100,
    b"\x30\x83\x10\x00\x00" + b"\x00" * (1 << 20),  # 1 MB
    b"\x00" * (CERT_BYTES_MAX + 1),
], ids=["empty", "garbage", "one byte", "long length", "1 MB", "just too long"])
def test_bytes_that_are_no_certificate_are_refused(data):
    assert decode_refusal(data).reason == REASON_BAD
    with pytest.raises(CertificateError):
        load_certificates(data, "peer.pem")


def test_a_certificate_that_is_not_bytes_is_refused(pki):
    for data in (bytearray(pki.leaf.der), pki.leaf.der.hex(), None):
        assert decode_refusal(data).reason == REASON_BAD


def test_a_truncated_or_extended_certificate_is_refused(pki):
    der = pki.leaf.der
    for cut in (1, 2, 10, len(der) // 2, len(der) - 1):
        assert decode_refusal(der[:-cut]).reason == REASON_BAD, cut
    assert decode_refusal(der + b"\x00").reason == REASON_BAD


def test_a_pem_file_of_something_else_is_refused(pki, tmp_path):
    path = tmp_path / "node0.pem"
    path.write_bytes(crl_to_pem(issue_crl(issuer=pki.agency.x509, issuer_priv=pki.agency_priv, serials=frozenset(), number=1,
                                          this_update_ms=NOW_MS)))
    with pytest.raises(CertificateError, match="X509 CRL, not a CERTIFICATE") as info:
        read_chain_file(path)
    assert str(path) in str(info.value)
    with pytest.raises(CertificateError, match="not found"):
        read_chain_file(tmp_path / "missing.pem")


# ---- the wire decoder -----------------------------------------------------------------------


@pytest.mark.parametrize("data", [
    b"",
    b"\xc1",  # never used in msgpack
    b"\x92\xc4\x01",  # truncated
    pack([b"a", b"b"]) + b"\x00",  # trailing data
    b"\x92\xc5\x00\x01a\xc4\x01b",  # bin16 for a 1-byte value: not canonical
    pack([]), pack([b"leaf"]), pack([b"a", b"b", b"c"]),
    pack({"leaf": b"a", "agency": b"b"}), pack(7), pack(b"leaf and agency"),
    pack(["leaf", "agency"]), pack([1, 2]), pack([None, b""]), pack([[b"a"], b"b"]),
    pack([b"garbage", b"garbage"]),
    b"\x00" * (CHAIN_BYTES_MAX + 1),
    pack([b"\x30" * 4000, b"\x30" * 4000]),
    None, "text", 7, [b"a", b"b"],
], ids=lambda v: repr(v)[:24])
def test_a_malformed_wire_chain_is_a_certificate_error(data):
    with pytest.raises(CertificateError) as info:
        CertChain.decode(data)
    assert info.value.reason == REASON_BAD


def test_a_wire_chain_of_valid_certificates_in_the_wrong_places_is_refused(pki):
    """Decoding checks the form; verify_chain then says what is wrong."""
    swapped = CertChain.decode(pack([pki.agency.der, pki.leaf.der]))
    assert refusal(swapped, [pki.root]).reason == REASON_LEAF_IS_CA


@settings(max_examples=150, deadline=None)
@given(data=st.one_of(st.binary(max_size=300), st.lists(st.one_of(st.binary(max_size=80), st.integers(-(1 << 63), (1 << 64) - 1), st.text(max_size=8)), max_size=4).map(pack)))
def test_the_wire_decoder_raises_only_certificate_errors(data):
    with pytest.raises(CertificateError):
        CertChain.decode(data)


# ---- revocation lists -----------------------------------------------------------------------


def test_an_agency_crl_revokes_its_leaves(pki, twin):
    crl = issue_crl(issuer=pki.agency.x509, issuer_priv=pki.agency_priv, serials=frozenset({pki.leaf.serial, 3}), number=4,
                    this_update_ms=NOW_MS)
    back = load_crl(crl_to_pem(crl))
    assert (back.number, back.this_update_ms, back.serials) == (4, NOW_MS, {pki.leaf.serial, 3})
    revoked = revoked_by(back, pki.agency)
    assert pki.leaf.revocation_id(pki.agency) in revoked and len(revoked) == 2
    error = refusal(pki.chain, [pki.root], revoked=revoked)
    assert error.reason == REASON_REVOKED and "node certificate 'node0'" in str(error)
    # The same serials under another agency's key are other certificates.
    assert verify_chain(twin.chain, [twin.root], NOW_MS, revoked) == twin.leaf


def test_a_crl_file_is_read_back(pki, tmp_path):
    crl = issue_crl(issuer=pki.agency.x509, issuer_priv=pki.agency_priv, serials=frozenset({9}), number=1, this_update_ms=NOW_MS)
    (tmp_path / "bank-a.crl").write_bytes(crl_to_pem(crl))
    assert read_crl_file(tmp_path / "bank-a.crl") == crl
    (tmp_path / "bad.crl").write_bytes(b"garbage")
    with pytest.raises(CertificateError, match="bad.crl"):
        read_crl_file(tmp_path / "bad.crl")


def test_a_crl_signed_by_another_key_is_refused(pki, twin):
    forged = issue_crl(issuer=pki.agency.x509, issuer_priv=twin.agency_priv, serials=frozenset({pki.leaf.serial}), number=2,
                       this_update_ms=NOW_MS)
    with pytest.raises(CertificateError) as info:
        revoked_by(forged, pki.agency)
    assert info.value.reason == REASON_BAD_SIGNATURE
    assert "does not verify with agency certificate 'Bank A'" in str(info.value)


def test_a_crl_of_another_issuer_is_refused(pki):
    bank_b = make_pki(pki.suite, agency_key=OTHER_AGENCY, agency_name="Bank B")
    crl = issue_crl(issuer=bank_b.agency.x509, issuer_priv=bank_b.agency_priv, serials=frozenset({pki.leaf.serial}), number=1,
                    this_update_ms=NOW_MS)
    for issuer in (pki.agency, pki.root):
        with pytest.raises(CertificateError) as info:
            revoked_by(crl, issuer)
        assert info.value.reason == REASON_WRONG_CA and "Bank B" in str(info.value)


def test_malformed_crl_bytes_are_refused(pki):
    crl = issue_crl(issuer=pki.agency.x509, issuer_priv=pki.agency_priv, serials=frozenset({5}), number=1, this_update_ms=NOW_MS)
    for data in (b"", b"garbage", crl.der[:40], crl.der[:-1], crl.der + b"\x00", pki.leaf.der, cert_pem(pki.leaf), b"\x00" * (9 << 20),
                 crl.der.hex(), None):
        with pytest.raises(CertificateError) as info:
            load_crl(data)
        assert info.value.reason == REASON_BAD, repr(data)[:30]


# ---- files of chainnode 0.1 -----------------------------------------------------------------


@pytest.mark.parametrize("read, tag", [(read_chain_file, "chainnode-chain/1"), (read_cert_file, "chainnode-cert/1"),
                                       (read_crl_file, "chainnode-crl/1")])
def test_an_old_format_file_names_the_migration(tmp_path, read, tag):
    path = tmp_path / "node0.chain"
    path.write_text("\n  " + json.dumps({"format": tag, "subject": "node0", "kind": "node", "chain": "9d0102"}))
    with pytest.raises(CertificateError) as info:
        read(path)
    message = str(info.value)
    assert "devnet migrate" in message and "chainnode 0.1" in message and str(path) in message


# ---- properties -----------------------------------------------------------------------------

PRINTABLE = st.text(st.characters(categories=("L", "M", "N", "P", "S", "Zs")), min_size=1, max_size=64)
CJK = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FFF), min_size=1, max_size=64)
NAMES = st.one_of(PRINTABLE, CJK)
Y2000_S, Y2100_S = 946_684_800, 4_102_444_800


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suite=st.sampled_from(SUITES), root_name=NAMES, agency_name=NAMES, leaf_name=NAMES, role=st.sampled_from(NODE_ROLES + CLIENT_ROLES),
       start_s=st.integers(Y2000_S, Y2100_S), length_s=st.integers(1, 20 * YEAR_MS // SECOND_MS), at=st.floats(0, 1))
def test_any_names_windows_and_roles_round_trip(suite, root_name, agency_name, leaf_name, role, start_s, length_s, at):
    assume(root_name != agency_name)  # an agency named as its root would read as self-issued
    span = window(start_s * SECOND_MS, (start_s + length_s) * SECOND_MS)
    (root_priv, root_pub), (agency_priv, agency_pub), (_, leaf_pub) = KEYS[suite][:3]
    root = issue(kind="ca", subject=root_name, organisation=root_name, role="", public_key=root_pub, peer_id="", suite=suite,
                 issuer_priv=root_priv, issuer=None, **span)
    agency = issue(kind="agency", subject=agency_name, organisation=agency_name, role="", public_key=agency_pub, peer_id="", suite=suite,
                   issuer_priv=root_priv, issuer=root, **span)
    kind = "node" if role in NODE_ROLES else "client"
    leaf = issue(kind=kind, subject=leaf_name, organisation=agency_name, role=role, public_key=leaf_pub, peer_id=PEER_ID if kind == "node" else "",
                 suite=suite, issuer_priv=agency_priv, issuer=agency, **span)

    wire = CertChain.decode(CertChain(leaf, agency).encode())
    from_pem = CertChain.of(load_certificates(CertChain(leaf, agency, root).to_pem(), "chain.pem"))
    roots = [Certificate.decode(root.der)]
    for chain in (wire, from_pem):
        got = chain.leaf
        assert (got.kind, got.subject, got.organisation, got.role, got.peer_id) == (kind, leaf_name, agency_name, role,
                                                                                     PEER_ID if kind == "node" else "")
        assert (got.serial, got.not_before_ms, got.not_after_ms) == (leaf.serial, span["not_before_ms"], span["not_after_ms"])
        assert (chain.agency.kind, chain.agency.subject, chain.agency.organisation) == ("agency", agency_name, agency_name)
        now_ms = span["not_before_ms"] + int(at * length_s) * SECOND_MS
        assert verify_chain(chain, roots, now_ms) == leaf


FLIP = {suite: make_pki(suite, leaf_window=WIDE) for suite in SUITES}


def verifies(p: Pki, der: bytes) -> bool:
    try:
        return verify_chain(CertChain(Certificate.decode(der), p.agency), [p.root], NOW_MS) is not None
    except CertificateError:
        return False


@pytest.mark.parametrize("suite", SUITES)
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_no_single_changed_byte_of_a_leaf_verifies(suite, data):
    p = FLIP[suite]
    der = p.leaf.der
    at = data.draw(st.integers(0, len(der) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != der[at]), label="value")
    assert not verifies(p, der[:at] + bytes([value]) + der[at + 1:]), f"byte {at} set to {value:#04x} verified"


@pytest.mark.parametrize("suite", SUITES)
def test_no_byte_of_a_leaf_set_to_00_or_ff_verifies(suite):
    """The exhaustive companion of the property, at the two extremes of every position."""
    p = FLIP[suite]
    der = p.leaf.der
    assert verifies(p, der)
    accepted = [(at, value) for at in range(len(der)) for value in {0x00, 0xFF} - {der[at]} if verifies(p, der[:at] + bytes([value]) + der[at + 1:])]
    assert accepted == []


# ---- one certificate, one encoding --------------------------------------------------------


def signature_bit_string_at(der: bytes) -> int:
    """The offset of the unused-bits octet of a certificate's signatureValue BIT STRING."""
    return len(der) - len(asn1_x509.Certificate.load(der)["signature_value"].contents)


@pytest.mark.parametrize("suite", SUITES)
def test_a_signature_with_unused_bits_is_refused(suite):
    """A signature is a whole number of octets; a BIT STRING claiming 1 unused bit is
    another encoding of the same certificate (OpenSSL: "invalid bit string bits left")."""
    p = next(q for q in (make_pki(suite, leaf_window=WIDE) for _ in range(64)) if q.leaf.der[-1] & 1 == 0)
    der = p.leaf.der
    at = signature_bit_string_at(der)
    assert der[at] == 0
    assert not verifies(p, der[:at] + b"\x01" + der[at + 1:])


def test_a_repeated_subject_alt_name_is_refused(pki):
    """RFC 5280 4.2: an extension appears at most once. Two subjectAltNames hide a second
    peer id from the "one peer id" rule: chainnode reads the last, another reader the first."""
    san = {"extn_id": "subject_alt_name", "critical": False,
           "extn_value": [asn1_x509.GeneralName(name="uniform_resource_identifier", value=f"p2p:{OTHER_PEER_ID}")]}
    with pytest.raises(CertificateError):
        Certificate.decode(with_extensions(pki.leaf, pki.agency_priv, add=(san,)))

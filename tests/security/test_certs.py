"""The consortium profile on X.509 (chainnode/security/certs.py): chains round-trip through
DER, PEM and the wire form, every hostile certificate is refused with its reason, and no
single flipped byte of a certificate ever verifies (a hypothesis property)."""

from __future__ import annotations

import json

import pytest
from asn1crypto import x509 as asn1_x509
from hypothesis import HealthCheck, given, settings, strategies as st

from chainnode.crypto import get_suite
from chainnode.network.identity import peer_id_from_seed
from chainnode.protocol.codec import pack
from chainnode.security import x509
from chainnode.security.certs import (
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
    issue,
    issue_crl,
    load_certificates,
    read_chain_file,
    revoked_by,
    verify_chain,
)
from tests.security.pki import DAY_MS, NOW_MS, PEER_ID, make_pki

KEYS = {name: [get_suite(name).generate_keypair() for _ in range(3)] for name in ("sm", "ed25519")}


@pytest.fixture(scope="module", params=["sm", "ed25519"])
def pki(request):
    return make_pki(request.param)


def reason(chain: CertChain, roots, now_ms: int = NOW_MS, revoked=()) -> str:
    with pytest.raises(CertificateError) as info:
        verify_chain(chain, roots, now_ms, revoked)
    return info.value.reason


def raw_leaf(p, **overrides) -> Certificate:
    """A leaf under p's agency made with the X.509 layer directly, to break the profile."""
    fields = dict(suite=p["ca"].suite, issuer_priv=p["ag_priv"], issuer=p["agency"].x509, common_name="node0", organisation="Bank A",
                  public_key=p["leaf"].public_key, serial=99, not_before_ms=NOW_MS - DAY_MS, not_after_ms=NOW_MS + DAY_MS, ca=False,
                  unit="sealer", uris=(f"p2p:{PEER_ID}",))
    fields.update(overrides)
    return Certificate.of(x509.issue(**fields))


# ---- round trips ----------------------------------------------------------------------------


@pytest.mark.parametrize("leaf_kind", ["node", "client"])
@pytest.mark.parametrize("suite_name", ["sm", "ed25519"])
def test_round_trip_and_verify(suite_name, leaf_kind, tmp_path):
    p = make_pki(suite_name, leaf_kind=leaf_kind)
    chain = p["chain"]
    assert verify_chain(chain, [p["ca"]], NOW_MS) == p["leaf"]
    assert CertChain.decode(chain.encode()) == CertChain(chain.leaf, chain.agency)  # the wire carries no root
    assert load_certificates(chain.to_pem(), "chain") == [chain.leaf, chain.agency, chain.root]
    (tmp_path / "chain.pem").write_bytes(chain.to_pem())
    assert read_chain_file(tmp_path / "chain.pem") == chain
    leaf = p["leaf"]
    assert (leaf.kind, leaf.organisation, leaf.suite) == (leaf_kind, "Bank A", suite_name)
    assert leaf.role == ("sealer" if leaf_kind == "node" else "user") and leaf.peer_id == (PEER_ID if leaf_kind == "node" else "")
    assert Certificate.decode(leaf.der) == leaf and 0 < leaf.serial < 1 << 159


def test_any_of_several_roots_may_have_issued_the_agency(pki):
    other = make_pki(pki["ca"].suite)
    assert verify_chain(pki["chain"], [other["ca"], pki["ca"]], NOW_MS) == pki["leaf"]
    assert reason(pki["chain"], [other["ca"]]) == REASON_WRONG_CA


# ---- hostile certificates -------------------------------------------------------------------


def test_each_broken_chain_is_refused_with_its_reason(pki):
    p, roots = pki, [pki["ca"]]
    leaf, agency, ca = p["leaf"], p["agency"], p["ca"]
    tampered = bytearray(leaf.der)
    tampered[-1] ^= 1
    other = make_pki(ca.suite)
    bank_b = issue(kind="agency", subject="Bank B", organisation="Bank A", role="", public_key=other["agency"].public_key, peer_id="",
                   suite=ca.suite, not_before_ms=0, not_after_ms=NOW_MS + DAY_MS, issuer_priv=other["ca_priv"], issuer=other["ca"])
    cases = {
        "tampered signature": (CertChain(Certificate.decode(bytes(tampered)), agency), REASON_BAD_SIGNATURE),
        "leaf of another agency": (CertChain(raw_leaf(p, issuer_priv=other["ag_priv"], issuer=bank_b.x509), agency), REASON_AGENCY_MISMATCH),
        "same-named agency, other key": (CertChain(other["leaf"], agency), REASON_BAD_SIGNATURE),
        "organisation differs": (CertChain(raw_leaf(p, organisation="Bank Z"), agency), REASON_AGENCY_MISMATCH),
        "leaf is a CA": (CertChain(raw_leaf(p, ca=True, unit=""), agency), REASON_LEAF_IS_CA),
        "agency is no CA": (CertChain(leaf, Certificate.of(x509.issue(
            suite=ca.suite, issuer_priv=p["ca_priv"], issuer=ca.x509, common_name="Bank A", organisation="Bank A",
            public_key=agency.public_key, serial=5, not_before_ms=0, not_after_ms=NOW_MS + DAY_MS, ca=False))), REASON_NOT_CA),
        "no role": (CertChain(raw_leaf(p, unit=""), agency), REASON_MISSING_EXTENSION),
        "node without peer id": (CertChain(raw_leaf(p, uris=()), agency), REASON_MISSING_EXTENSION),
        "no digitalSignature": (CertChain(_without_key_usage(p), agency), REASON_MISSING_EXTENSION),
    }
    for name, (chain, expected) in cases.items():
        assert reason(chain, roots) == expected, name
    assert reason(p["chain"], roots, now_ms=leaf.not_after_ms + 1) == REASON_EXPIRED
    assert reason(p["chain"], roots, now_ms=leaf.not_before_ms - 1) == REASON_NOT_YET_VALID
    assert reason(p["chain"], roots, now_ms=ca.not_after_ms + 1) == REASON_EXPIRED
    assert reason(p["chain"], roots, revoked=[leaf.revocation_id(agency)]) == REASON_REVOKED
    assert reason(p["chain"], roots, revoked=[agency.revocation_id(ca)]) == REASON_REVOKED
    # The same serial from another issuer is another certificate.
    assert verify_chain(p["chain"], roots, NOW_MS, [leaf.revocation_id(other["agency"])]) == leaf


def _without_key_usage(p) -> Certificate:
    """A leaf whose keyUsage is keyAgreement only: its key may not sign."""
    cert = raw_leaf(p)
    tbs = asn1_x509.TbsCertificate.load(cert.x509.tbs)
    tbs["extensions"] = [e for e in tbs["extensions"] if e["extn_id"].native != "key_usage"] + [
        {"extn_id": "key_usage", "critical": True, "extn_value": {"key_agreement"}}]
    return _resign(tbs, p["ag_priv"], cert.suite)


def _resign(tbs: asn1_x509.TbsCertificate, priv: bytes, suite: str) -> Certificate:
    algorithm = {"algorithm": x509.SM2_WITH_SM3 if suite == "sm" else "ed25519"}
    der = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": x509._sign(suite, priv, tbs.dump())}).dump()
    return Certificate.decode(der)


def test_a_path_too_long_is_refused(pki):
    p = pki
    # A sub-CA under the agency, issuing the leaf: the agency allows no CA below it.
    sub_priv, sub_pub = get_suite(p["ca"].suite).generate_keypair()
    sub = Certificate.of(x509.issue(suite=p["ca"].suite, issuer_priv=p["ag_priv"], issuer=p["agency"].x509, common_name="Sub", organisation="Bank A",
                                    public_key=sub_pub, serial=7, not_before_ms=0, not_after_ms=NOW_MS + DAY_MS, ca=True, path_length=0))
    leaf = raw_leaf(p, issuer_priv=sub_priv, issuer=sub.x509)
    assert reason(CertChain(leaf, sub), [p["ca"]]) == REASON_WRONG_CA  # the sub-CA is no agency of a root
    # A root that allows no CA below it cannot have agencies.
    root_priv, root_pub = get_suite(p["ca"].suite).generate_keypair()
    strict = Certificate.of(x509.issue(suite=p["ca"].suite, issuer_priv=root_priv, issuer=None, common_name="Strict", organisation="S",
                                       public_key=root_pub, serial=1, not_before_ms=0, not_after_ms=NOW_MS + DAY_MS, ca=True, path_length=0))
    agency = issue(kind="agency", subject="Bank A", organisation="Bank A", role="", public_key=p["agency"].public_key, peer_id="",
                   suite=p["ca"].suite, not_before_ms=0, not_after_ms=NOW_MS + DAY_MS, issuer_priv=root_priv, issuer=strict)
    leaf2 = raw_leaf(p, issuer=agency.x509)
    assert reason(CertChain(leaf2, agency), [strict]) == REASON_PATH_LENGTH


def test_an_unknown_critical_extension_is_refused(pki):
    cert = raw_leaf(pki)
    tbs = asn1_x509.TbsCertificate.load(cert.x509.tbs)
    tbs["extensions"] = list(tbs["extensions"]) + [{"extn_id": "1.2.3.4.5", "critical": True, "extn_value": b"\x05\x00"}]
    with pytest.raises(CertificateError) as info:
        _resign(tbs, pki["ag_priv"], cert.suite)
    assert info.value.reason == REASON_UNKNOWN_CRITICAL and "1.2.3.4.5" in str(info.value)


def test_two_peer_ids_are_refused(pki):
    other = peer_id_from_seed(bytes([9]) * 32)
    with pytest.raises(CertificateError, match="names 2 peer ids"):
        raw_leaf(pki, uris=(f"p2p:{PEER_ID}", f"p2p:{other}"))


def test_a_certificate_for_another_peer_id_says_which(pki):
    other = peer_id_from_seed(b"\x09" * 32)
    leaf = raw_leaf(pki, uris=(f"p2p:{other}",))
    assert verify_chain(CertChain(leaf, pki["agency"]), [pki["ca"]], NOW_MS).peer_id == other  # admission compares it with the peer


@pytest.mark.parametrize("data", [b"", b"\x30", b"\x30\x82\xff\xff" + b"\x00" * 100, b"garbage", b"\x30" + b"\x00" * (1 << 20)])
def test_malformed_certificate_bytes_are_refused(data):
    with pytest.raises(CertificateError) as info:
        Certificate.decode(data)
    assert info.value.reason == REASON_BAD


def test_a_truncated_certificate_is_refused(pki):
    for cut in (1, 10, len(pki["leaf"].der) // 2):
        with pytest.raises(CertificateError):
            Certificate.decode(pki["leaf"].der[:-cut])


@pytest.mark.parametrize("data", [b"", b"\xc1", pack([b"x"]), pack([1, 2]), pack([b"a", b"b", b"c"]), pack(["text", b""]), b"\x00" * 10_000])
def test_malformed_wire_chains_are_refused(data):
    with pytest.raises(CertificateError):
        CertChain.decode(data)


# ---- revocation lists -----------------------------------------------------------------------


def test_a_crl_names_its_serials_for_its_issuer_only(pki):
    p = pki
    crl = issue_crl(issuer=p["agency"].x509, issuer_priv=p["ag_priv"], serials=frozenset({p["leaf"].serial, 3}), number=4, this_update_ms=NOW_MS)
    assert revoked_by(crl, p["agency"]) == {p["leaf"].revocation_id(p["agency"]), p["leaf"].revocation_id(p["agency"])[:-len(_bytes(p["leaf"].serial))] + b"\x03"}
    assert x509.load_crl(x509.crl_to_pem(crl)).number == 4
    with pytest.raises(CertificateError) as info:
        revoked_by(crl, p["ca"])
    assert info.value.reason == REASON_WRONG_CA
    forged = bytearray(crl.der)
    forged[-1] ^= 1
    with pytest.raises(CertificateError) as info:
        revoked_by(x509.load_crl(bytes(forged)), p["agency"])
    assert info.value.reason == REASON_BAD_SIGNATURE
    for junk in (b"", b"garbage", crl.der[:40]):
        with pytest.raises(CertificateError):
            x509.load_crl(junk)


def _bytes(n: int) -> bytes:
    return n.to_bytes((n.bit_length() + 7) // 8 or 1, "big")


def test_an_old_format_file_names_the_conversion(tmp_path):
    path = tmp_path / "node.chain"
    path.write_text(json.dumps({"format": "chainnode-chain/1", "subject": "node0", "kind": "node", "chain": "9d01"}))
    with pytest.raises(CertificateError, match="devnet migrate --dir"):
        read_chain_file(path)


# ---- properties -----------------------------------------------------------------------------

NAMES = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=64).filter(lambda s: s.strip() == s and s)
WINDOWS = st.tuples(st.integers(946_684_800_000, 4_102_444_800_000), st.integers(1000, 20 * 365 * DAY_MS))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suite_name=st.sampled_from(["sm", "ed25519"]), names=st.tuples(NAMES, NAMES, NAMES), window=WINDOWS,
       role=st.sampled_from(["sealer", "observer", "user", "governor", "regulator", "auditor"]))
def test_issue_encode_parse_verify_round_trips(suite_name, names, window, role):
    (ca_priv, ca_pub), (ag_priv, ag_pub), (_, leaf_pub) = KEYS[suite_name]
    start, length = window
    span = dict(not_before_ms=start // 1000 * 1000, not_after_ms=(start + length) // 1000 * 1000)
    ca = issue(kind="ca", subject=names[0], organisation=names[0], role="", public_key=ca_pub, peer_id="", suite=suite_name,
               issuer_priv=ca_priv, issuer=None, **span)
    agency = issue(kind="agency", subject=names[1], organisation=names[1], role="", public_key=ag_pub, peer_id="", suite=suite_name,
                   issuer_priv=ca_priv, issuer=ca, **span)
    kind = "node" if role in ("sealer", "observer") else "client"
    leaf = issue(kind=kind, subject=names[2], organisation=names[1], role=role, public_key=leaf_pub, peer_id=PEER_ID if kind == "node" else "",
                 suite=suite_name, issuer_priv=ag_priv, issuer=agency, **span)
    wire = CertChain.decode(CertChain(leaf, agency).encode())
    assert wire.leaf == leaf and (wire.leaf.subject, wire.leaf.organisation, wire.leaf.role) == (names[2], names[1], role)
    assert (wire.leaf.not_before_ms, wire.leaf.not_after_ms) == (span["not_before_ms"], span["not_after_ms"])
    assert verify_chain(wire, [ca], span["not_before_ms"] + (span["not_after_ms"] - span["not_before_ms"]) // 2) == leaf


FLIP_PKI = make_pki("sm")


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_no_flipped_byte_verifies(data):
    der = FLIP_PKI["leaf"].der
    at = data.draw(st.integers(0, len(der) - 1), label="index")
    value = data.draw(st.integers(0, 255).filter(lambda v: v != der[at]), label="value")
    flipped = der[:at] + bytes([value]) + der[at + 1:]
    try:
        leaf = Certificate.decode(flipped)
        verify_chain(CertChain(leaf, FLIP_PKI["agency"]), [FLIP_PKI["ca"]], NOW_MS)
    except CertificateError:
        return
    pytest.fail(f"a certificate with byte {at} changed to {value:#04x} verified")


def test_every_byte_set_to_00_or_ff_is_refused():
    """The deterministic companion of the property: each position of one leaf, both extremes
    (a flipped length byte once made asn1crypto raise IndexError, not a refusal)."""
    der = FLIP_PKI["leaf"].der
    for at in range(len(der)):
        for value in {0x00, 0xFF} - {der[at]}:
            with pytest.raises(CertificateError):
                verify_chain(CertChain(Certificate.decode(der[:at] + bytes([value]) + der[at + 1:]), FLIP_PKI["agency"]), [FLIP_PKI["ca"]], NOW_MS)

"""The certificate format, chains, revocation lists and every reason verify_chain refuses."""

from dataclasses import replace

import pytest

from chainnode.crypto import get_suite
from chainnode.network.identity import peer_id_from_seed
from chainnode.protocol.codec import DecodeError, pack
from chainnode.security.certs import (
    CERT_BYTES_MAX,
    CertChain,
    Certificate,
    CertificateError,
    RevocationList,
    issue,
    key_hash,
    verify_chain,
)

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000
PEER_ID = peer_id_from_seed(b"\x07" * 32)


def make_pki(suite_name="sm", *, leaf_kind="node", leaf_window=(NOW_MS - DAY_MS, NOW_MS + DAY_MS)):
    suite = get_suite(suite_name)
    ca_priv, ca_pub = suite.generate_keypair()
    ag_priv, ag_pub = suite.generate_keypair()
    _, leaf_pub = suite.generate_keypair()
    window = dict(not_before_ms=NOW_MS - 10 * DAY_MS, not_after_ms=NOW_MS + 10 * DAY_MS)
    ca = issue(kind="ca", subject="Consortium CA", organisation="Consortium CA", role="", public_key=ca_pub, peer_id="", suite=suite_name, issuer_priv=ca_priv, **window)
    agency = issue(kind="agency", subject="Bank A", organisation="Bank A", role="", public_key=ag_pub, peer_id="", suite=suite_name, issuer_priv=ca_priv, **window)
    leaf = issue(
        kind=leaf_kind, subject="node0" if leaf_kind == "node" else "alice", organisation="Bank A",
        role="sealer" if leaf_kind == "node" else "user", public_key=leaf_pub, peer_id=PEER_ID if leaf_kind == "node" else "",
        suite=suite_name, issuer_priv=ag_priv, not_before_ms=leaf_window[0], not_after_ms=leaf_window[1],
    )
    return dict(suite=suite, ca_priv=ca_priv, ag_priv=ag_priv, ca=ca, agency=agency, leaf=leaf, chain=CertChain(ca, agency, leaf))


@pytest.fixture(scope="module")
def pki():
    return make_pki()


@pytest.mark.parametrize("suite_name,leaf_kind", [("sm", "node"), ("sm", "client"), ("ed25519", "node")])
def test_round_trip_and_verify(suite_name, leaf_kind):
    p = make_pki(suite_name, leaf_kind=leaf_kind)
    for cert in p["chain"]:
        assert Certificate.decode(cert.encode()) == cert
        assert len(cert.encode()) < CERT_BYTES_MAX
    decoded = CertChain.decode(p["chain"].encode())
    assert decoded == p["chain"]
    assert verify_chain(decoded, p["ca"], NOW_MS) == p["leaf"]
    assert p["ca"].is_self_signed and not p["agency"].is_self_signed
    assert p["agency"].issuer_key_hash == key_hash(suite_name, p["ca"].public_key)


def test_signature_is_domain_separated(pki):
    leaf = pki["leaf"]
    fields = leaf.unsigned_fields()
    assert leaf.signing_bytes() == pack([1, "chainnode/cert", *fields])
    # A signature over the bare fields (as another message type would sign) does not verify.
    bare_sig = pki["suite"].sign(pki["ag_priv"], pack(fields))
    with pytest.raises(CertificateError, match="bad signature"):
        verify_chain(CertChain(pki["ca"], pki["agency"], replace(leaf, signature=bare_sig)), pki["ca"], NOW_MS)


def test_wrong_ca(pki):
    other = make_pki()
    with pytest.raises(CertificateError, match=r"wrong or missing CA: the chain of 'node0' carries the CA 'Consortium CA' \(serial [0-9a-f]{32}\), not the trusted CA"):
        verify_chain(pki["chain"], other["ca"], NOW_MS)
    # The chain carries the trusted CA, but its agency was issued by another CA.
    chain = CertChain(pki["ca"], other["agency"], other["leaf"])
    with pytest.raises(CertificateError, match="wrong or missing CA: the agency certificate of 'Bank A' .* was not issued by the trusted CA 'Consortium CA'"):
        verify_chain(chain, pki["ca"], NOW_MS)


def test_agency_mismatch(pki):
    other = make_pki()
    chain = CertChain(pki["ca"], pki["agency"], other["leaf"])
    with pytest.raises(CertificateError, match=r"agency mismatch: the node certificate 'node0' \(serial .*\) was not issued by the agency 'Bank A'"):
        verify_chain(chain, pki["ca"], NOW_MS)
    # Issued by the right agency key, but claiming another organisation.
    leaf = issue(
        kind="node", subject="node9", organisation="Bank B", role="observer", public_key=pki["leaf"].public_key, peer_id=PEER_ID,
        suite="sm", issuer_priv=pki["ag_priv"], not_before_ms=NOW_MS - 1, not_after_ms=NOW_MS + 1,
    )
    with pytest.raises(CertificateError, match="agency mismatch: .* names organisation 'Bank B' but was issued by the agency 'Bank A'"):
        verify_chain(CertChain(pki["ca"], pki["agency"], leaf), pki["ca"], NOW_MS)


def test_expired_and_not_yet_valid():
    p = make_pki(leaf_window=(NOW_MS - 2 * DAY_MS, NOW_MS - DAY_MS))
    with pytest.raises(CertificateError, match=r"node certificate 'node0' .* expired on 2027-01-1\dT"):
        verify_chain(p["chain"], p["ca"], NOW_MS)
    p = make_pki(leaf_window=(NOW_MS + DAY_MS, NOW_MS + 2 * DAY_MS))
    with pytest.raises(CertificateError, match="node certificate 'node0' .* is not yet valid"):
        verify_chain(p["chain"], p["ca"], NOW_MS)
    # The CA's and the agency's own windows count too.
    with pytest.raises(CertificateError, match="ca certificate 'Consortium CA' .* expired"):
        verify_chain(p["chain"], p["ca"], NOW_MS + 11 * DAY_MS)


def test_revoked(pki):
    with pytest.raises(CertificateError, match=f"node certificate 'node0' \\(serial {pki['leaf'].serial.hex()}\\) is revoked"):
        verify_chain(pki["chain"], pki["ca"], NOW_MS, {pki["leaf"].serial})
    with pytest.raises(CertificateError, match="agency certificate 'Bank A' .* is revoked"):
        verify_chain(pki["chain"], pki["ca"], NOW_MS, [pki["agency"].serial])
    assert verify_chain(pki["chain"], pki["ca"], NOW_MS, [bytes(16)]) == pki["leaf"]


def test_bad_signature(pki):
    forged = replace(pki["leaf"], role="observer")  # an edit after signing
    with pytest.raises(CertificateError, match="node certificate 'node0' .*: bad signature"):
        verify_chain(CertChain(pki["ca"], pki["agency"], forged), pki["ca"], NOW_MS)
    forged_agency = replace(pki["agency"], subject="Bank Z")
    with pytest.raises(CertificateError, match="agency certificate 'Bank Z' .*: bad signature"):
        verify_chain(CertChain(pki["ca"], forged_agency, pki["leaf"]), pki["ca"], NOW_MS)
    forged_ca = replace(pki["ca"], not_after_ms=pki["ca"].not_after_ms + 1)
    with pytest.raises(CertificateError, match="bad signature"):
        verify_chain(CertChain(forged_ca, pki["agency"], pki["leaf"]), forged_ca, NOW_MS)


def test_wrong_kind_order(pki):
    with pytest.raises(CertificateError, match="wrong kind order: expected ca -> agency -> node/client, got ca -> agency -> agency"):
        verify_chain(CertChain(pki["ca"], pki["agency"], pki["agency"]), pki["ca"], NOW_MS)
    with pytest.raises(CertificateError, match="wrong kind order"):
        verify_chain(CertChain(pki["agency"], pki["ca"], pki["leaf"]), pki["ca"], NOW_MS)


def test_wrong_suite(pki):
    ed = make_pki("ed25519")
    with pytest.raises(CertificateError, match="wrong suite 'ed25519', the trusted CA 'Consortium CA' uses 'sm'"):
        verify_chain(ed["chain"], pki["ca"], NOW_MS)


def test_bad_peer_id_is_refused(pki):
    with pytest.raises(CertificateError, match="peer id"):
        issue(
            kind="node", subject="n", organisation="Bank A", role="sealer", public_key=pki["leaf"].public_key, peer_id="QmNotAnEd25519Id",
            suite="sm", issuer_priv=pki["ag_priv"], not_before_ms=0, not_after_ms=1,
        )
    # Signed by the real agency but with a malformed peer id: refused by verify_chain too.
    leaf = replace(pki["leaf"], peer_id="x" * 52)
    leaf = replace(leaf, signature=pki["suite"].sign(pki["ag_priv"], leaf.signing_bytes()))
    with pytest.raises(CertificateError, match="is not base58|not the id of an ed25519"):
        verify_chain(CertChain(pki["ca"], pki["agency"], leaf), pki["ca"], NOW_MS)


@pytest.mark.parametrize(
    "kind,role,peer_id",
    [("node", "user", PEER_ID), ("client", "sealer", ""), ("agency", "sealer", ""), ("client", "user", PEER_ID), ("node", "sealer", "")],
)
def test_role_and_peer_id_must_fit_the_kind(pki, kind, role, peer_id):
    with pytest.raises(CertificateError, match="cannot issue"):
        issue(
            kind=kind, subject="x", organisation="Bank A", role=role, public_key=pki["leaf"].public_key, peer_id=peer_id,
            suite="sm", issuer_priv=pki["ag_priv"], not_before_ms=0, not_after_ms=1,
        )


def test_every_tampered_byte_is_refused(pki):
    """Flip each byte of an encoded leaf: decode fails, or verification fails; never accepted."""
    data = pki["chain"].encode()
    leaf_offset = data.index(pki["leaf"].encode())
    for i in range(leaf_offset, len(data)):
        tampered = bytearray(data)
        tampered[i] ^= 0x01
        try:
            chain = CertChain.decode(bytes(tampered))
        except DecodeError:
            continue
        with pytest.raises(CertificateError):
            verify_chain(chain, pki["ca"], NOW_MS)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",
        b"\x00" * (CERT_BYTES_MAX + 1),
        pack({"serial": b"x"}),
        pack([1]),
        pack([2] + [0] * 12),
        pack(["1"] + [0] * 12),
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "sm", b"s" * 63]),  # short signature
        pack([1, b"s" * 16, "root", "n", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "sm", b"s" * 64]),  # unknown kind
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 32, "", b"h" * 32, 0, 1, "sm", b"s" * 64]),  # ed25519-sized key under sm
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, 2, 1, "sm", b"s" * 64]),  # window backwards
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, -1, 1, "sm", b"s" * 64]),
        pack([1, b"s" * 16, "ca", "", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "sm", b"s" * 64]),  # empty subject
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "rsa", b"s" * 64]),
        pack([1, "s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "sm", b"s" * 64]),  # text serial
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "sm", b"s" * 64, b""]),  # extra field
        pack([1, b"s" * 16, "ca", "n", "o", "", b"k" * 65, "", b"h" * 32, 0, 1, "sm", b"s" * 64]) + b"\x00",  # trailing byte
    ],
)
def test_hostile_certificate_bytes_raise_decode_error(data):
    with pytest.raises(DecodeError):
        Certificate.decode(data)


def test_hostile_chain_bytes_raise_decode_error(pki):
    for data in (pack([1, pki["ca"].to_fields(), pki["agency"].to_fields()]), pack([1, 1, 2, 3]), b"\x93" + b"\x00" * 3, bytes(range(256))):
        with pytest.raises(DecodeError):
            CertChain.decode(data)


def test_revocation_list(pki):
    serials = [pki["leaf"].serial, pki["agency"].serial, pki["leaf"].serial]
    crl = RevocationList.create(pki["ca_priv"], "sm", serials, number=3, issued_at_ms=NOW_MS)
    decoded = RevocationList.decode(crl.encode())
    assert decoded == crl and list(decoded.serials) == sorted(set(serials))
    assert decoded.verify(pki["ca"]) == {pki["leaf"].serial, pki["agency"].serial}
    with pytest.raises(CertificateError, match="bad signature"):
        replace(decoded, serials=decoded.serials[:1]).verify(pki["ca"])
    with pytest.raises(CertificateError, match="not issued by the trusted CA"):
        decoded.verify(make_pki()["ca"])
    # Signed by the agency key (not the CA) with the CA's hash claimed: bad signature.
    fake = replace(crl, signature=pki["suite"].sign(pki["ag_priv"], crl.signing_bytes()))
    with pytest.raises(CertificateError, match="bad signature"):
        fake.verify(pki["ca"])
    unsorted = pack([1, crl.issuer_key_hash, 1, 0, list(reversed(crl.serials)), "sm", crl.signature])
    with pytest.raises(DecodeError, match="sorted and unique"):
        RevocationList.decode(unsorted)
    with pytest.raises(CertificateError, match="16 bytes"):
        RevocationList.create(pki["ca_priv"], "sm", [b"short"], number=1, issued_at_ms=0)

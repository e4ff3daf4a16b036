"""X.509 certificates made by the `openssl` command line, as a member's CA makes them, are
parsed and their paths verified by chainnode.security.x509; broken ones are refused with
the reason. The OpenSSL 3.0 quirks are in research/x509-sm2.md: the standard SM2
distinguishing ID must be given explicitly, and `openssl verify` checks it at depth 0 only."""

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from asn1crypto import pem

from chainnode.security import x509
from chainnode.security.certs import REASON_BAD, REASON_BAD_SIGNATURE, REASON_EXPIRED, REASON_NOT_YET_VALID

DISTID = "distid:1234567812345678"
EXTENSIONS = """
[agency]
basicConstraints = critical,CA:TRUE,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
[node]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyAgreement
[odd]
basicConstraints = critical,CA:FALSE
1.2.3.4.5 = critical,ASN1:UTF8String:unknown to chainnode
"""

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")


class Openssl:
    def __init__(self, folder: Path, suite: str) -> None:
        self.folder = folder
        self.suite = suite
        (folder / "ext.cnf").write_text(EXTENSIONS)

    def run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.folder, check=True, capture_output=True)

    def key(self, name: str) -> str:
        if self.suite == "sm":
            self.run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", f"{name}.key")
        else:
            self.run("genpkey", "-algorithm", "ED25519", "-out", f"{name}.key")
        return f"{name}.key"

    def sign_options(self, verify: bool = False) -> list[str]:
        if self.suite != "sm":
            return []
        return ["-sm3", "-sigopt", DISTID] + (["-vfyopt", DISTID] if verify else [])

    def root(self, name: str, days: int = 365) -> x509.X509Certificate:
        key = self.key(name)
        self.run("req", "-x509", "-new", "-key", key, *self.sign_options(), "-subj", f"/CN={name}/O=consortium", "-days", str(days),
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", f"{name}.pem")
        return self.load(name)

    def issue(self, name: str, issuer: str, section: str, days: int = 30, *, standard_id: bool = True) -> x509.X509Certificate:
        key = self.key(name)
        default_id = ["-sm3"] if self.suite == "sm" else []  # OpenSSL's own SM2 ID, not the standard one
        self.run("req", "-new", "-key", key, *(self.sign_options() if standard_id else default_id), "-subj", f"/CN={name}/O=bank A", "-out", f"{name}.csr")
        options = self.sign_options(verify=True) if standard_id else default_id
        self.run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{issuer}.pem", "-CAkey", f"{issuer}.key", "-CAcreateserial", *options,
                 "-extfile", "ext.cnf", "-extensions", section, "-days", str(days), "-out", f"{name}.pem")
        return self.load(name)

    def load(self, name: str) -> x509.X509Certificate:
        return x509.load((self.folder / f"{name}.pem").read_bytes())


@pytest.fixture(scope="module", params=["sm", "ed25519"])
def pki(request, tmp_path_factory):
    tool = Openssl(tmp_path_factory.mktemp(f"openssl-{request.param}"), request.param)
    ca = tool.root("ca")
    agency = tool.issue("agency", "ca", "agency")
    node = tool.issue("node", "agency", "node")
    return tool, ca, agency, node


def now_ms() -> int:
    return int(time.time() * 1000)


def test_an_openssl_chain_parses_and_verifies(pki):
    tool, ca, agency, node = pki
    assert {ca.suite, agency.suite, node.suite} == {tool.suite}
    assert len(node.public_key) == (65 if tool.suite == "sm" else 32)
    assert ca.is_ca and agency.is_ca and not node.is_ca
    assert agency.path_length == 0 and ca.path_length is None
    assert "key_cert_sign" in agency.key_usage and node.key_usage == {"digital_signature", "key_agreement"}
    assert node.subject == "Organization: bank A, Common Name: node" and node.issuer == agency.subject
    serial = subprocess.run(["openssl", "x509", "-in", "node.pem", "-noout", "-serial"], cwd=tool.folder, check=True, capture_output=True, text=True)
    assert int(serial.stdout.strip().split("=")[1], 16) == node.serial
    assert x509.verify_path([node, agency], [ca], now_ms()) is node
    assert x509.verify_path([agency], [ca], now_ms()) is agency


def test_the_der_form_is_the_same_certificate(pki):
    tool, _, _, node = pki
    tool.run("x509", "-in", "node.pem", "-outform", "DER", "-out", "node.der")
    assert x509.load((tool.folder / "node.der").read_bytes()) == node


def test_another_ca_is_not_trusted(pki):
    tool, ca, agency, node = pki
    other = tool.root("other")
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([node, agency], [other], now_ms())
    assert info.value.reason == x509.REASON_WRONG_ISSUER
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([node], [ca], now_ms())  # the agency is missing from the path
    assert info.value.reason == x509.REASON_WRONG_ISSUER


def test_validity_windows(pki):
    _, ca, agency, node = pki
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([node, agency], [ca], node.not_after_ms + 1)
    assert info.value.reason == REASON_EXPIRED and "expired at" in str(info.value)
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([node, agency], [ca], node.not_before_ms - 1)
    assert info.value.reason == REASON_NOT_YET_VALID


def test_a_tampered_certificate_fails_its_signature(pki):
    _, ca, agency, node = pki
    der = bytearray(node.der)
    at = der.index(b"node")  # inside the subject's common name
    der[at] = ord("m")
    forged = x509.parse(bytes(der))
    assert forged.subject.endswith("Common Name: mode")
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([forged, agency], [ca], now_ms())
    assert info.value.reason == REASON_BAD_SIGNATURE


def test_path_length_and_ca_flags_are_enforced(pki):
    tool, ca, agency, node = pki
    sub = tool.issue("sub", "agency", "agency")  # a CA under an agency that allows none below it
    leaf = tool.issue("leaf", "sub", "node")
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([leaf, sub, agency], [ca], now_ms())
    assert info.value.reason == x509.REASON_PATH_LENGTH
    under_node = tool.issue("under-node", "node", "node")  # a node certificate is no CA
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([under_node, node, agency], [ca], now_ms())
    assert info.value.reason == x509.REASON_NOT_CA


def test_an_unknown_critical_extension_is_refused(pki):
    tool, _, _, _ = pki
    with pytest.raises(x509.CertificateError) as info:
        tool.issue("odd", "agency", "odd")
    assert info.value.reason == x509.REASON_UNKNOWN_CRITICAL and "1.2.3.4.5" in str(info.value)


def test_sm2_signed_with_openssl_default_id_does_not_verify(pki):
    tool, ca, agency, _ = pki
    if tool.suite != "sm":
        pytest.skip("the distinguishing ID is SM2's")
    plain = tool.issue("default-id", "agency", "node", standard_id=False)
    with pytest.raises(x509.CertificateError) as info:
        x509.verify_path([plain, agency], [ca], now_ms())
    assert info.value.reason == REASON_BAD_SIGNATURE


@pytest.mark.parametrize(
    "data",
    [b"", b"garbage", b"\x30\x03\x02\x01\x01", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", b"\x30" + b"\x00" * 20_000],
)
def test_malformed_input_is_refused(data):
    with pytest.raises(x509.CertificateError) as info:
        x509.load(data)
    assert info.value.reason == REASON_BAD


def test_a_key_is_not_a_certificate(pki):
    tool, _, _, _ = pki
    with pytest.raises(x509.CertificateError) as info:
        x509.load((tool.folder / "node.key").read_bytes())
    assert info.value.reason == REASON_BAD and "PRIVATE KEY" in str(info.value)


def test_a_chain_issued_here_passes_openssl_verify(pki):
    tool, _, _, _ = pki
    from chainnode.crypto import get_suite

    suite = get_suite(tool.suite)
    now, day_ms = now_ms(), 86_400_000
    (ca_priv, ca_pub), (agency_priv, agency_pub), (_, node_pub) = (suite.generate_keypair() for _ in range(3))
    window = {"not_before_ms": now - 60_000, "not_after_ms": now + 30 * day_ms}
    ca = x509.issue(suite=tool.suite, issuer_priv=ca_priv, issuer=None, common_name="chainnode CA", organisation="consortium",
                    public_key=ca_pub, serial=1, ca=True, **window)
    agency = x509.issue(suite=tool.suite, issuer_priv=ca_priv, issuer=ca, common_name="agency A", organisation="bank A",
                        public_key=agency_pub, serial=2, ca=True, path_length=0, **window)
    node = x509.issue(suite=tool.suite, issuer_priv=agency_priv, issuer=agency, common_name="node0", organisation="bank A",
                      public_key=node_pub, serial=3, ca=False, **window)
    assert x509.verify_path([node, agency], [ca], now) is node
    for name, cert in (("mine-ca", ca), ("mine-agency", agency), ("mine-node", node)):
        (tool.folder / f"{name}.pem").write_bytes(x509.to_pem(cert))
    vfy = ["-vfyopt", DISTID] if tool.suite == "sm" else []
    # Each link on its own: OpenSSL 3.0 applies the distinguishing ID at depth 0 only.
    tool.run("verify", *vfy, "-CAfile", "mine-ca.pem", "mine-agency.pem")
    tool.run("verify", *vfy, "-CAfile", "mine-agency.pem", "-partial_chain", "mine-node.pem")
    text = subprocess.run(["openssl", "x509", "-in", "mine-node.pem", "-noout", "-text"], cwd=tool.folder, check=True, capture_output=True, text=True).stdout
    assert ("SM2-with-SM3" if tool.suite == "sm" else "ED25519") in text
    assert "CA:FALSE" in text and "Digital Signature, Key Agreement" in text
    with pytest.raises(subprocess.CalledProcessError):  # and openssl refuses it under another CA
        tool.run("verify", *vfy, "-CAfile", "mine-ca.pem", "mine-node.pem")


def test_an_openssl_csr_is_verified_and_certified(pki):
    tool, ca, agency, _ = pki
    tool.key("member")
    tool.run("req", "-new", "-key", "member.key", *tool.sign_options(), "-subj", "/CN=node7/O=bank B", "-out", "member.csr")
    request = x509.load_csr((tool.folder / "member.csr").read_bytes())
    assert (request.suite, request.common_name, request.organisation) == (tool.suite, "node7", "bank B")
    tool.run("pkey", "-in", "member.key", "-pubout", "-outform", "DER", "-out", "member.pub.der")
    assert (tool.folder / "member.pub.der").read_bytes().endswith(request.public_key)
    # A tampered request fails its self-signature; a certificate is not a request.
    der = bytearray(pem.unarmor((tool.folder / "member.csr").read_bytes())[2])
    der[der.index(b"node7")] = ord("m")
    with pytest.raises(x509.CertificateError) as info:
        x509.load_csr(bytes(der))
    assert info.value.reason == REASON_BAD_SIGNATURE
    with pytest.raises(x509.CertificateError) as info:
        x509.load_csr((tool.folder / "node.pem").read_bytes())
    assert info.value.reason == REASON_BAD and "not a CERTIFICATE REQUEST" in str(info.value)
    if tool.suite == "sm":  # a request signed with OpenSSL's default SM2 ID is refused with the hint
        tool.run("req", "-new", "-key", "member.key", "-sm3", "-subj", "/CN=node7/O=bank B", "-out", "default-id.csr")
        with pytest.raises(x509.CertificateError, match="distid:1234567812345678"):
            x509.load_csr((tool.folder / "default-id.csr").read_bytes())

"""X.509 v3 certificates as the members' own CAs and `openssl` make them: SM2-with-SM3
(GB/T 20518 profile, standard distinguishing ID) on `sm` chains, Ed25519 (RFC 8410) on
`ed25519` chains. Parsing is asn1crypto's (strict DER), bounded; signatures are checked with
the chain's suite over the exact bytes of `tbsCertificate`.

This is the parser and verifier the X.509 certificate format is built on (issue #16); the
chain's certificates are still the format of chainnode/security/certs.py. Every refusal is
an `X509Error` whose `reason` is one of the REASON_* phrases of certs.py or below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import algos, csr as asn1_csr, pem, x509 as asn1_x509

from chainnode.crypto import get_suite
from chainnode.security.certs import REASON_BAD, REASON_BAD_SIGNATURE, REASON_EXPIRED, REASON_NOT_YET_VALID, CertificateError

CERT_BYTES_MAX = 8192  # a certificate with a few names and extensions is under 1.5 KB
SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM2_CURVE = "1.2.156.10197.1.301"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ED25519 = "1.3.101.112"
# Critical extensions we understand; any other marked critical refuses the certificate
# (RFC 5280 4.2: a verifier must reject what it cannot process).
KNOWN_CRITICAL = frozenset({"basic_constraints", "key_usage", "extended_key_usage", "subject_alt_name", "name_constraints"})
REASON_UNKNOWN_CRITICAL = "unknown critical extension"
REASON_NOT_CA = "issuer is not a CA"
REASON_WRONG_ISSUER = "wrong issuer"
REASON_PATH_LENGTH = "path length exceeded"


class X509Error(CertificateError):
    """A certificate that cannot be used; the message names it and says why."""


@dataclass(frozen=True)
class X509Certificate:
    der: bytes
    suite: str  # "sm" or "ed25519", from the signature algorithm
    serial: int
    subject: str  # human-readable, e.g. "Organization: bank A, Common Name: node0"
    issuer: str
    subject_der: bytes  # the encoded Name: what a child's issuer must equal
    issuer_der: bytes
    public_key: bytes  # SM2: 04 || x || y; Ed25519: 32 bytes
    not_before_ms: int
    not_after_ms: int
    is_ca: bool
    path_length: int | None  # basicConstraints pathLenConstraint, None = unlimited
    key_usage: frozenset[str]
    tbs: bytes  # the signed bytes
    signature: bytes  # SM2: r || s (32 + 32); Ed25519: 64 bytes

    def label(self) -> str:
        return f"certificate {self.subject!r} (serial {self.serial:x})"

    def signed_by(self, issuer: "X509Certificate") -> bool:
        return issuer.suite == self.suite and get_suite(self.suite).verify(issuer.public_key, self.tbs, self.signature)

    def check_window(self, now_ms: int) -> None:
        if now_ms < self.not_before_ms:
            raise X509Error(f"{self.label()} is not valid before {_iso(self.not_before_ms)}", REASON_NOT_YET_VALID)
        if now_ms > self.not_after_ms:
            raise X509Error(f"{self.label()} expired at {_iso(self.not_after_ms)}", REASON_EXPIRED)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def load(data: bytes) -> X509Certificate:
    """One certificate from PEM or DER bytes; X509Error if it is not one we can use."""
    if type(data) is not bytes:
        raise X509Error("a certificate is bytes (PEM or DER)", REASON_BAD)
    if len(data) > 2 * CERT_BYTES_MAX:
        raise X509Error(f"a certificate file of {len(data)} bytes exceeds {2 * CERT_BYTES_MAX}", REASON_BAD)
    if pem.detect(data):
        try:
            kind, _, data = pem.unarmor(data)
        except ValueError as exc:
            raise X509Error(f"bad PEM: {exc}", REASON_BAD) from None
        if kind != "CERTIFICATE":
            raise X509Error(f"the PEM block is a {kind}, not a CERTIFICATE", REASON_BAD)
    return parse(data)


def parse(der: bytes) -> X509Certificate:
    if len(der) > CERT_BYTES_MAX:
        raise X509Error(f"a certificate of {len(der)} bytes exceeds {CERT_BYTES_MAX}", REASON_BAD)
    try:
        cert = asn1_x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        if tbs["version"].native != "v3":
            raise X509Error(f"an X.509 {tbs['version'].native} certificate: only v3 is accepted", REASON_BAD)
        critical = cert.critical_extensions  # parses every extension
        unknown = sorted(str(name) for name in critical - KNOWN_CRITICAL)
        if unknown:
            raise X509Error(f"certificate {cert.subject.human_friendly!r} has critical extension(s) {', '.join(unknown)} that chainnode does not know",
                            REASON_UNKNOWN_CRITICAL)
        suite, public_key, signature = _keys(cert)
        constraints = cert.basic_constraints_value
        usage = cert.key_usage_value
        return X509Certificate(
            der=der,
            suite=suite,
            serial=cert.serial_number,
            subject=cert.subject.human_friendly,
            issuer=cert.issuer.human_friendly,
            subject_der=cert.subject.dump(),
            issuer_der=cert.issuer.dump(),
            public_key=public_key,
            not_before_ms=_ms(tbs["validity"]["not_before"].native),
            not_after_ms=_ms(tbs["validity"]["not_after"].native),
            is_ca=bool(constraints and constraints["ca"].native),
            path_length=constraints["path_len_constraint"].native if constraints else None,
            key_usage=frozenset(usage.native) if usage else frozenset(),
            tbs=tbs.dump(),
            signature=signature,
        )
    except X509Error:
        raise
    except (ValueError, TypeError, KeyError) as exc:  # asn1crypto's refusals of malformed DER
        raise X509Error(f"not a DER X.509 certificate: {exc}", REASON_BAD) from None


def _keys(cert: asn1_x509.Certificate) -> tuple[str, bytes, bytes]:
    algorithm = cert["signature_algorithm"]["algorithm"].dotted
    if algorithm != cert["tbs_certificate"]["signature"]["algorithm"].dotted:
        raise X509Error("the signature algorithm inside the certificate differs from the one outside", REASON_BAD)
    return _key_and_signature(algorithm, cert.public_key, cert["signature_value"].native)


def _key_and_signature(algorithm: str, key_info, raw_signature: bytes) -> tuple[str, bytes, bytes]:
    """(suite, raw public key, raw signature) of a certificate's or a CSR's fields."""
    key_algorithm = key_info["algorithm"]["algorithm"].dotted
    if algorithm == SM2_WITH_SM3:
        curve = key_info["algorithm"]["parameters"]
        if key_algorithm != EC_PUBLIC_KEY or curve.name != "named" or curve.chosen.dotted != SM2_CURVE:
            raise X509Error("an SM2-with-SM3 signature must go with an SM2 public key (id-ecPublicKey on the SM2 curve)", REASON_BAD)
        public_key = key_info["public_key"].native
        if len(public_key) != 65 or public_key[0] != 4:
            raise X509Error("the SM2 public key is not an uncompressed point", REASON_BAD)
        rs = algos.DSASignature.load(raw_signature, strict=True).native
        if not (0 < rs["r"] < 1 << 256 and 0 < rs["s"] < 1 << 256):
            raise X509Error("the SM2 signature is out of range", REASON_BAD_SIGNATURE)
        return "sm", public_key, rs["r"].to_bytes(32, "big") + rs["s"].to_bytes(32, "big")
    if algorithm == ED25519:
        if key_algorithm != ED25519:
            raise X509Error("an Ed25519 signature must go with an Ed25519 public key", REASON_BAD)
        public_key = key_info["public_key"].native
        if len(public_key) != 32 or len(raw_signature) != 64:
            raise X509Error("bad Ed25519 key or signature length", REASON_BAD)
        return "ed25519", public_key, raw_signature
    raise X509Error(f"signature algorithm {algorithm} is neither SM2-with-SM3 ({SM2_WITH_SM3}) nor Ed25519 ({ED25519})", REASON_BAD)


@dataclass(frozen=True)
class CertificateRequest:
    """A PKCS#10 CSR whose self-signature verified: the requester holds the key's private half."""

    suite: str
    public_key: bytes
    common_name: str
    organisation: str


def load_csr(data: bytes) -> CertificateRequest:
    """A CSR from PEM or DER (`openssl req -new -key k.pem -sm3 -sigopt distid:1234567812345678`);
    X509Error if it is malformed, of another algorithm, or its signature does not verify."""
    if type(data) is not bytes or len(data) > 2 * CERT_BYTES_MAX:
        raise X509Error(f"a certificate request is at most {2 * CERT_BYTES_MAX} bytes of PEM or DER", REASON_BAD)
    try:
        if pem.detect(data):
            kind, _, data = pem.unarmor(data)
            if kind not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                raise X509Error(f"the PEM block is a {kind}, not a CERTIFICATE REQUEST", REASON_BAD)
        request = asn1_csr.CertificationRequest.load(data, strict=True)
        info = request["certification_request_info"]
        suite, public_key, signature = _key_and_signature(request["signature_algorithm"]["algorithm"].dotted, info["subject_pk_info"],
                                                          request["signature"].native)
        subject = info["subject"].native
    except X509Error:
        raise
    except (ValueError, TypeError, KeyError) as exc:
        raise X509Error(f"not a DER PKCS#10 certificate request: {exc}", REASON_BAD) from None
    if not get_suite(suite).verify(public_key, info.dump(), signature):
        raise X509Error("the certificate request's signature does not verify (for SM2: was it signed with -sigopt distid:1234567812345678?)",
                        REASON_BAD_SIGNATURE)
    common_name, organisation = subject.get("common_name"), subject.get("organization_name")
    if not isinstance(common_name, str) or not isinstance(organisation, str):
        raise X509Error("the certificate request's subject needs one CN and one O (e.g. -subj '/CN=node0/O=bank A')", REASON_BAD)
    return CertificateRequest(suite, public_key, common_name, organisation)


def verify_path(path: list[X509Certificate], roots: list[X509Certificate], now_ms: int) -> X509Certificate:
    """Check `path` (leaf first, then its issuers up to but not including a root) against
    trusted `roots`: names chain, each issuer is a CA allowed to sign that deep, signatures
    verify, every certificate is within its validity window. Returns the leaf."""
    if not path:
        raise X509Error("an empty certificate path", REASON_BAD)
    for cert in path:
        cert.check_window(now_ms)
    issuers = path[1:]
    top = path[-1]
    root = next((r for r in roots if r.subject_der == top.issuer_der and top.signed_by(r)), None)
    if root is None:
        raise X509Error(f"{top.label()} was not issued by a trusted root (issuer {top.issuer!r})", REASON_WRONG_ISSUER)
    root.check_window(now_ms)
    for depth, (child, parent) in enumerate(zip(path, issuers + [root])):
        if child.issuer_der != parent.subject_der:
            raise X509Error(f"{child.label()} names issuer {child.issuer!r}, not {parent.subject!r}", REASON_WRONG_ISSUER)
        if not parent.is_ca or "key_cert_sign" not in parent.key_usage:
            raise X509Error(f"{parent.label()} is not a CA (basicConstraints CA and keyUsage keyCertSign)", REASON_NOT_CA)
        below = depth  # CA certificates between parent and the leaf
        if parent.path_length is not None and below > parent.path_length:
            raise X509Error(f"{parent.label()} allows {parent.path_length} CA(s) below it, the path has {below}", REASON_PATH_LENGTH)
        if not child.signed_by(parent):
            raise X509Error(f"the signature on {child.label()} does not verify with {parent.label()}'s key", REASON_BAD_SIGNATURE)
    return path[0]


def issue(
    *,
    suite: str,
    issuer_priv: bytes,
    issuer: X509Certificate | None,
    common_name: str,
    organisation: str,
    public_key: bytes,
    serial: int,
    not_before_ms: int,
    not_after_ms: int,
    ca: bool,
    path_length: int | None = None,
) -> X509Certificate:
    """A v3 certificate for `public_key`, signed by `issuer_priv` (the key of `issuer`, or of
    the certificate itself when `issuer` is None: a root). A CA gets basicConstraints CA
    (with `path_length`) and keyUsage keyCertSign + cRLSign; a leaf keyUsage
    digitalSignature + keyAgreement (its key signs and keys the secure channel), both critical."""
    subject = asn1_x509.Name.build({"common_name": common_name, "organization_name": organisation})
    issuer_name = subject if issuer is None else asn1_x509.Name.load(issuer.subject_der)
    if issuer is not None and issuer.suite != suite:
        raise X509Error(f"{issuer.label()} is a {issuer.suite} certificate: it cannot issue {suite} ones", REASON_BAD)
    if suite == "sm":
        algorithm = {"algorithm": SM2_WITH_SM3}
        key_info = {"algorithm": {"algorithm": "ec", "parameters": {"named": SM2_CURVE}}, "public_key": public_key}
    elif suite == "ed25519":
        algorithm = {"algorithm": "ed25519"}
        key_info = {"algorithm": {"algorithm": "ed25519"}, "public_key": public_key}
    else:
        raise X509Error(f"no X.509 profile for suite {suite!r}", REASON_BAD)
    constraints = {"ca": ca, "path_len_constraint": path_length} if ca else {"ca": False}
    usage = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "key_agreement"}
    tbs = asn1_x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": algorithm,
        "issuer": issuer_name,
        "validity": {"not_before": _time(not_before_ms), "not_after": _time(not_after_ms)},
        "subject": subject,
        "subject_public_key_info": key_info,
        "extensions": [
            {"extn_id": "basic_constraints", "critical": True, "extn_value": constraints},
            {"extn_id": "key_usage", "critical": True, "extn_value": usage},
        ],
    })
    tbs_der = tbs.dump()
    signature = get_suite(suite).sign(issuer_priv, tbs_der)
    if suite == "sm":
        signature = algos.DSASignature({"r": int.from_bytes(signature[:32], "big"), "s": int.from_bytes(signature[32:], "big")}).dump()
    cert = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": signature})
    return parse(cert.dump())


def _time(ms: int) -> asn1_x509.Time:
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    moment = datetime.fromtimestamp(ms // 1000, timezone.utc)
    return asn1_x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def to_pem(cert: X509Certificate) -> bytes:
    return pem.armor("CERTIFICATE", cert.der)

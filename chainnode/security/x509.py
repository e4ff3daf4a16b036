"""X.509 v3 certificates as the members' own CAs and `openssl` make them: SM2-with-SM3
(GB/T 20518 profile, standard distinguishing ID) on `sm` chains, Ed25519 (RFC 8410) on
`ed25519` chains. Parsing is asn1crypto's (strict DER), bounded; signatures are checked with
the chain's suite over the exact bytes of `tbsCertificate`.

This module knows X.509, not the consortium: chainnode/security/certs.py reads the
consortium's profile (kinds, roles, peer ids) on top of it. Every refusal is a
`CertificateError` whose `reason` is one of the REASON_* phrases below.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from asn1crypto import algos, crl as asn1_crl, csr as asn1_csr, pem, x509 as asn1_x509

from chainnode.crypto import get_suite

CERT_BYTES_MAX = 8192  # a certificate with a few names and extensions is under 1.5 KB
SM2_WITH_SM3 = "1.2.156.10197.1.501"
SM2_CURVE = "1.2.156.10197.1.301"
EC_PUBLIC_KEY = "1.2.840.10045.2.1"
ED25519 = "1.3.101.112"
# Critical extensions we understand; any other marked critical refuses the certificate
# (RFC 5280 4.2: a verifier must reject what it cannot process).
KNOWN_CRITICAL = frozenset({"basic_constraints", "key_usage", "extended_key_usage", "subject_alt_name", "name_constraints"})
SERIAL_MAX = 1 << 159  # RFC 5280 4.1.2.2: a positive integer of at most 20 octets
CRL_BYTES_MAX = 4 << 20  # 65536 revoked serials of 20 bytes with their dates
CRL_SERIALS_MAX = 65536

# Short reasons a refusal is filed under (`CertificateError.reason`): log lines, counters
# ("disconnects:certificate_revoked") and the fix an operator looks up in
# docs/certificates.md. The message always carries the details.
REASON_BAD = "bad certificate"  # malformed, wrong algorithm, anything not listed below
REASON_NONE = "no certificate"
REASON_WRONG_CA = "wrong CA"
REASON_AGENCY_MISMATCH = "agency mismatch"
REASON_BAD_SIGNATURE = "bad certificate signature"
REASON_EXPIRED = "certificate expired"
REASON_NOT_YET_VALID = "certificate not yet valid"
REASON_REVOKED = "certificate revoked"
REASON_KEY_MISMATCH = "certificate key mismatch"
REASON_PEER_ID_MISMATCH = "certificate peer id mismatch"
REASON_NOT_CLIENT = "not a client certificate"
REASON_MISSING_EXTENSION = "missing extension"
REASON_UNKNOWN_CRITICAL = "unknown critical extension"
REASON_NOT_CA = "issuer is not a CA"
REASON_LEAF_IS_CA = "leaf is a CA"
REASON_WRONG_ISSUER = "wrong issuer"
REASON_PATH_LENGTH = "path length exceeded"


# What asn1crypto raises, lazily, on malformed DER: an IndexError or OverflowError as readily as
# a ValueError. Every one of them is bad input, never a crash.
MALFORMED = (ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


class CertificateError(ValueError):
    """A certificate, chain or revocation list is not acceptable; the message says which
    certificate and why, `reason` is one of the REASON_* phrases above."""

    def __init__(self, message: str, reason: str = REASON_BAD) -> None:
        super().__init__(message)
        self.reason = reason



@dataclass(frozen=True)
class X509Certificate:
    der: bytes
    suite: str  # "sm" or "ed25519", from the signature algorithm
    serial: int
    subject: str  # human-readable, e.g. "Organization: bank A, Common Name: node0"
    issuer: str
    common_name: str  # the subject's CN, "" if it has none
    organisation: str  # O
    unit: str  # OU: the chainnode role of a leaf (docs/certificates.md)
    uris: tuple[str, ...]  # subjectAltName URIs: a node's "p2p:<peer id>"
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
            raise CertificateError(f"{self.label()} is not valid before {_iso(self.not_before_ms)}", REASON_NOT_YET_VALID)
        if now_ms > self.not_after_ms:
            raise CertificateError(f"{self.label()} expired at {_iso(self.not_after_ms)}", REASON_EXPIRED)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ms(value: datetime) -> int:
    return int(value.timestamp() * 1000)


def load(data: bytes) -> X509Certificate:
    """One certificate from PEM or DER bytes; CertificateError if it is not one we can use."""
    if type(data) is not bytes:
        raise CertificateError("a certificate is bytes (PEM or DER)", REASON_BAD)
    if len(data) > 2 * CERT_BYTES_MAX:
        raise CertificateError(f"a certificate file of {len(data)} bytes exceeds {2 * CERT_BYTES_MAX}", REASON_BAD)
    if pem.detect(data):
        try:
            kind, _, data = pem.unarmor(data)
        except ValueError as exc:
            raise CertificateError(f"bad PEM: {exc}", REASON_BAD) from None
        if kind != "CERTIFICATE":
            raise CertificateError(f"the PEM block is a {kind}, not a CERTIFICATE", REASON_BAD)
    return parse(data)


def parse(der: bytes) -> X509Certificate:
    if type(der) is not bytes or len(der) > CERT_BYTES_MAX:
        raise CertificateError(f"a certificate is at most {CERT_BYTES_MAX} bytes of DER", REASON_BAD)
    try:
        cert = asn1_x509.Certificate.load(der, strict=True)
        tbs = cert["tbs_certificate"]
        if tbs["version"].native != "v3":
            raise CertificateError(f"an X.509 {tbs['version'].native} certificate: only v3 is accepted", REASON_BAD)
        if not 0 < cert.serial_number < SERIAL_MAX:
            raise CertificateError(f"serial {cert.serial_number} is not a positive integer of at most 20 octets (RFC 5280 4.1.2.2)", REASON_BAD)
        _check_signature_bits(cert["signature_value"])
        ids = [e["extn_id"].dotted for e in tbs["extensions"]]
        if len(set(ids)) != len(ids):  # RFC 5280 4.2; asn1crypto would keep the last of two
            raise CertificateError(f"certificate {cert.subject.human_friendly!r} repeats an extension", REASON_BAD)
        critical = cert.critical_extensions  # parses every extension
        unknown = sorted(str(name) for name in critical - KNOWN_CRITICAL)
        if unknown:
            raise CertificateError(f"certificate {cert.subject.human_friendly!r} has critical extension(s) {', '.join(unknown)} that chainnode does not know",
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
            common_name=_attribute(cert.subject, "common_name"),
            organisation=_attribute(cert.subject, "organization_name"),
            unit=_attribute(cert.subject, "organizational_unit_name"),
            uris=tuple(str(n.native) for n in (cert.subject_alt_name_value or ()) if n.name == "uniform_resource_identifier"),
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
    except CertificateError:
        raise
    except MALFORMED as exc:  # asn1crypto's refusals of malformed DER
        raise CertificateError(f"not a DER X.509 certificate: {exc}", REASON_BAD) from None


def _check_signature_bits(value) -> None:
    """A signature BIT STRING claims no unused bits: asn1crypto zeroes them, so without this
    one certificate would have several DER forms that all verify (OpenSSL refuses them too)."""
    if not value.contents or value.contents[0] != 0:
        raise CertificateError("the signature BIT STRING has unused bits", REASON_BAD)


def _attribute(name: asn1_x509.Name, attribute: str) -> str:
    """One attribute of a Name, "" if absent; refused if it appears more than once, so a
    certificate cannot claim two roles or two organisations."""
    value = name.native.get(attribute, "")
    if not isinstance(value, str):
        raise CertificateError(f"{name.human_friendly!r} has more than one {attribute}", REASON_BAD)
    return value


def _keys(cert: asn1_x509.Certificate) -> tuple[str, bytes, bytes]:
    algorithm = cert["signature_algorithm"]["algorithm"].dotted
    if algorithm != cert["tbs_certificate"]["signature"]["algorithm"].dotted:
        raise CertificateError("the signature algorithm inside the certificate differs from the one outside", REASON_BAD)
    return _key_and_signature(algorithm, cert.public_key, cert["signature_value"].native)


def _key_and_signature(algorithm: str, key_info, raw_signature: bytes) -> tuple[str, bytes, bytes]:
    """(suite, raw public key, raw signature) of a certificate's or a CSR's fields."""
    key_algorithm = key_info["algorithm"]["algorithm"].dotted
    if algorithm == SM2_WITH_SM3:
        curve = key_info["algorithm"]["parameters"]
        if key_algorithm != EC_PUBLIC_KEY or curve.name != "named" or curve.chosen.dotted != SM2_CURVE:
            raise CertificateError("an SM2-with-SM3 signature must go with an SM2 public key (id-ecPublicKey on the SM2 curve)", REASON_BAD)
        public_key = key_info["public_key"].native
        if len(public_key) != 65 or public_key[0] != 4:
            raise CertificateError("the SM2 public key is not an uncompressed point", REASON_BAD)
        rs = algos.DSASignature.load(raw_signature, strict=True).native
        if not (0 < rs["r"] < 1 << 256 and 0 < rs["s"] < 1 << 256):
            raise CertificateError("the SM2 signature is out of range", REASON_BAD_SIGNATURE)
        return "sm", public_key, rs["r"].to_bytes(32, "big") + rs["s"].to_bytes(32, "big")
    if algorithm == ED25519:
        if key_algorithm != ED25519:
            raise CertificateError("an Ed25519 signature must go with an Ed25519 public key", REASON_BAD)
        public_key = key_info["public_key"].native
        if len(public_key) != 32 or len(raw_signature) != 64:
            raise CertificateError("bad Ed25519 key or signature length", REASON_BAD)
        return "ed25519", public_key, raw_signature
    raise CertificateError(f"signature algorithm {algorithm} is neither SM2-with-SM3 ({SM2_WITH_SM3}) nor Ed25519 ({ED25519})", REASON_BAD)


@dataclass(frozen=True)
class CertificateRequest:
    """A PKCS#10 CSR whose self-signature verified: the requester holds the key's private half."""

    suite: str
    public_key: bytes
    common_name: str
    organisation: str


def load_csr(data: bytes) -> CertificateRequest:
    """A CSR from PEM or DER (`openssl req -new -key k.pem -sm3 -sigopt distid:1234567812345678`);
    CertificateError if it is malformed, of another algorithm, or its signature does not verify."""
    if type(data) is not bytes or len(data) > 2 * CERT_BYTES_MAX:
        raise CertificateError(f"a certificate request is at most {2 * CERT_BYTES_MAX} bytes of PEM or DER", REASON_BAD)
    try:
        if pem.detect(data):
            kind, _, data = pem.unarmor(data)
            if kind not in ("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST"):
                raise CertificateError(f"the PEM block is a {kind}, not a CERTIFICATE REQUEST", REASON_BAD)
        request = asn1_csr.CertificationRequest.load(data, strict=True)
        _check_signature_bits(request["signature"])
        info = request["certification_request_info"]
        suite, public_key, signature = _key_and_signature(request["signature_algorithm"]["algorithm"].dotted, info["subject_pk_info"],
                                                          request["signature"].native)
        subject = info["subject"].native
    except CertificateError:
        raise
    except MALFORMED as exc:
        raise CertificateError(f"not a DER PKCS#10 certificate request: {exc}", REASON_BAD) from None
    if not get_suite(suite).verify(public_key, info.dump(), signature):
        raise CertificateError("the certificate request's signature does not verify (for SM2: was it signed with -sigopt distid:1234567812345678?)",
                        REASON_BAD_SIGNATURE)
    common_name, organisation = subject.get("common_name"), subject.get("organization_name")
    if not isinstance(common_name, str) or not isinstance(organisation, str):
        raise CertificateError("the certificate request's subject needs one CN and one O (e.g. -subj '/CN=node0/O=bank A')", REASON_BAD)
    return CertificateRequest(suite, public_key, common_name, organisation)


def verify_path(path: list[X509Certificate], roots: list[X509Certificate], now_ms: int) -> X509Certificate:
    """Check `path` (leaf first, then its issuers up to but not including a root) against
    trusted `roots`: names chain, each issuer is a CA allowed to sign that deep, signatures
    verify, every certificate is within its validity window. Returns the leaf."""
    if not path:
        raise CertificateError("an empty certificate path", REASON_BAD)
    for cert in path:
        cert.check_window(now_ms)
    issuers = path[1:]
    top = path[-1]
    named = [r for r in roots if r.subject_der == top.issuer_der]
    if not named:
        raise CertificateError(f"{top.label()} was not issued by a trusted root (issuer {top.issuer!r})", REASON_WRONG_ISSUER)
    # Two roots of one name are told apart by the signature; the loop below checks it once.
    root = named[0] if len(named) == 1 else next((r for r in named if top.signed_by(r)), named[0])
    root.check_window(now_ms)
    for depth, (child, parent) in enumerate(zip(path, issuers + [root])):
        if child.issuer_der != parent.subject_der:
            raise CertificateError(f"{child.label()} names issuer {child.issuer!r}, not {parent.subject!r}", REASON_WRONG_ISSUER)
        if not parent.is_ca or "key_cert_sign" not in parent.key_usage:
            raise CertificateError(f"{parent.label()} is not a CA (basicConstraints CA and keyUsage keyCertSign)", REASON_NOT_CA)
        below = depth  # CA certificates between parent and the leaf
        if parent.path_length is not None and below > parent.path_length:
            raise CertificateError(f"{parent.label()} allows {parent.path_length} CA(s) below it, the path has {below}", REASON_PATH_LENGTH)
        if not child.signed_by(parent):
            raise CertificateError(f"the signature on {child.label()} does not verify with {parent.label()}'s key", REASON_BAD_SIGNATURE)
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
    unit: str = "",
    uris: tuple[str, ...] = (),
) -> X509Certificate:
    """A v3 certificate for `public_key`, signed by `issuer_priv` (the key of `issuer`, or of
    the certificate itself when `issuer` is None: a root). A CA gets basicConstraints CA
    (with `path_length`) and keyUsage keyCertSign + cRLSign; a leaf keyUsage
    digitalSignature + keyAgreement (its key signs and keys the secure channel), both critical.
    `unit` becomes the subject's OU, `uris` a subjectAltName."""
    names = {"common_name": common_name, "organization_name": organisation, **({"organizational_unit_name": unit} if unit else {})}
    subject = asn1_x509.Name.build(names, use_printable=False)
    issuer_name = subject if issuer is None else asn1_x509.Name.load(issuer.subject_der)
    if issuer is not None and issuer.suite != suite:
        raise CertificateError(f"{issuer.label()} is a {issuer.suite} certificate: it cannot issue {suite} ones", REASON_BAD)
    algorithm = _algorithm(suite)
    key_info = _key_info(suite, public_key)
    constraints = {"ca": ca, "path_len_constraint": path_length} if ca else {"ca": False}
    usage = {"key_cert_sign", "crl_sign"} if ca else {"digital_signature", "key_agreement"}
    extensions = [
        {"extn_id": "basic_constraints", "critical": True, "extn_value": constraints},
        {"extn_id": "key_usage", "critical": True, "extn_value": usage},
    ]
    if uris:
        extensions.append({"extn_id": "subject_alt_name", "critical": False,
                           "extn_value": [asn1_x509.GeneralName(name="uniform_resource_identifier", value=u) for u in uris]})
    tbs = asn1_x509.TbsCertificate({
        "version": "v3",
        "serial_number": serial,
        "signature": algorithm,
        "issuer": issuer_name,
        "validity": {"not_before": _time(not_before_ms), "not_after": _time(not_after_ms)},
        "subject": subject,
        "subject_public_key_info": key_info,
        "extensions": extensions,
    })
    cert = asn1_x509.Certificate({"tbs_certificate": tbs, "signature_algorithm": algorithm, "signature_value": _sign(suite, issuer_priv, tbs.dump())})
    return parse(cert.dump())


def build_csr(*, suite: str, private_key: bytes, public_key: bytes, common_name: str, organisation: str) -> bytes:
    """A PKCS#10 request (DER) for `public_key`, self-signed with `private_key`, as
    `openssl req -new` makes one: what a member sends its agency (`chainnode ca sign-csr`)."""
    subject = asn1_x509.Name.build({"common_name": common_name, "organization_name": organisation}, use_printable=False)
    info = asn1_csr.CertificationRequestInfo({"version": "v1", "subject": subject, "subject_pk_info": _key_info(suite, public_key), "attributes": []})
    request = asn1_csr.CertificationRequest({"certification_request_info": info, "signature_algorithm": _algorithm(suite),
                                             "signature": _sign(suite, private_key, info.dump())})
    return request.dump()


def _key_info(suite: str, public_key: bytes) -> dict:
    if suite == "sm":
        return {"algorithm": {"algorithm": "ec", "parameters": {"named": SM2_CURVE}}, "public_key": public_key}
    return {"algorithm": {"algorithm": "ed25519"}, "public_key": public_key}


def _algorithm(suite: str) -> dict:
    if suite == "sm":
        return {"algorithm": SM2_WITH_SM3}
    if suite == "ed25519":
        return {"algorithm": "ed25519"}
    raise CertificateError(f"no X.509 profile for suite {suite!r}", REASON_BAD)


def _sign(suite: str, priv: bytes, tbs_der: bytes) -> bytes:
    """The signatureValue: SM2 as DER SEQUENCE {r, s} (GB/T 35275), Ed25519 raw (RFC 8410)."""
    signature = get_suite(suite).sign(priv, tbs_der)
    if suite == "sm":
        signature = algos.DSASignature({"r": int.from_bytes(signature[:32], "big"), "s": int.from_bytes(signature[32:], "big")}).dump()
    return signature


def _time(ms: int) -> asn1_x509.Time:
    """RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050."""
    moment = datetime.fromtimestamp(ms // 1000, timezone.utc)
    return asn1_x509.Time({"utc_time" if moment.year < 2050 else "general_time": moment})


def to_pem(cert: X509Certificate) -> bytes:
    return pem.armor("CERTIFICATE", cert.der)


# ---- revocation lists (X.509 v2 CRL, RFC 5280 section 5) -----------------------------------


@dataclass(frozen=True)
class RevocationList:
    """A CRL whose structure parsed; `signed_by(issuer)` says whether `issuer` signed it."""

    der: bytes
    suite: str
    issuer: str
    issuer_der: bytes
    number: int | None  # the cRLNumber extension, None if absent
    this_update_ms: int
    serials: frozenset[int]
    tbs: bytes
    signature: bytes

    def signed_by(self, issuer: X509Certificate) -> bool:
        if issuer.subject_der != self.issuer_der or issuer.suite != self.suite:
            return False
        return get_suite(self.suite).verify(issuer.public_key, self.tbs, self.signature)


def load_crl(data: bytes) -> RevocationList:
    """A CRL from PEM or DER (`openssl ca -gencrl`); CertificateError if malformed, too
    large, or of an algorithm other than the chain suites'."""
    if type(data) is not bytes or len(data) > 2 * CRL_BYTES_MAX:
        raise CertificateError(f"a revocation list is at most {CRL_BYTES_MAX} bytes of DER", REASON_BAD)
    try:
        if pem.detect(data):
            kind, _, data = pem.unarmor(data)
            if kind != "X509 CRL":
                raise CertificateError(f"the PEM block is a {kind}, not an X509 CRL", REASON_BAD)
        if len(data) > CRL_BYTES_MAX:
            raise CertificateError(f"a revocation list of {len(data)} bytes exceeds {CRL_BYTES_MAX}", REASON_BAD)
        crl = asn1_crl.CertificateList.load(data, strict=True)
        tbs = crl["tbs_cert_list"]
        if tbs["version"].native != "v2":
            raise CertificateError("only X.509 v2 revocation lists are accepted", REASON_BAD)
        unknown = sorted(str(name) for name in crl.critical_extensions - {"crl_number", "delta_crl_indicator"})
        if unknown or crl.delta_crl_indicator_value is not None:
            raise CertificateError(f"the revocation list has extension(s) chainnode does not process: {', '.join(unknown) or 'delta_crl_indicator'}", REASON_UNKNOWN_CRITICAL)
        algorithm = crl["signature_algorithm"]["algorithm"].dotted
        if algorithm != tbs["signature"]["algorithm"].dotted:
            raise CertificateError("the signature algorithm inside the revocation list differs from the one outside", REASON_BAD)
        _check_signature_bits(crl["signature"])
        raw = crl["signature"].native
        if algorithm == SM2_WITH_SM3:
            rs = algos.DSASignature.load(raw, strict=True).native
            if not (0 < rs["r"] < 1 << 256 and 0 < rs["s"] < 1 << 256):
                raise CertificateError("the SM2 signature is out of range", REASON_BAD_SIGNATURE)
            suite, signature = "sm", rs["r"].to_bytes(32, "big") + rs["s"].to_bytes(32, "big")
        elif algorithm == ED25519 and len(raw) == 64:
            suite, signature = "ed25519", raw
        else:
            raise CertificateError(f"revocation list signature algorithm {algorithm} is neither SM2-with-SM3 nor Ed25519", REASON_BAD)
        entries = tbs["revoked_certificates"]
        if len(entries) > CRL_SERIALS_MAX:
            raise CertificateError(f"a revocation list holds at most {CRL_SERIALS_MAX} serials", REASON_BAD)
        number = crl.crl_number_value
        return RevocationList(
            der=data,
            suite=suite,
            issuer=crl.issuer.human_friendly,
            issuer_der=crl.issuer.dump(),
            number=number.native if number is not None else None,
            this_update_ms=_ms(tbs["this_update"].native),
            serials=frozenset(entry["user_certificate"].native for entry in entries),
            tbs=tbs.dump(),
            signature=signature,
        )
    except CertificateError:
        raise
    except MALFORMED as exc:
        raise CertificateError(f"not a DER X.509 revocation list: {exc}", REASON_BAD) from None


def issue_crl(*, issuer: X509Certificate, issuer_priv: bytes, serials: frozenset[int], number: int, this_update_ms: int) -> RevocationList:
    """A v2 CRL of `serials`, signed by `issuer` (what `openssl ca -gencrl` makes)."""
    if len(serials) > CRL_SERIALS_MAX:
        raise CertificateError(f"a revocation list holds at most {CRL_SERIALS_MAX} serials", REASON_BAD)
    now = _time(this_update_ms)
    algorithm = _algorithm(issuer.suite)
    tbs = asn1_crl.TbsCertList({
        "version": "v2",
        "signature": algorithm,
        "issuer": asn1_x509.Name.load(issuer.subject_der),
        "this_update": now,
        "revoked_certificates": [{"user_certificate": serial, "revocation_date": now} for serial in sorted(serials)],
        "crl_extensions": [{"extn_id": "crl_number", "critical": False, "extn_value": number}],
    })
    crl = asn1_crl.CertificateList({"tbs_cert_list": tbs, "signature_algorithm": algorithm, "signature": _sign(issuer.suite, issuer_priv, tbs.dump())})
    return load_crl(crl.dump())


def crl_to_pem(crl: RevocationList) -> bytes:
    return pem.armor("X509 CRL", crl.der)

"""The consortium certificate hierarchy: CA -> agency -> node / client.

A consortium CA key issues one certificate per member organisation (an *agency*); each
agency issues the certificates of its own nodes and clients. A certificate binds the
holder's consensus public key, its libp2p peer id (nodes only), organisation, role and a
validity window, and is signed by its issuer with the chain's crypto suite.

The format is the chain's canonical codec (DESIGN.md rule 2), not X.509: see
docs/certificates.md for why, and for the exact field table. In short:

    Certificate  = [1, serial, kind, subject, organisation, role, public_key, peer_id,
                    issuer_key_hash, not_before_ms, not_after_ms, suite, signature]
    CertChain    = [1, ca fields, agency fields, leaf fields]
    RevocationList = [1, issuer_key_hash, number, issued_at_ms, serials, suite, signature]

A signature covers pack([1, DOMAIN, *every field but the signature]), so a certificate
signature can never be replayed as a transaction, a block vote or a revocation list.

`verify_chain` is the one entry point that decides whether a chain is acceptable; every
refusal is a `CertificateError` whose message names the certificate (CA / agency / leaf,
its subject and serial) and the reason.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable

from chainnode.crypto import HASH_BYTES, SUITE_NAMES, get_suite
from chainnode.protocol.codec import (
    UINT64_MAX,
    DecodeError,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    expect_version,
    pack,
    unpack,
)
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.store.files import read_json_file, write_atomic

CERT_DOMAIN = "chainnode/cert"
CRL_DOMAIN = "chainnode/crl"
SERIAL_BYTES = 16  # random; 128 bits make collisions between independent issuers negligible
SIGNATURE_BYTES = 64  # both suites: SM2 r||s and ed25519
PUBLIC_KEY_BYTES = {"sm": 65, "ed25519": 32}  # SM2 uncompressed point, ed25519 raw
NAME_CHARS_MAX = 128  # subject and organisation
PEER_ID_CHARS_MAX = 64  # a base58 ed25519 peer id is 52 characters
ROLE_CHARS_MAX = 16
CERT_BYTES_MAX = 1024  # an sm CA certificate encodes to ~240 bytes, a node one ~300
CHAIN_BYTES_MAX = 4 * CERT_BYTES_MAX
CRL_SERIALS_MAX = 65536
CRL_BYTES_MAX = CRL_SERIALS_MAX * (SERIAL_BYTES + 2) + 1024

KINDS = ("ca", "agency", "node", "client")
LEAF_KINDS = ("node", "client")
NODE_ROLES = ("sealer", "observer")
# What each client role may call on the node's channel port: chainnode.security.roles.
CLIENT_ROLES = ("user", "governor", "regulator", "auditor")
# The role field per kind: a CA and an agency have no role.
ROLES_FOR_KIND = {"ca": ("",), "agency": ("",), "node": NODE_ROLES, "client": CLIENT_ROLES}

# A libp2p peer id of an ed25519 host key (identity multihash of the protobuf public key):
# 0x00 identity, 0x24 length 36, 0x08 0x01 KeyType=Ed25519, 0x12 0x20 Data (32 bytes).
_PEER_ID_PREFIX = bytes.fromhex("002408011220")
_PEER_ID_BYTES = len(_PEER_ID_PREFIX) + 32


# Short reasons a refusal is filed under (`CertificateError.reason`): log lines, counters
# ("disconnects:certificate_revoked") and the fix an operator looks up in
# docs/certificates.md. The message always carries the details.
REASON_BAD = "bad certificate"  # malformed, wrong kind or suite, anything not listed below
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


class CertificateError(ValueError):
    """A certificate, chain or revocation list is not acceptable; the message says which
    certificate and why, `reason` is one of the REASON_* phrases above."""

    def __init__(self, message: str, reason: str = REASON_BAD) -> None:
        super().__init__(message)
        self.reason = reason


def key_hash(suite_name: str, public_key: bytes) -> bytes:
    """How a certificate names its issuer: the suite hash of the issuer's public key."""
    return get_suite(suite_name).hash(public_key)


def new_serial() -> bytes:
    return secrets.token_bytes(SERIAL_BYTES)


def format_ms(ms: int) -> str:
    """A UTC timestamp for messages, e.g. 2026-11-22T04:35:00Z."""
    try:
        return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms since the epoch"


def check_peer_id(peer_id: str) -> None:
    """Raise ValueError unless `peer_id` is a base58 peer id of an ed25519 libp2p key.

    Which key it names cannot be checked here (that needs the node's private key, see
    chainnode.network.identity); the handshake binds it on every connection.
    """
    import base58

    try:
        raw = base58.b58decode(peer_id)
    except ValueError:
        raise ValueError(f"peer id {peer_id!r} is not base58") from None
    if len(raw) != _PEER_ID_BYTES or not raw.startswith(_PEER_ID_PREFIX):
        raise ValueError(f"peer id {peer_id!r} is not the id of an ed25519 libp2p key (expected 12D3KooW...)")


# ---- Certificate --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Certificate:
    VERSION = 1

    serial: bytes
    kind: str  # "ca" | "agency" | "node" | "client"
    subject: str  # the holder's name: "Consortium CA", "Bank A", "node0", "alice"
    organisation: str  # the agency the holder belongs to (for a CA: the consortium)
    role: str  # "" for ca/agency; sealer|observer for nodes; user|governor|regulator|auditor for clients
    public_key: bytes  # the holder's suite public key (for a node: its consensus key)
    peer_id: str  # a node's libp2p peer id, "" for every other kind
    issuer_key_hash: bytes  # suite hash of the issuer's public key (own key for a CA)
    not_before_ms: int
    not_after_ms: int
    suite: str  # "sm" | "ed25519"; every certificate of a chain has the chain's suite
    signature: bytes = b""

    def unsigned_fields(self) -> list:
        return [
            self.VERSION,
            self.serial,
            self.kind,
            self.subject,
            self.organisation,
            self.role,
            self.public_key,
            self.peer_id,
            self.issuer_key_hash,
            self.not_before_ms,
            self.not_after_ms,
            self.suite,
        ]

    def to_fields(self) -> list:
        return self.unsigned_fields() + [self.signature]

    def signing_bytes(self) -> bytes:
        return pack([1, CERT_DOMAIN, *self.unsigned_fields()])

    def encode(self) -> bytes:
        return pack(self.to_fields())

    def signed(self, issuer_priv: bytes) -> "Certificate":
        """A copy signed with `issuer_priv` (whose key hash must be `issuer_key_hash`)."""
        suite = get_suite(self.suite)
        issuer_pub = suite.public_key(issuer_priv)
        # Signing under a key the certificate does not name would produce a certificate no
        # one can verify: a bug in the caller, not bad input.
        assert suite.hash(issuer_pub) == self.issuer_key_hash, "issuer key does not match issuer_key_hash"
        return replace(self, signature=suite.sign(issuer_priv, self.signing_bytes()))

    def signature_valid(self, issuer_pub: bytes) -> bool:
        return get_suite(self.suite).verify(issuer_pub, self.signing_bytes(), self.signature)

    @property
    def is_self_signed(self) -> bool:
        return self.issuer_key_hash == key_hash(self.suite, self.public_key)

    def label(self) -> str:
        """How messages name this certificate: `agency certificate 'Bank A' (serial 1f2e...)`."""
        return f"{self.kind} certificate {self.subject!r} (serial {self.serial.hex()})"

    def describe(self) -> dict:
        """The fields an operator reads, as JSON-friendly values."""
        return {
            "kind": self.kind,
            "subject": self.subject,
            "organisation": self.organisation,
            "role": self.role,
            "serial": self.serial.hex(),
            "suite": self.suite,
            "public_key": self.public_key.hex(),
            "peer_id": self.peer_id,
            "issuer_key_hash": self.issuer_key_hash.hex(),
            "not_before": format_ms(self.not_before_ms),
            "not_after": format_ms(self.not_after_ms),
            "not_before_ms": self.not_before_ms,
            "not_after_ms": self.not_after_ms,
        }

    @classmethod
    def from_fields(cls, f: Any, what: str = "certificate") -> "Certificate":
        f = expect_list(f, what)
        expect_version(f, what, cls.VERSION)
        expect_list(f, what, length=13)
        suite = expect_str(f[11], f"{what}.suite", max_length=16)
        if suite not in SUITE_NAMES:
            raise DecodeError(f"{what}.suite: unknown suite {suite!r}")
        kind = expect_str(f[2], f"{what}.kind", max_length=16)
        if kind not in KINDS:
            raise DecodeError(f"{what}.kind: unknown kind {kind!r} (expected one of {', '.join(KINDS)})")
        role = expect_str(f[5], f"{what}.role", max_length=ROLE_CHARS_MAX)
        if role not in ROLES_FOR_KIND[kind]:
            raise DecodeError(f"{what}.role: {role!r} is not a role of a {kind} certificate")
        peer_id = expect_str(f[7], f"{what}.peer_id", max_length=PEER_ID_CHARS_MAX)
        # Only a node has a libp2p host; an empty peer id on a node would bind nothing.
        if (kind == "node") != (peer_id != ""):
            raise DecodeError(f"{what}.peer_id: {'required' if kind == 'node' else 'must be empty'} for a {kind} certificate")
        not_before_ms = expect_int(f[9], f"{what}.not_before_ms", hi=UINT64_MAX)
        not_after_ms = expect_int(f[10], f"{what}.not_after_ms", hi=UINT64_MAX)
        if not_after_ms < not_before_ms:
            raise DecodeError(f"{what}: not_after_ms is before not_before_ms")
        subject = expect_str(f[3], f"{what}.subject", max_length=NAME_CHARS_MAX)
        if not subject:
            raise DecodeError(f"{what}.subject: must not be empty")
        return cls(
            serial=expect_bytes(f[1], f"{what}.serial", length=SERIAL_BYTES),
            kind=kind,
            subject=subject,
            organisation=expect_str(f[4], f"{what}.organisation", max_length=NAME_CHARS_MAX),
            role=role,
            public_key=expect_bytes(f[6], f"{what}.public_key", length=PUBLIC_KEY_BYTES[suite]),
            peer_id=peer_id,
            issuer_key_hash=expect_bytes(f[8], f"{what}.issuer_key_hash", length=HASH_BYTES),
            not_before_ms=not_before_ms,
            not_after_ms=not_after_ms,
            suite=suite,
            signature=expect_bytes(f[12], f"{what}.signature", length=SIGNATURE_BYTES),
        )

    @classmethod
    def decode(cls, data: bytes) -> "Certificate":
        return cls.from_fields(unpack(data, max_bytes=CERT_BYTES_MAX))


def issue(
    *,
    kind: str,
    subject: str,
    organisation: str,
    role: str,
    public_key: bytes,
    peer_id: str,
    suite: str,
    not_before_ms: int,
    not_after_ms: int,
    issuer_priv: bytes,
    serial: bytes | None = None,
) -> Certificate:
    """Build, check and sign a certificate. Raises CertificateError on a bad request (a role
    that does not fit the kind, a malformed peer id, a key of another suite), so the CLI
    never writes a certificate that `Certificate.decode` would refuse."""
    s = get_suite(suite)
    unsigned = Certificate(
        serial=serial if serial is not None else new_serial(),
        kind=kind,
        subject=subject,
        organisation=organisation,
        role=role,
        public_key=public_key,
        peer_id=peer_id,
        issuer_key_hash=s.hash(s.public_key(issuer_priv)),
        not_before_ms=not_before_ms,
        not_after_ms=not_after_ms,
        suite=suite,
        signature=bytes(SIGNATURE_BYTES),
    )
    try:
        Certificate.from_fields(unsigned.to_fields())  # the same rules a verifier applies
    except DecodeError as exc:
        raise CertificateError(f"cannot issue this certificate: {exc}") from None
    if kind == "node":
        try:
            check_peer_id(peer_id)
        except ValueError as exc:
            raise CertificateError(f"cannot issue this certificate: {exc}") from None
    cert = unsigned.signed(issuer_priv)
    Certificate.decode(cert.encode())  # a bug, not bad input, if our own output does not decode
    return cert


# ---- CertChain ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CertChain:
    """What a node or client presents: [CA (self-signed), agency, leaf]. The CA is carried
    so an operator can see which CA a chain claims; only the verifier's trusted CA counts."""

    VERSION = 1

    ca: Certificate
    agency: Certificate
    leaf: Certificate

    def to_fields(self) -> list:
        return [self.VERSION, self.ca.to_fields(), self.agency.to_fields(), self.leaf.to_fields()]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    def __iter__(self):
        return iter((self.ca, self.agency, self.leaf))

    @classmethod
    def from_fields(cls, f: Any) -> "CertChain":
        f = expect_list(f, "chain")
        expect_version(f, "chain", cls.VERSION)
        expect_list(f, "chain", length=4)
        return cls(
            ca=Certificate.from_fields(f[1], "chain.ca"),
            agency=Certificate.from_fields(f[2], "chain.agency"),
            leaf=Certificate.from_fields(f[3], "chain.leaf"),
        )

    @classmethod
    def decode(cls, data: bytes) -> "CertChain":
        return cls.from_fields(unpack(data, max_bytes=CHAIN_BYTES_MAX))


# ---- RevocationList -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RevocationList:
    """The serials a CA has revoked, signed by the CA. `number` grows with every new list so
    a node can refuse to go back to an older one."""

    VERSION = 1

    issuer_key_hash: bytes
    number: int
    issued_at_ms: int
    serials: tuple[bytes, ...]  # sorted, unique: one set has one encoding
    suite: str
    signature: bytes = b""

    def unsigned_fields(self) -> list:
        return [self.VERSION, self.issuer_key_hash, self.number, self.issued_at_ms, list(self.serials), self.suite]

    def to_fields(self) -> list:
        return self.unsigned_fields() + [self.signature]

    def signing_bytes(self) -> bytes:
        return pack([1, CRL_DOMAIN, *self.unsigned_fields()])

    def encode(self) -> bytes:
        return pack(self.to_fields())

    @classmethod
    def create(cls, ca_priv: bytes, suite: str, serials: Iterable[bytes], *, number: int, issued_at_ms: int) -> "RevocationList":
        s = get_suite(suite)
        unique = tuple(sorted(set(serials)))
        if len(unique) > CRL_SERIALS_MAX:
            raise CertificateError(f"a revocation list holds at most {CRL_SERIALS_MAX} serials")
        for serial in unique:
            if type(serial) is not bytes or len(serial) != SERIAL_BYTES:
                raise CertificateError(f"a serial is {SERIAL_BYTES} bytes ({2 * SERIAL_BYTES} hex digits)")
        unsigned = cls(s.hash(s.public_key(ca_priv)), number, issued_at_ms, unique, suite)
        return replace(unsigned, signature=s.sign(ca_priv, unsigned.signing_bytes()))

    def verify(self, ca_cert: Certificate) -> frozenset[bytes]:
        """The revoked serials, if `ca_cert` signed this list; else CertificateError."""
        if self.suite != ca_cert.suite:
            raise CertificateError(f"revocation list: wrong suite {self.suite!r}, the CA {ca_cert.subject!r} uses {ca_cert.suite!r}")
        if self.issuer_key_hash != key_hash(ca_cert.suite, ca_cert.public_key):
            raise CertificateError(f"revocation list: not issued by the trusted CA {ca_cert.subject!r} (wrong or missing CA)")
        if not get_suite(self.suite).verify(ca_cert.public_key, self.signing_bytes(), self.signature):
            raise CertificateError(f"revocation list: bad signature (not signed by the CA {ca_cert.subject!r}, or modified)")
        return frozenset(self.serials)

    @classmethod
    def from_fields(cls, f: Any) -> "RevocationList":
        f = expect_list(f, "revocation list")
        expect_version(f, "revocation list", cls.VERSION)
        expect_list(f, "revocation list", length=7)
        suite = expect_str(f[5], "revocation list.suite", max_length=16)
        if suite not in SUITE_NAMES:
            raise DecodeError(f"revocation list.suite: unknown suite {suite!r}")
        raw = expect_list(f[4], "revocation list.serials", max_length=CRL_SERIALS_MAX)
        serials = tuple(expect_bytes(x, "revocation list.serial", length=SERIAL_BYTES) for x in raw)
        if any(a >= b for a, b in zip(serials, serials[1:])):
            raise DecodeError("revocation list.serials: must be sorted and unique")
        return cls(
            issuer_key_hash=expect_bytes(f[1], "revocation list.issuer_key_hash", length=HASH_BYTES),
            number=expect_int(f[2], "revocation list.number"),
            issued_at_ms=expect_int(f[3], "revocation list.issued_at_ms"),
            serials=serials,
            suite=suite,
            signature=expect_bytes(f[6], "revocation list.signature", length=SIGNATURE_BYTES),
        )

    @classmethod
    def decode(cls, data: bytes) -> "RevocationList":
        return cls.from_fields(unpack(data, max_bytes=CRL_BYTES_MAX))


# ---- verification -------------------------------------------------------------------------


def check_window(cert: Certificate, now_ms: int) -> None:
    if now_ms < cert.not_before_ms:
        raise CertificateError(f"{cert.label()} is not yet valid: valid from {format_ms(cert.not_before_ms)}", REASON_NOT_YET_VALID)
    if now_ms > cert.not_after_ms:
        raise CertificateError(f"{cert.label()} expired on {format_ms(cert.not_after_ms)}", REASON_EXPIRED)


def verify_ca(trusted_ca: Certificate, now_ms: int) -> None:
    """The trusted CA certificate itself: kind, self-signature, validity window."""
    if trusted_ca.kind != "ca":
        raise CertificateError(f"wrong or missing CA: the trusted CA is a {trusted_ca.label()}, not a CA certificate", REASON_WRONG_CA)
    if not trusted_ca.is_self_signed or not trusted_ca.signature_valid(trusted_ca.public_key):
        raise CertificateError(f"{trusted_ca.label()}: bad signature (a CA certificate must be self-signed)", REASON_BAD_SIGNATURE)
    check_window(trusted_ca, now_ms)


def verify_agency(agency: Certificate, trusted_ca: Certificate, now_ms: int, revoked_serials: Iterable[bytes] = ()) -> None:
    """One link: the agency certificate was issued by `trusted_ca` (checked with verify_ca)."""
    verify_ca(trusted_ca, now_ms)
    if agency.kind != "agency":
        raise CertificateError(f"wrong kind: expected an agency certificate after the CA, got a {agency.label()}")
    if agency.suite != trusted_ca.suite:
        raise CertificateError(f"{agency.label()}: wrong suite {agency.suite!r}, the trusted CA {trusted_ca.subject!r} uses {trusted_ca.suite!r}")
    if agency.issuer_key_hash != key_hash(trusted_ca.suite, trusted_ca.public_key):
        raise CertificateError(
            f"wrong or missing CA: the agency certificate of {agency.subject!r} (serial {agency.serial.hex()}) "
            f"was not issued by the trusted CA {trusted_ca.subject!r}",
            REASON_WRONG_CA,
        )
    if not agency.signature_valid(trusted_ca.public_key):
        raise CertificateError(f"{agency.label()}: bad signature (not signed by the CA {trusted_ca.subject!r}, or modified)", REASON_BAD_SIGNATURE)
    check_window(agency, now_ms)
    if agency.serial in frozenset(revoked_serials):
        raise CertificateError(f"{agency.label()} is revoked", REASON_REVOKED)


def verify_chain(chain: CertChain, trusted_ca_cert: Certificate, now_ms: int, revoked_serials: Iterable[bytes] = ()) -> Certificate:
    """Check every link of [CA, agency, leaf] against the verifier's own trusted CA and
    return the leaf; CertificateError names the first certificate that fails and why.

    The chain's own CA certificate must be the trusted one byte for byte: a chain that
    carries another CA is refused even if its agency happened to be cross-signed.
    """
    if not isinstance(chain, CertChain):
        raise CertificateError("not a certificate chain")
    revoked = frozenset(revoked_serials)
    ca, agency, leaf = chain.ca, chain.agency, chain.leaf
    for cert in chain:
        if cert.suite != trusted_ca_cert.suite:
            raise CertificateError(f"{cert.label()}: wrong suite {cert.suite!r}, the trusted CA {trusted_ca_cert.subject!r} uses {trusted_ca_cert.suite!r}")
    if ca.kind != "ca" or agency.kind != "agency" or leaf.kind not in LEAF_KINDS:
        raise CertificateError(f"wrong kind order: expected ca -> agency -> node/client, got {ca.kind} -> {agency.kind} -> {leaf.kind}")
    if ca.encode() != trusted_ca_cert.encode():
        raise CertificateError(
            f"wrong or missing CA: the chain of {leaf.subject!r} carries the CA {ca.subject!r} (serial {ca.serial.hex()}), "
            f"not the trusted CA {trusted_ca_cert.subject!r} (serial {trusted_ca_cert.serial.hex()})",
            REASON_WRONG_CA,
        )
    verify_agency(agency, trusted_ca_cert, now_ms, revoked)
    if leaf.issuer_key_hash != key_hash(agency.suite, agency.public_key):
        raise CertificateError(
            f"agency mismatch: the {leaf.label()} was not issued by the agency {agency.subject!r} "
            f"(serial {agency.serial.hex()}) in its chain",
            REASON_AGENCY_MISMATCH,
        )
    if leaf.organisation != agency.subject:
        raise CertificateError(
            f"agency mismatch: the {leaf.label()} names organisation {leaf.organisation!r} but was issued by the agency {agency.subject!r}",
            REASON_AGENCY_MISMATCH,
        )
    if not leaf.signature_valid(agency.public_key):
        raise CertificateError(f"{leaf.label()}: bad signature (not signed by the agency {agency.subject!r}, or modified)", REASON_BAD_SIGNATURE)
    check_window(leaf, now_ms)
    if leaf.serial in revoked:
        raise CertificateError(f"{leaf.label()} is revoked", REASON_REVOKED)
    if leaf.kind == "node":
        try:
            check_peer_id(leaf.peer_id)
        except ValueError as exc:
            raise CertificateError(f"{leaf.label()}: {exc}") from None
    return leaf


# ---- files --------------------------------------------------------------------------------
#
# On disk a certificate, chain or revocation list is a small JSON document so an operator can
# read who it is for with `cat`; the hex of the canonical encoding is the only part that
# counts, and the readable copies must agree with it (a hand-edited file is refused).

CERT_FORMAT = "chainnode-cert/1"
CHAIN_FORMAT = "chainnode-chain/1"
CRL_FORMAT = "chainnode-crl/1"
FILE_BYTES_MAX = 2 * CRL_BYTES_MAX + 4096  # hex doubles the size


def cert_document(cert: Certificate) -> dict:
    return {"format": CERT_FORMAT, "subject": cert.subject, "kind": cert.kind, "cert": cert.encode().hex()}


def chain_document(chain: CertChain) -> dict:
    return {"format": CHAIN_FORMAT, "subject": chain.leaf.subject, "kind": chain.leaf.kind, "chain": chain.encode().hex()}


def crl_document(crl: RevocationList) -> dict:
    return {"format": CRL_FORMAT, "number": crl.number, "revoked": [s.hex() for s in crl.serials], "crl": crl.encode().hex()}


def read_document(path: Any) -> dict:
    """The JSON document in `path`, whatever its format; CertificateError names the file."""
    doc = read_json_file(path, noun="chainnode certificate file", max_bytes=FILE_BYTES_MAX, error=CertificateError)
    if not isinstance(doc, dict) or doc.get("format") not in (CERT_FORMAT, CHAIN_FORMAT, CRL_FORMAT):
        raise CertificateError(f"{path} is not a chainnode certificate, chain or revocation list (no known \"format\")")
    return doc


def _hex_field(doc: dict, name: str, path: Any) -> bytes:
    try:
        return parse_hex(doc.get(name))
    except HexError:
        raise CertificateError(f"{path}: field {name!r} is missing or not hex") from None


def decode_document(doc: dict, path: Any) -> Certificate | CertChain | RevocationList:
    """Decode a document from read_document; DecodeError and edits become CertificateError
    naming the file."""
    fmt = doc.get("format")
    try:
        if fmt == CERT_FORMAT:
            obj: Any = Certificate.decode(_hex_field(doc, "cert", path))
            shown = (doc.get("subject"), doc.get("kind"))
            if shown != (obj.subject, obj.kind):
                raise CertificateError(f"{path}: the readable subject/kind do not match the encoded certificate (was the file edited?)")
        elif fmt == CHAIN_FORMAT:
            obj = CertChain.decode(_hex_field(doc, "chain", path))
            if (doc.get("subject"), doc.get("kind")) != (obj.leaf.subject, obj.leaf.kind):
                raise CertificateError(f"{path}: the readable subject/kind do not match the encoded chain (was the file edited?)")
        elif fmt == CRL_FORMAT:
            obj = RevocationList.decode(_hex_field(doc, "crl", path))
        else:
            raise CertificateError(f"{path}: unknown format {fmt!r}")
    except DecodeError as exc:
        raise CertificateError(f"{path}: corrupt ({exc})") from None
    return obj


def read_cert_file(path: Any) -> Certificate:
    obj = decode_document(read_document(path), path)
    if not isinstance(obj, Certificate):
        raise CertificateError(f"{path} is not a single certificate (it is a {'chain' if isinstance(obj, CertChain) else 'revocation list'})")
    return obj


def read_chain_file(path: Any) -> CertChain:
    """A chain file (from `chainnode ca issue-node` / `issue-client`); CertificateError names
    the file if it is missing, corrupt, edited or another kind of document."""
    obj = decode_document(read_document(path), path)
    if not isinstance(obj, CertChain):
        what = "a single certificate" if isinstance(obj, Certificate) else "a revocation list"
        raise CertificateError(f"{path} is {what}, not a certificate chain (the file `chainnode ca issue-node --out` writes)")
    return obj


def read_crl_file(path: Any) -> RevocationList:
    obj = decode_document(read_document(path), path)
    if not isinstance(obj, RevocationList):
        raise CertificateError(f"{path} is not a revocation list")
    return obj


def write_document(path: Any, doc: dict, *, overwrite: bool = False) -> None:
    """Write atomically and durably: a crash never leaves half a certificate."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CertificateError(f"{path} already exists; choose another output path, or delete it if you are sure")
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode())

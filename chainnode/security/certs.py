"""The consortium certificate hierarchy: root CA -> agency -> node / client, in X.509 v3.

A consortium root CA (the genesis names one or several: a consortium may trust each member's
own CA) issues one CA certificate per member organisation, its *agency*; each agency issues
the certificates of its own nodes and clients. The X.509 layer (parsing, signatures, CA
flags, path length, validity) is chainnode/security/x509.py; this module reads the
consortium's profile on top of it (docs/certificates.md, "Profile"):

    agency       basicConstraints CA:TRUE (pathlen 0), keyUsage keyCertSign, subject O = the
                 organisation's name
    node/client  basicConstraints CA:FALSE or absent, keyUsage digitalSignature,
                 subject O = its agency's O, subject OU = its role (sealer | observer for a
                 node; user | governor | regulator | auditor for a client, as Fabric's
                 NodeOUs), the public key = its consensus (or account) key
    node         subjectAltName URI "p2p:<libp2p peer id>"

`verify_chain` is the one entry point that decides whether a chain is acceptable; every
refusal is a `CertificateError` whose message names the certificate (kind, subject and
serial) and the reason. Revocation is on chain, by vote, keyed by `revocation_id`: the hash
of the issuer's public key and the serial, so two member CAs that both number their
certificates from 1 never revoke each other's.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from asn1crypto import pem

from chainnode.crypto import get_suite
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_list, pack, unpack
from chainnode.security.x509 import (
    CERT_BYTES_MAX,
    CRL_BYTES_MAX,
    REASON_AGENCY_MISMATCH,
    REASON_BAD,
    REASON_BAD_SIGNATURE,
    REASON_EXPIRED,
    REASON_KEY_MISMATCH,
    REASON_LEAF_IS_CA,
    REASON_MISSING_EXTENSION,
    REASON_NONE,
    REASON_NOT_CA,
    REASON_NOT_CLIENT,
    REASON_NOT_YET_VALID,
    REASON_PATH_LENGTH,
    REASON_PEER_ID_MISMATCH,
    REASON_REVOKED,
    REASON_UNKNOWN_CRITICAL,
    REASON_WRONG_CA,
    REASON_WRONG_ISSUER,
    CertificateError,
    RevocationList,
    X509Certificate,
    crl_to_pem,
    issue as issue_x509,
    issue_crl,
    load_crl,
    parse,
    to_pem,
    verify_path,
)
from chainnode.store.files import read_bounded, write_atomic

KINDS = ("ca", "agency", "node", "client")
LEAF_KINDS = ("node", "client")
NODE_ROLES = ("sealer", "observer")
# What each client role may call on the node's channel port: chainnode.security.roles.
CLIENT_ROLES = ("user", "governor", "regulator", "auditor")
PEER_ID_URI = "p2p:"  # a node certificate's subjectAltName URI: p2p:12D3KooW...
SERIAL_BYTES = 16  # the serials chainnode issues: random, 127 bits (positive, well inside 20 octets)
ROOTS_MAX = 16  # trusted root CAs in one genesis
CHAIN_BYTES_MAX = 6144  # the wire form pack([leaf DER, agency DER]), inside a handshake payload of 8 KB
FILE_BYTES_MAX = 2 * CRL_BYTES_MAX  # PEM adds a third

# A libp2p peer id of an ed25519 host key (identity multihash of the protobuf public key):
# 0x00 identity, 0x24 length 36, 0x08 0x01 KeyType=Ed25519, 0x12 0x20 Data (32 bytes).
_PEER_ID_PREFIX = bytes.fromhex("002408011220")
_PEER_ID_BYTES = len(_PEER_ID_PREFIX) + 32

# The files of chainnode 0.1, before X.509: a JSON document {"format": "chainnode-cert/1", ...}.
_OLD_FORMATS = (b'"chainnode-cert/1"', b'"chainnode-chain/1"', b'"chainnode-crl/1"')
MIGRATE_HINT = (
    "a devnet converts with `devnet migrate --dir <devnet dir>`; a consortium re-issues its certificates as X.509 "
    "(docs/certificates.md, \"Migrating from chainnode 0.1 certificates\")"
)

__all__ = [  # the public interface, with the X.509 names consumers use through this module
    "CERT_BYTES_MAX", "CHAIN_BYTES_MAX", "CLIENT_ROLES", "CRL_BYTES_MAX", "CertChain", "Certificate", "CertificateError", "FILE_BYTES_MAX", "KINDS",
    "LEAF_KINDS", "MIGRATE_HINT", "NODE_ROLES", "PEER_ID_URI", "REASON_AGENCY_MISMATCH", "REASON_BAD", "REASON_BAD_SIGNATURE", "REASON_EXPIRED",
    "REASON_KEY_MISMATCH", "REASON_LEAF_IS_CA", "REASON_MISSING_EXTENSION", "REASON_NONE", "REASON_NOT_CA", "REASON_NOT_CLIENT",
    "REASON_NOT_YET_VALID", "REASON_PATH_LENGTH", "REASON_PEER_ID_MISMATCH", "REASON_REVOKED", "REASON_UNKNOWN_CRITICAL", "REASON_WRONG_CA",
    "REASON_WRONG_ISSUER", "ROOTS_MAX", "RevocationList", "SERIAL_BYTES", "cert_pem",
    "check_peer_id", "crl_to_pem", "format_ms", "issue", "issue_crl", "issuer_of", "key_hash", "load_certificates", "load_crl", "new_serial",
    "read_cert_file", "read_certs", "read_chain_file", "read_crl_file", "revocation_id", "revoked_by", "verify_agency", "verify_chain",
    "verify_root", "write_pem",
]


def key_hash(suite_name: str, public_key: bytes) -> bytes:
    """How a revocation names an issuer: the suite hash of the issuer's public key."""
    return get_suite(suite_name).hash(public_key)


def revocation_id(issuer: "Certificate", serial: int) -> bytes:
    """What the chain's revocation list holds for the certificate `issuer` gave `serial`."""
    return key_hash(issuer.suite, issuer.public_key) + serial.to_bytes((serial.bit_length() + 7) // 8 or 1, "big")


def new_serial() -> int:
    return int.from_bytes(secrets.token_bytes(SERIAL_BYTES), "big") >> 1 or 1


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


@dataclass(frozen=True)
class Certificate:
    """An X.509 certificate read under the consortium profile. `kind` is what the certificate
    says of itself: "ca" (a CA that issued itself), "agency" (a CA issued by another),
    "node" or "client" (by the role in its OU), or "" (a leaf with no chainnode role, which
    no chain accepts). Where it stands in a chain is checked by `verify_chain`."""

    x509: X509Certificate
    kind: str
    role: str  # "" for a CA
    peer_id: str  # a node's, from its subjectAltName; "" for every other kind

    @classmethod
    def decode(cls, der: bytes) -> "Certificate":
        return cls.of(parse(der))

    @classmethod
    def of(cls, cert: X509Certificate) -> "Certificate":
        if cert.is_ca:
            return cls(cert, "ca" if cert.subject_der == cert.issuer_der else "agency", "", "")
        role = cert.unit
        kind = "node" if role in NODE_ROLES else "client" if role in CLIENT_ROLES else ""
        ids = [uri[len(PEER_ID_URI):] for uri in cert.uris if uri.startswith(PEER_ID_URI)]
        if len(ids) > 1:
            raise CertificateError(f"{cert.label()} names {len(ids)} peer ids; a node certificate names one", REASON_BAD)
        return cls(cert, kind, role if kind else "", ids[0] if ids and kind == "node" else "")

    def encode(self) -> bytes:
        return self.x509.der

    @property
    def der(self) -> bytes:
        return self.x509.der

    @property
    def suite(self) -> str:
        return self.x509.suite

    @property
    def serial(self) -> int:
        return self.x509.serial

    @property
    def public_key(self) -> bytes:
        return self.x509.public_key

    @property
    def subject(self) -> str:
        """The holder's name: its CN ("Consortium CA", "Bank A", "node0", "alice")."""
        return self.x509.common_name or self.x509.subject

    @property
    def organisation(self) -> str:
        return self.x509.organisation

    @property
    def not_before_ms(self) -> int:
        return self.x509.not_before_ms

    @property
    def not_after_ms(self) -> int:
        return self.x509.not_after_ms

    def revocation_id(self, issuer: "Certificate") -> bytes:
        """What the chain's revocation list holds for this certificate, issued by `issuer`."""
        return revocation_id(issuer, self.serial)

    def label(self) -> str:
        """How messages name this certificate: `agency certificate 'Bank A' (serial 1f2e...)`."""
        return f"{self.kind or 'end-entity'} certificate {self.subject!r} (serial {self.serial:x})"

    def describe(self) -> dict:
        """The fields an operator reads, as JSON-friendly values."""
        return {
            "kind": self.kind,
            "subject": self.x509.subject,
            "issuer": self.x509.issuer,
            "name": self.subject,
            "organisation": self.organisation,
            "role": self.role,
            "serial": f"{self.serial:x}",
            "suite": self.suite,
            "public_key": self.public_key.hex(),
            "peer_id": self.peer_id,
            "ca": self.x509.is_ca,
            "path_length": self.x509.path_length,
            "key_usage": sorted(self.x509.key_usage),
            "not_before": format_ms(self.not_before_ms),
            "not_after": format_ms(self.not_after_ms),
            "not_before_ms": self.not_before_ms,
            "not_after_ms": self.not_after_ms,
        }


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
    issuer: Certificate | None,
    serial: int | None = None,
) -> Certificate:
    """Build, check and sign a certificate of the profile: a root CA (`issuer` None), an
    agency (issued by a root), a node or client (issued by an agency). Raises
    CertificateError on a bad request (a role that does not fit the kind, a malformed peer
    id), so the CLI never writes a certificate that `verify_chain` would refuse."""
    if kind not in KINDS:
        raise CertificateError(f"cannot issue a {kind!r} certificate (expected one of {', '.join(KINDS)})")
    if (kind == "ca") != (issuer is None):
        raise CertificateError("a root CA certificate is self-signed, every other one has an issuer")
    if role not in {"ca": ("",), "agency": ("",), "node": NODE_ROLES, "client": CLIENT_ROLES}[kind]:
        raise CertificateError(f"cannot issue this certificate: {role!r} is not a role of a {kind} certificate")
    if not subject or not organisation:
        raise CertificateError("cannot issue this certificate: the name and the organisation must not be empty")
    if not_after_ms < not_before_ms:
        raise CertificateError("cannot issue this certificate: it would expire before it becomes valid")
    if kind == "node":
        try:
            check_peer_id(peer_id)
        except ValueError as exc:
            raise CertificateError(f"cannot issue this certificate: {exc}") from None
    elif peer_id:
        raise CertificateError(f"cannot issue this certificate: only a node certificate names a peer id, not a {kind} one")
    try:
        cert = issue_x509(
            suite=suite, issuer_priv=issuer_priv, issuer=issuer.x509 if issuer else None, common_name=subject, organisation=organisation,
            public_key=public_key, serial=serial if serial is not None else new_serial(), not_before_ms=not_before_ms,
            not_after_ms=not_after_ms, ca=kind in ("ca", "agency"), path_length={"ca": 1, "agency": 0}.get(kind), unit=role,
            uris=(PEER_ID_URI + peer_id,) if kind == "node" else (),
        )
    except (ValueError, OverflowError) as exc:  # a name asn1crypto cannot encode, a date out of range
        if isinstance(exc, CertificateError):
            raise
        raise CertificateError(f"cannot issue this certificate: {exc}") from None
    return Certificate.of(cert)


# ---- CertChain ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CertChain:
    """What a node or client presents: its leaf and the agency that issued it. A file may
    also carry the root, so an SDK knows which CA to trust and an operator sees it; a node
    trusts only the roots of its genesis, so the root never goes on the wire."""

    leaf: Certificate
    agency: Certificate
    root: Certificate | None = None

    def encode(self) -> bytes:
        """The wire form (Hello and secure channel credentials): pack([leaf DER, agency DER])."""
        return pack([self.leaf.der, self.agency.der])

    def __iter__(self) -> Iterator[Certificate]:
        """Top down, as operators read a hierarchy: root (if carried), agency, leaf."""
        return iter(([self.root] if self.root is not None else []) + [self.agency, self.leaf])

    def to_pem(self) -> bytes:
        """Leaf first, then its issuers: the order of TLS and of `openssl verify -untrusted`."""
        return b"".join(to_pem(c.x509) for c in (self.leaf, self.agency, self.root) if c is not None)

    @classmethod
    def decode(cls, data: bytes) -> "CertChain":
        try:
            fields = expect_list(unpack(data, max_bytes=CHAIN_BYTES_MAX), "chain", length=2)
            leaf, agency = (expect_bytes(f, "chain certificate", max_length=CERT_BYTES_MAX) for f in fields)
        except DecodeError as exc:
            raise CertificateError(f"undecodable certificate chain: {exc}", REASON_BAD) from None
        return cls(Certificate.decode(leaf), Certificate.decode(agency))

    @classmethod
    def of(cls, certs: Sequence[Certificate], where: str = "the chain") -> "CertChain":
        """A chain from its certificates, leaf first (as in a PEM file)."""
        if len(certs) not in (2, 3):
            raise CertificateError(
                f"{where} holds {len(certs)} certificate(s); a chain is the leaf, then its agency, then optionally the root", REASON_BAD
            )
        return cls(certs[0], certs[1], certs[2] if len(certs) == 3 else None)


# ---- verification -------------------------------------------------------------------------


def _names(roots: Sequence[Certificate]) -> str:
    return ", ".join(repr(r.x509.subject) for r in roots) or "none"


def issuer_of(cert: Certificate, roots: Sequence[Certificate]) -> Certificate:
    """The root that issued `cert`, by name (then by signature when two roots share one)."""
    named = [r for r in roots if r.x509.subject_der == cert.x509.issuer_der]
    if not named:
        raise CertificateError(
            f"wrong or missing CA: the {cert.label()} was issued by {cert.x509.issuer!r}, which is not a root CA of this chain "
            f"(trusted: {_names(roots)})",
            REASON_WRONG_CA,
        )
    return named[0] if len(named) == 1 else next((r for r in named if cert.x509.signed_by(r.x509)), named[0])


def _path(path: list[Certificate], root: Certificate, now_ms: int) -> None:
    """The X.509 checks of a path under `root`, refusals named for this hierarchy."""
    try:
        verify_path([c.x509 for c in path], [root.x509], now_ms)
    except CertificateError as exc:
        reason = REASON_WRONG_CA if exc.reason == REASON_WRONG_ISSUER else exc.reason
        labels = {c.x509.label(): c.label() for c in [*path, root]}
        message = str(exc)
        for plain, named in labels.items():
            message = message.replace(plain, named)
        raise CertificateError(message, reason) from None


def verify_root(root: Certificate, now_ms: int | None) -> None:
    """A trusted root itself: a CA, validly self-signed if it is self-issued (a member's CA
    may itself be issued by a licensed CA outside the chain), and inside its window at
    `now_ms` (None: the genesis, which outlives any window, checks no time)."""
    if not root.x509.is_ca or "key_cert_sign" not in root.x509.key_usage:
        raise CertificateError(
            f"wrong or missing CA: {root.label()} is not a CA certificate (it needs basicConstraints CA:TRUE and keyUsage keyCertSign)",
            REASON_WRONG_CA,
        )
    if root.kind == "ca" and not root.x509.signed_by(root.x509):
        raise CertificateError(f"{root.label()}: bad signature (a self-issued CA certificate must verify with its own key)", REASON_BAD_SIGNATURE)
    if now_ms is not None:
        root.x509.check_window(now_ms)


def verify_agency(agency: Certificate, roots: Sequence[Certificate], now_ms: int, revoked: Iterable[bytes] = ()) -> Certificate:
    """One link: `agency` is a CA issued by one of `roots`; returns that root."""
    if not agency.x509.is_ca:
        raise CertificateError(
            f"the agency certificate {agency.subject!r} (serial {agency.serial:x}) is not a CA: an agency needs basicConstraints "
            f"CA:TRUE and keyUsage keyCertSign",
            REASON_NOT_CA,
        )
    if not agency.organisation:
        raise CertificateError(f"{agency.label()} names no organisation (O): its nodes and clients are matched by it", REASON_MISSING_EXTENSION)
    root = issuer_of(agency, roots)
    verify_root(root, now_ms)
    try:
        _path([agency], root, now_ms)
    except CertificateError as exc:
        if exc.reason != REASON_BAD_SIGNATURE:
            raise
        # The names matched: a CA of the same name but another key issued it (or it was modified).
        raise CertificateError(
            f"wrong or missing CA: the {agency.label()} names the root {root.x509.subject!r}, but its signature does not verify with "
            f"that root's key: another CA of the same name issued it, or it was modified",
            REASON_WRONG_CA,
        ) from None
    if agency.revocation_id(root) in frozenset(revoked):
        raise CertificateError(f"{agency.label()} is revoked", REASON_REVOKED)
    return root


def verify_chain(chain: CertChain, roots: Sequence[Certificate], now_ms: int, revoked: Iterable[bytes] = ()) -> Certificate:
    """Check [agency, leaf] against the verifier's own trusted `roots` (a chain's own root,
    if it carries one, counts for nothing) and return the leaf; CertificateError names the
    first certificate that fails and why."""
    if not isinstance(chain, CertChain):
        raise CertificateError("not a certificate chain")
    revoked = frozenset(revoked)
    agency, leaf = chain.agency, chain.leaf
    for cert in (agency, leaf):
        if roots and cert.suite != roots[0].suite:
            raise CertificateError(f"{cert.label()}: a {cert.suite} certificate, but this chain uses {roots[0].suite}")
    if leaf.x509.is_ca:
        raise CertificateError(
            f"the leaf certificate {leaf.subject!r} (serial {leaf.serial:x}) is a CA (basicConstraints CA:TRUE); "
            f"a node or client certificate must not be one",
            REASON_LEAF_IS_CA,
        )
    if leaf.kind not in LEAF_KINDS:
        raise CertificateError(
            f"{leaf.label()} names no chainnode role: its subject's OU must be one of {', '.join(NODE_ROLES + CLIENT_ROLES)}",
            REASON_MISSING_EXTENSION,
        )
    try:
        root = verify_agency(agency, roots, now_ms, revoked)
    except CertificateError as exc:  # name whose chain it is: the agency alone says little in a log
        raise CertificateError(f"{exc} (in the chain of the {leaf.label()})", exc.reason) from None
    if root.x509.path_length is not None and root.x509.path_length < 1:
        raise CertificateError(f"{root.label()} allows no CA below it (pathlen 0), so no agency", REASON_PATH_LENGTH)
    if leaf.x509.issuer_der != agency.x509.subject_der:
        raise CertificateError(
            f"agency mismatch: the {leaf.label()} was issued by {leaf.x509.issuer!r}, not by the agency {agency.x509.subject!r} in its chain",
            REASON_AGENCY_MISMATCH,
        )
    if leaf.organisation != agency.organisation:
        raise CertificateError(
            f"agency mismatch: the {leaf.label()} names organisation {leaf.organisation!r} but was issued by the agency of "
            f"{agency.organisation!r}",
            REASON_AGENCY_MISMATCH,
        )
    if "digital_signature" not in leaf.x509.key_usage:
        raise CertificateError(f"{leaf.label()} lacks keyUsage digitalSignature: its key signs the node's or client's messages",
                               REASON_MISSING_EXTENSION)
    _path([leaf], agency, now_ms)  # the agency's own link was checked above
    if leaf.revocation_id(agency) in revoked:
        raise CertificateError(f"{leaf.label()} is revoked", REASON_REVOKED)
    if leaf.kind == "node":
        if not leaf.peer_id:
            raise CertificateError(f"{leaf.label()} names no peer id: a node certificate needs subjectAltName URI:{PEER_ID_URI}<peer id>",
                                   REASON_MISSING_EXTENSION)
        try:
            check_peer_id(leaf.peer_id)
        except ValueError as exc:
            raise CertificateError(f"{leaf.label()}: {exc}") from None
    return leaf


def revoked_by(crl: RevocationList, issuer: Certificate) -> frozenset[bytes]:
    """The revocation ids a CRL lists, if `issuer` signed it; else CertificateError."""
    if crl.issuer_der != issuer.x509.subject_der:
        raise CertificateError(f"the revocation list was issued by {crl.issuer!r}, not by {issuer.x509.subject!r}", REASON_WRONG_CA)
    if not crl.signed_by(issuer.x509):
        raise CertificateError(f"the revocation list's signature does not verify with {issuer.label()}'s key (modified?)", REASON_BAD_SIGNATURE)
    return frozenset(revocation_id(issuer, s) for s in crl.serials)


# ---- files --------------------------------------------------------------------------------
#
# On disk every certificate, chain and revocation list is PEM, as `openssl` writes them
# (DER is read too): `openssl x509 -in node.pem -noout -text` shows who it is for.


def _read(path: Any) -> bytes:
    data = read_bounded(Path(path), noun="certificate file", max_bytes=FILE_BYTES_MAX, error=CertificateError)
    if data.lstrip().startswith(b"{") and any(tag in data[:200] for tag in _OLD_FORMATS):
        raise CertificateError(f"{path} is in the certificate format of chainnode 0.1, before X.509; {MIGRATE_HINT}")
    return data


def load_certificates(data: bytes, where: str) -> list[Certificate]:
    """Every certificate of a PEM bundle (or one DER certificate), in file order."""
    if not pem.detect(data):
        return [Certificate.decode(data)]
    certs = []
    try:
        for kind, _, der in pem.unarmor(data, multiple=True):
            if kind != "CERTIFICATE":
                raise CertificateError(f"{where} holds a PEM {kind}, not a CERTIFICATE", REASON_BAD)
            certs.append(Certificate.decode(der))
    except ValueError as exc:
        if isinstance(exc, CertificateError):
            raise CertificateError(f"{where}: {exc}", exc.reason) from None
        raise CertificateError(f"{where}: bad PEM ({exc})") from None
    if len(certs) > ROOTS_MAX:
        raise CertificateError(f"{where} holds more than {ROOTS_MAX} certificates")
    return certs


def read_certs(path: Any) -> list[Certificate]:
    """The certificates of a PEM (or DER) file; CertificateError names the file."""
    data = _read(path)
    try:
        return load_certificates(data, str(path))
    except CertificateError as exc:
        message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        raise CertificateError(message, exc.reason) from None


def read_cert_file(path: Any) -> Certificate:
    certs = read_certs(path)
    if len(certs) != 1:
        raise CertificateError(f"{path} holds {len(certs)} certificates, not one")
    return certs[0]


def read_chain_file(path: Any) -> CertChain:
    """A chain file (from `chainnode ca issue-node` / `issue-client`, or leaf + agency PEM
    from the members' own CA); CertificateError names the file if it is missing, corrupt or
    not a chain."""
    return CertChain.of(read_certs(path), str(path))


def read_crl_file(path: Any) -> RevocationList:
    data = _read(path)
    try:
        return load_crl(data)
    except CertificateError as exc:
        raise CertificateError(f"{path}: {exc}", exc.reason) from None


def write_pem(path: Any, data: bytes, *, overwrite: bool = False) -> None:
    """Write atomically and durably: a crash never leaves half a certificate."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CertificateError(f"{path} already exists; choose another output path, or delete it if you are sure")
    write_atomic(path, data)


def cert_pem(cert: Certificate) -> bytes:
    return to_pem(cert.x509)

"""`chainnode ca`: the consortium certificate hierarchy from the command line, in X.509 PEM.

    chainnode ca init --name "Consortium CA" --out-dir ca/
    chainnode ca issue-agency --ca-dir ca/ --name "Bank A" --out-dir agency-a/
    chainnode ca issue-node --agency-dir agency-a/ --key node0.key --role sealer --name node0 --out node0.pem
    chainnode ca issue-client --agency-dir agency-a/ --key alice.key --role user --name alice --out alice.pem
    chainnode ca sign-csr --agency-dir agency-a/ --csr node9.csr --role sealer --peer-id 12D3KooW... --out node9.pem
    chainnode ca sign-csr --ca-dir ca/ --csr bank-b.csr --out bank-b-agency.pem
    chainnode ca revoke --agency-dir agency-a/ --serial 1f2e...
    chainnode ca show node0.pem --ca ca/ca.pem --crl agency-a/revoked.crl --issuer agency-a/agency.pem

Directory layout (as FISCO BCOS's build_chain.sh lays out ca/ and agency dirs):
    ca/ca.key, ca/ca.pem, ca/revoked.crl
    agency-a/agency.key, agency-a/agency.pem, agency-a/ca.pem (a copy of the CA that issued it), agency-a/revoked.crl

Keys are chainnode key files (chainnode.security.keyfile); certificates, chains and
revocation lists are the X.509 PEM that `openssl x509`, `openssl verify` and `openssl crl`
read (docs/certificates.md). A chain file is the leaf, its agency, then the root. Nothing
is written that a node would refuse: every certificate is verified as a node verifies it
before its file is written. Every failure is one line that names the file that is wrong and
the flag that fixes it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import click
from asn1crypto import pem

from chainnode.cli.common import PASSWORD_ENV, emit, read_password
from chainnode.crypto import SUITE_NAMES, CryptoUnavailable, get_suite
from chainnode.protocol.hexstr import parse_hex
from chainnode.security.certs import (
    CERT_BYTES_MAX,
    CLIENT_ROLES,
    FILE_BYTES_MAX,
    MIGRATE_HINT,
    NODE_ROLES,
    CertChain,
    Certificate,
    CertificateError,
    RevocationList,
    cert_pem,
    check_peer_id,
    crl_to_pem,
    format_ms,
    issue,
    issue_crl,
    load_crl,
    read_cert_file,
    read_certs,
    read_crl_file,
    revocation_id,
    revoked_by,
    verify_agency,
    verify_chain,
    verify_root,
    write_pem,
)
from chainnode.security.keyfile import SCRYPT_N_DEFAULT, KeyFileError, KeyPair, encrypt_key, load_key, read_key_file, write_key_file
from chainnode.security.x509 import SERIAL_MAX, CertificateRequest, load_csr
from chainnode.store.files import read_bounded

DAY_MS = 86_400_000
CA_DAYS_DEFAULT = 3650
AGENCY_DAYS_DEFAULT = 1825
LEAF_DAYS_DEFAULT = 365
DAYS_MAX = 36500  # keeps not_after_ms far inside uint64 whatever an operator types
SERIAL_HEX_MAX = 40  # RFC 5280: a serial is at most 20 octets
SM2_ID = "distid:1234567812345678"  # the standard SM2 distinguishing ID, which openssl needs spelled out

_ALGORITHM = {"sm": "SM2", "ed25519": "Ed25519"}
# How to make a key and a request on each suite with openssl, for the messages that ask for one.
_OPENSSL_KEY = {"sm": "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:SM2", "ed25519": "openssl genpkey -algorithm ED25519"}
_OPENSSL_REQ = {"sm": f"openssl req -new -sm3 -sigopt {SM2_ID}", "ed25519": "openssl req -new"}


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _refusal(problem: object, fix: str) -> click.ClickException:
    """What is wrong (an exception or its message), then how to fix it. A file of chainnode 0.1
    is refused with the steps of the migration (certs.MIGRATE_HINT), which are the fix: that
    message is passed on unchanged."""
    message = str(problem)
    return _fail(message if MIGRATE_HINT in message else f"{message}; {fix}")


def _naming(path: object, exc: Exception) -> str:
    """`exc`'s message, starting with the file it is about unless it names it already."""
    return str(exc) if str(path) in str(exc) else f"{path}: {exc}"


def _days(days: int | None, default: int) -> int:
    days = default if days is None else days
    if not 1 <= days <= DAYS_MAX:
        raise _fail(f"--days {days}: choose between 1 and {DAYS_MAX} days")
    return days


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_scrypt_option = click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True, help="scrypt cost (tests use a small one).")
_password_option = click.option(
    "--password-file", type=click.Path(dir_okay=False), help=f"Password of the issuer's key (else ${PASSWORD_ENV}, else a prompt)."
)
_force_option = click.option("--force", is_flag=True, help="Overwrite --out.")


# ---- the issuer: a CA or agency directory -------------------------------------------------


@dataclass(frozen=True)
class _Issuer:
    """A CA's or an agency's directory: its certificate, checked as a node checks it now, and
    the root above it (the CA itself for a root). The key is decrypted only by `unlock`, once
    everything else the command needs has been checked."""

    dir: Path
    name: str  # "ca" or "agency": the files are DIR/NAME.pem and DIR/NAME.key
    flag: str  # "--ca-dir" or "--agency-dir": how the user named the directory
    cert: Certificate
    root: Certificate

    @property
    def cert_path(self) -> Path:
        return self.dir / f"{self.name}.pem"

    @property
    def key_path(self) -> Path:
        return self.dir / f"{self.name}.key"

    def unlock(self, password: str) -> KeyPair:
        try:
            key = load_key(self.key_path, password)
        except KeyFileError as exc:
            raise _refusal(exc, f"check {self.flag} and --password-file") from None
        if key.public_key != self.cert.public_key:
            raise _fail(f"{self.key_path} is not the key of {self.cert_path} ({self.cert.label()}); pass the {self.flag} that holds both")
        return key


def _read_dir_cert(d: Path, name: str, flag: str, what: str) -> Certificate:
    path = d / f"{name}.pem"
    legacy = d / f"{name}.cert"  # what chainnode 0.1 wrote: say how to migrate rather than "not found"
    if not path.exists() and legacy.exists():
        try:
            read_certs(legacy)
        except CertificateError as exc:
            if MIGRATE_HINT in str(exc):
                raise _fail(str(exc)) from None
    try:
        return read_cert_file(path)
    except CertificateError as exc:
        raise _refusal(exc, f"pass the {flag} that holds {what}") from None


def _open_issuer(directory: str, name: str) -> _Issuer:
    """The issuer in `directory`, refused unless a node would accept what it issues now."""
    d = Path(directory)
    if name == "ca":
        ca = _read_dir_cert(d, "ca", "--ca-dir", "ca.pem (from `chainnode ca init`)")
        try:
            verify_root(ca, _now_ms())
        except CertificateError as exc:
            raise _fail(f"{d / 'ca.pem'}: {exc}; pass the --ca-dir of a root CA that is valid now") from None
        issuer = _Issuer(d, "ca", "--ca-dir", ca, ca)
    else:
        agency = _read_dir_cert(d, "agency", "--agency-dir", "agency.pem (from `chainnode ca issue-agency`)")
        ca = _read_dir_cert(d, "ca", "--agency-dir", "the ca.pem of the CA that issued the agency (copy it there)")
        try:
            verify_agency(agency, [ca], _now_ms())
        except CertificateError as exc:
            raise _fail(f"{d / 'agency.pem'} or {d / 'ca.pem'}: {exc}; copy the ca.pem of the CA that issued the agency into {d} "
                        f"(--agency-dir)") from None
        issuer = _Issuer(d, "agency", "--agency-dir", agency, ca)
    try:
        read_key_file(issuer.key_path)  # a missing key is reported before a password is asked for
    except KeyFileError as exc:
        raise _refusal(exc, f"pass the {issuer.flag} that holds {issuer.name}.key") from None
    return issuer


def _check_suite(suite: str, issuer: _Issuer, what: str, fix: str) -> None:
    """Every certificate of a chain is of the chain's suite (an SM2 CA cannot sign Ed25519)."""
    if suite != issuer.cert.suite:
        raise _fail(f"{what} is for an {_ALGORITHM[suite]} key, but {issuer.cert_path} is on suite {issuer.cert.suite}; {fix}")


# ---- what is certified: key files, requests, peer ids, serials -----------------------------


def _read_public_key(key_path: str) -> tuple[str, bytes]:
    """The suite and public key of a chainnode key file: certifying a key needs no password."""
    try:
        doc = read_key_file(key_path)
    except KeyFileError as exc:
        raise _refusal(exc, "pass a chainnode key file as --key (`chainnode key import` converts an openssl key; "
                            "or make a request with openssl and use `chainnode ca sign-csr`)") from None
    try:
        if doc.get("suite") not in SUITE_NAMES:
            raise ValueError("unknown suite")
        return doc["suite"], parse_hex(doc["public_key"], what="public_key")
    except (KeyError, ValueError):
        raise _fail(f"{key_path}: malformed suite or public_key; regenerate it with `chainnode keygen` (--key)") from None


def _read_csr(csr_path: str) -> CertificateRequest:
    """A PKCS#10 request whose self-signature verified: its maker holds the private key."""
    try:
        data = read_bounded(Path(csr_path), noun="certificate request", max_bytes=2 * CERT_BYTES_MAX, error=CertificateError)
        return load_csr(data)
    except CertificateError as exc:
        raise _fail(f"{_naming(csr_path, exc)}; pass as --csr a request made with `{_OPENSSL_REQ['sm']} -key KEY.pem -subj '/CN=NAME/O=ORG'` "
                    f"(on an ed25519 chain without -sm3 and -sigopt)") from None


def _checked_peer_id(peer_id: str) -> str:
    try:
        check_peer_id(peer_id)
    except ValueError as exc:
        raise _fail(f"--peer-id: {exc}; `chainnode key show NODE.key --peer-id` prints a node's") from None
    return peer_id


def _derive_peer_id(key_path: str, key_password_file: str | None) -> str:
    """A node's peer id is derived from its consensus private key (chainnode.network.identity),
    so without --peer-id the node key is decrypted, once, to compute it."""
    from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed

    try:
        node_key = load_key(key_path, read_password(key_password_file, confirm=False))
    except KeyFileError as exc:
        raise _refusal(exc, "check --key and --key-password-file, or pass --peer-id") from None
    return peer_id_from_seed(host_seed_from_consensus_key(get_suite(node_key.suite), node_key.private_key))


def _parse_serial(text: str) -> int:
    """A serial as `ca show` prints it (hex, any length); openssl's forms are taken too: an
    0x prefix, upper case (`openssl x509 -serial`) and colons (`openssl x509 -text`)."""
    digits = text.strip().lower().removeprefix("0x").replace(":", "")
    if not 1 <= len(digits) <= SERIAL_HEX_MAX or any(c not in "0123456789abcdef" for c in digits):
        raise _fail(f"--serial {text!r}: a serial is 1 to {SERIAL_HEX_MAX} hex digits; copy it from `chainnode ca show`")
    serial = int(digits, 16)
    if not 0 < serial < SERIAL_MAX:  # no certificate carries any other (RFC 5280 4.1.2.2)
        raise _fail(f"--serial {text!r}: a certificate's serial is positive and below 2^159; copy it from `chainnode ca show`")
    return serial


# ---- outputs ------------------------------------------------------------------------------


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise _fail(f"{out} already exists; choose another --out, or pass --force")


def _check_out_dir(out_dir: str, names: tuple[str, ...]) -> Path:
    """The --out-dir (click refuses a file), checked before anything is asked or computed;
    created when the first file is written."""
    d = Path(out_dir)
    for name in names:
        if (d / name).exists():
            raise _fail(f"{d / name} already exists; choose another --out-dir, or delete it if you are sure")
    return d


def _write(path: Path, data: bytes, flag: str, *, overwrite: bool = False) -> None:
    try:
        write_pem(path, data, overwrite=overwrite)
    except (CertificateError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _fail(f"cannot write {path}: {why}; choose another {flag}") from None


def _new_key(suite: str, password: str, scrypt_n: int) -> tuple[KeyPair, dict]:
    """A fresh key pair and its encrypted key file document (written once the certificate is made)."""
    try:
        s = get_suite(suite)
        priv, pub = s.generate_keypair()
        return KeyPair(suite, priv, pub, s.address(pub)), encrypt_key(suite, priv, password, scrypt_n=scrypt_n)
    except (CryptoUnavailable, ValueError) as exc:
        raise _fail(f"cannot make a {suite} key: {exc}") from None


def _write_key(path: Path, doc: dict) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_key_file(path, doc)
    except (KeyFileError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise _fail(f"cannot write {path}: {why}; choose another --out-dir") from None


# ---- issuing ------------------------------------------------------------------------------


def _window(days: int, issuer: Certificate) -> tuple[int, int, bool]:
    """From now for `days`, capped at the issuer's own expiry: a certificate that outlived its
    issuer would be refused anyway from the day the issuer expires. Also: whether it was capped."""
    not_before_ms = _now_ms()
    not_after_ms = not_before_ms + days * DAY_MS
    return not_before_ms, min(not_after_ms, issuer.not_after_ms), not_after_ms > issuer.not_after_ms


def _certify_agency(ca: _Issuer, ca_key: KeyPair, *, name: str, organisation: str, public_key: bytes, days: int) -> tuple[Certificate, bool]:
    """An agency certificate (CA, pathlen 0) under `ca`, checked as a node checks one."""
    not_before_ms, not_after_ms, capped = _window(days, ca.cert)
    try:
        cert = issue(kind="agency", subject=name, organisation=organisation, role="", public_key=public_key, peer_id="", suite=ca.cert.suite,
                     not_before_ms=not_before_ms, not_after_ms=not_after_ms, issuer_priv=ca_key.private_key, issuer=ca.cert)
        verify_agency(cert, [ca.cert], _now_ms())
    except CertificateError as exc:
        raise _refusal(exc, "check --name and --org") from None
    return cert, capped


def _certify_leaf(agency: _Issuer, agency_key: KeyPair, *, role: str, name: str, public_key: bytes, peer_id: str,
                  days: int) -> tuple[CertChain, bool]:
    """A node or client certificate under `agency`, as the chain [leaf, agency, root] that a
    node verifies it in; the leaf's organisation is the agency's."""
    kind = "node" if role in NODE_ROLES else "client"
    not_before_ms, not_after_ms, capped = _window(days, agency.cert)
    try:
        leaf = issue(kind=kind, subject=name, organisation=agency.cert.organisation, role=role, public_key=public_key, peer_id=peer_id,
                     suite=agency.cert.suite, not_before_ms=not_before_ms, not_after_ms=not_after_ms, issuer_priv=agency_key.private_key,
                     issuer=agency.cert)
        chain = CertChain(leaf, agency.cert, agency.root)
        verify_chain(chain, [agency.root], _now_ms())
    except CertificateError as exc:
        raise _refusal(exc, "check --name, --role and --peer-id") from None
    return chain, capped


def _capped_line(capped: bool, cert: Certificate, issuer: str) -> list[str]:
    return [f"note: validity capped at the {issuer}'s expiry ({format_ms(cert.not_after_ms)})"] if capped else []


def _emit_leaf(chain: CertChain, out: Path, capped: bool, as_json: bool) -> None:
    leaf, agency = chain.leaf, chain.agency
    rid = leaf.revocation_id(agency).hex()
    emit(
        as_json,
        {"chain": str(out), "capped": capped, "revocation_id": rid, **leaf.describe()},
        [f"wrote {out} (chain: {leaf.subject} <- {agency.subject} <- {chain.root.subject})", *_cert_lines(leaf),
         f"  revocation id: {rid}", *_capped_line(capped, leaf, "agency")],
    )


# ---- printing -----------------------------------------------------------------------------


def _cert_lines(cert: Certificate, indent: str = "") -> list[str]:
    x = cert.x509
    lines = [f"{indent}{cert.kind or 'end-entity (no chainnode role)'}: {cert.subject}", f"{indent}  organisation: {cert.organisation}"]
    if cert.role:
        lines.append(f"{indent}  role:         {cert.role}")
    if cert.peer_id:
        lines.append(f"{indent}  peer id:      {cert.peer_id}")
    ca_flag = ("yes" + (f", path length {x.path_length}" if x.path_length is not None else "")) if x.is_ca else "no"
    lines += [
        f"{indent}  serial:       {cert.serial:x}",
        f"{indent}  suite:        {cert.suite}",
        f"{indent}  valid:        {format_ms(cert.not_before_ms)} .. {format_ms(cert.not_after_ms)}",
        f"{indent}  subject:      {x.subject}",
        f"{indent}  issuer:       {x.issuer}{' (self-issued)' if x.subject_der == x.issuer_der else ''}",
        f"{indent}  CA:           {ca_flag}",
        f"{indent}  key usage:    {', '.join(sorted(x.key_usage)) or '(none)'}",
        f"{indent}  public key:   {cert.public_key.hex()}",
    ]
    return lines


# ---- commands -----------------------------------------------------------------------------


@click.group("ca")
def ca_group() -> None:
    """Consortium certificates, X.509: root CA -> agency -> node / client (docs/certificates.md)."""


@ca_group.command("init")
@click.option("--name", required=True, help='The CA\'s name (its CN), e.g. "Consortium CA".')
@click.option("--org", default=None, help="Its organisation (O); default: the name.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where to write ca.key and ca.pem.")
@click.option("--suite", type=click.Choice(SUITE_NAMES), default="sm", show_default=True, help="The chain's crypto suite.")
@click.option("--days", type=int, default=CA_DAYS_DEFAULT, show_default=True, help="Validity in days.")
@_password_option
@_scrypt_option
@_json_option
def ca_init(name: str, org: str | None, out_dir: str, suite: str, days: int, password_file: str | None, scrypt_n: int, as_json: bool) -> None:
    """Create a root CA: an encrypted key and a self-signed X.509 certificate."""
    days = _days(days, CA_DAYS_DEFAULT)
    d = _check_out_dir(out_dir, ("ca.key", "ca.pem"))
    key, doc = _new_key(suite, read_password(password_file, confirm=True), scrypt_n)
    not_before_ms = _now_ms()
    try:
        cert = issue(kind="ca", subject=name, organisation=org or name, role="", public_key=key.public_key, peer_id="", suite=suite,
                     not_before_ms=not_before_ms, not_after_ms=not_before_ms + days * DAY_MS, issuer_priv=key.private_key, issuer=None)
        verify_root(cert, _now_ms())
    except CertificateError as exc:
        raise _refusal(exc, "check --name and --org") from None
    _write_key(d / "ca.key", doc)
    _write(d / "ca.pem", cert_pem(cert), "--out-dir")
    emit(
        as_json,
        {"key": str(d / "ca.key"), "cert": str(d / "ca.pem"), "genesis_ca_cert_hex": cert.der.hex(), **cert.describe()},
        [f"wrote {d / 'ca.key'} and {d / 'ca.pem'}", *_cert_lines(cert),
         # The genesis names its trusted roots as the hex of their DER (chainnode.system.genesis).
         f"for the genesis file (docs/certificates.md): \"ca_certs\": [\"{cert.der.hex()}\"]",
         f"next: chainnode ca issue-agency --ca-dir {d} --name ORGANISATION --out-dir AGENCY_DIR"],
    )


@ca_group.command("issue-agency")
@click.option("--ca-dir", required=True, type=click.Path(file_okay=False), help="The CA's directory (ca.key, ca.pem).")
@click.option("--name", required=True, help='The agency (organisation) name, its CN, e.g. "Bank A".')
@click.option("--org", default=None, help="Its organisation (O), which its nodes and clients carry; default: the name.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where to write agency.key, agency.pem and ca.pem.")
@click.option("--days", type=int, default=AGENCY_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the CA's).")
@_password_option
@click.option("--out-password-file", type=click.Path(dir_okay=False), help="Password for the new agency key (default: the CA key's).")
@_scrypt_option
@_json_option
def issue_agency(ca_dir: str, name: str, org: str | None, out_dir: str, days: int, password_file: str | None, out_password_file: str | None,
                 scrypt_n: int, as_json: bool) -> None:
    """Create an agency: its key and a CA certificate (pathlen 0) for it, signed by the root."""
    days = _days(days, AGENCY_DAYS_DEFAULT)
    ca = _open_issuer(ca_dir, "ca")
    d = _check_out_dir(out_dir, ("agency.key", "agency.pem", "ca.pem"))
    password = read_password(password_file, confirm=False)
    ca_key = ca.unlock(password)
    key, doc = _new_key(ca.cert.suite, read_password(out_password_file, confirm=True) if out_password_file else password, scrypt_n)
    cert, capped = _certify_agency(ca, ca_key, name=name, organisation=org or name, public_key=key.public_key, days=days)
    _write_key(d / "agency.key", doc)
    _write(d / "agency.pem", cert_pem(cert), "--out-dir")
    # The agency keeps the CA's certificate beside its own: its chains end with it.
    _write(d / "ca.pem", cert_pem(ca.cert), "--out-dir")
    emit(
        as_json,
        {"key": str(d / "agency.key"), "cert": str(d / "agency.pem"), "ca": str(d / "ca.pem"), "capped": capped,
         "revocation_id": cert.revocation_id(ca.cert).hex(), **cert.describe()},
        [f"wrote {d / 'agency.key'}, {d / 'agency.pem'} and {d / 'ca.pem'}", *_cert_lines(cert),
         f"  revocation id: {cert.revocation_id(ca.cert).hex()}", *_capped_line(capped, cert, "CA"),
         f"next: chainnode ca issue-node --agency-dir {d} --key NODE.key --role sealer --name NAME --out NODE.pem"],
    )


@ca_group.command("issue-node")
@click.option("--agency-dir", required=True, type=click.Path(file_okay=False), help="The agency's directory (agency.key, agency.pem, ca.pem).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The node's key file (its consensus key).")
@click.option("--role", required=True, type=click.Choice(NODE_ROLES), help="sealer (votes in PBFT) or observer (syncs only).")
@click.option("--name", required=True, help="The node's name (its CN), e.g. node0.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PEM chain [node, agency, CA].")
@click.option("--peer-id", default=None, help="The node's libp2p peer id; if omitted, derived from --key (needs its password).")
@click.option("--days", type=int, default=LEAF_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the agency's).")
@_password_option
@click.option("--key-password-file", type=click.Path(dir_okay=False), help=f"Password of the node key, to derive its peer id (else ${PASSWORD_ENV}).")
@_force_option
@_json_option
def issue_node(agency_dir, key_path, role, name, out_path, peer_id, days, password_file, key_password_file, force, as_json) -> None:
    """Certify a node's consensus key and peer id; writes the PEM chain [node, agency, CA]."""
    _issue_for_key_file(
        "node", agency_dir, key_path, role=role, name=name, out_path=out_path, days=days, password_file=password_file, force=force,
        as_json=as_json,
        peer_id=lambda: _checked_peer_id(peer_id) if peer_id is not None else _derive_peer_id(key_path, key_password_file),
    )


@ca_group.command("issue-client")
@click.option("--agency-dir", required=True, type=click.Path(file_okay=False), help="The agency's directory (agency.key, agency.pem, ca.pem).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The client's key file (only its public key is read).")
@click.option("--role", required=True, type=click.Choice(CLIENT_ROLES), help="user, governor, regulator or auditor (read-only).")
@click.option("--name", required=True, help="The client's name (its CN).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PEM chain [client, agency, CA].")
@click.option("--days", type=int, default=LEAF_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the agency's).")
@_password_option
@_force_option
@_json_option
def issue_client(agency_dir, key_path, role, name, out_path, days, password_file, force, as_json) -> None:
    """Certify a client's (SDK user's) account key; writes the PEM chain [client, agency, CA]."""
    _issue_for_key_file("client", agency_dir, key_path, role=role, name=name, out_path=out_path, days=days, password_file=password_file,
                        force=force, as_json=as_json, peer_id=lambda: "")


def _issue_for_key_file(kind: str, agency_dir: str, key_path: str, *, role: str, name: str, out_path: str, days: int,
                        password_file: str | None, force: bool, as_json: bool, peer_id: Callable[[], str]) -> None:
    """issue-node and issue-client: certify a key file's public key under an agency and write
    the PEM chain. `peer_id` runs after the cheap checks (a node's may ask for its key's password)."""
    days = _days(days, LEAF_DAYS_DEFAULT)
    out = Path(out_path)
    _check_out(out, force)
    suite, public_key = _read_public_key(key_path)
    agency = _open_issuer(agency_dir, "agency")
    _check_suite(suite, agency, key_path, f"make the {kind} key with `chainnode keygen --suite {agency.cert.suite}` (--key)")
    leaf_peer_id = peer_id()
    agency_key = agency.unlock(read_password(password_file, confirm=False))
    chain, capped = _certify_leaf(agency, agency_key, role=role, name=name, public_key=public_key, peer_id=leaf_peer_id, days=days)
    _write(out, chain.to_pem(), "--out", overwrite=force)
    _emit_leaf(chain, out, capped, as_json)


@ca_group.command("sign-csr")
@click.option("--csr", "csr_path", type=click.Path(dir_okay=False), help="The PKCS#10 request (PEM or DER), from `openssl req -new`.")
@click.option("--request", "request_path", type=click.Path(dir_okay=False),
              help="Or a node's request file (`chainnode init --request`): its CSR, role and peer id, checked against its signature.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PEM chain.")
@click.option("--agency-dir", type=click.Path(file_okay=False), help="Issue a node or client certificate under this agency (with --role).")
@click.option("--ca-dir", type=click.Path(file_okay=False), help="Issue an agency certificate for a member under this root CA.")
@click.option("--role", type=click.Choice(NODE_ROLES + CLIENT_ROLES), help="With --agency-dir: the node's or client's role.")
@click.option("--peer-id", default=None, help="With a node role: the node's libp2p peer id (`chainnode key show NODE.key --peer-id`).")
@click.option("--name", default=None, help="The certificate's name (CN); default: the CN of the request.")
@click.option("--days", type=int, default=None, help=f"Validity in days (default {LEAF_DAYS_DEFAULT}, for an agency {AGENCY_DAYS_DEFAULT}; "
                                                      f"capped at the issuer's).")
@_password_option
@_force_option
@_json_option
def sign_csr(csr_path, request_path, out_path, agency_dir, ca_dir, role, peer_id, name, days, password_file, force, as_json) -> None:
    """Certify the key of a certificate request: the key stays where it was made (an institution's machine or HSM)."""
    if (csr_path is None) == (request_path is None):
        raise _fail("pass --csr (a PKCS#10 request) or --request (a node's request from `chainnode init --request`), one of them")
    node_request = None
    if request_path is not None:
        from chainnode.node.ceremony import CeremonyError, read_request

        try:
            node_request = read_request(Path(request_path))
        except CeremonyError as exc:
            raise _fail(str(exc)) from None
        if ca_dir is not None:
            raise _fail("--request is a node's request: sign it with its agency (--agency-dir), not the root CA")
        if role is not None and role != node_request.role:
            raise _fail(f"{request_path} asks for the role {node_request.role}, not {role}; leave out --role or ask the member for a new request")
        if peer_id is not None and peer_id != node_request.peer_id:
            raise _fail(f"{request_path} names peer id {node_request.peer_id}; leave out --peer-id")
        role, peer_id = node_request.role, node_request.peer_id
    if (agency_dir is None) == (ca_dir is None):
        raise _fail("pass --agency-dir (for a node or client certificate) or --ca-dir (for an agency certificate), one of them")
    if ca_dir is not None and (role or peer_id):
        raise _fail("--role and --peer-id go with --agency-dir; an agency certificate (--ca-dir) has neither")
    if agency_dir is not None and role is None:
        raise _fail(f"--agency-dir needs --role: one of {', '.join(NODE_ROLES + CLIENT_ROLES)}")
    days = _days(days, AGENCY_DAYS_DEFAULT if ca_dir else LEAF_DAYS_DEFAULT)
    out = Path(out_path)
    _check_out(out, force)
    request = _read_csr(csr_path) if node_request is None else load_csr(node_request.csr_der)
    csr_path = csr_path or request_path
    issuer = _open_issuer(ca_dir or agency_dir, "ca" if ca_dir else "agency")
    suite = issuer.cert.suite
    _check_suite(request.suite, issuer, csr_path, f"make the key with `{_OPENSSL_KEY[suite]}` and the request with `{_OPENSSL_REQ[suite]}` (--csr)")
    if ca_dir is not None:
        ca_key = issuer.unlock(read_password(password_file, confirm=False))
        cert, capped = _certify_agency(issuer, ca_key, name=name or request.common_name, organisation=request.organisation,
                                       public_key=request.public_key, days=days)
        _write(out, cert_pem(cert) + cert_pem(issuer.cert), "--out", overwrite=force)
        rid = cert.revocation_id(issuer.cert).hex()
        emit(as_json, {"chain": str(out), "capped": capped, "revocation_id": rid, **cert.describe()},
             [f"wrote {out} (agency {cert.subject} <- {issuer.cert.subject})", *_cert_lines(cert), f"  revocation id: {rid}",
              *_capped_line(capped, cert, "CA")])
        return
    # A leaf carries its agency's O (docs/certificates.md, "Profile"): a request that asks for
    # another is a request for another agency, not a typo to paper over.
    if request.organisation != issuer.cert.organisation:
        raise _fail(f"agency mismatch: {csr_path} asks for organisation {request.organisation!r}, but the agency in {issuer.dir} is "
                    f"{issuer.cert.organisation!r}; make the request with -subj '/CN={request.common_name}/O={issuer.cert.organisation}' "
                    f"(--csr), or pass the --agency-dir of {request.organisation!r}")
    if role in NODE_ROLES and peer_id is None:
        raise _fail("a node certificate names the node's peer id: pass --peer-id (`chainnode key show NODE.key --peer-id` prints it)")
    if role in CLIENT_ROLES and peer_id is not None:
        raise _fail(f"--peer-id goes with a node role ({', '.join(NODE_ROLES)}); a client certificate names no peer id")
    peer_id = _checked_peer_id(peer_id) if peer_id is not None else ""
    agency_key = issuer.unlock(read_password(password_file, confirm=False))
    chain, capped = _certify_leaf(issuer, agency_key, role=role, name=name or request.common_name, public_key=request.public_key,
                                  peer_id=peer_id, days=days)
    _write(out, chain.to_pem(), "--out", overwrite=force)
    _emit_leaf(chain, out, capped, as_json)


def _existing_crl(crl_file: Path, issuer: _Issuer) -> RevocationList | None:
    """The issuer's current list, None if it has none yet; one signed by anyone else is
    refused, or we would extend someone else's list under this issuer's name."""
    if not crl_file.exists():
        return None
    try:
        crl = read_crl_file(crl_file)
        revoked_by(crl, issuer.cert)
    except CertificateError as exc:
        raise _refusal(_naming(crl_file, exc), f"pass as --crl the revocation list of {issuer.cert_path}, or a new file") from None
    return crl


@ca_group.command("revoke")
@click.option("--ca-dir", type=click.Path(file_okay=False), help="Revoke an agency certificate this CA issued (ca.key, ca.pem).")
@click.option("--agency-dir", type=click.Path(file_okay=False), help="Revoke a node or client certificate this agency issued.")
@click.option("--serial", required=True, help="Serial (hex) of the certificate to revoke, as `chainnode ca show` prints it.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="The revocation list file (default: DIR/revoked.crl).")
@_password_option
@_json_option
def revoke(ca_dir: str | None, agency_dir: str | None, serial: str, crl_path: str | None, password_file: str | None, as_json: bool) -> None:
    """Add a serial to the issuer's X.509 v2 revocation list (created if missing); the committee then puts it on chain."""
    if (agency_dir is None) == (ca_dir is None):
        raise _fail("pass --ca-dir (to revoke an agency certificate) or --agency-dir (to revoke a node or client certificate), one of them")
    number_serial = _parse_serial(serial)
    issuer = _open_issuer(ca_dir or agency_dir, "ca" if ca_dir else "agency")
    crl_file = Path(crl_path) if crl_path else issuer.dir / "revoked.crl"
    old = _existing_crl(crl_file, issuer)
    already = old is not None and number_serial in old.serials
    if already:
        crl = old  # nothing to sign: the list is left as it is
    else:
        key = issuer.unlock(read_password(password_file, confirm=False))
        serials = old.serials if old is not None else frozenset()
        number = (old.number or 0) + 1 if old is not None else 1  # cRLNumber grows with every list (RFC 5280 5.2.3)
        try:
            crl = issue_crl(issuer=issuer.cert.x509, issuer_priv=key.private_key, serials=serials | {number_serial}, number=number,
                            this_update_ms=_now_ms())
        except CertificateError as exc:
            raise _refusal(exc, "start a new list with another --crl") from None
        _write(crl_file, crl_to_pem(crl), "--crl", overwrite=True)
    rid = revocation_id(issuer.cert, number_serial).hex()
    next_step = f"chainnode gov propose revoke-cert --crl {crl_file} --issuer {issuer.cert_path} --key GOVERNOR.key"
    emit(
        as_json,
        {"crl": str(crl_file), "issuer": str(issuer.cert_path), "serial": f"{number_serial:x}", "revocation_id": rid, "already_revoked": already,
         "number": crl.number, "revoked": len(crl.serials), "next": next_step},
        [f"{'already revoked' if already else 'revoked'} {number_serial:x}: {crl_file} (list #{crl.number}, {len(crl.serials)} serial(s))",
         f"revocation id: {rid}",
         f"next: put it to the committee: `{next_step}`"],
    )


# ---- show ---------------------------------------------------------------------------------


def _read_input(path: str) -> bytes:
    try:
        return read_bounded(Path(path), noun="certificate file", max_bytes=FILE_BYTES_MAX, error=CertificateError)
    except CertificateError as exc:
        raise _refusal(exc, "pass the path of a certificate, chain or revocation list") from None


def _is_crl(raw: bytes) -> bool:
    """PEM says what it holds; DER is a revocation list if it parses as one (a certificate does not)."""
    if pem.detect(raw):
        return b"-----BEGIN X509 CRL-----" in raw
    try:
        load_crl(raw)
    except CertificateError:
        return False
    return True


def _read_roots(ca_path: str) -> list[Certificate]:
    try:
        return read_certs(ca_path)
    except CertificateError as exc:
        raise _refusal(exc, "pass as --ca the PEM file of the trusted root CA certificate(s), e.g. ca/ca.pem") from None


def _crl_signer(crl: RevocationList, crl_path: str, issuer_path: str | None, roots: list[Certificate], ca_path: str | None) -> Certificate:
    """Who signed the list: --issuer, else the root in --ca it names (a root's list revokes agencies)."""
    if issuer_path:
        try:
            return read_cert_file(issuer_path)
        except CertificateError as exc:
            raise _refusal(exc, "pass as --issuer the certificate of the CA or agency that signed the list") from None
    signer = next((r for r in roots if r.x509.subject_der == crl.issuer_der), None)
    if signer is None:
        raise _fail(f"{crl_path} was issued by {crl.issuer!r}, not by a root in {ca_path}; pass --issuer AGENCY.pem, the certificate "
                    f"that signed it")
    return signer


def _revoked_ids(crl_path: str, issuer_path: str | None, roots: list[Certificate], ca_path: str) -> frozenset[bytes]:
    try:
        crl = read_crl_file(crl_path)
    except CertificateError as exc:
        raise _refusal(exc, "pass as --crl an X.509 revocation list (`chainnode ca revoke` writes DIR/revoked.crl)") from None
    signer = _crl_signer(crl, crl_path, issuer_path, roots, ca_path)
    try:
        return revoked_by(crl, signer)
    except CertificateError as exc:
        raise _fail(f"{crl_path}: {exc}; pass as --issuer the certificate that signed it") from None


def _verify(certs: list[Certificate], path: str, roots: list[Certificate], ca_path: str, now_ms: int,
            revoked: frozenset[bytes]) -> tuple[str | None, Certificate | None]:
    """(None, the issuer of the file's first certificate) if it verifies against `roots` as a
    node would verify it, else (why not, None). What is verified depends on the first
    certificate: a root must be one of `roots`, an agency is one link, a leaf needs its chain."""
    first = certs[0]
    try:
        if any(r.der == first.der for r in roots):
            verify_root(first, now_ms)
            return None, None
        if first.kind == "ca":
            return f"wrong or missing CA: {first.label()} is a root, but not one of the roots in {ca_path}", None
        if first.x509.is_ca:
            return None, verify_agency(first, roots, now_ms, revoked)
        if len(certs) == 1:
            raise _fail(f"{path} holds only the {first.label()}; pass the chain file (leaf, then its agency) that issued it, or drop --ca "
                        f"to read the certificate")
        chain = CertChain.of(certs, path)
        verify_chain(chain, roots, now_ms, revoked)
        return None, chain.agency
    except CertificateError as exc:
        return str(exc), None


def _show_crl(path: str, ca_path: str | None, issuer_path: str | None, as_json: bool) -> None:
    """A revocation list's fields; with --issuer (or --ca for a root's list), its signature."""
    try:
        crl = read_crl_file(path)
    except CertificateError as exc:
        raise _refusal(exc, "pass the path of a certificate, chain or revocation list") from None
    serials = sorted(crl.serials)
    data = {"file": path, "type": "revocation list", "issuer": crl.issuer, "number": crl.number, "this_update": format_ms(crl.this_update_ms),
            "revoked": [f"{s:x}" for s in serials]}
    lines = [f"revocation list #{crl.number} of {crl.issuer!r}, issued {format_ms(crl.this_update_ms)}, {len(serials)} serial(s)"]
    if not (issuer_path or ca_path):
        emit(as_json, data, lines + [f"  {s:x}" for s in serials])
        return
    signer = _crl_signer(crl, path, issuer_path, _read_roots(ca_path) if ca_path else [], ca_path)
    try:
        revoked_by(crl, signer)
    except CertificateError as exc:
        data.update(valid=False, reason=str(exc))
        _emit_verdict(as_json, data, lines + [f"  {s:x}" for s in serials], str(exc))
        return
    # Verified, so each serial's on-chain name is known: what `gov propose revoke-cert` takes.
    ids = [revocation_id(signer, s).hex() for s in serials]
    data.update(valid=True, revocation_ids=ids)
    _emit_verdict(as_json, data, lines + [f"  {s:x}  (revocation id {i})" for s, i in zip(serials, ids)], None)


def _emit_verdict(as_json: bool, data: dict, lines: list[str], reason: str | None) -> None:
    emit(as_json, data, lines + ["valid" if reason is None else f"INVALID: {reason}"])
    if reason is not None:
        raise SystemExit(1)


@ca_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--ca", "ca_path", type=click.Path(dir_okay=False), help="Verify against the trusted root CA certificate(s) in this PEM file.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="With --ca: also refuse what this revocation list revokes.")
@click.option("--issuer", "issuer_path", type=click.Path(dir_okay=False),
              help="The certificate of the CA or agency that signed --crl (or PATH, a list); default: the root in --ca it names.")
@click.option("--now-ms", type=int, default=None, hidden=True, help="Verify as of this time (tests).")
@_json_option
def show(path: str, ca_path: str | None, crl_path: str | None, issuer_path: str | None, now_ms: int | None, as_json: bool) -> None:
    """Print a certificate, chain or revocation list; with --ca, verify it ("valid" or "INVALID: reason", exit 1)."""
    if _is_crl(_read_input(path)):
        if crl_path:
            raise _fail(f"{path} is itself a revocation list; --crl goes with a certificate or chain (--issuer checks the list's signature)")
        _show_crl(path, ca_path, issuer_path, as_json)
        return
    if crl_path and not ca_path:
        raise _fail("--crl needs --ca: a revocation list counts only for a certificate verified against a trusted root")
    if issuer_path and not crl_path:
        raise _fail("--issuer names the signer of --crl; pass --crl too")
    try:
        certs = read_certs(path)
    except CertificateError as exc:
        raise _refusal(exc, "pass the path of a certificate, chain or revocation list") from None
    data: dict = {"file": path, "type": "chain" if len(certs) > 1 else "certificate", "certificates": [c.describe() for c in certs]}
    if len(certs) > 1:  # top down, as operators read a hierarchy
        lines = [f"chain {path} (top down):", *[line for c in reversed(certs) for line in _cert_lines(c, "  ")]]
    else:
        lines = _cert_lines(certs[0])
    # The revocation id needs the issuer's key: the one verified against --ca, else the one the file carries.
    issuer = certs[1] if len(certs) > 1 and certs[1].x509.subject_der == certs[0].x509.issuer_der else None
    reason = None
    if ca_path is not None:
        roots = _read_roots(ca_path)
        revoked = _revoked_ids(crl_path, issuer_path, roots, ca_path) if crl_path else frozenset()
        reason, verified_issuer = _verify(certs, path, roots, ca_path, now_ms if now_ms is not None else _now_ms(), revoked)
        issuer = verified_issuer or issuer
    if issuer is not None:
        data["revocation_id"] = certs[0].revocation_id(issuer).hex()
        lines.append(f"revocation id of the {certs[0].label()}: {data['revocation_id']}")
    if ca_path is None:
        emit(as_json, data, lines)
        return
    data["valid"] = reason is None
    if reason is not None:
        data["reason"] = reason
    _emit_verdict(as_json, data, lines, reason)

"""`chainnode ca`: the consortium certificate hierarchy from the command line, in X.509 PEM.

    chainnode ca init --name "Consortium CA" --out-dir ca/
    chainnode ca issue-agency --ca-dir ca/ --name "Bank A" --out-dir agency-a/
    chainnode ca issue-node --agency-dir agency-a/ --key node0.key --role sealer --name node0 --out node0.pem
    chainnode ca issue-client --agency-dir agency-a/ --key alice.key --role user --name alice --out alice.pem
    chainnode ca sign-csr --agency-dir agency-a/ --csr node0.csr --role sealer --peer-id 12D3KooW... --out node0.pem
    chainnode ca sign-csr --ca-dir ca/ --csr bank-b.csr --out bank-b-agency.pem
    chainnode ca revoke --agency-dir agency-a/ --serial 1f2e...
    chainnode ca show node0.pem --ca ca/ca.pem --crl agency-a/revoked.crl --issuer agency-a/agency.pem

Directory layout (as FISCO BCOS's build_chain.sh lays out ca/ and agency dirs):
    ca/ca.key, ca/ca.pem, ca/revoked.crl
    agency-a/agency.key, agency-a/agency.pem, agency-a/ca.pem (a copy of the CA that issued it), agency-a/revoked.crl

Certificates, chains and revocation lists are the X.509 PEM that `openssl x509`, `openssl
verify` and `openssl crl` read (docs/certificates.md). Every failure is one line that names
the file that is wrong and the flag that fixes it.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click

from chainnode.cli.common import PASSWORD_ENV, emit, read_password
from chainnode.crypto import SUITE_NAMES, CryptoUnavailable, get_suite
from chainnode.protocol.hexstr import parse_hex
from chainnode.security.certs import (
    CLIENT_ROLES,
    NODE_ROLES,
    CertChain,
    Certificate,
    CertificateError,
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
from chainnode.security.x509 import load_csr
from chainnode.store.files import read_bounded

DAY_MS = 86_400_000
CA_DAYS_DEFAULT = 3650
AGENCY_DAYS_DEFAULT = 1825
LEAF_DAYS_DEFAULT = 365
DAYS_MAX = 36500  # keeps not_after_ms far inside uint64 whatever an operator types


def _now_ms() -> int:
    return int(time.time() * 1000)


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


def _password_option(fn):
    return click.option(
        "--password-file",
        type=click.Path(dir_okay=False),
        help=f"Password of the issuer's key (else ${PASSWORD_ENV}, else a prompt).",
    )(fn)


_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
_scrypt_option = click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True, help="scrypt cost (tests use a small one).")


def _days(days: int, flag: str) -> int:
    if not 1 <= days <= DAYS_MAX:
        raise _fail(f"{flag} {days}: choose between 1 and {DAYS_MAX} days")
    return days


@dataclass(frozen=True)
class _Issuer:
    """An issuer's key and certificate, loaded and checked to belong together, and the root
    it chains to (itself for a CA)."""

    key: KeyPair
    cert: Certificate
    root: Certificate
    dir: Path
    name: str  # "ca" or "agency": the file names in dir

    @property
    def cert_path(self) -> Path:
        return self.dir / f"{self.name}.pem"


def _load_key_for(cert: Certificate, key_path: Path, password_file: str | None, dir_flag: str) -> KeyPair:
    try:
        read_key_file(key_path)  # a missing key file is reported before asking for a password
        key = load_key(key_path, read_password(password_file, confirm=False))
    except KeyFileError as exc:
        raise _fail(f"{exc} (check {dir_flag} and --password-file)") from None
    if key.public_key != cert.public_key:
        raise _fail(f"{key_path} does not belong to the certificate beside it ({cert.label()}); pass the {dir_flag} that holds both")
    return key


def _read_one(path: Path, flag: str, what: str) -> Certificate:
    try:
        return read_cert_file(path)
    except CertificateError as exc:
        raise _fail(f"{exc}; pass the {flag} that holds {what}") from None


def _load_ca(ca_dir: str, password_file: str | None) -> _Issuer:
    d = Path(ca_dir)
    ca = _read_one(d / "ca.pem", "--ca-dir", "ca.pem")
    try:
        verify_root(ca, _now_ms())
    except CertificateError as exc:
        raise _fail(f"{d / 'ca.pem'}: {exc}") from None
    return _Issuer(_load_key_for(ca, d / "ca.key", password_file, "--ca-dir"), ca, ca, d, "ca")


def _load_agency(agency_dir: str, password_file: str | None) -> _Issuer:
    """The agency key and certificate, and the root beside them, checked as a chain now."""
    d = Path(agency_dir)
    ca = _read_one(d / "ca.pem", "--agency-dir", "the consortium's ca.pem (copy it there)")
    agency = _read_one(d / "agency.pem", "--agency-dir", "agency.pem")
    try:
        verify_agency(agency, [ca], _now_ms())
    except CertificateError as exc:
        raise _fail(f"{d / 'agency.pem'} or {d / 'ca.pem'}: {exc}; copy the ca.pem of the CA that issued the agency into {d}") from None
    return _Issuer(_load_key_for(agency, d / "agency.key", password_file, "--agency-dir"), agency, ca, d, "agency")


def _validity(days: int, issuer: Certificate) -> tuple[int, int, bool]:
    """A window starting now, capped at the issuer's own expiry: a certificate that outlives
    its issuer would be refused anyway on the day the issuer expires."""
    not_before_ms = _now_ms()
    not_after_ms = not_before_ms + days * DAY_MS
    capped = not_after_ms > issuer.not_after_ms
    return not_before_ms, min(not_after_ms, issuer.not_after_ms), capped


def _new_key(suite: str, out: Path, password: str, scrypt_n: int) -> KeyPair:
    s = get_suite(suite)
    priv, pub = s.generate_keypair()
    write_key_file(out, encrypt_key(suite, priv, password, scrypt_n=scrypt_n))
    return KeyPair(suite, priv, pub, s.address(pub))


def _prepare_out_dir(out_dir: str, names: tuple[str, ...]) -> Path:
    d = Path(out_dir)
    if d.exists() and not d.is_dir():
        raise _fail(f"{d} is a file; choose a directory with --out-dir")
    for name in names:
        if (d / name).exists():
            raise _fail(f"{d / name} already exists; choose another --out-dir, or delete it if you are sure")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _check_out(out: Path, force: bool) -> None:
    if out.exists() and not force:
        raise _fail(f"{out} already exists; choose another --out, or pass --force")


def _cert_lines(cert: Certificate, indent: str = "") -> list[str]:
    x = cert.x509
    lines = [f"{indent}{cert.kind or 'end-entity (no chainnode role)'}: {cert.subject}", f"{indent}  organisation: {cert.organisation}"]
    if cert.role:
        lines.append(f"{indent}  role:         {cert.role}")
    if cert.peer_id:
        lines.append(f"{indent}  peer id:      {cert.peer_id}")
    lines += [
        f"{indent}  serial:       {cert.serial:x}",
        f"{indent}  suite:        {cert.suite}",
        f"{indent}  valid:        {format_ms(cert.not_before_ms)} .. {format_ms(cert.not_after_ms)}",
        f"{indent}  subject:      {x.subject}",
        f"{indent}  issuer:       {x.issuer}{' (self-issued)' if x.subject_der == x.issuer_der else ''}",
        f"{indent}  CA:           {'yes' if x.is_ca else 'no'}"
        + (f", path length {x.path_length}" if x.is_ca and x.path_length is not None else ""),
        f"{indent}  key usage:    {', '.join(sorted(x.key_usage)) or '(none)'}",
        f"{indent}  public key:   {cert.public_key.hex()}",
    ]
    return lines


def _genesis_lines(cert: Certificate) -> list[str]:
    return [f"for the genesis file (docs/certificates.md): \"ca_certs\": [\"{cert.der.hex()}\"]"]


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
    _days(days, "--days")
    d = _prepare_out_dir(out_dir, ("ca.key", "ca.pem"))
    password = read_password(password_file, confirm=True)
    try:
        key = _new_key(suite, d / "ca.key", password, scrypt_n)
        not_before_ms = _now_ms()
        cert = issue(kind="ca", subject=name, organisation=org or name, role="", public_key=key.public_key, peer_id="", suite=suite,
                     not_before_ms=not_before_ms, not_after_ms=not_before_ms + days * DAY_MS, issuer_priv=key.private_key, issuer=None)
        write_pem(d / "ca.pem", cert_pem(cert))
    except (CertificateError, KeyFileError, CryptoUnavailable) as exc:
        raise _fail(f"{exc} (check --name and --out-dir)") from None
    emit(
        as_json,
        {"key": str(d / "ca.key"), "cert": str(d / "ca.pem"), "genesis_ca_cert_hex": cert.der.hex(), **cert.describe()},
        [f"wrote {d / 'ca.key'} and {d / 'ca.pem'}", *_cert_lines(cert), *_genesis_lines(cert)],
    )


def _write_agency(ca: _Issuer, agency: Certificate, d: Path) -> None:
    write_pem(d / "agency.pem", cert_pem(agency))
    # The agency keeps the CA certificate beside its own: issue-node builds chains from it.
    shutil.copyfile(ca.cert_path, d / "ca.pem")


@ca_group.command("issue-agency")
@click.option("--ca-dir", required=True, type=click.Path(file_okay=False), help="The CA's directory (ca.key, ca.pem).")
@click.option("--name", required=True, help='The agency (organisation) name, e.g. "Bank A".')
@click.option("--org", default=None, help="Its organisation (O), which its nodes and clients carry; default: the name.")
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where to write agency.key, agency.pem and ca.pem.")
@click.option("--days", type=int, default=AGENCY_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the CA's).")
@_password_option
@click.option("--out-password-file", type=click.Path(dir_okay=False), help="Password for the new agency key (default: the same as the CA key's).")
@_scrypt_option
@_json_option
def issue_agency(ca_dir: str, name: str, org: str | None, out_dir: str, days: int, password_file: str | None, out_password_file: str | None,
                 scrypt_n: int, as_json: bool) -> None:
    """Create an agency key and a CA certificate for it (pathlen 0) signed by the root."""
    _days(days, "--days")
    ca = _load_ca(ca_dir, password_file)
    d = _prepare_out_dir(out_dir, ("agency.key", "agency.pem", "ca.pem"))
    password = read_password(out_password_file, confirm=True) if out_password_file else read_password(password_file, confirm=False)
    not_before_ms, not_after_ms, capped = _validity(days, ca.cert)
    try:
        key = _new_key(ca.cert.suite, d / "agency.key", password, scrypt_n)
        cert = issue(kind="agency", subject=name, organisation=org or name, role="", public_key=key.public_key, peer_id="", suite=ca.cert.suite,
                     not_before_ms=not_before_ms, not_after_ms=not_after_ms, issuer_priv=ca.key.private_key, issuer=ca.cert)
        _write_agency(ca, cert, d)
    except (CertificateError, KeyFileError, CryptoUnavailable) as exc:
        raise _fail(f"{exc} (check --name and --out-dir)") from None
    lines = [f"wrote {d / 'agency.key'}, {d / 'agency.pem'} and {d / 'ca.pem'}", *_cert_lines(cert)]
    if capped:
        lines.append(f"note: validity capped at the CA's expiry ({format_ms(not_after_ms)})")
    emit(as_json, {"key": str(d / "agency.key"), "cert": str(d / "agency.pem"), "capped": capped, **cert.describe()}, lines)


def _issue_leaf(agency: _Issuer, *, kind: str, public_key: bytes, suite: str, role: str, name: str, peer_id: str, days: int, out: Path,
                force: bool, as_json: bool) -> None:
    """Issue a node or client certificate under `agency`, check the chain as a node would,
    and write it as PEM [leaf, agency, root]."""
    if suite != agency.cert.suite:
        raise _fail(f"the key is a {suite} key but {agency.cert_path} is for suite {agency.cert.suite}; "
                    f"create the key with `chainnode keygen --suite {agency.cert.suite}`")
    not_before_ms, not_after_ms, capped = _validity(days, agency.cert)
    try:
        cert = issue(kind=kind, subject=name, organisation=agency.cert.organisation, role=role, public_key=public_key, peer_id=peer_id,
                     suite=suite, not_before_ms=not_before_ms, not_after_ms=not_after_ms, issuer_priv=agency.key.private_key, issuer=agency.cert)
        chain = CertChain(cert, agency.cert, agency.root)
        verify_chain(chain, [agency.root], _now_ms())  # never hand out a chain a node would refuse
        write_pem(out, chain.to_pem(), overwrite=force)
    except CertificateError as exc:
        raise _fail(f"{exc} (check --name, --role and the key)") from None
    lines = [f"wrote {out} (chain: {cert.subject} <- {agency.cert.subject} <- {agency.root.subject})", *_cert_lines(cert),
             f"  revocation id: {cert.revocation_id(agency.cert).hex()}"]
    if capped:
        lines.append(f"note: validity capped at the agency's expiry ({format_ms(not_after_ms)})")
    emit(as_json, {"chain": str(out), "capped": capped, "revocation_id": cert.revocation_id(agency.cert).hex(), **cert.describe()}, lines)


def _key_file_public(key_path: str) -> tuple[str, bytes, dict]:
    try:
        doc = read_key_file(key_path)
        return doc.get("suite"), parse_hex(doc["public_key"]), doc
    except KeyFileError as exc:
        raise _fail(f"{exc} (check --key)") from None
    except (KeyError, TypeError, ValueError):
        raise _fail(f"{key_path}: malformed public_key; regenerate it with `chainnode keygen` (--key)") from None


def _checked_peer_id(peer_id: str) -> str:
    try:
        check_peer_id(peer_id)
    except ValueError as exc:
        raise _fail(f"--peer-id: {exc}") from None
    return peer_id


@ca_group.command("issue-node")
@click.option("--agency-dir", required=True, type=click.Path(file_okay=False), help="The agency's directory (agency.key, agency.pem, ca.pem).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The node's key file (its consensus key).")
@click.option("--role", required=True, type=click.Choice(NODE_ROLES), help="sealer (votes in PBFT) or observer (syncs only).")
@click.option("--name", required=True, help="The node's name, e.g. node0.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PEM chain [node, agency, CA].")
@click.option("--peer-id", default=None, help="The node's libp2p peer id; if omitted, derived from --key (needs its password).")
@click.option("--days", type=int, default=LEAF_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the agency's).")
@_password_option
@click.option("--key-password-file", type=click.Path(dir_okay=False), help=f"Password of the node key, to derive its peer id (else ${PASSWORD_ENV}).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@_json_option
def issue_node(agency_dir, key_path, role, name, out_path, peer_id, days, password_file, key_password_file, force, as_json) -> None:
    """Certify a node's consensus key and peer id; writes the PEM chain [node, agency, CA]."""
    _days(days, "--days")
    _check_out(Path(out_path), force)
    suite, public_key, _ = _key_file_public(key_path)
    agency = _load_agency(agency_dir, password_file)
    if peer_id is not None:
        peer_id = _checked_peer_id(peer_id)
    else:
        # The peer id is derived from the consensus private key (network/identity.py), so
        # without --peer-id we need the node key's password once.
        from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed

        try:
            node_key = load_key(key_path, read_password(key_password_file, confirm=False))
        except KeyFileError as exc:
            raise _fail(f"{exc} (check --key and --key-password-file, or pass --peer-id)") from None
        peer_id = peer_id_from_seed(host_seed_from_consensus_key(get_suite(node_key.suite), node_key.private_key))
    _issue_leaf(agency, kind="node", public_key=public_key, suite=suite, role=role, name=name, peer_id=peer_id, days=days, out=Path(out_path),
                force=force, as_json=as_json)


@ca_group.command("issue-client")
@click.option("--agency-dir", required=True, type=click.Path(file_okay=False), help="The agency's directory (agency.key, agency.pem, ca.pem).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The client's key file (public part only is read).")
@click.option("--role", required=True, type=click.Choice(CLIENT_ROLES), help="user, governor, regulator or auditor (read-only).")
@click.option("--name", required=True, help="The client's name.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PEM chain [client, agency, CA].")
@click.option("--days", type=int, default=LEAF_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the agency's).")
@_password_option
@click.option("--force", is_flag=True, help="Overwrite --out.")
@_json_option
def issue_client(agency_dir, key_path, role, name, out_path, days, password_file, force, as_json) -> None:
    """Certify a client's (SDK user's) key; writes the PEM chain [client, agency, CA]."""
    _days(days, "--days")
    _check_out(Path(out_path), force)
    suite, public_key, _ = _key_file_public(key_path)
    agency = _load_agency(agency_dir, password_file)
    _issue_leaf(agency, kind="client", public_key=public_key, suite=suite, role=role, name=name, peer_id="", days=days, out=Path(out_path),
                force=force, as_json=as_json)


@ca_group.command("sign-csr")
@click.option("--csr", "csr_path", required=True, type=click.Path(dir_okay=False), help="The PKCS#10 request (PEM or DER), e.g. from `openssl req -new`.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the PEM chain.")
@click.option("--agency-dir", type=click.Path(file_okay=False), help="Issue a node or client certificate under this agency (with --role).")
@click.option("--ca-dir", type=click.Path(file_okay=False), help="Issue an agency certificate for a member under this root CA.")
@click.option("--role", type=click.Choice(NODE_ROLES + CLIENT_ROLES), help="With --agency-dir: the node's or client's role.")
@click.option("--peer-id", default=None, help="With a node role: the node's libp2p peer id (`chainnode key show --peer-id`).")
@click.option("--name", default=None, help="The certificate's name (CN); default: the CN of the request.")
@click.option("--days", type=int, default=None, help="Validity in days (capped at the issuer's).")
@_password_option
@click.option("--force", is_flag=True, help="Overwrite --out.")
@_json_option
def sign_csr(csr_path, out_path, agency_dir, ca_dir, role, peer_id, name, days, password_file, force, as_json) -> None:
    """Sign a certificate request: the key stays where it was made (an institution's machine or HSM)."""
    if (agency_dir is None) == (ca_dir is None):
        raise _fail("pass --agency-dir (a node or client certificate) or --ca-dir (an agency certificate), one of them")
    out = Path(out_path)
    _check_out(out, force)
    try:
        request = load_csr(read_bounded(Path(csr_path), noun="certificate request", max_bytes=65536, error=CertificateError))
    except CertificateError as exc:
        raise _fail(f"{csr_path}: {exc} (--csr)") from None
    if ca_dir is not None:
        if role or peer_id:
            raise _fail("--role and --peer-id go with --agency-dir; an agency certificate has no role")
        _days(days or AGENCY_DAYS_DEFAULT, "--days")
        ca = _load_ca(ca_dir, password_file)
        if request.suite != ca.cert.suite:
            raise _fail(f"{csr_path} is for a {request.suite} key but {ca.cert_path} is for suite {ca.cert.suite}")
        not_before_ms, not_after_ms, _ = _validity(days or AGENCY_DAYS_DEFAULT, ca.cert)
        try:
            cert = issue(kind="agency", subject=name or request.common_name, organisation=request.organisation, role="",
                         public_key=request.public_key, peer_id="", suite=ca.cert.suite, not_before_ms=not_before_ms, not_after_ms=not_after_ms,
                         issuer_priv=ca.key.private_key, issuer=ca.cert)
            write_pem(out, cert_pem(cert) + cert_pem(ca.cert), overwrite=force)
        except CertificateError as exc:
            raise _fail(f"{exc} (check --csr and --name)") from None
        emit(as_json, {"chain": str(out), **cert.describe()}, [f"wrote {out} (agency {cert.subject} <- {ca.cert.subject})", *_cert_lines(cert)])
        return
    if role is None:
        raise _fail("--agency-dir needs --role: " + ", ".join(NODE_ROLES + CLIENT_ROLES))
    _days(days or LEAF_DAYS_DEFAULT, "--days")
    agency = _load_agency(agency_dir, password_file)
    if request.organisation != agency.cert.organisation:
        raise _fail(f"agency mismatch: {csr_path} asks for organisation {request.organisation!r}, but the agency in {agency_dir} is "
                    f"{agency.cert.organisation!r}; make the request with -subj '/CN={request.common_name}/O={agency.cert.organisation}'")
    kind = "node" if role in NODE_ROLES else "client"
    if kind == "node" and peer_id is None:
        raise _fail("a node certificate names the node's peer id: pass --peer-id (`chainnode key show NODE.key --peer-id` prints it)")
    if kind == "client" and peer_id is not None:
        raise _fail("--peer-id goes with a node role; a client certificate names no peer id")
    _issue_leaf(agency, kind=kind, public_key=request.public_key, suite=request.suite, role=role, name=name or request.common_name,
                peer_id=_checked_peer_id(peer_id) if peer_id else "", days=days or LEAF_DAYS_DEFAULT, out=out, force=force, as_json=as_json)


@ca_group.command("revoke")
@click.option("--ca-dir", type=click.Path(file_okay=False), help="Revoke an agency certificate this CA issued (ca.key, ca.pem).")
@click.option("--agency-dir", type=click.Path(file_okay=False), help="Revoke a node or client certificate this agency issued.")
@click.option("--serial", required=True, help="Serial (hex) of the certificate to revoke, as `ca show` prints it.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="The revocation list file (default: DIR/revoked.crl).")
@_password_option
@_json_option
def revoke(ca_dir: str | None, agency_dir: str | None, serial: str, crl_path: str | None, password_file: str | None, as_json: bool) -> None:
    """Add a serial to the issuer's X.509 v2 revocation list (created if missing)."""
    if (agency_dir is None) == (ca_dir is None):
        raise _fail("pass --ca-dir (to revoke an agency) or --agency-dir (to revoke a node or client), one of them")
    text = serial.strip().lower().removeprefix("0x")
    if not text or len(text) > 40 or any(c not in "0123456789abcdef" for c in text) or int(text, 16) == 0:
        raise _fail(f"--serial {serial!r}: a serial is 1 to 40 hex digits, not zero; copy it from `chainnode ca show`")
    number_serial = int(text, 16)
    issuer = _load_ca(ca_dir, password_file) if ca_dir else _load_agency(agency_dir, password_file)
    crl_file = Path(crl_path) if crl_path else issuer.dir / "revoked.crl"
    serials: frozenset[int] = frozenset()
    number = 0
    if crl_file.exists():
        try:
            old = read_crl_file(crl_file)
            revoked_by(old, issuer.cert)  # signed by this issuer, or we would be extending someone else's list
        except CertificateError as exc:
            raise _fail(f"{crl_file}: {exc}; pass the --crl of this issuer") from None
        serials, number = old.serials, old.number or 0
    already = number_serial in serials
    try:
        crl = issue_crl(issuer=issuer.cert.x509, issuer_priv=issuer.key.private_key, serials=serials | {number_serial}, number=number + 1,
                        this_update_ms=_now_ms())
        write_pem(crl_file, crl_to_pem(crl), overwrite=True)
    except CertificateError as exc:
        raise _fail(f"{crl_file}: {exc}") from None
    rid = revocation_id(issuer.cert, number_serial)
    emit(
        as_json,
        {"crl": str(crl_file), "serial": f"{number_serial:x}", "revocation_id": rid.hex(), "already_revoked": already, "number": crl.number,
         "revoked": len(crl.serials)},
        [f"{'already revoked' if already else 'revoked'} {number_serial:x}: {crl_file} (list #{crl.number}, {len(crl.serials)} serials)",
         f"revocation id: {rid.hex()}",
         f"next: put it to the committee: `chainnode gov propose revoke-cert --crl {crl_file} --issuer {issuer.cert_path} --key GOVERNOR.key`"],
    )


@ca_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--ca", "ca_path", type=click.Path(dir_okay=False), help="Verify against the trusted root CA certificate(s) in this PEM file.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="Also refuse what this revocation list revokes (with --issuer, or --ca for a root's).")
@click.option("--issuer", "issuer_path", type=click.Path(dir_okay=False), help="The certificate of the CA or agency that signed --crl.")
@click.option("--now-ms", type=int, default=None, hidden=True, help="Verify as of this time (tests).")
@_json_option
def show(path: str, ca_path: str | None, crl_path: str | None, issuer_path: str | None, now_ms: int | None, as_json: bool) -> None:
    """Print a certificate, chain or revocation list; with --ca, verify it ("valid" or the reason)."""
    if crl_path and not ca_path:
        raise _fail("--crl needs --ca: a revocation list counts only for a chain verified against a trusted root")
    data: dict
    raw = _read_file(path)
    if b"-----BEGIN X509 CRL-----" in raw:
        try:
            crl = load_crl(raw)
        except CertificateError as exc:
            raise _fail(f"{path}: {exc}") from None
        data = {"file": path, "type": "revocation list", "issuer": crl.issuer, "number": crl.number, "this_update": format_ms(crl.this_update_ms),
                "revoked": [f"{s:x}" for s in sorted(crl.serials)]}
        emit(as_json, data, [f"revocation list #{crl.number} of {crl.issuer!r}, issued {format_ms(crl.this_update_ms)}, {len(crl.serials)} serials",
                             *[f"  {s:x}" for s in sorted(crl.serials)]])
        return
    try:
        certs = read_certs(path)
    except CertificateError as exc:
        raise _fail(str(exc)) from None
    lines = [line for c in reversed(certs) for line in _cert_lines(c, "  " if len(certs) > 1 else "")]
    data = {"file": path, "type": "chain" if len(certs) > 1 else "certificate", "certificates": [c.describe() for c in certs]}
    if len(certs) > 1:
        rid = certs[0].revocation_id(certs[1]).hex()
        data["revocation_id"] = rid
        lines = [f"chain {path} (top down):", *lines, f"revocation id of {certs[0].label()}: {rid}"]
    if ca_path:
        reason = _verify_shown(certs, path, ca_path, crl_path, issuer_path, now_ms if now_ms is not None else _now_ms())
        data["valid"] = reason is None
        if reason is not None:
            data["reason"] = reason
        lines.append("valid" if reason is None else f"INVALID: {reason}")
        emit(as_json, data, lines)
        if reason is not None:
            raise SystemExit(1)
        return
    emit(as_json, data, lines)


def _read_file(path: str) -> bytes:
    try:
        return read_bounded(Path(path), noun="certificate file", max_bytes=4 << 20, error=CertificateError)
    except CertificateError as exc:
        raise _fail(str(exc)) from None


def _verify_shown(certs: list[Certificate], path: str, ca_path: str, crl_path: str | None, issuer_path: str | None, now_ms: int) -> str | None:
    """None if the file verifies against the roots in `ca_path` (and the list in `crl_path`), else why."""
    try:
        roots = read_certs(ca_path)
    except CertificateError as exc:
        raise _fail(f"wrong or missing CA: {exc} (--ca)") from None
    revoked: frozenset[bytes] = frozenset()
    if crl_path:
        try:
            signer = read_cert_file(issuer_path) if issuer_path else roots[0]
            revoked = revoked_by(read_crl_file(crl_path), signer)
        except CertificateError as exc:
            raise _fail(f"{crl_path}: {exc} (--crl / --issuer)") from None
    first = certs[0]
    try:
        if first.kind in ("node", "client") or (len(certs) > 1 and not first.x509.is_ca):
            verify_chain(CertChain.of(certs, path), roots, now_ms, revoked)
        elif first.x509.is_ca and any(r.der == first.der for r in roots):
            verify_root(first, now_ms)
        elif first.x509.is_ca:
            verify_agency(first, roots, now_ms, revoked)
        else:
            return f"{path} holds a lone {first.label()}: verify its chain file (leaf, then its agency) instead"
    except CertificateError as exc:
        return str(exc)
    return None

"""`chainnode ca`: the consortium certificate hierarchy from the command line.

    chainnode ca init --name "Consortium CA" --out-dir ca/
    chainnode ca issue-agency --ca-dir ca/ --name "Bank A" --out-dir agency-a/
    chainnode ca issue-node --agency-dir agency-a/ --key node0.key --role sealer --name node0 --out node0.chain
    chainnode ca issue-client --agency-dir agency-a/ --key alice.key --role user --name alice --out alice.chain
    chainnode ca revoke --ca-dir ca/ --serial 1f2e...
    chainnode ca show node0.chain --ca ca/ca.cert --crl ca/revoked.crl

Directory layout (as FISCO BCOS's build_chain.sh lays out ca/ and agency dirs):
    ca/ca.key, ca/ca.cert, ca/revoked.crl
    agency-a/agency.key, agency-a/agency.cert, agency-a/ca.cert (a copy of the CA that issued it)

Every failure is one line that names the file that is wrong and the flag that fixes it. The
format and the reasons are in docs/certificates.md.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import click

from chainnode.cli.common import PASSWORD_ENV, emit, read_password
from chainnode.crypto import SUITE_NAMES, CryptoUnavailable, get_suite
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.security.certs import (
    CLIENT_ROLES,
    NODE_ROLES,
    CertChain,
    Certificate,
    CertificateError,
    RevocationList,
    cert_document,
    chain_document,
    check_peer_id,
    crl_document,
    decode_document,
    format_ms,
    issue,
    read_cert_file,
    read_crl_file,
    read_document,
    verify_agency,
    verify_ca,
    verify_chain,
    write_document,
)
from chainnode.security.keyfile import SCRYPT_N_DEFAULT, KeyFileError, KeyPair, encrypt_key, load_key, read_key_file, write_key_file

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
    """An issuer's key and certificate, loaded and checked to belong together."""

    key: KeyPair
    cert: Certificate
    key_path: Path
    cert_path: Path


def _load_issuer(key_path: Path, cert_path: Path, password_file: str | None, dir_flag: str, kind: str) -> _Issuer:
    try:
        cert = read_cert_file(cert_path)
    except CertificateError as exc:
        raise _fail(f"{exc}; pass the {dir_flag} that holds {cert_path.name}") from None
    if cert.kind != kind:
        raise _fail(f"{cert_path} is a {cert.kind} certificate, not a {kind} certificate; check {dir_flag}")
    try:
        read_key_file(key_path)  # a missing key file is reported before asking for a password
        key = load_key(key_path, read_password(password_file, confirm=False))
    except KeyFileError as exc:
        raise _fail(f"{exc} (check {dir_flag} and --password-file)") from None
    if key.public_key != cert.public_key:
        what = "agency mismatch" if kind == "agency" else "wrong or missing CA"
        raise _fail(f"{what}: {key_path} does not belong to {cert_path} ({cert.subject!r}); pass the {dir_flag} that holds both")
    return _Issuer(key, cert, key_path, cert_path)


def _load_agency(agency_dir: str, password_file: str | None) -> tuple[_Issuer, Certificate]:
    """The agency key and cert, and the CA cert beside them, checked as a chain now."""
    d = Path(agency_dir)
    ca_path = d / "ca.cert"
    try:
        ca = read_cert_file(ca_path)
    except CertificateError as exc:
        raise _fail(f"wrong or missing CA: {exc}; copy the consortium's ca.cert into {d} (--agency-dir)") from None
    agency = _load_issuer(d / "agency.key", d / "agency.cert", password_file, "--agency-dir", "agency")
    try:
        verify_agency(agency.cert, ca, _now_ms())
    except CertificateError as exc:
        if str(exc).startswith("wrong or missing CA"):
            raise _fail(
                f"wrong or missing CA: {agency.cert_path} ({agency.cert.subject!r}) was not issued by the CA in {ca_path} "
                f"({ca.subject!r}); copy the ca.cert of the CA that issued it into {d}"
            ) from None
        raise _fail(f"{agency.cert_path} or {ca_path}: {exc}") from None
    return agency, ca


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


def _cert_lines(cert: Certificate, indent: str = "") -> list[str]:
    lines = [
        f"{indent}{cert.kind}: {cert.subject}",
        f"{indent}  organisation: {cert.organisation}",
    ]
    if cert.role:
        lines.append(f"{indent}  role:         {cert.role}")
    if cert.peer_id:
        lines.append(f"{indent}  peer id:      {cert.peer_id}")
    lines += [
        f"{indent}  serial:       {cert.serial.hex()}",
        f"{indent}  suite:        {cert.suite}",
        f"{indent}  valid:        {format_ms(cert.not_before_ms)} .. {format_ms(cert.not_after_ms)}",
        f"{indent}  issuer key:   {cert.issuer_key_hash.hex()}{' (self-signed)' if cert.is_self_signed else ''}",
        f"{indent}  public key:   {cert.public_key.hex()}",
    ]
    return lines


@click.group("ca")
def ca_group() -> None:
    """Consortium certificates: CA -> agency -> node / client (docs/certificates.md)."""


@ca_group.command("init")
@click.option("--name", required=True, help='The CA\'s name, e.g. "Consortium CA".')
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where to write ca.key and ca.cert.")
@click.option("--suite", type=click.Choice(SUITE_NAMES), default="sm", show_default=True, help="The chain's crypto suite.")
@click.option("--days", type=int, default=CA_DAYS_DEFAULT, show_default=True, help="Validity in days.")
@_password_option
@_scrypt_option
@_json_option
def ca_init(name: str, out_dir: str, suite: str, days: int, password_file: str | None, scrypt_n: int, as_json: bool) -> None:
    """Create the consortium CA: an encrypted key and a self-signed certificate."""
    _days(days, "--days")
    d = _prepare_out_dir(out_dir, ("ca.key", "ca.cert"))
    password = read_password(password_file, confirm=True)
    try:
        key = _new_key(suite, d / "ca.key", password, scrypt_n)
        not_before_ms = _now_ms()
        cert = issue(
            kind="ca", subject=name, organisation=name, role="", public_key=key.public_key, peer_id="", suite=suite,
            not_before_ms=not_before_ms, not_after_ms=not_before_ms + days * DAY_MS, issuer_priv=key.private_key,
        )
        write_document(d / "ca.cert", cert_document(cert))
    except (CertificateError, KeyFileError, CryptoUnavailable) as exc:
        raise _fail(f"{exc} (check --name and --out-dir)") from None
    emit(
        as_json,
        {"key": str(d / "ca.key"), "cert": str(d / "ca.cert"), "genesis_ca_cert": cert.encode().hex(), **cert.describe()},
        [
            f"wrote {d / 'ca.key'} and {d / 'ca.cert'}",
            *_cert_lines(cert),
            f"for the genesis file (docs/certificates.md): \"ca_cert\": \"{cert.encode().hex()}\"",
        ],
    )


@ca_group.command("issue-agency")
@click.option("--ca-dir", required=True, type=click.Path(file_okay=False), help="The CA's directory (ca.key, ca.cert).")
@click.option("--name", required=True, help='The agency (organisation) name, e.g. "Bank A".')
@click.option("--out-dir", required=True, type=click.Path(file_okay=False), help="Where to write agency.key, agency.cert and ca.cert.")
@click.option("--days", type=int, default=AGENCY_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the CA's).")
@_password_option
@click.option("--out-password-file", type=click.Path(dir_okay=False), help="Password for the new agency key (default: the same as the CA key's).")
@_scrypt_option
@_json_option
def issue_agency(ca_dir: str, name: str, out_dir: str, days: int, password_file: str | None, out_password_file: str | None, scrypt_n: int, as_json: bool) -> None:
    """Create an agency key and a certificate for it signed by the CA."""
    _days(days, "--days")
    cd = Path(ca_dir)
    ca = _load_issuer(cd / "ca.key", cd / "ca.cert", password_file, "--ca-dir", "ca")
    try:
        verify_ca(ca.cert, _now_ms())
    except CertificateError as exc:
        raise _fail(f"{ca.cert_path}: {exc}") from None
    d = _prepare_out_dir(out_dir, ("agency.key", "agency.cert", "ca.cert"))
    password = read_password(out_password_file, confirm=True) if out_password_file else read_password(password_file, confirm=False)
    not_before_ms, not_after_ms, capped = _validity(days, ca.cert)
    try:
        key = _new_key(ca.cert.suite, d / "agency.key", password, scrypt_n)
        cert = issue(
            kind="agency", subject=name, organisation=name, role="", public_key=key.public_key, peer_id="", suite=ca.cert.suite,
            not_before_ms=not_before_ms, not_after_ms=not_after_ms, issuer_priv=ca.key.private_key,
        )
        write_document(d / "agency.cert", cert_document(cert))
        # The agency keeps the CA certificate beside its own: issue-node builds chains from it.
        shutil.copyfile(ca.cert_path, d / "ca.cert")
    except (CertificateError, KeyFileError, CryptoUnavailable) as exc:
        raise _fail(f"{exc} (check --name and --out-dir)") from None
    lines = [f"wrote {d / 'agency.key'}, {d / 'agency.cert'} and {d / 'ca.cert'}", *_cert_lines(cert)]
    if capped:
        lines.append(f"note: validity capped at the CA's expiry ({format_ms(not_after_ms)})")
    emit(as_json, {"key": str(d / "agency.key"), "cert": str(d / "agency.cert"), "capped": capped, **cert.describe()}, lines)


def _issue_leaf(
    *,
    kind: str,
    agency_dir: str,
    key_path: str,
    role: str,
    name: str,
    out_path: str,
    days: int,
    password_file: str | None,
    peer_id: str | None,
    key_password_file: str | None,
    force: bool,
    as_json: bool,
) -> None:
    _days(days, "--days")
    out = Path(out_path)
    if out.exists() and not force:
        raise _fail(f"{out} already exists; choose another --out, or pass --force")
    try:
        holder_doc = read_key_file(key_path)
    except KeyFileError as exc:
        raise _fail(f"{exc} (check --key)") from None
    agency, ca = _load_agency(agency_dir, password_file)
    suite = agency.cert.suite
    if holder_doc.get("suite") != suite:
        raise _fail(
            f"{key_path} is a {holder_doc.get('suite')} key but {agency.cert_path} is for suite {suite}; "
            f"create the key with `chainnode keygen --suite {suite}` (--key)"
        )
    try:
        public_key = parse_hex(holder_doc["public_key"])
    except (KeyError, TypeError, ValueError):
        raise _fail(f"{key_path}: malformed public_key; regenerate it with `chainnode keygen` (--key)") from None
    if kind == "node":
        if peer_id is not None:
            try:
                check_peer_id(peer_id)
            except ValueError as exc:
                raise _fail(f"--peer-id: {exc}") from None
        else:
            # The peer id is derived from the consensus private key (network/identity.py), so
            # without --peer-id we need the node key's password once.
            from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed

            try:
                node_key = load_key(key_path, read_password(key_password_file, confirm=False))
            except KeyFileError as exc:
                raise _fail(f"{exc} (check --key and --key-password-file, or pass --peer-id)") from None
            peer_id = peer_id_from_seed(host_seed_from_consensus_key(get_suite(suite), node_key.private_key))
    not_before_ms, not_after_ms, capped = _validity(days, agency.cert)
    try:
        cert = issue(
            kind=kind, subject=name, organisation=agency.cert.subject, role=role, public_key=public_key,
            peer_id=peer_id or "", suite=suite, not_before_ms=not_before_ms, not_after_ms=not_after_ms,
            issuer_priv=agency.key.private_key,
        )
        chain = CertChain(ca, agency.cert, cert)
        verify_chain(chain, ca, _now_ms())  # never hand out a chain a node would refuse
        write_document(out, chain_document(chain), overwrite=force)
    except CertificateError as exc:
        raise _fail(f"{exc} (check --name, --role and --key)") from None
    lines = [f"wrote {out} (chain: {ca.subject} -> {agency.cert.subject} -> {name})", *_cert_lines(cert)]
    if capped:
        lines.append(f"note: validity capped at the agency's expiry ({format_ms(not_after_ms)})")
    emit(as_json, {"chain": str(out), "capped": capped, **cert.describe()}, lines)


@ca_group.command("issue-node")
@click.option("--agency-dir", required=True, type=click.Path(file_okay=False), help="The agency's directory (agency.key, agency.cert, ca.cert).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The node's key file (its consensus key).")
@click.option("--role", required=True, type=click.Choice(NODE_ROLES), help="sealer (votes in PBFT) or observer (syncs only).")
@click.option("--name", required=True, help="The node's name, e.g. node0.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the chain file [ca, agency, node].")
@click.option("--peer-id", default=None, help="The node's libp2p peer id; if omitted, derived from --key (needs its password).")
@click.option("--days", type=int, default=LEAF_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the agency's).")
@_password_option
@click.option("--key-password-file", type=click.Path(dir_okay=False), help=f"Password of the node key, to derive its peer id (else ${PASSWORD_ENV}).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@_json_option
def issue_node(agency_dir, key_path, role, name, out_path, peer_id, days, password_file, key_password_file, force, as_json) -> None:
    """Certify a node's consensus key and peer id; writes the chain [ca, agency, node]."""
    _issue_leaf(
        kind="node", agency_dir=agency_dir, key_path=key_path, role=role, name=name, out_path=out_path, days=days,
        password_file=password_file, peer_id=peer_id, key_password_file=key_password_file, force=force, as_json=as_json,
    )


@ca_group.command("issue-client")
@click.option("--agency-dir", required=True, type=click.Path(file_okay=False), help="The agency's directory (agency.key, agency.cert, ca.cert).")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The client's key file (public part only is read).")
@click.option("--role", required=True, type=click.Choice(CLIENT_ROLES), help="user, governor or regulator.")
@click.option("--name", required=True, help="The client's name.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the chain file [ca, agency, client].")
@click.option("--days", type=int, default=LEAF_DAYS_DEFAULT, show_default=True, help="Validity in days (capped at the agency's).")
@_password_option
@click.option("--force", is_flag=True, help="Overwrite --out.")
@_json_option
def issue_client(agency_dir, key_path, role, name, out_path, days, password_file, force, as_json) -> None:
    """Certify a client's (SDK user's) key; writes the chain [ca, agency, client]."""
    _issue_leaf(
        kind="client", agency_dir=agency_dir, key_path=key_path, role=role, name=name, out_path=out_path, days=days,
        password_file=password_file, peer_id=None, key_password_file=None, force=force, as_json=as_json,
    )


@ca_group.command("revoke")
@click.option("--ca-dir", required=True, type=click.Path(file_okay=False), help="The CA's directory (ca.key, ca.cert).")
@click.option("--serial", required=True, help="Serial (hex) of the certificate to revoke, as `ca show` prints it.")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="The revocation list file (default: CA_DIR/revoked.crl).")
@_password_option
@_json_option
def revoke(ca_dir: str, serial: str, crl_path: str | None, password_file: str | None, as_json: bool) -> None:
    """Add a serial to the CA-signed revocation list (created if missing)."""
    try:
        serial_bytes = parse_hex(serial)
    except HexError:
        raise _fail(f"--serial {serial!r} is not hex; copy it from `chainnode ca show`") from None
    if len(serial_bytes) != 16:
        raise _fail(f"--serial {serial!r}: a serial is 32 hex digits; copy it from `chainnode ca show`")
    cd = Path(ca_dir)
    crl_file = Path(crl_path) if crl_path else cd / "revoked.crl"
    serials: frozenset[bytes] = frozenset()
    number = 0
    ca = _load_issuer(cd / "ca.key", cd / "ca.cert", password_file, "--ca-dir", "ca")
    if crl_file.exists():
        try:
            old = read_crl_file(crl_file)
            serials = old.verify(ca.cert)
        except CertificateError as exc:
            raise _fail(f"{crl_file}: {exc}; pass the --crl of this CA") from None
        number = old.number
    already = serial_bytes in serials
    try:
        crl = RevocationList.create(ca.key.private_key, ca.cert.suite, serials | {serial_bytes}, number=number + 1, issued_at_ms=_now_ms())
        write_document(crl_file, crl_document(crl), overwrite=True)
    except CertificateError as exc:
        raise _fail(f"{crl_file}: {exc}") from None
    emit(
        as_json,
        {"crl": str(crl_file), "serial": serial_bytes.hex(), "already_revoked": already, "number": crl.number, "revoked": len(crl.serials)},
        [f"{'already revoked' if already else 'revoked'} {serial_bytes.hex()}: {crl_file} (list #{crl.number}, {len(crl.serials)} serials)"],
    )


@ca_group.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--ca", "ca_path", type=click.Path(dir_okay=False), help="Verify against this trusted CA certificate (ca.cert).")
@click.option("--crl", "crl_path", type=click.Path(dir_okay=False), help="Also refuse serials in this revocation list (needs --ca).")
@click.option("--now-ms", type=int, default=None, hidden=True, help="Verify as of this time (tests).")
@_json_option
def show(path: str, ca_path: str | None, crl_path: str | None, now_ms: int | None, as_json: bool) -> None:
    """Print a certificate, chain or revocation list; with --ca, verify it ("valid" or the reason)."""
    try:
        obj = decode_document(read_document(path), path)
    except CertificateError as exc:
        raise _fail(str(exc)) from None
    if isinstance(obj, RevocationList):
        data: dict = {"file": path, "type": "revocation list", "number": obj.number, "issued_at": format_ms(obj.issued_at_ms), "revoked": [s.hex() for s in obj.serials]}
        lines = [f"revocation list #{obj.number} issued {format_ms(obj.issued_at_ms)}, {len(obj.serials)} serials", *[f"  {s.hex()}" for s in obj.serials]]
        certs: list[Certificate] = []
    elif isinstance(obj, CertChain):
        certs = list(obj)
        data = {"file": path, "type": "chain", "certificates": [c.describe() for c in certs]}
        lines = [f"chain {path}:"] + [line for c in certs for line in _cert_lines(c, "  ")]
    else:
        certs = [obj]
        data = {"file": path, "type": "certificate", **obj.describe()}
        lines = _cert_lines(obj)
    if crl_path and not ca_path:
        raise _fail("--crl needs --ca: a revocation list is only trusted when signed by the trusted CA")
    if ca_path:
        reason = _verify_shown(obj, path, ca_path, crl_path, now_ms if now_ms is not None else _now_ms())
        data["valid"] = reason is None
        if reason is not None:
            data["reason"] = reason
        lines.append("valid" if reason is None else f"INVALID: {reason}")
        emit(as_json, data, lines)
        if reason is not None:
            raise SystemExit(1)
        return
    emit(as_json, data, lines)


def _verify_shown(obj, path: str, ca_path: str, crl_path: str | None, now_ms: int) -> str | None:
    """None if `obj` verifies against the CA in `ca_path` (and the list in `crl_path`), else why."""
    try:
        trusted = read_cert_file(ca_path)
    except CertificateError as exc:
        raise _fail(f"wrong or missing CA: {exc} (--ca)") from None
    revoked: frozenset[bytes] = frozenset()
    if crl_path:
        try:
            revoked = read_crl_file(crl_path).verify(trusted)
        except CertificateError as exc:
            raise _fail(f"{crl_path}: {exc} (--crl)") from None
    try:
        if isinstance(obj, CertChain):
            verify_chain(obj, trusted, now_ms, revoked)
        elif isinstance(obj, RevocationList):
            obj.verify(trusted)
        elif obj.kind == "ca":
            verify_ca(trusted, now_ms)
            if obj.encode() != trusted.encode():
                return f"wrong or missing CA: {path} ({obj.subject!r}) is not the trusted CA in {ca_path} ({trusted.subject!r})"
        elif obj.kind == "agency":
            verify_agency(obj, trusted, now_ms, revoked)
        else:
            return f"{path} is a single {obj.kind} certificate: verify its chain file (from `ca issue-{obj.kind}`) instead"
    except CertificateError as exc:
        return str(exc)
    return None

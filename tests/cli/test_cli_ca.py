"""`chainnode ca` end to end in a temporary directory, in the X.509 PEM that the `openssl`
command line reads and writes: chains issued here pass `openssl verify` with the SM2
distinguishing ID, requests made by `openssl req` are certified by `ca sign-csr`, revocation
lists verify against their issuer, and a hierarchy made entirely with openssl is shown and
verified by `ca show`. Every refusal is one line that names the file and the flag."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import pem
from click.testing import CliRunner

from chainnode.cli import ca as ca_cli
from chainnode.cli.main import main
from chainnode.crypto import get_suite
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.security.certs import MIGRATE_HINT, read_cert_file, read_certs, read_chain_file, read_crl_file
from chainnode.security.keyfile import encrypt_key, write_key_file
from tests.security.test_x509 import DISTID, Openssl

SCRYPT_N = 1024
FAST = ["--scrypt-n", str(SCRYPT_N)]
PASSWORD = "pw"
ENV = {"CHAINNODE_PASSWORD": PASSWORD}
DAY_MS = 86_400_000
FIXTURE_0_1 = Path(__file__).parent.parent / "devnet" / "fixtures" / "devnet-0.1"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")
both_suites = pytest.mark.parametrize("suite", ["sm", "ed25519"])


def run(*args, env=ENV):
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(*args, env=ENV) -> str:
    """The one-line error of a command that must fail (exit status 1, nothing on stdout)."""
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    assert result.exit_code == 1, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def invalid(*args) -> str:
    """The output of `ca show --ca` for something that does not verify: exit 1, INVALID last."""
    result = CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)
    assert result.exit_code == 1 and result.stderr == "", result.output
    assert result.stdout.splitlines()[-1].startswith("INVALID: "), result.stdout
    return result.stdout.splitlines()[-1]


def openssl(folder: Path, *args: str) -> str:
    return subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, text=True).stdout


def new_key(path: Path, suite: str = "sm") -> str:
    """A chainnode key file (as `chainnode keygen` writes it); returns the peer id a node with it has."""
    s = get_suite(suite)
    priv, _ = s.generate_keypair()
    write_key_file(path, encrypt_key(suite, priv, PASSWORD, scrypt_n=SCRYPT_N))
    return peer_id_from_seed(host_seed_from_consensus_key(s, priv))


def make_pki(folder: Path, suite: str = "sm") -> Path:
    """ca/ and agency-a/ ("Bank A") made by the CLI, and node0.key / alice.key beside them."""
    run("ca", "init", "--name", "Consortium CA", "--out-dir", str(folder / "ca"), "--suite", suite, *FAST)
    run("ca", "issue-agency", "--ca-dir", str(folder / "ca"), "--name", "Bank A", "--out-dir", str(folder / "agency-a"), *FAST)
    new_key(folder / "node0.key", suite)
    new_key(folder / "alice.key", suite)
    return folder


@pytest.fixture
def pki(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pw.txt").write_text(PASSWORD + "\n")
    return make_pki(tmp_path)


def issue_node(out="node0.pem", *extra):
    return run("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", out,
               *extra)


def leaf_only(chain_file: Path, out: Path) -> Path:
    """The first certificate of a chain file on its own, for `openssl verify` of one link."""
    out.write_bytes(pem.armor("CERTIFICATE", read_chain_file(chain_file).leaf.der))
    return out


# ---- issuing ------------------------------------------------------------------------------


@both_suites
def test_end_to_end(tmp_path, monkeypatch, suite):
    monkeypatch.chdir(tmp_path)
    init = json.loads(run("ca", "init", "--name", "Consortium CA", "--out-dir", "ca", "--suite", suite, "--json", *FAST))
    root = read_cert_file("ca/ca.pem")
    assert init["genesis_ca_cert_hex"] == root.der.hex() and (root.kind, root.suite, root.organisation) == ("ca", suite, "Consortium CA")
    text = run("ca", "init", "--name", "Other CA", "--org", "Others", "--out-dir", "other", "--suite", suite, *FAST)
    assert f'"ca_certs": ["{read_cert_file("other/ca.pem").der.hex()}"]' in text  # the genesis line to paste
    assert read_cert_file("other/ca.pem").organisation == "Others"

    out = run("ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank A", "--out-dir", "agency-a", *FAST)
    assert "wrote agency-a/agency.key, agency-a/agency.pem and agency-a/ca.pem" in out
    agency = read_cert_file("agency-a/agency.pem")
    assert (agency.kind, agency.subject, agency.organisation, agency.x509.path_length) == ("agency", "Bank A", "Bank A", 0)
    assert read_cert_file("agency-a/ca.pem") == root
    run("ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank B Shanghai", "--org", "Bank B", "--out-dir", "agency-b", *FAST)
    assert read_cert_file("agency-b/agency.pem").organisation == "Bank B"

    pid = new_key(tmp_path / "node0.key", suite)
    new_key(tmp_path / "alice.key", suite)
    out = issue_node()  # the peer id derived from the node key
    assert "wrote node0.pem (chain: node0 <- Bank A <- Consortium CA)" in out and "revocation id:" in out
    run("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "auditor", "--name", "alice", "--out", "alice.pem")
    chain = read_chain_file(tmp_path / "node0.pem")
    assert (chain.leaf.kind, chain.leaf.role, chain.leaf.peer_id, chain.leaf.organisation) == ("node", "sealer", pid, "Bank A")
    assert chain.agency == agency and chain.root == root
    client = read_chain_file(tmp_path / "alice.pem").leaf
    assert (client.kind, client.role, client.peer_id) == ("client", "auditor", "")

    shown = json.loads(run("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--json"))
    assert shown["valid"] and shown["type"] == "chain" and shown["revocation_id"] == chain.leaf.revocation_id(agency).hex()
    assert [c["kind"] for c in shown["certificates"]] == ["node", "agency", "ca"]
    text = run("ca", "show", "node0.pem", "--ca", "ca/ca.pem")
    assert text.index("ca: Consortium CA") < text.index("agency: Bank A") < text.index("node: node0")  # top down
    assert f"peer id:      {pid}" in text and "role:         sealer" in text and f"serial:       {chain.leaf.serial:x}" in text
    assert "CA:           yes, path length 0" in text and "key usage:    digital_signature, key_agreement" in text
    for path in ("alice.pem", "agency-a/agency.pem", "ca/ca.pem"):
        assert run("ca", "show", path, "--ca", "ca/ca.pem").splitlines()[-1] == "valid"
    # A bundle of several roots (the genesis trusts each member's CA) is a --ca too.
    Path("roots.pem").write_bytes(Path("other/ca.pem").read_bytes() + Path("ca/ca.pem").read_bytes())
    assert run("ca", "show", "node0.pem", "--ca", "roots.pem").splitlines()[-1] == "valid"


def test_validity_is_capped_at_the_issuer(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("ca", "init", "--name", "Short CA", "--out-dir", "ca", "--days", "10", *FAST)
    out = run("ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank A", "--out-dir", "agency-a", *FAST)
    assert "note: validity capped at the CA's expiry" in out
    assert read_cert_file("agency-a/agency.pem").not_after_ms == read_cert_file("ca/ca.pem").not_after_ms
    new_key(tmp_path / "node0.key")
    assert json.loads(issue_node("node0.pem", "--json"))["capped"]
    assert "--days 0: choose between 1 and 36500 days" in refused("ca", "init", "--name", "X", "--out-dir", "x", "--days", "0", *FAST)


def test_an_expired_agency_issues_nothing(pki, monkeypatch):
    run("ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank C", "--out-dir", "agency-c", "--days", "1", *FAST)
    later = ca_cli._now_ms() + 2 * DAY_MS
    monkeypatch.setattr(ca_cli, "_now_ms", lambda: later)
    out = refused("ca", "issue-client", "--agency-dir", "agency-c", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "a.pem")
    assert "agency-c/agency.pem or agency-c/ca.pem" in out and "expired at" in out and not Path("a.pem").exists()


def test_issue_node_with_a_given_peer_id(pki):
    pid = new_key(pki / "node1.key")
    # Only the agency's password (from the file): with --peer-id the node key stays encrypted.
    run("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node1.key", "--role", "observer", "--name", "node1", "--out", "node1.pem",
        "--peer-id", pid, "--password-file", "pw.txt", env={})
    assert read_chain_file(pki / "node1.pem").leaf.peer_id == pid


# ---- openssl reads what chainnode writes ----------------------------------------------------


@needs_openssl
@both_suites
def test_openssl_verifies_chainnode_certificates(tmp_path, monkeypatch, suite):
    monkeypatch.chdir(tmp_path)
    make_pki(tmp_path, suite)
    issue_node()
    run("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "alice", "--out", "alice.pem")
    vfy = ["-vfyopt", DISTID] if suite == "sm" else []
    # OpenSSL 3.0 applies -vfyopt distid at depth 0 only: one link at a time (research/x509-sm2.md).
    assert "OK" in openssl(tmp_path, "verify", "-CAfile", "ca/ca.pem", *vfy, "agency-a/agency.pem")
    for chain_file in ("node0.pem", "alice.pem"):
        leaf = leaf_only(tmp_path / chain_file, tmp_path / f"leaf-{chain_file}")
        assert "OK" in openssl(tmp_path, "verify", "-CAfile", "agency-a/agency.pem", "-partial_chain", *vfy, leaf.name)
    text = openssl(tmp_path, "x509", "-in", "node0.pem", "-noout", "-text")  # the first certificate of the chain file: the node's
    pid = read_chain_file(tmp_path / "node0.pem").leaf.peer_id
    assert "OU = sealer" in text and f"URI:p2p:{pid}" in text and "O = Bank A" in text
    assert ("SM2-with-SM3" if suite == "sm" else "ED25519") in text and "CA:FALSE" in text
    with pytest.raises(subprocess.CalledProcessError):  # and openssl refuses the leaf under the root directly
        openssl(tmp_path, "verify", "-CAfile", "ca/ca.pem", *vfy, "leaf-node0.pem")


@needs_openssl
def test_openssl_reads_the_revocation_list(pki):
    issue_node()
    serial = read_chain_file(pki / "node0.pem").leaf.serial
    run("ca", "revoke", "--agency-dir", "agency-a", "--serial", f"{serial:x}")
    text = openssl(pki, "crl", "-in", "agency-a/revoked.crl", "-noout", "-text")
    listed = [int(line.split(":", 1)[1], 16) for line in text.splitlines() if line.strip().startswith("Serial Number:")]
    assert listed == [serial] and "X509v3 CRL Number" in text and "CN = Bank A" in text


# ---- sign-csr: certificates for keys made elsewhere ----------------------------------------


@needs_openssl
@both_suites
def test_sign_csr_of_openssl_requests(tmp_path, monkeypatch, suite):
    monkeypatch.chdir(tmp_path)
    make_pki(tmp_path, suite)
    tool = Openssl(tmp_path, suite)
    tool.key("member")
    openssl(tmp_path, "req", "-new", "-key", "member.key", *tool.sign_options(), "-subj", "/CN=node9/O=Bank A", "-out", "node9.csr")
    pid = new_key(tmp_path / "node9.key", suite)  # any node's peer id: the handshake binds it to the node's host key
    out = run("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "node9.csr", "--role", "sealer", "--peer-id", pid, "--out", "node9.pem")
    assert "wrote node9.pem (chain: node9 <- Bank A <- Consortium CA)" in out
    chain = read_chain_file(tmp_path / "node9.pem")
    assert (chain.leaf.kind, chain.leaf.peer_id, chain.leaf.organisation) == ("node", pid, "Bank A")
    openssl(tmp_path, "pkey", "-in", "member.key", "-pubout", "-outform", "DER", "-out", "member.pub.der")
    assert (tmp_path / "member.pub.der").read_bytes().endswith(chain.leaf.public_key)  # certifies the key that signed the request
    assert run("ca", "show", "node9.pem", "--ca", "ca/ca.pem").splitlines()[-1] == "valid"
    vfy = ["-vfyopt", DISTID] if suite == "sm" else []
    leaf_only(tmp_path / "node9.pem", tmp_path / "node9-leaf.pem")
    assert "OK" in openssl(tmp_path, "verify", "-CAfile", "agency-a/agency.pem", "-partial_chain", *vfy, "node9-leaf.pem")

    # A client, named otherwise than the request's CN.
    run("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "node9.csr", "--role", "regulator", "--name", "audit-9", "--out", "reg.pem")
    client = read_chain_file(tmp_path / "reg.pem").leaf
    assert (client.kind, client.role, client.subject) == ("client", "regulator", "audit-9")

    # A member's agency: its own key, certified by the consortium CA; the file is agency then root.
    openssl(tmp_path, "req", "-new", "-key", "member.key", *tool.sign_options(), "-subj", "/CN=Bank B/O=Bank B", "-out", "agency-b.csr")
    out = run("ca", "sign-csr", "--ca-dir", "ca", "--csr", "agency-b.csr", "--out", "agency-b.pem")
    assert "wrote agency-b.pem (agency Bank B <- Consortium CA)" in out
    agency_b, root = read_certs(tmp_path / "agency-b.pem")
    assert (agency_b.kind, agency_b.subject, agency_b.organisation, root) == ("agency", "Bank B", "Bank B", read_cert_file("ca/ca.pem"))
    assert run("ca", "show", "agency-b.pem", "--ca", "ca/ca.pem").splitlines()[-1] == "valid"
    (tmp_path / "agency-b-only.pem").write_bytes(pem.armor("CERTIFICATE", agency_b.der))
    assert "OK" in openssl(tmp_path, "verify", "-CAfile", "ca/ca.pem", *vfy, "agency-b-only.pem")


@needs_openssl
def test_sign_csr_refusals(pki):
    tool = Openssl(pki, "sm")
    tool.key("member")

    def request(name: str, subject: str, *options: str) -> str:
        openssl(pki, "req", "-new", "-key", "member.key", *(options or tool.sign_options()), "-subj", subject, "-out", name)
        return name

    def sign(csr: str, *extra: str) -> str:
        return refused("ca", "sign-csr", "--csr", csr, "--out", "x.pem", *extra)

    good = request("good.csr", "/CN=node9/O=Bank A")
    agency = ("--agency-dir", "agency-a")
    wrong_org = sign(request("bank-b.csr", "/CN=node9/O=Bank B"), *agency, "--role", "user")
    assert "agency mismatch: bank-b.csr asks for organisation 'Bank B'" in wrong_org and "-subj '/CN=node9/O=Bank A'" in wrong_org
    assert "pass --peer-id" in sign(good, *agency, "--role", "observer")
    assert "--peer-id goes with a node role" in sign(good, *agency, "--role", "user", "--peer-id", new_key(pki / "n.key"))
    assert "--peer-id: peer id 'nope' is not" in sign(good, *agency, "--role", "sealer", "--peer-id", "nope")
    assert "--agency-dir needs --role" in sign(good, *agency)
    assert "an agency certificate (--ca-dir) has neither" in sign(good, "--ca-dir", "ca", "--role", "user")
    assert "one of them" in sign(good) and "one of them" in sign(good, *agency, "--ca-dir", "ca", "--role", "user")

    ed = Openssl(pki, "ed25519")
    ed.key("ed")
    openssl(pki, "req", "-new", "-key", "ed.key", "-subj", "/CN=ed/O=Bank A", "-out", "ed.csr")
    wrong_suite = sign("ed.csr", *agency, "--role", "user")
    assert "ed.csr is for an Ed25519 key, but agency-a/agency.pem is on suite sm" in wrong_suite and "ec_paramgen_curve:SM2" in wrong_suite

    # A request whose signed part was changed after signing: the name, in its DER.
    der = bytearray(pem.unarmor((pki / good).read_bytes())[2])
    der[der.index(b"node9")] = ord("m")
    (pki / "tampered.csr").write_bytes(bytes(der))
    out = sign("tampered.csr", *agency, "--role", "user")
    assert out.startswith("Error: tampered.csr: the certificate request's signature does not verify") and "--csr" in out
    # SM2 signed with OpenSSL's default ID instead of the standard one: refused with the hint.
    assert "distid:1234567812345678" in sign(request("default-id.csr", "/CN=node9/O=Bank A", "-sm3"), *agency, "--role", "user")
    assert "needs one CN and one O" in sign(request("no-org.csr", "/CN=node9"), *agency, "--role", "user")
    assert "missing.csr not found; pass as --csr" in sign("missing.csr", *agency, "--role", "user")
    assert "not a CERTIFICATE REQUEST" in sign("agency-a/agency.pem", *agency, "--role", "user")
    assert not Path("x.pem").exists()


# ---- revocation ---------------------------------------------------------------------------


def test_revoke_then_show_with_the_list(pki):
    issue_node()
    chain = read_chain_file(pki / "node0.pem")
    serial = json.loads(run("ca", "show", "node0.pem", "--json"))["certificates"][0]["serial"]
    assert serial == f"{chain.leaf.serial:x}"
    out = run("ca", "revoke", "--agency-dir", "agency-a", "--serial", serial)
    assert f"revoked {serial}: agency-a/revoked.crl (list #1, 1 serial(s))" in out
    assert f"revocation id: {chain.leaf.revocation_id(chain.agency).hex()}" in out
    assert "`chainnode gov propose revoke-cert --crl agency-a/revoked.crl --issuer agency-a/agency.pem --key GOVERNOR.key`" in out
    assert (pki / "agency-a" / "revoked.crl").read_bytes().startswith(b"-----BEGIN X509 CRL-----")

    # openssl's spellings of the same serial; revoking it again leaves the list as it is.
    before = (pki / "agency-a" / "revoked.crl").read_bytes()
    spelled = ":".join(serial.upper().zfill(len(serial) + len(serial) % 2)[i:i + 2] for i in range(0, len(serial) + len(serial) % 2, 2))
    assert json.loads(run("ca", "revoke", "--agency-dir", "agency-a", "--serial", spelled, "--json"))["already_revoked"]
    assert (pki / "agency-a" / "revoked.crl").read_bytes() == before
    out = json.loads(run("ca", "revoke", "--agency-dir", "agency-a", "--serial", "0x01", "--json"))
    assert (out["number"], out["revoked"], out["already_revoked"]) == (2, 2, False)  # cRLNumber + 1
    assert read_crl_file(pki / "agency-a" / "revoked.crl").serials == {chain.leaf.serial, 1}

    shown = invalid("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "agency-a/revoked.crl", "--issuer", "agency-a/agency.pem")
    assert "INVALID: node certificate 'node0'" in shown and "is revoked" in shown
    shown = json.loads(CliRunner().invoke(main, ["ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "agency-a/revoked.crl", "--issuer",
                                                 "agency-a/agency.pem", "--json"], env=ENV).stdout)
    assert shown["valid"] is False and "is revoked" in shown["reason"]
    run("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "alice", "--out", "alice.pem")
    assert run("ca", "show", "alice.pem", "--ca", "ca/ca.pem", "--crl", "agency-a/revoked.crl", "--issuer",
               "agency-a/agency.pem").splitlines()[-1] == "valid"

    # The list itself: its serials, and with its issuer, its signature and the revocation ids.
    text = run("ca", "show", "agency-a/revoked.crl")
    assert "revocation list #2 of 'Common Name: Bank A, Organization: Bank A'" in text and "2 serial(s)" in text and serial in text
    text = run("ca", "show", "agency-a/revoked.crl", "--issuer", "agency-a/agency.pem")
    assert text.splitlines()[-1] == "valid" and chain.leaf.revocation_id(chain.agency).hex() in text
    assert "not by 'Common Name: Consortium CA" in invalid("ca", "show", "agency-a/revoked.crl", "--issuer", "ca/ca.pem")


def test_a_root_revokes_an_agency(pki):
    issue_node()
    agency = read_cert_file(pki / "agency-a" / "agency.pem")
    out = run("ca", "revoke", "--ca-dir", "ca", "--serial", f"{agency.serial:x}")
    assert "--crl ca/revoked.crl --issuer ca/ca.pem" in out
    # Without --issuer, the list's signer is the root in --ca that it names.
    shown = invalid("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "ca/revoked.crl")
    assert "agency certificate 'Bank A'" in shown and "is revoked" in shown and "(in the chain of the node certificate 'node0'" in shown
    assert "is revoked" in invalid("ca", "show", "agency-a/agency.pem", "--ca", "ca/ca.pem", "--crl", "ca/revoked.crl")
    assert run("ca", "show", "ca/revoked.crl", "--ca", "ca/ca.pem").splitlines()[-1] == "valid"
    # The agency's own list is not the root's: pass --issuer.
    run("ca", "revoke", "--agency-dir", "agency-a", "--serial", "02")
    out = refused("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "agency-a/revoked.crl")
    assert "agency-a/revoked.crl was issued by 'Common Name: Bank A" in out and "pass --issuer" in out


def test_revoke_refusals(pki):
    for bad in ("xyz", "1" * 41, "0", "", "80" + "0" * 38):
        out = refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", bad)
        assert f"--serial {bad!r}" in out and "copy it from `chainnode ca show`" in out
    assert "one of them" in refused("ca", "revoke", "--serial", "01")
    assert "one of them" in refused("ca", "revoke", "--serial", "01", "--ca-dir", "ca", "--agency-dir", "agency-a")
    run("ca", "revoke", "--ca-dir", "ca", "--serial", "05")
    # Extending another issuer's list is refused, naming the file and the flag.
    out = refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", "01", "--crl", "ca/revoked.crl")
    assert out.startswith("Error: ca/revoked.crl: the revocation list was issued by")
    assert out.endswith("; pass as --crl the revocation list of agency-a/agency.pem, or a new file")
    Path("junk.crl").write_text("junk")
    assert "junk.crl" in refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", "01", "--crl", "junk.crl")
    assert "wrong password" in refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", "01", env={"CHAINNODE_PASSWORD": "nope"})
    out = refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", "01", "--crl", "no/such/dir.crl")
    assert "cannot write no/such/dir.crl" in out and "--crl" in out


# ---- show: verification and its refusals -----------------------------------------------------


def test_show_refuses_what_another_ca_issued(pki):
    issue_node()
    run("ca", "init", "--name", "Other CA", "--out-dir", "other-ca", *FAST)
    out = invalid("ca", "show", "node0.pem", "--ca", "other-ca/ca.pem")
    assert "INVALID: wrong or missing CA" in out and "not a root CA of this chain (trusted: 'Common Name: Other CA" in out
    assert "is a root, but not one of the roots in ca/ca.pem" in invalid("ca", "show", "other-ca/ca.pem", "--ca", "ca/ca.pem")
    # Same names, other keys: another consortium's chain for its node0, shown under this CA.
    make_pki(pki / "twin")
    run("ca", "issue-node", "--agency-dir", "twin/agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "t.pem")
    out = invalid("ca", "show", "t.pem", "--ca", "ca/ca.pem")
    assert "INVALID: wrong or missing CA" in out and "its signature does not verify with that root's key" in out
    leaf_only(pki / "node0.pem", pki / "leaf.pem")
    assert "leaf.pem holds only the node certificate 'node0'" in refused("ca", "show", "leaf.pem", "--ca", "ca/ca.pem")
    # An agency directory with the wrong CA beside it.
    shutil.copy("other-ca/ca.pem", "agency-a/ca.pem")
    out = refused("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "a.pem")
    assert "agency-a/agency.pem or agency-a/ca.pem" in out and "copy the ca.pem of the CA that issued the agency" in out


def test_show_refusals(pki):
    issue_node()
    assert "missing.pem not found" in refused("ca", "show", "missing.pem")
    Path("junk.pem").write_text("hello")
    assert "junk.pem" in refused("ca", "show", "junk.pem")
    assert "--crl needs --ca" in refused("ca", "show", "node0.pem", "--crl", "x.crl")
    assert "--issuer names the signer of --crl" in refused("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--issuer", "ca/ca.pem")
    assert "nope.pem not found; pass as --ca" in refused("ca", "show", "node0.pem", "--ca", "nope.pem")
    assert "x.crl not found; pass as --crl" in refused("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "x.crl")
    run("ca", "revoke", "--agency-dir", "agency-a", "--serial", "01")
    assert "--crl goes with a certificate or chain" in refused("ca", "show", "agency-a/revoked.crl", "--crl", "agency-a/revoked.crl")
    out = refused("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "agency-a/revoked.crl", "--issuer", "ca/ca.pem")
    assert "agency-a/revoked.crl: the revocation list was issued by" in out and "--issuer" in out


def test_old_format_files_are_refused_with_the_migration(pki):
    old_chain = FIXTURE_0_1 / "node0" / "node.chain"
    expected = f"Error: {old_chain} is in the certificate format of chainnode 0.1, before X.509; {MIGRATE_HINT}"
    assert refused("ca", "show", str(old_chain)) == expected  # unchanged: the hint is the fix
    assert refused("ca", "show", "ca/ca.pem", "--ca", str(old_chain)) == expected
    old_ca = FIXTURE_0_1 / "ca" / "ca.cert"  # a CA directory of chainnode 0.1: ca.key and ca.cert
    expected = f"Error: {old_ca} is in the certificate format of chainnode 0.1, before X.509; {MIGRATE_HINT}"
    assert refused("ca", "issue-agency", "--ca-dir", str(FIXTURE_0_1 / "ca"), "--name", "B", "--out-dir", "b", *FAST) == expected
    (pki / "agency-a" / "revoked.crl").write_text('{"format": "chainnode-crl/1", "serials": []}')
    out = refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", "01")
    assert out == f"Error: agency-a/revoked.crl is in the certificate format of chainnode 0.1, before X.509; {MIGRATE_HINT}"


def test_passwords_keys_and_outputs(pki):
    wrong = {"CHAINNODE_PASSWORD": "nope"}
    out = refused("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "n", "--out", "n.pem",
                  "--peer-id", new_key(pki / "n.key"), env=wrong)
    assert "wrong password" in out and "--agency-dir and --password-file" in out
    out = refused("ca", "issue-agency", "--ca-dir", "ca", "--name", "B", "--out-dir", "b", *FAST, env=wrong)
    assert "ca/ca.key: wrong password" in out and not Path("b").exists()
    assert "check --key and --key-password-file, or pass --peer-id" in refused(
        "ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "n", "--out", "n.pem", env=wrong)
    run("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "a.pem",
        "--password-file", "pw.txt", env={})
    # Missing issuer files are reported before a password is asked for (none is set here).
    assert "nowhere/ca.pem not found; pass the --ca-dir that holds ca.pem" in refused(
        "ca", "issue-agency", "--ca-dir", "nowhere", "--name", "B", "--out-dir", "b", env={})
    Path("agency-a/agency.key").rename("agency.key.bak")
    out = refused("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "b.pem", env={})
    assert "agency-a/agency.key not found" in out and "--agency-dir" in out
    shutil.copy("alice.key", "agency-a/agency.key")
    assert "agency-a/agency.key is not the key of agency-a/agency.pem" in refused(
        "ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "b.pem")
    Path("agency.key.bak").replace("agency-a/agency.key")

    # The key to certify: a chainnode key file of the chain's suite.
    Path("k.pem").write_text("-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n")
    out = refused("ca", "issue-client", "--agency-dir", "agency-a", "--key", "k.pem", "--role", "user", "--name", "a", "--out", "b.pem")
    assert "k.pem is not JSON" in out and "chainnode key import" in out
    new_key(pki / "ed.key", "ed25519")
    out = refused("ca", "issue-client", "--agency-dir", "agency-a", "--key", "ed.key", "--role", "user", "--name", "a", "--out", "b.pem")
    assert "ed.key is for an Ed25519 key, but agency-a/agency.pem is on suite sm" in out and "chainnode keygen --suite sm" in out

    # Outputs are never overwritten unless asked to.
    assert "ca/ca.key already exists; choose another --out-dir" in refused("ca", "init", "--name", "X", "--out-dir", "ca", *FAST)
    assert "agency-a/agency.key already exists" in refused("ca", "issue-agency", "--ca-dir", "ca", "--name", "B", "--out-dir", "agency-a", *FAST)
    assert "a.pem already exists; choose another --out, or pass --force" in refused(
        "ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "a.pem")
    issue_node("a.pem", "--force")
    assert read_chain_file(pki / "a.pem").leaf.kind == "node"
    assert "cannot write no/dir/n.pem" in refused("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer",
                                                  "--name", "node0", "--out", "no/dir/n.pem")
    assert "cannot issue this certificate: the name and the organisation must not be empty" in refused(
        "ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "", "--out", "e.pem")


# ---- a hierarchy made with openssl -------------------------------------------------------------


@needs_openssl
def test_a_hierarchy_made_with_openssl_is_shown_and_verified(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tool = Openssl(tmp_path, "sm")
    tool.root("root")
    tool.key("agency")
    openssl(tmp_path, "req", "-new", "-key", "agency.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=Bank M/O=Bank M", "-out", "agency.csr")
    openssl(tmp_path, "x509", "-req", "-in", "agency.csr", "-CA", "root.pem", "-CAkey", "root.key", "-CAcreateserial", "-sm3",
            "-sigopt", DISTID, "-vfyopt", DISTID, "-extfile", "ext.cnf", "-extensions", "agency", "-days", "30", "-out", "agency.pem")
    tool.key("node")
    pid = new_key(tmp_path / "n.key")
    (tmp_path / "node.cnf").write_text("[node]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n"
                                       f"subjectAltName=URI:p2p:{pid}\n")

    def certify(name: str, subject: str, extensions: str) -> Path:
        openssl(tmp_path, "req", "-new", "-key", "node.key", "-sm3", "-sigopt", DISTID, "-subj", subject, "-out", f"{name}.csr")
        openssl(tmp_path, "x509", "-req", "-in", f"{name}.csr", "-CA", "agency.pem", "-CAkey", "agency.key", "-CAcreateserial", "-sm3",
                "-sigopt", DISTID, "-vfyopt", DISTID, "-extfile", extensions, "-extensions", "node", "-days", "30", "-out", f"{name}.pem")
        chain = tmp_path / f"{name}-chain.pem"
        chain.write_bytes((tmp_path / f"{name}.pem").read_bytes() + (tmp_path / "agency.pem").read_bytes())
        return chain

    certify("node", "/CN=node-m/O=Bank M/OU=observer", "node.cnf")
    shown = run("ca", "show", "node-chain.pem", "--ca", "root.pem")
    assert "node: node-m" in shown and "role:         observer" in shown and f"peer id:      {pid}" in shown
    assert shown.splitlines()[-1] == "valid"
    # The same node certificate without its role is refused with the reason.
    (tmp_path / "plain.cnf").write_text("[node]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    certify("plain", "/CN=node-m/O=Bank M", "plain.cnf")
    assert "names no chainnode role: its subject's OU must be one of" in invalid("ca", "show", "plain-chain.pem", "--ca", "root.pem")
    # DER is read too.
    openssl(tmp_path, "x509", "-in", "agency.pem", "-outform", "DER", "-out", "agency.der")
    assert run("ca", "show", "agency.der", "--ca", "root.pem").splitlines()[-1] == "valid"

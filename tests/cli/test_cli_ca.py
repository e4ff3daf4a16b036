"""`chainnode ca` end to end in a temporary directory, in X.509 PEM that the `openssl` command
line reads and writes: chains issued here pass `openssl verify` with the SM2 distinguishing
ID, requests made by `openssl req` are signed by `ca sign-csr`, and a hierarchy made entirely
with openssl is shown and verified by `ca show`. Every refusal names the file and the flag."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.security.certs import read_chain_file, read_crl_file
from tests.security.test_x509 import DISTID, Openssl

FAST = ["--scrypt-n", "1024"]
ENV = {"CHAINNODE_PASSWORD": "pw"}
FIXTURE_0_1 = Path(__file__).parent.parent / "devnet" / "fixtures" / "devnet-0.1"
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")


def run(*args, ok=True):
    result = CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def refused(*args, code=1) -> str:
    result = run(*args, ok=False)
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result.output


def openssl(folder: Path, *args: str) -> str:
    return subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True, text=True).stdout


def peer_id(key: str) -> str:
    return json.loads(run("key", "show", key, "--peer-id", "--json").output)["peer_id"]


@pytest.fixture
def pki(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run("ca", "init", "--name", "Consortium CA", "--out-dir", "ca", *FAST)
    run("ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank A", "--out-dir", "agency-a", *FAST)
    run("keygen", "--out", "node0.key", *FAST)
    run("keygen", "--out", "alice.key", *FAST)
    return tmp_path


def test_end_to_end(pki):
    out = run("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "node0.pem")
    assert "wrote node0.pem (chain: node0 <- Bank A <- Consortium CA)" in out.output and "revocation id:" in out.output
    run("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "auditor", "--name", "alice", "--out", "alice.pem")
    chain = read_chain_file(pki / "node0.pem")
    assert (chain.leaf.kind, chain.leaf.role, chain.leaf.peer_id) == ("node", "sealer", peer_id("node0.key"))
    assert chain.agency.subject == "Bank A" and chain.root.subject == "Consortium CA"
    shown = json.loads(run("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--json").output)
    assert shown["valid"] and shown["type"] == "chain" and shown["revocation_id"] == chain.leaf.revocation_id(chain.agency).hex()
    assert run("ca", "show", "alice.pem", "--ca", "ca/ca.pem").output.rstrip().endswith("valid")
    assert run("ca", "show", "agency-a/agency.pem", "--ca", "ca/ca.pem").output.rstrip().endswith("valid")
    assert run("ca", "show", "ca/ca.pem", "--ca", "ca/ca.pem").output.rstrip().endswith("valid")
    init = json.loads(run("ca", "init", "--name", "Other", "--out-dir", "other", "--json", *FAST).output)
    assert init["genesis_ca_cert_hex"].startswith("30")  # DER, for the genesis "ca_certs"


def test_revoke_writes_a_standard_crl(pki):
    run("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "observer", "--name", "node0", "--out", "node0.pem")
    serial = json.loads(run("ca", "show", "node0.pem", "--json").output)["certificates"][0]["serial"]
    out = run("ca", "revoke", "--agency-dir", "agency-a", "--serial", serial).output
    assert "list #1, 1 serials" in out and "gov propose revoke-cert --crl agency-a/revoked.crl --issuer agency-a/agency.pem" in out
    assert "already revoked" in run("ca", "revoke", "--agency-dir", "agency-a", "--serial", serial).output
    assert read_crl_file(pki / "agency-a" / "revoked.crl").number == 2
    shown = refused("ca", "show", "node0.pem", "--ca", "ca/ca.pem", "--crl", "agency-a/revoked.crl", "--issuer", "agency-a/agency.pem")
    assert "INVALID: node certificate 'node0'" in shown and "is revoked" in shown
    assert "1 serials" in run("ca", "show", "agency-a/revoked.crl").output
    assert "a serial is 1 to 40 hex digits" in refused("ca", "revoke", "--agency-dir", "agency-a", "--serial", "xyz")
    assert "one of them" in refused("ca", "revoke", "--serial", "01")


def test_refusals_name_the_file(pki):
    run("ca", "init", "--name", "Other CA", "--out-dir", "other", *FAST)
    run("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "node0.pem")
    out = refused("ca", "show", "node0.pem", "--ca", "other/ca.pem")
    assert "INVALID: wrong or missing CA" in out and "not a root CA of this chain" in out
    shutil.copy("other/ca.pem", "agency-a/ca.pem")  # an agency directory with the wrong CA beside it
    out = refused("ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "a.pem")
    assert "agency-a/agency.pem or agency-a/ca.pem" in out and "copy the ca.pem of the CA that issued the agency" in out
    assert "already exists" in refused("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer",
                                       "--name", "node0", "--out", "node0.pem")
    assert "not found" in refused("ca", "show", "missing.pem")
    Path("junk.pem").write_text("hello")
    assert "junk.pem" in refused("ca", "show", "junk.pem")
    assert "--crl needs --ca" in refused("ca", "show", "node0.pem", "--crl", "x.crl")


def test_old_format_files_name_the_conversion(pki):
    out = refused("ca", "show", str(FIXTURE_0_1 / "node0" / "node.chain"))
    assert "certificate format of chainnode 0.1, before X.509" in out and "devnet migrate --dir" in out


@needs_openssl
def test_a_chain_issued_here_passes_openssl_verify(pki):
    run("ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "node0.pem")
    chain = read_chain_file(pki / "node0.pem")
    (pki / "leaf.pem").write_bytes(chain.to_pem().split(b"-----END CERTIFICATE-----\n")[0] + b"-----END CERTIFICATE-----\n")
    # OpenSSL 3.0 applies -vfyopt distid at depth 0 only: one link at a time (research/x509-sm2.md).
    assert "OK" in openssl(pki, "verify", "-CAfile", "ca/ca.pem", "-vfyopt", DISTID, "agency-a/agency.pem")
    assert "OK" in openssl(pki, "verify", "-CAfile", "agency-a/agency.pem", "-partial_chain", "-vfyopt", DISTID, "leaf.pem")
    text = openssl(pki, "x509", "-in", "leaf.pem", "-noout", "-text")
    assert "OU = sealer" in text and f"URI:p2p:{chain.leaf.peer_id}" in text and "SM2-with-SM3" in text


@needs_openssl
def test_sign_csr_of_openssl_requests(pki):
    tool = Openssl(pki, "sm")
    tool.key("member")
    openssl(pki, "req", "-new", "-key", "member.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=node9/O=Bank A", "-out", "node9.csr")
    pid = peer_id("node0.key")
    out = run("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "node9.csr", "--role", "sealer", "--peer-id", pid, "--out", "node9.pem")
    assert "wrote node9.pem (chain: node9 <- Bank A <- Consortium CA)" in out.output
    leaf = read_chain_file(pki / "node9.pem").leaf
    pub = openssl(pki, "pkey", "-in", "member.key", "-pubout")
    assert leaf.peer_id == pid and run("ca", "show", "node9.pem", "--ca", "ca/ca.pem").output.rstrip().endswith("valid")
    assert "BEGIN PUBLIC KEY" in pub  # the private key never left this folder: only the request travelled
    # A member's agency: its own key, certified by the consortium CA.
    openssl(pki, "req", "-new", "-key", "member.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=Bank B/O=Bank B", "-out", "agency-b.csr")
    run("ca", "sign-csr", "--ca-dir", "ca", "--csr", "agency-b.csr", "--out", "agency-b.pem")
    assert run("ca", "show", "agency-b.pem", "--ca", "ca/ca.pem").output.rstrip().endswith("valid")

    wrong_org = refused("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "agency-b.csr", "--role", "user", "--out", "x.pem")
    assert "agency mismatch" in wrong_org and "-subj '/CN=Bank B/O=Bank A'" in wrong_org
    assert "pass --peer-id" in refused("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "node9.csr", "--role", "observer", "--out", "y.pem")
    tampered = bytearray((pki / "node9.csr").read_bytes())
    tampered[60] ^= 1
    (pki / "bad.csr").write_bytes(bytes(tampered))
    assert "bad.csr" in refused("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "bad.csr", "--role", "user", "--out", "z.pem")
    ed = Openssl(pki, "ed25519")
    ed.key("ed")
    openssl(pki, "req", "-new", "-key", "ed.key", "-subj", "/CN=ed/O=Bank A", "-out", "ed.csr")
    assert "is a ed25519 key" in refused("ca", "sign-csr", "--agency-dir", "agency-a", "--csr", "ed.csr", "--role", "user", "--out", "e.pem")


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
    (tmp_path / "node.cnf").write_text("[node]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\n"
                                       "subjectAltName=URI:p2p:12D3KooWDi8BtYG9i9d5Z6wEocyshEXaCb3UazfCDSy8JLf3f9Ms\n")
    openssl(tmp_path, "req", "-new", "-key", "node.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=node-m/O=Bank M/OU=observer", "-out", "node.csr")
    openssl(tmp_path, "x509", "-req", "-in", "node.csr", "-CA", "agency.pem", "-CAkey", "agency.key", "-CAcreateserial", "-sm3",
            "-sigopt", DISTID, "-vfyopt", DISTID, "-extfile", "node.cnf", "-extensions", "node", "-days", "30", "-out", "node.pem")
    (tmp_path / "chain.pem").write_bytes((tmp_path / "node.pem").read_bytes() + (tmp_path / "agency.pem").read_bytes())
    shown = run("ca", "show", "chain.pem", "--ca", "root.pem").output
    assert "node: node-m" in shown and "role:         observer" in shown and shown.rstrip().endswith("valid")
    # The same node certificate without its role is refused with the reason.
    (tmp_path / "plain.cnf").write_text("[node]\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n")
    openssl(tmp_path, "req", "-new", "-key", "node.key", "-sm3", "-sigopt", DISTID, "-subj", "/CN=node-m/O=Bank M", "-out", "plain.csr")
    openssl(tmp_path, "x509", "-req", "-in", "plain.csr", "-CA", "agency.pem", "-CAkey", "agency.key", "-CAcreateserial", "-sm3",
            "-sigopt", DISTID, "-vfyopt", DISTID, "-extfile", "plain.cnf", "-extensions", "node", "-days", "30", "-out", "plain.pem")
    (tmp_path / "plain-chain.pem").write_bytes((tmp_path / "plain.pem").read_bytes() + (tmp_path / "agency.pem").read_bytes())
    assert "names no chainnode role: its subject's OU must be one of" in refused("ca", "show", "plain-chain.pem", "--ca", "root.pem")

"""`chainnode ca` end to end in a temporary directory, including the messages that name the file."""

import json
import shutil

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.crypto import get_suite
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.security.certs import CertChain, decode_document, read_cert_file, read_crl_file, read_document
from chainnode.security.keyfile import load_key

FAST = ["--scrypt-n", "1024"]
ENV = {"CHAINNODE_PASSWORD": "pw"}


def run(tmp_path, *args, ok=True):
    result = CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def pki(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    run(tmp_path, "ca", "init", "--name", "Consortium CA", "--out-dir", "ca", *FAST)
    run(tmp_path, "ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank A", "--out-dir", "agency-a", *FAST)
    run(tmp_path, "keygen", "--out", "node0.key", *FAST)
    run(tmp_path, "keygen", "--out", "alice.key", *FAST)
    return tmp_path


def test_end_to_end(pki):
    r = run(pki, "ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "node0.chain", "--json")
    out = json.loads(r.output)
    # The peer id was derived from the node key, as the node itself derives it.
    kp = load_key("node0.key", "pw")
    assert out["peer_id"] == peer_id_from_seed(host_seed_from_consensus_key(get_suite("sm"), kp.private_key))
    assert out["public_key"] == kp.public_key.hex() and out["organisation"] == "Bank A" and out["role"] == "sealer"
    chain = decode_document(read_document("node0.chain"), "node0.chain")
    assert isinstance(chain, CertChain) and chain.ca == read_cert_file("ca/ca.cert") == read_cert_file("agency-a/ca.cert")

    r = run(pki, "ca", "show", "node0.chain", "--ca", "ca/ca.cert")
    assert r.output.strip().endswith("valid") and "peer id:      12D3KooW" in r.output

    r = run(pki, "ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "governor", "--name", "alice", "--out", "alice.chain")
    assert "chain: Consortium CA -> Bank A -> alice" in r.output
    r = run(pki, "ca", "show", "alice.chain", "--ca", "ca/ca.cert", "--json")
    assert json.loads(r.output)["valid"] is True

    # Revoke the node; the list is CA-signed and verification now names the reason.
    serial = out["serial"]
    r = run(pki, "ca", "revoke", "--ca-dir", "ca", "--serial", serial, "--json")
    assert json.loads(r.output)["number"] == 1
    r = run(pki, "ca", "revoke", "--ca-dir", "ca", "--serial", serial)
    assert "already revoked" in r.output
    assert read_crl_file("ca/revoked.crl").number == 2
    r = run(pki, "ca", "show", "node0.chain", "--ca", "ca/ca.cert", "--crl", "ca/revoked.crl", ok=False)
    assert r.exit_code == 1 and f"INVALID: node certificate 'node0' (serial {serial}) is revoked" in r.output
    run(pki, "ca", "show", "alice.chain", "--ca", "ca/ca.cert", "--crl", "ca/revoked.crl")
    r = run(pki, "ca", "show", "ca/revoked.crl")
    assert serial in r.output

    # Expired: verify as of two years from now.
    r = run(pki, "ca", "show", "node0.chain", "--ca", "ca/ca.cert", "--now-ms", str(out["not_after_ms"] + 1), ok=False)
    assert r.exit_code == 1 and "expired on" in r.output


def test_explicit_peer_id_needs_no_node_password(pki):
    peer_id = peer_id_from_seed(b"\x01" * 32)
    # The agency password comes from a file; no node key password is given anywhere.
    (pki / "pw.txt").write_text("pw\n")
    r = CliRunner().invoke(
        main,
        ["ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "observer", "--name", "n1", "--out", "n1.chain", "--peer-id", peer_id, "--password-file", "pw.txt"],
        env={"CHAINNODE_PASSWORD": ""},
    )
    assert r.exit_code == 0, r.output
    assert peer_id in r.output
    r = CliRunner().invoke(main, ["ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "observer", "--name", "n2", "--out", "n2.chain", "--peer-id", "QmBogus"], env=ENV)
    assert r.exit_code == 1 and "--peer-id" in r.output


def test_wrong_ca_names_the_file(pki):
    run(pki, "ca", "init", "--name", "Other CA", "--out-dir", "other", *FAST)
    shutil.copyfile("other/ca.cert", "agency-a/ca.cert")
    r = run(pki, "ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "x.chain", ok=False)
    assert r.exit_code == 1
    assert "wrong or missing CA: agency-a/agency.cert ('Bank A') was not issued by the CA in agency-a/ca.cert ('Other CA')" in r.output
    assert r.output.count("\n") == 1  # one line, no traceback


def test_missing_ca_names_the_file(pki):
    (pki / "agency-a" / "ca.cert").unlink()
    r = run(pki, "ca", "issue-client", "--agency-dir", "agency-a", "--key", "alice.key", "--role", "user", "--name", "a", "--out", "a.chain", ok=False)
    assert r.exit_code == 1 and "wrong or missing CA: agency-a/ca.cert not found" in r.output and "--agency-dir" in r.output


def test_agency_mismatch_names_the_files(pki):
    run(pki, "ca", "issue-agency", "--ca-dir", "ca", "--name", "Bank B", "--out-dir", "agency-b", *FAST)
    shutil.copyfile("agency-b/agency.key", "agency-a/agency.key")
    r = run(pki, "ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "x.chain", ok=False)
    assert r.exit_code == 1 and "agency mismatch: agency-a/agency.key does not belong to agency-a/agency.cert ('Bank A')" in r.output


def test_show_against_another_ca(pki):
    run(pki, "ca", "issue-node", "--agency-dir", "agency-a", "--key", "node0.key", "--role", "sealer", "--name", "node0", "--out", "node0.chain")
    run(pki, "ca", "init", "--name", "Other CA", "--out-dir", "other", *FAST)
    r = run(pki, "ca", "show", "node0.chain", "--ca", "other/ca.cert", ok=False)
    assert r.exit_code == 1 and "INVALID: wrong or missing CA" in r.output and "'Other CA'" in r.output
    r = run(pki, "ca", "show", "agency-a/agency.cert", "--ca", "other/ca.cert", ok=False)
    assert "wrong or missing CA: the agency certificate of 'Bank A'" in r.output
    run(pki, "ca", "show", "agency-a/agency.cert", "--ca", "ca/ca.cert")


def test_input_errors_are_one_line(pki):
    cases = [
        (["ca", "show", "nope.cert"], "nope.cert not found"),
        (["ca", "show", "node0.key"], "node0.key is not a chainnode certificate"),
        (["ca", "issue-agency", "--ca-dir", "nowhere", "--name", "X", "--out-dir", "x"], "nowhere/ca.cert not found; pass the --ca-dir"),
        (["ca", "init", "--name", "again", "--out-dir", "ca"], "ca/ca.key already exists; choose another --out-dir"),
        (["ca", "revoke", "--ca-dir", "ca", "--serial", "zz"], "--serial 'zz' is not hex"),
        (["ca", "issue-client", "--agency-dir", "agency-a", "--key", "missing.key", "--role", "user", "--name", "a", "--out", "a.chain"], "missing.key not found"),
    ]
    for args, message in cases:
        r = CliRunner().invoke(main, args, env=ENV)
        assert r.exit_code == 1, (args, r.output)
        assert message in r.output and "Traceback" not in r.output, (args, r.output)


def test_wrong_suite_key_is_refused(pki):
    run(pki, "keygen", "--suite", "ed25519", "--out", "ed.key", *FAST)
    r = run(pki, "ca", "issue-client", "--agency-dir", "agency-a", "--key", "ed.key", "--role", "user", "--name", "e", "--out", "e.chain", ok=False)
    assert "ed.key is a ed25519 key but agency-a/agency.cert is for suite sm" in r.output


def test_edited_file_is_refused(pki):
    doc = json.loads((pki / "agency-a" / "agency.cert").read_text())
    doc["subject"] = "Bank Z"
    (pki / "edited.cert").write_text(json.dumps(doc))
    r = run(pki, "ca", "show", "edited.cert", ok=False)
    assert "edited.cert: the readable subject/kind do not match" in r.output
    doc = json.loads((pki / "agency-a" / "agency.cert").read_text())
    doc["cert"] = doc["cert"][:-2] + ("00" if doc["cert"][-2:] != "00" else "01")
    (pki / "tampered.cert").write_text(json.dumps(doc))
    r = run(pki, "ca", "show", "tampered.cert", "--ca", "ca/ca.cert", ok=False)
    assert r.exit_code == 1 and "bad signature" in r.output

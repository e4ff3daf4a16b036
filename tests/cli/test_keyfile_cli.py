"""Encrypted key files and the `chainnode keygen` / `key show` commands."""

import json
import os
import stat
import subprocess
import sys

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.crypto import get_suite
from chainnode.security.keyfile import KeyFileError, WrongPassword, decrypt_key, encrypt_key, load_key, write_key_file

FAST_N = 1024  # scrypt cost for tests; the default is 2**15


@pytest.mark.parametrize("suite_name,cipher", [("sm", "sm4-gcm"), ("ed25519", "aes-256-gcm")])
def test_round_trip(tmp_path, suite_name, cipher):
    suite = get_suite(suite_name)
    priv, pub = suite.generate_keypair()
    doc = encrypt_key(suite_name, priv, "pässword", scrypt_n=FAST_N)
    assert doc["cipher"]["name"] == cipher and priv.hex() not in json.dumps(doc)
    path = tmp_path / "k.key"
    write_key_file(path, doc)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    kp = load_key(path, "pässword")
    assert (kp.private_key, kp.public_key, kp.address) == (priv, pub, suite.address(pub))


def test_wrong_password(tmp_path):
    doc = encrypt_key("sm", get_suite("sm").generate_keypair()[0], "right", scrypt_n=FAST_N)
    with pytest.raises(WrongPassword, match="wrong password"):
        decrypt_key(doc, "wrong")


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(public_key=get_suite("sm").generate_keypair()[1].hex()), "wrong password|modified"),
        (lambda d: d.update(ciphertext=d["ciphertext"][:-2] + "00"), "wrong password|modified"),
        (lambda d: d.update(suite="ed25519"), "wrong password|modified|invalid"),
        (lambda d: d.update(format="other/1"), "not a chainnode key file"),
        (lambda d: d["kdf"].update(n=2**30), "out of bounds"),
        (lambda d: d["kdf"].update(n=1000), "out of bounds"),
        (lambda d: d["kdf"].update(r="8"), "integer"),
        (lambda d: d["kdf"].update(name="md5"), "unsupported key derivation"),
        (lambda d: d["cipher"].update(name="rot13"), "unsupported cipher"),
        (lambda d: d["cipher"].update(nonce="zz"), "malformed"),
        (lambda d: d.pop("kdf"), "missing"),
        (lambda d: d.update(suite="rsa"), "unknown suite"),
    ],
)
def test_tampered_or_hostile_files(edit, match):
    doc = encrypt_key("sm", get_suite("sm").generate_keypair()[0], "pw", scrypt_n=FAST_N)
    edit(doc)
    with pytest.raises(KeyFileError, match=match):
        decrypt_key(doc, "pw")


def test_empty_password_refused():
    with pytest.raises(KeyFileError, match="empty"):
        encrypt_key("sm", get_suite("sm").generate_keypair()[0], "")


@pytest.mark.parametrize("content,match", [(b"\x00\xff", "not JSON"), (b"[1,2]", "not a chainnode key file"), (b"x" * 70000, "larger than")])
def test_unreadable_files(tmp_path, content, match):
    path = tmp_path / "k.key"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match=match):
        load_key(path, "pw")
    with pytest.raises(KeyFileError, match="not found"):
        load_key(tmp_path / "missing.key", "pw")


def run(args, env=None, input=None):
    return CliRunner().invoke(main, args, env=env or {}, input=input, catch_exceptions=False)


def test_keygen_and_show(tmp_path):
    out = tmp_path / "node.key"
    r = run(["keygen", "--suite", "sm", "--out", str(out), "--scrypt-n", str(FAST_N), "--json"], env={"CHAINNODE_PASSWORD": "secret"})
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert len(bytes.fromhex(info["public_key"])) == 65 and len(bytes.fromhex(info["address"])) == 20
    assert load_key(out, "secret").address.hex() == info["address"]
    shown = run(["key", "show", str(out), "--json"])
    assert json.loads(shown.output)["address"] == info["address"]
    ok = run(["key", "show", str(out), "--check-password"], env={"CHAINNODE_PASSWORD": "secret"})
    assert ok.exit_code == 0 and "password:   ok" in ok.output
    bad = run(["key", "show", str(out), "--check-password"], env={"CHAINNODE_PASSWORD": "nope"})
    assert bad.exit_code == 1 and "wrong password" in bad.output
    again = run(["keygen", "--out", str(out), "--scrypt-n", str(FAST_N)], env={"CHAINNODE_PASSWORD": "secret"})
    assert again.exit_code == 1 and "already exists" in again.output


def test_keygen_password_file_and_missing_password(tmp_path):
    pw = tmp_path / "pw.txt"
    pw.write_text("from-file\n")
    r = run(["keygen", "--suite", "ed25519", "--out", str(tmp_path / "a.key"), "--password-file", str(pw), "--scrypt-n", str(FAST_N)])
    assert r.exit_code == 0 and "address:" in r.output
    assert load_key(tmp_path / "a.key", "from-file").suite == "ed25519"
    r = run(["keygen", "--out", str(tmp_path / "b.key")])
    assert r.exit_code == 1 and "--password-file" in r.output
    r = run(["keygen", "--out", str(tmp_path / "c.key"), "--password-file", str(tmp_path / "missing")])
    assert r.exit_code == 1 and "cannot read password file" in r.output


def test_installed_command_fails_with_one_line_not_a_traceback(tmp_path):
    cmd = os.path.join(os.path.dirname(sys.executable), "chainnode")
    p = subprocess.run([cmd, "key", "show", str(tmp_path / "none.key")], capture_output=True, text=True)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and "not found" in p.stderr

"""`chainnode keygen --pem` and `chainnode key import` against the `openssl` command line:
the PEM keygen writes is read by `openssl pkey` with the same public key, keys made by
`openssl genpkey` (SM2, Ed25519; plain or encrypted) become key files that sign, and every
refusal is one line with exit status 1, never a traceback."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from asn1crypto import keys
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.crypto import get_suite
from chainnode.security.keyfile import load_key

FAST = ["--scrypt-n", "1024"]
FAST_PEM = ["--pem-iterations", "1000"]
ENV = {"CHAINNODE_PASSWORD": "pw"}
GENPKEY = {"sm": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2"], "ed25519": ["-algorithm", "ED25519"]}
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")


def run(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def refused(*args: str) -> str:
    result = run(*args, ok=False)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    return result.output


def openssl(folder: Path, *args: str) -> bytes:
    return subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True).stdout


def openssl_public_key(folder: Path, pem_name: str, *passin: str) -> bytes:
    """The raw public key (65-byte SM2 point, 32-byte Ed25519 key) `openssl pkey -pubout` prints."""
    der = openssl(folder, "pkey", "-in", pem_name, *passin, "-pubout", "-outform", "DER")
    return keys.PublicKeyInfo.load(der)["public_key"].native


@needs_openssl
@pytest.mark.parametrize("suite", ["sm", "ed25519"])
def test_keygen_pem_is_read_by_openssl(tmp_path, suite):
    (tmp_path / "pw").write_text("pässword\n")
    out = run("keygen", "--suite", suite, "--out", str(tmp_path / "k.key"), "--pem", str(tmp_path / "k.pem"),
              "--password-file", str(tmp_path / "pw"), "--json", *FAST, *FAST_PEM)
    doc = json.loads(out.output)
    assert doc["pem"] == str(tmp_path / "k.pem") and doc["suite"] == suite
    pem = tmp_path / "k.pem"
    assert pem.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert pem.stat().st_mode & 0o077 == 0
    # openssl reads the password file the same way: its first line.
    assert openssl_public_key(tmp_path, "k.pem", "-passin", "file:pw").hex() == doc["public_key"]
    assert load_key(tmp_path / "k.key", "pässword").public_key.hex() == doc["public_key"]
    with pytest.raises(subprocess.CalledProcessError):
        openssl(tmp_path, "pkey", "-in", "k.pem", "-passin", "pass:wrong", "-noout")


@needs_openssl
@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("suite", ["sm", "ed25519"])
def test_an_openssl_key_is_imported_and_signs(tmp_path, suite, encrypted):
    openssl(tmp_path, "genpkey", *GENPKEY[suite], *(["-aes-256-cbc", "-pass", "pass:x"] if encrypted else []), "-out", "o.pem")
    (tmp_path / "pem-pw").write_text("x\n")
    extra = ["--pem-password-file", str(tmp_path / "pem-pw")] if encrypted else []
    out = run("key", "import", str(tmp_path / "o.pem"), "--out", str(tmp_path / "o.key"), *extra, "--json", *FAST)
    assert json.loads(out.output)["suite"] == suite
    key = load_key(tmp_path / "o.key", "pw")
    assert key.suite == suite
    public_key = openssl_public_key(tmp_path, "o.pem", *(["-passin", "pass:x"] if encrypted else []))
    assert key.public_key == public_key
    s = get_suite(suite)
    assert s.verify(public_key, b"hello", s.sign(key.private_key, b"hello"))


@needs_openssl
def test_keygen_pem_imports_back_to_the_same_key(tmp_path):
    run("keygen", "--out", str(tmp_path / "a.key"), "--pem", str(tmp_path / "a.pem"), *FAST, *FAST_PEM)
    (tmp_path / "pw").write_text("pw\n")
    out = run("key", "import", str(tmp_path / "a.pem"), "--out", str(tmp_path / "b.key"), "--pem-password-file", str(tmp_path / "pw"), *FAST)
    assert out.output.startswith(f"wrote {tmp_path / 'b.key'} (sm) from {tmp_path / 'a.pem'}")
    assert load_key(tmp_path / "a.key", "pw").private_key == load_key(tmp_path / "b.key", "pw").private_key


@needs_openssl
def test_bad_pem_files_are_refused_with_what_to_do(tmp_path):
    openssl(tmp_path, "genpkey", *GENPKEY["sm"], "-aes-256-cbc", "-pass", "pass:x", "-out", "enc.pem")
    openssl(tmp_path, "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:1024", "-out", "rsa.pem")
    openssl(tmp_path, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", "p256.pem")
    (tmp_path / "garbage.pem").write_text("not a key")
    (tmp_path / "big.pem").write_bytes(b"A" * (70 * 1024))
    (tmp_path / "wrong").write_text("nope\n")
    cases = {
        "enc.pem": (["--pem-password-file", str(tmp_path / "wrong")], "wrong password for"),
        "rsa.pem": ([], "is a rsa key; chainnode keys are SM2"),
        "p256.pem": ([], "another curve than SM2"),
        "garbage.pem": ([], "is not PEM"),
        "big.pem": ([], "larger than"),
        "missing.pem": ([], "not found"),
    }
    for name, (extra, message) in cases.items():
        output = refused("key", "import", str(tmp_path / name), "--out", str(tmp_path / f"{name}.key"), *extra, *FAST)
        assert message in output, (name, output)
        assert not (tmp_path / f"{name}.key").exists()
    assert "is encrypted: give its password" in refused("key", "import", str(tmp_path / "enc.pem"), "--out", str(tmp_path / "x.key"), *FAST)


def test_keygen_refuses_before_writing_anything(tmp_path):
    k, p = str(tmp_path / "k.key"), str(tmp_path / "k.pem")
    assert "name the same file" in refused("keygen", "--out", k, "--pem", k, *FAST, *FAST_PEM)
    assert not Path(k).exists()
    Path(p).write_text("keep me")
    assert "k.pem already exists; choose another --pem" in refused("keygen", "--out", k, "--pem", p, *FAST, *FAST_PEM)
    assert not Path(k).exists() and Path(p).read_text() == "keep me"
    assert "cannot write" in refused("keygen", "--out", k, "--pem", str(tmp_path / "no" / "k.pem"), *FAST, *FAST_PEM)
    assert not Path(k).exists()
    run("keygen", "--out", k, "--pem", p, "--force", *FAST, *FAST_PEM)
    assert Path(p).read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    bad_cost = run("keygen", "--out", str(tmp_path / "c.key"), "--pem", str(tmp_path / "c.pem"), "--pem-iterations", "0", *FAST, ok=False)
    assert bad_cost.exit_code == 2 and not (tmp_path / "c.key").exists()


def test_key_import_refuses_a_taken_out_before_reading(tmp_path):
    (tmp_path / "o.key").write_text("keep me")
    output = refused("key", "import", str(tmp_path / "missing.pem"), "--out", str(tmp_path / "o.key"), *FAST)
    assert "o.key already exists; choose another --out" in output
    assert (tmp_path / "o.key").read_text() == "keep me"

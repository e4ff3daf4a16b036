"""Keys as PKCS#8 PEM, both ways with the `openssl` command line: `chainnode keygen --pem`
writes what `openssl pkey` reads, `chainnode key import` reads what `openssl genpkey` writes,
and bad files are refused with what to do."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.crypto import get_suite
from chainnode.security.keyfile import load_key

FAST = ["--scrypt-n", "1024"]
ENV = {"CHAINNODE_PASSWORD": "pw"}
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")
GENPKEY = {"sm": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2"], "ed25519": ["-algorithm", "ED25519"]}


def run(*args: str):
    return CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)


def openssl(folder, *args: str) -> bytes:
    return subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True).stdout


@pytest.mark.parametrize("suite", ["sm", "ed25519"])
def test_keygen_pem_is_read_by_openssl(tmp_path, suite):
    out = run("keygen", "--suite", suite, "--out", str(tmp_path / "k.key"), "--pem", str(tmp_path / "k.pem"), "--pem-iterations", "1000",
              "--json", *FAST)
    assert out.exit_code == 0, out.output
    public_key = json.loads(out.output)["public_key"]
    assert (tmp_path / "k.pem").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert (tmp_path / "k.pem").stat().st_mode & 0o077 == 0
    der = openssl(tmp_path, "pkey", "-in", "k.pem", "-passin", "pass:pw", "-pubout", "-outform", "DER")
    assert der.endswith(bytes.fromhex(public_key))
    with pytest.raises(subprocess.CalledProcessError):
        openssl(tmp_path, "pkey", "-in", "k.pem", "-passin", "pass:wrong", "-noout")


@pytest.mark.parametrize("encrypted", [False, True])
@pytest.mark.parametrize("suite", ["sm", "ed25519"])
def test_an_openssl_key_is_imported_and_signs(tmp_path, suite, encrypted):
    openssl(tmp_path, "genpkey", *GENPKEY[suite], *(["-aes-256-cbc", "-pass", "pass:x"] if encrypted else []), "-out", "o.pem")
    (tmp_path / "pem-pw").write_text("x\n")
    extra = ["--pem-password-file", str(tmp_path / "pem-pw")] if encrypted else []
    out = run("key", "import", str(tmp_path / "o.pem"), "--out", str(tmp_path / "o.key"), *extra, "--json", *FAST)
    assert out.exit_code == 0, out.output
    key = load_key(tmp_path / "o.key", "pw")
    assert key.suite == suite
    der = openssl(tmp_path, "pkey", "-in", "o.pem", *(["-passin", "pass:x"] if encrypted else []), "-pubout", "-outform", "DER")
    assert der.endswith(key.public_key)
    s = get_suite(suite)
    assert s.verify(key.public_key, b"hello", s.sign(key.private_key, b"hello"))


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
    }
    for name, (extra, message) in cases.items():
        out = run("key", "import", str(tmp_path / name), "--out", str(tmp_path / f"{name}.key"), *extra, *FAST)
        assert out.exit_code == 1 and message in out.output and "Traceback" not in out.output, (name, out.output)
        assert not (tmp_path / f"{name}.key").exists()
    out = run("key", "import", str(tmp_path / "enc.pem"), "--out", str(tmp_path / "x.key"), *FAST)
    assert out.exit_code == 1 and "is encrypted: give its password" in out.output

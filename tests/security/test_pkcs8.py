"""PKCS#8 PEM keys (chainnode/security/pkcs8.py): what `to_pem` writes (PBES2 with
PBKDF2-HMAC-SHA256 and AES-256-CBC around the RFC 5915 / RFC 8410 key), that `from_pem`
reads it back, reads what `cryptography` and `openssl` write, and refuses everything else
with a KeyFileError saying what to do; malformed DER is a KeyFileError, never a crash. The
command line on top is tested in tests/cli/test_cli_keygen_pem.py."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from asn1crypto import algos, core, keys, pem
from cryptography.hazmat.primitives import hashes, padding, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from chainnode.crypto import get_suite
from chainnode.security import pkcs8
from chainnode.security.keyfile import KeyFileError, WrongPassword
from chainnode.security.pkcs8 import SCRYPT_OID, ScryptParams, from_pem, to_pem

FAST = 1000  # PBKDF2 iterations for tests; the default is 600000
SM2_CURVE = "1.2.156.10197.1.301"
SM2_ORDER = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command line (`make test` installs it)")


def sm2_info(scalar: int, *, public_key: bytes | None = None, inner_curve: str | None = SM2_CURVE) -> keys.PrivateKeyInfo:
    """An unencrypted SM2 PrivateKeyInfo built field by field, to make bad ones."""
    fields = {"version": "ecPrivkeyVer1", "private_key": scalar}
    if inner_curve:
        fields["parameters"] = {"named": inner_curve}
    if public_key is not None:
        fields["public_key"] = public_key
    return keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ec", "parameters": {"named": SM2_CURVE}},
                                "private_key": keys.ECPrivateKey(fields)})


def armor(info: keys.Asn1Value, kind: str = "PRIVATE KEY") -> bytes:
    return pem.armor(kind, info.dump())


def encrypted_info(data: bytes) -> keys.EncryptedPrivateKeyInfo:
    return keys.EncryptedPrivateKeyInfo.load(pem.unarmor(data)[2])


@pytest.mark.parametrize("suite_name", ["sm", "ed25519"])
def test_round_trip(suite_name):
    priv, _ = get_suite(suite_name).generate_keypair()
    data = to_pem(suite_name, priv, "pässword", iterations=FAST)
    assert data.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert from_pem(data, "pässword") == (suite_name, priv)


def test_the_encryption_is_pbes2_pbkdf2_sha256_aes256_cbc_at_600000_iterations():
    priv, pub = get_suite("sm").generate_keypair()
    data = to_pem("sm", priv, "pw")  # the default cost, as keygen writes it
    params = encrypted_info(data)["encryption_algorithm"]["parameters"]
    kdf = params["key_derivation_func"]
    assert encrypted_info(data)["encryption_algorithm"]["algorithm"].native == "pbes2"
    assert kdf["algorithm"].native == "pbkdf2" and kdf["parameters"]["prf"]["algorithm"].native == "sha256"
    assert kdf["parameters"]["iteration_count"].native == 600_000 and len(kdf["parameters"]["salt"].native) == 16
    assert params["encryption_scheme"]["algorithm"].native == "aes256_cbc"
    assert from_pem(data, "pw") == ("sm", priv)


def test_sm2_inside_is_an_ec_private_key_with_its_curve_and_public_key():
    priv, pub = get_suite("sm").generate_keypair()
    data = to_pem("sm", priv, "pw", iterations=FAST)
    enc = encrypted_info(data)
    scheme = enc["encryption_algorithm"]["parameters"]["encryption_scheme"]
    salt = enc["encryption_algorithm"]["parameters"]["key_derivation_func"]["parameters"]["salt"].native
    key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=FAST).derive(b"pw")
    decryptor = Cipher(algorithms.AES(key), modes.CBC(scheme["parameters"].native)).decryptor()
    unpadder = padding.PKCS7(128).unpadder()
    der = unpadder.update(decryptor.update(enc["encrypted_data"].native) + decryptor.finalize()) + unpadder.finalize()
    info = keys.PrivateKeyInfo.load(der, strict=True)
    assert info["private_key_algorithm"]["algorithm"].dotted == "1.2.840.10045.2.1"
    assert info["private_key_algorithm"]["parameters"].chosen.dotted == SM2_CURVE
    inner = info["private_key"].parsed
    assert inner["version"].native == "ecPrivkeyVer1" and inner["parameters"].chosen.dotted == SM2_CURVE
    assert inner["private_key"].contents == priv and inner["public_key"].native == pub


def test_ed25519_interoperates_with_the_cryptography_package():
    priv, pub = get_suite("ed25519").generate_keypair()
    theirs = serialization.load_pem_private_key(to_pem("ed25519", priv, "pw", iterations=FAST), b"pw")
    assert theirs.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == pub
    key = ed25519.Ed25519PrivateKey.generate()
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    for encryption, password in ((serialization.NoEncryption(), None), (serialization.BestAvailableEncryption(b"x"), "x")):
        data = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        assert from_pem(data, password) == ("ed25519", seed)


def test_sm2_with_and_without_the_optional_fields_is_read():
    priv, pub = get_suite("sm").generate_keypair()
    d = int.from_bytes(priv, "big")
    for info in (sm2_info(d, public_key=pub), sm2_info(d, public_key=pub, inner_curve=None), sm2_info(d)):
        assert from_pem(armor(info), None) == ("sm", priv)


def test_a_wrong_password_is_wrong_password():
    priv, _ = get_suite("sm").generate_keypair()
    data = to_pem("sm", priv, "right", iterations=1)
    with pytest.raises(WrongPassword, match="wrong password for k.pem"):
        from_pem(data, "wrong", source="k.pem")
    with pytest.raises(KeyFileError, match="is encrypted: give its password"):
        from_pem(data, None)


def test_a_wrong_password_that_passes_the_padding_check_is_still_wrong_password():
    # About one wrong password in 256 decrypts to bytes that end in valid PKCS#7 padding.
    data = to_pem("sm", get_suite("sm").generate_keypair()[0], "right", iterations=1)
    enc = encrypted_info(data)
    params = enc["encryption_algorithm"]["parameters"]
    salt, iv = params["key_derivation_func"]["parameters"]["salt"].native, params["encryption_scheme"]["parameters"].native
    last_block = enc["encrypted_data"].native[-32:]
    for i in range(100_000):
        key = PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=1).derive(f"wrong{i}".encode())
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        if (decryptor.update(last_block) + decryptor.finalize())[-1] == 1:
            break
    with pytest.raises(WrongPassword, match="wrong password"):
        from_pem(data, f"wrong{i}")


@pytest.mark.parametrize("make,match", [
    (lambda: rsa.generate_private_key(65537, 1024), "is a rsa key; chainnode keys are SM2"),
    (lambda: ec.generate_private_key(ec.SECP256R1()), "another curve than SM2"),
    (lambda: x25519.X25519PrivateKey.generate(), "is a x25519 key"),
])
def test_keys_of_other_algorithms_are_refused(make, match):
    data = make().private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with pytest.raises(KeyFileError, match=match):
        from_pem(data, None)


@pytest.mark.parametrize("data,match", [
    (b"not a key", "is not PEM"),
    (b"", "is not PEM"),
    (b"\x30\x82\x01\x00" + bytes(256), "is DER, not PEM; convert it"),
    (b"A" * (pkcs8.PEM_BYTES_MAX + 1), "larger than"),
    (pem.armor("CERTIFICATE", b"\x30\x00"), "holds a PEM CERTIFICATE, not a PKCS#8"),
    (ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()), "holds a PEM EC PRIVATE KEY"),
    (pem.armor("PRIVATE KEY", b"\x30\x03\x02\x01\x00"), "not a valid PKCS#8 private key"),
    (pem.armor("ENCRYPTED PRIVATE KEY", b"\x04\x00"), "not a valid encrypted PKCS#8"),
])
def test_what_is_not_a_pkcs8_key_is_refused(data, match):
    with pytest.raises(KeyFileError, match=match):
        from_pem(data, "pw")


@pytest.mark.parametrize("info,match", [
    (sm2_info(0), "out of range"),
    (sm2_info(SM2_ORDER), "out of range"),
    (sm2_info(5, public_key=get_suite("sm").generate_keypair()[1]), "does not belong to its private key"),
    (sm2_info(5, inner_curve="1.2.840.10045.3.1.7"), "another curve inside"),
    (keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ed25519"}, "private_key": core.OctetString(bytes(31))}),
     "an Ed25519 private key is 32 bytes"),
])
def test_bad_keys_inside_are_refused(info, match):
    with pytest.raises(KeyFileError, match=match):
        from_pem(armor(info), None)


def _edit_kdf(data: bytes, edit) -> bytes:
    enc = encrypted_info(data)
    edit(enc["encryption_algorithm"]["parameters"])
    return armor(keys.EncryptedPrivateKeyInfo.load(enc.dump(force=True)), "ENCRYPTED PRIVATE KEY")


def _scrypt(n: int):
    def edit(params):
        params["key_derivation_func"] = algos.KdfAlgorithm({"algorithm": SCRYPT_OID, "parameters": ScryptParams(
            {"salt": bytes(16), "cost_parameter": n, "block_size": 8, "parallelization_parameter": 1})})
    return edit


@pytest.mark.parametrize("edit,match", [
    (lambda p: p["key_derivation_func"]["parameters"].__setitem__("iteration_count", pkcs8.PBKDF2_ITERATIONS_MAX + 1), "out of bounds"),
    (lambda p: p["key_derivation_func"]["parameters"].__setitem__("iteration_count", 0), "out of bounds"),
    (lambda p: p["key_derivation_func"]["parameters"].__setitem__("prf", {"algorithm": "sha3_256"}), "HMAC-sha3_256 is not read"),
    (lambda p: p["key_derivation_func"]["parameters"].__setitem__("key_length", 16), "key length 16 does not fit"),
    (lambda p: p.__setitem__("encryption_scheme", {"algorithm": "tripledes_3key", "parameters": bytes(8)}), "tripledes_3key, which is not read"),
    (lambda p: p["encryption_scheme"].__setitem__("parameters", bytes(8)), "IV or ciphertext is malformed"),
    (_scrypt(2**30), "scrypt parameters n=1073741824 r=8 p=1 are out of bounds"),
    (_scrypt(1000), "out of bounds"),
])
def test_hostile_or_unsupported_encryption_is_refused_before_deriving(edit, match):
    data = _edit_kdf(to_pem("sm", get_suite("sm").generate_keypair()[0], "pw", iterations=FAST), edit)
    with pytest.raises(KeyFileError, match=match):
        from_pem(data, "pw")


@pytest.mark.parametrize("suite_name", ["sm", "ed25519"])
def test_damaged_files_are_key_file_errors_never_crashes(suite_name):
    priv, pub = get_suite(suite_name).generate_keypair()
    encrypted = pem.unarmor(to_pem(suite_name, priv, "pw", iterations=1))[2]
    plain = (sm2_info(int.from_bytes(priv, "big"), public_key=pub) if suite_name == "sm" else
             keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ed25519"}, "private_key": core.OctetString(priv)})).dump()
    for kind, der in (("ENCRYPTED PRIVATE KEY", encrypted), ("PRIVATE KEY", plain)):
        damaged = [der[:i] for i in range(len(der))] + [der[:i] + bytes([der[i] ^ 0x41]) + der[i + 1:] for i in range(len(der))]
        for bad in damaged:
            try:
                from_pem(pem.armor(kind, bad), "pw")
            except KeyFileError:
                pass


def test_to_pem_refuses_what_it_cannot_write():
    priv, _ = get_suite("sm").generate_keypair()
    with pytest.raises(KeyFileError, match="must not be empty"):
        to_pem("sm", priv, "")
    with pytest.raises(KeyFileError, match="iterations"):
        to_pem("sm", priv, "pw", iterations=0)
    with pytest.raises(KeyFileError, match="cannot write the key as PKCS#8"):
        to_pem("sm", bytes(32), "pw", iterations=FAST)


@needs_openssl
@pytest.mark.parametrize("options", [
    ["-scrypt"],
    ["-v2", "aes-128-cbc", "-v2prf", "hmacWithSHA512"],
    ["-v2", "aes-192-cbc", "-v2prf", "hmacWithSHA1"],
])
def test_other_pbes2_choices_of_openssl_pkcs8_are_read(tmp_path, options):
    subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2", "-out", "k.pem"], cwd=tmp_path, check=True)
    subprocess.run(["openssl", "pkcs8", "-topk8", "-in", "k.pem", *options, "-passout", "pass:x", "-out", "e.pem"], cwd=tmp_path, check=True)
    assert from_pem((tmp_path / "e.pem").read_bytes(), "x") == from_pem((tmp_path / "k.pem").read_bytes(), None)


@needs_openssl
def test_pbes1_is_refused_with_how_to_re_encrypt(tmp_path):
    subprocess.run(["openssl", "genpkey", "-algorithm", "ED25519", "-out", "k.pem"], cwd=tmp_path, check=True)
    done = subprocess.run(["openssl", "pkcs8", "-topk8", "-in", "k.pem", "-v1", "PBE-SHA1-3DES", "-passout", "pass:x", "-out", "e.pem"],
                          cwd=tmp_path, capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"this openssl cannot write PBES1: {done.stderr.decode().strip()}")
    with pytest.raises(KeyFileError, match="which is not read .PBES2 is.; re-encrypt it: `openssl pkey"):
        from_pem((tmp_path / "e.pem").read_bytes(), "x")

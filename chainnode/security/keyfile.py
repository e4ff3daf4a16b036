"""Encrypted private key files.

A key file is JSON (so an operator can read the address and public key without the
password) whose private key is encrypted with an AEAD cipher under a key derived from a
password with scrypt (RFC 7914):

    {
      "format": "chainnode-key/1",
      "suite": "sm",                       # the crypto suite the key belongs to
      "address": "<40 hex>",
      "public_key": "<hex>",
      "kdf": {"name": "scrypt", "n": 32768, "r": 8, "p": 1, "salt": "<32 hex>"},
      "cipher": {"name": "sm4-gcm", "nonce": "<24 hex>"},
      "ciphertext": "<hex: encrypted private key || 16-byte tag>"
    }

The cipher is SM4-GCM (GB/T 32907) for the `sm` suite and AES-256-GCM for `ed25519`. The
format, suite and public key are authenticated as associated data, so editing any of them
makes decryption fail rather than pair the private key with a different public key.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from chainnode.crypto import SUITE_NAMES, get_suite
from chainnode.protocol.hexstr import parse_hex
from chainnode.store.files import read_json_file, write_atomic

FORMAT = "chainnode-key/1"
KEYFILE_BYTES_MAX = 64 * 1024
SCRYPT_N_DEFAULT = 2**15  # ~100 ms and 32 MiB on this class of machine
SCRYPT_N_BOUNDS = (2**10, 2**20)  # a hostile file cannot make us spend more
SCRYPT_R_MAX = 16
SCRYPT_P_MAX = 4
TAG_BYTES = 16
CIPHER_FOR_SUITE = {"sm": "sm4-gcm", "ed25519": "aes-256-gcm"}
_KEY_BYTES = {"sm4-gcm": 16, "aes-256-gcm": 32}


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the file and what to do."""


class WrongPassword(KeyFileError):
    pass


@dataclass(frozen=True)
class KeyPair:
    suite: str
    private_key: bytes
    public_key: bytes
    address: bytes


def _derive(password: str, salt: bytes, n: int, r: int, p: int, length: int) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=length)


def _aead(name: str, key: bytes, nonce: bytes, aad: bytes, data: bytes, *, encrypt: bool) -> bytes:
    algorithm = algorithms.SM4(key) if name == "sm4-gcm" else algorithms.AES(key)
    if encrypt:
        enc = Cipher(algorithm, modes.GCM(nonce)).encryptor()
        enc.authenticate_additional_data(aad)
        return enc.update(data) + enc.finalize() + enc.tag
    body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
    dec = Cipher(algorithm, modes.GCM(nonce, tag)).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(body) + dec.finalize()


def _aad(suite: str, public_key: bytes) -> bytes:
    return f"{FORMAT}|{suite}|".encode() + public_key


def encrypt_key(suite_name: str, private_key: bytes, password: str, *, scrypt_n: int = SCRYPT_N_DEFAULT) -> dict:
    """The key file document for `private_key` (checked against the suite)."""
    if not password:
        raise KeyFileError("the password must not be empty")
    suite = get_suite(suite_name)
    _, public_key = suite.keypair_from_private(private_key)
    cipher = CIPHER_FOR_SUITE[suite_name]
    salt, nonce = secrets.token_bytes(16), secrets.token_bytes(12)
    key = _derive(password, salt, scrypt_n, 8, 1, _KEY_BYTES[cipher])
    ciphertext = _aead(cipher, key, nonce, _aad(suite_name, public_key), private_key, encrypt=True)
    return {
        "format": FORMAT,
        "suite": suite_name,
        "address": suite.address(public_key).hex(),
        "public_key": public_key.hex(),
        "kdf": {"name": "scrypt", "n": scrypt_n, "r": 8, "p": 1, "salt": salt.hex()},
        "cipher": {"name": cipher, "nonce": nonce.hex()},
        "ciphertext": ciphertext.hex(),
    }


def decrypt_key(doc: dict, password: str, *, source: str = "key file") -> KeyPair:
    """Check the document's shape, derive the key and decrypt; `WrongPassword` on a bad password."""
    def bad(why: str) -> KeyFileError:
        return KeyFileError(f"{source}: {why}; regenerate it with `chainnode keygen` or restore it from a backup")

    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise bad(f"not a chainnode key file (expected format {FORMAT!r})")
    try:
        suite_name = doc["suite"]
        if suite_name not in SUITE_NAMES:
            raise bad(f"unknown suite {suite_name!r}")
        public_key = parse_hex(doc["public_key"], what="public_key")
        kdf, cipher = doc["kdf"], doc["cipher"]
        salt, nonce = parse_hex(kdf["salt"], what="kdf.salt"), parse_hex(cipher["nonce"], what="cipher.nonce")
        n, r, p = kdf["n"], kdf["r"], kdf["p"]
        ciphertext = parse_hex(doc["ciphertext"], what="ciphertext")
        cipher_name = cipher["name"]
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise bad(f"missing or malformed field ({exc})") from None
    if kdf.get("name") != "scrypt" or not all(type(x) is int for x in (n, r, p)):
        raise bad("unsupported key derivation (expected scrypt with integer n, r, p)")
    if not (SCRYPT_N_BOUNDS[0] <= n <= SCRYPT_N_BOUNDS[1] and n & (n - 1) == 0 and 1 <= r <= SCRYPT_R_MAX and 1 <= p <= SCRYPT_P_MAX):
        raise bad(f"scrypt parameters n={n} r={r} p={p} are out of bounds")
    if cipher_name not in _KEY_BYTES or len(nonce) != 12 or len(salt) < 16 or len(ciphertext) <= TAG_BYTES:
        raise bad("unsupported cipher or malformed nonce, salt or ciphertext")
    key = _derive(password, salt, n, r, p, _KEY_BYTES[cipher_name])
    try:
        private_key = _aead(cipher_name, key, nonce, _aad(suite_name, public_key), ciphertext, encrypt=False)
    except InvalidTag:
        raise WrongPassword(f"{source}: wrong password (or the file was modified); try again with the password it was created with") from None
    suite = get_suite(suite_name)
    try:
        _, derived = suite.keypair_from_private(private_key)
    except ValueError:
        raise bad("the decrypted private key is invalid for its suite") from None
    if derived != public_key:
        raise bad("the private key does not match the public key in the file")
    return KeyPair(suite_name, private_key, public_key, suite.address(public_key))


def write_key_file(path: str | os.PathLike, doc: dict, *, overwrite: bool = False) -> None:
    path = Path(path)
    if path.exists() and not overwrite:
        raise KeyFileError(f"{path} already exists; choose another --out, or delete it if you are sure")
    # Created 0600 from the start: the file never exists readable by others.
    write_atomic(path, (json.dumps(doc, indent=2) + "\n").encode(), mode=0o600)


def read_key_file(path: str | os.PathLike) -> dict:
    doc = read_json_file(
        path, noun="chainnode key file", max_bytes=KEYFILE_BYTES_MAX, error=KeyFileError,
        label="key file ", missing_hint=f"; create one with `chainnode keygen --out {path}`",
    )
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise KeyFileError(f"{path} is not a chainnode key file (expected format {FORMAT!r})")
    return doc


def load_key(path: str | os.PathLike, password: str) -> KeyPair:
    return decrypt_key(read_key_file(path), password, source=str(path))

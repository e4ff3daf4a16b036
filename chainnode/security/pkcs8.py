"""A private key as PKCS#8 PEM (RFC 5958), the form `openssl`, HSM export tools and the
members' own PKI read and write, beside chainnode's own key file (keyfile.py).

Written encrypted: PBES2 (RFC 8018) with PBKDF2-HMAC-SHA256 and AES-256-CBC, which is what
`openssl pkey -aes-256-cbc` writes and every OpenSSL 3 reads (`-----BEGIN ENCRYPTED PRIVATE
KEY-----`). Read: that, or an unencrypted `-----BEGIN PRIVATE KEY-----` as `openssl genpkey`
writes it. The key inside is an SM2 ECPrivateKey on the SM2 curve (RFC 5915, with its public
key) for the `sm` suite, an Ed25519 seed (RFC 8410) for `ed25519`.
"""

from __future__ import annotations

import secrets

from asn1crypto import algos, keys, pem
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from chainnode.crypto import get_suite
from chainnode.security.keyfile import KeyFileError
from chainnode.security.x509 import MALFORMED, SM2_CURVE

# asn1crypto sizes an ECPrivateKey's scalar from its curve; it knows the SM2 curve's OID but not its size.
if SM2_CURVE not in keys.NamedCurve._key_sizes:
    keys.NamedCurve.register("sm2", SM2_CURVE, 32)

PEM_BYTES_MAX = 64 * 1024
PBKDF2_ITERATIONS_DEFAULT = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256
PBKDF2_ITERATIONS_MAX = 10_000_000  # a file cannot make us spin for minutes


def to_pem(suite_name: str, private_key: bytes, password: str, *, iterations: int = PBKDF2_ITERATIONS_DEFAULT) -> bytes:
    """`private_key` of `suite_name` as encrypted PKCS#8 PEM."""
    suite = get_suite(suite_name)
    if suite_name == "sm":
        inner = keys.ECPrivateKey({"version": "ecPrivkeyVer1", "private_key": int.from_bytes(private_key, "big"),
                                   "parameters": {"named": SM2_CURVE}, "public_key": suite.public_key(private_key)})
        info = keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ec", "parameters": {"named": SM2_CURVE}},
                                    "private_key": inner})
    else:
        info = keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ed25519"}, "private_key": private_key})
    salt, iv = secrets.token_bytes(16), secrets.token_bytes(16)
    padder = padding.PKCS7(128).padder()
    plain = padder.update(info.dump()) + padder.finalize()
    encryptor = Cipher(algorithms.AES(_derive(password, salt, iterations)), modes.CBC(iv)).encryptor()
    encrypted = keys.EncryptedPrivateKeyInfo({
        "encryption_algorithm": {"algorithm": "pbes2", "parameters": {
            "key_derivation_func": {"algorithm": "pbkdf2", "parameters": {
                "salt": algos.Pbkdf2Salt(name="specified", value=salt), "iteration_count": iterations, "prf": {"algorithm": "sha256"}}},
            "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv}}},
        "encrypted_data": encryptor.update(plain) + encryptor.finalize(),
    })
    return pem.armor("ENCRYPTED PRIVATE KEY", encrypted.dump())


def from_pem(data: bytes, password: str | None, source: str = "the key") -> tuple[str, bytes]:
    """(suite name, private key) of a PKCS#8 PEM; KeyFileError saying what to do if it is
    not one we can use."""
    if len(data) > PEM_BYTES_MAX:
        raise KeyFileError(f"{source} is larger than {PEM_BYTES_MAX} bytes: not a PKCS#8 private key")
    try:
        kind, _, der = pem.unarmor(data)
    except ValueError:
        raise KeyFileError(f"{source} is not PEM; export the key as PKCS#8 (`openssl pkey -in KEY -out key.pem`)") from None
    try:
        if kind == "ENCRYPTED PRIVATE KEY":
            if password is None:
                raise KeyFileError(f"{source} is encrypted: give its password (--pem-password-file)")
            der = _decrypt(keys.EncryptedPrivateKeyInfo.load(der, strict=True), password, source)
        elif kind != "PRIVATE KEY":
            raise KeyFileError(f"{source} holds a PEM {kind}, not a PKCS#8 PRIVATE KEY (convert it: `openssl pkey -in KEY -out key.pem`)")
        return _key_of(keys.PrivateKeyInfo.load(der, strict=True), source)
    except KeyFileError:
        raise
    except MALFORMED as exc:
        raise KeyFileError(f"{source} is not a valid PKCS#8 private key ({exc})") from None


def _derive(password: str, salt: bytes, iterations: int) -> bytes:
    return PBKDF2HMAC(algorithm=hashes.SHA256(), length=32, salt=salt, iterations=iterations).derive(password.encode())


def _decrypt(encrypted: keys.EncryptedPrivateKeyInfo, password: str, source: str) -> bytes:
    algorithm = encrypted["encryption_algorithm"]
    if algorithm["algorithm"].native != "pbes2":
        raise KeyFileError(f"{source} is encrypted with {algorithm['algorithm'].native}; re-encrypt it with `openssl pkey -aes-256-cbc`")
    params = algorithm["parameters"]
    kdf, scheme = params["key_derivation_func"], params["encryption_scheme"]
    if kdf["algorithm"].native != "pbkdf2" or scheme["algorithm"].native != "aes256_cbc":
        raise KeyFileError(f"{source}: only PBKDF2 with AES-256-CBC is read; re-encrypt it with `openssl pkey -aes-256-cbc`")
    kdf_params = kdf["parameters"]
    iterations = kdf_params["iteration_count"].native
    if kdf_params["prf"]["algorithm"].native != "sha256" or not 1 <= iterations <= PBKDF2_ITERATIONS_MAX:
        raise KeyFileError(f"{source}: PBKDF2 must use HMAC-SHA256 and at most {PBKDF2_ITERATIONS_MAX} iterations")
    decryptor = Cipher(algorithms.AES(_derive(password, kdf_params["salt"].native, iterations)), modes.CBC(scheme["parameters"].native)).decryptor()
    try:
        padded = decryptor.update(encrypted["encrypted_data"].native) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise KeyFileError(f"wrong password for {source} (or the file is damaged)") from None


def _key_of(info: keys.PrivateKeyInfo, source: str) -> tuple[str, bytes]:
    algorithm = info["private_key_algorithm"]
    name = algorithm["algorithm"].native
    if name == "ec":
        curve = algorithm["parameters"]
        if curve.name != "named" or curve.chosen.dotted != SM2_CURVE:
            raise KeyFileError(f"{source} is an EC key on another curve than SM2; chainnode keys are SM2 or Ed25519")
        scalar = info["private_key"].parsed["private_key"].native
        if not 0 < scalar < 1 << 256:
            raise KeyFileError(f"{source}: the SM2 private key is out of range")
        private_key = scalar.to_bytes(32, "big")
        get_suite("sm").public_key(private_key)  # refuses a scalar outside the group
        return "sm", private_key
    if name == "ed25519":
        seed = info["private_key"].parsed.native
        if len(seed) != 32:
            raise KeyFileError(f"{source}: an Ed25519 private key is 32 bytes")
        return "ed25519", seed
    raise KeyFileError(f"{source} is a {name} key; chainnode keys are SM2 (`sm`) or Ed25519 (`ed25519`)")

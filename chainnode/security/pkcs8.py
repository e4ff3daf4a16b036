"""A private key as PKCS#8 PEM (RFC 5958), the form `openssl`, HSM export tools and the
members' own PKI read and write, beside chainnode's own key file (keyfile.py).

What is inside, per suite:

- `sm`: a PrivateKeyInfo whose algorithm is id-ecPublicKey (1.2.840.10045.2.1) with the
  named curve SM2 (1.2.156.10197.1.301), holding an ECPrivateKey (RFC 5915): the 32-byte
  scalar, the curve again and the public key 04 || x || y.
- `ed25519`: a PrivateKeyInfo with id-Ed25519 (1.3.101.112, RFC 8410) holding the 32-byte
  seed as an OCTET STRING.

Written encrypted (`-----BEGIN ENCRYPTED PRIVATE KEY-----`): PBES2 (RFC 8018) with
PBKDF2-HMAC-SHA256 and AES-256-CBC: what `openssl genpkey -aes-256-cbc` itself writes, so
every OpenSSL since 1.1 reads it, as do most other tools that read encrypted PKCS#8 (Java,
HSM import tools). scrypt would resist guessing better, but few tools besides OpenSSL read
it in PKCS#8; the chainnode key file beside the PEM already uses scrypt.

Read: an unencrypted `-----BEGIN PRIVATE KEY-----` as `openssl genpkey` writes it, or an
encrypted one with PBES2: PBKDF2 (HMAC-SHA1 or SHA-2) or scrypt, and AES-128/192/256-CBC.
Every file is untrusted: its size and its key derivation costs are bounded, and every
refusal is a one-line KeyFileError that says what to do.
"""

from __future__ import annotations

import hashlib
import secrets

from asn1crypto import algos, core, keys, pem
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.pbkdf2 import PBKDF2HMAC

from chainnode.crypto import InvalidKey, get_suite
from chainnode.security.keyfile import SCRYPT_N_BOUNDS, SCRYPT_P_MAX, SCRYPT_R_MAX, KeyFileError, WrongPassword
from chainnode.security.x509 import MALFORMED, SM2_CURVE

# asn1crypto sizes an ECPrivateKey's scalar from its curve; it knows the SM2 curve's OID but not its size.
if SM2_CURVE not in keys.NamedCurve._key_sizes:
    keys.NamedCurve.register("sm2", SM2_CURVE, 32)

PEM_BYTES_MAX = 64 * 1024  # an encrypted SM2 or Ed25519 key is under 400 bytes
PBKDF2_ITERATIONS_DEFAULT = 600_000  # OWASP's figure for PBKDF2-HMAC-SHA256 (~70 ms here)
PBKDF2_ITERATIONS_MAX = 10_000_000  # a hostile file cannot make us spin for more than a second or so
SCRYPT_OID = "1.3.6.1.4.1.11591.4.11"  # RFC 7914 7.1; asn1crypto does not know it
AES_BLOCK_BYTES = 16
SALT_BYTES = 16
_AES_KEY_BYTES = {"aes128_cbc": 16, "aes192_cbc": 24, "aes256_cbc": 32}
_PRF = {"sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}
_REENCRYPT = "re-encrypt it: `openssl pkey -in KEY -aes-256-cbc -out key.pem`"
_CONVERT = "convert it: `openssl pkey -in KEY -out key.pem`"


class ScryptParams(core.Sequence):
    """scrypt-params (RFC 7914 7.1), what `openssl pkcs8 -topk8 -scrypt` writes."""

    _fields = [
        ("salt", core.OctetString),
        ("cost_parameter", core.Integer),
        ("block_size", core.Integer),
        ("parallelization_parameter", core.Integer),
        ("key_length", core.Integer, {"optional": True}),
    ]


def to_pem(suite_name: str, private_key: bytes, password: str, *, iterations: int = PBKDF2_ITERATIONS_DEFAULT) -> bytes:
    """`private_key` of `suite_name` as encrypted PKCS#8 PEM (PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC)."""
    if not password:
        raise KeyFileError("the password must not be empty")
    if not 1 <= iterations <= PBKDF2_ITERATIONS_MAX:
        raise KeyFileError(f"PBKDF2 iterations must be between 1 and {PBKDF2_ITERATIONS_MAX}")
    try:
        _, public_key = get_suite(suite_name).keypair_from_private(private_key)
    except InvalidKey as exc:
        raise KeyFileError(f"cannot write the key as PKCS#8: {exc}") from None
    salt, iv = secrets.token_bytes(SALT_BYTES), secrets.token_bytes(AES_BLOCK_BYTES)
    padder = padding.PKCS7(AES_BLOCK_BYTES * 8).padder()
    plain = padder.update(_private_key_info(suite_name, private_key, public_key).dump()) + padder.finalize()
    key = _pbkdf2(password, salt, iterations, "sha256", _AES_KEY_BYTES["aes256_cbc"])
    encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    encrypted = keys.EncryptedPrivateKeyInfo({
        "encryption_algorithm": {"algorithm": "pbes2", "parameters": {
            "key_derivation_func": {"algorithm": "pbkdf2", "parameters": {
                "salt": algos.Pbkdf2Salt(name="specified", value=salt), "iteration_count": iterations,
                "prf": {"algorithm": "sha256"}}},
            "encryption_scheme": {"algorithm": "aes256_cbc", "parameters": iv}}},
        "encrypted_data": encryptor.update(plain) + encryptor.finalize(),
    })
    return pem.armor("ENCRYPTED PRIVATE KEY", encrypted.dump())


def from_pem(data: bytes, password: str | None, *, source: str = "the key") -> tuple[str, bytes]:
    """(suite name, private key) of a PKCS#8 PEM, encrypted or not; KeyFileError (WrongPassword
    for a wrong password) saying what to do if it is not a key chainnode can use. `source`
    names the file in messages."""
    if len(data) > PEM_BYTES_MAX:
        raise KeyFileError(f"{source} is larger than {PEM_BYTES_MAX} bytes, so not a PKCS#8 private key; is it the right file?")
    try:
        kind, _, der = pem.unarmor(data)
    except ValueError:
        if data[:1] == b"\x30":  # a DER SEQUENCE: the same key, not armored
            raise KeyFileError(f"{source} is DER, not PEM; convert it: `openssl pkey -inform DER -in KEY -out key.pem`") from None
        raise KeyFileError(f"{source} is not PEM; export the key as PKCS#8 PEM (`openssl pkey -in KEY -out key.pem`)") from None
    if kind == "ENCRYPTED PRIVATE KEY":
        if password is None:
            raise KeyFileError(f"{source} is encrypted: give its password (--pem-password-file FILE)")
        try:
            der = _decrypt(keys.EncryptedPrivateKeyInfo.load(der, strict=True), password, source)
        except KeyFileError:
            raise
        except MALFORMED as exc:
            raise KeyFileError(f"{source} is not a valid encrypted PKCS#8 private key ({exc}); export it again") from None
        try:
            return _key_of(keys.PrivateKeyInfo.load(der, strict=True), source)
        except KeyFileError:
            raise
        except MALFORMED:
            # A wrong password passes the CBC padding check about once in 256 tries; then
            # what it decrypted to is not DER, and that is the likeliest reason.
            raise WrongPassword(f"wrong password for {source} (or the file is damaged); try again with the password it was encrypted with") from None
    if kind != "PRIVATE KEY":
        raise KeyFileError(f"{source} holds a PEM {kind}, not a PKCS#8 PRIVATE KEY; {_CONVERT}")
    try:
        return _key_of(keys.PrivateKeyInfo.load(der, strict=True), source)
    except KeyFileError:
        raise
    except MALFORMED as exc:
        raise KeyFileError(f"{source} is not a valid PKCS#8 private key ({exc}); export it again") from None


def _private_key_info(suite_name: str, private_key: bytes, public_key: bytes) -> keys.PrivateKeyInfo:
    if suite_name == "sm":
        # The curve both outside and inside: RFC 5915 says an ECPrivateKey always names it
        # (openssl omits the inner one, and reads it either way).
        inner = keys.ECPrivateKey({"version": "ecPrivkeyVer1", "private_key": int.from_bytes(private_key, "big"),
                                   "parameters": {"named": SM2_CURVE}, "public_key": public_key})
        return keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ec", "parameters": {"named": SM2_CURVE}},
                                    "private_key": inner})
    return keys.PrivateKeyInfo({"version": 0, "private_key_algorithm": {"algorithm": "ed25519"},
                                "private_key": core.OctetString(private_key)})


def _pbkdf2(password: str, salt: bytes, iterations: int, prf: str, length: int) -> bytes:
    return PBKDF2HMAC(algorithm=_PRF[prf](), length=length, salt=salt, iterations=iterations).derive(password.encode())


def _derive(kdf: algos.KdfAlgorithm, password: str, length: int, source: str) -> bytes:
    """The cipher key of PBES2's key derivation function, its costs bounded first."""
    name = kdf["algorithm"].native
    if name == "pbkdf2":
        params = kdf["parameters"]
        if params["salt"].name != "specified":
            raise KeyFileError(f"{source}: PBKDF2 with an algorithm-chosen salt is not read; {_REENCRYPT}")
        iterations, prf = params["iteration_count"].native, params["prf"]["algorithm"].native
        if prf not in _PRF:
            raise KeyFileError(f"{source}: PBKDF2 with HMAC-{prf} is not read (HMAC-SHA1 or SHA-2 is); {_REENCRYPT}")
        if not 1 <= iterations <= PBKDF2_ITERATIONS_MAX:
            raise KeyFileError(f"{source}: PBKDF2 with {iterations} iterations is out of bounds (at most {PBKDF2_ITERATIONS_MAX}); {_REENCRYPT}")
        key_length = params["key_length"].native
        if key_length is not None and key_length != length:
            raise KeyFileError(f"{source}: the PBKDF2 key length {key_length} does not fit the cipher; export it again")
        return _pbkdf2(password, params["salt"].native, iterations, prf, length)
    if name == SCRYPT_OID:
        params = ScryptParams.load(kdf["parameters"].dump(), strict=True)
        n, r, p = (params[f].native for f in ("cost_parameter", "block_size", "parallelization_parameter"))
        if not (2 <= n <= SCRYPT_N_BOUNDS[1] and n & (n - 1) == 0 and 1 <= r <= SCRYPT_R_MAX and 1 <= p <= SCRYPT_P_MAX):
            raise KeyFileError(f"{source}: scrypt parameters n={n} r={r} p={p} are out of bounds; {_REENCRYPT}")
        key_length = params["key_length"].native
        if key_length is not None and key_length != length:
            raise KeyFileError(f"{source}: the scrypt key length {key_length} does not fit the cipher; export it again")
        return hashlib.scrypt(password.encode(), salt=params["salt"].native, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=length)
    raise KeyFileError(f"{source}: the key derivation {name} is not read (PBKDF2 and scrypt are); {_REENCRYPT}")


def _decrypt(encrypted: keys.EncryptedPrivateKeyInfo, password: str, source: str) -> bytes:
    """The DER PrivateKeyInfo inside; WrongPassword when the padding is wrong."""
    algorithm = encrypted["encryption_algorithm"]
    if algorithm["algorithm"].native != "pbes2":
        raise KeyFileError(f"{source} is encrypted with {algorithm['algorithm'].native}, which is not read (PBES2 is); {_REENCRYPT}")
    params = algorithm["parameters"]
    scheme = params["encryption_scheme"]
    cipher = scheme["algorithm"].native
    if cipher not in _AES_KEY_BYTES:
        raise KeyFileError(f"{source} is encrypted with {cipher}, which is not read (AES-CBC is); {_REENCRYPT}")
    iv, ciphertext = scheme["parameters"].native, encrypted["encrypted_data"].native
    if not isinstance(iv, bytes) or len(iv) != AES_BLOCK_BYTES or not ciphertext or len(ciphertext) % AES_BLOCK_BYTES:
        raise KeyFileError(f"{source}: the AES-CBC IV or ciphertext is malformed (the file is damaged); export it again")
    key = _derive(params["key_derivation_func"], password, _AES_KEY_BYTES[cipher], source)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(ciphertext) + decryptor.finalize()
    unpadder = padding.PKCS7(AES_BLOCK_BYTES * 8).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise WrongPassword(f"wrong password for {source} (or the file is damaged); try again with the password it was encrypted with") from None


def _is_sm2(parameters: keys.ECDomainParameters) -> bool:
    return parameters.name == "named" and parameters.chosen.dotted == SM2_CURVE


def _key_of(info: keys.PrivateKeyInfo, source: str) -> tuple[str, bytes]:
    algorithm = info["private_key_algorithm"]
    name = algorithm["algorithm"].native
    if name == "ec":
        if not _is_sm2(algorithm["parameters"]):
            raise KeyFileError(f"{source} is an EC key on another curve than SM2; chainnode keys are SM2 (`sm`) or Ed25519 (`ed25519`): "
                               "make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:SM2`")
        return "sm", _sm2_private_key(info["private_key"].parsed, source)
    if name == "ed25519":
        if not isinstance(algorithm["parameters"], core.Void):
            raise KeyFileError(f"{source}: an Ed25519 key has no algorithm parameters (RFC 8410); export it again")
        seed = info["private_key"].parsed.native
        if not isinstance(seed, bytes) or len(seed) != 32:
            raise KeyFileError(f"{source}: an Ed25519 private key is 32 bytes; export it again")
        return "ed25519", seed
    raise KeyFileError(f"{source} is a {name} key; chainnode keys are SM2 (`sm`) or Ed25519 (`ed25519`): "
                       "make one with `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:SM2` or `-algorithm ED25519`")


def _sm2_private_key(ec: keys.ECPrivateKey, source: str) -> bytes:
    """The 32-byte scalar of an ECPrivateKey, checked against its curve and its public key."""
    if ec["version"].native != "ecPrivkeyVer1":
        raise KeyFileError(f"{source}: not an RFC 5915 ECPrivateKey (version {ec['version'].native}); export it again")
    if not isinstance(ec["parameters"], core.Void) and not _is_sm2(ec["parameters"]):
        raise KeyFileError(f"{source}: the EC key names SM2 outside and another curve inside; export it again")
    scalar = ec["private_key"].native
    if not 0 < scalar < 1 << 256:
        raise KeyFileError(f"{source}: the SM2 private key is out of range; export it again")
    private_key = scalar.to_bytes(32, "big")
    try:
        public_key = get_suite("sm").public_key(private_key)
    except InvalidKey as exc:
        raise KeyFileError(f"{source}: {exc}; export it again") from None
    # openssl writes the public key beside the scalar; one that differs means a damaged or edited file.
    if not isinstance(ec["public_key"], core.Void) and ec["public_key"].native != public_key:
        raise KeyFileError(f"{source}: the public key in it does not belong to its private key (the file is damaged or edited); export it again")
    return private_key

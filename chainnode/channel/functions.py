"""The Noise functions of each crypto suite, plugged into `noiseprotocol`'s state machine.

`Noise_XX_SM2_SM4GCM_SM3` (the `sm` suite), in the Noise specification's terms (section 4):
- DH "SM2": ECDH on the SM2 curve (GB/T 32918.1), DHLEN = 65: a public key travels as the
  uncompressed point 04 || x || y, as the chain's SM2 public keys do; DH(s, P) is the
  32-byte big-endian x coordinate of s*P (libcrypto, chainnode.crypto.sm.SM2.ecdh). A
  point off the curve fails the handshake.
- cipher "SM4GCM": SM4 (GB/T 32907) in GCM mode (RFC 8998), 16-byte tag; the SM4 key is
  the first 16 bytes of Noise's 32-byte k; the 96-bit nonce is 32 zero bits then the
  64-bit counter n big-endian, as Noise's AESGCM.
- hash "SM3": SM3 (GB/T 32905), HASHLEN 32, BLOCKLEN 64; HMAC-SM3 and Noise's HKDF on it.

`Noise_XX_25519_ChaChaPoly_SHA256` (the `ed25519` suite) is the specification's own set;
the static X25519 key is the certified ed25519 key converted (RFC 7748 birational map, as
libsodium's crypto_sign_ed25519_*_to_curve25519), so it too is the certified key.
"""

from __future__ import annotations

from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher as _Cipher, algorithms, modes
from noise.backends.default.backend import DefaultNoiseBackend
from noise.backends.default.hashes import hmac_hash
from noise.exceptions import NoiseValueError
from noise.functions.cipher import Cipher
from noise.functions.dh import DH
from noise.functions.hash import Hash
from noise.functions.keypair import KeyPair

from chainnode.crypto import InvalidKey, get_suite
from chainnode.crypto.sm import SM2, sm3

SM_PROTOCOL_NAME = b"Noise_XX_SM2_SM4GCM_SM3"
ED25519_PROTOCOL_NAME = b"Noise_XX_25519_ChaChaPoly_SHA256"
PROTOCOL_NAMES = {"sm": SM_PROTOCOL_NAME, "ed25519": ED25519_PROTOCOL_NAME}
SM2_PUBLIC_KEY_BYTES = 65
GCM_TAG_BYTES = 16
SM4_KEY_BYTES = 16


def protocol_name(suite_name: str) -> bytes:
    try:
        return PROTOCOL_NAMES[suite_name]
    except KeyError:
        raise ValueError(f"no secure channel for crypto suite {suite_name!r}; known: {', '.join(PROTOCOL_NAMES)}") from None


@lru_cache(maxsize=1)
def _sm2() -> SM2:
    return SM2()


class SM2KeyPair(KeyPair):
    """`private` and `public` are the raw bytes the chain uses (32-byte d, 65-byte point)."""

    @classmethod
    def from_private_bytes(cls, private_bytes: bytes) -> "SM2KeyPair":
        try:
            public = _sm2().public_key(bytes(private_bytes))
        except InvalidKey as exc:
            raise NoiseValueError(str(exc)) from None
        return cls(private=bytes(private_bytes), public=public, public_bytes=public)

    @classmethod
    def from_public_bytes(cls, public_bytes: bytes) -> "SM2KeyPair":
        public = bytes(public_bytes)
        if len(public) != SM2_PUBLIC_KEY_BYTES or public[0] != 4:
            raise NoiseValueError("an SM2 public key is 65 bytes: 04 || x || y")
        return cls(public=public, public_bytes=public)


class SM2DH(DH):
    @property
    def klass(self):
        return SM2KeyPair

    @property
    def dhlen(self) -> int:
        return SM2_PUBLIC_KEY_BYTES

    def generate_keypair(self) -> SM2KeyPair:
        priv, pub = get_suite("sm").generate_keypair()
        return SM2KeyPair(private=priv, public=pub, public_bytes=pub)  # pub is derived already: not a second point multiplication

    def dh(self, private_key: bytes, public_key: bytes) -> bytes:
        try:
            return _sm2().ecdh(private_key, public_key)
        except InvalidKey as exc:
            raise NoiseValueError(str(exc)) from None


class SM4GCM:
    """An AEAD object in the shape noiseprotocol's ciphers use (cryptography has SM4 but no
    SM4-GCM AEAD class): `encrypt(nonce, data, ad)` -> ciphertext || tag; `decrypt` raises
    InvalidTag, which the Noise connection turns into a failed message."""

    def __init__(self, key: bytes) -> None:
        # Noise's cipher keys are 32 bytes (HKDF output); SM4 has a 128-bit key: it takes
        # the first 16 bytes, which keeps SM4's full strength (docs/protocol.md).
        self._algorithm = algorithms.SM4(bytes(key[:SM4_KEY_BYTES]))

    def encrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        enc = _Cipher(self._algorithm, modes.GCM(nonce)).encryptor()
        if associated_data:
            enc.authenticate_additional_data(associated_data)
        out = enc.update(data) + enc.finalize()
        return out + enc.tag

    def decrypt(self, nonce: bytes, data: bytes, associated_data: bytes | None) -> bytes:
        if len(data) < GCM_TAG_BYTES:
            raise InvalidTag()
        dec = _Cipher(self._algorithm, modes.GCM(nonce, data[-GCM_TAG_BYTES:])).decryptor()
        if associated_data:
            dec.authenticate_additional_data(associated_data)
        return dec.update(data[:-GCM_TAG_BYTES]) + dec.finalize()


class SM4GCMCipher(Cipher):
    @property
    def klass(self):
        return SM4GCM

    def encrypt(self, k, n, ad, plaintext):
        return self.cipher.encrypt(self.format_nonce(n), plaintext, ad)

    def decrypt(self, k, n, ad, ciphertext):
        return self.cipher.decrypt(self.format_nonce(n), ciphertext, ad)

    @staticmethod
    def format_nonce(n: int) -> bytes:
        return b"\x00\x00\x00\x00" + n.to_bytes(8, "big")


class SM3Hash(Hash):
    @property
    def fn(self):
        return hashes.SM3  # for HMAC (noiseprotocol's hmac_hash instantiates it)

    @property
    def hashlen(self) -> int:
        return 32

    @property
    def blocklen(self) -> int:
        return 64

    def hash(self, data: bytes) -> bytes:
        return sm3(bytes(data))


class ChainNoiseBackend(DefaultNoiseBackend):
    """The specification's functions plus the SM ones."""

    def __init__(self) -> None:
        super().__init__()
        self.diffie_hellmans["SM2"] = SM2DH
        self.keypairs["SM2"] = SM2KeyPair
        self.ciphers["SM4GCM"] = SM4GCMCipher
        self.hashes["SM3"] = SM3Hash
        self.hmac = hmac_hash


BACKEND = ChainNoiseBackend()


def static_private_key(suite_name: str, certified_priv: bytes) -> bytes:
    """The channel's static private key for the holder of `certified_priv`."""
    if suite_name == "sm":
        return certified_priv
    from nacl.bindings import crypto_sign_ed25519_sk_to_curve25519, crypto_sign_seed_keypair

    _, secret = crypto_sign_seed_keypair(certified_priv)
    return crypto_sign_ed25519_sk_to_curve25519(secret)


@lru_cache(maxsize=8)
def static_keypair(suite_name: str, certified_priv: bytes) -> KeyPair:
    """The channel's static key pair for the holder of `certified_priv`, derived once: every
    handshake of a node or client uses its one key, and deriving the public half is a point
    multiplication: one of five on each side of an SM handshake if done every time."""
    klass = SM2KeyPair if suite_name == "sm" else BACKEND.keypairs["25519"]
    return klass.from_private_bytes(static_private_key(suite_name, certified_priv))


def static_public_key(suite_name: str, certified_pub: bytes) -> bytes:
    """The channel static key a holder of the certificate for `certified_pub` must present."""
    if suite_name == "sm":
        return certified_pub
    from nacl.bindings import crypto_sign_ed25519_pk_to_curve25519

    try:
        return crypto_sign_ed25519_pk_to_curve25519(certified_pub)
    except Exception:  # PyNaCl raises RuntimeError for a point it cannot convert
        return b""

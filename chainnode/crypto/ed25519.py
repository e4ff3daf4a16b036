"""The `ed25519` suite: PyNaCl (libsodium) signatures with SHA-256 hashes."""

from __future__ import annotations

import hashlib
import secrets

import nacl.bindings as sodium
import nacl.exceptions

from chainnode.crypto.errors import CryptoUnavailable, InvalidKey

# RFC 8032 section 7.1, TEST 1: a start-up self-test that the library signs as the standard says.
_RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
_RFC8032_PUB = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
_RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
)


class Ed25519Suite:
    name = "ed25519"
    public_key_bytes = 32
    private_key_bytes = 32  # the RFC 8032 seed
    signature_bytes = 64

    def __init__(self) -> None:
        self._self_test()

    def generate_keypair(self) -> tuple[bytes, bytes]:
        # The private key is the 32-byte seed; the expanded secret is derived when signing.
        return self.keypair_from_private(secrets.token_bytes(32))

    def keypair_from_private(self, priv: bytes) -> tuple[bytes, bytes]:
        return priv, self.public_key(priv)

    def public_key(self, priv: bytes) -> bytes:
        if not isinstance(priv, bytes) or len(priv) != 32:
            raise InvalidKey("an ed25519 private key is a 32-byte seed")
        pub, _ = sodium.crypto_sign_seed_keypair(priv)
        return pub

    def sign(self, priv: bytes, msg: bytes) -> bytes:
        if not isinstance(priv, bytes) or len(priv) != 32:
            raise InvalidKey("an ed25519 private key is a 32-byte seed")
        _, secret = sodium.crypto_sign_seed_keypair(priv)
        return sodium.crypto_sign(msg, secret)[:64]

    def verify(self, pub: bytes, msg: bytes, sig: bytes) -> bool:
        if not (isinstance(pub, bytes) and isinstance(msg, bytes) and isinstance(sig, bytes)):
            return False
        if len(pub) != 32 or len(sig) != 64:
            return False
        try:
            sodium.crypto_sign_open(sig + msg, pub)
            return True
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError, ValueError, TypeError):
            return False

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def address(self, pub: bytes) -> bytes:
        return hashlib.sha256(pub).digest()[-20:]

    def _self_test(self) -> None:
        if self.public_key(_RFC8032_SEED) != _RFC8032_PUB or self.sign(_RFC8032_SEED, b"") != _RFC8032_SIG:
            raise CryptoUnavailable("libsodium failed the RFC 8032 self-test; reinstall PyNaCl")
        if not self.verify(_RFC8032_PUB, b"", _RFC8032_SIG) or self.verify(_RFC8032_PUB, b"x", _RFC8032_SIG):
            raise CryptoUnavailable("libsodium failed the RFC 8032 verification self-test; reinstall PyNaCl")

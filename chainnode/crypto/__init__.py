"""Crypto suites, fixed per chain at genesis.

A suite is one object with one interface, so nothing above this package knows which
algorithms a chain uses:

    suite = get_suite("sm")            # or "ed25519"
    priv, pub = suite.generate_keypair()
    sig = suite.sign(priv, msg)
    assert suite.verify(pub, msg, sig)  # never raises on bad input
    digest = suite.hash(data)           # 32 bytes
    addr = suite.address(pub)           # 20 bytes

`sm` is SM2 (GB/T 32918, distinguishing ID "1234567812345678") with SM3 through the
system libcrypto; `ed25519` is PyNaCl with SHA-256.

May import: nothing of chainnode
"""

from __future__ import annotations

from typing import Protocol

from chainnode.crypto.errors import CryptoUnavailable, InvalidKey

ADDRESS_BYTES = 20
ZERO_ADDRESS = bytes(ADDRESS_BYTES)  # the `to` of a deploy, the sender of a call nobody signed
HASH_BYTES = 32


class CryptoSuite(Protocol):
    name: str
    public_key_bytes: int
    private_key_bytes: int
    signature_bytes: int

    def generate_keypair(self) -> tuple[bytes, bytes]: ...
    def keypair_from_private(self, priv: bytes) -> tuple[bytes, bytes]: ...
    def public_key(self, priv: bytes) -> bytes: ...
    def sign(self, priv: bytes, msg: bytes) -> bytes: ...
    def verify(self, pub: bytes, msg: bytes, sig: bytes) -> bool: ...
    def hash(self, data: bytes) -> bytes: ...
    def address(self, pub: bytes) -> bytes: ...


SUITE_NAMES = ("sm", "ed25519")
_suites: dict[str, CryptoSuite] = {}


def get_suite(name: str) -> CryptoSuite:
    """Return the suite called `name` ("sm" or "ed25519"), self-tested on first use."""
    suite = _suites.get(name)
    if suite is not None:
        return suite
    if name == "sm":
        from chainnode.crypto.sm import SMSuite

        suite = SMSuite()
    elif name == "ed25519":
        from chainnode.crypto.ed25519 import Ed25519Suite

        suite = Ed25519Suite()
    else:
        raise ValueError(f"unknown crypto suite {name!r}: choose one of {', '.join(SUITE_NAMES)}")
    _suites[name] = suite
    return suite


__all__ = [
    "ADDRESS_BYTES",
    "HASH_BYTES",
    "CryptoSuite",
    "CryptoUnavailable",
    "InvalidKey",
    "SUITE_NAMES",
    "get_suite",
]

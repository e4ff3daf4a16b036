"""Accounts: a key pair of the chain's suite, and the transactions it signs."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass

from chainnode.crypto import CryptoSuite, get_suite
from chainnode.protocol.types import Transaction
from chainnode.security.keyfile import encrypt_key, load_key, write_key_file

DEFAULT_GAS_LIMIT = 10_000_000


@dataclass(frozen=True)
class Account:
    suite: CryptoSuite
    private_key: bytes
    public_key: bytes

    @property
    def address(self) -> bytes:
        return self.suite.address(self.public_key)

    @classmethod
    def generate(cls, suite: str = "sm") -> "Account":
        s = get_suite(suite)
        priv, pub = s.generate_keypair()
        return cls(s, priv, pub)

    @classmethod
    def load(cls, path: str | os.PathLike, password: str) -> "Account":
        """From an encrypted key file; raises `chainnode.security.keyfile.KeyFileError` (or `WrongPassword`)."""
        kp = load_key(path, password)
        return cls(get_suite(kp.suite), kp.private_key, kp.public_key)

    def save(self, path: str | os.PathLike, password: str) -> None:
        write_key_file(path, encrypt_key(self.suite.name, self.private_key, password))

    def transaction(
        self,
        *,
        chain_id: str,
        group_id: str,
        block_limit: int,
        to: bytes,
        method: str,
        args: list,
        gas_limit: int = DEFAULT_GAS_LIMIT,
        nonce: bytes | None = None,
    ) -> Transaction:
        """A signed transaction (a fresh random 16-byte nonce unless one is given)."""
        tx = Transaction(chain_id, group_id, nonce or secrets.token_bytes(16), block_limit, to, method, list(args), gas_limit, self.public_key)
        return tx.signed(self.suite, self.private_key)

"""The one signing rule of the node's own signed messages.

A signed object signs `DOMAIN + pack(unsigned_fields())`: a byte string naming what the
object is and its version (e.g. `b"chainnode/pbft/v1\\x00"`), then the canonical encoding
of every field but the signature. The domain keeps a signature made for one kind of
message from ever verifying as another, and a new version of a message gets a new domain.
PBFT messages (consensus/messages.py) and the network Hello (chainnode/network/handshake.py)
follow it.

Two signed objects do not, on purpose, because changing them would change what is already
signed and stored:
- a Transaction is signed over `suite.hash(pack(unsigned_fields()))` with no domain: its
  hash is its identity on chain, and its fields already bind it to one chain and group
  (`chain_id`, `group_id`), so it cannot be replayed elsewhere (chainnode/protocol/types.py);
- certificates and revocation lists are X.509 and sign their DER `tbsCertificate` /
  `tbsCertList` (chainnode/security/x509.py), a structure no other signed object shares.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, ClassVar, Self

from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import pack


class Signed:
    """Base of a frozen dataclass with a `signature: bytes` field signed under `DOMAIN`."""

    __slots__ = ()
    DOMAIN: ClassVar[bytes]
    signature: bytes

    def unsigned_fields(self) -> list[Any]:
        """Every field but the signature, in wire order."""
        raise NotImplementedError

    def signing_bytes(self) -> bytes:
        return self.DOMAIN + pack(self.unsigned_fields())

    def signed_with(self, suite: CryptoSuite, priv: bytes) -> Self:
        """A copy carrying the signature of `priv` over the signing bytes."""
        return replace(self, signature=suite.sign(priv, self.signing_bytes()))  # type: ignore[type-var]

    def signature_valid(self, suite: CryptoSuite, pub: bytes) -> bool:
        return suite.verify(pub, self.signing_bytes(), self.signature)

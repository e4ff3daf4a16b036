"""Host identity: the libp2p key is ed25519 derived from a 32-byte seed.

The consensus key (SM2 or ed25519, per the chain's suite) and the libp2p host key are
different keys. The node derives the host seed from its consensus private key so an
operator keeps one secret; genesis tools compute a node's peer id with
`peer_id_from_seed`. The handshake (handshake.py) binds the two keys on every connection.
"""

from __future__ import annotations

from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.keys import KeyPair
from libp2p.peer.id import ID

from chainnode.crypto import CryptoSuite

SEED_BYTES = 32
HOST_KEY_DOMAIN = b"chainnode/libp2p-key/v1"


def host_seed_from_consensus_key(suite: CryptoSuite, consensus_priv: bytes) -> bytes:
    """The 32-byte host key seed of a node, derived from its consensus private key."""
    seed = suite.hash(HOST_KEY_DOMAIN + consensus_priv)
    assert len(seed) == SEED_BYTES
    return seed


def keypair_from_seed(seed: bytes) -> KeyPair:
    if type(seed) is not bytes or len(seed) != SEED_BYTES:
        raise ValueError(f"a host key seed is {SEED_BYTES} bytes")
    return create_new_key_pair(seed)


def peer_id_from_seed(seed: bytes) -> str:
    """The base58 peer id ("12D3KooW...") of the host whose key seed is `seed`."""
    return ID.from_pubkey(keypair_from_seed(seed).public_key).to_base58()

"""The Hello handshake: proves a connected peer holds the consensus key listed for it and
runs the same genesis.

Noise already authenticates the libp2p peer id of the remote end. The Hello binds that
peer id to the consensus key: it is signed by the consensus key over (version, genesis
hash, sender peer id, receiver peer id, consensus public key). The receiver id in the
signed bytes means a Hello is only good towards one node, and the sender id must equal the
Noise-authenticated id, so a captured Hello is useless without the sender's host key;
no nonce is needed.

Wire: one frame (framing.py) each way on a `/chainnode/hello/1` stream; both sides send
their Hello at once and verify the other's, so both sides log why a handshake failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainnode.codec import DecodeError, expect_bytes, expect_list, expect_version, pack, unpack
from chainnode.crypto import CryptoSuite
from chainnode.network.errors import ProtocolViolation
from chainnode.network.peers import PeerTable

HELLO_VERSION = 1
HELLO_DOMAIN = b"chainnode/hello/v1"
PEER_ID_BYTES_MAX = 64
PUB_BYTES_MAX = 128
SIG_BYTES_MAX = 160

# Reasons, used verbatim in logs and counters.
WRONG_GENESIS = "wrong genesis"
UNKNOWN_PEER = "unknown peer"
KEY_MISMATCH = "key mismatch"
BAD_SIGNATURE = "bad signature"
BAD_HELLO = "bad hello"
WRONG_RECEIVER = "wrong receiver"
PEER_ID_MISMATCH = "peer id mismatch"


@dataclass(frozen=True)
class Hello:
    version: int
    genesis_hash: bytes
    sender: bytes  # raw libp2p peer id bytes
    receiver: bytes
    consensus_pub: bytes
    signature: bytes

    def signing_bytes(self) -> bytes:
        return HELLO_DOMAIN + pack([self.version, self.genesis_hash, self.sender, self.receiver, self.consensus_pub])

    def encode(self) -> bytes:
        return pack([self.version, self.genesis_hash, self.sender, self.receiver, self.consensus_pub, self.signature])

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int) -> "Hello":
        try:
            fields = expect_list(unpack(data, max_bytes=max_bytes), "hello", length=6)
            expect_version(fields, "hello", HELLO_VERSION)
            return cls(
                HELLO_VERSION,
                expect_bytes(fields[1], "hello.genesis_hash", length=32),
                expect_bytes(fields[2], "hello.sender", max_length=PEER_ID_BYTES_MAX),
                expect_bytes(fields[3], "hello.receiver", max_length=PEER_ID_BYTES_MAX),
                expect_bytes(fields[4], "hello.consensus_pub", max_length=PUB_BYTES_MAX),
                expect_bytes(fields[5], "hello.signature", max_length=SIG_BYTES_MAX),
            )
        except DecodeError as exc:
            raise ProtocolViolation(BAD_HELLO, str(exc)) from None


def make_hello(suite: CryptoSuite, consensus_priv: bytes, consensus_pub: bytes, genesis_hash: bytes, sender: bytes, receiver: bytes) -> Hello:
    unsigned = Hello(HELLO_VERSION, genesis_hash, sender, receiver, consensus_pub, b"")
    return Hello(HELLO_VERSION, genesis_hash, sender, receiver, consensus_pub, suite.sign(consensus_priv, unsigned.signing_bytes()))


def verify_hello(hello: Hello, *, suite: CryptoSuite, genesis_hash: bytes, our_id: bytes, remote_id: bytes, admitted: PeerTable):
    """Check a received Hello; return the PeerInfo of the sender or raise ProtocolViolation.

    `remote_id` is the peer id Noise authenticated for this connection."""
    from libp2p.peer.id import ID

    if hello.genesis_hash != genesis_hash:
        raise ProtocolViolation(WRONG_GENESIS, f"{hello.genesis_hash.hex()[:16]} != ours {genesis_hash.hex()[:16]}")
    if hello.sender != remote_id:
        raise ProtocolViolation(PEER_ID_MISMATCH, "hello sender is not the authenticated peer")
    info = admitted.get(ID(remote_id))
    if info is None:
        raise ProtocolViolation(UNKNOWN_PEER)
    if hello.receiver != our_id:
        raise ProtocolViolation(WRONG_RECEIVER)
    if hello.consensus_pub != info.consensus_pub:
        raise ProtocolViolation(KEY_MISMATCH, f"peer {info.index} presented a consensus key not listed for it")
    if not suite.verify(hello.consensus_pub, hello.signing_bytes(), hello.signature):
        raise ProtocolViolation(BAD_SIGNATURE)
    return info

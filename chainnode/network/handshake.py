"""The Hello handshake: proves a connected peer holds the consensus key listed for it,
runs the same genesis and (on a chain with a CA) holds a certificate issued under it.

Noise already authenticates the libp2p peer id of the remote end. The Hello binds that
peer id to the consensus key: it is signed by the consensus key over (version, genesis
hash, sender peer id, receiver peer id, consensus public key, credentials, info). The receiver id
in the signed bytes means a Hello is only good towards one node, and the sender id must
equal the Noise-authenticated id, so a captured Hello is useless without the sender's host
key; no nonce is needed. `credentials` is the sender's encoded certificate chain
(chainnode/security/certs.py), empty on a chain without a CA; the network layer does not interpret
it, the node's verifier callback does (chainnode/security/admission.py). `info` is a short
list of [key, value] pairs a node says about itself: "software" is its software version (shown in status
and peer lists, and what an operator checks before voting a compatibility version up,
chainnode/protocol/versions.py). Keys this version does not know are ignored, so a later
version can add some without a new Hello format.

Wire, on a `/chainnode/hello/3` stream: both sides send their Hello (one frame, framing.py)
at once and verify the other's; then both send a Verdict frame (accepted, or the reason
they refuse) and read the other's. So both sides log why a handshake failed, including
the side whose certificate was refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainnode.channel.handshake import ChannelError, Verdict as ChannelVerdict
from chainnode.crypto import CryptoSuite
from chainnode.network.errors import ProtocolViolation
from chainnode.network.peers import PeerTable
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_str, expect_version, pack, unpack
from chainnode.protocol.signing import Signed
from chainnode.protocol.versions import SOFTWARE_VERSION, VersionError, parse_version

HELLO_VERSION = 3
HELLO_DOMAIN = b"chainnode/hello/v3"
INFO_ENTRIES_MAX = 16
INFO_VALUE_CHARS_MAX = 64
PEER_ID_BYTES_MAX = 64
PUB_BYTES_MAX = 128
SIG_BYTES_MAX = 160
CREDENTIALS_BYTES_MAX = 6144  # a certificate chain (certs.CHAIN_BYTES_MAX)

# Reasons, used verbatim in logs and counters.
WRONG_GENESIS = "wrong genesis"
UNKNOWN_PEER = "unknown peer"
KEY_MISMATCH = "key mismatch"
BAD_SIGNATURE = "bad signature"
BAD_HELLO = "bad hello"
WRONG_RECEIVER = "wrong receiver"
PEER_ID_MISMATCH = "peer id mismatch"
BAD_VERDICT = "bad verdict"
# The detail of an `unknown peer` Verdict: what the refused node's operator should check.
NOT_A_MEMBER = (
    "this node is not a member of the chain at our height: the consortium has not added it yet, "
    "or removed it (see `chainnode gov list`; a node is added with `chainnode gov propose add_observer`)"
)


@dataclass(frozen=True)
class Hello(Signed):
    DOMAIN = HELLO_DOMAIN
    version: int
    genesis_hash: bytes
    sender: bytes  # raw libp2p peer id bytes
    receiver: bytes
    consensus_pub: bytes
    credentials: bytes  # the sender's encoded certificate chain; b"" on a chain without a CA
    info: tuple[tuple[str, str | int], ...]  # (key, value) pairs in wire order, ("software", "0.2.0") among them
    signature: bytes

    def unsigned_fields(self) -> list:
        return [self.version, self.genesis_hash, self.sender, self.receiver, self.consensus_pub, self.credentials,
                [list(pair) for pair in self.info]]

    @property
    def software(self) -> str:
        return str(dict(self.info)["software"])

    def encode(self) -> bytes:
        return pack([*self.unsigned_fields(), self.signature])

    @classmethod
    def decode(cls, data: bytes, *, max_bytes: int) -> "Hello":
        try:
            fields = expect_list(unpack(data, max_bytes=max_bytes), "hello")
            expect_version(fields, "hello", HELLO_VERSION)
            expect_list(fields, "hello", length=8)
            info = tuple(_info_pair(p) for p in expect_list(fields[6], "hello.info", max_length=INFO_ENTRIES_MAX))
            if len({key for key, _ in info}) != len(info):
                raise DecodeError("hello.info names a key twice")
            parse_version(expect_str(dict(info).get("software"), "hello.info software", max_length=INFO_VALUE_CHARS_MAX))
            return cls(
                HELLO_VERSION,
                expect_bytes(fields[1], "hello.genesis_hash", length=32),
                expect_bytes(fields[2], "hello.sender", max_length=PEER_ID_BYTES_MAX),
                expect_bytes(fields[3], "hello.receiver", max_length=PEER_ID_BYTES_MAX),
                expect_bytes(fields[4], "hello.consensus_pub", max_length=PUB_BYTES_MAX),
                expect_bytes(fields[5], "hello.credentials", max_length=CREDENTIALS_BYTES_MAX),
                info,
                expect_bytes(fields[7], "hello.signature", max_length=SIG_BYTES_MAX),
            )
        except (DecodeError, VersionError) as exc:
            raise ProtocolViolation(BAD_HELLO, str(exc)) from None


def make_hello(
    suite: CryptoSuite, consensus_priv: bytes, consensus_pub: bytes, genesis_hash: bytes, sender: bytes, receiver: bytes, credentials: bytes = b""
) -> Hello:
    return Hello(HELLO_VERSION, genesis_hash, sender, receiver, consensus_pub, credentials, (("software", SOFTWARE_VERSION),),
                 b"").signed_with(suite, consensus_priv)


def _info_pair(pair) -> tuple[str, str | int]:
    key, value = expect_list(pair, "hello.info entry", length=2)
    expect_str(key, "hello.info key", max_length=INFO_VALUE_CHARS_MAX)
    if type(value) is int:
        expect_int(value, "hello.info value")
    else:
        expect_str(value, "hello.info value", max_length=INFO_VALUE_CHARS_MAX)
    return key, value


class Verdict(ChannelVerdict):
    """What each side tells the other after checking its Hello: `reason` "" = accepted,
    else the short reason (e.g. "certificate revoked") and a detail line for the logs of
    the refused side. The secure channel's Verdict (chainnode/channel), in a frame of the
    Hello stream; a malformed one is a ProtocolViolation here. Not signed: the security
    transport authenticates the stream, and a verdict only ever makes the receiver log a
    line and end the session."""

    @classmethod
    def decode(cls, data: bytes) -> "Verdict":
        try:
            verdict = ChannelVerdict.decode(data)
        except ChannelError as exc:
            raise ProtocolViolation(BAD_VERDICT, exc.detail) from None
        return cls(verdict.reason, verdict.detail)


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
    if not hello.signature_valid(suite, hello.consensus_pub):
        raise ProtocolViolation(BAD_SIGNATURE)
    return info

"""The secure channel between nodes of an `sm` chain: libp2p security protocol
`/chainnode/noise-sm/1`, the handshake `Noise_XX_SM2_SM4GCM_SM3` (chainnode.channel).

libp2p negotiates the security protocol with multistream-select, then hands us the raw TCP
connection: we run chainnode.channel.handshake.run_handshake on it (purpose "p2p"), with
the node's consensus key as the Noise static key, and return a libp2p SecureSession over
libp2p's own Noise transport framing keyed by our handshake (Yamux runs inside unchanged).

Our Payload binds the libp2p peer id to the channel: the host's public key (protobuf) and
its signature over IDENTITY_DOMAIN + our static key. The remote passes `check` only if it
is a node of our genesis, its identity key signed the static key Noise authenticated, the
peer id that key gives is the one we dialed (outbound) and is admitted with exactly that
consensus key, it is not serving a ban, and its certificate chain passes the node's
`check_credentials` (when the chain has a CA). So an unadmitted, misconfigured or revoked
node is refused before any libp2p protocol runs; the Hello on top still runs (it verifies
the same things and carries the chain `recheck_credentials` re-verifies).

Every failure ends the connection with one log line and a counter by reason, on the side
that saw it (the refused side logs the reason of the other's Verdict). Failures that are
the remote's doing earn the ban a failed Hello earns (PenaltyBox), keyed by the peer id
when its payload proved it or we dialed it, else by the remote IP address (`address
<ip>`): a connection from a banned address is closed before any cryptography runs.
docs/network.md, "Secure channel between nodes".
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import trio
from google.protobuf.message import DecodeError as ProtobufDecodeError
from libp2p.abc import IRawConnection, ISecureConn, ISecureTransport
from libp2p.crypto.ed25519 import Ed25519PublicKey
from libp2p.crypto.keys import KeyPair, KeyType, PublicKey
from libp2p.custom_types import TProtocol
from libp2p.peer.id import ID
from libp2p.security.exceptions import HandshakeFailure
from libp2p.security.noise.io import NoiseTransportReadWriter
from libp2p.security.secure_session import SecureSession

from chainnode.channel.functions import static_public_key
from chainnode.channel.handshake import (
    CLOSED,
    IDENTITY_DOMAIN,
    ChannelError,
    ChannelRefused,
    PacketStream,
    Payload,
    RefusedByPeer,
    run_handshake,
)
from chainnode.network.errors import TRANSPORT_ERRORS, ProtocolViolation
from chainnode.network.handshake import BAD_SIGNATURE, KEY_MISMATCH, NOT_A_MEMBER, PEER_ID_MISMATCH, UNKNOWN_PEER, WRONG_GENESIS
from chainnode.network.metrics import Counters
from chainnode.network.peers import PeerInfo, PeerTable
from chainnode.network.policing import PenaltyBox

log = logging.getLogger("chainnode.network")

PROTOCOL_ID = TProtocol("/chainnode/noise-sm/1")
PURPOSE = "p2p"
ED25519_PUBLIC_KEY_BYTES = 32
ED25519_SIGNATURE_BYTES = 64

# Reasons of our own (the channel's are in chainnode.channel.handshake, the Hello's in
# handshake.py), verbatim in logs, counters and Verdicts.
NOT_A_NODE = "not a node"
BAD_IDENTITY = "bad identity"
BANNED = "banned"
HANDSHAKE_TIMEOUT = "handshake timeout"
NOT_ADMITTED = "not admitted"  # the counter `refused:not_admitted`, as for a Hello-era refusal
# A dial that reached this node itself: an address listed for the peer points here (a
# wildcard listen address another node learnt, a stale address after a move).
DIALED_SELF = "dialed ourselves"
# Ends that are nobody's fault: counted and logged, never banned.
NOT_VIOLATIONS = (CLOSED, HANDSHAKE_TIMEOUT)

# verify_credentials(peer, chain): None, or raises ProtocolViolation (the network's
# CredentialsRefused, with the certificate reason) to refuse the peer's certificate chain.
VerifyCredentials = Callable[[PeerInfo, bytes], None]


class ChannelFailed(HandshakeFailure):
    """The secure channel could not be set up; `error.reason` says why (already logged and
    counted). A HandshakeFailure, so libp2p's upgrader reports it as a failed security
    upgrade (a SwarmException for a dial) and closes the connection."""

    def __init__(self, error: ChannelError) -> None:
        super().__init__(str(error))
        self.error = error


class CertificateRefused(ChannelRefused):
    """The remote's certificate chain was refused: logged like a refused Hello chain."""


def identity_signature(host_keypair: KeyPair, static_pub: bytes) -> bytes:
    """What a node's libp2p key signs to bind its peer id to its channel static key."""
    return host_keypair.private_key.sign(IDENTITY_DOMAIN + static_pub)


def proven_peer_id(payload: Payload, remote_static: bytes) -> tuple[ID, PublicKey]:
    """The peer id whose key signed `remote_static` in `payload`, with that key; raises
    ChannelRefused (bad identity, bad signature). Only Ed25519 host keys, canonically
    encoded: what every chainnode derives (identity.py)."""
    try:
        proto = PublicKey.deserialize_from_protobuf(payload.identity_key)
    except ProtobufDecodeError:
        raise ChannelRefused(BAD_IDENTITY, "the identity key is not a libp2p public key") from None
    if proto.key_type != KeyType.Ed25519.value or len(proto.data) != ED25519_PUBLIC_KEY_BYTES:
        raise ChannelRefused(BAD_IDENTITY, "the identity key is not a 32-byte Ed25519 key")
    key = Ed25519PublicKey.from_bytes(proto.data)
    if key.serialize() != payload.identity_key:
        raise ChannelRefused(BAD_IDENTITY, "the identity key is not canonically encoded")
    if len(payload.identity_sig) != ED25519_SIGNATURE_BYTES or not key.verify(IDENTITY_DOMAIN + remote_static, payload.identity_sig):
        raise ChannelRefused(BAD_SIGNATURE, "the identity key did not sign the channel's static key")
    return ID.from_pubkey(key), key


@dataclass
class _Attempt:
    """One handshake: whom we dialed, whom the remote proved to be, where it came from."""

    initiator: bool
    dialed: ID | None
    address: str
    proven: ID | None = None
    proven_key: PublicKey | None = None  # the identity key that signed the static key


class _ReadAhead(IRawConnection):
    """The raw connection with the bytes the handshake read past its last packet put back
    in front: the peer may send its first transport packets right behind its Verdict."""

    def __init__(self, conn: IRawConnection, buffered: bytes) -> None:
        self._conn = conn
        self._buffered = buffered
        self.is_initiator = conn.is_initiator

    async def read(self, n: int | None = None) -> bytes:
        if self._buffered:
            size = len(self._buffered) if n is None else n
            data, self._buffered = self._buffered[:size], self._buffered[size:]
            return data
        return await self._conn.read(n)

    async def write(self, data: bytes) -> None:
        await self._conn.write(data)

    async def close(self) -> None:
        await self._conn.close()

    def get_remote_address(self):
        return self._conn.get_remote_address()

    def get_transport_addresses(self):
        return self._conn.get_transport_addresses()

    def get_connection_type(self):
        return self._conn.get_connection_type()


class SmNoiseTransport(ISecureTransport):
    """`/chainnode/noise-sm/1` for one node (see the module docstring)."""

    def __init__(
        self,
        *,
        host_keypair: KeyPair,
        suite_name: str,
        consensus_priv: bytes,
        consensus_pub: bytes,
        genesis_hash: bytes,
        credentials: bytes,
        peers: Callable[[], PeerTable],
        verify_credentials: VerifyCredentials,
        penalties: PenaltyBox,
        counters: Counters,
        label: str,
        handshake_timeout_ms: int,
    ) -> None:
        self._keypair = host_keypair
        self._local_peer = ID.from_pubkey(host_keypair.public_key)
        self._suite_name = suite_name
        self._consensus_priv = consensus_priv
        self._genesis_hash = genesis_hash
        self._peers = peers
        self._verify_credentials = verify_credentials
        self._penalties = penalties
        self._counters = counters
        self._label = label
        self._timeout_s = handshake_timeout_ms / 1000
        static_pub = static_public_key(suite_name, consensus_pub)
        self._payload = Payload(
            "node", genesis_hash, identity_key=host_keypair.public_key.serialize(),
            identity_sig=identity_signature(host_keypair, static_pub), credentials=credentials,
        )

    async def secure_inbound(self, conn: IRawConnection) -> ISecureConn:
        attempt = _Attempt(initiator=False, dialed=None, address=_address_of(conn))
        ban_key = "address " + attempt.address
        if self._penalties.banned(ban_key, _now_ms()):
            # Before any cryptography: a banned address costs us a multistream exchange.
            self._counters.inc("refused:" + BANNED)
            log.debug("%s: refused connection from %s: banned", self._label, ban_key)
            raise ChannelFailed(ChannelError(BANNED, ban_key))
        return await self._secure(conn, attempt)

    async def secure_outbound(self, conn: IRawConnection, peer_id: ID) -> ISecureConn:
        return await self._secure(conn, _Attempt(initiator=True, dialed=peer_id, address=_address_of(conn)))

    async def _secure(self, conn: IRawConnection, attempt: _Attempt) -> ISecureConn:
        packets = PacketStream(_eof_on_transport_error(conn.read), conn.write)
        try:
            with trio.fail_after(self._timeout_s):
                handshake = await run_handshake(
                    packets, initiator=attempt.initiator, suite_name=self._suite_name, purpose=PURPOSE,
                    certified_priv=self._consensus_priv, payload=self._payload,
                    check=lambda remote, remote_static: self._check(attempt, remote, remote_static),
                )
        except ChannelError as exc:
            self._account(attempt, exc)
            raise ChannelFailed(exc) from None
        except trio.TooSlowError:
            error = ChannelError(HANDSHAKE_TIMEOUT, f"not done in {self._timeout_s * 1000:.0f} ms")
            self._account(attempt, error)
            raise ChannelFailed(error) from None
        except TRANSPORT_ERRORS as exc:  # a write on a connection that broke
            error = ChannelError(CLOSED, type(exc).__name__)
            self._account(attempt, error)
            raise ChannelFailed(error) from None
        except Exception:
            # A bug of ours (in `_check` or the callbacks). libp2p swallows what a security
            # transport raises, so say it loudly here before it does.
            log.exception("%s: the secure channel failed unexpectedly (a bug: please report it)", self._label)
            raise
        return SecureSession(  # `check` accepted the remote: it proved attempt.proven
            local_peer=self._local_peer,
            local_private_key=self._keypair.private_key,
            remote_peer=attempt.proven,
            remote_permanent_pubkey=attempt.proven_key,
            is_initiator=attempt.initiator,
            conn=NoiseTransportReadWriter(_ReadAhead(conn, packets.take_buffered()), handshake.noise),
        )

    def _check(self, attempt: _Attempt, remote: Payload, remote_static: bytes) -> PeerInfo:
        """Our policy for the remote's Payload (the module docstring); raises ChannelRefused."""
        if remote.role != "node":
            raise ChannelRefused(NOT_A_NODE, f"a {remote.role} connected to the node-to-node port; dApps use the node's channel port")
        peer_id, attempt.proven_key = proven_peer_id(remote, remote_static)
        attempt.proven = peer_id
        if attempt.dialed is not None and peer_id != attempt.dialed:
            if peer_id == self._local_peer:
                raise ChannelRefused(DIALED_SELF, f"an address we dialed {attempt.dialed} at reached this node itself")
            raise ChannelRefused(PEER_ID_MISMATCH, f"we dialed {attempt.dialed}, the identity key is {peer_id}'s")
        # Admission by peer id first, as for every connection: a stranger is "not admitted"
        # whatever genesis it runs.
        info = self._peers().get(peer_id)
        if info is None:
            raise ChannelRefused(UNKNOWN_PEER, NOT_A_MEMBER)
        now_ms = _now_ms()
        if self._penalties.banned(info.peer_id, now_ms):
            left_ms = self._penalties.banned_until_ms(info.peer_id) - now_ms
            raise ChannelRefused(BANNED, f"for another {left_ms:.0f} ms after a protocol violation (see this node's log)")
        if remote.genesis_hash != self._genesis_hash:
            raise ChannelRefused(WRONG_GENESIS, f"{remote.genesis_hash.hex()[:16]} != ours {self._genesis_hash.hex()[:16]}")
        if remote_static != static_public_key(self._suite_name, info.consensus_pub):
            raise ChannelRefused(KEY_MISMATCH, f"peer {info.index} presented a consensus key not listed for it")
        try:
            self._verify_credentials(info, remote.credentials)
        except ProtocolViolation as v:
            raise CertificateRefused(v.reason, v.detail) from None
        return info

    def _account(self, attempt: _Attempt, error: ChannelError) -> None:
        """Log one line, count the reason and, for the remote's violations, ban it."""
        peer = attempt.dialed if attempt.dialed is not None else attempt.proven
        info = self._peers().get(peer) if peer is not None else None
        who = f"peer {info.index} ({info.peer_id})" if info else (peer.to_base58() if peer else "address " + attempt.address)
        key = error.reason.replace(" ", "_")
        if isinstance(error, RefusedByPeer):
            self._counters.inc("disconnects:refused_by_peer")
            log.warning("%s: %s refused our secure channel: %s", self._label, who, error.detail)
            return
        if error.reason == DIALED_SELF:  # our address book is wrong, not the peer
            self._counters.inc("disconnects:" + key)
            log.warning("%s: %s: check the addresses on chain for that node (`chainnode gov propose set-addrs`) and its [network] listen",
                        self._label, error.detail)
            return
        if error.reason in NOT_VIOLATIONS:
            self._counters.inc("disconnects:" + key)
            log.info("%s: secure channel with %s ended before it was established: %s", self._label, who, error)
            return
        if error.reason == BANNED:  # the ban is what refused it: no new strike
            self._counters.inc("refused:" + BANNED)
            log.debug("%s: refused connection from %s: banned", self._label, who)
            return
        ban_key = peer.to_base58() if peer is not None else "address " + attempt.address
        ban_ms = self._penalties.strike(ban_key, _now_ms())
        if error.reason == UNKNOWN_PEER:
            self._counters.inc("refused:" + NOT_ADMITTED.replace(" ", "_"))
            log.warning("%s: refused connection from %s: %s; banned for %d ms", self._label, who, NOT_ADMITTED, ban_ms)
        elif isinstance(error, CertificateRefused) and info is not None:
            self._counters.inc("disconnects:" + key)
            log.warning("%s: refused peer %s (peer %d): %s; disconnected, banned for %d ms", self._label, info.peer_id, info.index, error, ban_ms)
        else:
            self._counters.inc("disconnects:" + key)
            log.warning("%s: %s misbehaved: %s; disconnected, banned for %d ms", self._label, who, error, ban_ms)


def _eof_on_transport_error(read):
    """conn.read, with a broken connection read as the end of the stream (PacketStream then
    says whether it ended between packets or inside one)."""

    async def receive_some(max_bytes: int) -> bytes:
        try:
            return await read(max_bytes)
        except TRANSPORT_ERRORS:
            return b""

    return receive_some


def _address_of(conn: IRawConnection) -> str:
    try:
        remote = conn.get_remote_address()
    except TRANSPORT_ERRORS:
        remote = None
    return str(remote[0]) if remote else "unknown"


def _now_ms() -> float:
    return time.monotonic() * 1000.0

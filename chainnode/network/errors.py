"""Errors the network layer raises to its callers, and the errors it expects from the
transport underneath."""

from __future__ import annotations

import trio
from libp2p.host.exceptions import HostException
from libp2p.io.exceptions import IOException
from libp2p.network.exceptions import SwarmException
from libp2p.protocol_muxer.exceptions import MultiselectClientError, MultiselectError
from libp2p.security.exceptions import HandshakeFailure
from libp2p.stream_muxer.exceptions import MuxedConnError, MuxedStreamError
from libp2p.transport.exceptions import OpenConnectionError, UpgradeFailure

# What py-libp2p (0.8.1), trio and the OS raise when a peer or its connection fails: the
# peer went away, reset or closed a stream, refused a protocol, or could not be dialed.
# The network catches exactly these where it means "the peer/transport failed"; anything
# else is a bug (ours or the library's) and propagates (DESIGN rule 7).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    IOException,  # stream read/write: StreamError (StreamEOF, StreamReset, StreamClosed), RawConnError
    MuxedStreamError,  # the Yamux stream under a NetStream: MuxedStreamEOF, MuxedStreamReset, MuxedStreamClosed
    MuxedConnError,  # MuxedConnUnavailable: the connection under the stream is gone
    SwarmException,  # new_stream / connect: no connection, every address failed to dial
    HostException,  # StreamFailure: protocol negotiation on a new stream failed
    MultiselectError,  # the peer's side of protocol negotiation broke off
    MultiselectClientError,  # ProtocolNotSupportedError: the peer does not serve the protocol
    OpenConnectionError,  # the TCP connect failed
    UpgradeFailure,  # SecurityUpgradeFailure (Noise), MuxerUpgradeFailure (Yamux) while dialing
    HandshakeFailure,  # the Noise handshake itself
    trio.BrokenResourceError,  # the socket under a connection broke
    trio.ClosedResourceError,  # ... or was closed under us
    EOFError,  # read_frame / FrameReader: the stream ended before a whole frame
    OSError,  # connection refused, reset, unreachable
)


class NetworkError(Exception):
    """A network operation failed: peer unknown or disconnected, timeout, remote error,
    size limit exceeded. The message says which; callers retry or pick another peer."""


class PortInUse(NetworkError):
    """The listen port is already bound by another process (or another node in this one).

    py-libp2p listens with SO_REUSEPORT, so without this check two nodes would share the
    port silently and split the incoming connections between them (research trap 8)."""


class ProtocolViolation(Exception):
    """A peer broke the wire protocol (bad frame, bad hello, unexpected stream...).

    Internal to the network layer: it is turned into a logged disconnect and a penalty,
    never into a crash. `reason` is a short fixed phrase used in logs and counters."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

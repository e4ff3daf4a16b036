"""Errors the network layer raises to its callers."""

from __future__ import annotations


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

"""Record the TCP bytes on the loopback interface while a test runs, as tcpdump would: an
AF_PACKET raw socket bound to "lo" (root only), read by a thread into memory, reassembled
per TCP flow so that a string split across two segments is still found.

    with LoopbackCapture(ports={8545, 20200}) as capture:
        ...  # traffic
    capture.find([b"marker"], ports={20200})  # the flows on those ports that carried it

Every packet is kept until the capture stops, and the kernel's own count of the packets it
dropped for us (PACKET_STATISTICS) is checked then: a capture that missed packets proves
nothing, so `stop` raises CaptureIncomplete rather than let a test pass on it.
"""

from __future__ import annotations

import os
import select
import socket
import struct
import threading
from dataclasses import dataclass, field

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_HEADER_BYTES = 14
IPPROTO_TCP = 6
PACKET_OUTGOING = 4  # the copy of a packet as sent; loopback shows each packet sent and received
SOL_PACKET = 263
PACKET_STATISTICS = 6
RECEIVE_BUFFER_BYTES = 64 << 20  # the kernel queue between the interface and our thread
FRAME_BYTES_MAX = 1 << 17  # loopback's MTU is 65,536
POLL_S = 0.05  # how often the reader thread looks at its stop flag when the interface is idle


class CaptureUnavailable(Exception):
    """No raw socket on "lo" here (not root, or no AF_PACKET); the reason says which."""


class CaptureIncomplete(Exception):
    """The kernel dropped packets before we read them: the capture cannot prove an absence."""


@dataclass
class Flow:
    """One direction of one TCP connection: its segments by sequence number."""

    segments: dict[int, bytes] = field(default_factory=dict)
    base: int | None = None  # the first sequence number seen: order is counted from it (it may wrap)

    def add(self, seq: int, payload: bytes) -> None:
        if self.base is None:
            self.base = seq
        if len(payload) > len(self.segments.get(seq, b"")):
            self.segments[seq] = payload

    def stream(self) -> bytes:
        """The bytes in sequence order; a retransmitted or overlapping part counts once."""
        out = bytearray()
        end = None
        for seq in sorted(self.segments, key=lambda s: (s - (self.base or 0)) % (1 << 32)):
            data = self.segments[seq]
            if end is not None:
                skip = (end - seq) % (1 << 32)
                if skip < len(data):
                    data = data[skip:]
                elif skip < (1 << 31):
                    continue  # wholly inside what we have
            out += data
            end = (seq + len(self.segments[seq])) % (1 << 32)
        return bytes(out)


def open_loopback_socket() -> socket.socket:
    """A raw socket that receives every frame on "lo"; CaptureUnavailable if it cannot be had."""
    if os.geteuid() != 0:
        raise CaptureUnavailable("capturing loopback traffic needs root (an AF_PACKET raw socket); run the test as root")
    try:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    except (AttributeError, OSError) as exc:
        raise CaptureUnavailable(f"cannot open an AF_PACKET raw socket ({exc}); this test needs Linux and CAP_NET_RAW") from None
    try:
        try:
            sock.setsockopt(socket.SOL_SOCKET, 33, RECEIVE_BUFFER_BYTES)  # SO_RCVBUFFORCE: past rmem_max, as root may
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
        sock.bind(("lo", 0))
    except OSError as exc:
        sock.close()
        raise CaptureUnavailable(f"cannot bind a raw socket to the loopback interface \"lo\" ({exc})") from None
    return sock


def parse_tcp(frame: bytes) -> tuple[tuple[int, int], int, bytes] | None:
    """((source port, destination port), sequence number, payload) of an IPv4 TCP frame, else None."""
    if len(frame) < ETH_HEADER_BYTES + 20 or struct.unpack_from("!H", frame, 12)[0] != ETH_P_IP:
        return None
    ip = ETH_HEADER_BYTES
    ihl = (frame[ip] & 0x0F) * 4
    total = struct.unpack_from("!H", frame, ip + 2)[0]
    if frame[ip + 9] != IPPROTO_TCP or len(frame) < ip + ihl + 20:
        return None
    tcp = ip + ihl
    sport, dport, seq = struct.unpack_from("!HHI", frame, tcp)
    offset = (frame[tcp + 12] >> 4) * 4
    return (sport, dport), seq, frame[tcp + offset : ip + total]


class LoopbackCapture:
    """The TCP payloads on "lo" to or from `ports` (all ports if None) while it runs."""

    def __init__(self, ports: set[int] | None = None) -> None:
        self.ports = set(ports) if ports is not None else None
        self.flows: dict[tuple[int, int], Flow] = {}
        self.frames = 0
        self.dropped = 0
        self._sock: socket.socket | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def start(self) -> "LoopbackCapture":
        self._sock = open_loopback_socket()
        self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8)  # reading the statistics resets them
        self._thread = threading.Thread(target=self._run, name="loopback-capture", daemon=True)
        self._thread.start()
        return self

    def _record(self, frame: bytes, pkttype: int) -> None:
        if pkttype == PACKET_OUTGOING:
            return  # the same bytes arrive once more as received
        parsed = parse_tcp(frame)
        if parsed is None:
            return
        (sport, dport), seq, payload = parsed
        self.frames += 1
        if not payload or (self.ports is not None and sport not in self.ports and dport not in self.ports):
            return
        with self._lock:
            self.flows.setdefault((sport, dport), Flow()).add(seq, payload)

    def _drain(self) -> None:
        """Read every frame queued now, without waiting."""
        assert self._sock is not None
        while True:
            try:
                frame, address = self._sock.recvfrom(FRAME_BYTES_MAX, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            self._record(frame, address[2])

    def _run(self) -> None:
        assert self._sock is not None
        while not self._stop.is_set():
            readable, _, _ = select.select([self._sock], [], [], POLL_S)
            if readable:
                self._drain()

    def stop(self) -> None:
        """Stop and read what is left: a frame sent on "lo" is queued to us as it is sent,
        so everything sent before this call is in the capture. CaptureIncomplete if the
        kernel dropped any frame."""
        if self._sock is None:
            return
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self._drain()
        _, self.dropped = struct.unpack("II", self._sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, 8))
        self._sock.close()
        self._sock = None
        if self.dropped:
            raise CaptureIncomplete(f"the kernel dropped {self.dropped} loopback frames before the capture read them; it cannot prove an absence")

    def __enter__(self) -> "LoopbackCapture":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def streams(self, ports: set[int] | None = None) -> dict[tuple[int, int], bytes]:
        """Each flow's reassembled bytes, (source port, destination port) -> bytes; only the
        flows to or from `ports` if given."""
        with self._lock:
            flows = dict(self.flows)
        return {k: f.stream() for k, f in flows.items() if ports is None or k[0] in ports or k[1] in ports}

    def bytes_on(self, ports: set[int] | None = None) -> int:
        return sum(len(s) for s in self.streams(ports).values())

    def find(self, needles: list[bytes], ports: set[int] | None = None) -> list[tuple[tuple[int, int], bytes]]:
        """The (flow, needle) pairs where a needle occurs in a flow to or from `ports`."""
        return [(flow, n) for flow, data in self.streams(ports).items() for n in needles if n in data]

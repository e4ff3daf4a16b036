"""A WAN between the hosts of a lab (devnet/netns.py), emulated in user space: this kernel
has no netem, so packets between hosts take a detour through a TUN switch that delays
them (a one-way delay with jitter) and loses some (real losses: the kernel's TCP really
retransmits).

    with Lab.create(hosts=4) as lab, Wan(lab, LinkSettings(delay_ms=50, jitter_ms=10, loss_pct=1)) as wan:
        ...                     # host i -> host j: ~50 ms one way, 1 % of packets lost
        wan.set_link(0, 3, LinkSettings(delay_ms=150))   # one slow path (one direction)
        wan.stats()             # forwarded, delayed, dropped (loss, queue, link down, ...)

How the packets get there. Each host gets a TUN device `wan0` (made in the root namespace
with TUNSETIFF, moved into the host's namespace, brought up there; the file descriptor
keeps working) and a /32 route to every *other* host of the lab through it, with the host's
own address as source. So host i reaches host j at j's usual lab address, but the packet
leaves by wan0 instead of eth0: this module reads it off i's TUN descriptor (a raw IPv4
packet; the destination address is bytes 16..20), holds it for its delay, and writes it
into j's descriptor, where j's kernel receives it as if from a wire. Traffic between a host
and the root namespace (the test process: RPC, metrics) still goes over the bridge, with no
delay: what is emulated is the network between the members, not the operator's console.

The switch runs in a process of its own (`python -m devnet.wan`, started by `Wan`), so that
the load generator, a trio loop or the GIL in the test process never adds to the delays;
it dies with the process that started it (parent-death signal), and it stops by itself at
`deadline_s`. It is one loop: poll() on the TUN descriptors and a control socket, with a
timeout that ends when the next held packet is due (a heap of due times), so an idle WAN
costs no CPU and a busy one a few microseconds per packet.

- Delay: `delay_ms` plus a uniform random jitter in [-jitter_ms, +jitter_ms] (never below
  0), drawn per packet. With `keep_order` (the default) a packet is never delivered before
  one sent earlier on the same path (src host -> dst host): the jitter then delays bursts
  together, as a real path mostly does, instead of reordering every burst (which a real
  WAN does only a little, and which would make TCP retransmit far more than the loss
  setting says). `keep_order=False` draws each packet's delay independently.
- Loss: each packet is dropped with probability `loss_pct` / 100 (a seeded RNG).
- Bounds: at most `queue_packets_max` packets and `queue_bytes_max` bytes are held at once;
  a packet beyond either is dropped and counted (a full router queue is loss, too). Each
  TUN device's kernel queue (txqueuelen) is set to TXQUEUE_PACKETS.
- Settings: one default, one per sending host (`set_host`), one per path (`set_link`); the
  most specific one applies. `set_host_link(i, False)` (what Lab.link_down calls, for an
  attached Wan) drops every packet to or from host i, including those already held.
- When the switch stops (deadline, `close`, or a crash), the WAN goes silent: packets
  between hosts are lost, as on a cut line (it does not fall back to the bridge). `close`
  removes the TUN devices and with them the routes.

Needs what a lab needs, and /dev/net/tun.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import heapq
import json
import math
import os
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING

from devnet.netns import LabError, ip, ip_batch

if TYPE_CHECKING:
    from devnet.netns import Lab

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
TUN_DEVICE = "/dev/net/tun"
TUN_NAME_IN_HOST = "wan0"
TXQUEUE_PACKETS = 10_000  # the kernel's queue in front of each TUN device (default 500)
MTU_DEFAULT = 1500  # as a real WAN path; TCP segments are then at most this size
QUEUE_PACKETS_MAX = 20_000
QUEUE_BYTES_MAX = 32 * 1024 * 1024
PACKET_BYTES_MAX = 65_535
READ_BURST = 256  # packets read from one descriptor before looking at the others
DEADLINE_S_DEFAULT = 3600.0
CONTROL_TIMEOUT_S = 10.0
START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class LinkSettings:
    """What a path does to a packet: one-way delay, jitter around it, loss."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    loss_pct: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.delay_ms <= 60_000 and 0 <= self.jitter_ms <= 60_000 and 0 <= self.loss_pct <= 100):
            raise ValueError(f"delay_ms and jitter_ms must be 0..60000 and loss_pct 0..100, not {self}")


@dataclass
class WanStats:
    """Packets the switch saw since it started. Every packet read is, in the end, exactly
    one of: forwarded, dropped_* or still `queued`."""

    received: int = 0  # read from a host's TUN device
    forwarded: int = 0  # written to the destination host's TUN device
    forwarded_bytes: int = 0
    delayed: int = 0  # of those received, held for a delay > 0 before forwarding
    dropped_loss: int = 0  # the loss setting
    dropped_queue: int = 0  # beyond queue_packets_max / queue_bytes_max
    dropped_down: int = 0  # to or from a host whose link is down
    dropped_unroutable: int = 0  # not IPv4, or to an address that is no host of the lab
    dropped_write: int = 0  # the destination's TUN device refused it
    queued: int = 0  # held now
    queued_bytes: int = 0
    queued_max: int = 0  # the most held at once
    per_link: dict = field(default_factory=dict)  # "src->dst" -> [received, forwarded, dropped_loss]

    @property
    def dropped(self) -> int:
        return self.dropped_loss + self.dropped_queue + self.dropped_down + self.dropped_unroutable + self.dropped_write

    def link(self, src: int, dst: int) -> tuple[int, int, int]:
        """(received, forwarded, dropped by the loss setting) on the path src -> dst."""
        r = self.per_link.get(f"{src}->{dst}", [0, 0, 0])
        return r[0], r[1], r[2]


# ---- the switch (runs in its own process) ------------------------------------------------


class Switch:
    """The forwarding loop over the hosts' TUN descriptors. Single-threaded; `serve` runs it
    until told to stop on the control socket, or until the deadline."""

    def __init__(self, ports: list[tuple[int, str]], control: socket.socket, *, default: LinkSettings, queue_packets_max: int,
                 queue_bytes_max: int, keep_order: bool, seed: int | None, deadline_s: float) -> None:
        self.fds = [fd for fd, _ in ports]
        self.by_address = {socket.inet_aton(addr): i for i, (_, addr) in enumerate(ports)}
        self.control = control
        self.default = default
        self.hosts: dict[int, LinkSettings] = {}
        self.links: dict[tuple[int, int], LinkSettings] = {}
        self.down: set[int] = set()
        self.queue_packets_max, self.queue_bytes_max = queue_packets_max, queue_bytes_max
        self.keep_order = keep_order
        self.rng = random.Random(seed)
        self.deadline = time.monotonic() + deadline_s
        self.heap: list[tuple[float, int, int, int, bytes]] = []  # (due, seq, src, dst, packet)
        self.seq = 0
        self.last_due: dict[tuple[int, int], float] = {}
        self.stats = WanStats()
        self.per_link: dict[tuple[int, int], list[int]] = {}
        self._control_buf = b""
        self.stopping = False

    def settings(self, src: int, dst: int) -> LinkSettings:
        return self.links.get((src, dst)) or self.hosts.get(src) or self.default

    def _link_counts(self, src: int, dst: int) -> list[int]:
        counts = self.per_link.get((src, dst))
        if counts is None:
            counts = self.per_link[(src, dst)] = [0, 0, 0]
        return counts

    def receive(self, src: int, packet: bytes, now: float) -> None:
        s = self.stats
        s.received += 1
        if len(packet) < 20 or packet[0] >> 4 != 4:
            s.dropped_unroutable += 1
            return
        dst = self.by_address.get(packet[16:20])
        if dst is None or dst == src:
            s.dropped_unroutable += 1
            return
        counts = self._link_counts(src, dst)
        counts[0] += 1
        if src in self.down or dst in self.down:
            s.dropped_down += 1
            return
        cfg = self.settings(src, dst)
        if cfg.loss_pct and self.rng.random() * 100.0 < cfg.loss_pct:
            s.dropped_loss += 1
            counts[2] += 1
            return
        delay_ms = cfg.delay_ms + (self.rng.uniform(-cfg.jitter_ms, cfg.jitter_ms) if cfg.jitter_ms else 0.0)
        due = now + max(0.0, delay_ms) / 1000.0
        if self.keep_order:
            due = max(due, self.last_due.get((src, dst), 0.0))
            self.last_due[(src, dst)] = due
        if due <= now and not self.heap:
            self._write(src, dst, packet)
            return
        if len(self.heap) >= self.queue_packets_max or s.queued_bytes + len(packet) > self.queue_bytes_max:
            s.dropped_queue += 1
            return
        if due > now:
            s.delayed += 1
        self.seq += 1
        heapq.heappush(self.heap, (due, self.seq, src, dst, packet))
        s.queued_bytes += len(packet)
        s.queued_max = max(s.queued_max, len(self.heap))

    def _write(self, src: int, dst: int, packet: bytes) -> None:
        try:
            os.write(self.fds[dst], packet)
        except OSError:  # EAGAIN, EIO (device going away), EINVAL: the packet is lost
            self.stats.dropped_write += 1
            return
        self.stats.forwarded += 1
        self.stats.forwarded_bytes += len(packet)
        self._link_counts(src, dst)[1] += 1

    def deliver_due(self, now: float) -> None:
        heap = self.heap
        while heap and heap[0][0] <= now:
            _, _, src, dst, packet = heapq.heappop(heap)
            self.stats.queued_bytes -= len(packet)
            if src in self.down or dst in self.down:  # in flight when the cable was pulled
                self.stats.dropped_down += 1
                continue
            self._write(src, dst, packet)

    def snapshot(self) -> dict:
        self.stats.queued = len(self.heap)
        self.stats.per_link = {f"{s}->{d}": list(c) for (s, d), c in sorted(self.per_link.items())}
        return asdict(self.stats)

    def handle_control(self, message: dict) -> dict:
        op = message.get("op")
        if op == "stats":
            return {"ok": True, "stats": self.snapshot()}
        if op == "set":
            cfg = LinkSettings(**message["settings"]) if message.get("settings") is not None else None
            scope = message["scope"]
            if scope == "default":
                self.default = cfg or LinkSettings()
                return {"ok": True}
            table: dict = self.hosts if scope == "host" else self.links if scope == "link" else {}
            if scope not in ("host", "link"):
                return {"ok": False, "error": f"unknown scope {scope!r}"}
            key = int(message["src"]) if scope == "host" else (int(message["src"]), int(message["dst"]))
            if cfg is None:
                table.pop(key, None)
            else:
                table[key] = cfg
            return {"ok": True}
        if op == "link":
            host = int(message["host"])
            if message["up"]:
                self.down.discard(host)
            else:
                self.down.add(host)
            return {"ok": True}
        if op == "stop":
            self.stopping = True
            return {"ok": True, "stats": self.snapshot()}
        return {"ok": False, "error": f"unknown op {op!r}"}

    def _read_control(self) -> None:
        try:
            data = self.control.recv(65536)
        except BlockingIOError:
            return
        if not data:  # the parent is gone
            self.stopping = True
            return
        self._control_buf += data
        while b"\n" in self._control_buf:
            line, self._control_buf = self._control_buf.split(b"\n", 1)
            try:
                reply = self.handle_control(json.loads(line))
            except (ValueError, KeyError, TypeError) as exc:
                reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.control.sendall(json.dumps(reply).encode() + b"\n")

    def serve(self) -> None:
        poller = select.poll()
        index_of = {}
        for i, fd in enumerate(self.fds):
            poller.register(fd, select.POLLIN)
            index_of[fd] = i
        control_fd = self.control.fileno()
        poller.register(control_fd, select.POLLIN)
        while not self.stopping:
            now = time.monotonic()
            if now >= self.deadline:
                break
            until = self.deadline
            if self.heap:
                until = min(until, self.heap[0][0])
            # Round up: waking a little late is the jitter of any real path; waking early
            # only to sleep again would spin.
            timeout_ms = max(0, math.ceil((until - now) * 1000.0))
            events = poller.poll(timeout_ms)
            now = time.monotonic()
            for fd, mask in events:
                if fd == control_fd:
                    self._read_control()
                    continue
                src = index_of[fd]
                for _ in range(READ_BURST):
                    try:
                        packet = os.read(fd, PACKET_BYTES_MAX)
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno == errno.EINTR:
                            continue
                        raise
                    self.receive(src, packet, now)
            self.deliver_due(time.monotonic())


def _serve_main(argv: list[str]) -> int:
    """`python -m devnet.wan CONFIG_JSON`: the switch process that Wan starts."""
    # Die with the parent (PR_SET_PDEATHSIG = 1), and make sure it has not died already.
    if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:
        return 2
    config = json.loads(argv[0])
    if os.getppid() != config["parent"]:
        return 2
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us, after its own Ctrl-C
    control = socket.socket(fileno=config["control_fd"])
    control.setblocking(False)
    switch = Switch(
        [(fd, addr) for fd, addr in config["ports"]], control, default=LinkSettings(**config["default"]),
        queue_packets_max=config["queue_packets_max"], queue_bytes_max=config["queue_bytes_max"],
        keep_order=config["keep_order"], seed=config["seed"], deadline_s=config["deadline_s"],
    )
    control.setblocking(True)
    control.sendall(json.dumps({"ok": True, "ready": True}).encode() + b"\n")
    control.setblocking(False)
    switch.serve()
    return 0


# ---- the handle in the test process ------------------------------------------------------


def open_tun(name: str) -> int:
    """A new TUN device `name` in this (the root) namespace, IPv4 packets without header;
    the descriptor (non-blocking). The device exists as long as a descriptor is open."""
    fd = os.open(TUN_DEVICE, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class Wan:
    """The emulated WAN of a lab. Starts at construction; `close` (or the context manager,
    or closing the lab it is attached to) removes it."""

    def __init__(self, lab: "Lab", default: LinkSettings = LinkSettings(), *, queue_packets_max: int = QUEUE_PACKETS_MAX,
                 queue_bytes_max: int = QUEUE_BYTES_MAX, keep_order: bool = True, seed: int | None = None,
                 deadline_s: float = DEADLINE_S_DEFAULT, mtu: int = MTU_DEFAULT) -> None:
        if not (1 <= queue_packets_max <= 10_000_000 and 1 <= queue_bytes_max <= 1 << 34 and 0 < deadline_s <= 7 * 86_400 and 576 <= mtu <= 65_535):
            raise ValueError("queue_packets_max, queue_bytes_max, deadline_s or mtu out of bounds")
        if not os.path.exists(TUN_DEVICE):
            raise LabError(f"{TUN_DEVICE} is missing: the WAN emulator needs the tun driver (modprobe tun)")
        self.lab = lab
        self._fds: list[int] = []
        self._proc: subprocess.Popen | None = None
        self._control: socket.socket | None = None
        self._lock = threading.Lock()
        self._buf = b""
        self._closed = False
        self.final_stats: WanStats | None = None
        try:
            self._create_ports(mtu)
            self._start_switch(default, queue_packets_max, queue_bytes_max, keep_order, seed, deadline_s)
            lab.attach(self)
        except BaseException:
            self.close()
            raise

    def _create_ports(self, mtu: int) -> None:
        lab = self.lab
        for h in lab.hosts:
            name = f"{lab.tag}t{h.index}"
            self._fds.append(open_tun(name))
            ip("link", "set", name, "netns", h.netns)
            # No IPv6 link-local address, so no router solicitations: the WAN carries IPv4 only.
            lines = [f"link set {name} name {TUN_NAME_IN_HOST}", f"link set {TUN_NAME_IN_HOST} addrgenmode none",
                     f"link set {TUN_NAME_IN_HOST} mtu {mtu} txqueuelen {TXQUEUE_PACKETS} up"]
            lines += [f"route add {other.address}/32 dev {TUN_NAME_IN_HOST} src {h.address}" for other in lab.hosts if other.index != h.index]
            ip_batch(lines, netns=h.netns)

    def _start_switch(self, default: LinkSettings, queue_packets_max: int, queue_bytes_max: int, keep_order: bool, seed: int | None,
                      deadline_s: float) -> None:
        ours, theirs = socket.socketpair()
        config = {
            "parent": os.getpid(), "control_fd": theirs.fileno(),
            "ports": [[fd, h.address] for fd, h in zip(self._fds, self.lab.hosts)],
            "default": asdict(default), "queue_packets_max": queue_packets_max, "queue_bytes_max": queue_bytes_max,
            "keep_order": keep_order, "seed": seed, "deadline_s": deadline_s,
        }
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "devnet.wan", json.dumps(config)],
                pass_fds=[theirs.fileno(), *self._fds], stdin=subprocess.DEVNULL, start_new_session=True,
            )
        finally:
            theirs.close()
        self._control = ours
        ours.settimeout(START_TIMEOUT_S)
        try:
            reply = self._read_reply()
        except (OSError, ValueError) as exc:
            raise LabError(f"the WAN switch did not start: {exc}") from None
        if not reply.get("ready"):
            raise LabError(f"the WAN switch did not start: {reply}")

    def _read_reply(self) -> dict:
        assert self._control is not None
        while b"\n" not in self._buf:
            data = self._control.recv(65536)
            if not data:
                code = self._proc.poll() if self._proc else None
                raise LabError(f"the WAN switch is gone (exit status {code})")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        return json.loads(line)

    def _request(self, message: dict) -> dict:
        with self._lock:
            if self._closed or self._control is None:
                raise LabError("the WAN is closed")
            self._control.settimeout(CONTROL_TIMEOUT_S)
            try:
                self._control.sendall(json.dumps(message).encode() + b"\n")
                reply = self._read_reply()
            except (OSError, ValueError) as exc:
                raise LabError(f"the WAN switch did not answer {message.get('op')}: {exc}") from None
        if not reply.get("ok"):
            raise LabError(f"the WAN switch refused {message}: {reply.get('error')}")
        return reply

    # ---- settings -----------------------------------------------------------------------

    def set_default(self, settings: LinkSettings) -> None:
        """What every path does unless a host or path setting says otherwise."""
        self._request({"op": "set", "scope": "default", "settings": asdict(settings)})

    def set_host(self, src: int, settings: LinkSettings | None) -> None:
        """What every path out of host `src` does (None: back to the default)."""
        self._request({"op": "set", "scope": "host", "src": src, "settings": None if settings is None else asdict(settings)})

    def set_link(self, src: int, dst: int, settings: LinkSettings | None) -> None:
        """What the path src -> dst does (one direction; None: back to the host's or default)."""
        self._request({"op": "set", "scope": "link", "src": src, "dst": dst, "settings": None if settings is None else asdict(settings)})

    def set_host_link(self, index: int, up: bool) -> None:
        """Cut host `index` off the WAN (every packet to or from it is dropped), or plug it back."""
        self._request({"op": "link", "host": index, "up": up})

    # ---- reading ------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The switch process's pid (for its CPU time in /proc), None once it has ended."""
        return self._proc.pid if self.alive else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stats(self) -> WanStats:
        """The counters now (after `close`: the last ones)."""
        if self._closed:
            if self.final_stats is None:
                raise LabError("the WAN is closed and its switch gave no counters")
            return self.final_stats
        return _stats_from(self._request({"op": "stats"})["stats"])

    # ---- lifetime -----------------------------------------------------------------------

    def close(self) -> None:
        """Stop the switch and remove the TUN devices (and so their routes). Idempotent."""
        if self._closed:
            return
        if self._control is not None and self.alive:
            try:
                self.final_stats = _stats_from(self._request({"op": "stop"})["stats"])
            except LabError:
                pass
        self._closed = True
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._control is not None:
            self._control.close()
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
        try:
            self.lab.detach(self)
        except AttributeError:
            pass

    def __enter__(self) -> "Wan":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _stats_from(d: dict) -> WanStats:
    known = {f.name for f in fields(WanStats)}
    return WanStats(**{k: v for k, v in d.items() if k in known})


if __name__ == "__main__":
    sys.exit(_serve_main(sys.argv[1:]))

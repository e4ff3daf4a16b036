"""Several "hosts" on one Linux machine: a lab of network namespaces on a bridge, so that
node processes can be tested as if each ran on a machine of its own (own IP address, own
loopback, own ports), and a host can be cut off from the others by pulling its cable.

    with Lab.create(hosts=4) as lab:
        lab.hosts[0].address                       # "10.77.X.1"
        p = lab.popen(0, ["chainnode", "start", "--config", "..."])   # inside host 0
        lab.run(1, ["ping", "-c1", lab.hosts[0].address])
        lab.link_down(3)                           # host 3 hears nobody, nobody hears it
        lab.link_up(3)

The shape, per lab (TAG = "cnl" + this process's pid + two letters, so that two runs on one
machine, or two labs in one run, never collide; the longest name, TAGv99, fits Linux's 15
characters):

    root namespace:  bridge TAGbr 10.77.X.254/24 ── TAGv0 ── TAGv1 ── ...   (veth ends)
    namespace TAG-h0:  lo up, eth0 10.77.X.1/24 (the other end of TAGv0)
    namespace TAG-h1:  lo up, eth0 10.77.X.2/24
    ...

The bridge has an address in the root namespace, so the process that made the lab reaches
every host directly (JSON-RPC from a test). X is chosen from the pid among the /24s nothing
on this machine uses yet (interfaces, routes, other labs), under a lock. Each host's name
(`host0`, ... or the names given) resolves inside every host to its address: /etc/netns/<ns>/hosts,
which `ip netns exec` bind-mounts over /etc/hosts, so `/dns4/host1/tcp/...` multiaddrs work
through the system resolver.

`link_down(i)` sets the root end of host i's veth down: the host's eth0 loses carrier and
every packet to or from it is lost (TCP connections time out, as with a pulled cable, rather
than being reset). Objects attached with `lab.attach` (the WAN emulator, devnet/wan.py) hear
of it too and cut that host's WAN port.

Cleanup always runs (`close`, the context manager, on exceptions and Ctrl-C alike): the
processes started with `popen` are stopped (SIGTERM, then SIGKILL), any process left in a
namespace is killed, and the namespaces, veths, bridge and hosts files are removed.
Processes started by `popen` die with this process even when it is SIGKILLed (the kernel's
parent-death signal, as devnet/supervisor.py does for nodes); what such a death leaves
(namespaces, bridge) carries the dead pid in its name and is swept by the next
`Lab.create` on the machine. A record of every live lab (owner pid and start time, so a
reused pid is not mistaken for the owner) is kept in /run/chainnode-netns/.

`Consortium` deploys a chainnode consortium on a lab the way an operator does on real
machines: `chainnode genesis lab --hosts ADDR:N,... --rpc-remote` lays it out (one folder
per host), and each node runs as `chainnode start --config <node.toml>` inside its host's
namespace. It offers what devnet/bench.py needs of a Devnet (`nodes`, `pid`, `client`), so
the same load generator drives it.

Needs root, iproute2 (`ip`; `make iproute2` installs it) and a kernel with network
namespaces and veth; `Lab.available()` says whether this machine has them, and why not.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

from devnet.supervisor import BOUND_TO_PARENT, CHAINNODE

PREFIX = "cnl"  # chainnode lab: every name this module creates starts with it
STATE_DIR = Path("/run/chainnode-netns")
NETNS_ETC = Path("/etc/netns")
SUBNET_BASE = "10.77"  # labs use 10.77.X.0/24, X in 1..254
GATEWAY_HOST = 254  # the bridge's address in the root namespace: 10.77.X.254
HOSTS_MAX = 99  # interface names hold the index in two digits (IFNAMSIZ: 15 characters)
IFNAME_MAX = 15
IP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0  # SIGTERM -> SIGKILL for processes started with popen
_TAG_RE = re.compile(rf"^{PREFIX}(\d+)([a-z]{{2}})")  # the pid, then the lab's number in that process
LABS_PER_PROCESS_MAX = 26 * 26 - 1  # "zz" is the availability probe's
_sequence = itertools.count()
# Processes started in a host run under devnet/supervisor.py's BOUND_TO_PARENT wrapper, then
# become `ip netns exec NS ARGV...` (exec keeps the parent-death signal).


class LabError(RuntimeError):
    pass


class LinkListener(Protocol):
    """What `Lab.attach` takes: told when a host's link goes down or up, closed with the lab."""

    def set_host_link(self, index: int, up: bool) -> None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Host:
    index: int
    name: str  # resolves to `address` inside every host of the lab
    netns: str  # the namespace: `ip netns exec <netns> ...`
    address: str  # IPv4, on the host's eth0
    veth: str  # the root namespace's end of the host's cable (what link_down sets down)


def _ip_path() -> str | None:
    return shutil.which("ip") or next((p for p in ("/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip") if os.path.exists(p)), None)


def ip(*args: str, check: bool = True, timeout_s: float = IP_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Run `ip ARGS...`; LabError with ip's own message if it fails (and `check`)."""
    path = _ip_path()
    if path is None:
        raise LabError("the `ip` command (iproute2) is not installed; `make iproute2` installs it")
    p = subprocess.run([path, *args], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise LabError(f"ip {' '.join(args)}: {(p.stderr or p.stdout).strip() or f'exit status {p.returncode}'}")
    return p


def ip_batch(lines: Sequence[str], *, netns: str | None = None, timeout_s: float = IP_TIMEOUT_S) -> None:
    """Run many `ip` commands in one process (`ip [-n NETNS] -batch -`), stopping at the first failure."""
    path = _ip_path()
    if path is None:
        raise LabError("the `ip` command (iproute2) is not installed; `make iproute2` installs it")
    p = subprocess.run([path, *(["-n", netns] if netns else []), "-batch", "-"], input="\n".join(lines) + "\n", capture_output=True, text=True, timeout=timeout_s)
    if p.returncode != 0:
        raise LabError(f"ip -batch: {(p.stderr or p.stdout).strip() or f'exit status {p.returncode}'}")


def process_start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc/PID/stat field 22), or None
    if there is no such process (or it is a zombie): with the pid, it names a process uniquely."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return None if fields[0] == "Z" else int(fields[19])


_available: tuple[bool, str] | None = None


def available() -> tuple[bool, str]:
    """(True, "") if this machine can make labs, else (False, why not): not root, no `ip`,
    or the kernel refuses a network namespace or a veth pair. Tried once per process."""
    global _available
    if _available is not None:
        return _available
    if sys.platform != "linux":
        _available = (False, "network namespaces are Linux's")
    elif os.geteuid() != 0:
        _available = (False, "making network namespaces needs root (run the tests as root, or skip them)")
    elif _ip_path() is None:
        _available = (False, "the `ip` command (iproute2) is not installed; `make iproute2` installs it")
    else:
        probe = f"{PREFIX}{os.getpid()}zz-probe"
        try:
            ip("netns", "add", probe)
        except (LabError, OSError, subprocess.TimeoutExpired) as exc:
            _available = (False, f"this machine cannot make network namespaces: {exc}")
        else:
            try:
                ip("-n", probe, "link", "add", "name", "probe-a", "type", "veth", "peer", "name", "probe-b")
                ip("-n", probe, "link", "add", "name", "probe-br", "type", "bridge")
                _available = (True, "")
            except (LabError, OSError, subprocess.TimeoutExpired) as exc:
                _available = (False, f"this kernel cannot make veth pairs or bridges: {exc}")
            finally:
                ip("netns", "del", probe, check=False)
    return _available


class _DeferSigint:
    """Hold Ctrl-C back while a cleanup runs (in the main thread), then deliver it: a second
    Ctrl-C must not leave half a lab behind."""

    def __enter__(self) -> "_DeferSigint":
        self.pending = False
        self.old = None
        if threading.current_thread() is threading.main_thread():
            def defer(signum, frame):
                self.pending = True
            try:
                self.old = signal.signal(signal.SIGINT, defer)
            except ValueError:
                self.old = None
        return self

    def __exit__(self, *exc) -> None:
        if self.old is not None:
            signal.signal(signal.SIGINT, self.old)
        if self.pending and exc[0] is None:
            raise KeyboardInterrupt


def _lock():
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    fd = os.open(STATE_DIR / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _records() -> list[dict]:
    out = []
    for path in sorted(STATE_DIR.glob(f"{PREFIX}*.json")):
        try:
            out.append({**json.loads(path.read_text()), "path": str(path)})
        except (OSError, ValueError):
            out.append({"tag": path.stem, "pid": -1, "start": -1, "path": str(path)})
    return out


def _owner_alive(record: dict) -> bool:
    start = process_start_time(int(record.get("pid", -1))) if int(record.get("pid", -1)) > 0 else None
    return start is not None and start == record.get("start")


def _kill_namespace_processes(netns: str, *, wait_s: float = 5.0) -> None:
    """SIGKILL every process in `netns` (only processes a lab started live there) and wait
    until they are gone, so the namespace is really freed by `ip netns del`."""
    deadline = time.monotonic() + wait_s
    while True:
        p = ip("netns", "pids", netns, check=False)
        pids = [int(x) for x in p.stdout.split() if x.isdigit()] if p.returncode == 0 else []
        pids = [pid for pid in pids if pid != os.getpid()]
        if not pids or time.monotonic() > deadline:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)


def _remove_tag(tag: str) -> None:
    """Remove everything named after `tag`: its namespaces (and processes), links, hosts files."""
    netns_list = ip("netns", "list", check=False).stdout.split("\n")
    for line in netns_list:
        name = line.split(" ", 1)[0].strip()
        if name.startswith(tag + "-"):
            _kill_namespace_processes(name)
            ip("netns", "del", name, check=False)
            shutil.rmtree(NETNS_ETC / name, ignore_errors=True)
    for name in root_links():
        if name.startswith(tag):
            ip("link", "del", name, check=False)
    for folder in NETNS_ETC.glob(f"{tag}-*") if NETNS_ETC.exists() else []:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        NETNS_ETC.rmdir()  # only if empty: another tool's namespaces may have files there
    except OSError:
        pass
    try:
        (STATE_DIR / f"{tag}.json").unlink()
    except FileNotFoundError:
        pass


def root_links() -> list[str]:
    """The names of the root namespace's network interfaces."""
    out = ip("-o", "link", "show", check=False).stdout
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) >= 2:
            names.append(parts[1].strip().split("@", 1)[0])
    return names


def sweep_stale() -> list[str]:
    """Remove the labs whose owner process is gone (a run that was SIGKILLed); returns their tags. Labs of live processes are kept.
    Called by `Lab.create` under the lab lock."""
    live: set[str] = set()
    stale: set[str] = set()
    for record in _records():
        (live if _owner_alive(record) else stale).add(record["tag"])
    # Leftovers with no record (the record is written first and removed last, but be safe):
    # their name holds the owner's pid.
    names = [line.split(" ", 1)[0] for line in ip("netns", "list", check=False).stdout.splitlines()] + root_links()
    for name in names:
        m = _TAG_RE.match(name)
        if m is None:
            continue
        tag = m.group(0)
        if tag not in live and tag not in stale and (int(m.group(1)) == os.getpid() or process_start_time(int(m.group(1))) is None):
            # Our own pid without a live record: a lab of this process that was never
            # recorded cannot exist, so this is a dead process's whose pid we now have.
            stale.add(tag)
    for tag in sorted(stale):
        _remove_tag(tag)
    return sorted(stale)


def _subnets_in_use() -> set[int]:
    """The X of every 10.77.X.0/24 that an address or a route of the root namespace touches."""
    text = ip("-4", "-o", "addr", "show", check=False).stdout + ip("-4", "route", "show", "table", "all", check=False).stdout
    return {int(m.group(1)) for m in re.finditer(rf"\b{re.escape(SUBNET_BASE)}\.(\d+)\.", text)}


def _pick_subnet(pid: int, seq: int, taken: set[int]) -> int:
    start = (pid * 7 + seq) % 254
    for k in range(254):
        x = (start + k) % 254 + 1
        if x not in taken:
            return x
    raise LabError(f"every {SUBNET_BASE}.X.0/24 is in use on this machine; remove stale labs (ip netns list | grep {PREFIX})")


class Lab:
    """A lab of `hosts` namespaces on one bridge. Make it with `Lab.create`; close it (or
    use it as a context manager) to remove all of it."""

    def __init__(self, tag: str, subnet_x: int, hosts: list[Host]) -> None:
        self.tag = tag
        self.subnet = f"{SUBNET_BASE}.{subnet_x}.0/24"
        self.subnet_x = subnet_x
        self.gateway = f"{SUBNET_BASE}.{subnet_x}.{GATEWAY_HOST}"  # the root namespace's address
        self.bridge = f"{tag}br"
        self.hosts = hosts
        self._procs: list[subprocess.Popen] = []
        self._attached: list[LinkListener] = []
        self._down: set[int] = set()
        self._closed = False

    available = staticmethod(available)

    @classmethod
    def create(cls, hosts: int, *, names: Sequence[str] | None = None) -> "Lab":
        """Build a lab of `hosts` hosts (named `names`, default host0, host1, ...). Sweeps
        stale labs of dead processes first."""
        if not 1 <= hosts <= HOSTS_MAX:
            raise LabError(f"a lab has 1 to {HOSTS_MAX} hosts, not {hosts}")
        names = list(names) if names is not None else [f"host{i}" for i in range(hosts)]
        if len(names) != hosts or len(set(names)) != hosts or not all(re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.-]{0,62}", n) for n in names):
            raise LabError(f"give {hosts} distinct host names of letters, digits, dots and dashes, not {names}")
        ok, why = available()
        if not ok:
            raise LabError(why)
        pid, seq = os.getpid(), next(_sequence)
        if seq >= LABS_PER_PROCESS_MAX:
            raise LabError(f"one process makes at most {LABS_PER_PROCESS_MAX} labs")
        tag = f"{PREFIX}{pid}{chr(ord('a') + seq // 26)}{chr(ord('a') + seq % 26)}"
        assert len(f"{tag}v{HOSTS_MAX}") <= IFNAME_MAX, tag
        lock = _lock()
        lab = None
        try:
            sweep_stale()
            taken = _subnets_in_use() | {int(r["subnet_x"]) for r in _records() if "subnet_x" in r}
            x = _pick_subnet(pid, seq, taken)
            # The record first: if we die while building, the next create finds the leftovers.
            (STATE_DIR / f"{tag}.json").write_text(json.dumps({"tag": tag, "pid": pid, "start": process_start_time(pid), "subnet_x": x, "hosts": hosts}))
            host_list = [Host(index=i, name=names[i], netns=f"{tag}-h{i}", address=f"{SUBNET_BASE}.{x}.{i + 1}", veth=f"{tag}v{i}") for i in range(hosts)]
            lab = cls(tag, x, host_list)
            with _DeferSigint():
                lab._build()
        except BaseException:
            with _DeferSigint():
                if lab is not None:
                    lab._closed = True
                _remove_tag(tag)  # we hold the lock already
            raise
        finally:
            _unlock(lock)
        return lab

    def _build(self) -> None:
        # `ip -batch` lines take no options (no -n), so: the root's part, each namespace's
        # part, then plugging the cables into the bridge.
        root = [f"link add name {self.bridge} type bridge", f"addr add {self.gateway}/24 dev {self.bridge}", f"link set {self.bridge} up"]
        for h in self.hosts:
            peer = f"{self.tag}p{h.index}"
            root += [f"netns add {h.netns}", f"link add name {h.veth} type veth peer name {peer}", f"link set {peer} netns {h.netns}"]
        ip_batch(root)
        for h in self.hosts:
            ip_batch([f"link set {self.tag}p{h.index} name eth0", f"addr add {h.address}/24 dev eth0", "link set eth0 up", "link set lo up"], netns=h.netns)
        ip_batch([f"link set {h.veth} master {self.bridge} up" for h in self.hosts])
        hosts_file = "127.0.0.1\tlocalhost\n::1\tlocalhost\n" + "".join(f"{h.address}\t{h.name}\n" for h in self.hosts)
        hosts_file += f"{self.gateway}\tlab-gateway\n"
        for h in self.hosts:
            folder = NETNS_ETC / h.netns
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "hosts").write_text(hosts_file)

    # ---- processes ----------------------------------------------------------------------

    def command(self, i: int, argv: Sequence[str]) -> list[str]:
        """The argv that runs `argv` inside host i (`ip netns exec`)."""
        return [_ip_path() or "ip", "netns", "exec", self.hosts[i].netns, *map(str, argv)]

    def popen(self, i: int, argv: Sequence[str], *, bind: bool = True, **kwargs) -> subprocess.Popen:
        """Start `argv` inside host i. With `bind` (the default) the process dies with this
        one, even by SIGKILL; start it from the main thread then (the parent-death signal
        follows the thread that forked). It gets a session of its own (Ctrl-C in the
        terminal does not reach it; `close` stops it) unless `start_new_session` is given.
        The lab stops it at `close`."""
        self._check_open()
        argv = self.command(i, argv)
        if bind:
            if threading.current_thread() is not threading.main_thread():
                raise LabError("start bound processes from the main thread: they die with the thread that started them")
            argv = [sys.executable, "-c", BOUND_TO_PARENT, str(os.getpid()), *argv]
        kwargs.setdefault("start_new_session", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(argv, **kwargs)
        self._procs.append(proc)
        return proc

    def run(self, i: int, argv: Sequence[str], *, timeout_s: float = 30.0, check: bool = False, **kwargs) -> subprocess.CompletedProcess:
        """Run `argv` inside host i to its end (text output captured unless told otherwise)."""
        self._check_open()
        kwargs.setdefault("capture_output", True)
        kwargs.setdefault("text", True)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run(self.command(i, argv), timeout=timeout_s, check=check, **kwargs)

    def pids(self, i: int) -> list[int]:
        """The processes running inside host i now."""
        p = ip("netns", "pids", self.hosts[i].netns, check=False)
        return [int(x) for x in p.stdout.split() if x.isdigit()]

    # ---- links --------------------------------------------------------------------------

    def attach(self, listener: LinkListener) -> None:
        """Tell `listener` of every link_down/link_up from now on (and of links already
        down), and close it first when the lab closes."""
        self._check_open()
        self._attached.append(listener)
        for i in sorted(self._down):
            listener.set_host_link(i, False)

    def detach(self, listener: LinkListener) -> None:
        if listener in self._attached:
            self._attached.remove(listener)

    def link_down(self, i: int) -> None:
        """Cut host i off from every other host and from the root namespace."""
        self._check_open()
        ip("link", "set", self.hosts[i].veth, "down")
        self._down.add(i)
        for listener in self._attached:
            listener.set_host_link(i, False)

    def link_up(self, i: int) -> None:
        """Plug host i back in."""
        self._check_open()
        ip("link", "set", self.hosts[i].veth, "up")
        self._down.discard(i)
        for listener in self._attached:
            listener.set_host_link(i, True)

    def link_is_up(self, i: int) -> bool:
        return i not in self._down

    # ---- lifetime -----------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LabError(f"the lab {self.tag} is closed")

    def close(self) -> None:
        """Stop what runs in the lab and remove it all. Idempotent; never raises for a part
        that is already gone."""
        if self._closed:
            return
        self._closed = True
        with _DeferSigint():
            errors = []
            for listener in reversed(self._attached):
                try:
                    listener.close()
                except Exception as exc:  # keep cleaning: the rest must go too
                    errors.append(f"{listener!r}: {exc}")
            self._attached.clear()
            self._stop_processes()
            lock = _lock()
            try:
                _remove_tag(self.tag)
            finally:
                _unlock(lock)
            if errors:
                raise LabError(f"closing the lab {self.tag}: {'; '.join(errors)}")

    def _stop_processes(self) -> None:
        running = [p for p in self._procs if p.poll() is None]
        for p in running:
            try:
                os.killpg(p.pid, signal.SIGTERM) if _own_group(p) else p.terminate()
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for p in running:
            try:
                p.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL) if _own_group(p) else p.kill()
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        self._procs.clear()

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Lab({self.tag}, {self.subnet}, {len(self.hosts)} hosts{', closed' if self._closed else ''})"


def _own_group(p: subprocess.Popen) -> bool:
    """True if `p` leads a process group of its own (started with a new session), so the
    whole group can be signalled without touching anyone else."""
    try:
        return os.getpgid(p.pid) == p.pid
    except OSError as exc:
        if exc.errno == errno.ESRCH:
            return False
        raise


# ---- a chainnode consortium on a lab -----------------------------------------------------


@dataclass(frozen=True)
class LabNode:
    """A node of a Consortium: where `chainnode genesis lab` put it and how to reach it."""

    name: str
    index: int  # in Consortium.nodes
    host: int  # the lab host it runs in
    role: str
    folder: Path
    config: Path
    p2p: str  # its multiaddr in the genesis
    rpc_url: str  # plain HTTP JSON-RPC on the host's address (--rpc-remote): reachable from here over the bridge
    channel_url: str  # chainnode://ADDR:PORT, the dApp channel port
    peer_id: str = ""  # its libp2p peer id


def _by_address(url: str, addresses: dict[str, str]) -> str:
    """`url` with a lab host name (http://host1:8545) replaced by its address."""
    m = re.match(r"^([a-z]+://)([^:/\[\]]+)(.*)$", url)
    if m is None or m.group(2) not in addresses:
        return url
    return m.group(1) + addresses[m.group(2)] + m.group(3)


class Consortium:
    """A chainnode consortium on the hosts of a lab, laid out by `chainnode genesis lab`.

    Nodes are numbered 0..n-1 in the order of lab.json (host by host); node i runs on lab
    host `nodes[i].host`. Processes are started in their host's namespace with `lab.popen`
    (bound to this process; the lab stops them when it closes)."""

    def __init__(self, lab: Lab, folder: Path, doc: dict) -> None:
        self.lab = lab
        self.folder = Path(folder)
        self.doc = doc
        self.password = Path(doc["password_file"]).read_text().strip()
        # Hosts laid out by name: the test process (root namespace) has no hosts file of
        # the lab, so its URLs use the addresses the names stand for.
        by_name = {h.name: h.address for h in lab.hosts}
        nodes = []
        for h_index, h in enumerate(doc["hosts"]):
            for n in h["nodes"]:
                nodes.append(LabNode(name=n["name"], index=len(nodes), host=h_index, role=n.get("role", "sealer"), folder=Path(n["folder"]),
                                     config=Path(n["config"]), p2p=n["p2p"], rpc_url=_by_address(n["rpc_url"], by_name),
                                     channel_url=_by_address(n["channel_url"], by_name), peer_id=n.get("peer_id", "")))
        self.nodes = nodes
        self._procs: dict[str, subprocess.Popen] = {}
        self._credentials = None

    @classmethod
    def create(cls, lab: Lab, folder: Path, *, nodes_per_host: int = 1, by_name: bool = False, suite: str = "sm",
               config: dict[str, int] | None = None, scrypt_n: int | None = None, extra_args: Sequence[str] = ()) -> "Consortium":
        """Run `chainnode genesis lab --hosts <each lab host>:<nodes_per_host> --out <folder>
        --rpc-remote` (with `--config NAME=VALUE` for each of `config`, and a small
        `--scrypt-n` for tests) and read the lab.json it wrote. The hosts are given by
        address, or with `by_name` by their lab names (host0, ...), which the nodes then
        resolve through the lab's hosts files: the chain lists `/dns4/host1/...` addresses."""
        folder = Path(folder)
        argv = [CHAINNODE, "genesis", "lab", "--hosts", ",".join(f"{h.name if by_name else h.address}:{nodes_per_host}" for h in lab.hosts),
                "--out", str(folder), "--suite", suite, "--rpc-remote", "--json"]
        for name, value in (config or {}).items():
            argv += ["--config", f"{name}={value}"]
        if scrypt_n is not None:
            argv += ["--scrypt-n", str(scrypt_n)]
        argv += list(extra_args)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise LabError(f"chainnode genesis lab failed (status {p.returncode}): {p.stderr.strip()[-2000:]}")
        return cls(lab, folder, json.loads((folder / "lab.json").read_text()))

    # ---- processes ----------------------------------------------------------------------

    def start(self, i: int) -> None:
        """Start node i (`chainnode start --config ...` in its host), logging to <folder>/node.log."""
        node = self.nodes[i]
        proc = self._procs.get(node.name)
        if proc is not None and proc.poll() is None:
            return
        with open(node.folder / "node.log", "ab") as log:
            self._procs[node.name] = self.lab.popen(node.host, [CHAINNODE, "start", "--config", str(node.config)], stdout=log,
                                                    stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def start_all(self, *, timeout_s: float = 60.0) -> None:
        for i in range(len(self.nodes)):
            self.start(i)
        for i in range(len(self.nodes)):
            self.wait_rpc(i, timeout_s=timeout_s)

    def stop(self, i: int, *, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM node i and wait for it; its exit status (None if it was not running)."""
        proc = self._procs.pop(self.nodes[i].name, None)
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        proc.terminate()
        try:
            return proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.wait(timeout=5)

    def stop_all(self) -> None:
        for i in range(len(self.nodes)):
            self.stop(i)

    def exit_code(self, i: int) -> int | None:
        proc = self._procs.get(self.nodes[i].name)
        return None if proc is None else proc.poll()

    def log(self, i: int) -> str:
        path = self.nodes[i].folder / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pid(self, name: str) -> int | None:
        """The pid of node `name`'s process while it runs (what devnet/bench.py reads CPU from)."""
        proc = self._procs.get(name)
        return proc.pid if proc is not None and proc.poll() is None else None

    # ---- JSON-RPC -----------------------------------------------------------------------

    def rpc(self, i: int, method: str, *params, timeout_s: float = 10.0):
        """Call `method` on node i over its HTTP port (through the bridge, so not while its link is down)."""
        import httpx

        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": ["group0", "", *params]}
        reply = httpx.post(self.nodes[i].rpc_url, json=body, timeout=timeout_s).json()
        if "error" in reply:
            raise LabError(f"{self.nodes[i].name} {method}: {reply['error'].get('message')}")
        return reply["result"]

    def wait_rpc(self, i: int, *, timeout_s: float = 60.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            code = self.exit_code(i)
            if code is not None:
                raise LabError(f"{self.nodes[i].name} exited with status {code}; its log ends:\n{self.log(i)[-2000:]}")
            try:
                self.rpc(i, "getBlockNumber", timeout_s=2.0)
                return
            except (httpx.HTTPError, OSError):
                if time.monotonic() > deadline:
                    raise LabError(f"{self.nodes[i].name} did not answer RPC within {timeout_s} s; its log ends:\n{self.log(i)[-2000:]}") from None
                time.sleep(0.1)

    def height(self, i: int) -> int:
        return int(self.rpc(i, "getBlockNumber"))

    def block_hash(self, i: int, height: int) -> str | None:
        return self.rpc(i, "getBlockHashByNumber", height)

    def status_inside(self, i: int, *, timeout_s: float = 60.0) -> dict:
        """`chainnode status --json` run inside node i's own host against its RPC port: works
        while its link is down (the host reaches its own address without the cable)."""
        p = self.lab.run(self.nodes[i].host, [CHAINNODE, "status", "--json", "--url", self.nodes[i].rpc_url], timeout_s=timeout_s)
        if p.returncode != 0:
            raise LabError(f"chainnode status inside host {self.nodes[i].host}: {p.stderr.strip()[-500:]}")
        return json.loads(p.stdout)

    def client(self, urls: str | Sequence[str] | None = None, **kwargs):
        """An SDK Client (chainnode.client) connected as the lab's `user` client certificate;
        by default to every node's channel port, with failover. http:// URLs need no
        certificate and get none."""
        from chainnode.client import Account, Client, ClientCredentials

        listed = [n.channel_url for n in self.nodes] if urls is None else ([urls] if isinstance(urls, str) else list(urls))
        if any(u.startswith("chainnode://") for u in listed) and "key" not in kwargs:
            if self._credentials is None:
                user = self.doc["clients"]["user"]
                self._credentials = ClientCredentials.load(Account.load(user["key"], self.password), cert=user["cert"])
            kwargs = {"key": self._credentials.account, "cert": self._credentials.chain, **kwargs}
        return Client(listed, **kwargs)

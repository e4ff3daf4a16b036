"""A local network of real node processes in one folder: create it, start and stop its
nodes, ask them how they are.

The folder holds `devnet.json` (the layout) and one subfolder per node (see layout.py).
A node's process writes its pid into `<node>/node.pid` and holds a lock on it while it
runs (chainnode/store/leveldb.py), so whether a node is up is read from the lock, not guessed:
a devnet folder can be driven from any shell, and a crashed node never looks alive.

Node processes started by a `Devnet(..., bind_nodes=True)` (the default: tests, benchmarks,
`devnet up` in the foreground) die with the process that started them, even when it is
SIGKILLed: nothing is left behind. `devnet up --detach` and `devnet start` pass
bind_nodes=False, since there outliving the command is the point.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import httpx

from devnet.layout import NodeLayout, create_network, devnet_client, prepare_extra_node
from devnet.migrate import MigrateError, is_old_devnet, migrate

LAYOUT_FILE = "devnet.json"
CHAINNODE = str(Path(sys.executable).parent / "chainnode")
# Runs in the child, then becomes `chainnode start` (exec keeps the setting): the kernel
# sends SIGKILL when the parent dies (prctl PR_SET_PDEATHSIG = 1). If the parent died before
# the prctl took effect, nobody would ever send it, so check the parent is still ours.
# A wrapper, not a preexec_fn: preexec_fn may deadlock in a process with threads (trio's).
BOUND_TO_PARENT = (
    "import ctypes, os, signal, sys\n"
    "if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0) != 0:\n"
    "    sys.exit('devnet: prctl(PR_SET_PDEATHSIG) failed, errno %d' % ctypes.get_errno())\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit('devnet: the process that started this one is gone')\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


class DevnetError(RuntimeError):
    pass


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie (an exited child nobody reaped yet)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    return state != "Z"


def running_pid(folder: Path) -> int | None:
    """The pid of the node process holding `folder`'s lock, or None if none does."""
    path = folder / "node.pid"
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                text = os.read(fd, 32).decode(errors="replace").strip()
                return int(text) if text.isdigit() else -1
            raise
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _write_layout(folder: Path, nodes: list[NodeLayout]) -> None:
    rows = [{**asdict(n), "folder": str(n.folder.resolve()), "config": str(n.config.resolve())} for n in nodes]
    (folder / LAYOUT_FILE).write_text(json.dumps({"nodes": rows}, indent=2) + "\n")


class Devnet:
    def __init__(self, folder: Path, *, bind_nodes: bool = True) -> None:
        self.folder = Path(folder)
        self.bind_nodes = bind_nodes and sys.platform == "linux"  # PR_SET_PDEATHSIG is Linux's
        path = self.folder / LAYOUT_FILE
        if not path.exists():
            raise DevnetError(f"no devnet in {self.folder}; create one with `devnet up --dir {self.folder}`")
        if is_old_devnet(self.folder):
            raise DevnetError(
                f"{self.folder} was made by chainnode 0.1, whose certificates were not X.509; convert it with "
                f"`devnet migrate --dir {self.folder}` (it keeps every key; the chain restarts at block 0)"
            )
        data = json.loads(path.read_text())
        self.nodes = [NodeLayout(**{**n, "folder": Path(n["folder"]), "config": Path(n["config"])}) for n in data["nodes"]]
        self._procs: dict[str, subprocess.Popen] = {}
        self.exit_codes: dict[str, int] = {}  # of processes this object started and saw end

    @classmethod
    def migrate(cls, folder: Path) -> "Devnet":
        """Convert a devnet of chainnode 0.1 to X.509 certificates (devnet/migrate.py)."""
        folder = Path(folder)
        if not (folder / LAYOUT_FILE).exists():
            raise DevnetError(f"no devnet in {folder}; pass the --dir of the devnet to convert")
        if any(running_pid(node) is not None for node in folder.iterdir() if node.is_dir()):
            raise DevnetError(f"the devnet in {folder} is running; stop it first with `devnet down --dir {folder}`")
        try:
            rows = migrate(folder, LAYOUT_FILE)
        except MigrateError as exc:
            raise DevnetError(str(exc)) from None
        (folder / LAYOUT_FILE).write_text(json.dumps({"nodes": rows}, indent=2) + "\n")
        return cls(folder)

    @classmethod
    def create(cls, folder: Path, *, bind_nodes: bool = True, **kwargs) -> "Devnet":
        folder = Path(folder)
        if (folder / LAYOUT_FILE).exists():
            raise DevnetError(f"{folder} already holds a devnet; use it, or `devnet clean --dir {folder}` first")
        _write_layout(folder, create_network(folder, **kwargs))
        return cls(folder, bind_nodes=bind_nodes)

    def add_node(self, name: str, *, p2p_port: int, rpc_port: int, channel_port: int | None = None, role: str = "observer",
                 scrypt_n: int | None = None) -> NodeLayout:
        """Prepare a node that is not in the genesis (key, certificate, config, block 0) and
        record it in this devnet; it joins the chain once governance adds it."""
        kwargs = {} if scrypt_n is None else {"scrypt_n": scrypt_n}
        node = prepare_extra_node(self.folder, name, p2p_port=p2p_port, rpc_port=rpc_port, channel_port=channel_port, role=role, **kwargs)
        self.nodes.append(node)
        _write_layout(self.folder, self.nodes)
        return node

    def node(self, name: str) -> NodeLayout:
        for n in self.nodes:
            if n.name == name:
                return n
        raise DevnetError(f"no node {name!r} in this devnet; nodes: {', '.join(n.name for n in self.nodes)}")

    def index(self, name: str) -> int:
        return self.nodes.index(self.node(name))

    # ---- processes ----------------------------------------------------------------------

    def pid(self, name: str) -> int | None:
        return running_pid(self.node(name).folder)

    def start(self, name: str, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        """Start the node's process (with `env` added to this one's environment, and `args`
        after `chainnode start --config ...`, e.g. ("--sync", "snapshot"))."""
        node = self.node(name)
        if self.pid(name) is not None:
            return
        argv = [CHAINNODE, "start", "--config", str(node.config), *args]
        if self.bind_nodes:
            # The kernel's parent-death signal fires when the *thread* that forked exits, and
            # a worker thread (trio.to_thread's) exits when idle: only the main thread lives
            # as long as the process.
            if threading.current_thread() is not threading.main_thread():
                raise DevnetError(f"start {name} from the main thread: a node bound to this process dies with the thread that started it")
            argv = [sys.executable, "-c", BOUND_TO_PARENT, str(os.getpid()), *argv]
        with open(node.folder / "node.log", "ab") as log:
            # A session of its own: Ctrl-C in the terminal that ran `devnet up --detach` later
            # must not reach the nodes; `devnet stop`/`down` stop them.
            self._procs[name] = subprocess.Popen(
                argv,
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(os.environ, PYTHONUNBUFFERED="1", **(env or {})), start_new_session=True,
            )

    def signal(self, name: str, sig: int, *, wait_s: float = 15.0) -> bool:
        """Send `sig` to the node; wait until it has let go of its folder. False if it was not running."""
        pid = self.pid(name)
        if pid is None or pid <= 0:
            return False
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + wait_s
        # Gone means gone: the data directory's lock is released a moment before the
        # process has finished exiting, and "devnet down" promises no process is left.
        while (self.pid(name) is not None or process_alive(pid)) and time.monotonic() < deadline:
            proc = self._procs.get(name)
            if proc is not None:
                proc.poll()
            time.sleep(0.05)
        proc = self._procs.pop(name, None)
        if proc is not None:
            self.exit_codes[name] = proc.wait(timeout=5)
        if self.pid(name) is not None:
            raise DevnetError(f"{name} (pid {pid}) did not stop within {wait_s} s; `devnet kill {name}` ends it")
        return True

    def stop(self, name: str) -> bool:
        return self.signal(name, signal.SIGTERM)

    def kill(self, name: str) -> bool:
        return self.signal(name, signal.SIGKILL)

    def exit_code(self, name: str) -> int | None:
        proc = self._procs.get(name)
        return None if proc is None else proc.poll()

    def log(self, name: str) -> str:
        path = self.node(name).folder / "node.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # ---- RPC ----------------------------------------------------------------------------

    def urls(self, *, http: bool = False) -> list[str]:
        """Every node's address for dApps: its channel port (its HTTP port with `http`, or on
        a devnet without certificates)."""
        return [n.rpc_url if http else n.url for n in self.nodes]

    def client(self, urls: str | list[str] | None = None, *, role: str = "user", http: bool = False, **kwargs):
        """An SDK Client of this devnet, connected as its `role` client certificate
        (clients/<role>.pem); by default to every node's channel port, with failover."""
        return devnet_client(self.folder, urls if urls is not None else self.urls(http=http), role=role, **kwargs)

    def rpc(self, name: str, method: str, *params, timeout_s: float = 10.0):
        body = {"jsonrpc": "2.0", "id": 1, "method": method, "params": ["group0", "", *params]}
        reply = httpx.post(self.node(name).rpc_url, json=body, timeout=timeout_s).json()
        if "error" in reply:
            raise DevnetError(f"{name} {method}: {reply['error']['message']}")
        return reply["result"]

    def wait_rpc(self, name: str, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.exit_code(name)
            if code is not None:
                raise DevnetError(f"{name} exited with status {code}; its log ends:\n{self.log(name)[-2000:]}")
            try:
                self.rpc(name, "getBlockNumber", timeout_s=1.0)
                return
            except (httpx.HTTPError, OSError):
                time.sleep(0.1)
        raise DevnetError(f"{name} did not answer RPC within {timeout_s} s; see {self.node(name).folder / 'node.log'}")

    def status(self) -> list[dict]:
        rows = []
        for n in self.nodes:
            pid = self.pid(n.name)
            row = {"node": n.name, "role": n.role, "pid": pid, "channel": n.channel_url, "rpc": n.rpc_url, "p2p": f"/ip4/127.0.0.1/tcp/{n.p2p_port}",
                   "height": None, "peers": None, "pending": None}
            if pid is not None:
                try:
                    health = httpx.get(n.rpc_url + "/health", timeout=1.0).json()
                    row.update(height=health["blockNumber"], peers=health["peersConnected"], pending=health["pendingTxs"])
                except (httpx.HTTPError, OSError, ValueError, KeyError):
                    pass
            rows.append(row)
        return rows

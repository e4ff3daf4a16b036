"""Real node processes on loopback for integration tests: a devnet (devnet/supervisor.py)
on free ports, addressed by node index, with waiting helpers."""

from __future__ import annotations

import time
from pathlib import Path

from devnet.supervisor import Devnet
from tests.helpers import free_ports

__all__ = ["ROOT", "Cluster", "free_ports"]

ROOT = Path(__file__).resolve().parents[2]


class Cluster:
    def __init__(self, folder: Path, *, sealers: int = 4, observers: int = 0, config: dict | None = None, **network) -> None:
        self.folder = folder
        n = sealers + observers
        ports = free_ports(2 * n)
        self.net = Devnet.create(folder, sealers=sealers, observers=observers, scrypt_n=1024, config=config, ports=(ports[:n], ports[n:]), **network)
        self.layout = self.net.nodes

    def add_node(self, name: str, role: str = "observer"):
        """A node outside the genesis (see Devnet.add_node); it is index len(layout) - 1."""
        p2p, rpc = free_ports(2)
        node = self.net.add_node(name, p2p_port=p2p, rpc_port=rpc, role=role, scrypt_n=1024)
        self.layout = self.net.nodes
        return node

    def _name(self, i: int) -> str:
        return self.layout[i].name

    def start(self, i: int, env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> None:
        self.net.start(self._name(i), env, args)

    def wait_exit(self, i: int, timeout_s: float = 60) -> int:
        """The exit status of a node this cluster started, once it has ended by itself."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            code = self.net.exit_code(self._name(i))
            if code is not None:
                return code
            time.sleep(0.1)
        raise TimeoutError(f"node{i} still runs after {timeout_s} s")

    def start_all(self, env: dict[str, str] | None = None) -> None:
        for i in range(len(self.layout)):
            self.start(i, env)
        for i in range(len(self.layout)):
            self.wait_rpc(i)

    def kill(self, i: int) -> None:
        assert self.net.kill(self._name(i)), f"node{i} was not running"

    def stop(self, i: int) -> int | None:
        """Stop cleanly; the exit status if this object started it."""
        name = self._name(i)
        assert self.net.stop(name), f"node{i} was not running"
        return self.net.exit_codes.get(name)

    def running(self, i: int) -> bool:
        return self.net.pid(self._name(i)) is not None

    def stop_all(self) -> None:
        for i in range(len(self.layout)):
            if self.running(i):
                try:
                    self.net.stop(self._name(i))
                except Exception:
                    self.net.kill(self._name(i))

    def log(self, i: int) -> str:
        return self.net.log(self._name(i))

    def rpc(self, i: int, method: str, *params, timeout_s: float = 10):
        return self.net.rpc(self._name(i), method, *params, timeout_s=timeout_s)

    def wait_rpc(self, i: int, timeout_s: float = 30) -> None:
        self.net.wait_rpc(self._name(i), timeout_s)

    def height(self, i: int) -> int:
        return self.rpc(i, "getBlockNumber")

    def wait_height(self, nodes, height: int, timeout_s: float = 60) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.height(i) >= height for i in nodes):
                return
            time.sleep(0.2)
        raise TimeoutError(f"heights {[self.height(i) for i in nodes]} of nodes {list(nodes)} did not reach {height} in {timeout_s} s")

    def __enter__(self) -> "Cluster":
        return self

    def __exit__(self, *exc) -> None:
        self.stop_all()

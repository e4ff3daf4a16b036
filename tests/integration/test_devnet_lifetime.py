"""No node process outlives what started it: a foreground `devnet up` and the chain benchmark
(`python -m tests.bench.chain`), SIGKILLed, take their `chainnode start` children with them
(devnet/supervisor.py binds them with the kernel's parent-death signal)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from devnet.supervisor import CHAINNODE, process_alive
from tests.integration.cluster import ROOT, Cluster

DEVNET = os.path.join(os.path.dirname(CHAINNODE), "devnet")
DEADLINE_S = 120  # a generous bound on a shared machine; the test returns as soon as it holds


def _node_children(parent: int) -> dict[int, list[str]]:
    """pid -> argv of each `chainnode start` process whose parent is `parent` (after exec)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and CHAINNODE in argv and "start" in argv and "-c" not in argv:
            found[int(entry)] = argv
    return found


def _wait(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {DEADLINE_S} s"
        time.sleep(0.05)


def _kill_and_check_nodes_gone(proc: subprocess.Popen, node_count: int) -> list[str]:
    """Wait for `node_count` node children of `proc`, SIGKILL `proc`, and wait until every one
    of them is gone. Their --config paths."""
    children: dict[int, list[str]] = {}

    def started() -> bool:
        assert proc.poll() is None, f"the command exited with status {proc.returncode} before starting its nodes"
        children.update(_node_children(proc.pid))
        return len(children) >= node_count

    try:
        _wait(started, f"{node_count} node processes did not start")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        _wait(lambda: not any(process_alive(pid) for pid in children), f"node processes {sorted(children)} outlived the SIGKILLed command")
    finally:
        proc.kill()
        for pid in children:  # never leave them running for the rest of the suite, even on failure
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
    return [argv[argv.index("--config") + 1] for argv in children.values()]


def test_a_sigkilled_foreground_devnet_up_leaves_no_node_behind(tmp_path):
    folder = tmp_path / "net"
    Cluster(folder)  # lays out a 4-node devnet on free ports; `devnet up` starts it
    with open(tmp_path / "up.log", "wb") as out:
        proc = subprocess.Popen([DEVNET, "up", "--dir", str(folder)], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        _kill_and_check_nodes_gone(proc, 4)


def test_a_sigkilled_chain_benchmark_leaves_no_node_behind():
    proc = subprocess.Popen([sys.executable, "-m", "tests.bench.chain", "--nodes", "1", "--quick"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    configs = _kill_and_check_nodes_gone(proc, 1)
    for config in configs:  # the benchmark's temporary devnet, which its SIGKILL left on disk
        tmp = Path(config).parents[2]
        if tmp.name.startswith("chainnode-bench-"):
            shutil.rmtree(tmp, ignore_errors=True)

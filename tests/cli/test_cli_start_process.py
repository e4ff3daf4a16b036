"""`chainnode start` as a real process, as a service manager sees it: JSON lines on stderr,
exit status 0 on SIGTERM, 78 for what a restart cannot fix, 75 for a port in use, 1 (with
the traceback logged) for a bug; SIGHUP ignored; the key password from a systemd credential.

Every wait is on a line of the node's output or on its exit, with generous deadlines (the
machine may be a loaded 2-core one); nothing sleeps.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from devnet.layout import DEVNET_PASSWORD, create_network
from devnet.supervisor import CHAINNODE
from tests.helpers import free_ports

START_DEADLINE_S = 120  # imports, key decryption and LevelDB on a loaded machine
EXIT_DEADLINE_S = 60


@pytest.fixture
def node(tmp_path):
    """A one-sealer chain (no CA, no contracts: the cheapest that starts), key password in
    password.txt, node.toml with the default text logs."""
    p2p, rpc = free_ports(2)
    [layout] = create_network(tmp_path / "net", sealers=1, certificates=False, contracts=False, scrypt_n=1024, ports=([p2p], [rpc]))
    return layout


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CHAINNODE_PASSWORD", "CREDENTIALS_DIRECTORY")}
    return {**env, **extra}


class Running:
    """A `chainnode start` process whose stderr lines are read as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_line(self, fragment: str, timeout_s: float = START_DEADLINE_S) -> str:
        deadline = time.monotonic() + timeout_s
        for line in self.lines:
            if fragment in line:
                return line
        while True:
            try:
                line = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line with {fragment!r} within {timeout_s} s; stderr so far:\n" + "\n".join(self.lines)) from None
            if line is None:
                self._queue.put(None)  # later waits see the end too
                raise AssertionError(f"stderr ended (exit {self.proc.wait()}) without {fragment!r}:\n" + "\n".join(self.lines))
            self.lines.append(line)
            if fragment in line:
                return line

    def wait_exit(self, timeout_s: float = EXIT_DEADLINE_S) -> int:
        code = self.proc.wait(timeout=timeout_s)
        while (line := self._queue.get(timeout=timeout_s)) is not None:  # the reader drains the pipe to its end
            self.lines.append(line)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start(config: Path, *flags: str, env: dict[str, str] | None = None) -> Running:
    return Running([CHAINNODE, "start", "--config", str(config), *flags], env if env is not None else clean_env())


def run_to_exit(config: Path, *flags: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    node = start(config, *flags, env=env)
    try:
        return node.wait_exit(START_DEADLINE_S), node.lines
    finally:
        node.kill()


def json_records(lines: list[str]) -> list[dict]:
    records = []
    for line in lines:
        record = json.loads(line)  # every line, not only most: journald + jq must never meet a stray one
        assert {"ts", "level", "logger", "msg"} <= set(record), line
        assert record["ts"].endswith("Z") and record["level"] in ("debug", "info", "warning", "error", "critical"), line
        records.append(record)
    return records


def test_json_logs_sighup_ignored_sigterm_exits_0_with_the_password_from_a_credential(node, tmp_path):
    # node.toml says text; the flag wins. password.txt is wrong; the systemd credential wins.
    (node.folder / "password.txt").write_text("not-the-password\n")
    credentials = tmp_path / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "password").write_text(DEVNET_PASSWORD + "\n")
    running = start(node.config, "--log-format", "json", env=clean_env(CREDENTIALS_DIRECTORY=str(credentials)))
    try:
        running.wait_line("started at height 0")
        running.proc.send_signal(signal.SIGHUP)
        running.wait_line("SIGHUP received and ignored")
        running.proc.send_signal(signal.SIGTERM)
        code = running.wait_exit()
    finally:
        running.kill()
    assert code == 0, "\n".join(running.lines)
    messages = [r["msg"] for r in json_records(running.lines)]
    assert any("SIGTERM received, stopping" in m for m in messages), messages
    assert messages[-1] == "node0: stopped cleanly at height 0", messages
    assert not any(r["level"] in ("error", "critical") for r in json_records(running.lines))


def test_sigint_exits_0_with_text_logs(node):
    running = start(node.config, "--log-level", "info")
    try:
        running.wait_line("started at height 0")
        running.proc.send_signal(signal.SIGINT)
        code = running.wait_exit()
    finally:
        running.kill()
    assert code == 0, "\n".join(running.lines)
    assert "SIGINT received, stopping" in "\n".join(running.lines)
    assert running.lines[-1].endswith("node0: stopped cleanly at height 0"), running.lines


def test_bad_config_exits_78_with_one_line(node, tmp_path):
    broken = tmp_path / "broken.toml"
    broken.write_text(node.config.read_text().replace("[limits]", "[limits]\nbogus_limit = 1"))
    code, lines = run_to_exit(broken)
    assert code == 78, lines
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "unknown key(s) in [limits]: bogus_limit" in lines[0], lines

    code, lines = run_to_exit(tmp_path / "missing.toml", "--log-format", "json")  # a refusal in JSON is a JSON record
    assert code == 78, lines
    [record] = json_records(lines)
    assert record["level"] == "error" and "not found" in record["msg"] and "chainnode init" in record["msg"], record


def test_wrong_password_exits_78_and_names_where_it_came_from(node, tmp_path):
    (node.folder / "password.txt").write_text("not-the-password\n")
    code, lines = run_to_exit(node.config)
    assert code == 78, lines
    assert len(lines) == 1 and "wrong password" in lines[0] and f"password_file {node.folder / 'password.txt'}" in lines[0], lines

    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "password").write_text("also-wrong\n")
    code, lines = run_to_exit(node.config, "--log-format", "json", env=clean_env(CREDENTIALS_DIRECTORY=str(credentials)))
    assert code == 78, lines
    [record] = json_records(lines)
    assert "wrong password" in record["msg"] and f"the systemd credential {credentials / 'password'}" in record["msg"], record


def test_port_in_use_exits_75(node):
    for port, setting in ((node.rpc_port, "[rpc] listen"), (node.p2p_port, "[network] listen")):
        with socket.socket() as s:  # another process listens on it
            s.bind(("127.0.0.1", port))
            s.listen()
            code, lines = run_to_exit(node.config)
        assert code == 75, lines
        assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0] and setting in lines[0], lines


def test_data_directory_of_another_chain_exits_78(node):
    genesis = json.loads((node.folder / "genesis.json").read_text())
    genesis["chain_id"] = "another"
    (node.folder / "genesis.json").write_text(json.dumps(genesis))
    code, lines = run_to_exit(node.config)
    assert code == 78 and "holds another chain" in lines[-1], lines


def test_an_unexpected_error_exits_1_with_its_traceback_logged(node):
    # A bug inside the running node, planted in a real `chainnode start` process.
    program = (
        "import sys\n"
        "from chainnode.node.node import Node\n"
        "async def broken_run(self, *, task_status=None):\n"
        "    raise RuntimeError('planted bug')\n"
        "Node.run = broken_run\n"
        "from chainnode.cli.main import main\n"
        "main(sys.argv[1:])\n"
    )
    running = Running([sys.executable, "-c", program, "start", "--config", str(node.config), "--log-format", "json"], clean_env())
    try:
        code = running.wait_exit(START_DEADLINE_S)
    finally:
        running.kill()
    assert code == 1, running.lines
    records = json_records(running.lines)
    [bug] = [r for r in records if r["level"] == "critical"]
    assert "planted bug" in bug["msg"] and "Traceback" in bug["exc"] and "broken_run" in bug["exc"], bug
    assert records[-1]["level"] == "error" and "this is a bug" in records[-1]["msg"] and "(exit status 1)" in records[-1]["msg"], records[-1]


def test_json_logs_carry_warnings_and_thread_deaths():
    program = (
        "import threading, warnings\n"
        "from chainnode.node.logs import setup_logging\n"
        "setup_logging('info', 'json')\n"
        "warnings.warn('an old API', DeprecationWarning, stacklevel=1)\n"
        "warnings.warn('something odd')\n"
        "t = threading.Thread(target=lambda: 1 / 0, name='worker-1')\n"
        "t.start(); t.join()\n"
    )
    result = subprocess.run([sys.executable, "-W", "always", "-c", program], capture_output=True, text=True, timeout=EXIT_DEADLINE_S)
    assert result.returncode == 0, result.stderr
    records = json_records(result.stderr.splitlines())
    assert any(r["logger"] == "py.warnings" and "something odd" in r["msg"] for r in records), records
    [death] = [r for r in records if "worker-1" in r["msg"]]
    assert death["level"] == "error" and "ZeroDivisionError" in death["exc"], death

"""`chainnode service unit`: a systemd unit that systemd accepts, runs the node with JSON
logs under a tight sandbox, and keeps the key password out of the unit; and the exit
statuses `chainnode start` gives a service manager."""

from __future__ import annotations

import dataclasses
import errno
import re
import shutil
import subprocess
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.cli.service import EX_CONFIG, EX_TEMPFAIL, EXIT_UNEXPECTED, credential_file, exit_status, render_unit
from chainnode.network.errors import PortInUse as P2PPortInUse
from chainnode.node.config import ConfigError, load_config
from chainnode.node.node import NodeError
from chainnode.rpc.server import PortInUse as RpcPortInUse
from chainnode.security.keyfile import WrongPassword
from chainnode.store.leveldb import DataDirInUse, StorageError
from devnet.layout import create_network
from devnet.supervisor import CHAINNODE
from tests.helpers import free_ports

SECRET = "unit-must-not-hold-this-3f9a"
SYSTEMD_ANALYZE = shutil.which("systemd-analyze")

# What every unit must say, key -> value (systemd.exec(5), systemd.service(5)).
REQUIRED = {
    "Type": "exec",
    "Restart": "on-failure",
    "KillSignal": "SIGTERM",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "UMask": "0077",
    "LimitNOFILE": "65536",
}


@pytest.fixture(scope="module")
def node(tmp_path_factory):
    p2p, rpc = free_ports(2)
    [layout] = create_network(tmp_path_factory.mktemp("svc") / "net", sealers=1, certificates=False, contracts=False, scrypt_n=1024,
                              ports=([p2p], [rpc]))
    return layout


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (a key may repeat, as SystemCallFilter does)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, line
        current.setdefault(key, []).append(value)
    return sections


def unit_for(node, *args: str) -> str:
    result = CliRunner().invoke(main, ["service", "unit", "--config", str(node.config), *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_unit_runs_the_node_with_json_logs_restart_policy_and_sandbox(node, tmp_path):
    password = tmp_path / "password"
    password.write_text(SECRET + "\n")
    password.chmod(0o600)
    text = unit_for(node, "--user", "chainnode", "--exec", "/opt/chainnode/bin/chainnode", "--password-file", str(password))
    assert SECRET not in text
    unit = parse_unit(text)
    service = {k: v[-1] for k, v in unit["Service"].items()}
    for key, value in REQUIRED.items():
        assert service.get(key) == value, (key, service.get(key))
    config = load_config(node.config)
    assert service["ExecStart"] == f"/opt/chainnode/bin/chainnode start --config {config.path} --log-format json"
    assert service["User"] == service["Group"] == "chainnode"
    assert service["WorkingDirectory"] == str(config.data_dir)
    assert service["ReadWritePaths"] == str(config.data_dir)
    assert "78" in service["RestartPreventExitStatus"].split()
    assert service["LoadCredential"] == f"password:{password}"
    assert service["CapabilityBoundingSet"] == "" and service["AmbientCapabilities"] == ""
    assert unit["Service"]["SystemCallFilter"] == ["@system-service", "~@privileged @resources"]
    assert int(service["TimeoutStopSec"].removesuffix("s")) >= 30
    assert "MemoryDenyWriteExecute" not in service  # py-libp2p's ctypes callback (see the unit's comment)
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    # pytest's folders are under /tmp: PrivateTmp=yes would hide the node's own files.
    assert service["PrivateTmp"] == "no" and "ProtectHome" in service


def test_unit_defaults_name_exec_and_password_from_the_config(node, tmp_path):
    out = tmp_path / "x.service"
    result = CliRunner().invoke(main, ["service", "unit", "--config", str(node.config), "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and "chainnode-node0.service" in result.stderr
    service = {k: v[-1] for k, v in parse_unit(out.read_text())["Service"].items()}
    exe = service["ExecStart"].split()[0]
    assert Path(exe).is_absolute() and Path(exe).name == "chainnode" and Path(exe).is_file(), exe
    assert service["LoadCredential"] == f"password:{load_config(node.config).password_file}"  # node.toml's password_file
    assert service["User"] == "chainnode"


def test_unit_for_an_installed_layout_low_ports_and_awkward_paths(node):
    config = load_config(node.config)
    etc = Path("/etc/chainnode/bank-a")
    installed = dataclasses.replace(config, path=etc / "node.toml", name="bank-a", data_dir=Path("/var/lib/chainnode/bank-a"),
                                    genesis_file=etc / "genesis.json", key_file=etc / "node.key", password_file=None)
    service = {k: v[-1] for k, v in parse_unit(render_unit(installed, user="chainnode", group="chainnode",
                                                           exe=Path("/opt/chainnode/bin/chainnode"), name="chainnode-bank-a",
                                                           password_file=etc / "password"))["Service"].items()}
    assert service["PrivateTmp"] == "yes" and service["ProtectHome"] == "yes" and service["PrivateUsers"] == "yes"
    assert service["ReadWritePaths"] == "/var/lib/chainnode/bank-a"

    # A channel port below 1024 needs exactly one capability; files in a home folder stay readable.
    odd = dataclasses.replace(installed, channel_port=443, data_dir=Path("/home/ops/chain 100%"), path=Path("/home/ops/node.toml"))
    service = {k: v[-1] for k, v in parse_unit(render_unit(odd, user="ops", group="ops", exe=Path("/opt/chain node/bin/chainnode"),
                                                           name="chainnode-bank-a", password_file=etc / "password"))["Service"].items()}
    assert service["CapabilityBoundingSet"] == service["AmbientCapabilities"] == "CAP_NET_BIND_SERVICE"
    assert "PrivateUsers" not in service  # capabilities in a user namespace would not bind the host's port
    assert service["ProtectHome"] == "read-only"
    assert service["ExecStart"].startswith('"/opt/chain node/bin/chainnode" start --config /home/ops/node.toml')
    assert service["ReadWritePaths"] == '"/home/ops/chain 100%%"'  # quoted, and % is systemd's specifier
    assert service["WorkingDirectory"] == "/home/ops/chain 100%%"


@pytest.mark.parametrize("args, fragment", [
    (["--user", "no body"], "--user"),
    (["--name", "bad/name"], "--name"),
    (["--exec", "relative/chainnode"], "--exec"),
])
def test_unit_refuses_bad_names(node, args, fragment):
    result = CliRunner().invoke(main, ["service", "unit", "--config", str(node.config), *args])
    assert result.exit_code == 2 and fragment in result.output, result.output


def test_unit_refuses_a_bad_config(tmp_path):
    result = CliRunner().invoke(main, ["service", "unit", "--config", str(tmp_path / "none.toml")])
    assert result.exit_code == 1 and "not found" in result.output, result.output


@pytest.mark.skipif(SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed")
def test_systemd_analyze_verifies_the_unit_and_rates_it(node, tmp_path):
    unit = tmp_path / "chainnode-node0.service"
    # A binary and a user that exist here: verify checks that ExecStart's command does.
    CliRunner().invoke(main, ["service", "unit", "--config", str(node.config), "--exec", CHAINNODE, "--user", "root", "--out", str(unit)],
                       catch_exceptions=False)
    verify = subprocess.run([SYSTEMD_ANALYZE, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert verify.returncode == 0 and unit.name not in verify.stderr, verify.stderr
    security = subprocess.run([SYSTEMD_ANALYZE, "security", "--offline=yes", str(unit)], capture_output=True, text=True, timeout=120)
    if security.returncode != 0 and "offline" in security.stderr:
        pytest.skip(f"this systemd-analyze has no --offline: {security.stderr.strip()}")
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert match, security.stdout + security.stderr
    assert float(match.group(1)) <= 2.0, security.stdout  # "OK" on systemd's 0-10 scale (1.3 when written)


def test_exit_statuses():
    def group(*excs):
        return ExceptionGroup("nursery", list(excs))

    in_use = NodeError("port 20200 on 0.0.0.0 is in use")
    in_use.__context__ = RpcPortInUse("port 20200 on 0.0.0.0 is in use")  # how Node wraps the channel port's check
    denied = RpcPortInUse("port 80 on 0.0.0.0 is in use")
    denied.__context__ = PermissionError(errno.EACCES, "Permission denied")  # below 1024, without the capability
    cases = [
        (denied, True, EX_CONFIG),
        (ConfigError("bad"), True, EX_CONFIG),
        (WrongPassword("wrong password"), True, EX_CONFIG),
        (StorageError("corrupt"), False, EX_CONFIG),
        (group(StorageError("disk")), False, EX_CONFIG),
        (click.ClickException("no password given"), True, EX_CONFIG),
        (ValueError("a malformed multiaddr"), True, EX_CONFIG),
        (ValueError("a bug"), False, EXIT_UNEXPECTED),
        (RpcPortInUse("in use"), True, EX_TEMPFAIL),
        (P2PPortInUse("in use"), True, EX_TEMPFAIL),
        (DataDirInUse("in use by another node"), True, EX_TEMPFAIL),
        (in_use, True, EX_TEMPFAIL),
        (group(OSError(errno.EADDRINUSE, "Address already in use")), False, EX_TEMPFAIL),
        (group(RuntimeError("bug"), StorageError("disk")), False, EXIT_UNEXPECTED),  # the worst one wins
        (group(group(StorageError("x")), RpcPortInUse("y")), False, EX_CONFIG),
    ]
    for exc, starting, expected in cases:
        assert exit_status(exc, starting=starting) == expected, (exc, starting)


def test_credential_file(tmp_path, monkeypatch):
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    assert credential_file("password") is None
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert credential_file("password") is None
    (tmp_path / "password").write_text("pw\n")
    assert credential_file("password") == tmp_path / "password"

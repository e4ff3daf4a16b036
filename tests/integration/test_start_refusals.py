"""`chainnode start` refuses to run, with one line saying why, instead of a traceback, and an
exit status systemd acts on: 78 (a restart will not help: fix the config), 75 (something is
busy: a restart may work)."""

import json
import os
import socket
import subprocess

import pytest

from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster


@pytest.fixture
def net(tmp_path):
    with Cluster(tmp_path / "net", sealers=1) as c:
        yield c


def start(config, env=None, timeout=60):
    return subprocess.run([CHAINNODE, "start", "--config", str(config)], capture_output=True, text=True, timeout=timeout, env=env)


def assert_refused(result, fragment, status=78):
    assert result.returncode == status, result.stderr
    assert fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_refusals(net, tmp_path):
    node = net.layout[0]
    cfg = node.config
    (node.folder / "password.txt").write_text("not-the-password\n")
    assert_refused(start(cfg), "wrong password")
    (node.folder / "password.txt").write_text("devnet\n")
    assert_refused(start(cfg, env={**os.environ, "PYTHONOPTIMIZE": "1"}), "without them")

    broken = tmp_path / "broken.toml"
    broken.write_text(cfg.read_text().replace("[limits]", "[limits]\nbogus_limit = 1"))
    assert_refused(start(broken), "unknown key(s) in [limits]: bogus_limit")

    missing_key = tmp_path / "nokey.toml"
    missing_key.write_text(cfg.read_text().replace('key_file = "node.key"', f'key_file = "{tmp_path / "gone.key"}"'))
    assert_refused(start(missing_key), "not found")

    with socket.socket() as s:  # something else listens on the RPC port
        s.bind(("127.0.0.1", node.rpc_port))
        s.listen()
        assert_refused(start(cfg), f"port {node.rpc_port}", 75)
    with socket.socket() as s:  # ... or on the channel port (checked when the node is built)
        s.bind(("127.0.0.1", node.channel_port))
        s.listen()
        assert_refused(start(cfg), f"port {node.channel_port}", 75)
    with socket.socket() as s:  # ... or on the p2p port
        s.bind(("127.0.0.1", node.p2p_port))
        s.listen()
        assert_refused(start(cfg), f"port {node.p2p_port} is in use", 75)

    genesis = json.loads((node.folder / "genesis.json").read_text())
    genesis["chain_id"] = "another"
    (node.folder / "genesis.json").write_text(json.dumps(genesis))
    assert_refused(start(cfg), "holds another chain")


def test_data_dir_in_use(net):
    net.start(0)
    net.wait_rpc(0)
    pid = net.net.pid("node0")
    # Same data directory, other ports: refused because of the directory, naming the pid.
    node = net.layout[0]
    other = node.folder / "other.toml"
    text = (node.config.read_text().replace(f"tcp/{node.p2p_port}", "tcp/0").replace(f"127.0.0.1:{node.rpc_port}", "127.0.0.1:1")
            .replace(f"127.0.0.1:{node.channel_port}", "127.0.0.1:2"))
    other.write_text(text)
    assert_refused(start(other), f"in use by another node (pid {pid})", 75)

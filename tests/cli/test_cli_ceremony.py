"""The consortium ceremony, one command per step, each run in its member's own folder as on
its own machine: keygen and `init --request` (members), `ca sign-csr --request` (agencies),
`genesis new` (the organiser), `init --genesis` and `start` (members). Four real node
processes then commit blocks. Also `genesis lab`, and every refusal on the way."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import httpx
import pytest
import trio
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.client import Account, Client
from chainnode.node.ceremony import read_request
from chainnode.protocol.versions import SOFTWARE_VERSION_NUMBER
from chainnode.security.certs import read_chain_file
from chainnode.system.genesis import load_genesis
from devnet.bench import TOKEN
from devnet.supervisor import CHAINNODE
from tests.helpers import free_ports

ENV = {"CHAINNODE_PASSWORD": "pw"}
FAST = ["--scrypt-n", "1024"]


def cli(*args: str, ok: bool = True):
    result = CliRunner().invoke(main, list(args), env=ENV, catch_exceptions=False)
    assert (result.exit_code == 0) == ok, result.output
    return result


def member_steps(folder, name: str, org: str, advertise: str) -> None:
    folder.mkdir()
    cli("keygen", "--out", str(folder / "node.key"), *FAST)
    cli("init", "--request", str(folder / "node.request.json"), "--key", str(folder / "node.key"), "--name", name, "--org", org,
        "--advertise", advertise)


def test_four_members_make_a_chain_that_commits(tmp_path):
    ports = free_ports(12)
    cli("ca", "init", "--name", "Consortium CA", "--out-dir", str(tmp_path / "ca"))
    orgs = ["Bank A", "Bank B", "Bank C", "Bank D"]
    members = [tmp_path / f"member{i}" for i in range(4)]
    for i, (folder, org) in enumerate(zip(members, orgs)):
        # node3 is known by a DNS name (resolved by the system resolver when the others dial it).
        member_steps(folder, f"node{i}", org, f"{'localhost' if i == 3 else '127.0.0.1'}:{ports[i]}")
        # The member's agency (here: under the consortium CA) signs the request's CSR.
        cli("ca", "issue-agency", "--ca-dir", str(tmp_path / "ca"), "--name", org, "--out-dir", str(tmp_path / f"agency{i}"), *FAST)
        cli("ca", "sign-csr", "--request", str(folder / "node.request.json"), "--agency-dir", str(tmp_path / f"agency{i}"),
            "--out", str(folder / "node.pem"))
        chain = read_chain_file(folder / "node.pem")
        assert (chain.leaf.role, chain.leaf.peer_id) == ("sealer", read_request(folder / "node.request.json").peer_id)
    cli("keygen", "--out", str(tmp_path / "gov.key"), *FAST)
    governor = json.loads(cli("key", "show", str(tmp_path / "gov.key"), "--json").output)["address"]
    new = ["genesis", "new", *(a for m in members for a in ("--member", str(m / "node.request.json"))),
           *(a for m in members for a in ("--cert", str(m / "node.pem"))), "--ca", str(tmp_path / "ca" / "ca.pem"),
           "--governor", governor, "--config", "block_interval_min_ms=100", "--out", str(tmp_path / "genesis.json")]
    out = cli(*new).output
    assert "4 node(s), 1 root CA(s)" in out
    assert load_genesis(tmp_path / "genesis.json").config == {"block_interval_min_ms": 100, "compatibility_version": SOFTWARE_VERSION_NUMBER}
    assert "exists" in cli(*new, ok=False).output  # never overwritten by accident

    procs = []
    try:
        for i, folder in enumerate(members):
            cli("init", "--genesis", str(tmp_path / "genesis.json"), "--key", str(folder / "node.key"), "--cert", str(folder / "node.pem"),
                "--data-dir", str(folder / "data"), "--rpc-listen", f"127.0.0.1:{ports[4 + i]}", "--channel-listen", f"127.0.0.1:{ports[8 + i]}")
            toml = (folder / "data" / "node.toml").read_text()
            # A loopback address is listened on as is; a name is not an address to bind: all interfaces, its port.
            assert f'listen = "/ip4/{"0.0.0.0" if i == 3 else "127.0.0.1"}/tcp/{ports[i]}"' in toml
            procs.append(subprocess.Popen([CHAINNODE, "start", "--config", str(folder / "data" / "node.toml")], env=dict(os.environ, **ENV),
                                          stdout=subprocess.DEVNULL, stderr=open(folder / "node.log", "wb")))
        # The governor's first transaction: all four nodes commit it.
        urls = [f"http://127.0.0.1:{ports[4 + i]}" for i in range(4)]
        governor_account = Account.load(tmp_path / "gov.key", "pw")

        async def deploy() -> int:
            async with Client(urls, timeout_s=30) as client:
                for url in urls:  # every node answers before anything is sent
                    await _wait_rpc(url)
                return (await client.deploy(governor_account, TOKEN, [1000], timeout_s=60)).block_number

        height = trio.run(deploy)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and min(_height(u) for u in urls) < height:
            time.sleep(0.2)
        assert [_height(u) >= height for u in urls] == [True] * 4
        hashes = {_rpc(u, "getBlockHashByNumber", height) for u in urls}
        assert len(hashes) == 1  # and they agree
        peers = _rpc(urls[0], "getSyncStatus")["peers"]
        assert all(p["connected"] for p in peers)  # node3 too: the nodes with a lower peer id dial it by its name
        assert _rpc(urls[3], "getClientVersion")["advertised"][0]["addr"] == f"/dns/localhost/tcp/{ports[3]}"
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            assert p.wait(timeout=30) == 0


def _rpc(url: str, method: str, *params):
    return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": method, "params": ["group0", "", *params]}, timeout=5).json()["result"]


def _height(url: str) -> int:
    return _rpc(url, "getBlockNumber")


async def _wait_rpc(url: str) -> None:
    with trio.fail_after(60):
        while True:
            try:
                await trio.to_thread.run_sync(_height, url)
                return
            except (httpx.HTTPError, OSError, KeyError):
                await trio.sleep(0.1)


def test_member_and_organiser_refusals(tmp_path):
    cli("keygen", "--out", str(tmp_path / "node.key"), *FAST)
    key = str(tmp_path / "node.key")
    assert "--request needs --name" in cli("init", "--request", str(tmp_path / "r.json"), "--key", key, ok=False).output
    assert "leave out --genesis" in cli("init", "--request", str(tmp_path / "r.json"), "--key", key, "--name", "n", "--org", "O",
                                        "--genesis", "g.json", ok=False).output
    assert "pass --genesis and --data-dir" in cli("init", "--key", key, ok=False).output
    assert "1 to 65535" in cli("init", "--request", str(tmp_path / "r.json"), "--key", key, "--name", "n", "--org", "O",
                               "--advertise", "10.0.0.1:0", ok=False).output
    wrong = CliRunner().invoke(main, ["init", "--request", str(tmp_path / "r.json"), "--key", key, "--name", "n", "--org", "O"],
                               env={"CHAINNODE_PASSWORD": "wrong"})
    assert wrong.exit_code == 1 and "password" in wrong.output.lower()
    cli("init", "--request", str(tmp_path / "r.json"), "--key", key, "--name", "n", "--org", "O", "--role", "observer")
    assert "exists" in cli("init", "--request", str(tmp_path / "r.json"), "--key", key, "--name", "n", "--org", "O", ok=False).output
    assert read_request(tmp_path / "r.json").addrs == ()  # an observer behind NAT dials the others

    # The agency: the request's role and peer id are what it asked for.
    cli("ca", "init", "--name", "CA", "--out-dir", str(tmp_path / "ca"))
    cli("ca", "issue-agency", "--ca-dir", str(tmp_path / "ca"), "--name", "O", "--out-dir", str(tmp_path / "agency"), *FAST)
    sign = ["ca", "sign-csr", "--request", str(tmp_path / "r.json"), "--agency-dir", str(tmp_path / "agency"), "--out", str(tmp_path / "n.pem")]
    assert "asks for the role observer" in cli(*sign, "--role", "sealer", ok=False).output
    assert "not the root CA" in cli("ca", "sign-csr", "--request", str(tmp_path / "r.json"), "--ca-dir", str(tmp_path / "ca"), "--out", "x.pem",
                                    ok=False).output
    assert "one of them" in cli("ca", "sign-csr", "--agency-dir", str(tmp_path / "agency"), "--out", "x.pem", ok=False).output
    doc = json.loads((tmp_path / "r.json").read_text())
    (tmp_path / "tampered.json").write_text(json.dumps(doc | {"role": "sealer"}))
    assert "was altered" in cli("ca", "sign-csr", "--request", str(tmp_path / "tampered.json"), "--agency-dir", str(tmp_path / "agency"),
                                "--out", "x.pem", ok=False).output
    cli(*sign)

    # The organiser: a tampered request, a governor that is no address, a missing certificate.
    base = ["genesis", "new", "--out", str(tmp_path / "g.json")]
    assert "was altered" in cli(*base, "--member", str(tmp_path / "tampered.json"), "--governor", "00" * 20, ok=False).output
    assert "governor address" in cli(*base, "--member", str(tmp_path / "r.json"), "--governor", "nope", ok=False).output
    assert "no request is a sealer" in cli(*base, "--member", str(tmp_path / "r.json"), "--governor", "00" * 20, ok=False).output
    assert "NAME=INTEGER" in cli(*base, "--member", str(tmp_path / "r.json"), "--governor", "00" * 20, "--config", "x", ok=False).output
    assert "unknown system config" in cli(*base, "--member", str(tmp_path / "r.json"), "--governor", "00" * 20, "--config", "x=1",
                                          ok=False).output
    assert not (tmp_path / "g.json").exists()


def test_a_lab_is_one_folder_per_host(tmp_path):
    out = cli("genesis", "lab", "--hosts", "10.1.0.1:2,10.1.0.2,node3.lab.example:1", "--out", str(tmp_path / "lab"), "--rpc-remote",
              "--p2p-port", "40000", *FAST).output
    assert "4 sealers on 3 hosts" in out
    lab = json.loads((tmp_path / "lab" / "lab.json").read_text())
    genesis = load_genesis(tmp_path / "lab" / "genesis.json")
    assert [n.addrs for n in genesis.nodes] == [["/ip4/10.1.0.1/tcp/40000"], ["/ip4/10.1.0.1/tcp/40001"], ["/ip4/10.1.0.2/tcp/40000"],
                                                ["/dns/node3.lab.example/tcp/40000"]]
    assert len(genesis.ca_certs) == 1 and len(genesis.committee) == 1
    host = lab["hosts"][0]
    assert [n["name"] for n in host["nodes"]] == ["node0", "node1"] and host["nodes"][1]["rpc_url"] == "http://10.1.0.1:8546"
    for node in (n for h in lab["hosts"] for n in h["nodes"]):
        toml = open(node["config"]).read()
        # Self-contained: every file a node needs is named relative to its folder.
        assert 'key_file = "node.key"' in toml and 'password_file = "password.txt"' in toml and 'cert_file = "node.pem"' in toml
        assert "allow_remote = true" in toml and 'listen = "/ip4/0.0.0.0/tcp/' in toml
    start = (tmp_path / "lab" / "10.1.0.1" / "start.sh").read_text()
    assert "for n in node0 node1; do" in start and os.access(tmp_path / "lab" / "10.1.0.1" / "start.sh", os.X_OK)
    assert "not empty" in cli("genesis", "lab", "--hosts", "10.1.0.1", "--out", str(tmp_path / "lab"), ok=False).output
    for bad, reason in (("10.1.0.1:0", "node count"), ("10.1.0.1:99", "node count"), ("bad host", "neither an IP address"), ("a,,b", "empty entry"),
                        ("a,a", "distinct hosts")):
        assert reason in cli("genesis", "lab", "--hosts", bad, "--out", str(tmp_path / "lab2"), ok=False).output, bad


@pytest.mark.parametrize("hosts", ["[fd00::1]:1"])
def test_a_lab_on_ipv6(tmp_path, hosts):
    cli("genesis", "lab", "--hosts", hosts, "--out", str(tmp_path / "lab"), *FAST)
    assert load_genesis(tmp_path / "lab" / "genesis.json").nodes[0].addrs == ["/ip6/fd00::1/tcp/30300"]

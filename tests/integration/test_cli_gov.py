"""`chainnode gov` against a real one-sealer devnet, as an operator's script runs it.

A devnet's committee is its sealers' node keys (devnet/layout.py: genesis "committee"), so a
one-sealer devnet has a single governor, node0's key: admin mode, where a proposal executes
in the transaction that makes it."""

import json
import os
import subprocess

import pytest

from devnet.layout import DEVNET_PASSWORD
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster

COUNTER = """
def init():
    storage["n"] = 0

def add(k):
    storage["n"] = storage["n"] + k
    return storage["n"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("cligov") / "net", sealers=1, config={"block_interval_min_ms": 50}) as c:
        c.start_all()
        yield c


def cli(*args, rpc: str, expect_code: int = 0, json_out: bool = True, password: str = DEVNET_PASSWORD):
    env = {**os.environ, "CHAINNODE_PASSWORD": password, "CHAINNODE_RPC": rpc}
    done = subprocess.run([CHAINNODE, *args, *(["--json"] if json_out else [])], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == expect_code, f"chainnode {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout) if json_out and done.stdout.strip() else done


def test_admin_mode_session(cluster, tmp_path):
    node0 = cluster.layout[0]
    rpc = node0.rpc_url
    governor = ["--key", str(node0.folder / "node.key"), "--password-file", str(node0.folder / "password.txt")]

    committee = cli("gov", "committee", rpc=rpc)
    assert committee["governors"] == [{"address": "0x" + node0.address, "weight": 1}] and committee["nextProposalId"] == 1
    assert "admin mode: one governor" in cli("gov", "committee", rpc=rpc, json_out=False).stdout

    # admin mode: the proposal executes in its own transaction
    done = cli("gov", "propose", "set-config", "tx_count_limit", "321", *governor, rpc=rpc)
    assert done["status"] == "executed" and done["result"] == "tx_count_limit = 321"
    pid = done["proposalId"]
    shown = cli("gov", "show", str(pid), rpc=rpc)
    assert shown["status"] == "executed" and shown["kind"] == "set_config" and shown["params"] == ["tx_count_limit", 321]
    assert shown["proposer"] == "0x" + node0.address and shown["decidedHeight"] == done["blockNumber"]
    assert cluster.rpc(0, "getSystemConfigByKey", "tx_count_limit")["value"] == 321
    text = cli("gov", "show", str(pid), rpc=rpc, json_out=False).stdout
    assert f"proposal {pid}: set_config" in text and f"executed in block {done['blockNumber']}: tx_count_limit = 321" in text

    # an invalid value is refused at propose time: here before anything is sent, and by the
    # chain if sent anyway
    local = cli("gov", "propose", "set-config", "tx_count_limit", "0", *governor, rpc=rpc, expect_code=2, json_out=False)
    assert "tx_count_limit must be an integer in [1, 10000], got 0" in local.stderr and "nothing was sent" in local.stderr
    chain = cli("gov", "propose", "set-config", "tx_count_limit", "0", "--no-precheck", *governor, rpc=rpc, expect_code=1, json_out=False)
    assert "Error: the set_config proposal was refused in block" in chain.stderr
    assert "set_config: tx_count_limit must be an integer in [1, 10000], got 0" in chain.stderr
    assert cluster.rpc(0, "getSystemConfigByKey", "tx_count_limit")["value"] == 321

    # a non-governor is refused with the reason and what to do
    stranger = tmp_path / "stranger.key"
    cli("account", "new", "--out", str(stranger), "--scrypt-n", "1024", rpc=rpc, password="stranger pw")
    refused = cli("gov", "propose", "set-config", "tx_count_limit", "50", "--key", str(stranger), rpc=rpc, expect_code=1, json_out=False, password="stranger pw")
    assert "is not a governor; only committee members may propose or vote" in refused.stderr
    assert "sign with a governor's key (`chainnode gov committee` lists the governors)" in refused.stderr
    refused = cli("gov", "propose", "set-config", "tx_count_limit", "50", "--key", str(stranger), rpc=rpc, expect_code=1, password="stranger pw")
    assert refused["status"] == 1 and "is not a governor" in refused["errorMessage"]

    # an open proposal's life needs a second governor: vote on an executed one is refused
    late = cli("gov", "vote", str(pid), "yes", *governor, rpc=rpc, expect_code=1, json_out=False)
    assert f"proposal {pid} is executed; it can no longer be voted on; `chainnode gov show {pid}` shows the proposal" in late.stderr

    listed = cli("gov", "list", "--all", rpc=rpc)
    assert [p["id"] for p in listed] == [pid] and listed[0]["status"] == "executed"
    assert cli("gov", "list", rpc=rpc) == []
    table = cli("gov", "list", "--all", rpc=rpc, json_out=False).stdout
    assert "set_config" in table and "tx_count_limit 321" in table and "executed" in table and "1/1/1" in table

    # a contract's admin sets its own method access list; the committee freezes an account
    source = tmp_path / "counter.py"
    source.write_text(COUNTER)
    deployed = cli("contract", "deploy", "--key", str(stranger), str(source), rpc=rpc, password="stranger pw")
    contract = deployed["contractAddress"]
    acl = cli("gov", "acl", "set", contract, "add", "allow", "0x" + node0.address, "--key", str(stranger), rpc=rpc, password="stranger pw")
    assert acl["mode"] == "allow" and acl["addresses"] == ["0x" + node0.address]
    # the node's pool refuses it at once (the executor would too)
    denied = cli("tx", "send", "--key", str(stranger), "--to", contract, "--method", "add", "--args", "[1]", rpc=rpc, expect_code=1, json_out=False, password="stranger pw")
    assert f"may not call add of contract {contract[2:]} (method access list)" in denied.stderr
    not_admin = cli("gov", "acl", "clear", contract, "add", *governor, rpc=rpc, expect_code=1, json_out=False)
    assert "only the contract's admin" in not_admin.stderr
    stranger_address = cli("account", "show", str(stranger), rpc=rpc)["address"]
    shown = cli("gov", "acl", "show", contract, "add", rpc=rpc)
    assert shown["admin"] == "0x" + stranger_address and shown["mode"] == "allow"
    assert "only 0x" + node0.address + " may call it" in cli("gov", "acl", "show", contract, "add", rpc=rpc, json_out=False).stdout

    frozen = cli("gov", "propose", "freeze-account", "0x" + stranger_address, "lost", "laptop", *governor, rpc=rpc)
    assert frozen["status"] == "executed"
    status = cli("gov", "account", "0x" + stranger_address, rpc=rpc)
    assert status["frozen"] is True and status["frozenReason"] == "lost laptop" and status["mayDeploy"] is True

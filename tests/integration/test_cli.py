"""The installed `chainnode` console commands against a real 4-sealer network, as an
operator's script would run them: every command with --json, its output parsed and
checked against what the chain must say."""

import json
import os
import subprocess

import pytest
import trio

from chainnode.client import Account, Client, contract_state_key, system_state_key
from chainnode.protocol.codec import pack
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster, free_ports

COUNTER = """
def init(start):
    storage["n"] = start

def add(k):
    require(k > 0, "k must be positive")
    storage["n"] = storage["n"] + k
    emit("Added", k=k, total=storage["n"])
    return storage["n"]

def get():
    return storage["n"]

def echo(x):
    return x
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("cli") / "net", sealers=4, config={"block_interval_min_ms": 100}) as c:
        c.start_all()
        yield c


def cli(*args, rpc: str, expect_code: int = 0, json_out: bool = True):
    env = {**os.environ, "CHAINNODE_PASSWORD": "alice's password", "CHAINNODE_RPC": rpc}
    done = subprocess.run([CHAINNODE, *args, *(["--json"] if json_out else [])], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == expect_code, f"chainnode {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr, done.stderr
    return json.loads(done.stdout) if json_out and done.stdout.strip() else done


def test_operator_session(cluster, tmp_path):
    rpc = cluster.layout[0].rpc_url
    other = cluster.layout[2].rpc_url
    key = tmp_path / "alice.key"
    account = cli("account", "new", "--out", str(key), "--scrypt-n", "1024", rpc=rpc)
    source = tmp_path / "counter.py"
    source.write_text(COUNTER)

    deployed = cli("contract", "deploy", "--key", str(key), str(source), "--args", "[1]", rpc=rpc)
    assert deployed["status"] == 0 and deployed["contractAddress"].startswith("0x")
    counter = deployed["contractAddress"]
    # the deploy is committed everywhere: another node knows the transaction
    tx = cli("tx", deployed["transactionHash"], rpc=other)
    assert tx["hash"] == deployed["transactionHash"] and tx["from"] == "0x" + account["address"] and tx["to"] == ""

    sent = cli("tx", "send", "--key", str(key), "--to", counter, "--method", "add", "--args", "[5]", rpc=rpc)
    assert sent["status"] == 0 and sent["output"] == 6 and sent["logEntries"][0]["fields"] == {"k": 5, "total": 6}
    # contract send is the same command; a failed transaction prints its receipt and exits 1
    failed = cli("contract", "send", "--key", str(key), "--to", counter, "--method", "add", "--args", "[0]", rpc=rpc, expect_code=1)
    assert failed["status"] == 1 and failed["errorType"] == "ContractError" and failed["errorMessage"] == "k must be positive"
    queued = cli("tx", "send", "--key", str(key), "--to", counter, "--method", "add", "--args", "[1]", "--no-wait", rpc=rpc)
    assert set(queued) == {"transactionHash"}

    call = cli("contract", "call", counter, "get", rpc=other)
    assert call["status"] == 0 and call["output"] in (6, 7) and call["blockNumber"] >= sent["blockNumber"]
    echoed = cli("contract", "call", counter, "echo", "--args", '["0x00ff"]', "--hex-as-bytes", rpc=rpc)
    assert echoed["output"] == "0x00ff" and echoed["raw"] == "0xc40200ff"  # bytes, exactly
    # without the flag the same JSON string stays text
    assert cli("contract", "call", counter, "echo", "--args", '["0x00ff"]', rpc=rpc)["raw"] == "0x" + pack("0x00ff").hex()
    assert cli("contract", "code", counter, rpc=rpc)["source"] == COUNTER
    missing = cli("contract", "call", counter, "nope", rpc=rpc, expect_code=1)
    assert missing["status"] == 1 and missing["errorType"] == "MethodNotFound"
    unknown_tx = cli("tx", "0x" + "ab" * 32, rpc=rpc, expect_code=1, json_out=False)
    assert "no transaction 0xabab" in unknown_tx.stderr and "committed or pending" in unknown_tx.stderr
    wrong_suite = tmp_path / "ed.key"
    cli("account", "new", "--suite", "ed25519", "--out", str(wrong_suite), "--scrypt-n", "1024", rpc=rpc)
    refused = cli("tx", "send", "--key", str(wrong_suite), "--to", counter, "--method", "add", "--args", "[1]", rpc=rpc, expect_code=1, json_out=False)
    assert "the key is a ed25519 key but the chain uses sm" in refused.stderr

    block = cli("block", str(sent["blockNumber"]), rpc=other)
    assert block["number"] == sent["blockNumber"] and sent["transactionHash"] in block["transactions"]
    full = cli("block", str(sent["blockNumber"]), "--txs", rpc=rpc)
    assert full["hash"] == block["hash"] and full["transactions"][0]["method"] == "add"
    latest = cli("block", "latest", rpc=rpc)
    assert latest["number"] >= sent["blockNumber"] and latest["certificate"] is not None

    receipt = cli("receipt", sent["transactionHash"], "--proof", rpc=other)
    assert receipt["proofVerified"] is True and receipt["proofCheck"]["blockNumber"] == sent["blockNumber"]
    assert len(receipt["proofCheck"]["signers"]) >= 3 and receipt["proofCheck"]["sealerCount"] == 4
    human = cli("receipt", sent["transactionHash"], "--proof", rpc=rpc, json_out=False)
    assert f"proof verified: the receipt is in block {sent['blockNumber']}" in human.stdout

    status = cli("status", rpc=rpc)
    assert status["role"] == "sealer" and status["groupId"] == "group0" and status["suite"] == "sm"
    assert status["blockNumber"] >= sent["blockNumber"] and isinstance(status["view"], int)
    assert status["peersConnected"] == 3 and status["peersTotal"] == 3 and status["pendingTxs"] >= 0
    peers = cli("peers", rpc=rpc)
    assert sorted(p["index"] for p in peers) == [1, 2, 3] and all(p["connected"] for p in peers)
    sealers = cli("sealers", rpc=rpc)
    assert [s["index"] for s in sealers] == [0, 1, 2, 3]
    assert cli("config", "get", "tx_count_limit", rpc=rpc)["value"] == 1000
    unknown = cli("config", "get", "tx_limit", rpc=rpc, expect_code=1, json_out=False)
    assert "'key' 'tx_limit' is not a system config key; known:" in unknown.stderr

    gone = f"http://127.0.0.1:{free_ports(1)[0]}"
    down = cli("status", rpc=gone, expect_code=1, json_out=False)
    assert down.stdout == "" and f"cannot reach the node at {gone}/" in down.stderr
    assert "is it running, and is this its rpc listen address?" in down.stderr


def _deploy_counter(rpc: str, start: int) -> tuple[bytes, int, int]:
    """A counter deployed with storage["n"] = start, then one add(1): (address, the deploy's
    block, the add's block). By the SDK: no key file or extra process needed."""

    async def go():
        alice = Account.generate("sm")
        async with Client(rpc, timeout_s=30) as c:
            deployed = await c.deploy(alice, COUNTER, [start])
            added = await c.send(alice, deployed.contract_address, "add", [1])
            return deployed.contract_address, deployed.block_number, added.block_number

    return trio.run(go)


def test_state_values_and_their_proofs(cluster):
    """`chainnode state`: contract storage, system state and raw keys, each value (or absence)
    proven offline against the certified state root of its block; a bad request is one line."""
    rpc = cluster.layout[0].rpc_url
    counter, deployed_at, added_at = _deploy_counter(rpc, 41)
    address = "0x" + counter.hex()
    n_key = "0x" + contract_state_key(counter, "n").hex()

    then = cli("state", address, "n", "--block", str(deployed_at), "--proof", rpc=cluster.layout[1].rpc_url)
    assert then["blockNumber"] == deployed_at and then["stateKey"] == n_key
    assert then["value"] == "0x" + pack(41).hex() and then["decoded"] == 41
    assert then["proofVerified"] is True and then["stateRoot"].startswith("0x") and then["proofBytes"] > 0
    human = cli("state", address, "n", "--proof", rpc=rpc, json_out=False)
    first, proven = human.stdout.splitlines()
    head = int(first.split(":")[0].removeprefix("block "))
    assert head >= added_at and first == f"block {head}: {n_key} = 42"
    assert proven.startswith("proof verified: the value is in the state root 0x") and f"of block {head}, certified by 4 sealers" in proven

    absent = cli("state", address, '"no such key"', "--proof", rpc=rpc)  # KEY as JSON text: the same as plain text
    assert absent["value"] is None and absent["decoded"] is None and absent["proofVerified"] is True
    assert absent["stateKey"] == "0x" + contract_state_key(counter, "no such key").hex()

    nodes = cli("state", "system", "nodes", "--proof", rpc=rpc)
    assert nodes["proofVerified"] is True and nodes["stateKey"] == "0x" + system_state_key("nodes").hex()
    assert [n[:3] for n in nodes["decoded"]] == [["0x" + node.consensus_pub, node.peer_id, "sealer"] for node in cluster.layout]
    # A config value left at its default is not stored: `config get` shows the default, the
    # state proves there is nothing under the key.
    limit = cli("state", "system", "config/tx_count_limit", "--proof", rpc=rpc)
    assert limit["value"] is None and limit["proofVerified"] is True
    assert limit["stateKey"] == "0x" + system_state_key("config/tx_count_limit").hex()
    raw = cli("state", "raw", n_key, "--block", str(added_at), "--proof", rpc=rpc)
    assert raw["stateKey"] == n_key and raw["decoded"] == 42 and raw["proofVerified"] is True

    above = cli("state", address, "n", "--block", "1000000", rpc=rpc, expect_code=1, json_out=False)
    assert above.stdout == "" and above.stderr.startswith("Error: ") and above.stderr.count("\n") == 1
    assert "not on this node" in above.stderr

"""The tester's and the developer's path end to end, through the installed commands:
`devnet up --detach`, a contract deployed and called with the SDK and with the CLI, a
receipt proof verified offline, `devnet bench`, a node killed and restarted, `devnet down`."""

import json
import os
import socket
import subprocess
import time

import pytest
import trio

from chainnode.client import Account, Client
from devnet.supervisor import CHAINNODE, Devnet, process_alive
from tests.integration.workload import TOKEN

DEVNET = os.path.join(os.path.dirname(CHAINNODE), "devnet")


def free_block(count: int) -> int:
    """A base port such that base .. base+count-1 are all free."""
    for _ in range(200):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + count >= 65000:
            continue
        socks = []
        try:
            for p in range(base, base + count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", p))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no block of free ports")


def run(*args, timeout=120):
    p = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{args}: {p.stdout}\n{p.stderr}"
    return p.stdout


@pytest.fixture
def devnet(tmp_path):
    folder = tmp_path / "dn"
    up = json.loads(run(DEVNET, "up", "--nodes", "4", "--detach", "--json", "--dir", str(folder), "--p2p-port", str(free_block(4)), "--rpc-port", str(free_block(4))))
    try:
        yield folder, up
    finally:
        subprocess.run([DEVNET, "down", "--dir", str(folder)], capture_output=True, timeout=120)


async def test_devnet_sdk_cli_proof_restart_down(devnet, tmp_path):
    folder, up = devnet
    assert [n["node"] for n in up["nodes"]] == ["node0", "node1", "node2", "node3"]
    assert all(n["pid"] and n["height"] >= 1 for n in up["nodes"]), up  # it committed a first block
    url = up["nodes"][0]["rpc"]

    # The SDK: deploy, send, call, verify a receipt proof offline against the sealer list.
    alice = Account.generate("sm")
    async with Client(url) as client:
        token = (await client.deploy(alice, TOKEN, [1000])).contract_address
        sent = await client.send(alice, token, "transfer", [b"\x07" * 20, 25])
        assert sent.ok and sent.events[0].name == "Transfer"
        assert await client.call(token, "balance_of", [b"\x07" * 20]) == 25
        sealers = await client.sealer_pubs()
        verified = await client.get_verified_receipt(sent.tx_hash, sealers)
        assert verified.ok and verified.block_number == sent.block_number

    # The CLI: a read-only call and a receipt with its proof checked on this side.
    out = json.loads(run(CHAINNODE, "contract", "call", "0x" + token.hex(), "balance_of", "--args", json.dumps(["0x" + "07" * 20]), "--hex-as-bytes", "--rpc", url, "--json"))
    assert out["output"] == 25, out
    out = json.loads(run(CHAINNODE, "receipt", "0x" + sent.tx_hash.hex(), "--proof", "--rpc", url, "--json"))
    assert out["proofVerified"] is True, out
    status = json.loads(run(CHAINNODE, "status", "--rpc", url, "--json"))
    assert status, status

    # The tester's load generator: every transfer committed, the numbers written out.
    report = tmp_path / "bench.json"
    run(DEVNET, "bench", "--txs", "300", "--json", str(report), "--dir", str(folder), timeout=180)
    result = json.loads(report.read_text())
    assert result["committed"] == result["transactions"] == 300 and result["tps"] > 0, result
    assert result["sealers"] == 4 and [n["node"] for n in result["nodes"]] == ["node0", "node1", "node2", "node3"]
    assert result["latency_p50_s"] is not None and result["raw_sm2_verify_per_s"] > 0, result

    # Kill -9 a node; the chain keeps committing; restart it; it catches up.
    run(DEVNET, "kill", "node2", "--dir", str(folder))
    async with Client(up["nodes"][1]["rpc"]) as client:
        assert (await client.send(alice, token, "transfer", [b"\x08" * 20, 1])).ok
        head = await client.block_number()
    run(DEVNET, "start", "node2", "--dir", str(folder))
    net = Devnet(folder)
    deadline = time.monotonic() + 60
    while net.rpc("node2", "getBlockNumber") < head:
        assert time.monotonic() < deadline, "node2 did not catch up"
        await trio.sleep(0.2)
    assert net.rpc("node2", "getBlockHashByNumber", head) == net.rpc("node0", "getBlockHashByNumber", head)

    # devnet down leaves no node process behind.
    pids = [row["pid"] for row in net.status()]
    run(DEVNET, "down", "--dir", str(folder))
    assert pids and not any(process_alive(pid) for pid in pids)
    assert all(row["pid"] is None for row in json.loads(run(DEVNET, "status", "--json", "--dir", str(folder))))

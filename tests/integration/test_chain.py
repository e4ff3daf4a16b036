"""A real 4-sealer chain: separate `chainnode start` processes over libp2p on loopback,
LevelDB on disk, driven over JSON-RPC."""

import os
import time

import httpx
import pytest
import trio

from chainnode.client import Account, Client
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN, transfers

TX_COUNT = int(os.environ.get("CHAINNODE_IT_TXS", "1000"))


@pytest.fixture
def cluster(tmp_path):
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}) as c:
        c.start_all()
        yield c


async def deploy_token(url: str, account: Account, supply: int) -> bytes:
    async with Client(url) as client:
        receipt = await client.deploy(account, TOKEN, [supply], timeout_s=30)
    return receipt.contract_address


async def send_all(cluster: Cluster, txs) -> list[bytes]:
    """Send each transaction to a node in turn (round robin), 8 requests in flight per node."""
    hashes: list[bytes] = [b""] * len(txs)
    clients = [Client(node.rpc_url, timeout_s=30) for node in cluster.layout]

    async def worker(k: int) -> None:
        for i in range(k, len(txs), 8 * len(clients)):
            hashes[i] = await clients[i % len(clients)].send_transaction(txs[i])

    async with trio.open_nursery() as nursery:
        for k in range(8 * len(clients)):
            nursery.start_soon(worker, k)
    for c in clients:
        await c.close()
    return hashes


async def test_transactions_to_different_nodes_commit_once_in_one_order(cluster):
    alice = Account.generate("sm")
    token = await deploy_token(cluster.layout[0].rpc_url, alice, TX_COUNT)
    height = cluster.height(0)
    txs = transfers(alice, token, TX_COUNT, block_limit=height + 900)
    hashes = await send_all(cluster, txs)
    assert len(set(hashes)) == TX_COUNT
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and cluster.rpc(0, "getTotalTransactionCount")["transactionCount"] < TX_COUNT + 1:
        await trio.sleep(0.25)
    head = cluster.height(0)
    cluster.wait_height(range(4), head)
    # The same blocks, in the same order, with the same state, on every node.
    for h in range(1, head + 1):
        assert len({cluster.rpc(i, "getBlockHashByNumber", h) for i in range(4)}) == 1, f"block {h} differs"
    counts = {cluster.rpc(i, "getTotalTransactionCount")["transactionCount"] for i in range(4)}
    assert counts == {TX_COUNT + 1}, counts  # each committed exactly once (+ the deploy)
    async with Client(cluster.layout[3].rpc_url) as client:
        receipts = [await client.get_receipt(h) for h in hashes[:: max(1, TX_COUNT // 50)]]
    assert all(r is not None and r.ok for r in receipts)
    # every node's head header (state root included) is identical
    heads = [cluster.rpc(i, "getBlockByNumber", head, True)["stateRoot"] for i in range(4)]
    assert len(set(heads)) == 1


async def test_crash_restart_halt_and_resume(cluster):
    alice = Account.generate("sm")
    token = await deploy_token(cluster.layout[0].rpc_url, alice, 10_000)

    async def transfer_via(i: int, timeout_s: float = 30):
        async with Client(cluster.layout[i].rpc_url) as client:
            return await client.send(alice, token, "transfer", [os.urandom(20), 1], timeout_s=timeout_s)

    cluster.kill(3)  # kill -9 one sealer: 3 of 4 keep committing
    for i in (0, 1, 2):
        assert (await transfer_via(i)).ok
    head = cluster.height(0)
    cluster.start(3)  # restarted, it catches up to the same head
    cluster.wait_rpc(3)
    cluster.wait_height([3], head, timeout_s=60)
    assert cluster.rpc(3, "getBlockHashByNumber", head) == cluster.rpc(0, "getBlockHashByNumber", head)

    cluster.stop(2)
    cluster.kill(3)  # two of four down: no quorum, the chain halts without forking
    halted_at = cluster.height(0)
    views = [cluster.rpc(i, "getPbftView") for i in (0, 1)]
    async with Client(cluster.layout[0].rpc_url) as client:
        tx = await client.build(alice, token, "transfer", [os.urandom(20), 1])
        pending = await client.send_transaction(tx)
        # Both survivors time out with the transaction pending and ask for a view change (no
        # quorum for it either, so they stay there)...
        with trio.fail_after(60):
            while any(cluster.rpc(i, "getPbftView") < view + 1 for i, view in zip((0, 1), views)):
                await trio.sleep(0.1)
        # ...and commit nothing.
        assert await client.get_receipt(pending) is None
    assert cluster.height(0) == halted_at == cluster.height(1)
    cluster.start(3)  # bring one back: 3 of 4, it resumes and commits the pending transaction
    cluster.wait_rpc(3)
    async with Client(cluster.layout[1].rpc_url) as client:
        receipt = await client.wait_for_receipt(pending, timeout_s=60)
    assert receipt.ok
    final = cluster.height(0)
    cluster.wait_height([1, 3], final)
    for h in range(1, final + 1):
        assert len({cluster.rpc(i, "getBlockHashByNumber", h) for i in (0, 1, 3)}) == 1


async def test_bad_transactions_are_rejected_with_reasons_and_change_nothing(cluster):
    alice = Account.generate("sm")
    token = await deploy_token(cluster.layout[0].rpc_url, alice, 100)
    before = cluster.rpc(0, "getTotalTransactionCount")
    async with Client(cluster.layout[1].rpc_url) as client:
        good = await client.build(alice, token, "transfer", [os.urandom(20), 1])
        await client.send_transaction(good)
        receipt = await client.wait_for_receipt(good.hash(alice.suite))
        assert receipt.ok
        # a replay is answered with the hash and "committed" (idempotent), and changes nothing
        replay = {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": ["group0", "", "0x" + good.encode().hex()]}
        assert httpx.post(cluster.layout[1].rpc_url, json=replay, timeout=10).json()["result"]["status"] == "committed"
        cases = {
            "block_limit_expired": alice.transaction(chain_id="chain0", group_id="group0", block_limit=1, to=token, method="transfer", args=[b"x" * 20, 1]).encode(),
            "bad_signature": alice.transaction(chain_id="chain0", group_id="group0", block_limit=cluster.height(1) + 10, to=token, method="transfer", args=[b"y" * 20, 1]).encode()[:-64] + b"\x01" * 64,
            "too_large": alice.transaction(chain_id="chain0", group_id="group0", block_limit=cluster.height(1) + 10, to=token, method="m", args=["x" * 200_000]).encode(),
            "malformed": b"\x93\x01\x02",
            "wrong_chain": alice.transaction(chain_id="other", group_id="group0", block_limit=cluster.height(1) + 10, to=token, method="m", args=[]).encode(),
        }
        for reason, raw in cases.items():
            body = {"jsonrpc": "2.0", "id": 1, "method": "sendTransaction", "params": ["group0", "", "0x" + raw.hex()]}
            reply = httpx.post(cluster.layout[1].rpc_url, json=body, timeout=10).json()
            assert reply["error"]["data"]["reason"] == reason, (reason, reply)
        # A later transaction commits; none of the refused ones ever does.
        later = await client.build(alice, token, "transfer", [os.urandom(20), 1])
        await client.send_transaction(later)
        later_receipt = await client.wait_for_receipt(later.hash(alice.suite))
        assert later_receipt.ok
    cluster.wait_height([0], later_receipt.block_number)
    after = cluster.rpc(0, "getTotalTransactionCount")
    assert after["transactionCount"] == before["transactionCount"] + 2
    assert all(cluster.running(i) for i in range(4))


def test_shutdown_is_clean(cluster):
    for i in range(4):
        assert cluster.stop(i) == 0
        assert "stopped cleanly" in cluster.log(i)
        assert "Traceback" not in cluster.log(i)

"""An observer keeps a full copy of the chain and serves RPC, but does not vote."""

import os

import pytest

from chainnode.client import Account, Client
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN


@pytest.fixture
def cluster(tmp_path):
    with Cluster(tmp_path / "net", sealers=4, observers=1, config={"block_interval_min_ms": 100}) as c:
        c.start_all()
        yield c


async def test_observer_follows_the_chain_and_relays_transactions(cluster):
    alice = Account.generate("sm")
    observer = cluster.layout[4]
    assert observer.role == "observer"
    # A transaction sent to the observer is gossiped to the sealers and committed.
    async with Client(observer.rpc_url) as client:
        token = (await client.deploy(alice, TOKEN, [100], timeout_s=60)).contract_address
        receipt = await client.send(alice, token, "transfer", [os.urandom(20), 5], timeout_s=60)
    assert receipt.ok
    head = cluster.height(0)
    cluster.wait_height([4], head)
    assert cluster.rpc(4, "getBlockHashByNumber", head) == cluster.rpc(0, "getBlockHashByNumber", head)
    # It does not vote: not in the sealer list, and the chain commits without it.
    assert [s["index"] for s in cluster.rpc(4, "getSealerList")] == [0, 1, 2, 3]
    health = cluster.net.status()[4]
    assert health["role"] == "observer"
    cluster.stop(4)
    async with Client(cluster.layout[1].rpc_url) as client:
        assert (await client.send(alice, token, "transfer", [os.urandom(20), 1], timeout_s=60)).ok
    # Back, it catches up through sync.
    cluster.start(4)
    cluster.wait_rpc(4)
    cluster.wait_height([4], cluster.height(1))


def test_metrics_and_health(cluster):
    import time

    import httpx

    node = cluster.layout[0]
    text = httpx.get(node.rpc_url + "/metrics", timeout=5).text
    for name in ("chainnode_block_height", "chainnode_peers_connected", "chainnode_txpool_transactions", "chainnode_sync_lag_blocks",
                 "chainnode_consensus_view", "chainnode_commit_latency_seconds_bucket", "chainnode_network_events_total"):
        assert name in text, name
    deadline = time.monotonic() + 20  # the supervisors may still be dialing the last peers
    while True:
        health = httpx.get(node.rpc_url + "/health", timeout=5).json()
        if health["peersConnected"] == 4 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert health["status"] == "ok" and health["role"] == "sealer" and health["peersConnected"] == 4

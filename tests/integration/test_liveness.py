"""Transactions do not stick: what one node alone holds still reaches a block."""

import pytest
import trio

from chainnode.client import Account, Client
from tests.integration.cluster import Cluster
from tests.integration.test_chain import deploy_token


@pytest.fixture
def cluster(tmp_path):
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}) as c:
        c.start_all()
        yield c


async def test_a_transaction_only_a_restarted_non_leader_holds_commits_on_an_idle_chain(cluster):
    # A node restarted on an idle chain gossips a new transaction once, as soon as a peer
    # connects, which is often before GossipSub knows the peers' subscriptions: the batch
    # reaches nobody. The node is not the leader, and its view change alone cannot move the
    # others (f + 1 are needed), so the transaction waited forever.
    alice = Account.generate("sm")
    token = await deploy_token(cluster.layout[0].rpc_url, alice, 100)
    status = cluster.rpc(0, "getConsensusStatus")
    assert not status["in_view_change"]
    lone = (status["leader"] + 1) % 4  # not the leader of the next block
    cluster.kill(lone)
    cluster.start(lone)
    cluster.wait_rpc(lone)
    async with Client(cluster.layout[lone].rpc_url) as client:
        tx = await client.build(alice, token, "transfer", [b"\x07" * 20, 1])
        await client.send_transaction(tx)
    async with Client(cluster.layout[status["leader"]].rpc_url) as client:
        receipt = await client.wait_for_receipt(tx.hash(alice.suite), timeout_s=40)
    assert receipt.ok
    assert all(cluster.running(i) for i in range(4))

"""Transactions do not stick: what one node alone holds still reaches a block."""

from chainnode.client import Account, Client
from tests.integration.test_chain import cluster, deploy_token  # noqa: F401 (cluster: the 4-sealer fixture)


async def test_a_transaction_only_a_restarted_non_leader_holds_commits_on_an_idle_chain(cluster):
    # A restarted node's gossip was dropped as already seen (it reused its message ids), and
    # gossip is best effort besides; the node is not the leader, and its view change alone
    # cannot move the others (f + 1 are needed), so such a transaction waited forever. The
    # regressions are tests/network/test_cluster.py (message ids) and tests/txpool/test_regossip.py;
    # this is the whole path on real processes.
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

"""Event subscriptions against real node processes: a dApp subscribes to a token's events,
loses its connection (dropped mid-stream, then the client gone altogether while transfers
commit), resumes, and sees every event exactly once, in chain order.

Self-skips while the node does not serve `subscribe` (the SubscriptionHub is not wired into
chainnode/node/node.py yet); turns on by itself once it is.
"""

import os

import httpx
import pytest
import trio

from chainnode.client import Account, Client
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN

TRANSFERS_PER_PHASE = 8


@pytest.fixture
def cluster(tmp_path):
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}) as c:
        c.start_all()
        yield c


def serves_subscriptions(rpc_url: str) -> bool:
    """Over HTTP a wired node answers `subscribe` with "need a WebSocket"; an unwired one
    with "method not found"."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["group0", "", "newBlocks", {}]}
    reply = httpx.post(rpc_url, json=body, timeout=10).json()
    return reply.get("error", {}).get("code") != -32601


@pytest.fixture
def wired(cluster):
    if not serves_subscriptions(cluster.layout[0].rpc_url):
        pytest.skip("the node does not serve `subscribe` yet: SubscriptionHub is not wired into chainnode/node/node.py")
    return cluster


async def test_events_survive_a_dropped_and_a_killed_client(wired):
    cluster = wired
    url = cluster.layout[0].rpc_url
    alice = Account.generate("sm")
    async with Client(url) as client:
        deployed = await client.deploy(alice, TOKEN, [1_000], timeout_s=30)
        token = deployed.contract_address
        sent: list[bytes] = []

        async def transfers(count: int, via: int) -> None:
            async with Client(cluster.layout[via].rpc_url) as other:
                for _ in range(count):
                    tx = await other.build(alice, token, "transfer", [os.urandom(20), 1])
                    sent.append(await other.send_transaction(tx))

        got = []
        # Phase 1: drop the connection mid-stream while transfers keep committing.
        async with client.subscribe_events(address=token, name="Transfer", from_block=deployed.block_number) as events:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(transfers, TRANSFERS_PER_PHASE, 1)
                with trio.fail_after(60):
                    async for ev in events:
                        got.append(ev)
                        if len(got) == 3:
                            await events.drop_connection()
                        if len(got) == TRANSFERS_PER_PHASE:
                            break
            position = events.position
            assert events.connections >= 2
        # Phase 2: the client is gone altogether; transfers commit meanwhile.
        await transfers(TRANSFERS_PER_PHASE, 2)
        last = await client.wait_for_receipt(sent[-1], timeout_s=60)
        assert last.ok
        # Resume where the dApp left off (it would have persisted `position`).
        async with client.subscribe_events(address=token, name="Transfer", resume_after=position) as events:
            with trio.fail_after(60):
                async for ev in events:
                    got.append(ev)
                    if len(got) == 2 * TRANSFERS_PER_PHASE:
                        break
        # nothing repeated, nothing lost: exactly the transfers' events, in chain order
        positions = [e.position for e in got]
        assert positions == sorted(set(positions))
        assert sorted(e.tx_hash for e in got) == sorted(sent)
        assert all(e.event.address == token and e.event.name == "Transfer" and e.event.fields["amount"] == 1 for e in got)
        # and a proof of the last receipt verifies offline against the sealer set
        receipt = await client.get_verified_receipt(sent[-1], await client.sealer_pubs())
        assert receipt.block_number == last.block_number

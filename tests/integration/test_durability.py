"""What sendTransaction acknowledged is not lost when the node is killed (kill -9) before it
could gossip or commit it, and the SDK gets the receipt through another node when its node
hangs or dies. Real `chainnode start` processes, real LevelDB, real libp2p."""

import os
import signal

import trio

from chainnode.client import Account, Client
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN, transfers

TX_COUNT = 50  # 1M gas each: within one block's gas limit


async def test_transactions_acknowledged_by_a_killed_node_all_commit_after_its_restart(tmp_path):
    # The only sealer: nobody else could have heard of them, so the node's own disk is all
    # there is. Blocks at most every 3 s, so the acknowledged ones are still pending at the kill.
    with Cluster(tmp_path / "net", sealers=1, config={"block_interval_min_ms": 3000, "consensus_timeout_ms": 6000}) as cluster:
        cluster.start_all()
        url = cluster.layout[0].rpc_url
        alice = Account.generate("sm")
        async with Client(url, timeout_s=30) as client:
            token = (await client.deploy(alice, TOKEN, [TX_COUNT], timeout_s=60)).contract_address
            txs = transfers(alice, token, TX_COUNT, block_limit=await client.block_number() + 500)
            acked: list[bytes] = []

            async def send(chunk):
                for t in chunk:
                    acked.append(await client.send_transaction(t))

            async with trio.open_nursery() as nursery:
                for k in range(16):
                    nursery.start_soon(send, txs[k::16])
            pending = cluster.rpc(0, "getPendingTxSize")
            cluster.kill(0)  # kill -9, the moment the last answer came
        assert len(acked) == TX_COUNT and pending > 0, "no acknowledged transaction was still pending at the kill"

        cluster.start(0)
        cluster.wait_rpc(0)
        async with Client(url, timeout_s=30) as client:
            with trio.fail_after(120):
                receipts = [await client.wait_for_receipt(h, timeout_s=120) for h in acked]
        assert all(r.ok for r in receipts)
        assert cluster.rpc(0, "getTotalTransactionCount")["transactionCount"] == TX_COUNT + 1  # and the deploy
        assert "re-admitted" in cluster.log(0)


async def test_the_sdk_gets_the_receipt_through_another_node_when_its_node_hangs_or_dies(tmp_path):
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}) as cluster:
        cluster.start_all()
        alice = Account.generate("sm")
        url = [node.rpc_url + "/" for node in cluster.layout]
        async with Client(url[0], timeout_s=30) as client:
            token = (await client.deploy(alice, TOKEN, [10], timeout_s=60)).contract_address

        # A node that hangs (SIGSTOP) once the transaction is built: it accepts the
        # connection and never answers; after the request timeout the same signed
        # transaction goes to the next node.
        async with Client([url[0], url[1]], timeout_s=3) as client:
            tx = await client.build(alice, token, "transfer", [os.urandom(20), 1])
            hung = cluster.net.pid(cluster.layout[0].name)
            os.kill(hung, signal.SIGSTOP)
            try:
                with trio.fail_after(90):
                    receipt = await client.wait_for_receipt(tx, timeout_s=60, resubmit_after_s=2)
                assert receipt.ok and client.url == url[1]
            finally:
                os.kill(hung, signal.SIGCONT)

        # A dead node (kill -9) while the client is using it.
        async with Client([url[2], url[3]], timeout_s=10) as client:
            assert await client.block_number() >= 1 and client.url == url[2]
            cluster.kill(2)
            with trio.fail_after(90):
                receipt = await client.send(alice, token, "transfer", [os.urandom(20), 1], timeout_s=60)
            assert receipt.ok and client.url == url[3]
            assert await client.call(token, "balance_of", [alice.address]) == 8

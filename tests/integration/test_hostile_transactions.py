"""Hostile transactions against a real 4-sealer chain: none of them crashes a node or stalls
the chain, and each gets a failed receipt that says why."""

import pytest
import trio

from chainnode.client import Account, Client
from tests.integration.test_chain import cluster, deploy_token  # noqa: F401 (cluster: the 4-sealer fixture)

# Text a receipt cannot encode (lone UTF-16 surrogates), built by the contract itself. One
# deploy of the first kind once killed two of four nodes and halted the chain.
POISON = r'''
def init():
    storage["n"] = 0

def bad_require():
    require(False, "\ud800")

def bad_event():
    emit("\ud800", x=1)

def bad_field():
    emit("E", x="a\udfff")

def bad_return():
    return "\ud800"

def bad_key():
    storage["\ud800"] = 1

def bad_value():
    storage["k"] = ["\ud800"]
'''
POISON_METHODS = ["bad_require", "bad_event", "bad_field", "bad_return", "bad_key", "bad_value"]


async def test_poison_values_fail_their_transactions_and_nothing_else(cluster):
    alice = Account.generate("sm")
    token = await deploy_token(cluster.layout[0].rpc_url, alice, 100)
    async with Client([node.rpc_url for node in cluster.layout]) as client:
        poison = await client.deploy(alice, POISON, check=True)
        for method in POISON_METHODS:
            receipt = await client.send(alice, poison.contract_address, method, [], check=False)
            assert not receipt.ok, method
            assert receipt.error_type and receipt.error_message, (method, receipt.error_type)
        # A deploy whose init hands back poison fails the same way.
        receipt = await client.deploy(alice, POISON.replace('storage["n"] = 0', 'emit("\\ud800")'), check=False)
        assert not receipt.ok and receipt.error_message
        payment = await client.send(alice, token, "transfer", [b"\x01" * 20, 1])
        assert payment.ok
    assert all(cluster.running(i) for i in range(4))
    head = cluster.height(0)
    cluster.wait_height(range(4), head)
    assert len({cluster.rpc(i, "getBlockHashByNumber", head) for i in range(4)}) == 1
    for i in range(4):
        assert "Traceback" not in cluster.log(i), f"node{i} logged a traceback"


SPIN = "def spin():\n    i = 0\n    while True:\n        i = i + 1\n"
TX_GAS_LIMIT = 30_000_000  # the genesis default: the most one transaction may burn


async def test_an_ordinary_payment_commits_within_2_s_under_worst_case_calls_and_transactions(cluster):
    # Two 30M-gas transactions once held the chain for 83 s, and read-only calls that spin
    # until their gas runs out stalled it (68 s for a probe transaction, 5 view changes).
    alice, mallory = Account.generate("sm"), Account.generate("sm")
    urls = [node.rpc_url for node in cluster.layout]
    token = await deploy_token(urls[0], alice, 100)
    async with Client(urls) as client:
        spin = (await client.deploy(mallory, SPIN)).contract_address
        latencies = []
        async with trio.open_nursery() as attack:
            async def transactions():
                async with Client(urls[1:]) as c:
                    while True:  # two worst-case transactions per second, sent to every node in turn
                        tx = await c.build(mallory, spin, "spin", [], gas_limit=TX_GAS_LIMIT)
                        await c.send_transaction(tx)
                        await trio.sleep(0.5)

            async def calls(url):
                async with Client(url) as c:
                    while True:
                        with pytest.raises(Exception):
                            await c.call(spin, "spin", [])

            attack.start_soon(transactions)
            for url in urls:
                attack.start_soon(calls, url)
            for _ in range(5):
                tx = await client.build(alice, token, "transfer", [b"\x02" * 20, 1])
                started = trio.current_time()
                await client.send_transaction(tx)
                receipt = await client.wait_for_receipt(tx.hash(alice.suite), timeout_s=30)
                latencies.append(trio.current_time() - started)
                assert receipt.ok
            attack.cancel_scope.cancel()
    assert max(latencies) <= 2.0, latencies
    assert all(cluster.running(i) for i in range(4))

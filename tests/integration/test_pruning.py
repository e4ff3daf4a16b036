"""Block pruning on a real node process: a sealer that keeps the bodies of its newest 128
blocks (`[storage] block_history_blocks`, the minimum) serves the header and certificate of
a pruned block, refuses its body naming the oldest block it keeps, and still refuses a
replay: a body whose transaction could still be in a block (its block_limit not passed)
waits, and goes once it cannot."""

from __future__ import annotations

from chainnode.client import Account, Client, NodeError
from chainnode.protocol.hexstr import to_hex
from chainnode.protocol.types import Transaction
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN

BODIES_KEPT = 128
WINDOW = 150  # block_limit_window: above BODIES_KEPT, so one transaction can hold pruning back


async def refused(request) -> NodeError:
    """The error the node answers `request` (a coroutine) with."""
    try:
        answer = await request
    except NodeError as exc:
        return exc
    raise AssertionError(f"the node answered {answer!r}")


async def test_a_pruning_node_serves_headers_refuses_pruned_bodies_and_still_refuses_replays(tmp_path):
    with Cluster(tmp_path / "net", sealers=1, config={"block_interval_min_ms": 0, "block_limit_window": WINDOW}) as cluster:
        node = cluster.layout[0]
        toml = node.config.read_text()
        assert "block_history_blocks = 0" in toml  # what `chainnode init` writes: an archive of blocks
        node.config.write_text(toml.replace("block_history_blocks = 0", f"block_history_blocks = {BODIES_KEPT}"))
        cluster.start_all()
        alice = Account.generate("sm")
        async with Client(node.rpc_url, timeout_s=30) as client:
            info = await client.group_info()
            head = 0

            def signed(to: bytes, method: str, args: list, lifetime: int) -> Transaction:
                # May be in the blocks up to `lifetime` after the head.
                return alice.transaction(chain_id=info["chainId"], group_id=info["groupId"], block_limit=head + lifetime,
                                         to=to, method=method, args=args, gas_limit=1_000_000)

            async def commit(tx: Transaction) -> int:
                nonlocal head
                receipt = await client.wait_for_receipt(tx, timeout_s=30)
                assert receipt.ok, receipt
                head = receipt.block_number
                return head

            deploy = signed(b"", "", [TOKEN, [10**6]], 10)
            assert await commit(deploy) == 1
            token = (await client.get_receipt(deploy.hash(alice.suite))).contract_address

            def transfer(lifetime: int = 10) -> Transaction:
                return signed(token, "transfer", [b"\x02" * 20, 1], lifetime)

            old = transfer()
            assert await commit(old) == 2
            held = transfer(WINDOW)  # block 3, and it may be in any block up to 152
            assert await commit(held) == 3
            while head < 3 + BODIES_KEPT + 3:
                await commit(transfer())

            # Blocks 0..2 are pruned; block 3 waits for its transaction's block_limit.
            status = await client.request("getSyncStatus")
            assert status["oldestBlock"] == 3 and status["oldestStateBlock"] is not None, status
            pruned = await refused(client.request("getBlockByNumber", 2))
            assert pruned.code == -32001 and pruned.data == {"oldestBlock": 3}, pruned
            assert "it keeps block bodies from block 3 on" in pruned.message and "onlyHeader=true" in pruned.message
            header = await client.request("getBlockByNumber", 2, True)
            assert header["certificate"]["number"] == 2 and "transactions" not in header
            assert (await client.request("getBlockByNumber", 3, True))["parentHash"] == header["hash"]
            assert await client.request("getTransaction", to_hex(old.hash(alice.suite))) is None
            assert await client.request("getTransactionReceipt", to_hex(old.hash(alice.suite))) is None
            assert len((await client.request("getBlockByNumber", 3))["transactions"]) == 1
            # Replays: of a kept transaction, known as committed; of a pruned one, expired.
            assert (await client.request("sendTransaction", to_hex(held.encode())))["status"] == "committed"
            assert (await refused(client.request("sendTransaction", to_hex(old.encode())))).reason == "block_limit_expired"

            # Once no block can hold it (block 153 on), block 3's body goes too, and the replay is refused by its block_limit.
            while head < 153:
                await commit(transfer())
            assert (await client.request("getSyncStatus"))["oldestBlock"] > 3
            assert await client.request("getTransaction", to_hex(held.hash(alice.suite))) is None
            assert (await refused(client.request("sendTransaction", to_hex(held.encode())))).reason == "block_limit_expired"

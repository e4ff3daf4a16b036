"""The chain RPC methods over the real dispatcher, on a real chain, pool and ledger."""

import json
import os
from dataclasses import dataclass, field

import pytest

from chainnode.chain import Chain
from chainnode.merkle import MerkleProof, verify_proof
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.txpool import TxPool
from chainnode.types import BlockHeader, CommitCertificate, Receipt, Transaction
from tests.unit.test_sync import SOURCE, SUITE, USER, certify, open_chain


@dataclass
class Node:  # the fields ChainRpc reads; the real node provides the same
    chain: Chain
    pool: TxPool
    name: str = "node0"
    group_id: str = "g"
    syncer: object = None

    def peer_summaries(self):
        return [{"index": 1, "blockNumber": 3}]

    async def submit_transaction(self, raw):
        return await self.pool.submit(raw)


@pytest.fixture
def rpc(tmp_path):
    chain = open_chain(tmp_path)
    pool = TxPool(SUITE, "c", "g", head_height=lambda: chain.height, is_committed=chain.is_committed)
    node = Node(chain, pool)
    d = Dispatcher()
    ChainRpc(node).register(d)

    async def call(method, *params):
        out = json.loads(await d.handle(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})))
        return out.get("result", out.get("error"))

    yield node, call
    chain.ledger.close()


def commit_pool(node):
    pooled = node.pool.take(100, node.chain.height + 1)
    proposal = node.chain.execute_proposal([p.tx for p in pooled], timestamp_ms=1, proposer_index=0, is_verified=lambda h: True)
    node.chain.commit(proposal, certify(proposal.header))
    node.pool.remove(proposal.executed.tx_hashes)


async def test_send_commit_and_read_back_with_proofs(rpc):
    node, call = rpc
    tx = Transaction("c", "g", os.urandom(16), 10, b"", "", [SOURCE], 1_000_000, USER[1]).signed(SUITE, USER[0])
    sent = await call("sendTransaction", "g", "", "0x" + tx.encode().hex())
    assert sent == {"transactionHash": "0x" + tx.hash(SUITE).hex()}
    assert await call("getPendingTxSize", "g", "") == 1
    assert (await call("getTransaction", "g", "", sent["transactionHash"]))["pending"] is True
    assert await call("getTransactionReceipt", "g", "", sent["transactionHash"]) is None
    commit_pool(node)
    assert await call("getBlockNumber", "g", "") == 1
    receipt = await call("getTransactionReceipt", "g", "node0", sent["transactionHash"], True)
    assert receipt["status"] == 0 and receipt["blockNumber"] == 1 and receipt["contractAddress"].startswith("0x")
    # offline verification of the proof, as a foreign institution would do it
    rp = receipt["receiptProof"]
    header = BlockHeader.decode(bytes.fromhex(rp["header"]["raw"][2:]))
    cert = CommitCertificate.decode(bytes.fromhex(rp["certificate"]["raw"][2:]))
    cert.verify(SUITE, [s.consensus_pub for s in node.chain.sealers()])
    assert cert.block_hash == header.hash(SUITE)
    leaf = bytes.fromhex(receipt["raw"][2:])
    assert Receipt.decode(leaf).tx_hash == tx.hash(SUITE)
    assert verify_proof(header.receipt_root, leaf, MerkleProof.decode(bytes.fromhex(rp["proof"][2:])))
    t = await call("getTransaction", "g", "", sent["transactionHash"], True)
    assert verify_proof(header.tx_root, tx.hash(SUITE), MerkleProof.decode(bytes.fromhex(t["txProof"]["proof"][2:])))
    block = await call("getBlockByNumber", "g", "", 1)
    assert block["transactions"][0]["hash"] == sent["transactionHash"] and block["certificate"]["number"] == 1
    assert (await call("getBlockByNumber", "g", "", "0x1", False, True))["transactions"] == [sent["transactionHash"]]
    assert "transactions" not in await call("getBlockByNumber", "g", "", 1, True)
    assert await call("getBlockHashByNumber", "g", "", 1) == block["hash"]
    assert await call("getTotalTransactionCount", "g", "") == {"blockNumber": 1, "transactionCount": 1}
    sealers = await call("getSealerList", "g", "")
    assert [s["index"] for s in sealers] == [0, 1, 2, 3]
    status = await call("getSyncStatus", "g", "")
    assert status["blockNumber"] == 1 and status["isSyncing"] is False


async def test_bad_calls_are_clear(rpc):
    node, call = rpc
    assert "group 'x' is not served here" in (await call("getBlockNumber", "x", ""))["message"]
    assert "not this node" in (await call("getBlockNumber", "g", "node9"))["message"]
    assert (await call("getBlockByNumber", "g", "", 99))["message"].startswith("block 99 not found")
    assert "'blockNumber' must be an integer" in (await call("getBlockByNumber", "g", "", "tall"))["message"]
    assert "'txHash' must be 32 bytes" in (await call("getTransactionReceipt", "g", "", "0x1234"))["message"]
    err = await call("sendTransaction", "g", "", "0x00ff")
    assert err["code"] == -32000 and err["data"]["reason"] == "malformed"
    err = await call("sendTransaction", "g", "", "0x" + "00" * 200_000)
    assert err["data"]["reason"] == "too_large" and "the limit is" in err["message"]
    expired = Transaction("c", "g", os.urandom(16), 0, b"", "", [SOURCE], 1, USER[1]).signed(SUITE, USER[0])
    err = await call("sendTransaction", "g", "", expired.encode().hex())
    assert err["data"]["reason"] == "block_limit_expired" and "later block_limit" in err["message"]
    assert "expected group, node" in (await call("getBlockNumber"))["message"]


async def test_group_info(rpc):
    node, call = rpc
    info = await call("getGroupInfo", "g", "")
    assert info["chainId"] == "c" and info["suite"] == "sm" and info["blockLimitWindow"] == 1000
    assert info["genesisHash"] == "0x" + node.chain.ledger.genesis_hash.hex()

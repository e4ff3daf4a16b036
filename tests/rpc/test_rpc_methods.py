"""The chain RPC methods over the real dispatcher, on a real chain, pool and ledger."""

import json
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from importlib import metadata

import pytest
import trio

from chainnode.client import ProofError, contract_state_key, system_state_key, verify_state_proof
from chainnode.execution.chain import Chain
from chainnode.protocol.codec import pack, unpack
from chainnode.protocol.hexstr import to_hex
from chainnode.protocol.merkle import MerkleProof, verify_proof
from chainnode.protocol.types import BlockHeader, CommitCertificate, Receipt, Transaction
from chainnode.protocol.versions import SOFTWARE_VERSION
from chainnode.rpc.headview import CallLimits, CallRunner
from chainnode.rpc.jsonrpc import LIMIT_EXCEEDED, NOT_FOUND, TIMED_OUT, Dispatcher, RpcError
from chainnode.rpc.methods import ChainRpc
from chainnode.txpool.pool import TxPool
from tests.chain_fixtures import GENESIS_0_2, SOURCE, SUITE, USER, certify, grow, open_chain
from tests.store.test_verify import FETCHED_FROM, GENESIS_WINDOW_10, SNAPSHOT_AT, joined_by_snapshot


@dataclass
class Node:  # the fields ChainRpc reads; the real node provides the same
    chain: Chain
    pool: TxPool
    name: str = "node0"
    group_id: str = "g"
    syncer: object = None
    replica_status: dict | None = None  # None: an observer
    limiter: trio.CapacityLimiter = field(default_factory=lambda: trio.CapacityLimiter(1))
    receipt_wait_ms_max: int = 60_000
    commit_listeners: list = field(default_factory=list)
    peer_id: str = "12D3KooWtest"

    def advertised_status(self):
        return []

    def peer_summaries(self):
        return [
            {"index": 1, "nodeId": "p1", "role": "sealer", "connected": True, "blockNumber": 3},
            {"index": 2, "nodeId": "p2", "role": "sealer", "connected": False, "blockNumber": None},
        ]

    def consensus_status(self):
        return self.replica_status

    def snapshot_status(self):
        return None

    async def submit_transaction(self, raw):
        return await self.pool.submit_durably(raw)

    async def on_chain(self, fn, *args):  # as the node does: one worker thread at a time
        return await trio.to_thread.run_sync(fn, *args, limiter=self.limiter)


def serve(chain):
    """A Node over `chain` with a fresh pool, and `call(method, *params)` through the real
    dispatcher (returns the result, or the error object)."""
    pool = TxPool(SUITE, "c", "g", head_height=lambda: chain.height, is_committed=chain.is_committed)
    node = Node(chain, pool)
    d = Dispatcher()
    ChainRpc(node).register(d)

    async def call(method, *params):
        out = json.loads(await d.handle(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})))
        return out.get("result", out.get("error"))

    return node, call


@pytest.fixture
def rpc(tmp_path):
    chain = open_chain(tmp_path)
    yield serve(chain)
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
    assert sent == {"transactionHash": "0x" + tx.hash(SUITE).hex(), "status": "added"}
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
    assert (status["oldestBlock"], status["oldestStateBlock"]) == (0, 0)  # every body and every past state so far


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


VIEWS = """
def init(start):
    storage["n"] = start

def get():
    return storage["n"]

def echo(x):
    return x

def whoami():
    return ctx.sender

def bump():
    storage["n"] = storage["n"] + 1

def fail():
    require(False, "no luck")

def spin():
    i = 0
    while True:
        i = i + 1
"""


async def deploy(node, call, source, init_args):
    tx = Transaction("c", "g", os.urandom(16), 10, b"", "", [source, init_args], 1_000_000, USER[1]).signed(SUITE, USER[0])
    sent = await call("sendTransaction", "g", "", "0x" + tx.encode().hex())
    commit_pool(node)
    receipt = await call("getTransactionReceipt", "g", "", sent["transactionHash"])
    assert receipt["status"] == 0, receipt
    return receipt["contractAddress"]


async def test_call_runs_read_only_on_the_head(rpc):
    node, call = rpc
    address = await deploy(node, call, VIEWS, [41])
    out = await call("call", "g", "", address, "get", [])
    assert out == {"output": 41, "raw": "0x" + pack(41).hex(), "status": 0, "errorType": "", "errorMessage": "", "gasUsed": out["gasUsed"], "blockNumber": 1}
    assert 0 < out["gasUsed"] < 1_000_000
    # JSON values round-trip; a "0x..." string in the array stays text
    assert (await call("call", "g", "", address, "echo", [{"a": [1, "0xff", None, True]}]))["output"] == {"a": [1, "0xff", None, True]}
    # bytes go through the hex form of args: the canonical encoding of the argument list
    out = await call("call", "g", "", address, "echo", "0x" + pack([b"\x00\xff"]).hex())
    assert out["output"] == "0x00ff" and out["raw"] == "0x" + pack(b"\x00\xff").hex()
    # the sender defaults to the zero address; `from` sets it
    assert (await call("call", "g", "", address, "whoami", []))["output"] == "0x" + "00" * 20
    me = "0x" + SUITE.address(USER[1]).hex()
    assert (await call("call", "g", "", address, "whoami", [], me))["output"] == me
    # read-only: a write fails the call and changes nothing
    out = await call("call", "g", "", address, "bump", [])
    assert out["status"] == 1 and out["errorType"] and out["output"] is None and out["raw"] == "0xc0"
    assert (await call("call", "g", "", address, "get", []))["output"] == 41
    failed = await call("call", "g", "", address, "fail", [])
    assert failed["status"] == 1 and failed["errorType"] == "ContractError" and failed["errorMessage"] == "no luck"
    # gas is bounded by the node's rpc_call_gas_max (below the chain's tx_gas_limit): an
    # endless loop ends as OutOfGas
    spun = await call("call", "g", "", address, "spin", [])
    assert spun["errorType"] == "OutOfGas" and spun["gasUsed"] == 10_000_000
    assert (await call("call", "g", "", "0x" + "11" * 20, "get", []))["errorType"] == "NoContract"
    assert (await call("call", "g", "", address, "nope", []))["status"] == 1
    assert await call("getCode", "g", "", address) == VIEWS
    assert await call("getCode", "g", "", "0x" + "11" * 20) is None


async def test_call_and_get_code_reject_bad_params(rpc):
    node, call = rpc
    addr = "0x" + "11" * 20
    assert "'to' must be 20 bytes" in (await call("call", "g", "", "0x12", "get", []))["message"]
    assert "'method' must be a string" in (await call("call", "g", "", addr, 5, []))["message"]
    assert "expected group, node, to, method, args" in (await call("call", "g", "", addr, "get"))["message"]
    err = (await call("call", "g", "", addr, "get", [1.5]))["message"]
    assert "'args': values of type float are not allowed" in err and "for bytes, pass 'args' as the hex of its msgpack encoding" in err
    assert "'args' must be a JSON array" in (await call("call", "g", "", addr, "get", {"a": 1}))["message"]
    assert "'args' must be a JSON array" in (await call("call", "g", "", addr, "get", "0xzz"))["message"]
    assert "'args'" in (await call("call", "g", "", addr, "get", "0x" + pack({"a": 1}).hex()))["message"]
    assert "non-canonical" in (await call("call", "g", "", addr, "get", "0xdc000101"))["message"]
    assert "'from' must be 20 bytes" in (await call("call", "g", "", addr, "get", [], "0x01"))["message"]
    assert "'address' must be 20 bytes" in (await call("getCode", "g", "", "0xabcd"))["message"]
    assert "expected group, node, address" in (await call("getCode", "g", ""))["message"]


async def test_block_by_hash(rpc):
    node, call = rpc
    await deploy(node, call, VIEWS, [1])
    by_number = await call("getBlockByNumber", "g", "", 1)
    assert await call("getBlockByHash", "g", "", by_number["hash"]) == by_number
    only_hashes = await call("getBlockByHash", "g", "", by_number["hash"], False, True)
    assert only_hashes["transactions"] == [by_number["transactions"][0]["hash"]]
    assert "transactions" not in await call("getBlockByHash", "g", "", by_number["hash"], True)
    genesis = await call("getBlockByHash", "g", "", "0x" + node.chain.ledger.genesis_hash.hex())
    assert genesis["number"] == 0
    missing = await call("getBlockByHash", "g", "", "0x" + "ab" * 32)
    assert missing["code"] == -32001 and "no block with hash 0xabab" in missing["message"]
    assert "'blockHash' must be 32 bytes" in (await call("getBlockByHash", "g", "", "0x12"))["message"]
    assert "'onlyHeader' must be true or false" in (await call("getBlockByHash", "g", "", by_number["hash"], "yes"))["message"]


async def test_membership_and_consensus(rpc):
    node, call = rpc
    sealers = await call("getNodeListByType", "g", "", "consensus_sealer")
    assert sealers == await call("getSealerList", "g", "") and len(sealers) == 4
    assert await call("getObserverList", "g", "") == []
    assert await call("getNodeListByType", "g", "", "consensus_observer") == []
    err = (await call("getNodeListByType", "g", "", "leader"))["message"]
    assert "'type' must be one of consensus_sealer, consensus_observer" in err
    assert "'type' must be a string" in (await call("getNodeListByType", "g", "", 1))["message"]
    # an observer (no PBFT core) and a sealer
    assert await call("getPbftView", "g", "") is None
    assert (await call("getConsensusStatus", "g", ""))["role"] == "observer"
    node.replica_status = {"height": 2, "view": 7, "in_view_change": False, "leader": 3, "my_index": 0, "head_height": 1, "stats": {"timeouts": 2}}
    assert await call("getPbftView", "g", "") == 7
    status = await call("getConsensusStatus", "g", "")
    assert status["role"] == "sealer" and status["view"] == 7 and status["stats"] == {"timeouts": 2}
    assert "at most 2 parameters" in (await call("getPbftView", "g", "", 1))["message"]
    # only connected peers, with what they announced
    assert await call("getPeers", "g", "") == [{"index": 1, "nodeId": "p1", "role": "sealer", "blockNumber": 3}]


async def test_system_config(rpc):
    node, call = rpc
    assert await call("getSystemConfigByKey", "g", "", "tx_count_limit") == {"value": 1000, "blockNumber": 0}
    await deploy(node, call, VIEWS, [1])
    assert await call("getSystemConfigByKey", "g", "", "block_limit_window") == {"value": 1000, "blockNumber": 1}
    err = (await call("getSystemConfigByKey", "g", "", "tx_limit"))["message"]
    assert err.startswith("invalid params: 'key' 'tx_limit' is not a system config key; known: block_gas_limit, block_interval_min_ms, block_limit_window,")
    assert "expected group, node, key" in (await call("getSystemConfigByKey", "g", ""))["message"]


async def test_groups_and_version(rpc):
    node, call = rpc
    assert await call("getGroupList") == ["g"]
    assert await call("getGroupList", "g", "") == ["g"]
    assert "'node' must be a string" in (await call("getGroupList", "g", 3))["message"]
    version = await call("getClientVersion", "g", "")
    assert version["version"] == metadata.version("chainnode") and version["suite"] == "sm"
    assert version["python"].count(".") == 2 and version["nodeName"] == "node0"
    # What a rolling upgrade needs to see: the chain's rules, the wire protocol, the data format.
    assert version["compatibilityVersion"] == SOFTWARE_VERSION and version["protocolVersion"] == 3
    assert version["dataFormat"] == "chainnode-ledger/2" and version["nodeId"] == "12D3KooWtest"
    assert "group 'x' is not served here" in (await call("getClientVersion", "x", ""))["message"]



async def test_state_proofs_of_contract_storage_and_system_state_verify_offline(rpc):
    node, call = rpc
    grow(node.chain, 2)  # two counters deployed: storage["n"] == 0 in each
    sealers = [s.consensus_pub for s in node.chain.sealers()]
    address = node.chain.ledger.get_receipt(node.chain.ledger.get_block_tx_hashes(2)[0]).contract_address
    out = await call("getStateProof", "g", "", to_hex(address), "n")
    assert out["blockNumber"] == 2 and out["header"]["version"] == 2
    proven = verify_state_proof(out, contract_state_key(address, "n"), sealers, SUITE)
    assert unpack(proven.value, max_bytes=64) == 0 and proven.block_number == 2
    absent = await call("getStateProof", "g", "", to_hex(address), "no such key", 1)
    assert absent["value"] is None and absent["blockNumber"] == 1
    assert verify_state_proof(absent, contract_state_key(address, "no such key"), sealers, SUITE).value is None
    nodes = await call("getStateProof", "g", "", "system", "nodes")
    assert verify_state_proof(nodes, system_state_key("nodes"), sealers, SUITE).value is not None
    raw = await call("getStateProof", "g", "", "raw", to_hex(system_state_key("committee")))
    assert raw["stateKey"] == to_hex(system_state_key("committee"))
    # The answer proves only the key it names, and only with the sealers that certified it.
    with pytest.raises(ProofError, match="not the one asked for"):
        verify_state_proof(out, contract_state_key(address, "m"), sealers, SUITE)
    with pytest.raises(ProofError, match="does not verify against"):
        verify_state_proof(out, contract_state_key(address, "n"), [SUITE.generate_keypair()[1] for _ in range(4)], SUITE)
    lying = dict(out, value=to_hex(pack(7)))
    with pytest.raises(ProofError, match="disagree"):
        verify_state_proof(lying, contract_state_key(address, "n"), sealers, SUITE)
    # Bad requests get a clear error, not a crash.
    for params, message in [
        (["0x12", "n"], "'address'"), ([to_hex(address), "0xzz"], "not hex"), (["system", 5], "'key' must be a string"),
        (["raw", "0x"], "state keys are 1.."), ([to_hex(address), "n", 99], "not on this node"),
        ([to_hex(address), {"a": [1, {"b": 1.5}]}], "'key'"),
    ]:
        err = await call("getStateProof", "g", "", *params)
        assert "code" in err and message in err["message"], (params, err)


async def test_a_chain_from_before_the_tree_says_its_blocks_prove_no_single_key(tmp_path):
    chain = open_chain(tmp_path, GENESIS_0_2)
    try:
        _, call = serve(chain)
        err = await call("getStateProof", "g", "", "system", "nodes")
        assert err["code"] == NOT_FOUND and "predates the state tree" in err["message"]
    finally:
        chain.ledger.close()

async def test_a_pruned_block_is_refused_naming_the_oldest_kept_and_its_header_stays(rpc):
    node, call = rpc
    ledger = node.chain.ledger
    ledger.block_history_blocks = 3  # as `[storage] block_history_blocks` opens it (at least 128 in node.toml)
    grow(node.chain, 1)
    old = ledger.get_block(1).transactions[0]
    grow(node.chain, 20)  # each block's transaction may be in blocks up to 10 after it: bodies go 10 blocks behind
    assert (ledger.head_height, ledger.oldest_block_height()) == (21, 12)
    old_hash = to_hex(old.hash(SUITE))
    for params in ([1], [1, False, True], ["0xb"]):
        err = await call("getBlockByNumber", "g", "", *params)
        assert err["code"] == NOT_FOUND and err["data"] == {"oldestBlock": 12}, (params, err)
        assert err["message"].startswith(f"block {int(str(params[0]), 0)}'s transactions and receipts are not kept on this node: "
                                          "it keeps block bodies from block 12 on") and "onlyHeader=true" in err["message"]
    header = await call("getBlockByNumber", "g", "", 1, True)  # headers and certificates stay, and still chain
    assert header["number"] == 1 and header["certificate"]["number"] == 1 and "transactions" not in header
    assert (await call("getBlockByNumber", "g", "", 2, True))["parentHash"] == header["hash"]
    assert (await call("getBlockByHash", "g", "", header["hash"]))["data"] == {"oldestBlock": 12}
    assert (await call("getBlockByHash", "g", "", header["hash"], True)) == header
    assert await call("getBlockHashByNumber", "g", "", 1) == header["hash"]
    assert len((await call("getBlockByNumber", "g", "", 12))["transactions"]) == 1
    # A pruned transaction is answered as an unknown one: null.
    for method in ("getTransaction", "getTransactionReceipt"):
        assert await call(method, "g", "", old_hash) is None and await call(method, "g", "", old_hash, True) is None
    status = await call("getSyncStatus", "g", "")
    assert (status["oldestBlock"], status["oldestStateBlock"]) == (12, 0)
    # Replays stay refused: a kept transaction by its record, a pruned one by its block_limit (passed before it went).
    kept = ledger.get_block(21).transactions[0]
    assert (await call("sendTransaction", "g", "", kept.encode().hex()))["status"] == "committed"
    assert (await call("sendTransaction", "g", "", old.encode().hex()))["data"]["reason"] == "block_limit_expired"


async def test_a_node_that_started_from_a_snapshot_names_the_blocks_it_never_had(tmp_path):
    server = open_chain(tmp_path / "server", GENESIS_WINDOW_10)
    grow(server, SNAPSHOT_AT)
    joiner = await joined_by_snapshot(server, tmp_path / "joiner")  # block 0, then FETCHED_FROM..SNAPSHOT_AT
    try:
        _, call = serve(joiner)
        for method, params in [("getBlockByNumber", [5]), ("getBlockByNumber", [5, True]), ("getBlockHashByNumber", [5]),
                               ("getSealerList", [FETCHED_FROM - 1])]:
            err = await call(method, "g", "", *params)
            assert err["code"] == NOT_FOUND and err["data"] == {"oldestHeader": FETCHED_FROM}, (method, err)
            assert err["message"] == (f"block {params[0]} is not on this node: it started from a snapshot and holds block 0 and the "
                                      f"blocks from {FETCHED_FROM} on; ask an archive node for older blocks")
        assert (await call("getBlockByNumber", "g", "", 0, True))["number"] == 0
        fetched = await call("getBlockByNumber", "g", "", FETCHED_FROM)
        assert fetched["number"] == FETCHED_FROM and len(fetched["transactions"]) == 1
        assert await call("getBlockHashByNumber", "g", "", FETCHED_FROM) == fetched["hash"]
        assert len(await call("getSealerList", "g", "", FETCHED_FROM)) == len(await call("getSealerList", "g", ""))
        assert await call("getBlockHashByNumber", "g", "", SNAPSHOT_AT + 1) is None  # above the head: not yet
        err = await call("getBlockByNumber", "g", "", SNAPSHOT_AT + 1)
        assert err["message"] == f"block {SNAPSHOT_AT + 1} not found; the chain is at height {SNAPSHOT_AT}"
    finally:
        joiner.ledger.close()
        server.ledger.close()


# ---- read-only calls beside block execution ------------------------------------------------

PAIR = """
def init():
    storage["a"] = 0
    storage["b"] = 0

def set_both(v):
    storage["a"] = v
    storage["b"] = v

def get_a():
    return storage["a"]

def both():
    return [storage["a"], storage["b"], ctx.block_height]
"""


async def test_a_call_during_a_commit_sees_one_whole_block(rpc):
    """A call reads a LevelDB snapshot of the head: paused inside a commit, after the block's
    batch is durable and before the ledger's cache and head fields follow, a call sees the
    new block whole (both keys and the height agree), never a mix."""
    node, call = rpc
    address = await deploy(node, call, PAIR, [])
    await call("call", "g", "", address, "get_a", [])  # what a call reads may sit in the state cache
    ledger = node.chain.ledger
    store = ledger._store
    tx = Transaction("c", "g", os.urandom(16), 10, bytes.fromhex(address[2:]), "set_both", [7], 1_000_000, USER[1]).signed(SUITE, USER[0])
    proposal = node.chain.execute_proposal([tx], timestamp_ms=2, proposer_index=0, is_verified=lambda h: True)
    written, resume = threading.Event(), threading.Event()
    write_batch = store.write_batch

    def paused_write_batch(puts, deletes=()):
        write_batch(puts, deletes)
        written.set()
        resume.wait()

    store.write_batch = paused_write_batch
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(partial(trio.to_thread.run_sync, node.chain.commit, proposal, certify(proposal.header), abandon_on_cancel=True))
            await trio.to_thread.run_sync(written.wait)
            assert ledger.head_height == 1  # the ledger's own fields have not moved yet
            out = await call("call", "g", "", address, "both", [])
            assert out["output"] == [7, 7, 2] and out["blockNumber"] == 2
            resume.set()
    finally:
        resume.set()
        store.write_batch = write_batch
    assert (await call("call", "g", "", address, "both", []))["output"] == [7, 7, 2]


async def test_calls_never_wait_for_the_chain_worker(rpc):
    node, call = rpc
    address = await deploy(node, call, PAIR, [])
    async with node.limiter:  # a block holds the chain worker
        with trio.fail_after(30):
            assert (await call("call", "g", "", address, "both", []))["output"] == [0, 0, 1]
            assert (await call("getSystemConfigByKey", "g", "", "tx_gas_limit"))["blockNumber"] == 1
            assert (await call("getCommittee", "g", ""))["blockNumber"] == 1


async def test_call_runner_times_out_and_keeps_the_slot_until_the_thread_ends():
    runner = CallRunner(SUITE, CallLimits(timeout_ms=10, calls_max=1))
    release = threading.Event()
    with pytest.raises(RpcError) as slow:
        await runner.run(lambda engine, gas_max: (release.wait(), 0))
    assert slow.value.code == TIMED_OUT and "did not finish within 10 ms" in slow.value.message
    assert runner.busy == 1  # the thread still runs: its slot stays taken
    with pytest.raises(RpcError) as busy:
        await runner.run(lambda engine, gas_max: (1, 0))
    assert busy.value.code == LIMIT_EXCEEDED and "limit 1 at once" in busy.value.message
    release.set()
    with trio.fail_after(30):
        while runner.busy:
            await trio.sleep(0.01)
    assert await CallRunner(SUITE, CallLimits(timeout_ms=30_000)).run(lambda engine, gas_max, x: (x + 1, 0), 41) == 42
    assert runner.timed_out == 1 and runner.refused == 1


async def test_calls_share_a_gas_budget_and_get_back_what_they_did_not_burn():
    # A few callers spinning contracts on their own threads slowed every block several times
    # over (they share the interpreter lock with block execution): together, calls may burn
    # at most rpc_calls_gas_per_s_max.
    runner = CallRunner(SUITE, CallLimits(gas_max=1_000_000, gas_per_s_max=2_000_000))
    granted = []

    def spin(engine, gas_max):
        granted.append(gas_max)
        return "out of gas", gas_max  # burns all it was given

    assert await runner.run(spin) == "out of gas"
    assert await runner.run(spin) == "out of gas"  # the burst: two calls' worth
    assert granted == [1_000_000, 1_000_000]
    with pytest.raises(RpcError) as refused:
        await runner.run(spin)
    assert refused.value.code == LIMIT_EXCEEDED and "rpc_calls_gas_per_s_max" in refused.value.message
    assert len(granted) == 2 and runner.busy == 0
    cheap = CallRunner(SUITE, CallLimits(gas_max=1_000_000, gas_per_s_max=1_000_000))
    for _ in range(10):  # a call that burns little gives the rest back
        assert await cheap.run(lambda engine, gas_max: (gas_max, 5_000)) > 900_000


async def test_a_lone_surrogate_is_invalid_params_not_an_internal_error(rpc):
    node, call = rpc
    err = await call("getMethodAcl", "g", "", "0x" + "11" * 20, "\ud800")
    assert err["code"] == -32602 and "surrogate" in err["message"]
    err = await call("call", "g", "", "0x" + "11" * 20, "get", ["\udfff"])
    assert err["code"] == -32602

"""The executor: real contracts through the engine, receipts, roots, and invalid blocks."""

import os

import pytest

from chainnode.crypto import get_suite
from chainnode.execution.executor import Executor, InvalidBlock
from chainnode.protocol.types import Block, BlockHeader, CommitCertificate, Transaction, commit_signing_bytes
from chainnode.store.ledger import Ledger
from chainnode.system.genesis import new_chain_config, parse_genesis
from contracts.engine import Engine, contract_address

SUITE = get_suite("sm")
SEALERS = [SUITE.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(4)]
USER = SUITE.generate_keypair()

COUNTER = '''
def init(start):
    storage["n"] = start

def add(k):
    require(k > 0, "k must be positive")
    storage["n"] = storage["n"] + k
    emit("Added", k=k, total=storage["n"])
    return storage["n"]

def get():
    return storage["n"]
'''


def genesis():
    return parse_genesis({
        "format": "chainnode-genesis/1", "chain_id": "chain0", "group_id": "group0", "suite": "sm", "timestamp_ms": 0,
        "nodes": [{"name": f"n{i}", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": f"p{i}"} for i, (_, pub) in enumerate(SEALERS)],
        "committee": [{"address": SUITE.address(SEALERS[0][1]).hex()}],
        "config": new_chain_config({"tx_count_limit": 10}),
    })


def tx(to, method, args, *, block_limit=50, chain="chain0", nonce=None):
    priv, pub = USER
    return Transaction(chain, "group0", nonce or os.urandom(16), block_limit, to, method, args, 1_000_000, pub).signed(SUITE, priv)


@pytest.fixture
def chain(tmp_path):
    ledger = Ledger.open(tmp_path, SUITE)
    block, writes = genesis().block()
    ledger.commit_block(block, [], None, writes)
    yield ledger, Executor(SUITE, Engine(SUITE), "chain0", "group0")
    ledger.close()


def run_block(ledger, executor, txs):
    height = ledger.head_height + 1
    hashes = executor.check_transactions(ledger.state, height, txs, is_committed=lambda h: ledger.get_transaction(h) is not None)
    done = executor.execute(ledger.state, ledger.head_header.state_root, height, 1000 * height, txs, hashes)
    header = BlockHeader(ledger.head_hash, height, 1000 * height, 0, ledger.head_header.sealer_set_hash, done.tx_root, done.receipt_root, done.state_root, done.gas_used, len(txs), version=done.header_version)
    block_hash = header.hash(SUITE)
    cert = CommitCertificate(height, block_hash, [(i, SUITE.sign(SEALERS[i][0], commit_signing_bytes(height, block_hash))) for i in range(3)])
    ledger.commit_block(Block(header, txs), done.receipts, cert, done.writes, done.tree_update)
    return done


def test_deploy_call_fail_and_commit(chain):
    ledger, executor = chain
    deploy = tx(b"", "", [COUNTER, [10]])
    done = run_block(ledger, executor, [deploy])
    receipt = done.receipts[0]
    assert receipt.ok, receipt
    address = contract_address(SUITE, SUITE.address(USER[1]), deploy.nonce)
    assert receipt.contract_address == address
    done = run_block(ledger, executor, [tx(address, "add", [5]), tx(address, "add", [-1]), tx(address, "add", [2]), tx(address, "nope", [])])
    ok, failed, ok2, missing = done.receipts
    assert ok.ok and ok.output == 15 and ok.events[0].name == "Added" and ok.events[0].fields == {"k": 5, "total": 15}
    assert not failed.ok and failed.error_type == "ContractError" and failed.error_message == "k must be positive" and failed.events == []
    assert ok2.output == 17
    assert not missing.ok
    assert ledger.get_receipt(done.tx_hashes[1]).error_message == "k must be positive"
    assert run_block(ledger, executor, [tx(address, "get", [])]).receipts[0].output == 17


def test_same_inputs_same_roots(chain, tmp_path_factory):
    ledger, executor = chain
    txs = [tx(b"", "", [COUNTER, [1]]), tx(b"", "", ["def broken(:\n"])]
    hashes = executor.check_transactions(ledger.state, 1, txs, is_committed=lambda h: False)
    a = executor.execute(ledger.state, ledger.head_header.state_root, 1, 5, txs, hashes)
    b = Executor(SUITE, Engine(SUITE), "chain0", "group0").execute(ledger.state, ledger.head_header.state_root, 1, 5, txs, hashes)
    assert (a.tx_root, a.receipt_root, a.state_root) == (b.tx_root, b.receipt_root, b.state_root)
    assert a.receipts[1].error_type == "ContractRejected"


def test_invalid_blocks_are_refused(chain):
    ledger, executor = chain
    committed = tx(b"", "", [COUNTER, [1]])
    run_block(ledger, executor, [committed])
    check = lambda txs, height=2: executor.check_transactions(ledger.state, height, txs, is_committed=lambda h: ledger.get_transaction(h) is not None)
    with pytest.raises(InvalidBlock, match="another chain"):
        check([tx(b"", "", [], chain="other")])
    with pytest.raises(InvalidBlock, match="block_limit 1, outside"):
        check([tx(b"", "", [], block_limit=1)])
    with pytest.raises(InvalidBlock, match="outside"):
        check([tx(b"", "", [], block_limit=5000)])
    with pytest.raises(InvalidBlock, match="already committed"):
        check([committed])
    t = tx(b"", "", [])
    with pytest.raises(InvalidBlock, match="twice"):
        check([t, t])
    forged = Transaction(*[getattr(t, f) for f in ("chain_id", "group_id", "nonce", "block_limit", "to", "method", "args", "gas_limit", "sender_pub")], signature=bytes(64))
    with pytest.raises(InvalidBlock, match="invalid signature"):
        check([forged])
    with pytest.raises(InvalidBlock, match="tx_count_limit 10"):
        check([tx(b"", "", []) for _ in range(11)])


def test_bad_deploy_arguments_fail_the_transaction_only(chain):
    ledger, executor = chain
    done = run_block(ledger, executor, [tx(b"", "", []), tx(b"", "", [5]), tx(b"", "", [COUNTER, 5])])
    assert [r.error_type for r in done.receipts] == ["BadDeploy"] * 3

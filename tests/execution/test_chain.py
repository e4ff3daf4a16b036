"""Chain rules for proposals: a replica re-executes and names what differs."""

import os
from dataclasses import replace

import pytest

from chainnode.execution.executor import InvalidBlock
from chainnode.protocol.types import Block, InvalidCertificate, Transaction
from tests.chain_fixtures import SOURCE, SUITE, USER, certify, open_chain


def deploy_tx(chain):
    return Transaction("c", "g", os.urandom(16), chain.height + 10, b"", "", [SOURCE], 1_000_000, USER[1]).signed(SUITE, USER[0])


def test_replica_accepts_the_same_block_and_names_differences(tmp_path):
    leader, replica = open_chain(tmp_path / "l"), open_chain(tmp_path / "r")
    txs = [deploy_tx(leader)]
    proposal = leader.execute_proposal(txs, timestamp_ms=5, proposer_index=1)
    assert replica.check_proposal(proposal.header, txs).header == proposal.header
    for field, value, match in [
        ("state_root", b"\x01" * 32, "state_root"),
        ("gas_used", 1, "gas_used"),
        ("tx_count", 2, "tx_count"),
        ("height", 5, "next height is 1"),
        ("parent_hash", b"\x02" * 32, "does not build on our head"),
        ("proposer_index", 9, "not a sealer"),
    ]:
        with pytest.raises(InvalidBlock, match=match):
            replica.check_proposal(replace(proposal.header, **{field: value}), txs)
    leader.commit(proposal, certify(proposal.header))
    with pytest.raises(InvalidBlock, match="before the parent"):
        leader.execute_proposal([deploy_tx(leader)], timestamp_ms=4, proposer_index=0)
    leader.ledger.close()
    replica.ledger.close()


def test_a_block_committed_by_sync_first_is_not_committed_again_by_consensus(tmp_path):
    # Consensus checked the height on the event loop, then waited for the chain worker while
    # sync committed the same block: the ledger then refused "block 1 does not extend head 1"
    # and the node crashed.
    leader, replica = open_chain(tmp_path / "l"), open_chain(tmp_path / "r")
    txs = [deploy_tx(leader)]
    proposal = leader.execute_proposal(txs, timestamp_ms=5, proposer_index=1)
    cert = certify(proposal.header)
    mine = replica.check_proposal(proposal.header, txs)  # consensus executed it here ...
    assert replica.apply_certified(Block(proposal.header, txs), cert) is True  # ... sync won
    assert replica.commit(mine, cert) is False
    assert replica.height == 1
    other = leader.execute_proposal([deploy_tx(leader)], timestamp_ms=6, proposer_index=1)
    with pytest.raises(InvalidBlock, match="conflicts"):
        replica.commit(other, certify(other.header))
    leader.ledger.close()
    replica.ledger.close()


# ---- the block gas rule: blocks are bounded by the gas they use, not by gas limits --------

from chainnode.client.account import DEFAULT_GAS_LIMIT  # noqa: E402
from chainnode.execution.chain import Chain  # noqa: E402
from chainnode.execution.executor import Executor  # noqa: E402
from chainnode.protocol.merkle import merkle_root  # noqa: E402
from chainnode.store.ledger import Ledger  # noqa: E402
from chainnode.system.genesis import parse_genesis  # noqa: E402
from contracts.engine import Engine  # noqa: E402
from tests.chain_fixtures import GENESIS, SEALERS, USER  # noqa: E402

BUMPS = 50
K = 20  # bumps that fit the small block gas limit below


def chain_with(path, config=None) -> Chain:
    """A chain at genesis whose system config has `config` on top of the defaults."""
    ledger = Ledger.open(path, SUITE)
    spec = {
        "format": "chainnode-genesis/1", "chain_id": "c", "group_id": "g", "suite": "sm", "timestamp_ms": 0,
        "nodes": [{"name": f"n{i}", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": f"p{i}"} for i, (_, pub) in enumerate(SEALERS)],
        "committee": [{"address": "00" * 20}],
        "config": config or {},
    }
    block, writes = (parse_genesis(spec) if config else GENESIS).block()
    ledger.commit_block(block, [], None, writes)
    return Chain(ledger, Executor(SUITE, Engine(SUITE), "c", "g"))


def deploy_counter(chain: Chain) -> bytes:
    deploy = Transaction("c", "g", b"deploy", chain.height + 10, b"", "", [SOURCE], 1_000_000, USER[1]).signed(SUITE, USER[0])
    proposal = chain.execute_proposal([deploy], timestamp_ms=1, proposer_index=0)
    receipt, = proposal.executed.receipts
    assert receipt.ok
    chain.commit(proposal, certify(proposal.header))
    return receipt.contract_address


def bumps(chain: Chain, counter: bytes, n: int, gas_limit: int = DEFAULT_GAS_LIMIT) -> list[Transaction]:
    """`n` calls, by default with the SDK's default gas limit (10,000,000: far more than they use)."""
    return [Transaction("c", "g", i.to_bytes(16, "big"), chain.height + 10, counter, "bump", [], gas_limit, USER[1]).signed(SUITE, USER[0])
            for i in range(n)]


def test_a_block_of_calls_with_the_default_sdk_gas_limit_is_proposed_whole(tmp_path):
    # Their gas limits sum to 400,000,000, over block_gas_limit (30,000,000); their gas used
    # is ~100,000. Counting gas limits cut this block to 6 transactions.
    leader, replica = chain_with(tmp_path / "l"), chain_with(tmp_path / "r")
    counter = deploy_counter(leader)
    assert deploy_counter(replica) == counter
    txs = bumps(leader, counter, BUMPS)
    proposal = leader.execute_proposal(txs, timestamp_ms=2, proposer_index=0)
    assert proposal.transactions == txs and proposal.header.tx_count == BUMPS
    assert [r.output for r in proposal.executed.receipts] == list(range(1, BUMPS + 1))
    assert replica.check_proposal(proposal.header, txs).header == proposal.header
    leader.ledger.close()
    replica.ledger.close()


def test_a_block_over_block_gas_limit_is_cut_by_the_leader_refused_by_a_replica_and_the_rest_go_next(tmp_path):
    # The gas one bump uses, measured on a chain with the default limits.
    probe = chain_with(tmp_path / "probe")
    counter = deploy_counter(probe)
    deploy_gas = probe.ledger.get_header(1).gas_used
    whole = probe.execute_proposal(bumps(probe, counter, BUMPS), timestamp_ms=2, proposer_index=0)
    used = [r.gas_used for r in whole.executed.receipts]
    # Each bump may burn `gas` at most; the block has room for K of them and a bit: after K,
    # the gas left is less than the next one's limit.
    gas = max(used)
    limit = sum(used[:K]) + gas - 1
    assert deploy_gas <= limit
    txs = bumps(probe, counter, BUMPS, gas_limit=gas)
    small = {"block_gas_limit": limit, "tx_gas_limit": limit}
    leader, replica = chain_with(tmp_path / "l", small), chain_with(tmp_path / "r", small)
    assert deploy_counter(leader) == deploy_counter(replica) == counter

    # The leader stops before the first transaction whose gas limit is more than the gas left
    # (it is never run); the proposal (header, roots, receipts, transactions) is the prefix.
    first = leader.execute_proposal(txs, timestamp_ms=2, proposer_index=0)
    assert first.transactions == txs[:K] and first.header.tx_count == K
    assert first.header.gas_used == sum(used[:K]) <= limit
    assert [r.output for r in first.executed.receipts] == list(range(1, K + 1))
    assert first.header.tx_root == merkle_root([t.hash(SUITE) for t in txs[:K]], SUITE.hash)
    assert first.executed.tx_hashes == [t.hash(SUITE) for t in txs[:K]]

    # A replica refuses a block of all the transactions (as a leader that ignored the limit
    # would propose it), by consensus and by sync alike, and accepts the cut one.
    uncut = replace(first.header, tx_count=BUMPS, gas_used=sum(used), tx_root=merkle_root([t.hash(SUITE) for t in txs], SUITE.hash))
    with pytest.raises(InvalidBlock, match=f"transaction {K}'s gas limit is more than the block's gas left under block_gas_limit {limit}"):
        replica.check_proposal(uncut, txs)
    with pytest.raises(InvalidBlock, match="block_gas_limit"):
        replica.apply_certified(Block(uncut, txs), certify(uncut))
    assert replica.height == 1
    assert replica.apply_certified(Block(first.header, first.transactions), certify(first.header)) is True
    leader.commit(first, certify(first.header))

    # The cut-off transactions go into the next block: the counter goes on from 11.
    second = leader.execute_proposal(txs[K:], timestamp_ms=3, proposer_index=0)
    assert second.transactions == txs[K:2 * K]
    assert [r.output for r in second.executed.receipts] == list(range(K + 1, 2 * K + 1))
    assert replica.check_proposal(second.header, second.transactions).header == second.header
    for c in (probe, leader, replica):
        c.ledger.close()


# ---- a certified block: the certificate vouches for the signatures, execution is redone ----


def test_a_certified_block_is_applied_without_its_signatures_checked_again_but_everything_else_is(tmp_path):
    # docs/architecture.md, "Decisions": 2f+1 sealers checked every signature before they
    # committed the block, so sync (and `chainnode db import`) trusts its certificate for them.
    leader, replica = open_chain(tmp_path / "l"), open_chain(tmp_path / "r")
    tx = deploy_tx(leader)
    forged = replace(tx, signature=bytes(64))
    with pytest.raises(InvalidBlock, match="invalid signature"):  # a proposal (consensus) is checked in full
        replica.check_proposal(leader.execute_proposal([tx], timestamp_ms=1, proposer_index=0).header, [forged])
    proposal = leader.execute_proposal([forged], timestamp_ms=1, proposer_index=0, is_verified=lambda h: True)
    block = Block(proposal.header, [forged])
    with pytest.raises(InvalidCertificate):  # the certificate itself is checked against the sealers
        replica.apply_certified(block, certify(proposal.header, signers=(0, 1)))
    with pytest.raises(InvalidBlock, match="state_root"):  # and the execution is redone and compared
        wrong = replace(proposal.header, state_root=b"\x01" * 32)
        replica.apply_certified(Block(wrong, [forged]), certify(wrong))
    assert replica.height == 0
    assert replica.apply_certified(block, certify(proposal.header)) is True
    assert replica.ledger.head_hash == proposal.header.hash(SUITE)
    leader.ledger.close()
    replica.ledger.close()

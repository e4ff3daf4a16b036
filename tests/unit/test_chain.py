"""Chain rules for proposals: a replica re-executes and names what differs."""

import os
from dataclasses import replace

import pytest

from chainnode.executor import InvalidBlock
from chainnode.types import Block, Transaction
from tests.unit.test_sync import SOURCE, SUITE, USER, certify, open_chain


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

"""A real chain on a temporary LevelDB with four known sealers, shared by the tests of
the packages that need one (execution, block sync, RPC, the SDK, the CLI console):
`open_chain(path)` opens it at genesis (`GENESIS_0_2`: as a chain from before the state tree), `certify(header)` signs a commit certificate with
three of the four sealers, `grow(chain, n)` commits n blocks of one deploy each."""

import os

from chainnode.crypto import get_suite
from chainnode.execution.chain import Chain
from chainnode.execution.executor import Executor
from chainnode.protocol.types import CommitCertificate, Transaction, commit_signing_bytes
from chainnode.store.ledger import Ledger
from chainnode.system.genesis import new_chain_config, parse_genesis
from contracts.engine import Engine

SUITE = get_suite("sm")
SEALERS = [SUITE.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(4)]
USER = SUITE.generate_keypair()
SOURCE = "def init():\n    storage['n'] = 0\n\ndef bump():\n    storage['n'] = storage['n'] + 1\n    return storage['n']\n"
GENESIS_DOC = {
    "format": "chainnode-genesis/1", "chain_id": "c", "group_id": "g", "suite": "sm", "timestamp_ms": 0,
    "nodes": [{"name": f"n{i}", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": f"p{i}"} for i, (_, pub) in enumerate(SEALERS)],
    "committee": [{"address": "00" * 20}],
}
GENESIS = parse_genesis({**GENESIS_DOC, "config": new_chain_config(None)})
# The same chain as chainnode 0.2.0 made it: no compatibility_version, so it runs 0.2.0's
# rules (header version 1, no state tree) until a vote raises them.
GENESIS_0_2 = parse_genesis(GENESIS_DOC)


def open_chain(path, genesis=GENESIS) -> Chain:
    ledger = Ledger.open(path, SUITE)
    if ledger.head_height < 0:
        block, writes = genesis.block()
        ledger.commit_block(block, [], None, writes)
    return Chain(ledger, Executor(SUITE, Engine(SUITE), "c", "g"))


def certify(header, signers=(0, 1, 2)):
    block_hash = header.hash(SUITE)
    return CommitCertificate(header.height, block_hash, [(i, SUITE.sign(SEALERS[i][0], commit_signing_bytes(header.height, block_hash))) for i in signers])


def grow(chain: Chain, blocks: int) -> None:
    for _ in range(blocks):
        tx = Transaction("c", "g", os.urandom(16), chain.height + 10, b"", "", [SOURCE], 1_000_000, USER[1]).signed(SUITE, USER[0])
        proposal = chain.execute_proposal([tx], timestamp_ms=chain.height, proposer_index=0)
        chain.commit(proposal, certify(proposal.header))

"""A real chain on a temporary LevelDB with four known sealers, shared by the tests of
the packages that need one (execution, block sync, RPC, the SDK, the CLI console):
`open_chain(path)` opens it at genesis (`GENESIS_0_2`: as a chain from before the state tree), `certify(header)` signs a commit certificate with
three of the four sealers, `grow(chain, n)` commits n blocks of one deploy each;
`change_sealers(chain)` (on a `GENESIS_GOVERNED` chain) changes the sealer set twice."""

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
# USER is the whole committee: its proposals execute at once.
GENESIS_GOVERNED = parse_genesis({**GENESIS_DOC, "committee": [{"address": SUITE.address(USER[1]).hex()}], "config": new_chain_config(None)})
NEW_SEALER = SUITE.keypair_from_private((5).to_bytes(32, "big"))  # not a genesis sealer
_KEY_OF = {pub: priv for priv, pub in SEALERS + [NEW_SEALER]}


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


def user_tx(chain: Chain, to: bytes, method: str, args: list) -> Transaction:
    return Transaction("c", "g", os.urandom(16), chain.height + 100, to, method, args, 1_000_000, USER[1]).signed(SUITE, USER[0])


def commit_by_sealers(chain: Chain, txs: list[Transaction]) -> int:
    """Commit a block certified by every sealer in force at its height (whichever set that is)."""
    proposal = chain.execute_proposal(txs, timestamp_ms=chain.height, proposer_index=0, is_verified=lambda h: True)
    header = proposal.header
    block_hash = header.hash(SUITE)
    msg = commit_signing_bytes(header.height, block_hash)
    signatures = [(i, SUITE.sign(_KEY_OF[s.consensus_pub], msg)) for i, s in enumerate(chain.sealers())]
    chain.commit(proposal, CommitCertificate(header.height, block_hash, signatures))
    return header.height


def change_sealers(chain: Chain) -> bytes:
    """From genesis: block 1 deploys a counter (returned), block 2 adds NEW_SEALER (in force
    from block 4), block 5 gives sealer 0 weight 3 (from block 7), block 7 bumps the counter."""
    from chainnode.system.contracts import COMMITTEE_ADDRESS
    from chainnode.system.governance import read_proposal

    deploy = user_tx(chain, b"", "", [SOURCE])
    assert commit_by_sealers(chain, [deploy]) == 1
    contract = chain.ledger.get_receipt(deploy.hash(SUITE)).contract_address

    def govern(kind: str, params: list) -> None:
        t = user_tx(chain, COMMITTEE_ADDRESS, "propose", [kind, params])
        commit_by_sealers(chain, [t])
        r = chain.ledger.get_receipt(t.hash(SUITE))
        assert r.status == 0 and read_proposal(chain.ledger.state, r.output).status == "executed", r

    govern("add_sealer", [NEW_SEALER[1], "12D3KooNew"])  # block 2
    commit_by_sealers(chain, [])  # 3: the genesis set's last block
    commit_by_sealers(chain, [])  # 4: the five sealers' first
    govern("set_weight", [SEALERS[0][1], 3])  # 5
    commit_by_sealers(chain, [])  # 6
    assert commit_by_sealers(chain, [user_tx(chain, contract, "bump", [])]) == 7
    assert [s.weight for s in chain.sealers()] == [3, 1, 1, 1, 1]
    return contract

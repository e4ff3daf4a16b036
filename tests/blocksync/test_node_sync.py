"""The node's side of block sync, on real Node objects (not run: no network traffic) over a
real devnet layout and LevelDB."""

from chainnode.node.config import load_config
from chainnode.node.node import Node
from chainnode.protocol.types import Block, CommitCertificate, Transaction, commit_signing_bytes
from chainnode.security.keyfile import load_key
from chainnode.system.genesis import load_genesis
from consensus import events as ev
from devnet.supervisor import Devnet
from tests.helpers import free_ports
from tests.integration.workload import TOKEN


def open_node(layout) -> Node:
    config = load_config(layout.config)
    return Node(config, load_genesis(config.genesis_file), load_key(config.key_file, config.password_file.read_text().strip()))


async def test_a_node_that_catches_up_by_sync_still_proposes_what_its_pool_holds(tmp_path):
    # Entering a new height, the PBFT core forgets that the pool has work. After a consensus
    # commit the node told it again; after a synced block it did not, so a node that caught
    # up by sync and then led the next height never proposed the transactions it held.
    net = Devnet.create(tmp_path / "net", sealers=4, scrypt_n=1024, ports=(free_ports(4), free_ports(4)))
    nodes = [open_node(layout) for layout in net.nodes]
    ahead, behind = nodes[0], nodes[1]
    try:
        proposal = ahead.chain.execute_proposal([], timestamp_ms=ahead.chain.ledger.head_header.timestamp_ms + 1, proposer_index=1)
        block_hash = proposal.header.hash(ahead.suite)
        signing = commit_signing_bytes(1, block_hash)
        sealer_keys = {n.key.public_key: n.key.private_key for n in nodes}
        pubs = [s.consensus_pub for s in ahead.chain.sealers()]
        certificate = CommitCertificate(1, block_hash, [(i, ahead.suite.sign(sealer_keys[pub], signing)) for i, pub in enumerate(pubs[:3])])

        core = behind.pbft.replica
        fed = []
        handle = core.handle
        core.handle = lambda event: (fed.append(event), handle(event))[1]
        user = behind.suite.generate_keypair()
        pending = Transaction("chain0", "group0", b"\x01" * 16, 10, b"", "", [TOKEN, [1]], 1_000_000, user[1]).signed(behind.suite, user[0])
        await behind.pool.submit(pending.encode())
        assert await behind.pbft.apply_synced(Block(proposal.header, []), certificate) is True
        behind.pbft._calls_recv.receive_nowait()()  # what the consensus loop does with it
        kinds = [type(e) for e in fed]
        assert ev.BlockCommitted in kinds and ev.PoolNotEmpty in kinds
        assert kinds.index(ev.PoolNotEmpty) > kinds.index(ev.BlockCommitted)  # after the core moved to height 2
        assert core.hs.height == 2 and core.hs.pool_has_work
    finally:
        for node in nodes:
            node.chain.ledger.close()

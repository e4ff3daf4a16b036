"""The chain: the ledger plus the rules a block must meet to extend it.

Consensus and sync both end here. A proposal is built (leader) or checked (replica) by
executing it on the head's state; a block that arrives with a commit certificate (sync) is
checked against the sealer set in force at its height, re-executed, and its roots compared
before it is committed. The sealer set for height h is read from the state after block
h-1, which is the head's state when h = head + 1 (chainnode.system.state.sealers_at): a membership change
made in block h governs blocks from h + 2 on, on every node alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from chainnode.execution.executor import ExecutedBlock, Executor, InvalidBlock
from chainnode.protocol.types import Block, BlockHeader, CommitCertificate, InvalidCertificate, Transaction, sealer_set_hash
from chainnode.store.ledger import Ledger
from chainnode.system.state import NodeEntry, read_config, sealers_at


@dataclass(frozen=True)
class Proposal:
    header: BlockHeader
    transactions: list[Transaction]
    executed: ExecutedBlock


class Chain:
    def __init__(self, ledger: Ledger, executor: Executor) -> None:
        self.ledger = ledger
        self.executor = executor
        self.suite = ledger.suite

    @property
    def height(self) -> int:
        return self.ledger.head_height

    def sealers(self) -> list[NodeEntry]:
        """The sealer set that certifies the next block (head + 1)."""
        return sealers_at(self.ledger.state, self.ledger.head_height + 1)

    def is_committed(self, tx_hash: bytes) -> bool:
        return self.ledger.get_transaction(tx_hash) is not None

    def execute_proposal(
        self,
        transactions: list[Transaction],
        *,
        timestamp_ms: int,
        proposer_index: int,
        is_verified: Callable[[bytes], bool] = lambda h: False,
    ) -> Proposal:
        """Execute `transactions` as block head + 1; raises `InvalidBlock` if they may not form it.

        The proposal holds the prefix of `transactions` before the first whose gas limit is
        more than the block's gas left under `block_gas_limit` (Executor.execute): the rest
        are for a later block."""
        ledger = self.ledger
        parent = ledger.head_header
        assert parent is not None, "the chain has no genesis block"
        height = ledger.head_height + 1
        if timestamp_ms < parent.timestamp_ms:
            raise InvalidBlock(f"timestamp {timestamp_ms} is before the parent's {parent.timestamp_ms}")
        sealers = self.sealers()
        if not 0 <= proposer_index < len(sealers):
            raise InvalidBlock(f"proposer index {proposer_index} is not a sealer")
        tx_hashes = self.executor.check_transactions(ledger.state, height, transactions, is_committed=self.is_committed, is_verified=is_verified)
        executed = self.executor.execute(ledger.state, parent.state_root, height, timestamp_ms, transactions, tx_hashes)
        transactions = transactions[:len(executed.receipts)]
        header = BlockHeader(
            parent_hash=ledger.head_hash,
            height=height,
            timestamp_ms=timestamp_ms,
            proposer_index=proposer_index,
            sealer_set_hash=sealer_set_hash(self.suite, [s.consensus_pub for s in sealers], [s.weight for s in sealers]),
            tx_root=executed.tx_root,
            receipt_root=executed.receipt_root,
            state_root=executed.state_root,
            gas_used=executed.gas_used,
            tx_count=len(transactions),
            version=executed.header_version,
        )
        return Proposal(header, transactions, executed)

    def check_proposal(self, header: BlockHeader, transactions: list[Transaction], is_verified: Callable[[bytes], bool] = lambda h: False) -> Proposal:
        """Re-execute a proposed block and require the same header; raises `InvalidBlock`."""
        if header.height != self.ledger.head_height + 1:
            raise InvalidBlock(f"proposal for height {header.height}, the next height is {self.ledger.head_height + 1}")
        if header.parent_hash != self.ledger.head_hash:
            raise InvalidBlock(f"proposal for height {header.height} does not build on our head")
        mine = self.execute_proposal(transactions, timestamp_ms=header.timestamp_ms, proposer_index=header.proposer_index, is_verified=is_verified)
        if len(mine.transactions) < len(transactions):
            cut = len(mine.transactions)
            raise InvalidBlock(f"proposal for height {header.height}: transaction {cut}'s gas limit is more than the block's gas "
                               f"left under block_gas_limit {read_config(self.ledger.state, 'block_gas_limit')} "
                               f"(the leader must leave it and the rest for a later block)")
        if mine.header != header:
            diff = [name for name in ("version", "sealer_set_hash", "tx_root", "receipt_root", "state_root", "gas_used", "tx_count", "extra") if getattr(mine.header, name) != getattr(header, name)]
            raise InvalidBlock(f"proposal for height {header.height} differs from our execution in: {', '.join(diff)}")
        return mine

    def commit(self, proposal: Proposal, certificate: CommitCertificate) -> bool:
        """Commit an executed proposal with its certificate (one synced write).

        Consensus and sync may both deliver a block: whichever reaches the chain worker second
        finds it committed and gets False, writing nothing. A different block at a committed
        height, or one that does not extend the head, is refused loudly.
        """
        if self._already_committed(proposal.header):
            return False
        block = Block(proposal.header, proposal.transactions)
        executed = proposal.executed
        self.ledger.commit_block(block, executed.receipts, certificate, executed.writes, executed.tree_update)
        return True

    def _already_committed(self, header: BlockHeader) -> bool:
        """True for a block we committed; raises `InvalidBlock` for another block at a height
        we committed."""
        if header.height > self.ledger.head_height:
            return False
        ours = self.ledger.get_header(header.height)
        if ours is not None and ours.hash(self.suite) == header.hash(self.suite):
            return True
        raise InvalidBlock(f"block {header.height} conflicts with the block we committed at that height")

    def apply_certified(self, block: Block, certificate: CommitCertificate) -> bool:
        """Verify and commit a block from a peer (sync). Raises `InvalidBlock` or
        `InvalidCertificate`; nothing is written unless every check holds.

        Returns False, writing nothing, for a block we already committed (consensus got
        there first); a different block at a height we committed is refused loudly.

        The transactions' signatures are not checked again (docs/architecture.md,
        "Decisions"): a quorum certificate means 2f+1 of the sealers signed the commit,
        so at least f+1 honest ones checked every signature of this block before they
        prepared it, the same trust a snapshot places in a certified state root. What the
        certificate cannot vouch for on this node is checked: the certificate itself
        against the sealer set, and the re-execution, whose every root must match the
        header. Replay is then bound by execution, not by SM2 (~4,400 verifications per
        second per core against ~13,000 transfers executed). `chainnode db verify` checks
        every signature of a ledger offline.
        """
        header = block.header
        if self._already_committed(header):
            return False
        sealers = self.sealers()
        pubs = [s.consensus_pub for s in sealers]
        if certificate.height != header.height or certificate.block_hash != header.hash(self.suite):
            raise InvalidCertificate(f"the certificate is for another block than height {header.height}")
        certificate.verify(self.suite, pubs, [s.weight for s in sealers])
        proposal = self.check_proposal(header, block.transactions, is_verified=_certified)
        return self.commit(proposal, certificate)


def _certified(tx_hash: bytes) -> bool:
    """`is_verified` of a block under a verified quorum certificate (Chain.apply_certified)."""
    return True

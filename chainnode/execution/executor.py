"""The executor: runs a block's transactions through the contract engine on a state
overlay and produces receipts, the state writes and the three roots.

It is what the PBFT core's execute action calls, on the leader (to build a proposal) and on
every replica (to check one): same prior state, same header fields and same transactions
give the same receipts and roots on every node (DESIGN.md rule 3).

A block whose transactions are not all valid (wrong chain, outside their block_limit
window, already committed, repeated, badly signed) is invalid as a whole: the replica
refuses to sign it. A valid transaction whose contract call fails is fine: it gets a failed
receipt and its writes are dropped.

A block's gas is bounded by `block_gas_limit`: execution stops before the first transaction
whose gas limit (capped at tx_gas_limit) is more than the gas the block has left, and the
block is the prefix before it (the leader proposes that prefix; a replica refuses a block
that was not cut so). Gas left goes down by the gas transactions *use*, so senders may keep
generous limits (1,000 payments at ~5,000 gas with 10M limits fit a 30M block), and the
transaction that stops the block is never run: nobody executes work that is thrown away.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from chainnode.crypto import ZERO_ADDRESS, CryptoSuite
from chainnode.protocol.merkle import merkle_root
from chainnode.protocol.types import ZERO_HASH, Event, Receipt, Transaction
from chainnode.protocol.versions import header_version
from chainnode.store.state import StateOverlay, StateReader, StateStore, next_state_root
from chainnode.store.tree import TreeUpdate
from chainnode.system.contracts import is_system, run_system
from chainnode.system.governance import frozen_reason, may_call, may_deploy
from chainnode.system.state import ADMIN_PREFIX, promotion_writes, read_config, read_nodes, sealer_set_writes
from contracts.engine import CallContext, CallResult, Engine

STATUS_FAILED = 1
log = logging.getLogger(__name__)


class InvalidBlock(ValueError):
    """A proposal that must not be signed; the message says which transaction and why."""


@dataclass(frozen=True)
class ExecutedBlock:
    receipts: list[Receipt]
    writes: dict[bytes, bytes | None]
    tx_hashes: list[bytes]
    tx_root: bytes
    receipt_root: bytes
    state_root: bytes
    gas_used: int
    header_version: int = 1
    tree_update: TreeUpdate | None = None  # header version 2: the state tree after this block


class Executor:
    def __init__(self, suite: CryptoSuite, engine: Engine, chain_id: str, group_id: str) -> None:
        assert engine.suite.name == suite.name, "the engine must use the chain's crypto suite"
        self.suite = suite
        self.engine = engine
        self.chain_id = chain_id
        self.group_id = group_id

    def check_transactions(
        self,
        state: StateReader,
        height: int,
        txs: list[Transaction],
        *,
        is_committed: Callable[[bytes], bool],
        is_verified: Callable[[bytes], bool] = lambda h: False,
    ) -> list[bytes]:
        """The transactions' hashes, or `InvalidBlock` if any may not be in block `height`."""
        window = read_config(state, "block_limit_window")
        count_max = read_config(state, "tx_count_limit")
        if len(txs) > count_max:
            raise InvalidBlock(f"{len(txs)} transactions exceed tx_count_limit {count_max}")
        hashes: list[bytes] = []
        seen: set[bytes] = set()
        for i, tx in enumerate(txs):
            h = tx.hash(self.suite)
            where = f"transaction {i} ({h.hex()[:16]})"
            if tx.chain_id != self.chain_id or tx.group_id != self.group_id:
                raise InvalidBlock(f"{where} is for another chain or group")
            if not height <= tx.block_limit <= height - 1 + window:
                raise InvalidBlock(f"{where} has block_limit {tx.block_limit}, outside [{height}, {height - 1 + window}]")
            if h in seen:
                raise InvalidBlock(f"{where} appears twice")
            seen.add(h)
            if is_committed(h):
                raise InvalidBlock(f"{where} is already committed")
            if not is_verified(h) and not tx.verify_signature(self.suite):
                raise InvalidBlock(f"{where} has an invalid signature")
            hashes.append(h)
        return hashes

    def execute(
        self,
        state: StateReader,
        parent_state_root: bytes,
        height: int,
        timestamp_ms: int,
        txs: list[Transaction],
        tx_hashes: list[bytes],
    ) -> ExecutedBlock:
        """Run checked transactions (see `check_transactions`) on top of `state`, in order,
        up to the first one whose gas limit is more than the block's gas left (it and the
        rest are not run). The result covers the transactions run (`len(receipts)` of them),
        its roots and hashes for those only."""
        overlay = StateOverlay(state)
        # Membership changes due at this height come into force first (chainnode/system/state.py); the
        # new sealer set is recorded by its hash, so proofs of its blocks can name it.
        promoted = promotion_writes(state, height)
        for key, value in promoted.items():
            if value is None:
                overlay.delete(key)
            else:
                overlay.set(key, value)
        if promoted:
            for key, value in sealer_set_writes(self.suite, read_nodes(overlay)).items():
                overlay.set(key, value)
        gas_cap = read_config(state, "tx_gas_limit")
        gas_left = read_config(state, "block_gas_limit")
        receipts = []
        encoded = []
        for tx, tx_hash in zip(txs, tx_hashes):
            gas_limit = min(tx.gas_limit, gas_cap)
            if gas_limit > gas_left:  # never the first: governance keeps tx_gas_limit <= block_gas_limit
                tx_hashes = tx_hashes[:len(receipts)]
                break
            before = overlay.snapshot()
            try:
                receipt = receipt_of(tx_hash, self._run(overlay, tx, tx_hash, height, timestamp_ms, gas_limit))
                data = receipt.encode()
            except MemoryError:
                raise
            except Exception:
                # A bug (in the engine, a system contract or the receipt type), not the
                # sender's fault; but no transaction may crash the node or stall the chain.
                # Its writes are undone and it fails, the same way on every node: the
                # exception depends only on the state and the transaction.
                log.error("bug: transaction %s raised out of execution; it fails with InternalError",
                          tx_hash.hex(), exc_info=True)
                overlay.revert(before)
                receipt = Receipt(tx_hash=tx_hash, status=STATUS_FAILED, gas_used=gas_limit,
                                  error_type="InternalError",
                                  error_message="the node could not execute this transaction (a bug; see the node log)")
                data = receipt.encode()
            assert receipt.gas_used <= gas_limit, f"transaction {tx_hash.hex()} used {receipt.gas_used} gas of its {gas_limit}"
            gas_left -= receipt.gas_used
            receipts.append(receipt)
            encoded.append(data)
        writes = overlay.writes()
        h = self.suite.hash
        # The rules of the parent's state decide the header: a vote that raises
        # compatibility_version in block h changes the header from block h + 1 on.
        version = header_version(read_config(state, "compatibility_version"))
        tree_update = None
        if version >= 2:
            assert isinstance(state, StateStore), "a block with a state tree executes on the committed state"
            tree_update = state.tree_update(height, writes)
            state_root = tree_update.root
        else:
            state_root = next_state_root(self.suite, parent_state_root or ZERO_HASH, writes)
        return ExecutedBlock(
            receipts=receipts,
            writes=writes,
            tx_hashes=tx_hashes,
            tx_root=merkle_root(tx_hashes, h),
            receipt_root=merkle_root(encoded, h),
            state_root=state_root,
            gas_used=sum(r.gas_used for r in receipts),
            header_version=version,
            tree_update=tree_update,
        )

    def _run(self, overlay: StateOverlay, tx: Transaction, tx_hash: bytes, height: int, timestamp_ms: int, gas_limit: int) -> CallResult:
        sender = tx.sender(self.suite)
        ctx = CallContext(sender=sender, contract=tx.to or ZERO_ADDRESS, block_height=height, block_timestamp_ms=timestamp_ms, tx_hash=tx_hash)
        refused = refusal(overlay, sender, tx.to, tx.method)
        if refused is not None:
            return CallResult(False, None, (), 0, refused[0], refused[1])
        if tx.is_deploy:
            args = tx.args
            if not (1 <= len(args) <= 2 and type(args[0]) is str and (len(args) == 1 or type(args[1]) is list)):
                return CallResult(False, None, (), 0, "BadDeploy", "deploy arguments are [source] or [source, [init args]]")
            result = self.engine.deploy(overlay, ctx, args[0], args[1] if len(args) == 2 else [], gas_limit, tx.nonce)
            if result.ok:  # the deployer administers the contract's method access lists
                overlay.set(ADMIN_PREFIX + result.contract_address, sender)
            return result
        if is_system(tx.to):
            return run_system(overlay, ctx, tx.method, tx.args, gas_limit)
        return self.engine.execute(overlay, ctx, tx.to, tx.method, tx.args, gas_limit)


def refusal(state: StateReader, sender: bytes, to: bytes | None, method: str) -> tuple[str, str] | None:
    """Why governance forbids this transaction, as (error type, message), or None.

    Checked when a transaction executes (the rules of its block) and, as a courtesy, when it
    enters the pool (the rules at the head), so a sender learns at once."""
    reason = frozen_reason(state, sender)
    if reason is not None:
        return "AccountFrozen", f"account {sender.hex()} is frozen{': ' + reason if reason else ''}; its transactions are refused until the committee unfreezes it"
    if not to:
        if not may_deploy(state, sender):
            return "PermissionDenied", f"account {sender.hex()} may not deploy contracts; ask the committee to propose grant_deploy for it"
        return None
    reason = frozen_reason(state, to)
    if reason is not None:
        return "ContractFrozen", f"contract {to.hex()} is frozen{': ' + reason if reason else ''}"
    if not may_call(state, sender, to, method):
        return "PermissionDenied", f"account {sender.hex()} may not call {method} of contract {to.hex()} (method access list)"
    return None


def receipt_of(tx_hash: bytes, result: CallResult) -> Receipt:
    """The receipt of a transaction whose call ended with `result`."""
    return Receipt(
        tx_hash=tx_hash,
        status=0 if result.ok else STATUS_FAILED,
        gas_used=result.gas_used,
        output=result.value if result.ok else None,
        contract_address=(result.contract_address or b"") if result.ok else b"",
        events=[Event(e.address, e.name, dict(e.fields)) for e in result.events] if result.ok else [],
        error_type=result.error_type or "",
        error_message=(result.error_message or "")[:1024],
    )

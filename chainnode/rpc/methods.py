"""The node's JSON-RPC methods, with FISCO BCOS 3.x names and positional parameters
(group id first, then node name, which may be empty). docs/rpc.md has an example of each.
"""

from __future__ import annotations

import platform
from typing import Any, Callable, Protocol

import trio

from chainnode.blocksync.syncer import BlockSyncer
from chainnode.crypto import ADDRESS_BYTES, HASH_BYTES, ZERO_ADDRESS
from chainnode.execution.chain import Chain
from chainnode.network.handshake import HELLO_VERSION
from chainnode.protocol.codec import DecodeError, expect_list, expect_value, pack, unpack
from chainnode.protocol.hexstr import HexError, parse_hex, to_hex
from chainnode.protocol.jsonvalue import from_json
from chainnode.protocol.stateproof import contract_state_key, system_state_key
from chainnode.protocol.types import ZERO_HASH
from chainnode.protocol.versions import SOFTWARE_VERSION, format_version
from chainnode.rpc.headview import CallLimits, CallRunner, HeadView
from chainnode.rpc.jsonrpc import NOT_FOUND, TX_REJECTED, Dispatcher, Params, RpcError, invalid_params
from chainnode.rpc.jsonview import certificate_json, header_json, receipt_json, tx_json, value_json
from chainnode.store.ledger import StateNotKept, block_not_kept_message, header_not_kept_message
from chainnode.store.leveldb import FORMAT
from chainnode.store.state import STATE_KEY_BYTES_MAX
from chainnode.system import governance as gov
from chainnode.system.contracts import is_system, run_system
from chainnode.system.state import CONFIG_SPEC, read_config, read_nodes, read_pending_nodes, read_sealer_set
from chainnode.txpool.pool import Rejected, TxPool
from contracts.engine import CallContext, code_key

HEIGHT_MAX = 2**63 - 1
METHOD_NAME_CHARS_MAX = 256
# `call` arguments: bounded like a transaction's (the request body limit bounds them too,
# but a hex form is decoded, so it gets its own explicit bound).
CALL_ARGS_BYTES_MAX = 1 << 20
# FISCO BCOS node types -> our roles in sys/nodes.
NODE_TYPES = {"consensus_sealer": "sealer", "consensus_observer": "observer"}
PROPOSALS_PAGE_MAX = 100
HEAD_READERS_MAX = 4  # threads reading governance and config state for RPC at once
TX_PENDING = -32003  # sendTransaction's wait for the receipt ran out; the transaction is still pending


class NodeView(Protocol):
    """What the RPC methods need from the node."""

    name: str
    group_id: str
    chain: Chain
    pool: TxPool
    syncer: BlockSyncer | None
    commit_listeners: list[Callable[[int], None]]  # sendTransaction's waitForReceipt
    receipt_wait_ms_max: int
    peer_id: str

    def advertised_status(self) -> list[dict]: ...

    def peer_summaries(self) -> list[dict]: ...

    def consensus_status(self) -> dict | None: ...

    def snapshot_status(self) -> dict | None: ...

    async def submit_transaction(self, raw: bytes) -> tuple[bytes, str]: ...

    async def on_chain(self, fn: Callable[..., Any], *args: Any) -> Any: ...


METHODS = (
    "sendTransaction", "getTransactionReceipt", "getTransaction", "call", "getCode",
    "getBlockNumber", "getBlockByNumber", "getBlockByHash", "getBlockHashByNumber",
    "getSealerList", "getObserverList", "getNodeListByType", "getPbftView", "getConsensusStatus",
    "getSystemConfigByKey", "getSyncStatus", "getPeers", "getPendingTxSize", "getTotalTransactionCount",
    "getGroupList", "getGroupInfo", "getClientVersion",
    "getProposal", "getProposals", "getCommittee", "getAccountStatus", "getMethodAcl",
    "getRevokedCertificates", "resolveName", "getNames", "getPendingMembership",
    "getStateProof",
)


class ChainRpc:
    def __init__(self, node: NodeView, calls: CallLimits | None = None) -> None:
        self.node = node
        # Reads of the head (`call`, config, governance) never take a turn on the chain's
        # worker thread (node.on_chain), where they would queue in front of blocks: they
        # read a HeadView (a LevelDB snapshot: whole blocks only) on threads of their own.
        # `call` runs contract code on CallRunner's engines, bounded in gas, time and number.
        self.calls = CallRunner(node.chain.suite, calls)
        self._head_readers = trio.CapacityLimiter(HEAD_READERS_MAX)

    def register(self, dispatcher: Dispatcher) -> None:
        for name in METHODS:
            dispatcher.register(name, getattr(self, name))

    def _params(self, params: list, names: list[str], required: int) -> Params:
        p = Params(params, ["group", "node"] + names, required + 2)
        group = p.str(0, max_length=64)
        if group != self.node.group_id:
            raise invalid_params(f"group {group!r} is not served here; this node serves group {self.node.group_id!r}")
        node = p.str(1, max_length=64)
        if node and node != self.node.name:
            raise invalid_params(f"node {node!r} is not this node ({self.node.name!r}); pass \"\" for any node")
        return p

    @property
    def _ledger(self):
        return self.node.chain.ledger

    async def sendTransaction(self, params: list) -> Any:
        """The answer means the transaction is on this node's disk (docs/rpc.md): `status`
        says whether it is new here ("added"), was already pending ("pending") or is already
        committed ("committed"). With options.waitForReceipt, it also waits (bounded) for
        the receipt; running out of time is error TX_PENDING, never a loss."""
        p = self._params(params, ["data", "requireProof", "options"], 1)
        raw = p.hex(2)  # bounded by the request body limit; the pool names an oversized one
        require_proof = p.bool(3, default=False)
        options = params[4] if len(params) > 4 else {}
        if not isinstance(options, dict) or not set(options) <= {"waitForReceipt", "timeoutMs"}:
            raise invalid_params("'options' must be an object with only waitForReceipt (true or false) and timeoutMs")
        wait = options.get("waitForReceipt", False)
        if type(wait) is not bool:
            raise invalid_params("'options.waitForReceipt' must be true or false")
        try:
            tx_hash, status = await self.node.submit_transaction(raw)
        except Rejected as exc:
            raise RpcError(TX_REJECTED, f"transaction rejected ({exc.code}): {exc.message}", {"reason": exc.code}) from None
        out: dict[str, Any] = {"transactionHash": to_hex(tx_hash), "status": status}
        if not wait:
            return out
        wait_ms_max = self.node.receipt_wait_ms_max
        timeout_ms = options.get("timeoutMs", wait_ms_max)
        if type(timeout_ms) is not int or timeout_ms < 0:
            raise invalid_params("'options.timeoutMs' must be a non-negative integer (milliseconds)")
        timeout_ms = min(timeout_ms, wait_ms_max)  # the node's limit (rpc_receipt_wait_ms_max) caps it
        # Woken by each commit (listeners run on the event loop after the block is durable);
        # the check and the registration have no await between them, so no commit is missed.
        with trio.move_on_after(timeout_ms / 1000):
            while self._ledger.get_transaction(tx_hash) is None:
                if self.node.pool.get(tx_hash) is None:
                    # Neither committed nor pending: its block_limit passed (or it became
                    # invalid) before any block took it.
                    raise RpcError(TX_REJECTED, f"transaction {to_hex(tx_hash)} expired before it was committed: its block_limit passed; rebuild it with a later block_limit and send it again", {"reason": "block_limit_expired", "transactionHash": to_hex(tx_hash)})
                committed = trio.Event()
                listener = lambda height: committed.set()  # noqa: E731
                self.node.commit_listeners.append(listener)
                try:
                    await committed.wait()
                finally:
                    self.node.commit_listeners.remove(listener)
        receipt = await self.getTransactionReceipt([params[0], params[1], to_hex(tx_hash), require_proof])
        if receipt is None:
            raise RpcError(
                TX_PENDING,
                f"no receipt for {to_hex(tx_hash)} within {timeout_ms} ms; it is still pending and durable on this node: wait with getTransactionReceipt, or send the same bytes again",
                {"transactionHash": to_hex(tx_hash), "status": "pending", "timeoutMs": timeout_ms},
            )
        return out | {"receipt": receipt}

    async def getTransactionReceipt(self, params: list) -> Any:
        """null for a transaction this node does not know, or whose block's body it has
        pruned (`[storage] block_history_blocks`; docs/rpc.md)."""
        p = self._params(params, ["txHash", "requireProof"], 1)
        tx_hash = p.hex(2, length=32)
        require_proof = p.bool(3, default=False)
        found = self._ledger.get_transaction(tx_hash)
        receipt = None if found is None else self._ledger.get_receipt(tx_hash)
        if receipt is None:  # (also when a commit prunes it between the two reads)
            return None
        _, loc = found
        out = receipt_json(receipt, height=loc.height, index=loc.index)
        if require_proof:
            proven = self._ledger.receipt_proof(tx_hash)
            if proven is None:
                return None
            out["receiptProof"] = self._proof_json(*proven)
        return out

    async def getTransaction(self, params: list) -> Any:
        """null for a transaction this node neither holds nor has pending: unknown, or in a
        block whose body it has pruned (docs/rpc.md)."""
        p = self._params(params, ["txHash", "requireProof"], 1)
        tx_hash = p.hex(2, length=32)
        require_proof = p.bool(3, default=False)
        found = self._ledger.get_transaction(tx_hash)
        if found is None:
            pooled = self.node.pool.get(tx_hash)
            return None if pooled is None else tx_json(pooled.tx, self.node.chain.suite) | {"pending": True}
        tx, loc = found
        out = tx_json(tx, self.node.chain.suite, height=loc.height, index=loc.index)
        if require_proof:
            proven = self._ledger.transaction_proof(tx_hash)
            if proven is None:  # pruned since the read above
                return None
            out["txProof"] = self._proof_json(*proven)
        return out

    def _proof_json(self, proof, height: int) -> dict:
        header = self._ledger.get_header(height)
        cert = self._ledger.get_certificate(height)
        return {
            "proof": to_hex(proof.encode()),
            "header": header_json(header, self.node.chain.suite),
            "certificate": certificate_json(cert) if cert else None,
        }

    async def getStateProof(self, params: list) -> Any:
        """A key's value (or absence) in the state after a block, with a proof against that
        block's certified header (docs/rpc.md). `address` is a contract's address (`key` is
        then its storage key, a JSON value with bytes as "0x..."), "system" (`key` names
        system state: "nodes", "committee", "config/<name>", ...) or "raw" (`key` is the hex
        of a whole state key). Without `blockNumber`: the head."""
        p = self._params(params, ["address", "key", "blockNumber"], 2)
        target = p.str(2, max_length=2 + 2 * ADDRESS_BYTES)
        height = p.int(4, default=self._ledger.head_height, hi=HEIGHT_MAX)
        try:
            if target == "system":
                state_key = system_state_key(p.str(3, max_length=STATE_KEY_BYTES_MAX))
            elif target == "raw":
                state_key = p.hex(3, max_length=STATE_KEY_BYTES_MAX)
            else:
                address = p.hex(2, length=ADDRESS_BYTES)
                storage_key = from_json(params[3])
                expect_value(storage_key, "'key'")
                state_key = contract_state_key(address, storage_key)
        except (HexError, DecodeError, ValueError) as exc:
            raise invalid_params(f"{exc}; 'address' is a contract address, \"system\" or \"raw\" (docs/rpc.md, getStateProof)") from None
        if not 0 < len(state_key) <= STATE_KEY_BYTES_MAX:
            raise invalid_params(f"state keys are 1..{STATE_KEY_BYTES_MAX} bytes")
        ledger = self._ledger
        try:
            proof = await trio.to_thread.run_sync(ledger.state_proof, state_key, height, limiter=self._head_readers)
        except StateNotKept as exc:
            raise RpcError(NOT_FOUND, str(exc), {"oldestStateBlock": ledger.oldest_state_height()}) from None
        header = ledger.get_header(height)
        cert = ledger.get_certificate(height)
        return {
            "blockNumber": height,
            "stateKey": to_hex(state_key),
            "value": None if proof.value is None else to_hex(proof.value),
            "proof": to_hex(proof.encode()),
            "header": header_json(header, self.node.chain.suite),
            "certificate": certificate_json(cert) if cert else None,
        }

    async def getBlockNumber(self, params: list) -> Any:
        self._params(params, [], 0)
        return self._ledger.head_height

    async def getBlockByNumber(self, params: list) -> Any:
        p = self._params(params, ["blockNumber", "onlyHeader", "onlyTxHash"], 1)
        height = p.int(2, hi=HEIGHT_MAX)
        only_header = p.bool(3, default=False)
        only_tx_hash = p.bool(4, default=False)
        return self._block_json(height, self._header(height), only_header, only_tx_hash)

    def _header(self, height: int):
        """Block `height`'s header, or the RPC error that says why it is not here."""
        ledger = self._ledger
        header = ledger.get_header(height)
        if header is not None:
            return header
        if 0 < height <= ledger.head_height:  # this node started from a snapshot above it
            oldest = ledger.oldest_header_height()
            raise RpcError(NOT_FOUND, header_not_kept_message(height, oldest), {"oldestHeader": oldest})
        raise RpcError(NOT_FOUND, f"block {height} not found; the chain is at height {ledger.head_height}")

    async def getBlockByHash(self, params: list) -> Any:
        p = self._params(params, ["blockHash", "onlyHeader", "onlyTxHash"], 1)
        block_hash = p.hex(2, length=32)
        only_header = p.bool(3, default=False)
        only_tx_hash = p.bool(4, default=False)
        ledger = self._ledger
        height = ledger.get_height_by_hash(block_hash)
        header = None if height is None else ledger.get_header(height)
        if header is None:
            raise RpcError(NOT_FOUND, f"no block with hash {to_hex(block_hash)}; the chain is at height {ledger.head_height}")
        return self._block_json(height, header, only_header, only_tx_hash)

    def _block_json(self, height: int, header, only_header: bool, only_tx_hash: bool) -> dict:
        ledger = self._ledger
        suite = self.node.chain.suite
        out = header_json(header, suite)
        cert = ledger.get_certificate(height)
        out["certificate"] = certificate_json(cert) if cert else None
        if not only_header:
            hashes = ledger.get_block_tx_hashes(height)
            found = [] if hashes is None or only_tx_hash else [ledger.get_transaction(h) for h in hashes]
            if hashes is None or None in found:  # pruned, or before the snapshot this node started from
                oldest = ledger.oldest_block_height()
                raise RpcError(NOT_FOUND, block_not_kept_message(height, oldest), {"oldestBlock": oldest})
            if only_tx_hash:
                out["transactions"] = [to_hex(h) for h in hashes]
            else:
                out["transactions"] = [tx_json(tx, suite, height=height, index=i) for i, (tx, _) in enumerate(found)]
        return out

    async def getBlockHashByNumber(self, params: list) -> Any:
        p = self._params(params, ["blockNumber"], 1)
        height = p.int(2, hi=HEIGHT_MAX)
        if height > self._ledger.head_height:
            return None
        return to_hex(self._header(height).hash(self.node.chain.suite))

    async def getSealerList(self, params: list) -> Any:
        """The sealers of the next block; with a block number, those that certified it."""
        p = self._params(params, ["blockNumber"], 0)
        suite = self.node.chain.suite
        if len(params) <= 2 or params[2] is None:
            sealers = [(s.consensus_pub, s.weight, s.peer_id) for s in self.node.chain.sealers()]
        else:
            height = p.int(2, hi=HEIGHT_MAX)
            ledger = self._ledger
            found = read_sealer_set(ledger.state, self._header(height).sealer_set_hash)
            if found is None:
                raise RpcError(NOT_FOUND, f"the sealer set of block {height} is not recorded (a chain from before sets were kept)")
            peer_ids = {n.consensus_pub: n.peer_id for n in read_nodes(ledger.state)}
            sealers = [(pub, weight, peer_ids.get(pub, "")) for pub, weight in zip(*found)]
        return [
            {"index": i, "nodeId": peer_id, "publicKey": to_hex(pub), "address": to_hex(suite.address(pub)), "weight": weight}
            for i, (pub, weight, peer_id) in enumerate(sealers)
        ]

    async def getSyncStatus(self, params: list) -> Any:
        self._params(params, [], 0)
        ledger = self._ledger
        syncer = self.node.syncer
        highest = max(ledger.head_height, syncer.target_height if syncer else 0)
        return {
            "blockNumber": ledger.head_height,
            "latestHash": to_hex(ledger.head_hash),
            "genesisHash": to_hex(ledger.genesis_hash or b""),
            "knownHighestNumber": highest,
            "isSyncing": highest > ledger.head_height,
            "peers": self.node.peer_summaries(),
            "snapshot": self.node.snapshot_status(),
            # What this node can still serve: block bodies and past states (docs/operations.md, "Pruning").
            "oldestBlock": ledger.oldest_block_height(),
            "oldestStateBlock": ledger.oldest_state_height(),
        }

    async def getPendingTxSize(self, params: list) -> Any:
        self._params(params, [], 0)
        return len(self.node.pool)

    async def getGroupInfo(self, params: list) -> Any:
        """What a client needs to build transactions: chain and group ids, suite, window."""
        self._params(params, [], 0)
        chain = self.node.chain
        ledger = chain.ledger
        return {
            "chainId": chain.executor.chain_id,
            "groupId": chain.executor.group_id,
            "suite": chain.suite.name,
            "genesisHash": to_hex(ledger.genesis_hash or b""),
            "blockNumber": ledger.head_height,
            "blockLimitWindow": read_config(ledger.state, "block_limit_window"),
            "nodeName": self.node.name,
        }

    async def getTotalTransactionCount(self, params: list) -> Any:
        self._params(params, [], 0)
        ledger = self._ledger
        return {"blockNumber": ledger.head_height, "transactionCount": ledger.total_tx_count}

    # ---- contracts ------------------------------------------------------------------------

    async def call(self, params: list) -> Any:
        """Run a contract method read-only on the head state.

        `args` is a JSON array of JSON values (no floats), or, for arguments JSON cannot
        express exactly (bytes), a hex string: the canonical msgpack encoding of the
        argument list. A "0x..." string inside the array stays a string.
        """
        p = self._params(params, ["to", "method", "args", "from"], 3)
        to = p.hex(2, length=ADDRESS_BYTES)
        method = p.str(3, max_length=METHOD_NAME_CHARS_MAX)
        args = _call_args(params[4])
        sender = p.hex(5, length=ADDRESS_BYTES) if len(params) > 5 and params[5] not in ("", None) else ZERO_ADDRESS
        return await self.calls.run(self._query, to, method, args, sender)

    def _query(self, engine, gas_max: int, to: bytes, method: str, args: list, sender: bytes) -> tuple[dict, int]:
        # On a call thread, beside block execution: the view is one head, whatever commits.
        with HeadView(self._ledger) as head:
            ctx = CallContext(sender=sender, contract=to, block_height=head.height, block_timestamp_ms=head.header.timestamp_ms, tx_hash=ZERO_HASH)
            # Bounded like a transaction, and by what the node grants free calls (CallRunner).
            gas_limit = min(read_config(head.state, "tx_gas_limit"), gas_max)
            if is_system(to):
                result = run_system(head.state, ctx, method, args, gas_limit, readonly=True)
            else:
                result = engine.query(head.state, ctx, to, method, args, gas_limit)
            output = result.value if result.ok else None
            answer = {
                "output": value_json(output),
                "raw": to_hex(pack(output)),
                "status": 0 if result.ok else 1,
                "errorType": result.error_type or "",
                "errorMessage": (result.error_message or "")[:1024],
                "gasUsed": result.gas_used,
                "blockNumber": head.height,
            }
            return answer, result.gas_used

    async def getCode(self, params: list) -> Any:
        p = self._params(params, ["address"], 1)
        address = p.hex(2, length=ADDRESS_BYTES)
        source = self._ledger.state.get(code_key(address))
        return None if source is None else source.decode("utf-8", "surrogatepass")

    # ---- membership and consensus -----------------------------------------------------------

    def _node_list(self, role: str) -> list[dict]:
        suite = self.node.chain.suite
        nodes = [n for n in read_nodes(self._ledger.state) if n.role == role]
        return [
            {"index": i, "nodeId": n.peer_id, "publicKey": to_hex(n.consensus_pub), "address": to_hex(suite.address(n.consensus_pub)), "weight": n.weight}
            for i, n in enumerate(nodes)
        ]

    async def getObserverList(self, params: list) -> Any:
        self._params(params, [], 0)
        return self._node_list("observer")

    async def getNodeListByType(self, params: list) -> Any:
        p = self._params(params, ["type"], 1)
        kind = p.str(2, max_length=64)
        if kind not in NODE_TYPES:
            raise invalid_params(f"'type' must be one of {', '.join(NODE_TYPES)}; got {kind!r}")
        return self._node_list(NODE_TYPES[kind])

    async def getPbftView(self, params: list) -> Any:
        """The PBFT view; null on an observer, which takes no part in PBFT."""
        self._params(params, [], 0)
        status = self.node.consensus_status()
        return None if status is None else status["view"]

    async def getConsensusStatus(self, params: list) -> Any:
        self._params(params, [], 0)
        status = self.node.consensus_status()
        if status is None:
            return {"role": "observer", "note": "this node is an observer: it follows the chain by sync and takes no part in PBFT; ask a sealer for its consensus status"}
        return {"role": "sealer", **status}

    async def getSystemConfigByKey(self, params: list) -> Any:
        p = self._params(params, ["key"], 1)
        key = p.str(2, max_length=64)
        if key not in CONFIG_SPEC:
            raise invalid_params(f"'key' {key!r} is not a system config key; known: {', '.join(sorted(CONFIG_SPEC))}")
        value, height = await self._at_head(lambda state: read_config(state, key))
        return {"value": value, "blockNumber": height}

    async def getPeers(self, params: list) -> Any:
        """The peers this node is connected to now, with the height each last announced."""
        self._params(params, [], 0)
        return [
            {"index": s["index"], "nodeId": s["nodeId"], "role": s["role"], "blockNumber": s["blockNumber"]}
            for s in self.node.peer_summaries()
            if s["connected"]
        ]

    # ---- governance (docs/governance.md) ----------------------------------------------------
    # Read from a HeadView, like `call`: the values and the height they were read at agree,
    # a block being committed is never half seen, and no read waits for a block.

    async def _at_head(self, read: Callable[[Any], Any]) -> tuple[Any, int]:
        ledger = self._ledger

        def run() -> tuple[Any, int]:
            with HeadView(ledger) as head:
                return read(head.state), head.height

        return await trio.to_thread.run_sync(run, limiter=self._head_readers)

    async def getProposal(self, params: list) -> Any:
        p = self._params(params, ["id"], 1)
        pid = p.int(2, lo=1, hi=HEIGHT_MAX)

        def read(state) -> tuple[gov.Proposal | None, list, int]:
            return gov.read_proposal(state, pid), gov.read_committee(state), gov.next_proposal_id(state)

        (proposal, committee, next_id), height = await self._at_head(read)
        if proposal is None:
            known = f"proposals so far are 1..{next_id - 1}" if next_id > 1 else "there are no proposals yet"
            raise RpcError(NOT_FOUND, f"no proposal {pid}; {known} (getProposals lists them)")
        return _proposal_json(proposal, committee, height) | {"blockNumber": height}

    async def getProposals(self, params: list) -> Any:
        p = self._params(params, ["first", "count"], 0)
        first = p.int(2, default=1, lo=1, hi=HEIGHT_MAX)
        count = p.int(3, default=PROPOSALS_PAGE_MAX, lo=1, hi=PROPOSALS_PAGE_MAX)

        def read(state) -> tuple[list, list, int]:
            return gov.read_proposals(state, first, count), gov.read_committee(state), gov.next_proposal_id(state)

        (proposals, committee, next_id), height = await self._at_head(read)
        return {
            "blockNumber": height,
            "nextProposalId": next_id,
            "proposals": [_proposal_json(x, committee, height) for x in proposals],
        }

    async def getCommittee(self, params: list) -> Any:
        self._params(params, [], 0)
        summary, height = await self._at_head(gov.governance_summary)
        governors = [{"address": to_hex(g["address"]), "weight": g["weight"]} for g in summary["governors"]]
        return {
            "governors": governors,
            "totalWeight": sum(g["weight"] for g in governors),
            "participationPct": summary["participation_pct"],
            "winPct": summary["win_pct"],
            "nextProposalId": summary["next_proposal_id"],
            "blockNumber": height,
        }

    async def getAccountStatus(self, params: list) -> Any:
        p = self._params(params, ["address"], 1)
        address = p.hex(2, length=ADDRESS_BYTES)

        def read(state) -> dict:
            reason = gov.frozen_reason(state, address)
            admin = gov.contract_admin(state, address)
            return {
                "address": to_hex(address),
                "frozen": reason is not None,
                "frozenReason": reason or "",
                "mayDeploy": gov.may_deploy(state, address),
                "deployOpen": gov.read_deploy_open(state),
                "contractAdmin": to_hex(admin) if admin else None,  # set for a deployed contract
            }

        out, height = await self._at_head(read)
        return out | {"blockNumber": height}

    async def getMethodAcl(self, params: list) -> Any:
        p = self._params(params, ["contract", "method"], 2)
        contract = p.hex(2, length=ADDRESS_BYTES)
        method = p.str(3, max_length=gov.METHOD_CHARS_MAX)
        if not method:
            raise invalid_params("'method' must name a contract method")

        def read(state) -> tuple:
            return gov.read_method_acl(state, contract, method), gov.contract_admin(state, contract)

        (acl, admin), height = await self._at_head(read)
        mode, addresses = acl if acl is not None else ("open", [])
        return {
            "contract": to_hex(contract), "method": method, "mode": mode, "addresses": [to_hex(a) for a in addresses],
            "admin": to_hex(admin) if admin else None, "blockNumber": height,
        }

    async def getRevokedCertificates(self, params: list) -> Any:
        self._params(params, [], 0)
        ids, height = await self._at_head(gov.read_revoked)
        # A revocation id is the issuer's key hash, then the serial (chainnode.security.certs).
        revoked = [{"id": to_hex(i), "issuerKeyHash": to_hex(i[:HASH_BYTES]), "serial": i[HASH_BYTES:].hex()} for i in sorted(ids)]
        return {"revoked": revoked, "blockNumber": height}

    async def resolveName(self, params: list) -> Any:
        p = self._params(params, ["name"], 1)
        name = p.str(2, max_length=gov.NAME_CHARS_MAX)
        if not name or not all(c.isascii() and (c.isalnum() or c in "_-.") for c in name):
            raise invalid_params(f"'name' must be 1..{gov.NAME_CHARS_MAX} ASCII letters, digits, '_', '-' or '.'; got {name!r}")
        address, height = await self._at_head(lambda state: gov.resolve_name(state, name))
        return {"name": name, "address": to_hex(address) if address else None, "blockNumber": height}

    async def getNames(self, params: list) -> Any:
        self._params(params, [], 0)
        names, height = await self._at_head(gov.read_names)
        return {"names": {n: to_hex(a) for n, a in names.items()}, "blockNumber": height}

    async def getPendingMembership(self, params: list) -> Any:
        """Membership changes made by governance that are not in force yet: each takes effect
        at its fromHeight (two blocks after the block that made it)."""
        self._params(params, [], 0)
        pending, height = await self._at_head(read_pending_nodes)
        suite = self.node.chain.suite
        return {
            "blockNumber": height,
            "pending": [
                {
                    "fromHeight": h,
                    "nodes": [
                        {"nodeId": n.peer_id, "publicKey": to_hex(n.consensus_pub), "address": to_hex(suite.address(n.consensus_pub)), "role": n.role, "weight": n.weight}
                        for n in nodes
                    ],
                }
                for h, nodes in pending
            ],
        }

    # ---- groups and the node ------------------------------------------------------------------

    async def getGroupList(self, params: list) -> Any:
        # FISCO BCOS passes no params here; SDKs that always put the group and node first are
        # served too (the group is not checked: the question is which groups exist).
        p = Params(params, ["group", "node"], 0)
        for i in range(len(params)):
            p.str(i, max_length=64)
        return [self.node.group_id]

    async def getClientVersion(self, params: list) -> Any:
        """The software (and the chain rules it runs), as FISCO BCOS's getClientVersion."""
        self._params(params, [], 0)
        state = self._ledger.state
        return {
            "version": SOFTWARE_VERSION,
            "compatibilityVersion": format_version(read_config(state, "compatibility_version")),
            "protocolVersion": HELLO_VERSION,
            "dataFormat": FORMAT.decode(),
            "nodeId": self.node.peer_id,
            "advertised": self.node.advertised_status(),
            "python": platform.python_version(),
            "suite": self.node.chain.suite.name,
            "groupId": self.node.group_id,
            "nodeName": self.node.name,
        }


def _proposal_json(p: "gov.Proposal", committee: list, height: int) -> dict:
    d = p.describe(committee, height)
    return {
        "id": d["id"], "kind": d["kind"], "params": value_json(d["params"]), "paramsRaw": to_hex(pack(d["params"])),
        "proposer": to_hex(d["proposer"]), "status": d["status"], "result": d["result"],
        "createdHeight": d["created_height"], "expiryHeight": d["expiry_height"], "decidedHeight": d["decided_height"],
        "participationPct": d["participation_pct"], "winPct": d["win_pct"],
        "totalWeight": d["total_weight"], "votedWeight": d["voted_weight"], "yesWeight": d["yes_weight"],
        "votes": [{"governor": to_hex(v["governor"]), "yes": v["yes"]} for v in d["votes"]],
    }


def _call_args(raw: Any) -> list:
    """`call`'s args: a JSON array of user values, or hex of the canonical encoding of the list."""
    try:
        if isinstance(raw, str):
            try:
                data = parse_hex(raw, max_bytes=CALL_ARGS_BYTES_MAX, what="'args'")
            except HexError as exc:
                raise invalid_params(f"'args' must be a JSON array, or a hex string of the msgpack-encoded argument list ({exc})") from None
            try:
                decoded = unpack(data, max_bytes=CALL_ARGS_BYTES_MAX)
            except DecodeError as exc:
                raise DecodeError(f"'args' is not a canonical msgpack encoding: {exc}") from None
            args = expect_list(decoded, "'args'")
        elif isinstance(raw, list):
            args = raw
        else:
            raise invalid_params("'args' must be a JSON array, or a hex string of the msgpack-encoded argument list")
        expect_value(args, "'args'")
    except DecodeError as exc:
        raise invalid_params(f"{exc} (arguments are integers, strings, booleans, null, arrays and objects; for bytes, pass 'args' as the hex of its msgpack encoding)") from None
    return args

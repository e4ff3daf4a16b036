"""The node's JSON-RPC methods, with FISCO BCOS 3.x names and positional parameters
(group id first, then node name, which may be empty). docs/rpc.md has an example of each.
"""

from __future__ import annotations

from typing import Any, Protocol

from chainnode.chain import Chain
from chainnode.rpc.jsonrpc import NOT_FOUND, TX_REJECTED, Dispatcher, Params, RpcError, invalid_params
from chainnode.rpc.jsonview import certificate_json, header_json, hx, receipt_json, tx_json
from chainnode.sync import BlockSyncer
from chainnode.sysstate import read_config
from chainnode.txpool import Rejected, TxPool

HEIGHT_MAX = 2**63 - 1


class NodeView(Protocol):
    """What the RPC methods need from the node."""

    name: str
    group_id: str
    chain: Chain
    pool: TxPool
    syncer: BlockSyncer | None

    def peer_summaries(self) -> list[dict]: ...

    async def submit_transaction(self, raw: bytes) -> bytes: ...


class ChainRpc:
    def __init__(self, node: NodeView) -> None:
        self.node = node

    def register(self, dispatcher: Dispatcher) -> None:
        for name in ("sendTransaction", "getTransactionReceipt", "getTransaction", "getBlockNumber", "getBlockByNumber", "getBlockHashByNumber", "getSealerList", "getSyncStatus", "getPendingTxSize", "getTotalTransactionCount", "getGroupInfo"):
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
        p = self._params(params, ["data", "requireProof"], 1)
        raw = p.hex(2)  # bounded by the request body limit; the pool names an oversized one
        try:
            tx_hash = await self.node.submit_transaction(raw)
        except Rejected as exc:
            raise RpcError(TX_REJECTED, f"transaction rejected ({exc.code}): {exc.message}", {"reason": exc.code}) from None
        return {"transactionHash": hx(tx_hash)}

    async def getTransactionReceipt(self, params: list) -> Any:
        p = self._params(params, ["txHash", "requireProof"], 1)
        tx_hash = p.hex(2, length=32)
        require_proof = p.bool(3, default=False)
        found = self._ledger.get_transaction(tx_hash)
        if found is None:
            return None
        _, loc = found
        out = receipt_json(self._ledger.get_receipt(tx_hash), height=loc.height, index=loc.index)
        if require_proof:
            proof, height = self._ledger.receipt_proof(tx_hash)
            out["receiptProof"] = self._proof_json(proof, height)
        return out

    async def getTransaction(self, params: list) -> Any:
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
            proof, height = self._ledger.transaction_proof(tx_hash)
            out["txProof"] = self._proof_json(proof, height)
        return out

    def _proof_json(self, proof, height: int) -> dict:
        header = self._ledger.get_header(height)
        cert = self._ledger.get_certificate(height)
        return {
            "proof": hx(proof.encode()),
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
        ledger = self._ledger
        header = ledger.get_header(height)
        if header is None:
            raise RpcError(NOT_FOUND, f"block {height} not found; the chain is at height {ledger.head_height}")
        suite = self.node.chain.suite
        out = header_json(header, suite)
        cert = ledger.get_certificate(height)
        out["certificate"] = certificate_json(cert) if cert else None
        if not only_header:
            hashes = ledger.get_block_tx_hashes(height)
            if only_tx_hash:
                out["transactions"] = [hx(h) for h in hashes]
            else:
                out["transactions"] = [tx_json(ledger.get_transaction(h)[0], suite, height=height, index=i) for i, h in enumerate(hashes)]
        return out

    async def getBlockHashByNumber(self, params: list) -> Any:
        p = self._params(params, ["blockNumber"], 1)
        header = self._ledger.get_header(p.int(2, hi=HEIGHT_MAX))
        return None if header is None else hx(header.hash(self.node.chain.suite))

    async def getSealerList(self, params: list) -> Any:
        self._params(params, [], 0)
        suite = self.node.chain.suite
        return [
            {"index": i, "nodeId": s.peer_id, "publicKey": hx(s.consensus_pub), "address": hx(suite.address(s.consensus_pub)), "weight": s.weight}
            for i, s in enumerate(self.node.chain.sealers())
        ]

    async def getSyncStatus(self, params: list) -> Any:
        self._params(params, [], 0)
        ledger = self._ledger
        syncer = self.node.syncer
        highest = max(ledger.head_height, syncer.target_height if syncer else 0)
        return {
            "blockNumber": ledger.head_height,
            "latestHash": hx(ledger.head_hash),
            "genesisHash": hx(ledger.genesis_hash or b""),
            "knownHighestNumber": highest,
            "isSyncing": highest > ledger.head_height,
            "peers": self.node.peer_summaries(),
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
            "genesisHash": hx(ledger.genesis_hash or b""),
            "blockNumber": ledger.head_height,
            "blockLimitWindow": read_config(ledger.state, "block_limit_window"),
            "nodeName": self.node.name,
        }

    async def getTotalTransactionCount(self, params: list) -> Any:
        self._params(params, [], 0)
        ledger = self._ledger
        return {"blockNumber": ledger.head_height, "transactionCount": ledger.total_tx_count}

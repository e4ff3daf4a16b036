"""JSON views of chain objects for RPC responses (and the SDK's pretty printing).

Bytes are shown as 0x-prefixed hex. User values (arguments, outputs, event fields) may hold
bytes and text alike, so their JSON view shows bytes as "0x…" hex, which a program cannot
tell from text that happens to start with "0x": every view therefore also carries `raw`,
the exact canonical encoding (hex), which the SDK decodes for exact values and proofs.
"""

from __future__ import annotations

from chainnode.crypto import CryptoSuite
from chainnode.protocol.jsonvalue import to_json
from chainnode.protocol.types import BlockHeader, CommitCertificate, Receipt, Transaction


def hx(b: bytes) -> str:
    return "0x" + b.hex()


value_json = to_json  # a plain value in JSON (bytes as 0x-hex): chainnode/protocol/jsonvalue.py


def tx_json(tx: Transaction, suite: CryptoSuite, *, height: int | None = None, index: int | None = None) -> dict:
    out = {
        "hash": hx(tx.hash(suite)),
        "version": tx.VERSION,
        "chainId": tx.chain_id,
        "groupId": tx.group_id,
        "nonce": hx(tx.nonce),
        "blockLimit": tx.block_limit,
        "to": hx(tx.to) if tx.to else "",
        "method": tx.method,
        "args": value_json(tx.args),
        "gasLimit": tx.gas_limit,
        "from": hx(tx.sender(suite)),
        "senderPublicKey": hx(tx.sender_pub),
        "signature": hx(tx.signature),
        "raw": hx(tx.encode()),
    }
    if height is not None:
        out["blockNumber"] = height
        out["transactionIndex"] = index
    return out


def header_json(header: BlockHeader, suite: CryptoSuite) -> dict:
    return {
        "hash": hx(header.hash(suite)),
        "number": header.height,
        "parentHash": hx(header.parent_hash),
        "timestamp": header.timestamp_ms,
        "sealer": header.proposer_index,
        "sealerSetHash": hx(header.sealer_set_hash),
        "txsRoot": hx(header.tx_root),
        "receiptsRoot": hx(header.receipt_root),
        "stateRoot": hx(header.state_root),
        "gasUsed": header.gas_used,
        "txCount": header.tx_count,
        "extraData": hx(header.extra),
        "raw": hx(header.encode()),
    }


def certificate_json(cert: CommitCertificate) -> dict:
    return {
        "number": cert.height,
        "blockHash": hx(cert.block_hash),
        "signatureList": [{"index": i, "signature": hx(sig)} for i, sig in cert.signatures],
        "raw": hx(cert.encode()),
    }


def receipt_json(receipt: Receipt, *, height: int | None = None, index: int | None = None) -> dict:
    out = {
        "transactionHash": hx(receipt.tx_hash),
        "status": receipt.status,
        "gasUsed": receipt.gas_used,
        "output": value_json(receipt.output),
        "contractAddress": hx(receipt.contract_address) if receipt.contract_address else "",
        "logEntries": [{"address": hx(e.address), "name": e.name, "fields": value_json(e.fields)} for e in receipt.events],
        "errorType": receipt.error_type,
        "errorMessage": receipt.error_message,
        "raw": hx(receipt.encode()),
    }
    if height is not None:
        out["blockNumber"] = height
        out["transactionIndex"] = index
    return out

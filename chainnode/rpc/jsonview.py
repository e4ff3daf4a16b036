"""JSON views of chain objects for RPC responses (and the SDK's pretty printing).

Bytes are shown as 0x-prefixed hex. User values (arguments, outputs, event fields) may hold
bytes and text alike, so their JSON view shows bytes as "0x…" hex, which a program cannot
tell from text that happens to start with "0x": every view therefore also carries `raw`,
the exact canonical encoding (hex), which the SDK decodes for exact values and proofs.
"""

from __future__ import annotations

from chainnode.crypto import CryptoSuite
from chainnode.protocol.hexstr import to_hex
from chainnode.protocol.jsonvalue import to_json
from chainnode.protocol.types import BlockHeader, CommitCertificate, Receipt, Transaction

value_json = to_json  # a plain value in JSON (bytes as 0x-hex): chainnode/protocol/jsonvalue.py


def tx_json(tx: Transaction, suite: CryptoSuite, *, height: int | None = None, index: int | None = None) -> dict:
    out = {
        "hash": to_hex(tx.hash(suite)),
        "version": tx.VERSION,
        "chainId": tx.chain_id,
        "groupId": tx.group_id,
        "nonce": to_hex(tx.nonce),
        "blockLimit": tx.block_limit,
        "to": to_hex(tx.to) if tx.to else "",
        "method": tx.method,
        "args": value_json(tx.args),
        "gasLimit": tx.gas_limit,
        "from": to_hex(tx.sender(suite)),
        "senderPublicKey": to_hex(tx.sender_pub),
        "signature": to_hex(tx.signature),
        "raw": to_hex(tx.encode()),
    }
    if height is not None:
        out["blockNumber"] = height
        out["transactionIndex"] = index
    return out


def header_json(header: BlockHeader, suite: CryptoSuite) -> dict:
    return {
        "hash": to_hex(header.hash(suite)),
        "version": header.version,
        "number": header.height,
        "parentHash": to_hex(header.parent_hash),
        "timestamp": header.timestamp_ms,
        "sealer": header.proposer_index,
        "sealerSetHash": to_hex(header.sealer_set_hash),
        "txsRoot": to_hex(header.tx_root),
        "receiptsRoot": to_hex(header.receipt_root),
        "stateRoot": to_hex(header.state_root),
        "gasUsed": header.gas_used,
        "txCount": header.tx_count,
        "extraData": to_hex(header.extra),
        "raw": to_hex(header.encode()),
    }


def certificate_json(cert: CommitCertificate) -> dict:
    return {
        "number": cert.height,
        "blockHash": to_hex(cert.block_hash),
        "signatureList": [{"index": i, "signature": to_hex(sig)} for i, sig in cert.signatures],
        "raw": to_hex(cert.encode()),
    }


def receipt_json(receipt: Receipt, *, height: int | None = None, index: int | None = None) -> dict:
    out = {
        "transactionHash": to_hex(receipt.tx_hash),
        "status": receipt.status,
        "gasUsed": receipt.gas_used,
        "output": value_json(receipt.output),
        "contractAddress": to_hex(receipt.contract_address) if receipt.contract_address else "",
        "logEntries": [{"address": to_hex(e.address), "name": e.name, "fields": value_json(e.fields)} for e in receipt.events],
        "errorType": receipt.error_type,
        "errorMessage": receipt.error_message,
        "raw": to_hex(receipt.encode()),
    }
    if height is not None:
        out["blockNumber"] = height
        out["transactionIndex"] = index
    return out

"""Offline verification of a receipt proof: what a foreign institution (a regulator, a
counterparty's auditor) does to trust one receipt without trusting the node that served it.

The chain of trust, from what you already trust to the receipt:
1. the sealer public keys (your trust anchor, obtained out of band, e.g. from the genesis
   file or the consortium's governance records);
2. the commit certificate: a quorum of those sealers signed (height, block hash);
3. the block header: its hash is the certified block hash, and it names that sealer set;
4. the receipt: a Merkle proof places its exact encoding in the header's receipt root.
"""

from __future__ import annotations

from typing import Any

from chainnode.client.errors import ProofError
from chainnode.client.receipt import ReceiptInfo
from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import DecodeError
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.protocol.merkle import MerkleProof, verify_proof
from chainnode.protocol.types import BlockHeader, CommitCertificate, InvalidCertificate, Receipt, sealer_set_hash


def _unhex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProofError(f"{what} is missing from the node's answer")
    try:
        return parse_hex(value, what=what)
    except HexError as exc:
        raise ProofError(str(exc)) from None


def verify_receipt_proof(
    receipt_response: dict, sealer_pubs: list[bytes], suite: CryptoSuite, *, tx_hash: bytes | None = None,
    sealer_weights: list[int] | None = None,
) -> ReceiptInfo:
    """Check a `getTransactionReceipt(..., requireProof=true)` answer against `sealer_pubs`.

    Returns the receipt (decoded from its exact encoding) with its block number and index;
    raises `ProofError` naming the first check that fails. `tx_hash`, when given, must be
    the receipt's transaction. `sealer_weights` (default: all 1) are the sealers' PBFT
    weights, from the same source as their keys. Needs no connection: everything checked is
    in the answer.
    """
    if not isinstance(receipt_response, dict):
        raise ProofError("no receipt: the transaction is not committed (or the answer is not an object)")
    rp = receipt_response.get("receiptProof")
    if not isinstance(rp, dict):
        raise ProofError("the answer has no receiptProof; ask with requireProof=true")
    try:
        header = BlockHeader.decode(_unhex((rp.get("header") or {}).get("raw"), "receiptProof.header.raw"))
        if rp.get("certificate") is None:
            raise ProofError(f"block {header.height} comes without a commit certificate; genesis receipts cannot be proven this way")
        cert = CommitCertificate.decode(_unhex(rp["certificate"].get("raw"), "receiptProof.certificate.raw"))
        proof = MerkleProof.decode(_unhex(rp.get("proof"), "receiptProof.proof"))
        leaf = _unhex(receipt_response.get("raw"), "receipt raw")
        receipt = Receipt.decode(leaf)
    except DecodeError as exc:
        raise ProofError(f"malformed proof: {exc}") from None
    try:
        cert.verify(suite, list(sealer_pubs), sealer_weights)
    except InvalidCertificate as exc:
        raise ProofError(f"the commit certificate of block {cert.height} does not verify against the {len(sealer_pubs)} sealers given: {exc}") from None
    if cert.height != header.height:
        raise ProofError(f"the certificate is for block {cert.height}, the header is block {header.height}")
    if cert.block_hash != header.hash(suite):
        raise ProofError(f"the header of block {header.height} does not hash to the certified block hash")
    if header.sealer_set_hash != sealer_set_hash(suite, list(sealer_pubs), sealer_weights):
        raise ProofError(f"block {header.height} was certified by a different sealer set than the one given (membership changed?)")
    if proof.suite != suite.name:
        raise ProofError(f"the Merkle proof uses suite {proof.suite!r}, the chain uses {suite.name!r}")
    if not verify_proof(header.receipt_root, leaf, proof):
        raise ProofError(f"the receipt is not in the receipt root of block {header.height}")
    if receipt_response.get("blockNumber") not in (None, header.height) or receipt_response.get("transactionIndex") not in (None, proof.index):
        raise ProofError("the answer's blockNumber/transactionIndex disagree with the proof")
    if tx_hash is not None and receipt.tx_hash != tx_hash:
        raise ProofError(f"the proven receipt is for 0x{receipt.tx_hash.hex()}, not the transaction asked for (0x{tx_hash.hex()})")
    return ReceiptInfo(receipt, header.height, proof.index)

"""Offline verification of a receipt proof: what a foreign institution (a regulator, a
counterparty's auditor) does to trust one receipt without trusting the node that served it.

The chain of trust, from what you already trust to the receipt:
1. the sealer public keys (your trust anchor, obtained out of band, e.g. from the genesis
   file or the consortium's governance records);
2. the commit certificate: a quorum of those sealers signed (height, block hash);
3. the block header: its hash is the certified block hash, and it names that sealer set;
4. the receipt: a Merkle proof places its exact encoding in the header's receipt root;
   a state value: a state proof leads from it (or from its absence) to the header's
   state root (chainnode/protocol/stateproof.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chainnode.client.errors import ProofError
from chainnode.client.receipt import ReceiptInfo
from chainnode.crypto import CryptoSuite
from chainnode.protocol.codec import DecodeError
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.protocol.merkle import MerkleProof, verify_proof
from chainnode.protocol.stateproof import ProofError as StateProofError
from chainnode.protocol.stateproof import StateProof
from chainnode.protocol.types import BlockHeader, CommitCertificate, InvalidCertificate, Receipt, sealer_set_hash


def _unhex(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise ProofError(f"{what} is missing from the node's answer")
    try:
        return parse_hex(value, what=what)
    except HexError as exc:
        raise ProofError(str(exc)) from None


def _certified_header(answer: dict, what: str, sealer_pubs: list[bytes], suite: CryptoSuite, sealer_weights: list[int] | None) -> BlockHeader:
    """The header in `answer` ("header", "certificate"), once its certificate verifies
    against the sealers given; ProofError (or DecodeError) otherwise."""
    header = BlockHeader.decode(_unhex((answer.get("header") or {}).get("raw"), f"{what}.header.raw"))
    if not isinstance(answer.get("certificate"), dict):
        raise ProofError(f"block {header.height} comes without a commit certificate; the genesis block cannot be proven this way "
                         "(its hash is the chain's identity: compare it with the genesis file's)")
    cert = CommitCertificate.decode(_unhex(answer["certificate"].get("raw"), f"{what}.certificate.raw"))
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
    return header


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
        header = _certified_header(rp, "receiptProof", sealer_pubs, suite, sealer_weights)
        proof = MerkleProof.decode(_unhex(rp.get("proof"), "receiptProof.proof"))
        leaf = _unhex(receipt_response.get("raw"), "receipt raw")
        receipt = Receipt.decode(leaf)
    except DecodeError as exc:
        raise ProofError(f"malformed proof: {exc}") from None
    if proof.suite != suite.name:
        raise ProofError(f"the Merkle proof uses suite {proof.suite!r}, the chain uses {suite.name!r}")
    if not verify_proof(header.receipt_root, leaf, proof):
        raise ProofError(f"the receipt is not in the receipt root of block {header.height}")
    if receipt_response.get("blockNumber") not in (None, header.height) or receipt_response.get("transactionIndex") not in (None, proof.index):
        raise ProofError("the answer's blockNumber/transactionIndex disagree with the proof")
    if tx_hash is not None and receipt.tx_hash != tx_hash:
        raise ProofError(f"the proven receipt is for 0x{receipt.tx_hash.hex()}, not the transaction asked for (0x{tx_hash.hex()})")
    return ReceiptInfo(receipt, header.height, proof.index)


@dataclass(frozen=True)
class ProvenState:
    """A state key's value (None: absent) after block `block_number`, proven."""

    state_key: bytes
    value: bytes | None
    block_number: int
    state_root: bytes


def verify_state_proof(
    answer: dict, state_key: bytes, sealer_pubs: list[bytes], suite: CryptoSuite, *, sealer_weights: list[int] | None = None,
) -> ProvenState:
    """Check a `getStateProof` answer for `state_key` (see `contract_state_key`,
    `system_state_key`) against `sealer_pubs`, offline; raises `ProofError` naming the first
    check that fails. The trust chain is the receipt proof's (certificate, header), then
    the state proof leads from the key's value, or its absence, to the header's state root."""
    if not isinstance(answer, dict):
        raise ProofError("the answer is not an object")
    try:
        header = _certified_header(answer, "stateProof", sealer_pubs, suite, sealer_weights)
        proof = StateProof.decode(_unhex(answer.get("proof"), "stateProof.proof"))
    except DecodeError as exc:
        raise ProofError(f"malformed proof: {exc}") from None
    if header.version < 2:
        raise ProofError(f"block {header.height} has header version {header.version}: its state root proves no single key")
    if proof.key != state_key:
        raise ProofError(f"the proof is for state key 0x{proof.key.hex()}, not the one asked for (0x{state_key.hex()})")
    try:
        proof.verify(suite, header.state_root)
    except StateProofError as exc:
        raise ProofError(f"block {header.height}: {exc}") from None
    claimed = answer.get("value")
    if claimed != (None if proof.value is None else "0x" + proof.value.hex()) or answer.get("blockNumber") not in (None, header.height):
        raise ProofError("the answer's value or blockNumber disagree with the proof")
    return ProvenState(state_key, proof.value, header.height, header.state_root)

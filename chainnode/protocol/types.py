"""The chain's canonical data types: Transaction, BlockHeader, Block, Event, Receipt,
CommitCertificate.

Each is a frozen dataclass with `to_fields()` (the fixed-order list that is encoded),
`encode()`, and a strict `decode(data)` / `from_fields(fields)` that raise `DecodeError` on
anything unexpected. The exact formats are documented in docs/protocol.md; a change to any
of them is a new version number.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from chainnode.crypto import ADDRESS_BYTES, HASH_BYTES, CryptoSuite
from chainnode.protocol.codec import (
    UINT64_MAX,
    DecodeError,
    expect_bytes,
    expect_int,
    expect_list,
    expect_str,
    expect_value,
    expect_version,
    pack,
    unpack,
)

SIGNATURE_BYTES = 64
PUBLIC_KEY_LENGTHS = (32, 65)  # ed25519, SM2 uncompressed
ZERO_HASH = bytes(HASH_BYTES)

# Hard bounds of the format itself. Operators set tighter limits in config (tx_bytes_max...).
TX_BYTES_MAX = 1 << 20
BLOCK_BYTES_MAX = 64 << 20
BLOCK_TXS_MAX = 100_000
NAME_CHARS_MAX = 64  # chain id, group id, method, event name, error type
NONCE_BYTES_MAX = 32
EXTRA_BYTES_MAX = 1024
ERROR_MESSAGE_CHARS_MAX = 1024
EVENTS_PER_RECEIPT_MAX = 1024
CERT_SIGNATURES_MAX = 1024
RECEIPT_BYTES_MAX = 1 << 20


def _decode_fields(data: bytes, what: str, max_bytes: int) -> list:
    return expect_list(unpack(data, max_bytes=max_bytes), what)


# ---- Transaction ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transaction:
    """A signed request to deploy (empty `to`) or call a contract.

    The hash covers every field except the signature, because SM2 signing is randomised:
    one request has one hash however many times it is signed.
    """

    VERSION = 1

    chain_id: str
    group_id: str
    nonce: bytes  # random, 1..32 bytes; with block_limit it stops replays
    block_limit: int  # the last height at which this transaction may be included
    to: bytes  # 20-byte contract address, or b"" to deploy
    method: str
    args: list
    gas_limit: int
    sender_pub: bytes
    signature: bytes = b""

    def unsigned_fields(self) -> list:
        return [
            self.VERSION,
            self.chain_id,
            self.group_id,
            self.nonce,
            self.block_limit,
            self.to,
            self.method,
            self.args,
            self.gas_limit,
            self.sender_pub,
        ]

    def to_fields(self) -> list:
        return self.unsigned_fields() + [self.signature]

    def signing_bytes(self) -> bytes:
        return pack(self.unsigned_fields())

    def hash(self, suite: CryptoSuite) -> bytes:
        return suite.hash(self.signing_bytes())

    def sender(self, suite: CryptoSuite) -> bytes:
        return suite.address(self.sender_pub)

    def signed(self, suite: CryptoSuite, priv: bytes) -> "Transaction":
        """A copy signed with `priv` (whose public key must be `sender_pub`)."""
        sig = suite.sign(priv, self.hash(suite))
        return replace(self, signature=sig)

    def verify_signature(self, suite: CryptoSuite) -> bool:
        return suite.verify(self.sender_pub, self.hash(suite), self.signature)

    def encode(self) -> bytes:
        return pack(self.to_fields())

    @property
    def is_deploy(self) -> bool:
        return self.to == b""

    @classmethod
    def from_fields(cls, f: Any) -> "Transaction":
        f = expect_list(f, "transaction")
        expect_version(f, "transaction", cls.VERSION)
        expect_list(f, "transaction", length=11)
        return cls(
            chain_id=expect_str(f[1], "transaction.chain_id", max_length=NAME_CHARS_MAX),
            group_id=expect_str(f[2], "transaction.group_id", max_length=NAME_CHARS_MAX),
            nonce=_nonempty(expect_bytes(f[3], "transaction.nonce", max_length=NONCE_BYTES_MAX), "transaction.nonce"),
            block_limit=expect_int(f[4], "transaction.block_limit"),
            to=expect_bytes(f[5], "transaction.to", lengths=(0, ADDRESS_BYTES)),
            method=expect_str(f[6], "transaction.method", max_length=NAME_CHARS_MAX),
            args=expect_value(expect_list(f[7], "transaction.args"), "transaction.args"),
            gas_limit=expect_int(f[8], "transaction.gas_limit"),
            sender_pub=expect_bytes(f[9], "transaction.sender_pub", lengths=PUBLIC_KEY_LENGTHS),
            signature=expect_bytes(f[10], "transaction.signature", length=SIGNATURE_BYTES),
        )

    @classmethod
    def decode(cls, data: bytes, max_bytes: int = TX_BYTES_MAX) -> "Transaction":
        return cls.from_fields(unpack(data, max_bytes=max_bytes))


def _nonempty(b: bytes, what: str) -> bytes:
    if not b:
        raise DecodeError(f"{what}: must not be empty")
    return b


# ---- Block header and block -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """What sealers sign (through its hash) and what light clients check proofs against.

    Version 2 (chains whose compatibility_version is 0.3.0 or later) makes `state_root` the
    root of the state tree (chainnode/protocol/stateproof.py), against which any key can
    be proven; version 1 keeps the chained digest of each block's writes
    (chainnode/store/state.py), so older blocks keep their hashes and certificates."""

    VERSIONS = (1, 2)

    parent_hash: bytes
    height: int
    timestamp_ms: int
    proposer_index: int
    sealer_set_hash: bytes  # hash of the sealer list that certifies this block
    tx_root: bytes
    receipt_root: bytes
    state_root: bytes
    gas_used: int
    tx_count: int
    extra: bytes = b""
    version: int = 2

    def to_fields(self) -> list:
        return [
            self.version,
            self.parent_hash,
            self.height,
            self.timestamp_ms,
            self.proposer_index,
            self.sealer_set_hash,
            self.tx_root,
            self.receipt_root,
            self.state_root,
            self.gas_used,
            self.tx_count,
            self.extra,
        ]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    def hash(self, suite: CryptoSuite) -> bytes:
        return suite.hash(self.encode())

    @classmethod
    def from_fields(cls, f: Any) -> "BlockHeader":
        f = expect_list(f, "header")
        if not f or type(f[0]) is not int or f[0] not in cls.VERSIONS:
            raise DecodeError(f"header: unknown version {f[0] if f else None!r} (this node knows {', '.join(map(str, cls.VERSIONS))})")
        expect_list(f, "header", length=12)
        return cls(
            parent_hash=expect_bytes(f[1], "header.parent_hash", length=HASH_BYTES),
            height=expect_int(f[2], "header.height"),
            timestamp_ms=expect_int(f[3], "header.timestamp_ms"),
            proposer_index=expect_int(f[4], "header.proposer_index", hi=CERT_SIGNATURES_MAX),
            sealer_set_hash=expect_bytes(f[5], "header.sealer_set_hash", length=HASH_BYTES),
            tx_root=expect_bytes(f[6], "header.tx_root", length=HASH_BYTES),
            receipt_root=expect_bytes(f[7], "header.receipt_root", length=HASH_BYTES),
            state_root=expect_bytes(f[8], "header.state_root", length=HASH_BYTES),
            gas_used=expect_int(f[9], "header.gas_used"),
            tx_count=expect_int(f[10], "header.tx_count", hi=BLOCK_TXS_MAX),
            extra=expect_bytes(f[11], "header.extra", max_length=EXTRA_BYTES_MAX),
            version=f[0],
        )

    @classmethod
    def decode(cls, data: bytes) -> "BlockHeader":
        return cls.from_fields(unpack(data, max_bytes=4096))


@dataclass(frozen=True, slots=True)
class Block:
    VERSION = 1

    header: BlockHeader
    transactions: list[Transaction] = field(default_factory=list)

    def to_fields(self) -> list:
        return [self.VERSION, self.header.to_fields(), [tx.to_fields() for tx in self.transactions]]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    @classmethod
    def from_fields(cls, f: Any) -> "Block":
        f = expect_list(f, "block")
        expect_version(f, "block", cls.VERSION)
        expect_list(f, "block", length=3)
        header = BlockHeader.from_fields(f[1])
        txs = [Transaction.from_fields(t) for t in expect_list(f[2], "block.transactions", max_length=BLOCK_TXS_MAX)]
        if len(txs) != header.tx_count:
            raise DecodeError(f"block: header says {header.tx_count} transactions, body has {len(txs)}")
        return cls(header=header, transactions=txs)

    @classmethod
    def decode(cls, data: bytes, max_bytes: int = BLOCK_BYTES_MAX) -> "Block":
        return cls.from_fields(unpack(data, max_bytes=max_bytes))


# ---- Receipt ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Event:
    """A contract event: `emit(name, **fields)`. Fields are encoded as [key, value] pairs
    sorted by key, so one event has one encoding."""

    address: bytes
    name: str
    fields: dict

    def to_fields(self) -> list:
        return [self.address, self.name, [[k, self.fields[k]] for k in sorted(self.fields)]]

    @classmethod
    def from_fields(cls, f: Any) -> "Event":
        f = expect_list(f, "event", length=3)
        pairs = expect_list(f[2], "event.fields")
        fields: dict = {}
        previous = None
        for pair in pairs:
            pair = expect_list(pair, "event.fields[]", length=2)
            key = expect_str(pair[0], "event.fields key", max_length=NAME_CHARS_MAX)
            if previous is not None and key <= previous:
                raise DecodeError("event.fields: keys must be unique and sorted")
            previous = key
            fields[key] = expect_value(pair[1], f"event.fields[{key}]")
        return cls(
            address=expect_bytes(f[0], "event.address", length=ADDRESS_BYTES),
            name=expect_str(f[1], "event.name", max_length=NAME_CHARS_MAX),
            fields=fields,
        )


STATUS_OK = 0


@dataclass(frozen=True, slots=True)
class Receipt:
    """The result of one transaction. `status` 0 is success; anything else is a failure
    named by `error_type` (and `error_message` for the contract's own errors)."""

    VERSION = 1

    tx_hash: bytes
    status: int
    gas_used: int
    output: Any = None
    contract_address: bytes = b""
    events: list[Event] = field(default_factory=list)
    error_type: str = ""
    error_message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == STATUS_OK

    def to_fields(self) -> list:
        return [
            self.VERSION,
            self.tx_hash,
            self.status,
            self.gas_used,
            self.output,
            self.contract_address,
            [e.to_fields() for e in self.events],
            self.error_type,
            self.error_message,
        ]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    @classmethod
    def from_fields(cls, f: Any) -> "Receipt":
        f = expect_list(f, "receipt")
        expect_version(f, "receipt", cls.VERSION)
        expect_list(f, "receipt", length=9)
        return cls(
            tx_hash=expect_bytes(f[1], "receipt.tx_hash", length=HASH_BYTES),
            status=expect_int(f[2], "receipt.status", hi=255),
            gas_used=expect_int(f[3], "receipt.gas_used"),
            output=expect_value(f[4], "receipt.output"),
            contract_address=expect_bytes(f[5], "receipt.contract_address", lengths=(0, ADDRESS_BYTES)),
            events=[Event.from_fields(e) for e in expect_list(f[6], "receipt.events", max_length=EVENTS_PER_RECEIPT_MAX)],
            error_type=expect_str(f[7], "receipt.error_type", max_length=NAME_CHARS_MAX),
            error_message=expect_str(f[8], "receipt.error_message", max_length=ERROR_MESSAGE_CHARS_MAX),
        )

    @classmethod
    def decode(cls, data: bytes, max_bytes: int = RECEIPT_BYTES_MAX) -> "Receipt":
        return cls.from_fields(unpack(data, max_bytes=max_bytes))


# ---- Commit certificate -----------------------------------------------------------------


class InvalidCertificate(ValueError):
    """A commit certificate that does not prove its block was committed."""


def quorum_size(sealer_count: int) -> int:
    """Votes needed out of n sealers of weight 1: n - f with f = (n - 1) // 3 (2f + 1 when
    n = 3f + 1). It is `quorum_weight([1] * n)`.

    Any two quorums then share at least f + 1 sealers, so at least one honest one.
    """
    if sealer_count < 1:
        raise ValueError("a chain needs at least one sealer")
    return sealer_count - (sealer_count - 1) // 3


SEALER_WEIGHT_MAX = 1_000_000  # the bound governance enforces on NodeEntry.weight


def check_weights(weights: list[int] | tuple[int, ...] | None, sealer_count: int) -> list[int] | None:
    """Validate per-sealer weights (index order) for a set of `sealer_count` sealers.

    Returns None when every sealer weighs 1 (None, or all ones): the unit case, in which
    every threshold, hash and certificate is exactly what it was before weights existed.
    Raises ValueError on a wrong length or a weight outside 1..SEALER_WEIGHT_MAX."""
    if weights is None:
        return None
    weights = list(weights)
    if len(weights) != sealer_count:
        raise ValueError(f"{len(weights)} weights for {sealer_count} sealers")
    for w in weights:
        if type(w) is not int or not 1 <= w <= SEALER_WEIGHT_MAX:
            raise ValueError(f"sealer weight {w!r} is not an integer in 1..{SEALER_WEIGHT_MAX}")
    return None if all(w == 1 for w in weights) else weights


def faulty_weight(total_weight: int) -> int:
    """F: the largest total weight of faulty sealers tolerated, (W - 1) // 3, so W >= 3F + 1.
    With unit weights W = n and F = f."""
    if total_weight < 1:
        raise ValueError("a chain needs at least one sealer")
    return (total_weight - 1) // 3


def quorum_weight(weights: list[int] | tuple[int, ...]) -> int:
    """Q = W - F: the signed weight a quorum needs (FISCO BCOS 3.x weighted PBFT:
    maxFaultyQuorum = (W - 1) / 3, minRequiredQuorum = W - maxFaultyQuorum).

    Two quorums overlap in at least 2Q - W = W - 2F >= F + 1 weight, more than the faulty
    weight, so in an honest sealer; the honest weight W - F is itself a quorum (liveness).
    `quorum_weight([1] * n) == quorum_size(n)`."""
    check_weights(weights, len(weights))
    total = sum(weights)
    return total - faulty_weight(total)


def sealer_set_hash(suite: CryptoSuite, sealer_pubs: list[bytes], weights: list[int] | None = None) -> bytes:
    """The `sealer_set_hash` a header carries: commits the block to the set that certifies it.

    Unit weights (None or all ones) hash exactly as before weights existed (version 1, keys
    only), so existing headers keep verifying; any other weights are bound too (version 2)."""
    weights = check_weights(weights, len(sealer_pubs))
    if weights is None:
        return suite.hash(pack([1, "chainnode/sealers", list(sealer_pubs)]))
    return suite.hash(pack([2, "chainnode/sealers", list(sealer_pubs), weights]))


def commit_signing_bytes(height: int, block_hash: bytes) -> bytes:
    """What a sealer signs to commit a block (domain-separated from every other message)."""
    return pack([1, "chainnode/commit", height, block_hash])


@dataclass(frozen=True, slots=True)
class CommitCertificate:
    """Proof that a quorum of the sealer set committed `block_hash` at `height`:
    (sealer index, signature) pairs, sorted by index, each index once."""

    VERSION = 1

    height: int
    block_hash: bytes
    signatures: list[tuple[int, bytes]]

    def to_fields(self) -> list:
        return [self.VERSION, self.height, self.block_hash, [[i, s] for i, s in self.signatures]]

    def encode(self) -> bytes:
        return pack(self.to_fields())

    def verify(self, suite: CryptoSuite, sealer_pubs: list[bytes], weights: list[int] | None = None) -> None:
        """Raise `InvalidCertificate` unless a quorum of `sealer_pubs` signed this block: with
        `weights` (index order; None = all 1) the signers' total weight must reach
        `quorum_weight(weights)`; with unit weights that is `quorum_size(n)` signatures."""
        msg = commit_signing_bytes(self.height, self.block_hash)
        weights = check_weights(weights, len(sealer_pubs))
        if weights is None:
            need = quorum_size(len(sealer_pubs))
            if len(self.signatures) < need:
                raise InvalidCertificate(f"{len(self.signatures)} signatures, a quorum of {len(sealer_pubs)} sealers is {need}")
        else:
            need = quorum_weight(weights)
            # Distinct in-range signers only; the loop below refuses repeats and strangers.
            signed = sum(weights[i] for i in {i for i, _ in self.signatures} if 0 <= i < len(sealer_pubs))
            if signed < need:
                raise InvalidCertificate(
                    f"{len(self.signatures)} signatures of weight {signed}, a quorum of {len(sealer_pubs)} sealers "
                    f"of total weight {sum(weights)} is {need}"
                )
        previous = -1
        for index, sig in self.signatures:
            if index <= previous:
                raise InvalidCertificate("sealer indexes must be unique and ascending")
            previous = index
            if index >= len(sealer_pubs):
                raise InvalidCertificate(f"sealer index {index} is not in a set of {len(sealer_pubs)}")
            if not suite.verify(sealer_pubs[index], msg, sig):
                raise InvalidCertificate(f"signature of sealer {index} does not verify")

    @classmethod
    def from_fields(cls, f: Any) -> "CommitCertificate":
        f = expect_list(f, "certificate")
        expect_version(f, "certificate", cls.VERSION)
        expect_list(f, "certificate", length=4)
        sigs = []
        previous = -1
        for pair in expect_list(f[3], "certificate.signatures", max_length=CERT_SIGNATURES_MAX):
            pair = expect_list(pair, "certificate.signatures[]", length=2)
            index = expect_int(pair[0], "certificate sealer index", hi=CERT_SIGNATURES_MAX)
            if index <= previous:
                raise DecodeError("certificate.signatures: indexes must be unique and ascending")
            previous = index
            sigs.append((index, expect_bytes(pair[1], "certificate signature", length=SIGNATURE_BYTES)))
        return cls(
            height=expect_int(f[1], "certificate.height"),
            block_hash=expect_bytes(f[2], "certificate.block_hash", length=HASH_BYTES),
            signatures=sigs,
        )

    @classmethod
    def decode(cls, data: bytes) -> "CommitCertificate":
        return cls.from_fields(unpack(data, max_bytes=CERT_SIGNATURES_MAX * 80 + 128))


__all__ = [
    "ADDRESS_BYTES",
    "Block",
    "BlockHeader",
    "CommitCertificate",
    "DecodeError",
    "Event",
    "HASH_BYTES",
    "InvalidCertificate",
    "Receipt",
    "STATUS_OK",
    "Transaction",
    "UINT64_MAX",
    "ZERO_HASH",
    "check_weights",
    "commit_signing_bytes",
    "faulty_weight",
    "quorum_size",
    "quorum_weight",
    "sealer_set_hash",
]

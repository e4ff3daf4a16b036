"""PBFT wire messages: canonical encoding, strict decoding, signing bytes.

Every message is msgpack of one fixed-order list (DESIGN.md rule 2):

    [version, type, height, view, sender, ...body..., signature]

and is signed by the sender's consensus key over

    DOMAIN_TAG + pack([version, type, height, view, sender, ...body...])

The one exception is CHECKPOINT, whose signature is over
`chainnode.protocol.types.commit_signing_bytes(height, block_hash)`: the 2f+1 checkpoint signatures of
a height ARE the block's `CommitCertificate`, which a third party verifies against the sealer
list without knowing anything about views. (CHECKPOINT's view field is unsigned, so it must be
0: otherwise one signature would have many encodings.)

Messages that carry other messages (VIEW_CHANGE carries a prepared certificate made of
PREPARE signatures, NEW_VIEW carries VIEW_CHANGEs and a PRE_PREPARE) nest them as field lists,
so the whole thing is still one canonical value and each nested signature is checked against
signing bytes rebuilt from the nested fields.

`decode_message(data, max_bytes=...)` raises `DecodeError` for anything that is not exactly
one of these messages; it never raises anything else (the simulator's garbage-sending
byzantine replica and tests/consensus/test_messages.py hold it to that).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any, Callable, Union

from chainnode.crypto import HASH_BYTES
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_version, pack, unpack
from chainnode.protocol.signing import Signed
from chainnode.protocol.types import (
    BLOCK_TXS_MAX,
    CERT_SIGNATURES_MAX,
    SIGNATURE_BYTES,
    BlockHeader,
    CommitCertificate,
    commit_signing_bytes,
)

VERSION = 1
DOMAIN_TAG = b"chainnode/pbft/v1\x00"
# Hard bound of the format; the replica passes its configured (smaller) limit.
MESSAGE_BYTES_MAX = 16 << 20
SEALER_INDEX_MAX = CERT_SIGNATURES_MAX

Signer = Callable[[bytes], bytes]


class MsgType(IntEnum):
    PRE_PREPARE = 1
    PREPARE = 2
    COMMIT = 3
    CHECKPOINT = 4
    VIEW_CHANGE = 5
    NEW_VIEW = 6
    SYNC_REQUEST = 7
    DECIDED = 8


def _header(v: Any, what: str) -> BlockHeader:
    return BlockHeader.from_fields(expect_list(v, what))


def _hash(v: Any, what: str) -> bytes:
    return expect_bytes(v, what, length=HASH_BYTES)


def _sig(v: Any, what: str) -> bytes:
    return expect_bytes(v, what, length=SIGNATURE_BYTES)


def _tx_hashes(v: Any, what: str) -> list[bytes]:
    return [_hash(h, f"{what}[]") for h in expect_list(v, what, max_length=BLOCK_TXS_MAX)]


def _index_sigs(v: Any, what: str) -> list[tuple[int, bytes]]:
    """[[index, sig], ...] with unique ascending indexes (one canonical form)."""
    out = []
    previous = -1
    for pair in expect_list(v, what, max_length=CERT_SIGNATURES_MAX):
        pair = expect_list(pair, f"{what}[]", length=2)
        index = expect_int(pair[0], f"{what} index", hi=SEALER_INDEX_MAX)
        if index <= previous:
            raise DecodeError(f"{what}: indexes must be unique and ascending")
        previous = index
        out.append((index, _sig(pair[1], f"{what} signature")))
    return out


class _Signed(Signed):
    """Shared encode/sign logic (signed under DOMAIN_TAG by the one signing rule,
    chainnode/protocol/signing.py). Subclasses define TYPE, the common header fields
    (height, view, sender), `body()` and `signature`."""

    __slots__ = ()
    DOMAIN = DOMAIN_TAG
    TYPE: MsgType
    height: int
    view: int
    sender: int
    signature: bytes

    def body(self) -> list:
        raise NotImplementedError

    def unsigned_fields(self) -> list:
        return [VERSION, int(self.TYPE), self.height, self.view, self.sender, *self.body()]

    def to_fields(self) -> list:
        return self.unsigned_fields() + [self.signature]

    def encode(self) -> bytes:
        return pack(self.to_fields())


@dataclass(frozen=True, slots=True)
class PrePrepare(_Signed):
    """The leader's proposal for (height, view): an executed header plus its tx hashes."""

    TYPE = MsgType.PRE_PREPARE
    BODY = 2
    height: int
    view: int
    sender: int
    header: BlockHeader
    tx_hashes: list[bytes]
    signature: bytes = b""

    def body(self) -> list:
        return [self.header.to_fields(), list(self.tx_hashes)]

    @classmethod
    def from_body(cls, height: int, view: int, sender: int, body: list, sig: bytes) -> "PrePrepare":
        return cls(height, view, sender, _header(body[0], "pre_prepare.header"), _tx_hashes(body[1], "pre_prepare.tx_hashes"), sig)


@dataclass(frozen=True, slots=True)
class _BlockVote(_Signed):
    """A signed vote for one block hash (PREPARE, COMMIT, CHECKPOINT share this layout)."""

    BODY = 1
    height: int
    view: int
    sender: int
    block_hash: bytes
    signature: bytes = b""

    def body(self) -> list:
        return [self.block_hash]

    VIEW_SIGNED = True  # False: the view is not covered by the signature, so it must be 0

    @classmethod
    def from_body(cls, height: int, view: int, sender: int, body: list, sig: bytes):
        name = cls.__name__.lower()
        if not cls.VIEW_SIGNED and view != 0:
            raise DecodeError(f"{name}.view: must be 0 (it is not signed)")
        return cls(height, view, sender, _hash(body[0], f"{name}.block_hash"), sig)


@dataclass(frozen=True, slots=True)
class Prepare(_BlockVote):
    """"I executed this block and its roots match": a vote for block_hash in (height, view)."""

    TYPE = MsgType.PREPARE


@dataclass(frozen=True, slots=True)
class Commit(_BlockVote):
    """"A quorum prepared block_hash in this view": classic PBFT commit, bound to the view."""

    TYPE = MsgType.COMMIT


@dataclass(frozen=True, slots=True)
class Checkpoint(_BlockVote):
    """"I committed block_hash locally": its signature is one entry of the CommitCertificate.
    Its view is always 0: it is not covered by the signature."""

    TYPE = MsgType.CHECKPOINT
    VIEW_SIGNED = False

    def signing_bytes(self) -> bytes:
        # What the CommitCertificate collects, so its own rule (chainnode/protocol/signing.py).
        return commit_signing_bytes(self.height, self.block_hash)


@dataclass(frozen=True, slots=True)
class PreparedCertificate:
    """Proof that a quorum sent PREPARE for `header` in `view`: the block, its tx hashes and
    the PREPARE signatures (unique ascending sealer indexes). Carried in VIEW_CHANGE so a
    block prepared by a quorum survives the view change."""

    view: int
    header: BlockHeader
    tx_hashes: list[bytes]
    signatures: list[tuple[int, bytes]]

    def to_fields(self) -> list:
        return [self.view, self.header.to_fields(), list(self.tx_hashes), [[i, s] for i, s in self.signatures]]

    @classmethod
    def from_fields(cls, f: Any) -> "PreparedCertificate":
        f = expect_list(f, "prepared", length=4)
        return cls(
            view=expect_int(f[0], "prepared.view"),
            header=_header(f[1], "prepared.header"),
            tx_hashes=_tx_hashes(f[2], "prepared.tx_hashes"),
            signatures=_index_sigs(f[3], "prepared.signatures"),
        )

    def prepare_for(self, index: int, sig: bytes, block_hash: bytes) -> Prepare:
        """The PREPARE message whose signature `sig` is (for re-verification)."""
        return Prepare(self.header.height, self.view, index, block_hash, sig)


@dataclass(frozen=True, slots=True)
class ViewChange(_Signed):
    """"Move (height) to `view`", with the highest prepared certificate the sender holds."""

    TYPE = MsgType.VIEW_CHANGE
    BODY = 1
    height: int
    view: int
    sender: int
    prepared: PreparedCertificate | None
    signature: bytes = b""

    def body(self) -> list:
        return [None if self.prepared is None else self.prepared.to_fields()]

    @classmethod
    def from_body(cls, height: int, view: int, sender: int, body: list, sig: bytes) -> "ViewChange":
        prepared = None if body[0] is None else PreparedCertificate.from_fields(body[0])
        if prepared is not None and prepared.view >= view:
            raise DecodeError("view_change.prepared: certificate view must be below the new view")
        return cls(height, view, sender, prepared, sig)


@dataclass(frozen=True, slots=True)
class NewView(_Signed):
    """The new leader's proof (a quorum of VIEW_CHANGEs for this view) and its proposal."""

    TYPE = MsgType.NEW_VIEW
    BODY = 2
    height: int
    view: int
    sender: int
    view_changes: list[ViewChange]
    pre_prepare: PrePrepare
    signature: bytes = b""

    def body(self) -> list:
        return [[vc.to_fields() for vc in self.view_changes], self.pre_prepare.to_fields()]

    @classmethod
    def from_body(cls, height: int, view: int, sender: int, body: list, sig: bytes) -> "NewView":
        vcs = [_nested(f, ViewChange, "new_view.view_changes[]") for f in expect_list(body[0], "new_view.view_changes", max_length=CERT_SIGNATURES_MAX)]
        pp = _nested(body[1], PrePrepare, "new_view.pre_prepare")
        return cls(height, view, sender, vcs, pp, sig)


@dataclass(frozen=True, slots=True)
class SyncRequest(_Signed):
    """"Send me the decided block at `height`" (its view is 0)."""

    TYPE = MsgType.SYNC_REQUEST
    BODY = 0
    height: int
    view: int
    sender: int
    signature: bytes = b""

    def body(self) -> list:
        return []

    @classmethod
    def from_body(cls, height: int, view: int, sender: int, body: list, sig: bytes) -> "SyncRequest":
        if view != 0:
            raise DecodeError("sync_request.view: must be 0")
        return cls(height, view, sender, sig)


@dataclass(frozen=True, slots=True)
class Decided(_Signed):
    """A decided block (header, tx hashes, commit certificate) for a replica that lags,
    and the sender's head height so the receiver knows whether to ask for more."""

    TYPE = MsgType.DECIDED
    BODY = 4
    height: int
    view: int
    sender: int
    header: BlockHeader
    tx_hashes: list[bytes]
    certificate: CommitCertificate
    head_height: int
    signature: bytes = b""

    def body(self) -> list:
        return [self.header.to_fields(), list(self.tx_hashes), self.certificate.to_fields(), self.head_height]

    @classmethod
    def from_body(cls, height: int, view: int, sender: int, body: list, sig: bytes) -> "Decided":
        if view != 0:
            raise DecodeError("decided.view: must be 0")
        return cls(
            height,
            view,
            sender,
            _header(body[0], "decided.header"),
            _tx_hashes(body[1], "decided.tx_hashes"),
            CommitCertificate.from_fields(body[2]),
            expect_int(body[3], "decided.head_height"),
            sig,
        )


Message = Union[PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, SyncRequest, Decided]
_CLASSES: dict[int, Any] = {
    int(c.TYPE): c for c in (PrePrepare, Prepare, Commit, Checkpoint, ViewChange, NewView, SyncRequest, Decided)
}
_HEADER_FIELDS = 5  # version, type, height, view, sender


def _from_fields(f: Any, what: str) -> Message:
    f = expect_list(f, what)
    expect_version(f, what, VERSION)
    if len(f) < 2:
        raise DecodeError(f"{what}: missing message type")
    mtype = expect_int(f[1], f"{what}.type", lo=1, hi=max(_CLASSES))
    cls = _CLASSES[mtype]
    expect_list(f, what, length=_HEADER_FIELDS + cls.BODY + 1)
    height = expect_int(f[2], f"{what}.height")
    view = expect_int(f[3], f"{what}.view")
    sender = expect_int(f[4], f"{what}.sender", hi=SEALER_INDEX_MAX)
    sig = _sig(f[-1], f"{what}.signature")
    return cls.from_body(height, view, sender, f[_HEADER_FIELDS:-1], sig)


def _nested(f: Any, cls: Any, what: str) -> Any:
    msg = _from_fields(f, what)
    if type(msg) is not cls:
        raise DecodeError(f"{what}: expected {cls.__name__}, got {type(msg).__name__}")
    return msg


def decode_message(data: bytes, *, max_bytes: int = MESSAGE_BYTES_MAX) -> Message:
    """Decode exactly one consensus message or raise `DecodeError`."""
    try:
        return _from_fields(unpack(data, max_bytes=max_bytes), "message")
    except DecodeError:
        raise
    except (ValueError, TypeError, IndexError) as exc:  # belt and braces: garbage never escapes as anything else
        raise DecodeError(f"message: {type(exc).__name__}: {exc}") from None


def sign(msg: Any, signer: Signer) -> Any:
    """A copy of `msg` carrying the signature `signer` makes over its signing bytes."""
    return replace(msg, signature=signer(msg.signing_bytes()))


__all__ = [
    "DOMAIN_TAG",
    "MESSAGE_BYTES_MAX",
    "Checkpoint",
    "Commit",
    "Decided",
    "Message",
    "MsgType",
    "NewView",
    "PrePrepare",
    "Prepare",
    "PreparedCertificate",
    "SyncRequest",
    "ViewChange",
    "decode_message",
    "sign",
]

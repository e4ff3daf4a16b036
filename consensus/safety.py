"""The safety state a replica persists before it sends anything it signed.

A replica that crashes and restarts must not sign something that contradicts what it signed
before (that would make it a byzantine replica by amnesia). What it has signed at the height
it is deciding is: the view it moved to (its VIEW_CHANGE), its PREPARE and COMMIT votes of
that view, and its CHECKPOINT. It also keeps its highest prepared certificate, because a
view change must carry it for the quorum-intersection argument to hold across a restart.
Lower heights need nothing: they are in the ledger.
"""

from __future__ import annotations

from dataclasses import dataclass

from chainnode.crypto import HASH_BYTES
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_version, pack, unpack
from chainnode.protocol.types import SIGNATURE_BYTES
from consensus.messages import PreparedCertificate

SAFETY_STATE_BYTES_MAX = 64 << 20


@dataclass(frozen=True, slots=True)
class SafetyState:
    VERSION = 1

    height: int
    view: int
    in_view_change: bool
    prepare_vote: tuple[int, bytes] | None  # (view, block_hash) of my PREPARE in `view`
    commit_vote: tuple[int, bytes] | None  # (view, block_hash) of my COMMIT in `view`
    prepared: PreparedCertificate | None
    checkpoint: tuple[bytes, bytes] | None  # (block_hash, signature) of my CHECKPOINT

    def encode(self) -> bytes:
        return pack(
            [
                self.VERSION,
                self.height,
                self.view,
                self.in_view_change,
                None if self.prepare_vote is None else list(self.prepare_vote),
                None if self.commit_vote is None else list(self.commit_vote),
                None if self.prepared is None else self.prepared.to_fields(),
                None if self.checkpoint is None else list(self.checkpoint),
            ]
        )

    @classmethod
    def decode(cls, data: bytes) -> "SafetyState":
        f = expect_list(unpack(data, max_bytes=SAFETY_STATE_BYTES_MAX), "safety_state")
        expect_version(f, "safety_state", cls.VERSION)
        expect_list(f, "safety_state", length=8)
        if type(f[3]) is not bool:
            raise DecodeError("safety_state.in_view_change: expected a bool")
        return cls(
            height=expect_int(f[1], "safety_state.height"),
            view=expect_int(f[2], "safety_state.view"),
            in_view_change=f[3],
            prepare_vote=_vote(f[4], "safety_state.prepare_vote"),
            commit_vote=_vote(f[5], "safety_state.commit_vote"),
            prepared=None if f[6] is None else PreparedCertificate.from_fields(f[6]),
            checkpoint=None if f[7] is None else _checkpoint(f[7]),
        )


def _vote(v, what: str) -> tuple[int, bytes] | None:
    if v is None:
        return None
    v = expect_list(v, what, length=2)
    return expect_int(v[0], f"{what}.view"), expect_bytes(v[1], f"{what}.block_hash", length=HASH_BYTES)


def _checkpoint(v) -> tuple[bytes, bytes]:
    v = expect_list(v, "safety_state.checkpoint", length=2)
    return (
        expect_bytes(v[0], "safety_state.checkpoint.block_hash", length=HASH_BYTES),
        expect_bytes(v[1], "safety_state.checkpoint.signature", length=SIGNATURE_BYTES),
    )

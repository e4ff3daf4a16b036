"""Admission by certificate: the node-side glue between the genesis CA, this node's chain
file and the network handshake (docs/certificates.md, "How a node uses its certificate").

When the genesis names root CAs (`"ca_certs"`), every node presents its certificate chain
[node, agency] in its handshake, and accepts a peer only if the peer's chain verifies
against those roots now, is not revoked on chain, certifies the consensus key the peer proved
it holds, and names the peer's libp2p id. Without roots nothing here does anything.

    admission = Admission.load(config, genesis, key.public_key, peer_id, revoked=...)
    Network(..., **admission.network_kwargs())

`Admission.load` refuses to start (AdmissionError, one line naming the wrong file and the
fix) when this node's own chain would be refused by its peers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

from chainnode.security.certs import (
    CHAIN_BYTES_MAX,
    MIGRATE_HINT,
    REASON_AGENCY_MISMATCH,
    REASON_BAD,
    REASON_BAD_SIGNATURE,
    REASON_EXPIRED,
    REASON_KEY_MISMATCH,
    REASON_MISSING_EXTENSION,
    REASON_NONE,
    REASON_NOT_YET_VALID,
    REASON_PEER_ID_MISMATCH,
    REASON_REVOKED,
    REASON_WRONG_CA,
    CertChain,
    Certificate,
    CertificateError,
    format_ms,
    read_chain_file,
    verify_chain,
)

Revoked = Callable[[], Iterable[bytes]]  # the revocation ids on chain now (certs.Certificate.revocation_id)


class NodeFiles(Protocol):
    """What admission reads of a node's config (chainnode.node.config.NodeConfig)."""

    path: Path
    genesis_file: Path
    key_file: Path
    cert_file: Path | None


class TrustAnchor(Protocol):
    """What admission reads of the genesis (chainnode.system.genesis.Genesis): the root
    CAs, () on a chain without certificates."""

    @property
    def ca_certs(self) -> tuple[Certificate, ...]: ...

# What to do about each reason this node's own chain is refused at start.
_FIX = {
    REASON_WRONG_CA: "ask an agency of one of this consortium's root CAs for the certificate (`chainnode ca issue-node --agency-dir <agency dir>`)",
    REASON_AGENCY_MISMATCH: (
        "the node certificate and the agency certificate in this file do not belong together; "
        "re-issue it with `chainnode ca issue-node --agency-dir <the directory of the agency that certifies this node>`"
    ),
    REASON_BAD_SIGNATURE: "the file was modified or damaged; get it again from your agency",
    REASON_EXPIRED: "ask your agency for a new certificate (`chainnode ca issue-node`), replace the file and start again",
    REASON_NOT_YET_VALID: "check this machine's clock (the times are UTC), or wait until the certificate becomes valid",
    REASON_REVOKED: "the consortium revoked this certificate; ask your agency for a new one (`chainnode ca issue-node`) and replace the file",
    REASON_MISSING_EXTENSION: "the certificate lacks what a node certificate needs (docs/certificates.md, \"Profile\"); have it issued with `chainnode ca issue-node` or `ca sign-csr`",
}
_FIX_DEFAULT = "get a valid chain from your agency (`chainnode ca issue-node`)"


class AdmissionError(ValueError):
    """This node cannot start with its certificate configuration; the message names the
    file that is wrong and what to do next."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _short(b: bytes) -> str:
    return b.hex()[:16] + "…"




@dataclass(frozen=True)
class Admission:
    """This node's credentials for the Hello, and the check it applies to its peers'."""

    roots: tuple[Certificate, ...]  # the genesis root CAs; (): certificates are not used on this chain
    credentials: bytes  # this node's encoded chain; b"" without roots
    chain: CertChain | None
    revoked: Revoked
    now_ms: Callable[[], int] = _now_ms

    @property
    def required(self) -> bool:
        return bool(self.roots)

    @property
    def check_credentials(self) -> Callable[[bytes, bytes, str], Certificate] | None:
        """The Network's verifier callback, None when the chain has no roots."""
        return self.check if self.roots else None

    def network_kwargs(self) -> dict:
        """`Network(..., **admission.network_kwargs())`."""
        return {"credentials": self.credentials, "check_credentials": self.check_credentials}

    @classmethod
    def load(
        cls,
        config: NodeFiles,
        genesis: TrustAnchor,
        consensus_pub: bytes,
        peer_id: str | None,
        revoked: Revoked = lambda: (),
        *,
        now_ms: Callable[[], int] = _now_ms,
    ) -> "Admission":
        """Read and check this node's chain (AdmissionError if its peers would refuse it).
        `peer_id` None skips the peer id check (`chainnode init`, which has no password)."""
        roots = genesis.ca_certs
        if not roots:
            return cls((), b"", None, revoked, now_ms)
        genesis_file, key_file, cert_file = config.genesis_file, config.key_file, config.cert_file
        if cert_file is None:
            raise AdmissionError(
                f"{genesis_file} names root CAs ({', '.join(repr(r.subject) for r in roots)}), so every node needs a certificate, "
                f"but {config.path} sets no cert_file; get this node's chain from your agency (`chainnode ca issue-node --key {key_file} "
                f"--out node.pem ...`) and add cert_file = \"node.pem\" under [node] in {config.path}"
            )
        try:
            chain = read_chain_file(cert_file)
        except CertificateError as exc:
            fix = "" if MIGRATE_HINT in str(exc) else "; put this node's chain from `chainnode ca issue-node` there, or fix cert_file"
            raise AdmissionError(f"{exc} (cert_file in {config.path}){fix}") from None
        leaf = chain.leaf
        if len(chain.encode()) > CHAIN_BYTES_MAX:
            raise AdmissionError(f"{cert_file}: the node and agency certificates take {len(chain.encode())} bytes, more than the {CHAIN_BYTES_MAX} "
                                 f"a handshake carries; ask your agency for certificates with fewer or shorter extensions")
        if leaf.kind != "node":
            raise AdmissionError(
                f"{cert_file} holds a {leaf.label()}, not a node certificate; a node needs the chain `chainnode ca issue-node` writes"
            )
        if leaf.public_key != consensus_pub:
            raise AdmissionError(
                f"{cert_file} certifies key {_short(leaf.public_key)} ({leaf.label()}) but {key_file} is {_short(consensus_pub)}; "
                f"use this node's own chain file, or have it issued for this key (`chainnode ca issue-node --key {key_file}`)"
            )
        if peer_id is not None and leaf.peer_id != peer_id:
            raise AdmissionError(
                f"{cert_file} certifies peer id {leaf.peer_id} but {key_file} derives peer id {peer_id}; re-issue the certificate "
                f"without --peer-id (`chainnode ca issue-node --key {key_file}` derives it from the key)"
            )
        now = now_ms()
        try:
            verify_chain(chain, roots, now, revoked())
        except CertificateError as exc:
            raise AdmissionError(f"{cert_file}: {exc} (now {format_ms(now)}); {_FIX.get(exc.reason, _FIX_DEFAULT)}") from None
        return cls(roots, chain.encode(), chain, revoked, now_ms)

    def check(self, chain_bytes: bytes, consensus_pub: bytes, peer_id: str) -> Certificate:
        """Verify a peer's chain (from its handshake) against the genesis roots at the current
        time and revocation list, bound to the consensus key it proved and its peer id.
        Returns the node certificate; CertificateError (with `.reason`) if the peer is refused."""
        if not self.roots:
            raise RuntimeError("no root CA in the genesis: there is nothing to check")
        if not chain_bytes:
            raise CertificateError(
                "the peer presented no certificate chain, but this chain's genesis names root CAs (is cert_file missing from its "
                "node.toml, or does it run an older chainnode?)",
                REASON_NONE,
            )
        leaf = verify_chain(CertChain.decode(chain_bytes), self.roots, self.now_ms(), self.revoked())
        if leaf.kind != "node":
            raise CertificateError(f"the peer presented a {leaf.label()}, not a node certificate", REASON_BAD)
        if leaf.public_key != consensus_pub:
            raise CertificateError(
                f"the {leaf.label()} certifies consensus key {_short(leaf.public_key)}, but the peer holds {_short(consensus_pub)}",
                REASON_KEY_MISMATCH,
            )
        if leaf.peer_id != peer_id:
            raise CertificateError(
                f"the {leaf.label()} certifies peer id {leaf.peer_id}, but the peer is {peer_id}",
                REASON_PEER_ID_MISMATCH,
            )
        return leaf


__all__ = ["Admission", "AdmissionError", "Revoked"]

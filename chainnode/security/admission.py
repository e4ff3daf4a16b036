"""Admission by certificate: the node-side glue between the genesis CA, this node's chain
file and the network handshake (docs/certificates.md, "How a node uses its certificate").

When the genesis has a CA (`"ca_cert"`), every node presents its certificate chain
[CA, agency, node] in the Hello, and accepts a peer only if the peer's chain verifies
against that CA now, is not revoked on chain, certifies the consensus key the peer proved
it holds, and names the peer's libp2p id. Without a CA nothing here does anything.

    admission = Admission.load(config, genesis, key.public_key, peer_id, revoked_serials=...)
    Network(..., **admission.network_kwargs())

`Admission.load` refuses to start (AdmissionError, one line naming the wrong file and the
fix) when this node's own chain would be refused by its peers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Protocol

from chainnode.protocol.codec import DecodeError
from chainnode.security.certs import (
    REASON_AGENCY_MISMATCH,
    REASON_BAD,
    REASON_BAD_SIGNATURE,
    REASON_EXPIRED,
    REASON_KEY_MISMATCH,
    REASON_NONE,
    REASON_NOT_YET_VALID,
    REASON_PEER_ID_MISMATCH,
    REASON_REVOKED,
    REASON_WRONG_CA,
    CertChain,
    Certificate,
    CertificateError,
    format_ms,
    key_hash,
    read_chain_file,
    verify_chain,
)

RevokedSerials = Callable[[], Iterable[bytes]]


class NodeFiles(Protocol):
    """What admission reads of a node's config (chainnode.node.config.NodeConfig)."""

    path: Path
    genesis_file: Path
    key_file: Path
    cert_file: Path | None


class TrustAnchor(Protocol):
    """What admission reads of the genesis (chainnode.system.genesis.Genesis): the
    consortium CA, or None on a chain without certificates."""

    @property
    def ca_cert(self) -> Certificate | None: ...

# What to do about each reason this node's own chain is refused at start.
_FIX = {
    REASON_WRONG_CA: "ask an agency of this consortium's CA for the certificate (`chainnode ca issue-node --agency-dir <agency dir>`)",
    REASON_AGENCY_MISMATCH: (
        "the node certificate and the agency certificate in this file do not belong together; "
        "re-issue it with `chainnode ca issue-node --agency-dir <the directory of the agency that certifies this node>`"
    ),
    REASON_BAD_SIGNATURE: "the file was modified or damaged; get it again from your agency",
    REASON_EXPIRED: "ask your agency for a new certificate (`chainnode ca issue-node`), replace the file and start again",
    REASON_NOT_YET_VALID: "check this machine's clock (the times are UTC), or wait until the certificate becomes valid",
    REASON_REVOKED: "the consortium revoked this certificate; ask your agency for a new one (`chainnode ca issue-node`) and replace the file",
}
_FIX_DEFAULT = "get a valid chain from your agency (`chainnode ca issue-node`)"


class AdmissionError(ValueError):
    """This node cannot start with its certificate configuration; the message names the
    file that is wrong and what to do next."""


def _now_ms() -> int:
    return int(time.time() * 1000)


def _short(b: bytes) -> str:
    return b.hex()[:16] + "…"


def _ca_name(ca: Certificate) -> str:
    return f"{ca.subject!r} (key hash {_short(key_hash(ca.suite, ca.public_key))}, serial {ca.serial.hex()})"


@dataclass(frozen=True)
class Admission:
    """This node's credentials for the Hello, and the check it applies to its peers'."""

    ca: Certificate | None  # the genesis CA; None: certificates are not used on this chain
    credentials: bytes  # this node's encoded chain; b"" without a CA
    chain: CertChain | None
    revoked_serials: RevokedSerials
    now_ms: Callable[[], int] = _now_ms

    @property
    def required(self) -> bool:
        return self.ca is not None

    @property
    def check_credentials(self) -> Callable[[bytes, bytes, str], Certificate] | None:
        """The Network's verifier callback, None when the chain has no CA."""
        return self.check if self.ca is not None else None

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
        revoked_serials: RevokedSerials = lambda: (),
        *,
        now_ms: Callable[[], int] = _now_ms,
    ) -> "Admission":
        """Read and check this node's chain (AdmissionError if its peers would refuse it).
        `peer_id` None skips the peer id check (`chainnode init`, which has no password)."""
        ca = genesis.ca_cert
        if ca is None:
            return cls(None, b"", None, revoked_serials, now_ms)
        genesis_file, key_file, cert_file = config.genesis_file, config.key_file, config.cert_file
        if cert_file is None:
            raise AdmissionError(
                f"{genesis_file} has a consortium CA ({ca.subject!r}), so every node needs a certificate, but {config.path} "
                f"sets no cert_file; get this node's chain from your agency (`chainnode ca issue-node --key {key_file} "
                f"--out node.chain ...`) and add cert_file = \"node.chain\" under [node] in {config.path}"
            )
        try:
            chain = read_chain_file(cert_file)
        except CertificateError as exc:
            raise AdmissionError(
                f"{exc} (cert_file in {config.path}); put this node's chain from `chainnode ca issue-node` there, or fix cert_file"
            ) from None
        leaf = chain.leaf
        if chain.ca.encode() != ca.encode():
            raise AdmissionError(
                f"{cert_file} was issued under CA {_ca_name(chain.ca)} but {genesis_file} trusts CA {_ca_name(ca)}; "
                f"get a certificate from an agency of the consortium's CA {ca.subject!r} (`chainnode ca issue-node --agency-dir ...`)"
            )
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
            verify_chain(chain, ca, now, revoked_serials())
        except CertificateError as exc:
            raise AdmissionError(f"{cert_file}: {exc} (now {format_ms(now)}); {_FIX.get(exc.reason, _FIX_DEFAULT)}") from None
        return cls(ca, chain.encode(), chain, revoked_serials, now_ms)

    def check(self, chain_bytes: bytes, consensus_pub: bytes, peer_id: str) -> Certificate:
        """Verify a peer's chain (from its Hello) against the genesis CA at the current time
        and revocation list, bound to the consensus key it proved and its peer id. Returns
        the node certificate; CertificateError (with `.reason`) if the peer is refused."""
        if self.ca is None:
            raise RuntimeError("no CA in the genesis: there is nothing to check")
        if not chain_bytes:
            raise CertificateError(
                "the peer presented no certificate chain, but this chain's genesis has a CA (is cert_file missing from its "
                "node.toml, or does it run an older chainnode?)",
                REASON_NONE,
            )
        try:
            chain = CertChain.decode(chain_bytes)
        except DecodeError as exc:
            raise CertificateError(f"undecodable certificate chain: {exc}", REASON_BAD) from None
        leaf = verify_chain(chain, self.ca, self.now_ms(), self.revoked_serials())
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


__all__ = ["Admission", "AdmissionError", "RevokedSerials"]

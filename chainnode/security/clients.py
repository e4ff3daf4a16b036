"""The node's check of a dApp's client certificate on the channel port (docs/certificates.md,
"Client certificates on the channel port").

A client presents the chain [client, agency] of the file `chainnode ca issue-client` wrote.
`verify_client` accepts it only if it verifies against the genesis roots now, is not revoked
on chain, and its leaf is a client certificate; the caller then checks that the channel's
static key is the certified key (chainnode.rpc.channel, which knows the channel's key
conversion). `recheck_client` runs at every committed block for each live session: a
revocation or an expiry since the handshake ends the session. It checks only what can
change (validity windows and revocations): the signatures were verified once and a
certificate cannot change under them.

Every refusal is a CertificateError with `.reason` (a short phrase, certs.REASON_*);
`client_fix(reason)` says what the dApp's operator does about it.
"""

from __future__ import annotations

from typing import Container, Iterable

from chainnode.security.certs import (
    REASON_AGENCY_MISMATCH,
    REASON_BAD_SIGNATURE,
    REASON_EXPIRED,
    REASON_KEY_MISMATCH,
    REASON_NONE,
    REASON_NOT_CLIENT,
    REASON_NOT_YET_VALID,
    REASON_REVOKED,
    REASON_WRONG_CA,
    CertChain,
    Certificate,
    CertificateError,
    issuer_of,
    verify_chain,
)

_ISSUE = "`chainnode ca issue-client --agency-dir <agency dir> --key <your account key> --role <role> --name <name> --out <file>`"
_CLIENT_FIX = {
    REASON_NONE: f"connect with your client certificate chain (ask an agency of the consortium for one: {_ISSUE})",
    REASON_WRONG_CA: f"this certificate is from another consortium's CA; ask an agency of this chain's consortium for one ({_ISSUE})",
    REASON_AGENCY_MISMATCH: f"the client and agency certificates in the file do not belong together; have it re-issued ({_ISSUE})",
    REASON_BAD_SIGNATURE: "the certificate file was modified or damaged; get it again from your agency",
    REASON_EXPIRED: f"ask your agency for a new client certificate ({_ISSUE}) and connect with it",
    REASON_NOT_YET_VALID: "check this machine's clock (the times are UTC), or wait until the certificate becomes valid",
    REASON_REVOKED: f"the consortium revoked this client certificate; ask your agency for a new one ({_ISSUE})",
    REASON_KEY_MISMATCH: "connect with the account key the certificate was issued for (the --key given to `chainnode ca issue-client`)",
    REASON_NOT_CLIENT: f"a dApp connects with a client certificate, not a node's; ask your agency for one ({_ISSUE})",
}
_CLIENT_FIX_DEFAULT = f"get a valid client certificate chain from your agency ({_ISSUE})"


def client_fix(reason: str) -> str:
    return _CLIENT_FIX.get(reason, _CLIENT_FIX_DEFAULT)


def verify_client(chain_bytes: bytes, roots: tuple[Certificate, ...], now_ms: int, revoked: Iterable[bytes]) -> CertChain:
    """The client's chain, verified against the genesis `roots` at `now_ms`, with the root
    that issued its agency; CertificateError if refused."""
    if not chain_bytes:
        raise CertificateError("the client presented no certificate chain, and this chain's genesis names root CAs", REASON_NONE)
    chain = CertChain.decode(chain_bytes)
    leaf = verify_chain(chain, roots, now_ms, revoked)
    if leaf.kind != "client":
        raise CertificateError(f"the client presented a {leaf.label()}, not a client certificate", REASON_NOT_CLIENT)
    return CertChain(leaf, chain.agency, issuer_of(chain.agency, roots))


def recheck_client(chain: CertChain, now_ms: int, revoked: Container[bytes]) -> None:
    """A chain `verify_client` returned earlier: still valid now? CertificateError if not.
    `revoked` is looked into, not copied: the caller builds one set per block for every session."""
    assert chain.root is not None, "verify_client returns the chain with its root"
    for cert, issuer in ((chain.root, None), (chain.agency, chain.root), (chain.leaf, chain.agency)):
        cert.x509.check_window(now_ms)
        if issuer is not None and cert.revocation_id(issuer) in revoked:
            raise CertificateError(f"{cert.label()} is revoked", REASON_REVOKED)


__all__ = ["client_fix", "recheck_client", "verify_client"]

"""What a dApp may call on the node's channel port, by the role of its client certificate
(docs/certificates.md, "Client roles").

- user, governor, regulator: every method. Governance itself is enforced on chain (the
  committee and the method ACLs decide what a transaction may do), not here.
- auditor: read-only. It may read blocks, transactions, receipts, state and governance,
  run read-only `call`s and subscribe, but never submit anything (no sendTransaction).

The auditor's methods are an allow-list: a method added to the node later is refused to
auditors until it is listed here as a read (tests/security/test_roles.py fails until every
RPC method is classified), so a new write can never slip through as "not listed".
"""

from __future__ import annotations

from chainnode.security.certs import CLIENT_ROLES

AUDITOR = "auditor"
FULL_ACCESS_ROLES = ("user", "governor", "regulator")
# Methods that submit or change anything.
WRITE_METHODS = frozenset({"sendTransaction"})
# Methods that only read (subscriptions included).
READ_METHODS = frozenset({
    "getTransactionReceipt", "getTransaction", "call", "getCode",
    "getBlockNumber", "getBlockByNumber", "getBlockByHash", "getBlockHashByNumber",
    "getSealerList", "getObserverList", "getNodeListByType", "getPbftView", "getConsensusStatus",
    "getSystemConfigByKey", "getSyncStatus", "getPeers", "getPendingTxSize", "getTotalTransactionCount",
    "getGroupList", "getGroupInfo", "getClientVersion",
    "getProposal", "getProposals", "getCommittee", "getAccountStatus", "getMethodAcl",
    "getRevokedCertificates", "resolveName", "getNames", "getPendingMembership", "getStateProof",
    "subscribe", "unsubscribe",
})

assert set(FULL_ACCESS_ROLES) | {AUDITOR} == set(CLIENT_ROLES), "every client role has a rule here"
assert not WRITE_METHODS & READ_METHODS


def may_call(role: str, method: str) -> bool:
    """Whether a client certificate of `role` may call `method`."""
    if role in FULL_ACCESS_ROLES:
        return True
    if role == AUDITOR:
        return method in READ_METHODS
    return False  # not a client role: nothing


def refusal(role: str, method: str) -> str | None:
    """None if `role` may call `method`; else the message the client gets (it names the
    role, the method and what to do)."""
    if may_call(role, method):
        return None
    if role == AUDITOR:
        return (
            f"forbidden: a client certificate of role {role!r} is read-only and may not call {method}; "
            "to send transactions, connect with a certificate of role user (`chainnode ca issue-client --role user`)"
        )
    return f"forbidden: role {role!r} may not call {method}; use a client certificate of role {', '.join(FULL_ACCESS_ROLES)} or {AUDITOR}"

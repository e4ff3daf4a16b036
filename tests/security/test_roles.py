"""Client roles: what each may call on the channel port."""

import pytest

from chainnode.rpc.methods import METHODS
from chainnode.security.certs import CLIENT_ROLES, issue
from chainnode.security.roles import READ_METHODS, WRITE_METHODS, may_call, refusal
from tests.security.pki import NOW_MS, make_pki


def test_every_rpc_method_is_classified_read_or_write():
    # A method added to the node must be classified here before auditors may call it.
    assert set(METHODS) | {"subscribe", "unsubscribe"} == READ_METHODS | WRITE_METHODS
    assert WRITE_METHODS == {"sendTransaction"}


@pytest.mark.parametrize("role", ["user", "governor", "regulator"])
def test_full_roles_call_everything(role):
    assert all(may_call(role, m) and refusal(role, m) is None for m in READ_METHODS | WRITE_METHODS | {"aMethodAddedLater"})


def test_an_auditor_reads_only():
    assert all(may_call("auditor", m) for m in READ_METHODS)
    assert not may_call("auditor", "sendTransaction") and not may_call("auditor", "aMethodAddedLater")
    message = refusal("auditor", "sendTransaction")
    assert "'auditor'" in message and "sendTransaction" in message and "read-only" in message and "--role user" in message


def test_unknown_roles_call_nothing():
    assert not may_call("", "getBlockNumber") and not may_call("admin", "getBlockNumber")
    assert "role 'admin' may not call getBlockNumber" in refusal("admin", "getBlockNumber")


def test_an_auditor_certificate_can_be_issued():
    assert "auditor" in CLIENT_ROLES
    p = make_pki(leaf_kind="client")
    _, pub = p["suite"].generate_keypair()
    cert = issue(kind="client", subject="audit-office", organisation="Bank A", role="auditor", public_key=pub, peer_id="", suite="sm",
                 issuer_priv=p["ag_priv"], issuer=p["agency"], not_before_ms=NOW_MS, not_after_ms=NOW_MS + 1)
    assert cert.role == "auditor"

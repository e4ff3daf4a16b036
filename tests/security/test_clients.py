"""The node's check of a dApp's client certificate chain, and the per-block recheck."""

import pytest

from chainnode.security.certs import CertChain, CertificateError
from chainnode.security.clients import client_fix, recheck_client, verify_client
from tests.security.pki import DAY_MS, NOW_MS, make_pki


@pytest.fixture(scope="module")
def pki():
    return make_pki(leaf_kind="client")


def refused(chain_bytes, ca, now_ms=NOW_MS, revoked=()) -> CertificateError:
    with pytest.raises(CertificateError) as info:
        verify_client(chain_bytes, (ca,), now_ms, revoked)
    return info.value


def test_a_valid_client_chain_is_accepted(pki):
    chain = verify_client(pki["chain"].encode(), (make_pki()["ca"], pki["ca"]), NOW_MS, ())  # whichever root issued it
    assert chain == pki["chain"] and chain.leaf.kind == "client" and chain.root == pki["ca"]


def test_each_refusal_has_its_reason_and_a_fix(pki):
    cases = {
        "no certificate": refused(b"", pki["ca"]),
        "bad certificate": refused(b"\x00garbage", pki["ca"]),
        "wrong CA": refused(pki["chain"].encode(), make_pki()["ca"]),
        "certificate expired": refused(pki["chain"].encode(), pki["ca"], now_ms=NOW_MS + 2 * DAY_MS),
        "certificate not yet valid": refused(pki["chain"].encode(), pki["ca"], now_ms=NOW_MS - 2 * DAY_MS),
        "certificate revoked": refused(pki["chain"].encode(), pki["ca"], revoked=[pki["leaf"].revocation_id(pki["agency"])]),
        "not a client certificate": (lambda p: refused(p["chain"].encode(), p["ca"]))(make_pki(leaf_kind="node")),
    }
    for reason, exc in cases.items():
        assert exc.reason == reason, (reason, exc)
        assert client_fix(reason)
    assert "issue-client" in client_fix("certificate revoked") and "another consortium" in client_fix("wrong CA")
    assert "--key" in client_fix("certificate key mismatch")
    # a revoked agency takes its clients with it
    assert refused(pki["chain"].encode(), pki["ca"], revoked=[pki["agency"].revocation_id(pki["ca"])]).reason == "certificate revoked"


def test_recheck_sees_what_changes_after_the_handshake(pki):
    chain: CertChain = pki["chain"]
    recheck_client(chain, NOW_MS, ())
    with pytest.raises(CertificateError) as info:
        recheck_client(chain, NOW_MS, [chain.leaf.revocation_id(chain.agency)])
    assert info.value.reason == "certificate revoked"
    with pytest.raises(CertificateError) as info:
        recheck_client(chain, NOW_MS + 2 * DAY_MS, ())
    assert info.value.reason == "certificate expired"
    with pytest.raises(CertificateError) as info:
        recheck_client(chain, NOW_MS, [chain.agency.revocation_id(chain.root)])
    assert info.value.reason == "certificate revoked" and "agency" in str(info.value)

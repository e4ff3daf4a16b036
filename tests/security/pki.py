"""A small consortium PKI for the security tests: root CA -> agency -> node or client."""

from chainnode.crypto import get_suite
from chainnode.network.identity import peer_id_from_seed
from chainnode.security.certs import CertChain, issue

DAY_MS = 86_400_000
NOW_MS = 1_800_000_000_000
PEER_ID = peer_id_from_seed(b"\x07" * 32)


def make_pki(suite_name: str = "sm", *, leaf_kind: str = "node", leaf_window: tuple[int, int] = (NOW_MS - DAY_MS, NOW_MS + DAY_MS)) -> dict:
    """{"suite", "ca_priv", "ag_priv", "ca", "agency", "leaf", "chain"}: fresh keys, valid at NOW_MS."""
    suite = get_suite(suite_name)
    ca_priv, ca_pub = suite.generate_keypair()
    ag_priv, ag_pub = suite.generate_keypair()
    _, leaf_pub = suite.generate_keypair()
    window = dict(not_before_ms=NOW_MS - 10 * DAY_MS, not_after_ms=NOW_MS + 10 * DAY_MS)
    ca = issue(kind="ca", subject="Consortium CA", organisation="Consortium", role="", public_key=ca_pub, peer_id="", suite=suite_name,
               issuer_priv=ca_priv, issuer=None, **window)
    agency = issue(kind="agency", subject="Bank A", organisation="Bank A", role="", public_key=ag_pub, peer_id="", suite=suite_name,
                   issuer_priv=ca_priv, issuer=ca, **window)
    node = leaf_kind == "node"
    leaf = issue(
        kind=leaf_kind, subject="node0" if node else "alice", organisation="Bank A", role="sealer" if node else "user", public_key=leaf_pub,
        peer_id=PEER_ID if node else "", suite=suite_name, issuer_priv=ag_priv, issuer=agency, not_before_ms=leaf_window[0],
        not_after_ms=leaf_window[1],
    )
    return dict(suite=suite, ca_priv=ca_priv, ag_priv=ag_priv, ca=ca, agency=agency, leaf=leaf, chain=CertChain(leaf, agency, ca))

"""Certificates in the handshake: real Network services on loopback, each presenting its
certificate chain in the Hello and checking its peers' with chainnode.security.admission.Admission
(the node's own verifier) against one consortium CA."""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import trio

from chainnode.crypto import get_suite
from chainnode.network import NetworkLimits, peer_id_from_seed
from chainnode.security.admission import Admission
from chainnode.security.certs import CertChain, Certificate, issue
from tests.network.cluster import SUITE_NAME, Member, make_members, make_network, start, until_refused_again

DAY_MS = 86_400_000


def _now_ms() -> int:
    return int(time.time() * 1000)


class Pki:
    """A CA with two agencies, in memory; issues node chains for test members."""

    def __init__(self, ca_name: str = "Consortium CA") -> None:
        self.suite = get_suite(SUITE_NAME)
        now = _now_ms()
        self.window = dict(not_before_ms=now - DAY_MS, not_after_ms=now + 30 * DAY_MS)
        self.ca_priv, ca_pub = self.suite.generate_keypair()
        self.ca = self._issue("ca", ca_name, ca_pub, self.ca_priv, None)
        self.agencies = {}
        for name in ("Bank A", "Bank B"):
            priv, pub = self.suite.generate_keypair()
            self.agencies[name] = (priv, self._issue("agency", name, pub, self.ca_priv, self.ca))

    def _issue(self, kind, subject, pub, issuer_priv, issuer, **kw):
        fields = dict(kind=kind, subject=subject, organisation=subject, role="", public_key=pub, peer_id="",
                      suite=SUITE_NAME, issuer_priv=issuer_priv, issuer=issuer, **self.window)
        fields.update(kw)
        return issue(**fields)

    def chain(self, m: Member, *, name: str | None = None, agency: str = "Bank A", signed_by: str | None = None,
              pub: bytes | None = None, peer_id: str | None = None, window: tuple[int, int] | None = None) -> CertChain:
        """m's chain [node, agency]; the keyword arguments make it wrong in one way."""
        ag_priv, ag_cert = self.agencies[agency]
        signer_priv, signer = self.agencies[signed_by] if signed_by else (ag_priv, ag_cert)
        extra = dict(not_before_ms=window[0], not_after_ms=window[1]) if window else {}
        leaf = self._issue(
            "node", name or f"node{m.index}", pub or m.pub, signer_priv, signer, organisation=signer.organisation, role=m.role,
            peer_id=peer_id or m.peer_id, **extra,
        )
        return CertChain(leaf, ag_cert, self.ca)

    def admission(self, chain: CertChain | None, revoked: set[bytes] | None = None) -> Admission:
        revoked = revoked if revoked is not None else set()
        return Admission((self.ca,), chain.encode() if chain else b"", chain, lambda: revoked)


def _net(m: Member, admitted, pki: Pki, chain: CertChain | None, revoked=None, limits=None, credentials=None):
    # The node passes exactly these: Network(..., **admission.network_kwargs()).
    kwargs = pki.admission(chain, revoked).network_kwargs()
    if credentials is not None:
        kwargs["credentials"] = credentials
    return make_network(m, admitted, limits=limits, **kwargs)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chainnode.network"]


async def _until(predicate, timeout_s: float = 15.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.05)


async def test_valid_chains_connect_and_each_bad_chain_is_refused_with_its_reason(caplog):
    caplog.set_level(logging.INFO)
    pki, other = Pki(), Pki("Other CA")
    a, b, *bad = make_members(11)
    now = _now_ms()
    revoked: set[bytes] = set()
    _, stranger_pub = get_suite(SUITE_NAME).generate_keypair()
    stranger_peer = peer_id_from_seed(b"\x05" * 32)
    revoked_chain = pki.chain(bad[7])
    revoked.add(revoked_chain.leaf.revocation_id(revoked_chain.agency))
    tampered = pki.chain(bad[4])
    der = bytearray(tampered.leaf.der)
    der[-1] ^= 1  # the signature's last byte
    tampered = CertChain(Certificate.decode(bytes(der)), tampered.agency)
    other_chain = other.chain(bad[2])
    # (member, chain it presents, credentials override, reason the others log)
    cases = [
        (bad[0], pki.chain(bad[0], window=(now - 30 * DAY_MS, now - DAY_MS)), None, "certificate expired"),
        (bad[1], pki.chain(bad[1], window=(now + DAY_MS, now + 30 * DAY_MS)), None, "certificate not yet valid"),
        (bad[2], other_chain, None, "wrong CA"),
        (bad[3], pki.chain(bad[3], signed_by="Bank B"), None, "agency mismatch"),
        (bad[4], tampered, None, "bad certificate signature"),
        (bad[5], pki.chain(bad[5], pub=stranger_pub), None, "certificate key mismatch"),
        (bad[6], pki.chain(bad[6], peer_id=stranger_peer), None, "certificate peer id mismatch"),
        (bad[7], revoked_chain, None, "certificate revoked"),
        (bad[8], None, b"", "no certificate"),
    ]
    everyone = [a, b, *bad]
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, _net(a, everyone, pki, pki.chain(a), revoked))
        rb = await start(nursery, _net(b, everyone, pki, pki.chain(b, agency="Bank B"), revoked))
        runs = []
        for m, chain, creds, _ in cases:
            # Each bad peer knows only a and b (and trusts the CA whose chain it holds).
            issuer = other if chain is other_chain else pki
            runs.append(await start(nursery, _net(m, [a, b, m], issuer, chain, credentials=creds)))
        await _until(lambda: ra.net.connected_peers() == [b.index] and rb.net.connected_peers() == [a.index])
        for r in (ra, rb):
            await _until(lambda: all(r.net.counters.get("disconnects:" + reason.replace(" ", "_"), 0) >= 1
                                     for *_, reason in cases))
        # Refused peers learn why from the Verdict (both sides log).
        # (The wrong-CA peer trusts its own CA, so it refuses a and b in turn.)
        await _until(lambda: all(run.net.counters.get("disconnects:refused_by_peer", 0) >= 1
                                 or run.net.counters.get("disconnects:wrong_CA", 0) >= 1 for run in runs))
        messages = _messages(caplog)
        for (m, chain, _, reason), run in zip(cases, runs):
            for me, r in ((a, ra), (b, rb)):
                prefix = f"n{me.index}: refused peer {m.peer_id} (peer {m.index}): {reason}: "
                line = next((x for x in messages if x.startswith(prefix)), None)
                assert line is not None, f"no refusal line for {reason}: {[x for x in messages if m.peer_id in x]}"
                assert "disconnected, banned for" in line
                if chain is not None:
                    assert chain.leaf.subject in line  # the message names the certificate
                assert m.index not in r.net.connected_peers()
            if chain is other_chain:
                assert any(x.startswith(f"n{m.index}: refused peer {a.peer_id} (peer {a.index}): wrong CA: ") for x in messages)
            else:
                assert any(x.startswith(f"n{m.index}: peer ") and f"refused our secure channel: {reason}: " in x for x in messages), reason
            assert run.net.connected_peers() == []
        revoked_line = next(x for x in messages if x.startswith(f"n{a.index}: refused peer {bad[7].peer_id}"))
        assert f"node certificate 'node{bad[7].index}' (serial {revoked_chain.leaf.serial:x}) is revoked" in revoked_line
        assert ra.net.connected_peers() == [b.index] and rb.net.connected_peers() == [a.index]
        nursery.cancel_scope.cancel()


async def test_recheck_disconnects_a_peer_once_its_serial_is_revoked(caplog):
    caplog.set_level(logging.INFO)
    pki = Pki()
    a, b, c = make_members(3)
    revoked: set[bytes] = set()  # what the node's callable would read from chain state
    chains = {m.index: pki.chain(m) for m in (a, b, c)}
    everyone = [a, b, c]
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, _net(a, everyone, pki, chains[a.index], revoked))
        # b relies on its periodic recheck alone (a certificate also expires without blocks).
        rb = await start(nursery, _net(b, everyone, pki, chains[b.index], revoked, limits=NetworkLimits(credentials_recheck_ms=200)))
        rc = await start(nursery, _net(c, everyone, pki, chains[c.index], revoked))
        for r in (ra, rb, rc):
            await r.net.wait_connected(2, 15)
        assert set(ra.net.security_protocols().values()) == {"/chainnode/noise-sm/1"}  # live SM channels are cut
        assert ra.net.recheck_credentials() == []  # nothing revoked yet: nobody leaves
        revoked.add(chains[c.index].leaf.revocation_id(chains[c.index].agency))
        assert ra.net.recheck_credentials() == [c.index]
        await _until(lambda: ra.net.connected_peers() == [b.index] and rb.net.connected_peers() == [a.index])
        line = next(x for x in _messages(caplog) if x.startswith(f"n{a.index}: refused peer {c.peer_id} (peer {c.index}): certificate revoked: "))
        assert f"{chains[c.index].leaf.serial:x}" in line
        assert any(x.startswith(f"n{b.index}: refused peer {c.peer_id}") for x in _messages(caplog))
        # c and the members keep redialing (whoever dials); c is refused from now on, inside
        # the SM channel's handshake (its Verdict tells c why).
        await until_refused_again(ra.net, rb.net)
        await _until(lambda: any(x.startswith(f"n{c.index}: peer ") and "refused our secure channel: certificate revoked: " in x
                                 for x in _messages(caplog)))
        assert ra.net.connected_peers() == [b.index]
        assert rc.net.connected_peers() == []
        nursery.cancel_scope.cancel()

"""Only admitted peers, holding the listed consensus key and running our genesis, connect."""

from __future__ import annotations

import logging

import trio

from chainnode.crypto import get_suite
from tests.network.cluster import SUITE_NAME, bare_host, make_members, make_network, sorted_by_peer_id, start, until_refused_again


async def _until(predicate, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not predicate():
            await trio.sleep(0.02)


def _messages(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "chainnode.network"]


async def test_peer_not_in_the_admitted_list_is_disconnected(caplog):
    caplog.set_level(logging.INFO)
    # The intruder has the lowest peer id, so by the dial rule it is the one dialing.
    intruder, a, b = sorted_by_peer_id(make_members(3))
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, make_network(a, [a, b]))
        rb = await start(nursery, make_network(b, [a, b]))
        rx = await start(nursery, make_network(intruder, [intruder, a, b]))
        await ra.net.wait_connected(1, 10)
        await _until(lambda: ra.net.counters.get("refused:not_admitted", 0) >= 1
                     and rb.net.counters.get("refused:not_admitted", 0) >= 1)
        assert any(m.startswith(f"n{a.index}: refused connection from {intruder.peer_id}: not admitted; banned for ")
                   for m in _messages(caplog))
        # The intruder's operator is told why, in the handshake's Verdict.
        await _until(lambda: any(m.startswith(f"n{intruder.index}: peer ") and "refused our secure channel: unknown peer: "
                                 "this node is not a member of the chain" in m for m in _messages(caplog)))
        await trio.sleep(0.3)
        assert ra.net.connected_peers() == [b.index]
        assert rb.net.connected_peers() == [a.index]
        assert rx.net.connected_peers() == []
        nursery.cancel_scope.cancel()


async def test_wrong_genesis_is_refused_and_logged(caplog):
    caplog.set_level(logging.INFO)
    a, b, w = make_members(3)
    everyone = [a, b, w]
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, make_network(a, everyone))
        rb = await start(nursery, make_network(b, everyone))
        rw = await start(nursery, make_network(w, everyone, genesis=b"\x07" * 32))
        await ra.net.wait_connected(1, 10)
        await _until(lambda: ra.net.counters.get("disconnects:wrong_genesis", 0) >= 1
                     and rb.net.counters.get("disconnects:wrong_genesis", 0) >= 1)
        line = next(m for m in _messages(caplog) if m.startswith(f"n{a.index}: peer {w.index} ") and "wrong genesis" in m)
        assert "misbehaved" in line and "disconnected" in line
        assert ra.net.connected_peers() == [b.index]
        assert rw.net.connected_peers() == []
        nursery.cancel_scope.cancel()


async def test_consensus_key_mismatch_is_refused_and_logged(caplog):
    caplog.set_level(logging.INFO)
    a, b, k = make_members(3)
    # k runs with a consensus key other than the one the chain lists for it.
    other_priv, other_pub = get_suite(SUITE_NAME).generate_keypair()
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, make_network(a, [a, b, k]))
        rb = await start(nursery, make_network(b, [a, b, k]))
        rk = await start(nursery, make_network(k, [a, b, k], priv=other_priv, pub=other_pub))
        await ra.net.wait_connected(1, 10)
        await _until(lambda: ra.net.counters.get("disconnects:key_mismatch", 0) >= 1
                     and rb.net.counters.get("disconnects:key_mismatch", 0) >= 1)
        assert any(f"n{a.index}: peer {k.index} " in m and "key mismatch" in m for m in _messages(caplog))
        assert ra.net.connected_peers() == [b.index]
        assert rk.net.connected_peers() == []
        nursery.cancel_scope.cancel()


async def test_set_admitted_disconnects_removed_peers_and_admits_new_ones():
    # c, the one removed, has the lowest peer id: it dials the others (the dial rule), so
    # its redials are what they refuse.
    c, a, b = sorted_by_peer_id(make_members(3))
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, make_network(a, [a, b, c]))
        rb = await start(nursery, make_network(b, [a, b, c]))
        rc = await start(nursery, make_network(c, [a, b, c]))
        await ra.net.wait_connected(2, 10)
        # Governance removes c.
        ra.net.set_admitted([a.info, b.info])
        rb.net.set_admitted([a.info, b.info])
        await _until(lambda: ra.net.connected_peers() == [b.index] and rb.net.connected_peers() == [a.index])
        await until_refused_again(ra.net, rb.net)  # c keeps trying; it stays out
        assert ra.net.connected_peers() == [b.index]
        assert rc.net.connected_peers() == []
        # ...and adds it back.
        ra.net.set_admitted([a.info, b.info, c.info])
        rb.net.set_admitted([a.info, b.info, c.info])
        await ra.net.wait_connected(2, 10)
        await rc.net.wait_connected(2, 10)
        nursery.cancel_scope.cancel()


async def test_plaintext_dialer_is_refused():
    """A host offering only /plaintext/2.0.0 cannot connect (py-libp2p accepts plaintext by
    default: research trap 1)."""
    import multiaddr
    from libp2p import new_host
    from libp2p.crypto.ed25519 import create_new_key_pair
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo as Libp2pPeerInfo
    from libp2p.security.insecure.transport import PLAINTEXT_PROTOCOL_ID, InsecureTransport

    a, b = make_members(2)
    kp = create_new_key_pair(b"\x09" * 32)
    plain = new_host(key_pair=kp, sec_opt={TProtocol(PLAINTEXT_PROTOCOL_ID): InsecureTransport(kp)})
    async with trio.open_nursery() as nursery:
        ra = await start(nursery, make_network(a, [a, b]))
        async with plain.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            failed = False
            try:
                with trio.fail_after(5):
                    await plain.connect(Libp2pPeerInfo(a.info.id, a.info.multiaddrs))
            except Exception:
                failed = True
            assert failed
            assert ra.net.connected_peers() == []
            await plain.get_network().close_peer(a.info.id)
        nursery.cancel_scope.cancel()


async def test_nothing_is_served_before_the_hello_verifies():
    """An admitted peer id (right host key) that skips the handshake gets no service:
    its request stream is reset and the handler never runs; the connection is dropped."""
    import multiaddr
    from libp2p.custom_types import TProtocol
    from libp2p.peer.peerinfo import PeerInfo as Libp2pPeerInfo

    from chainnode.network import NetworkLimits

    a, s = make_members(2)
    calls = []

    async def echo(peer_index: int, payload: bytes) -> bytes:
        calls.append(peer_index)
        return payload

    # s's real keys pass the secure channel, but no chainnode protocol runs behind it.
    silent = bare_host(s, [a, s])
    async with trio.open_nursery() as nursery:
        net = make_network(a, [a, s], limits=NetworkLimits(handshake_timeout_ms=500))
        net.register_handler("/chainnode/echo/1", echo)
        await start(nursery, net)
        async with silent.run([multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
            refused = False
            try:
                with trio.fail_after(5):
                    await silent.connect(Libp2pPeerInfo(a.info.id, a.info.multiaddrs))
                    stream = await silent.new_stream(a.info.id, [TProtocol("/chainnode/echo/1")])
                    await stream.write(b"\x00\x00\x00\x01x")
                    data = await stream.read(100)
                    refused = not data
            except Exception:
                refused = True
            assert refused and calls == []
            await _until(lambda: sum(v for k, v in net.counters.items() if k.startswith("disconnects:handshake")) >= 1)
            assert net.connected_peers() == []
            await silent.get_network().close_peer(a.info.id)
        nursery.cancel_scope.cancel()

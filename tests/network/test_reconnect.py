"""The supervisor reconnects peers that die and come back on the same port."""

from __future__ import annotations

import logging
import time

import trio

from chainnode.network import PeerInfo
from tests.network.cluster import drain, make_members, make_network, sorted_by_peer_id, start


def _failed_dials(caplog, index: int) -> int:
    return sum(1 for r in caplog.records if r.getMessage().startswith(f"dial peer {index} failed"))


async def _restart_and_reconnect(nursery, caplog, survivor_member, restarting_member, everyone) -> float:
    caplog.set_level(logging.DEBUG, logger="chainnode.network")
    survivor = await start(nursery, make_network(survivor_member, everyone))
    restarting = await start(nursery, make_network(restarting_member, everyone))
    await survivor.net.wait_connected(1, 10)

    restarting.stop()
    with trio.fail_after(5):
        await restarting.stopped.wait()
    with trio.fail_after(5):
        while survivor.net.connected_peers():
            await trio.sleep(0.01)
    if survivor_member is sorted_by_peer_id(everyone)[0]:
        # The survivor dials: stay down for several failed dials. Without clearing libp2p's
        # negative dial cache, the peer would then be unreachable for 60 s.
        with trio.fail_after(10):
            while _failed_dials(caplog, restarting_member.index) < 3:
                await trio.sleep(0.01)

    t0 = time.monotonic()
    again = await start(nursery, make_network(restarting_member, everyone))
    await survivor.net.wait_connected(1, 8)
    await again.net.wait_connected(1, 8)
    elapsed = time.monotonic() - t0

    # The new session carries frames both ways.
    assert survivor.net.send(restarting_member.index, b"welcome back")
    assert again.net.send(survivor_member.index, b"thanks")
    assert await drain(again.net.incoming, 1, 5) == [(survivor_member.index, b"welcome back")]
    assert await drain(survivor.net.incoming, 1, 5) == [(restarting_member.index, b"thanks")]
    return elapsed


async def test_restarted_peer_is_redialed_by_the_supervisor(caplog):
    low, high = sorted_by_peer_id(make_members(2))
    async with trio.open_nursery() as nursery:
        # The survivor has the lower peer id, so its supervisor does the redialing.
        elapsed = await _restart_and_reconnect(nursery, caplog, low, high, [low, high])
        assert elapsed < 6.0
        nursery.cancel_scope.cancel()


async def test_restarted_dialer_reconnects_on_start(caplog):
    low, high = sorted_by_peer_id(make_members(2))
    async with trio.open_nursery() as nursery:
        elapsed = await _restart_and_reconnect(nursery, caplog, high, low, [low, high])
        assert elapsed < 6.0
        nursery.cancel_scope.cancel()


async def test_a_wrong_address_that_reaches_this_node_itself_is_not_held_against_the_peer(caplog):
    """The chain lists, for the higher peer, the lower one's own address (a wildcard listen
    address learnt, a stale address after a move): the lower peer's dials reach itself. That
    is its address book's fault: logged as such, the peer not banned, and once the address is
    right (a set-addrs vote) the two connect at once."""
    caplog.set_level(logging.INFO, logger="chainnode.network")
    low, high = sorted_by_peer_id(make_members(2))
    wrong = PeerInfo(high.index, high.peer_id, list(low.info.addrs), high.pub, high.role)
    async with trio.open_nursery() as nursery:
        dialer = await start(nursery, make_network(low, [low.info, wrong]))
        await start(nursery, make_network(high, [low, high]))
        with trio.fail_after(10):
            while dialer.net.counters.snapshot().get("disconnects:dialed_ourselves", 0) < 2:
                await trio.sleep(0.01)
        assert any("reached this node itself" in r.getMessage() for r in caplog.records)
        assert not dialer.net._penalties.banned(high.peer_id, time.monotonic() * 1000)
        dialer.net.set_admitted([low.info, high.info])
        await dialer.net.wait_connected(1, 8)
        nursery.cancel_scope.cancel()

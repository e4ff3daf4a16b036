"""The supervisor reconnects peers that die and come back on the same port."""

from __future__ import annotations

import logging
import time

import trio

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

"""The supervisor reconnects peers that die and come back on the same port."""

from __future__ import annotations

import time

import trio

from tests.network.cluster import drain, make_network, make_members, sorted_by_peer_id, start


async def _restart_and_reconnect(nursery, survivor_member, restarting_member, everyone) -> float:
    survivor = await start(nursery, make_network(survivor_member, everyone))
    restarting = await start(nursery, make_network(restarting_member, everyone))
    await survivor.net.wait_connected(1, 10)

    restarting.stop()
    with trio.fail_after(5):
        await restarting.stopped.wait()
    with trio.fail_after(5):
        while survivor.net.connected_peers():
            await trio.sleep(0.01)
    # Stay down long enough for several failed dials: without clearing libp2p's negative
    # dial cache, the peer would then be unreachable for 60 s.
    await trio.sleep(1.5)

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


async def test_restarted_peer_is_redialed_by_the_supervisor():
    low, high = sorted_by_peer_id(make_members(2))
    async with trio.open_nursery() as nursery:
        # The survivor has the lower peer id, so its supervisor does the redialing.
        elapsed = await _restart_and_reconnect(nursery, low, high, [low, high])
        assert elapsed < 6.0
        nursery.cancel_scope.cancel()


async def test_restarted_dialer_reconnects_on_start():
    low, high = sorted_by_peer_id(make_members(2))
    async with trio.open_nursery() as nursery:
        elapsed = await _restart_and_reconnect(nursery, high, low, [low, high])
        assert elapsed < 6.0
        nursery.cancel_scope.cancel()

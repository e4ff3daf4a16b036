"""The advertised-address check and name resolution (chainnode/network/reachability.py), against
real listeners on loopback."""

from __future__ import annotations

from functools import partial

import trio

from chainnode.network.reachability import MULTISTREAM, Reachability, probe, resolve, resolve_all
from tests.helpers import free_port


async def _serve(nursery, handler) -> int:
    listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def _libp2p_like(stream) -> None:
    header = bytes([len(MULTISTREAM)]) + MULTISTREAM
    assert await stream.receive_some(64) == header
    await stream.send_all(header)


async def _not_libp2p(stream) -> None:
    await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")


async def test_a_libp2p_listener_is_reachable_and_others_say_why_not():
    async with trio.open_nursery() as nursery:
        good = await _serve(nursery, _libp2p_like)
        other = await _serve(nursery, _not_libp2p)
        closed = free_port()
        assert await probe(f"/ip4/127.0.0.1/tcp/{good}") == ""
        assert await probe(f"/dns/localhost/tcp/{good}") == ""  # resolved by the system resolver (/etc/hosts)
        assert "answered, but not as a libp2p node" in await probe(f"/ip4/127.0.0.1/tcp/{other}")
        assert "refused" in (await probe(f"/ip4/127.0.0.1/tcp/{closed}")).lower()
        assert "does not resolve" in await probe("/dns/no-such-host.invalid/tcp/1")

        check = Reachability([f"/ip4/127.0.0.1/tcp/{good}", f"/ip4/127.0.0.1/tcp/{closed}"], "n0")
        assert [s["reachable"] for s in check.status()] == [None, None]  # not checked yet
        await check.check_once()
        first, second = check.status()
        assert first["reachable"] is True and first["checkedMs"] > 0
        assert second["reachable"] is False and second["error"]
        nursery.cancel_scope.cancel()


async def test_resolution_keeps_ip_addresses_and_reports_each_failed_name():
    assert [str(m) for m in await resolve("/ip4/10.0.0.1/tcp/5")] == ["/ip4/10.0.0.1/tcp/5"]
    assert "/ip4/127.0.0.1/tcp/5" in [str(m) for m in await resolve("/dns4/localhost/tcp/5")]
    resolved, failed = await resolve_all(["/dns/no-such-host.invalid/tcp/1", "/ip6/::1/tcp/7"])
    assert [str(m) for m in resolved] == ["/ip6/::1/tcp/7"] and len(failed) == 1 and "no-such-host.invalid" in failed[0]

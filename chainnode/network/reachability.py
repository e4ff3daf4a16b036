"""Dial addresses on the wire: DNS names resolved with the system resolver, and the check that
a node is reachable at the addresses it advertises.

Resolution: py-libp2p resolves `/dns` multiaddrs itself with dnspython, which asks the
name servers directly and ignores /etc/hosts and nsswitch; operators name their nodes in
/etc/hosts and internal DNS alike, so we resolve with getaddrinfo (the system resolver)
and hand libp2p IP addresses. Each dial resolves again, so a moved node is found.

Reachability: at start and then every `interval_s`, the node connects to each address it
advertises (node.toml `[network] advertise`, else its addresses on chain), as another node
would, and checks that a libp2p listener answers the multistream header there. It then
closes: no secure channel is started, so nothing is counted against the address. A NAT
without hairpinning makes the node's own public address look unreachable from inside;
the log line says so. The result is in the node's status (getClientVersion "advertised").
"""

from __future__ import annotations

import logging
import socket
import time

import multiaddr
import trio

from chainnode.protocol.dialaddr import split_dial_addr

log = logging.getLogger("chainnode.network")

MULTISTREAM = b"/multistream/1.0.0\n"
PROBE_TIMEOUT_S = 5.0
RESOLVE_TIMEOUT_S = 5.0
ADDRESSES_PER_NAME_MAX = 4


async def _endpoints(addr: str) -> list[tuple[int, str, int]]:
    """(address family, IP, port) of a canonical dial address (chainnode/protocol/dialaddr.py),
    names through the system resolver; OSError (socket.gaierror) or trio.TooSlowError when a
    name does not resolve."""
    proto, host, port = split_dial_addr(addr)
    if proto in ("ip4", "ip6"):
        return [(socket.AF_INET if proto == "ip4" else socket.AF_INET6, host, port)]
    family = {"dns4": socket.AF_INET, "dns6": socket.AF_INET6}.get(proto, socket.AF_UNSPEC)
    with trio.fail_after(RESOLVE_TIMEOUT_S):
        infos = await trio.socket.getaddrinfo(host, port, family=family, type=socket.SOCK_STREAM)
    out: list[tuple[int, str, int]] = []
    for fam, _, _, _, sockaddr in infos:
        if (fam, sockaddr[0], port) not in out:
            out.append((fam, sockaddr[0], port))
    return out[:ADDRESSES_PER_NAME_MAX]


async def resolve(addr: str) -> list[multiaddr.Multiaddr]:
    """The IP multiaddrs of a canonical dial address; errors as `_endpoints`."""
    return [multiaddr.Multiaddr(f"/{'ip4' if fam == socket.AF_INET else 'ip6'}/{ip}/tcp/{port}") for fam, ip, port in await _endpoints(addr)]


async def resolve_all(addrs: list[str]) -> tuple[list[multiaddr.Multiaddr], list[str]]:
    """(every address that resolved, one line per name that did not)."""
    resolved, failed = [], []
    for addr in addrs:
        try:
            resolved += await resolve(addr)
        except (OSError, trio.TooSlowError) as exc:
            failed.append(f"{addr}: {exc or 'no answer in time'}")
    return resolved, failed


async def probe(addr: str) -> str:
    """"" if a libp2p listener answers at `addr`, else why not."""
    try:
        targets = await _endpoints(addr)
    except (OSError, trio.TooSlowError) as exc:
        return f"the name does not resolve here ({exc or 'no answer in time'})"
    errors = []
    for family, host, port in targets:
        try:
            with trio.fail_after(PROBE_TIMEOUT_S):
                # One plain connect (not open_tcp_stream's happy eyeballs): its error is the
                # kernel's own, "Connection refused" or "No route to host".
                sock = trio.socket.socket(family, socket.SOCK_STREAM)
                try:
                    await sock.connect((host, port))
                except BaseException:
                    sock.close()
                    raise
                async with trio.SocketStream(sock) as stream:
                    await stream.send_all(bytes([len(MULTISTREAM)]) + MULTISTREAM)
                    answer = b""
                    while len(answer) < 1 + len(MULTISTREAM):
                        chunk = await stream.receive_some(64)
                        if not chunk:
                            break
                        answer += chunk
            if answer[1:1 + len(MULTISTREAM)] == MULTISTREAM:
                return ""
            errors.append(f"{host}:{port} answered, but not as a libp2p node")
        except trio.TooSlowError:
            errors.append(f"{host}:{port}: no answer in {PROBE_TIMEOUT_S:.0f} s (a firewall dropping it?)")
        except OSError as exc:
            errors.append(f"{host}:{port}: {exc.strerror or exc}")
    return "; ".join(errors) or "no address"


class Reachability:
    """The last probe result of each advertised address (`status()`), refreshed by `run`."""

    def __init__(self, addrs: list[str], label: str) -> None:
        self.addrs = list(addrs)
        self._label = label
        self._results: dict[str, tuple[str, int]] = {}  # addr -> (error or "", checked at ms)

    def status(self) -> list[dict]:
        out = []
        for addr in self.addrs:
            error, checked_ms = self._results.get(addr, (None, 0))
            out.append({"addr": addr, "reachable": None if error is None else not error, "error": error or "", "checkedMs": checked_ms})
        return out

    async def check_once(self) -> None:
        for addr in self.addrs:
            error = await probe(addr)
            before = self._results.get(addr, (None, 0))[0]
            self._results[addr] = (error, int(time.time() * 1000))
            if error and error != before:
                log.warning("%s: the address this node advertises, %s, is unreachable from here: %s. Other nodes dial it: check "
                            "[network] advertise in node.toml (and the addresses on chain, `chainnode gov propose set-addrs`), the "
                            "firewall and any NAT port forwarding (a NAT without hairpinning also fails this check from inside)",
                            self._label, addr, error)
            elif not error and before:
                log.info("%s: the advertised address %s is reachable again", self._label, addr)

    async def run(self, interval_s: float, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await self.check_once()
            await trio.sleep(interval_s)

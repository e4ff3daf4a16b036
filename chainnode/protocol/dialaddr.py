"""Dial addresses of nodes: the multiaddrs a node is reached at, as genesis files, governance
proposals and node.toml give them.

A dial address is `/ip4/<IPv4>/tcp/<port>`, `/ip6/<IPv6>/tcp/<port>`, or a DNS name,
`/dns/<name>/tcp/<port>` (also `/dns4/`, `/dns6/`), nothing more: the peer id is known from
the chain, so `/p2p/...` is not part of it. Operators may also write the `host:port`
shorthand (`10.0.0.1:30300`, `[fd00::1]:30300`, `node1.bank-a.example:30300`), which
`parse_dial_addr` turns into the multiaddr. The check is pure string work, the same on every
node, so governance can run it in a block. Names are resolved only when dialed, with the
system resolver (chainnode/network/service.py), so /etc/hosts and the operator's DNS apply.
"""

from __future__ import annotations

import ipaddress
import re

ADDR_CHARS_MAX = 256
ADDRS_MAX = 8  # dial addresses per node: in genesis, on chain, in a request or node.toml
_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_DNS = ("dns", "dns4", "dns6")


class DialAddrError(ValueError):
    pass


def _port(text: str, addr: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536 or text != str(int(text)):
        raise DialAddrError(f"{addr!r}: the TCP port must be 1 to 65535")
    return int(text)


def _check_name(name: str, addr: str) -> None:
    labels = name.rstrip(".").split(".")
    if len(name) > 253 or not all(_LABEL.match(label) for label in labels) or labels[-1].isdigit():
        raise DialAddrError(f"{addr!r}: {name!r} is not a DNS name (letters, digits and hyphens, dot-separated)")


def parse_dial_addr(text: str) -> str:
    """The canonical multiaddr of a dial address or host:port shorthand; DialAddrError with
    the reason and an example otherwise."""
    if type(text) is not str or not text or len(text) > ADDR_CHARS_MAX:
        raise DialAddrError(f"a dial address is a string of at most {ADDR_CHARS_MAX} characters, like /ip4/10.0.0.1/tcp/30300")
    if not text.startswith("/"):
        return _shorthand(text)
    parts = text.split("/")
    if len(parts) != 5 or parts[0] or parts[3] != "tcp":
        raise DialAddrError(f"{text!r} is not a dial address: expected /ip4/<address>/tcp/<port>, /ip6/..., or /dns/<name>/tcp/<port>")
    proto, host, port = parts[1], parts[2], _port(parts[4], text)
    if proto in ("ip4", "ip6"):
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise DialAddrError(f"{text!r}: {host!r} is not an {'IPv4' if proto == 'ip4' else 'IPv6'} address") from None
        if ip.version != (4 if proto == "ip4" else 6):
            raise DialAddrError(f"{text!r}: {host!r} is not an {'IPv4' if proto == 'ip4' else 'IPv6'} address")
        return f"/{proto}/{ip.compressed}/tcp/{port}"
    if proto in _DNS:
        _check_name(host, text)
        return f"/{proto}/{host.lower()}/tcp/{port}"
    raise DialAddrError(f"{text!r}: {proto!r} is not ip4, ip6, dns, dns4 or dns6")


def _shorthand(text: str) -> str:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host:
        raise DialAddrError(f"{text!r} is neither a multiaddr nor host:port (like 10.0.0.1:30300 or node1.bank-a.example:30300)")
    port = _port(port_text, text)
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        _check_name(host, text)
        return f"/dns/{host.lower()}/tcp/{port}"
    return f"/ip{ip.version}/{ip.compressed}/tcp/{port}"


def split_dial_addr(addr: str) -> tuple[str, str, int]:
    """(protocol, host, port) of a canonical dial address."""
    _, proto, host, _, port = addr.split("/")
    return proto, host, int(port)


def is_dns(addr: str) -> bool:
    return addr.split("/")[1] in _DNS

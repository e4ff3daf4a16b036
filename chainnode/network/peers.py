"""The admitted peers: who may connect, by peer id, and which consensus key each holds.

The list comes from genesis (sealers and observers) and later from governance, through
`Network.set_admitted`. Lookups are by peer id (what libp2p authenticates) and by index
(what consensus uses).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import multiaddr
from libp2p.peer.id import ID

from chainnode.protocol.dialaddr import ADDRS_MAX

ROLES = ("sealer", "observer")
PEERS_MAX = 1024


@dataclass(frozen=True)
class PeerInfo:
    index: int
    peer_id: str  # base58, as printed by libp2p ("12D3KooW...")
    addrs: list[str] = field(default_factory=list)  # multiaddrs, e.g. /ip4/127.0.0.1/tcp/30300
    consensus_pub: bytes = b""
    role: str = "sealer"

    def __post_init__(self) -> None:
        if type(self.index) is not int or self.index < 0:
            raise ValueError(f"peer index must be a non-negative integer, got {self.index!r}")
        if self.role not in ROLES:
            raise ValueError(f"peer {self.index}: role must be one of {ROLES}, got {self.role!r}")
        if type(self.consensus_pub) is not bytes or not self.consensus_pub:
            raise ValueError(f"peer {self.index}: consensus_pub must be non-empty bytes")
        if len(self.addrs) > ADDRS_MAX:
            raise ValueError(f"peer {self.index}: more than {ADDRS_MAX} addresses")
        try:
            ID.from_base58(self.peer_id)
        except ValueError:
            raise ValueError(f"peer {self.index}: {self.peer_id!r} is not a valid peer id") from None
        for addr in self.addrs:
            try:
                multiaddr.Multiaddr(addr)
            except ValueError:  # multiaddr's StringParseError
                raise ValueError(f"peer {self.index}: {addr!r} is not a valid multiaddr") from None

    @property
    def id(self) -> ID:
        return ID.from_base58(self.peer_id)

    @property
    def multiaddrs(self) -> list[multiaddr.Multiaddr]:
        return [multiaddr.Multiaddr(a) for a in self.addrs]


class PeerTable:
    """An immutable view of the admitted peers, indexed both ways."""

    def __init__(self, peers: list[PeerInfo]) -> None:
        if len(peers) > PEERS_MAX:
            raise ValueError(f"more than {PEERS_MAX} admitted peers")
        self.by_index: dict[int, PeerInfo] = {}
        self.by_id: dict[str, PeerInfo] = {}
        for p in peers:
            if p.index in self.by_index:
                raise ValueError(f"duplicate peer index {p.index}")
            if p.peer_id in self.by_id:
                raise ValueError(f"duplicate peer id {p.peer_id}")
            self.by_index[p.index] = p
            self.by_id[p.peer_id] = p

    def get(self, peer: int | str | ID) -> PeerInfo | None:
        """Look a peer up by index, base58 peer id or libp2p ID."""
        if isinstance(peer, ID):
            return self.by_id.get(peer.to_base58())
        if isinstance(peer, int):
            return self.by_index.get(peer)
        return self.by_id.get(peer)

    def __iter__(self):
        return iter(self.by_index.values())

    def __len__(self) -> int:
        return len(self.by_index)

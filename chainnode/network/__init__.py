"""Networking of a chainnode: libp2p (the SM channel on an `sm` chain, else Noise; Yamux)
locked to the admitted peers.

See docs/network.md. The node uses `Network`, `PeerInfo`, `NetworkLimits`, `NetworkError`
and `peer_id_from_seed`/`host_seed_from_consensus_key`.

May import: chainnode.crypto, chainnode.protocol, chainnode.channel
"""

from chainnode.network.errors import NetworkError, PortInUse
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.network.limits import NetworkLimits
from chainnode.network.peers import PeerInfo
from chainnode.network.service import PBFT_PROTOCOL, CredentialsCheck, Network

# Request/response protocols the node is expected to register (docs/network.md).
TXFETCH_PROTOCOL = "/chainnode/txfetch/1"
SYNC_PROTOCOL = "/chainnode/sync/1"

__all__ = [
    "CredentialsCheck",
    "Network",
    "NetworkError",
    "NetworkLimits",
    "PBFT_PROTOCOL",
    "PeerInfo",
    "PortInUse",
    "SYNC_PROTOCOL",
    "TXFETCH_PROTOCOL",
    "host_seed_from_consensus_key",
    "peer_id_from_seed",
]

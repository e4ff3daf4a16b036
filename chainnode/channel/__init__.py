"""Secure channels: the Noise XX handshake with the chain's own algorithms, and the encrypted
streams it keys (docs/network.md, "Secure channels"; byte layout in docs/protocol.md).

An `sm` chain speaks `Noise_XX_SM2_SM4GCM_SM3` (ECDH on the SM2 curve, SM4-GCM, SM3); an
`ed25519` chain `Noise_XX_25519_ChaChaPoly_SHA256`. The Noise state machine is the
`noiseprotocol` package's; this package only plugs the SM functions into it (`functions`),
drives the three handshake messages with our payload and verdicts (`handshake`), and
frames messages over a trio stream (`stream`). The static key of a channel is the party's
certified key: a node's consensus key, a dApp's account key.

Used by chainnode.network (node to node, as a libp2p security transport), chainnode.rpc
(the node's channel port) and chainnode.client (the SDK).

May import: chainnode.crypto, chainnode.protocol
"""

from chainnode.channel.functions import protocol_name
from chainnode.channel.handshake import (
    ChannelError,
    ChannelRefused,
    Handshake,
    Payload,
    RefusedByPeer,
    Verdict,
    run_handshake,
)

__all__ = ["ChannelError", "ChannelRefused", "Handshake", "Payload", "RefusedByPeer", "Verdict", "protocol_name", "run_handshake"]

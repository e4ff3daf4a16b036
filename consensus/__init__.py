"""PBFT consensus as a sans-IO state machine (see docs/consensus.md).

    from consensus import Replica, ReplicaConfig, events
    replica = Replica(ReplicaConfig(), suite, priv, pub, sealer_pubs, head_height, head_hash, persisted)
    # governed voting weights (index order; None = every sealer counts 1): ..., weights=[...]
    actions = replica.start()
    actions = replica.handle(events.MessageReceived(sender_pub, data))

`consensus.sim` is the deterministic simulator that tests it (`python -m consensus.sim`).

May import: chainnode.crypto, chainnode.protocol (and, in the simulator only, the node-side driver it drives)
"""

from consensus import events
from consensus.replica import Replica, ReplicaConfig

__all__ = ["Replica", "ReplicaConfig", "events"]

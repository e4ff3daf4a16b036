"""Catching up: fetching certified blocks from peers that are ahead and applying them
(syncer), the head announcements that tell a node who is ahead (reactor), and starting
from the state at a certified height instead of from genesis (snapshot).

May import: chainnode.crypto, chainnode.protocol, chainnode.store, chainnode.system, chainnode.execution, chainnode.network
"""

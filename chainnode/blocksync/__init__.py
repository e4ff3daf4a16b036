"""Catching up: fetching certified blocks from peers that are ahead and applying them
(syncer), and the head announcements that tell a node who is ahead (reactor).

May import: chainnode.crypto, chainnode.protocol, chainnode.store, chainnode.execution, chainnode.network
"""

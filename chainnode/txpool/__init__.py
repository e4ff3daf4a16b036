"""Transactions waiting for a block: the pool with its admission checks and fair order
(pool), the fsynced journal behind every acknowledgement (journal), and their gossip
between nodes, first and again (gossip, regossip).

May import: chainnode.crypto, chainnode.protocol, chainnode.network
"""

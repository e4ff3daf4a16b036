"""One running node: the composition root that wires the packages into one trio nursery
tree (node), setting up a data directory (init), the node.toml config (config) and logs
(logs).

May import: chainnode.crypto, chainnode.protocol, chainnode.channel, chainnode.store, chainnode.security, chainnode.system,
chainnode.execution, chainnode.txpool, chainnode.blocksync, chainnode.pbft, chainnode.network, chainnode.rpc,
consensus, contracts
"""

"""The chain's own rules kept in its state: reserved addresses (addresses), the `sys/` keys
for members, sealers, config and access lists (state), governance proposals and votes
(governance), the system contracts that run them (contracts), and the genesis block that
starts it all (genesis).

May import: chainnode.crypto, chainnode.protocol, chainnode.store, chainnode.security, contracts
"""

"""Turning transactions into blocks: the executor runs a block's transactions on its
parent state (system calls, contract calls, receipts, roots), and the chain builds,
checks and commits proposals and certified blocks, one durable write per block.

May import: chainnode.crypto, chainnode.protocol, chainnode.store, chainnode.system, contracts
"""

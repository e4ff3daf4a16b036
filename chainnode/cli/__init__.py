"""The `chainnode` command for node operators: keys and init (main), certificates (ca),
governance (gov) and RPC console commands (rpc), with their shared helpers (common).

May import: chainnode.crypto, chainnode.protocol, chainnode.channel, chainnode.store, chainnode.security, chainnode.system,
chainnode.network, chainnode.rpc, chainnode.node, chainnode.client, contracts
"""

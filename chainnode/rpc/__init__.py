"""JSON-RPC 2.0 over HTTP and WebSocket (FISCO BCOS 3.x method names): the server with its
limits (server), the dispatcher (jsonrpc), the methods (methods), read-only calls on a
snapshot of the head (headview), subscriptions (subscriptions), JSON views of chain
objects (jsonview), the Prometheus metrics endpoint (metrics) and the channel port for
dApps over the SM secure channel (channel).

May import: chainnode.crypto, chainnode.protocol, chainnode.channel, chainnode.security, chainnode.store, chainnode.system,
chainnode.execution, chainnode.txpool, chainnode.blocksync, chainnode.network, contracts
"""

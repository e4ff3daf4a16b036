"""The node-side driver of the sans-IO PBFT core (consensus.Replica): it routes the core's
messages to the sealers by public key, runs its timers, builds and executes proposals on
the chain, persists its safety state, commits what it certifies, and tells it what the
chain decided (sealer-set and config changes, blocks that arrived by sync). The glue
between node and core is synchronous and deterministic (driver.PbftGlue), so the
simulator runs it under its seeds; a thin trio shell (driver.PbftDriver) does the IO.

May import: consensus, chainnode.protocol, chainnode.store, chainnode.system, chainnode.execution,
chainnode.txpool, chainnode.network
"""

"""The tester's tools: a local multi-node network in one command (cli, layout,
supervisor), load (bench), faults (chaos) and the business demos (demo).

May import: chainnode.crypto, chainnode.protocol, chainnode.channel, chainnode.store, chainnode.security, chainnode.system,
chainnode.network, chainnode.node, chainnode.client, contracts
"""

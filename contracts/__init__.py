"""Contracts: the sandboxed engine (`contracts.engine`) and, later, the system and business contracts.

May import: chainnode.crypto, chainnode.protocol
"""

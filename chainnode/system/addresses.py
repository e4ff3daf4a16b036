"""The reserved addresses of the system contracts (chainnode/system/contracts.py).

A module of its own so the SDK can name them without importing the node's execution code.
"""

from __future__ import annotations


def _reserved(n: int) -> bytes:
    return bytes(18) + n.to_bytes(2, "big")


COMMITTEE_ADDRESS = _reserved(0x1001)
CONSENSUS_ADDRESS = _reserved(0x1002)
CONFIG_ADDRESS = _reserved(0x1003)
PERMISSION_ADDRESS = _reserved(0x1004)
NAMES_ADDRESS = _reserved(0x1005)

"""System state: the chain's membership and settings, kept in the world state itself.

Keeping them in state (not in a config file) means every node reads the same values at
the same height, and governance (issue 7) changes them with ordinary transactions that
take effect at a block boundary. Keys (all under `sys/`):

    sys/chain             pack([chain_id, group_id, suite])
    sys/nodes             pack([[consensus_pub, peer_id, role, weight], ...])   order = sealer index order
    sys/config/<name>     pack(int)
    sys/committee         pack([[address, weight], ...])
    sys/governance        pack([participation_rate_pct, win_rate_pct])
"""

from __future__ import annotations

from dataclasses import dataclass

from chainnode.codec import expect_bytes, expect_int, expect_list, expect_str, pack, unpack
from chainnode.state import StateReader
from chainnode.types import sealer_set_hash  # noqa: F401  (re-exported: membership lives here)

CHAIN_KEY = b"sys/chain"
NODES_KEY = b"sys/nodes"
COMMITTEE_KEY = b"sys/committee"
GOVERNANCE_KEY = b"sys/governance"
CONFIG_PREFIX = b"sys/config/"

ROLES = ("sealer", "observer")
PEER_ID_CHARS_MAX = 128
NODES_MAX = 256

# name -> (minimum, maximum, default). Governance refuses values outside the range.
CONFIG_SPEC: dict[str, tuple[int, int, int]] = {
    "tx_count_limit": (1, 10_000, 1_000),  # transactions per block
    "tx_gas_limit": (10_000, 1_000_000_000, 30_000_000),  # gas per transaction
    "consensus_timeout_ms": (300, 600_000, 3_000),  # before a view change
    "block_interval_min_ms": (0, 60_000, 500),  # the leader waits at least this between blocks
    "leader_period": (1, 1_000, 1),  # blocks a leader keeps proposing before rotation
    "block_limit_window": (10, 100_000, 1_000),  # how far ahead a transaction's block_limit may be
}


class ConfigValueError(ValueError):
    pass


def check_config_value(name: str, value: int) -> int:
    spec = CONFIG_SPEC.get(name)
    if spec is None:
        raise ConfigValueError(f"unknown system config {name!r}; known: {', '.join(sorted(CONFIG_SPEC))}")
    lo, hi, _ = spec
    if type(value) is not int or not lo <= value <= hi:
        raise ConfigValueError(f"{name} must be an integer in [{lo}, {hi}], got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class NodeEntry:
    consensus_pub: bytes
    peer_id: str
    role: str
    weight: int = 1

    def to_fields(self) -> list:
        return [self.consensus_pub, self.peer_id, self.role, self.weight]

    @classmethod
    def from_fields(cls, f) -> "NodeEntry":
        f = expect_list(f, "node entry", length=4)
        role = expect_str(f[2], "node role", max_length=16)
        if role not in ROLES:
            raise ValueError(f"node role {role!r} is not one of {ROLES}")
        return cls(
            consensus_pub=expect_bytes(f[0], "node consensus key", lengths=(32, 65)),
            peer_id=expect_str(f[1], "node peer id", max_length=PEER_ID_CHARS_MAX),
            role=role,
            weight=expect_int(f[3], "node weight", lo=1, hi=1_000_000),
        )


def nodes_writes(nodes: list[NodeEntry]) -> dict[bytes, bytes]:
    return {NODES_KEY: pack([n.to_fields() for n in nodes])}


def read_nodes(state: StateReader) -> list[NodeEntry]:
    raw = state.get(NODES_KEY)
    if raw is None:
        return []
    return [NodeEntry.from_fields(f) for f in expect_list(unpack(raw, max_bytes=1 << 20), "nodes", max_length=NODES_MAX)]


def read_sealers(state: StateReader) -> list[NodeEntry]:
    """The sealer set in index order: index i in PBFT and in certificates is entry i here."""
    return [n for n in read_nodes(state) if n.role == "sealer"]


def config_writes(values: dict[str, int]) -> dict[bytes, bytes]:
    return {CONFIG_PREFIX + name.encode(): pack(check_config_value(name, v)) for name, v in values.items()}


def read_config(state: StateReader, name: str) -> int:
    if name not in CONFIG_SPEC:
        raise ConfigValueError(f"unknown system config {name!r}; known: {', '.join(sorted(CONFIG_SPEC))}")
    raw = state.get(CONFIG_PREFIX + name.encode())
    return CONFIG_SPEC[name][2] if raw is None else unpack(raw, max_bytes=16)


def read_chain(state: StateReader) -> tuple[str, str, str] | None:
    raw = state.get(CHAIN_KEY)
    return None if raw is None else tuple(unpack(raw, max_bytes=256))  # type: ignore[return-value]

"""System state: the chain's membership and settings, kept in the world state itself.

Keeping them in state (not in a config file) means every node reads the same values at
the same height, and governance (issue 7) changes them with ordinary transactions that
take effect at a block boundary. This module is the one home of the `sys/` key schema;
the keys (all under `sys/`):

    sys/chain             pack([chain_id, group_id, suite])
    sys/nodes             pack([[consensus_pub, peer_id, role, weight], ...])   order = sealer index order
    sys/config/<name>     pack(int)
    sys/nodes_pending     pack([[from_height, [node fields...]], ...])   membership changes not yet in force
    sys/addrs/<peer id>   pack([multiaddr, ...])      dial addresses of nodes added by governance
    sys/committee         pack([[address, weight], ...])
    sys/governance        pack([participation_rate_pct, win_rate_pct])
    sys/gov/next          pack(next proposal id)
    sys/gov/p/<id u64>    pack(proposal fields)       (chainnode/system/governance.py)
    sys/perm/deploy_open, sys/perm/deployer/<address>, sys/perm/frozen/<address>,
    sys/perm/acl/<contract>, sys/perm/admin/<contract>, sys/perm/crl
                          permissions and revocations (chainnode/system/governance.py)
    sys/names             pack({name: address})       the name registry
    sys/ca                the consortium CA certificate, written at genesis (chainnode/system/genesis.py)
    sys/sset/<set hash>   pack([[pub, ...], [weight, ...]])  every sealer set the chain has used,
                                                      by the hash block headers carry (for proofs)

Membership changes take effect two blocks after the block that makes them: a change made in
block h is recorded in `sys/nodes_pending` with from_height h + 2, and the executor moves it
into `sys/nodes` when it executes block h + 2. Every replica therefore learns the new set
(after committing block h) before anyone may vote at the height it governs: the PBFT core
refuses a change for a height it has voted at (docs/consensus.md, Sealer-set changes).
"""

from __future__ import annotations

from dataclasses import dataclass

from chainnode.protocol.codec import expect_bytes, expect_int, expect_list, expect_str, pack, unpack
from chainnode.protocol.dialaddr import ADDR_CHARS_MAX, ADDRS_MAX
from chainnode.protocol.types import sealer_set_hash
from chainnode.store.state import StateReader

CHAIN_KEY = b"sys/chain"
NODES_KEY = b"sys/nodes"
PENDING_NODES_KEY = b"sys/nodes_pending"
ADDRS_PREFIX = b"sys/addrs/"
SEALER_SETS_PREFIX = b"sys/sset/"
COMMITTEE_KEY = b"sys/committee"
GOVERNANCE_KEY = b"sys/governance"
CONFIG_PREFIX = b"sys/config/"
# Lowerings of block_limit_window still in reach (replay_window below): pack([[height, old window], ...]).
WINDOW_LOWERED_KEY = b"sys/config_lowered/block_limit_window"
CA_KEY = b"sys/ca"  # the consortium CA certificate (canonical encoding), written at genesis only
# Governance (chainnode/system/governance.py):
NEXT_ID_KEY = b"sys/gov/next"
PROPOSAL_PREFIX = b"sys/gov/p/"
DEPLOY_OPEN_KEY = b"sys/perm/deploy_open"
DEPLOYER_PREFIX = b"sys/perm/deployer/"
FROZEN_PREFIX = b"sys/perm/frozen/"
ACL_PREFIX = b"sys/perm/acl/"
ADMIN_PREFIX = b"sys/perm/admin/"
CRL_KEY = b"sys/perm/crl"
NAMES_KEY = b"sys/names"

ROLES = ("sealer", "observer")
PEER_ID_CHARS_MAX = 128
NODES_MAX = 256
# Membership made in block h governs blocks from h + MEMBERSHIP_DELAY_BLOCKS on (see above).
MEMBERSHIP_DELAY_BLOCKS = 2

# name -> (minimum, maximum, default). Governance refuses values outside the range.
CONFIG_SPEC: dict[str, tuple[int, int, int]] = {
    "tx_count_limit": (1, 10_000, 1_000),  # transactions per block
    "tx_gas_limit": (10_000, 1_000_000_000, 30_000_000),  # gas per transaction
    # Summed gas limits (each capped at tx_gas_limit) of one block's transactions; never
    # below tx_gas_limit (governance refuses that). Why 30M: docs/contracts.md, "Limits".
    "block_gas_limit": (10_000, 100_000_000_000, 30_000_000),
    "consensus_timeout_ms": (300, 600_000, 3_000),  # before a view change
    "block_interval_min_ms": (0, 60_000, 500),  # the leader waits at least this between blocks
    "leader_period": (1, 1_000, 1),  # blocks a leader keeps proposing before rotation (genesis only)
    "block_limit_window": (10, 100_000, 1_000),  # how far ahead a transaction's block_limit may be
    # The software version whose rules the chain runs (chainnode/protocol/versions.py: 0.2.0 is
    # 2000); raised by vote once every sealer runs it, never lowered.
    "compatibility_version": (2_000, 999_999_999, 2_000),
}


# Set in the genesis file only: every replica must use the same value at every height,
# and the PBFT core reads it once at start.
GENESIS_ONLY_CONFIG = frozenset({"leader_period"})


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
    """The sealer set in force in `state` (sys/nodes) in index order: index i in PBFT and in
    certificates is entry i here. For the set of a given height use `sealers_at`."""
    return [n for n in read_nodes(state) if n.role == "sealer"]


def _decode_nodes(f) -> list[NodeEntry]:
    return [NodeEntry.from_fields(x) for x in expect_list(f, "nodes", max_length=NODES_MAX)]


def read_pending_nodes(state: StateReader) -> list[tuple[int, list[NodeEntry]]]:
    """Membership changes not yet in force: [(from_height, nodes)], ascending heights."""
    raw = state.get(PENDING_NODES_KEY)
    if raw is None:
        return []
    out = []
    for entry in expect_list(unpack(raw, max_bytes=2 << 20), "pending nodes", max_length=MEMBERSHIP_DELAY_BLOCKS + 1):
        e = expect_list(entry, "pending nodes entry", length=2)
        out.append((expect_int(e[0], "pending from_height", lo=1), _decode_nodes(e[1])))
    return out


def pending_nodes_writes(entries: list[tuple[int, list[NodeEntry]]]) -> dict[bytes, bytes | None]:
    if not entries:
        return {PENDING_NODES_KEY: None}
    return {PENDING_NODES_KEY: pack([[h, [n.to_fields() for n in nodes]] for h, nodes in entries])}


def nodes_at(state: StateReader, height: int) -> list[NodeEntry]:
    """The node list that governs block `height`, read from the state after block height - 1
    (or any later pending-aware state): the newest pending change in force by then, else
    sys/nodes."""
    chosen = None
    for from_height, nodes in read_pending_nodes(state):
        if from_height <= height:
            chosen = nodes
    return read_nodes(state) if chosen is None else chosen


def sealers_at(state: StateReader, height: int) -> list[NodeEntry]:
    return [n for n in nodes_at(state, height) if n.role == "sealer"]


def latest_nodes(state: StateReader) -> list[NodeEntry]:
    """The node list after every change made so far (pending ones included)."""
    pending = read_pending_nodes(state)
    return pending[-1][1] if pending else read_nodes(state)


def promotion_writes(state: StateReader, height: int) -> dict[bytes, bytes | None]:
    """What the executor writes at the start of block `height`: pending changes in force from
    `height` move into sys/nodes. Empty (no writes) when nothing is due."""
    pending = read_pending_nodes(state)
    due = [nodes for h, nodes in pending if h <= height]
    if not due:
        return {}
    writes: dict[bytes, bytes | None] = dict(nodes_writes(due[-1]))
    writes.update(pending_nodes_writes([(h, nodes) for h, nodes in pending if h > height]))
    return writes


def sealer_set_writes(suite, nodes: list[NodeEntry]) -> dict[bytes, bytes]:
    """Record the sealer set of `nodes` under the hash block headers carry for it."""
    sealers = [n for n in nodes if n.role == "sealer"]
    pubs, weights = [n.consensus_pub for n in sealers], [n.weight for n in sealers]
    return {SEALER_SETS_PREFIX + sealer_set_hash(suite, pubs, weights): pack([pubs, weights])}


def read_sealer_set(state: StateReader, set_hash: bytes) -> tuple[list[bytes], list[int]] | None:
    """The (public keys, weights) of a sealer set the chain has used, by its hash."""
    raw = state.get(SEALER_SETS_PREFIX + set_hash)
    if raw is None:
        return None
    pubs, weights = expect_list(unpack(raw, max_bytes=1 << 20), "sealer set", length=2)
    return pubs, weights


def read_addrs(state: StateReader, peer_id: str) -> list[str]:
    raw = state.get(ADDRS_PREFIX + peer_id.encode())
    if raw is None:
        return []
    return [expect_str(a, "node address", max_length=ADDR_CHARS_MAX) for a in expect_list(unpack(raw, max_bytes=8192), "node addresses", max_length=ADDRS_MAX)]


def config_writes(values: dict[str, int]) -> dict[bytes, bytes]:
    return {CONFIG_PREFIX + name.encode(): pack(check_config_value(name, v)) for name, v in values.items()}


def read_config(state: StateReader, name: str) -> int:
    if name not in CONFIG_SPEC:
        raise ConfigValueError(f"unknown system config {name!r}; known: {', '.join(sorted(CONFIG_SPEC))}")
    raw = state.get(CONFIG_PREFIX + name.encode())
    return CONFIG_SPEC[name][2] if raw is None else unpack(raw, max_bytes=16)


def window_lowered_writes(state: StateReader, height: int, old_window: int) -> dict[bytes, bytes]:
    """The record of block_limit_window lowered from `old_window` in block `height`: that
    block's transactions (checked against the window before it) may name block_limit up to
    height - 1 + old_window. Entries no block can still be replayed in are dropped."""
    kept = [[h, w] for h, w in read_window_lowerings(state) if h - 1 + w > height]
    return {WINDOW_LOWERED_KEY: pack(kept + [[height, old_window]])}


def read_window_lowerings(state: StateReader) -> list[tuple[int, int]]:
    raw = state.get(WINDOW_LOWERED_KEY)
    if raw is None:
        return []
    return [(expect_int(e[0], "lowering height", lo=0), expect_int(e[1], "lowered window", lo=1))
            for e in (expect_list(x, "window lowering", length=2) for x in expect_list(unpack(raw, max_bytes=1 << 16), "window lowerings", max_length=4096))]


def replay_window(state: StateReader, height: int) -> int:
    """How many blocks up to `height` (the state after it) may hold a transaction that a
    later block could replay: a transaction in block p has block_limit <= p - 1 + the window
    p was checked against, and that window is either at most today's (it was raised since,
    or never changed) or one that a later lowering recorded (window_lowered_writes). So
    every transaction with block_limit > `height` is in the last `replay_window` blocks.
    A node that joins by snapshot fetches those blocks' transactions (chainnode/blocksync/recent.py)."""
    current = read_config(state, "block_limit_window")
    return max([current] + [w for h, w in read_window_lowerings(state) if h - 1 + w > height])


def read_chain(state: StateReader) -> tuple[str, str, str] | None:
    raw = state.get(CHAIN_KEY)
    return None if raw is None else tuple(unpack(raw, max_bytes=256))  # type: ignore[return-value]

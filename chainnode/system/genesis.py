"""The genesis file: what a consortium agrees on before the first block.

A JSON document (docs/operations.md shows a full one):

    {
      "format": "chainnode-genesis/1",
      "chain_id": "chain0", "group_id": "group0", "suite": "sm",
      "timestamp_ms": 1767225600000,
      "nodes": [
        {"name": "bank-a", "role": "sealer", "consensus_pub": "04…", "peer_id": "12D3Koo…",
         "addrs": ["/ip4/10.0.0.1/tcp/30300"], "weight": 1},
        …
      ],
      "committee": [{"address": "<40 hex>", "weight": 1}],
      "governance": {"participation_rate_pct": 51, "win_rate_pct": 51},
      "config": {"tx_count_limit": 1000, "consensus_timeout_ms": 3000, …},
      "ca_certs": ["<hex>"],      (optional: the consortium's root CAs; then every node needs a certificate)
      "p2p_noise25519": false,    (optional: an `sm` chain's nodes also accept libp2p's X25519 Noise)
      "contracts": [              (optional: deployed in block 0, registered by name)
        {"name": "payment", "deployer": "<40 hex>", "init_args": ["0x<issuer>", "0x<regulator>"],
         "source": "<the contract's source text>"}
      ]
    }

`ca_certs` lists the root CA certificates the consortium trusts, X.509 DER in hex (as
`chainnode ca init` prints it) or PEM text (the ca.pem a member's CA gives, newlines as
`\n`): one consortium CA, or the own CAs of several members. With roots, every node
presents a certificate chain issued under one of them in the connection handshake
(docs/certificates.md); the roots are written to state under `sys/ca`, so they are part of
the genesis hash.

`p2p_noise25519` (default false) lets the nodes of an `sm` chain accept, after their SM
channel `/chainnode/noise-sm/1`, libp2p's `/noise` (X25519, ChaCha20-Poly1305, SHA-256):
only for a chain with nodes of a version before the SM channel, during a rolling upgrade
(docs/network.md). Like peer addresses it is a transport setting, not part of the genesis
hash, so a consortium can turn it off later without a new chain.

`contracts` are deployed when block 0 is built, each at the address a deploy by its
`deployer` with nonce "genesis/<name>" gets, administered by the deployer, and registered in
the name registry (chainnode/system/governance.py) under its name. The source text is in the file
itself, so every node builds the same block 0 whatever version of the contract library it
has. In `init_args` a string starting with "0x" is bytes.

It becomes block 0: a header over the initial state (system state, see chainnode/system/state.py). The
genesis block's hash is the chain's identity: nodes refuse peers and data directories with
another one. Peer addresses are not part of it (a node may move without forking the chain).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from chainnode.crypto import ADDRESS_BYTES, SUITE_NAMES, get_suite
from chainnode.protocol.codec import DecodeError, expect_value, pack
from chainnode.protocol.dialaddr import ADDRS_MAX, DialAddrError, parse_dial_addr
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.protocol.jsonvalue import from_json, to_json
from chainnode.protocol.merkle import merkle_root
from chainnode.protocol.types import ZERO_HASH, Block, BlockHeader, sealer_set_hash
from chainnode.protocol.versions import SOFTWARE_VERSION_NUMBER, header_version
from chainnode.security.certs import MIGRATE_HINT, ROOTS_MAX, Certificate, CertificateError, load_certificates, verify_root
from chainnode.store.files import read_bounded
from chainnode.store.state import StateOverlay, next_state_root
from chainnode.store.tree import tree_root
from chainnode.system.governance import GovernanceError, check_params
from chainnode.system.state import (
    ADMIN_PREFIX,
    CA_KEY,
    CHAIN_KEY,
    COMMITTEE_KEY,
    CONFIG_SPEC,
    GOVERNANCE_KEY,
    NAMES_KEY,
    NODES_MAX,
    PEER_ID_CHARS_MAX,
    ConfigValueError,
    NodeEntry,
    config_writes,
    nodes_writes,
    sealer_set_writes,
)
from contracts.engine import CallContext, Engine

FORMAT = "chainnode-genesis/1"


def new_chain_config(config: dict[str, int] | None) -> dict[str, int]:
    """The config of a genesis made now: the rules of this release from block 0 (its
    `compatibility_version`, so block headers carry the state tree's root) unless `config`
    names others. A genesis without the key runs 0.2.0's rules: older chains keep theirs."""
    return {"compatibility_version": SOFTWARE_VERSION_NUMBER, **(config or {})}
GENESIS_CONTRACTS_MAX = 32
GENESIS_DEPLOY_GAS = 1_000_000_000  # per contract: a genesis deploy is trusted, but still bounded
GENESIS_BYTES_MAX = 4 << 20
WRITES_CACHED_MAX = 4  # genesis state writes kept per process, by content
_WRITES_BY_CONTENT: dict[str, dict[bytes, bytes]] = {}


class GenesisError(ValueError):
    """The genesis file is unusable; the message names the file and the field."""


@dataclass(frozen=True)
class GenesisNode:
    name: str
    entry: NodeEntry
    addrs: list[str]


@dataclass(frozen=True)
class GenesisContract:
    """A contract deployed in block 0 and registered in the name registry under `name`."""

    name: str
    source: str
    deployer: bytes
    init_args: list


@dataclass(frozen=True)
class Genesis:
    chain_id: str
    group_id: str
    suite: str
    timestamp_ms: int
    nodes: list[GenesisNode]
    committee: list[tuple[bytes, int]]
    participation_rate_pct: int
    win_rate_pct: int
    config: dict[str, int] = field(default_factory=dict)
    ca_certs: tuple[Certificate, ...] = ()  # the trusted root CAs; (): no certificates needed
    contracts: list[GenesisContract] = field(default_factory=list)  # deployed in block 0
    p2p_noise25519: bool = False  # an `sm` chain also accepts libp2p's X25519 Noise between nodes

    @property
    def sealers(self) -> list[GenesisNode]:
        return [n for n in self.nodes if n.entry.role == "sealer"]

    def state_writes(self) -> dict[bytes, bytes]:
        return dict(self._state_writes)

    @cached_property
    def _state_writes(self) -> dict[bytes, bytes]:
        # Cached: deploying the genesis contracts compiles them (a few hundred ms), and
        # block() / hash() are asked for more than once at start; per process too, by
        # content, since one tool (`genesis lab`, a devnet) loads the same file per node.
        key = json.dumps(self.to_json(), sort_keys=True)
        cached = _WRITES_BY_CONTENT.get(key)
        if cached is None:
            cached = self._compute_state_writes()
            if len(_WRITES_BY_CONTENT) >= WRITES_CACHED_MAX:
                _WRITES_BY_CONTENT.pop(next(iter(_WRITES_BY_CONTENT)))
            _WRITES_BY_CONTENT[key] = cached
        return cached

    def _compute_state_writes(self) -> dict[bytes, bytes]:
        writes = {CHAIN_KEY: pack([self.chain_id, self.group_id, self.suite])}
        writes.update(nodes_writes([n.entry for n in self.nodes]))
        writes.update(sealer_set_writes(get_suite(self.suite), [n.entry for n in self.nodes]))
        writes[COMMITTEE_KEY] = pack([[addr, weight] for addr, weight in self.committee])
        writes[GOVERNANCE_KEY] = pack([self.participation_rate_pct, self.win_rate_pct])
        writes.update(config_writes(self.config))
        if self.ca_certs:
            writes[CA_KEY] = pack([c.der for c in self.ca_certs])
        if self.contracts:
            writes.update(self._deploy_contracts(writes))
        return writes

    def _deploy_contracts(self, base: dict[bytes, bytes]) -> dict[bytes, bytes | None]:
        """Run each contract's deploy (and `init`) as if in block 0; the address is the one
        a deploy by `deployer` with nonce b"genesis/" + name gets. GenesisError if one fails."""
        suite = get_suite(self.suite)
        overlay = StateOverlay(_DictReader(base))
        engine = Engine(suite)
        names = {}
        for c in self.contracts:
            ctx = CallContext(c.deployer, bytes(ADDRESS_BYTES), 0, self.timestamp_ms, ZERO_HASH)
            result = engine.deploy(overlay, ctx, c.source, c.init_args, GENESIS_DEPLOY_GAS, b"genesis/" + c.name.encode())
            if not result.ok:
                raise GenesisError(f"genesis contract {c.name!r} does not deploy: {result.error_type}: {result.error_message or ''}")
            overlay.set(ADMIN_PREFIX + result.contract_address, c.deployer)
            names[c.name] = result.contract_address
        overlay.set(NAMES_KEY, pack(dict(sorted(names.items()))))
        return overlay.writes()

    def block(self) -> tuple[Block, dict[bytes, bytes]]:
        """Block 0 and its state writes (commit both with `Ledger.commit_block`)."""
        suite = get_suite(self.suite)
        writes = self.state_writes()
        version = header_version(self.config.get("compatibility_version", CONFIG_SPEC["compatibility_version"][2]))
        header = BlockHeader(
            parent_hash=ZERO_HASH,
            height=0,
            timestamp_ms=self.timestamp_ms,
            proposer_index=0,
            sealer_set_hash=sealer_set_hash(suite, [n.entry.consensus_pub for n in self.sealers], [n.entry.weight for n in self.sealers]),
            tx_root=merkle_root([], suite.hash),
            receipt_root=merkle_root([], suite.hash),
            state_root=tree_root(suite.hash, writes) if version >= 2 else next_state_root(suite, ZERO_HASH, writes),
            gas_used=0,
            tx_count=0,
            version=version,
        )
        return Block(header, []), writes

    def hash(self) -> bytes:
        return self.block()[0].header.hash(get_suite(self.suite))

    def content_digest(self) -> bytes:
        """The hash of this genesis's canonical content: the same content always makes the
        same block 0, so a ledger that recorded it need not deploy the genesis contracts
        again to know it holds this chain (chainnode/node/init.py)."""
        return get_suite(self.suite).hash(json.dumps(self.to_json(), sort_keys=True).encode())

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "chain_id": self.chain_id,
            "group_id": self.group_id,
            "suite": self.suite,
            "timestamp_ms": self.timestamp_ms,
            "nodes": [
                {"name": n.name, "role": n.entry.role, "consensus_pub": n.entry.consensus_pub.hex(), "peer_id": n.entry.peer_id, "addrs": n.addrs, "weight": n.entry.weight}
                for n in self.nodes
            ],
            "committee": [{"address": a.hex(), "weight": w} for a, w in self.committee],
            "governance": {"participation_rate_pct": self.participation_rate_pct, "win_rate_pct": self.win_rate_pct},
            "config": dict(self.config),
            **({"ca_certs": [c.der.hex() for c in self.ca_certs]} if self.ca_certs else {}),
            **({"contracts": [
                {"name": c.name, "deployer": c.deployer.hex(), "init_args": to_json(c.init_args), "source": c.source}
                for c in self.contracts
            ]} if self.contracts else {}),
            **({"p2p_noise25519": True} if self.p2p_noise25519 else {}),
        }


def _text(doc: dict, key: str, where: str, max_length: int = 64) -> str:
    v = doc.get(key)
    if not isinstance(v, str) or not v or len(v) > max_length:
        raise GenesisError(f"{where}: {key!r} must be non-empty text of at most {max_length} characters")
    return v


def _int(doc: dict, key: str, where: str, lo: int, hi: int, default: int | None = None) -> int:
    v = doc.get(key, default)
    if type(v) is not int or not lo <= v <= hi:
        raise GenesisError(f"{where}: {key!r} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _hex(v: Any, what: str, length: int) -> bytes:
    try:
        return parse_hex(v, length=length, what=what)
    except HexError as exc:
        raise GenesisError(str(exc)) from None


def parse_genesis(doc: Any, source: str = "genesis") -> Genesis:
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise GenesisError(f"{source}: not a chainnode genesis file (expected \"format\": \"{FORMAT}\")")
    known = {"format", "chain_id", "group_id", "suite", "timestamp_ms", "nodes", "committee", "governance", "config", "ca_certs", "contracts",
             "p2p_noise25519"}
    if "ca_cert" in doc:
        raise GenesisError(f"{source}: 'ca_cert' is the certificate format of chainnode 0.1, before X.509; {MIGRATE_HINT}")
    unknown = set(doc) - known
    if unknown:
        raise GenesisError(f"{source}: unknown field(s) {', '.join(sorted(unknown))}")
    suite_name = _text(doc, "suite", source)
    if suite_name not in SUITE_NAMES:
        raise GenesisError(f"{source}: suite must be one of {', '.join(SUITE_NAMES)}")
    suite = get_suite(suite_name)
    nodes_doc = doc.get("nodes")
    if not isinstance(nodes_doc, list) or not 1 <= len(nodes_doc) <= NODES_MAX:
        raise GenesisError(f"{source}: 'nodes' must list 1..{NODES_MAX} nodes")
    nodes: list[GenesisNode] = []
    seen_names, seen_keys, seen_peers = set(), set(), set()
    for i, n in enumerate(nodes_doc):
        where = f"{source}: nodes[{i}]"
        if not isinstance(n, dict):
            raise GenesisError(f"{where} must be an object")
        name = _text(n, "name", where)
        role = n.get("role")
        if role not in ("sealer", "observer"):
            raise GenesisError(f"{where} ({name}): role must be \"sealer\" or \"observer\"")
        pub = _hex(n.get("consensus_pub"), f"{where} ({name}): consensus_pub", suite.public_key_bytes)
        peer_id = _text(n, "peer_id", where, PEER_ID_CHARS_MAX)
        addrs = n.get("addrs", [])
        if not isinstance(addrs, list) or len(addrs) > ADDRS_MAX:
            raise GenesisError(f"{where} ({name}): addrs must be a list of at most {ADDRS_MAX} dial addresses like /ip4/10.0.0.1/tcp/30300")
        try:
            addrs = [parse_dial_addr(a) for a in addrs]
        except DialAddrError as exc:
            raise GenesisError(f"{where} ({name}): addrs: {exc}") from None
        weight = _int(n, "weight", where, 1, 1_000_000, default=1)
        for value, seen, what in ((name, seen_names, "name"), (pub, seen_keys, "consensus_pub"), (peer_id, seen_peers, "peer_id")):
            if value in seen:
                raise GenesisError(f"{where}: duplicate {what}")
            seen.add(value)
        nodes.append(GenesisNode(name, NodeEntry(pub, peer_id, role, weight), list(addrs)))
    if not any(n.entry.role == "sealer" for n in nodes):
        raise GenesisError(f"{source}: at least one node must be a sealer")
    committee_doc = doc.get("committee", [])
    if not isinstance(committee_doc, list) or not committee_doc:
        raise GenesisError(f"{source}: 'committee' must list at least one governor {{\"address\", \"weight\"}}")
    committee = []
    for i, g in enumerate(committee_doc):
        where = f"{source}: committee[{i}]"
        if not isinstance(g, dict):
            raise GenesisError(f"{where} must be an object")
        committee.append((_hex(g.get("address"), f"{where}: address", ADDRESS_BYTES), _int(g, "weight", where, 1, 1_000_000, default=1)))
    gov = doc.get("governance", {})
    if not isinstance(gov, dict):
        raise GenesisError(f"{source}: 'governance' must be an object")
    config = doc.get("config", {})
    if not isinstance(config, dict):
        raise GenesisError(f"{source}: 'config' must be an object")
    try:
        config_writes(config)
    except ConfigValueError as exc:
        raise GenesisError(f"{source}: config: {exc}") from None
    noise25519 = doc.get("p2p_noise25519", False)
    if type(noise25519) is not bool:
        raise GenesisError(f"{source}: 'p2p_noise25519' must be true or false, got {noise25519!r}")
    return Genesis(
        chain_id=_text(doc, "chain_id", source),
        group_id=_text(doc, "group_id", source),
        suite=suite_name,
        timestamp_ms=_int(doc, "timestamp_ms", source, 0, 2**63 - 1),
        nodes=nodes,
        committee=committee,
        participation_rate_pct=_int(gov, "participation_rate_pct", f"{source}: governance", 1, 100, default=51),
        win_rate_pct=_int(gov, "win_rate_pct", f"{source}: governance", 1, 100, default=51),
        config=dict(config),
        ca_certs=_ca_certs(doc["ca_certs"], source, suite_name) if "ca_certs" in doc else (),
        contracts=_contracts(doc.get("contracts", []), source),
        p2p_noise25519=noise25519,
    )


def _contracts(value: Any, source: str) -> list[GenesisContract]:
    """The "contracts" field: [{"name", "deployer", "source", "init_args"}]. In init_args a
    string "0x…" is bytes (addresses, hashes); other JSON values are themselves."""
    if not isinstance(value, list) or len(value) > GENESIS_CONTRACTS_MAX:
        raise GenesisError(f"{source}: 'contracts' must be a list of at most {GENESIS_CONTRACTS_MAX} contracts")
    out, seen = [], set()
    for i, c in enumerate(value):
        where = f"{source}: contracts[{i}]"
        if not isinstance(c, dict) or set(c) - {"name", "deployer", "source", "init_args"}:
            raise GenesisError(f"{where} must be an object with name, deployer, source and init_args")
        name = _text(c, "name", where)
        try:
            check_params("register_name", [name, None])
        except GovernanceError as exc:
            raise GenesisError(f"{where}: name: {exc}") from None
        if name in seen:
            raise GenesisError(f"{where}: duplicate name {name!r}")
        seen.add(name)
        code = c.get("source")
        if not isinstance(code, str) or not code.strip():
            raise GenesisError(f"{where} ({name}): 'source' must be the contract's source text")
        args = c.get("init_args", [])
        if not isinstance(args, list):
            raise GenesisError(f"{where} ({name}): 'init_args' must be a list")
        out.append(GenesisContract(name, code, _hex(c.get("deployer"), f"{where} ({name}): deployer", ADDRESS_BYTES), _init_args(args, f"{where} ({name}): init_args")))
    return out


def _init_args(args: list, where: str) -> list:
    """JSON to contract values: "0x…" strings are bytes (chainnode/protocol/jsonvalue.py)."""
    try:
        return expect_value(from_json(args), where)
    except DecodeError as exc:
        raise GenesisError(f"{exc} (contract values: integers, text, booleans, null, lists, objects, 0x-hex bytes; no floats)") from None
    except ValueError as exc:
        raise GenesisError(f"{where}: {exc}") from None


class _DictReader:
    def __init__(self, data: dict[bytes, bytes]) -> None:
        self.data = data

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def _ca_certs(value: Any, source: str, suite_name: str) -> tuple[Certificate, ...]:
    """The "ca_certs" field: 1..ROOTS_MAX root CA certificates of the genesis suite, each
    X.509 DER in hex or PEM text."""
    hint = "list the hex DER of each root CA certificate (`chainnode ca init` prints it)"
    if not isinstance(value, list) or not 1 <= len(value) <= ROOTS_MAX:
        raise GenesisError(f"{source}: 'ca_certs' must be a list of 1 to {ROOTS_MAX} root CA certificates; {hint}")
    roots: list[Certificate] = []
    for i, text in enumerate(value):
        where = f"{source}: ca_certs[{i}]"
        if not isinstance(text, str) or not text:
            raise GenesisError(f"{where}: must be text; {hint}")
        try:
            if text.lstrip().startswith("-----BEGIN"):
                certs = load_certificates(text.encode(), where)
                if len(certs) != 1:
                    raise CertificateError(f"{where} holds {len(certs)} certificates; give each root as its own entry")
                cert = certs[0]
            else:
                cert = Certificate.decode(parse_hex(text))
            verify_root(cert, None)
        except HexError:
            raise GenesisError(f"{where}: neither hex nor PEM; {hint}") from None
        except CertificateError as exc:
            raise GenesisError(f"{where}: {exc}; {hint}") from None
        if cert.suite != suite_name:
            raise GenesisError(f"{where}: the CA {cert.subject!r} is for suite {cert.suite}, this chain uses {suite_name}; "
                               f"create the CA with `chainnode ca init --suite {suite_name}`")
        if any(r.der == cert.der for r in roots):
            raise GenesisError(f"{where}: the CA {cert.subject!r} is listed twice")
        roots.append(cert)
    return tuple(roots)


def load_genesis(path: str | os.PathLike) -> Genesis:
    path = Path(path)
    raw = read_bounded(path, noun="genesis file", max_bytes=GENESIS_BYTES_MAX, error=GenesisError,
                       label="genesis file ", missing_hint="; pass --genesis with the file your consortium shared")
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise GenesisError(f"{path} is not valid JSON ({exc})") from None
    return parse_genesis(doc, str(path))

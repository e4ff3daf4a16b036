"""On-chain governance: the committee's proposals, what a passed proposal changes, and the
permission rules the executor enforces.

Everything here is state: read with `read_*` functions from any `StateReader`, changed only
by transactions to the system contracts (chainnode/system/contracts.py) that every node executes
at the same height. Keys (all defined in state.py, the one home of the `sys/` schema):

    sys/gov/next                  pack(next proposal id)
    sys/gov/p/<id u64 BE>         pack(Proposal.to_fields())
    sys/perm/deploy_open          pack(bool)          default True: anyone may deploy
    sys/perm/deployer/<address>   b"\\x01"             may deploy while deploy_open is False
    sys/perm/frozen/<address>     pack(reason)        a frozen account or contract
    sys/perm/acl/<contract><method>  pack([mode, [address, ...]])   mode "allow" | "deny"
    sys/perm/admin/<contract>     the deployer's address (may set its method ACLs)
    sys/perm/crl                  pack([revocation id, ...]) revoked certificates, sorted: each the
                                  hash of the issuer's public key || the serial (certs.Certificate.revocation_id)

A proposal passes when voted weight / total weight >= its participation rate and yes weight
/ voted weight >= its win rate (both in percent, copied from sys/governance when it is
made); it is executed in the transaction whose vote makes it pass. It is rejected as soon as
it can no longer pass, and can no longer be voted on after its expiry height.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from chainnode.crypto import ADDRESS_BYTES, HASH_BYTES
from chainnode.protocol.codec import DecodeError, expect_bytes, expect_int, expect_list, expect_str, pack, unpack
from chainnode.protocol.versions import STATE_TREE_VERSION, format_version
from chainnode.store.state import StateReader
from chainnode.system.state import (
    ACL_PREFIX,
    ADDR_CHARS_MAX,
    ADDRS_MAX,
    ADDRS_PREFIX,
    ADMIN_PREFIX,
    COMMITTEE_KEY,
    CONFIG_PREFIX,
    CRL_KEY,
    DEPLOY_OPEN_KEY,
    DEPLOYER_PREFIX,
    FROZEN_PREFIX,
    GENESIS_ONLY_CONFIG,
    GOVERNANCE_KEY,
    MEMBERSHIP_DELAY_BLOCKS,
    NAMES_KEY,
    NEXT_ID_KEY,
    NODES_MAX,
    PEER_ID_CHARS_MAX,
    PROPOSAL_PREFIX,
    ConfigValueError,
    NodeEntry,
    check_config_value,
    latest_nodes,
    pending_nodes_writes,
    read_config,
    read_pending_nodes,
    window_lowered_writes,
)

GOVERNORS_MAX = 64
WEIGHT_MAX = 1_000_000
EXPIRY_BLOCKS_DEFAULT = 7_200
EXPIRY_BLOCKS_MAX = 1_000_000
REASON_CHARS_MAX = 256
ACL_ADDRESSES_MAX = 256
METHOD_CHARS_MAX = 64
NAMES_MAX = 256
NAME_CHARS_MAX = 64
CRL_SERIALS_MAX = 10_000
REVOCATION_ID_BYTES = (HASH_BYTES + 1, HASH_BYTES + 20)  # issuer key hash || serial of 1..20 octets (RFC 5280)
REVOKE_IDS_MAX = 256  # certificates one revoke_cert proposal revokes (a CRL of more takes several)
ACL_MODES = ("allow", "deny")

OPEN, EXECUTED, FAILED, REJECTED, REVOKED, EXPIRED = "open", "executed", "failed", "rejected", "revoked", "expired"


class GovernanceError(ValueError):
    """A governance action is refused; the message says why and what to do instead."""


# ---- committee -----------------------------------------------------------------------------


def read_committee(state: StateReader) -> list[tuple[bytes, int]]:
    raw = state.get(COMMITTEE_KEY)
    if raw is None:
        return []
    out = []
    for f in expect_list(unpack(raw, max_bytes=1 << 16), "committee", max_length=GOVERNORS_MAX):
        f = expect_list(f, "governor", length=2)
        out.append((expect_bytes(f[0], "governor address", length=ADDRESS_BYTES), expect_int(f[1], "governor weight", lo=1, hi=WEIGHT_MAX)))
    return out


def committee_writes(governors: list[tuple[bytes, int]]) -> dict[bytes, bytes]:
    return {COMMITTEE_KEY: pack([[a, w] for a, w in governors])}


def read_rates(state: StateReader) -> tuple[int, int]:
    """(participation_rate_pct, win_rate_pct)."""
    raw = state.get(GOVERNANCE_KEY)
    if raw is None:
        return 51, 51
    f = expect_list(unpack(raw, max_bytes=64), "governance rates", length=2)
    return expect_int(f[0], "participation rate", lo=1, hi=100), expect_int(f[1], "win rate", lo=1, hi=100)


@dataclass
class Proposal:
    id: int
    kind: str
    params: list
    proposer: bytes
    created_height: int
    expiry_height: int
    participation_pct: int
    win_pct: int
    votes: dict[bytes, bool] = field(default_factory=dict)  # governor -> yes; in voting order
    status: str = OPEN
    result: str = ""  # why it failed or was rejected
    decided_height: int = 0

    def to_fields(self) -> list:
        return [1, self.id, self.kind, self.params, self.proposer, self.created_height, self.expiry_height,
                self.participation_pct, self.win_pct, [[a, y] for a, y in self.votes.items()], self.status,
                self.result, self.decided_height]

    @classmethod
    def from_fields(cls, f: Any) -> "Proposal":
        f = expect_list(f, "proposal", length=13)
        votes = {}
        for v in expect_list(f[9], "proposal votes", max_length=GOVERNORS_MAX):
            v = expect_list(v, "vote", length=2)
            if type(v[1]) is not bool:
                raise DecodeError("vote must be a bool")
            votes[expect_bytes(v[0], "voter", length=ADDRESS_BYTES)] = v[1]
        return cls(
            id=expect_int(f[1], "proposal id", lo=1), kind=expect_str(f[2], "proposal kind", max_length=32),
            params=expect_list(f[3], "proposal params", max_length=8), proposer=expect_bytes(f[4], "proposer", length=ADDRESS_BYTES),
            created_height=expect_int(f[5], "created height"), expiry_height=expect_int(f[6], "expiry height"),
            participation_pct=expect_int(f[7], "participation", lo=1, hi=100), win_pct=expect_int(f[8], "win rate", lo=1, hi=100),
            votes=votes, status=expect_str(f[10], "status", max_length=16), result=expect_str(f[11], "result", max_length=1024),
            decided_height=expect_int(f[12], "decided height"),
        )

    def status_at(self, height: int) -> str:
        """The status as seen at block `height` (an open proposal past its expiry is expired)."""
        return EXPIRED if self.status == OPEN and height > self.expiry_height else self.status

    def tally(self, committee: list[tuple[bytes, int]]) -> tuple[int, int, int]:
        """(total weight, voted weight, yes weight) over the current committee."""
        weights = dict(committee)
        voted = sum(weights.get(a, 0) for a in self.votes)
        yes = sum(weights.get(a, 0) for a, y in self.votes.items() if y)
        return sum(weights.values()), voted, yes

    def describe(self, committee: list[tuple[bytes, int]], height: int) -> dict:
        total, voted, yes = self.tally(committee)
        return {
            "id": self.id, "kind": self.kind, "params": self.params, "proposer": self.proposer,
            "created_height": self.created_height, "expiry_height": self.expiry_height,
            "participation_pct": self.participation_pct, "win_pct": self.win_pct,
            "votes": [{"governor": a, "yes": y} for a, y in self.votes.items()],
            "total_weight": total, "voted_weight": voted, "yes_weight": yes,
            "status": self.status_at(height), "result": self.result, "decided_height": self.decided_height,
        }


def outcome(p: Proposal, committee: list[tuple[bytes, int]]) -> str:
    """OPEN, or EXECUTED-to-be ("pass") / REJECTED once decided by the votes so far."""
    total, voted, yes = p.tally(committee)
    if total == 0:
        return REJECTED
    if voted > 0 and voted * 100 >= p.participation_pct * total and yes * 100 >= p.win_pct * voted:
        return "pass"
    # If every governor who has not voted voted yes, could it still pass?
    best_yes = yes + (total - voted)
    if best_yes * 100 < p.win_pct * total:
        return REJECTED
    return OPEN


def proposal_key(proposal_id: int) -> bytes:
    return PROPOSAL_PREFIX + proposal_id.to_bytes(8, "big")


def read_proposal(state: StateReader, proposal_id: int) -> Proposal | None:
    if type(proposal_id) is not int or not 1 <= proposal_id < 1 << 63:
        return None
    raw = state.get(proposal_key(proposal_id))
    return None if raw is None else Proposal.from_fields(unpack(raw, max_bytes=1 << 16))


def next_proposal_id(state: StateReader) -> int:
    raw = state.get(NEXT_ID_KEY)
    return 1 if raw is None else unpack(raw, max_bytes=16)


def read_proposals(state: StateReader, first_id: int, count: int) -> list[Proposal]:
    last = next_proposal_id(state)
    out = []
    for i in range(max(1, first_id), min(last, first_id + count)):
        p = read_proposal(state, i)
        if p is not None:
            out.append(p)
    return out


# ---- permissions ----------------------------------------------------------------------------


def read_deploy_open(state: StateReader) -> bool:
    raw = state.get(DEPLOY_OPEN_KEY)
    return True if raw is None else bool(unpack(raw, max_bytes=4))


def may_deploy(state: StateReader, address: bytes) -> bool:
    return read_deploy_open(state) or state.get(DEPLOYER_PREFIX + address) is not None


def frozen_reason(state: StateReader, address: bytes) -> str | None:
    raw = state.get(FROZEN_PREFIX + address)
    return None if raw is None else unpack(raw, max_bytes=4 * REASON_CHARS_MAX + 8)


def read_method_acl(state: StateReader, contract: bytes, method: str) -> tuple[str, list[bytes]] | None:
    raw = state.get(ACL_PREFIX + contract + method.encode())
    if raw is None:
        return None
    mode, addresses = unpack(raw, max_bytes=1 << 16)
    return mode, addresses


def may_call(state: StateReader, sender: bytes, contract: bytes, method: str) -> bool:
    acl = read_method_acl(state, contract, method)
    if acl is None:
        return True
    mode, addresses = acl
    return (sender in addresses) == (mode == "allow")


def contract_admin(state: StateReader, contract: bytes) -> bytes | None:
    return state.get(ADMIN_PREFIX + contract)


def read_revoked(state: StateReader) -> frozenset[bytes]:
    """The revocation ids of every certificate the committee revoked."""
    raw = state.get(CRL_KEY)
    return frozenset() if raw is None else frozenset(unpack(raw, max_bytes=1 << 20))


def read_names(state: StateReader) -> dict[str, bytes]:
    raw = state.get(NAMES_KEY)
    return {} if raw is None else unpack(raw, max_bytes=1 << 20)


def resolve_name(state: StateReader, name: str) -> bytes | None:
    return read_names(state).get(name)


# ---- proposal kinds ---------------------------------------------------------------------------
# Each kind: a parameter checker (run when proposed, so a malformed proposal is refused at
# once) and an apply function (run when it passes, against the state of that moment; it may
# still refuse, e.g. removing a node another proposal already removed: the proposal then
# ends "failed" with the reason, and changes nothing).


def _address(v: Any, what: str) -> bytes:
    if type(v) is not bytes or len(v) != ADDRESS_BYTES:
        raise GovernanceError(f"{what} must be a 20-byte address")
    return v


def _int(v: Any, what: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise GovernanceError(f"{what} must be an integer in [{lo}, {hi}], got {v!r}")
    return v


def _text(v: Any, what: str, max_chars: int, *, empty_ok: bool = False) -> str:
    if type(v) is not str or len(v) > max_chars or (not v and not empty_ok):
        raise GovernanceError(f"{what} must be {'a' if empty_ok else 'a non-empty'} string of at most {max_chars} characters")
    return v


def _pub(v: Any) -> bytes:
    if type(v) is not bytes or len(v) not in (32, 65):
        raise GovernanceError("the node's consensus public key must be 32 (ed25519) or 65 (sm) bytes")
    return v


def _addrs(v: Any) -> list[str]:
    if type(v) is not list or len(v) > ADDRS_MAX:
        raise GovernanceError(f"node addresses must be a list of at most {ADDRS_MAX} multiaddrs")
    for a in v:
        if type(a) is not str or not a.startswith("/") or len(a) > ADDR_CHARS_MAX:
            raise GovernanceError(f"node address {a!r} is not a multiaddr like /ip4/10.0.0.5/tcp/30300")
    return v


def _defaults(params: list, arity: tuple[int, int], defaults: list) -> list:
    lo, hi = arity
    if type(params) is not list or not lo <= len(params) <= hi:
        raise GovernanceError(f"expects {lo}..{hi} parameters, got {len(params) if type(params) is list else params!r}")
    return params + defaults[len(params) - lo :]


class Changes:
    """The state a proposal's apply function reads and writes (a write layer of the vote)."""

    def __init__(self, state: Any, height: int) -> None:
        self.state = state  # get / set / delete
        self.height = height

    def put(self, writes: dict[bytes, bytes | None]) -> None:
        for k, v in writes.items():
            if v is None:
                self.state.delete(k)
            else:
                self.state.set(k, v)


def _check_node(params: list) -> list:
    pub, peer_id, weight, addrs = _defaults(params, (2, 4), [1, []])
    _pub(pub)
    _text(peer_id, "peer id", PEER_ID_CHARS_MAX)
    _int(weight, "weight", 1, WEIGHT_MAX)
    _addrs(addrs)
    return [pub, peer_id, weight, addrs]


def _membership(changes: Changes, nodes: list[NodeEntry]) -> None:
    """Record `nodes` as the membership from height + MEMBERSHIP_DELAY_BLOCKS on."""
    if not any(n.role == "sealer" for n in nodes):
        raise GovernanceError("the chain must keep at least one sealer")
    if len(nodes) > NODES_MAX:
        raise GovernanceError(f"at most {NODES_MAX} nodes")
    state = changes.state
    from_height = changes.height + MEMBERSHIP_DELAY_BLOCKS
    pending = [(h, n) for h, n in read_pending_nodes(state) if h < from_height] + [(from_height, nodes)]
    changes.put(pending_nodes_writes(pending))


def _add_node(role: str) -> Callable[[Changes, list], str]:
    def apply(changes: Changes, params: list) -> str:
        pub, peer_id, weight, addrs = _check_node(params)
        nodes = list(latest_nodes(changes.state))
        for i, n in enumerate(nodes):
            if n.consensus_pub == pub:
                if n.role == role and n.weight == weight:
                    raise GovernanceError(f"node {peer_id} is already a {role}")
                nodes[i] = NodeEntry(pub, n.peer_id, role, weight)  # promote / demote
                break
            if n.peer_id == peer_id:
                raise GovernanceError(f"peer id {peer_id} already belongs to another node")
        else:
            nodes.append(NodeEntry(pub, peer_id, role, weight))
        _membership(changes, nodes)
        if addrs:
            changes.put({ADDRS_PREFIX + peer_id.encode(): pack(addrs)})
        return f"{peer_id} is {'an' if role == 'observer' else 'a'} {role} from block {changes.height + MEMBERSHIP_DELAY_BLOCKS}"

    return apply


def _check_addrs(params: list) -> list:
    pub, addrs = _defaults(params, (2, 2), [])
    return [_pub(pub), _addrs(addrs)]


def _apply_addrs(changes: Changes, params: list) -> str:
    pub, addrs = _check_addrs(params)
    node = next((n for n in latest_nodes(changes.state) if n.consensus_pub == pub), None)
    if node is None:
        raise GovernanceError("no node has this consensus key; add it with add_sealer or add_observer, which take its addresses too")
    changes.put({ADDRS_PREFIX + node.peer_id.encode(): pack(addrs)})
    return f"{node.peer_id} is dialed at {', '.join(addrs)}" if addrs else f"{node.peer_id} is dialed at its genesis addresses again"


def _check_pub_only(params: list) -> list:
    (pub,) = _defaults(params, (1, 1), [])
    return [_pub(pub)]


def _apply_remove(changes: Changes, params: list) -> str:
    (pub,) = _check_pub_only(params)
    nodes = latest_nodes(changes.state)
    kept = [n for n in nodes if n.consensus_pub != pub]
    if len(kept) == len(nodes):
        raise GovernanceError("no node has this consensus key (already removed?)")
    _membership(changes, kept)
    gone = next(n for n in nodes if n.consensus_pub == pub)
    changes.put({ADDRS_PREFIX + gone.peer_id.encode(): None})
    return f"{gone.peer_id} leaves at block {changes.height + MEMBERSHIP_DELAY_BLOCKS}"


def _check_weight(params: list) -> list:
    pub, weight = _defaults(params, (2, 2), [])
    return [_pub(pub), _int(weight, "weight", 1, WEIGHT_MAX)]


def _apply_weight(changes: Changes, params: list) -> str:
    pub, weight = _check_weight(params)
    nodes = list(latest_nodes(changes.state))
    for i, n in enumerate(nodes):
        if n.consensus_pub == pub:
            nodes[i] = NodeEntry(pub, n.peer_id, n.role, weight)
            _membership(changes, nodes)
            return f"{n.peer_id} has weight {weight}"
    raise GovernanceError("no node has this consensus key")


def _check_config(params: list) -> list:
    name, value = _defaults(params, (2, 2), [])
    if type(name) is not str:
        raise GovernanceError("the config name must be a string")
    if name in GENESIS_ONLY_CONFIG:
        raise GovernanceError(f"{name} is fixed in the genesis file and cannot be changed by vote")
    try:
        check_config_value(name, value)
    except ConfigValueError as exc:
        raise GovernanceError(str(exc)) from None
    return [name, value]


def _apply_config(changes: Changes, params: list) -> str:
    name, value = _check_config(params)
    # A transaction at tx_gas_limit must fit in a block, or it could never be committed.
    tx_gas = value if name == "tx_gas_limit" else read_config(changes.state, "tx_gas_limit")
    block_gas = value if name == "block_gas_limit" else read_config(changes.state, "block_gas_limit")
    if tx_gas > block_gas:
        raise GovernanceError(f"tx_gas_limit {tx_gas} would exceed block_gas_limit {block_gas}; "
                              "raise block_gas_limit first (or lower tx_gas_limit)")
    if name == "compatibility_version":
        current = read_config(changes.state, name)
        if value < current:
            raise GovernanceError(f"compatibility_version is never lowered: the chain runs the rules of {format_version(current)}, "
                                  f"{format_version(value)} is older (nodes of that version may already be replaced)")
        changes.put({CONFIG_PREFIX + name.encode(): pack(value)})
        return f"{name} = {format_version(value)}"
    if name == "block_limit_window" and read_config(changes.state, "compatibility_version") >= STATE_TREE_VERSION:
        current = read_config(changes.state, name)
        if value < current:  # a snapshot joiner must still find the transactions the old window let in
            changes.put(window_lowered_writes(changes.state, changes.height, current))
    changes.put({CONFIG_PREFIX + name.encode(): pack(value)})
    return f"{name} = {value}"


def _check_governor(params: list) -> list:
    address, weight = _defaults(params, (2, 2), [])
    return [_address(address, "governor"), _int(weight, "weight (0 removes the governor)", 0, WEIGHT_MAX)]


def _apply_governor(changes: Changes, params: list) -> str:
    address, weight = _check_governor(params)
    committee = [(a, w) for a, w in read_committee(changes.state) if a != address]
    if weight:
        committee.append((address, weight))
    if not committee:
        raise GovernanceError("the committee must keep at least one governor")
    if len(committee) > GOVERNORS_MAX:
        raise GovernanceError(f"at most {GOVERNORS_MAX} governors")
    changes.put(committee_writes(committee))
    return f"governor {address.hex()} weight {weight}"


def _check_rates(params: list) -> list:
    p, w = _defaults(params, (2, 2), [])
    return [_int(p, "participation rate (percent)", 1, 100), _int(w, "win rate (percent)", 1, 100)]


def _apply_rates(changes: Changes, params: list) -> str:
    p, w = _check_rates(params)
    changes.put({GOVERNANCE_KEY: pack([p, w])})
    return f"participation {p}%, win {w}%"


def _check_bool(params: list) -> list:
    (v,) = _defaults(params, (1, 1), [])
    if type(v) is not bool:
        raise GovernanceError("expects true or false")
    return [v]


def _apply_deploy_open(changes: Changes, params: list) -> str:
    (v,) = _check_bool(params)
    changes.put({DEPLOY_OPEN_KEY: pack(v)})
    return "anyone may deploy" if v else "only granted accounts may deploy"


def _check_address_only(params: list) -> list:
    (a,) = _defaults(params, (1, 1), [])
    return [_address(a, "account")]


def _apply_grant_deploy(changes: Changes, params: list) -> str:
    (a,) = _check_address_only(params)
    changes.put({DEPLOYER_PREFIX + a: b"\x01"})
    return f"{a.hex()} may deploy"


def _apply_revoke_deploy(changes: Changes, params: list) -> str:
    (a,) = _check_address_only(params)
    changes.put({DEPLOYER_PREFIX + a: None})
    return f"{a.hex()} may no longer deploy"


def _check_freeze(params: list) -> list:
    a, reason = _defaults(params, (1, 2), [""])
    return [_address(a, "account"), _text(reason, "reason", REASON_CHARS_MAX, empty_ok=True)]


def _apply_freeze(changes: Changes, params: list) -> str:
    a, reason = _check_freeze(params)
    changes.put({FROZEN_PREFIX + a: pack(reason)})
    return f"{a.hex()} frozen"


def _apply_unfreeze(changes: Changes, params: list) -> str:
    (a,) = _check_address_only(params)
    if frozen_reason(changes.state, a) is None:
        raise GovernanceError(f"{a.hex()} is not frozen")
    changes.put({FROZEN_PREFIX + a: None})
    return f"{a.hex()} unfrozen"


def check_acl(params: list) -> list:
    contract, method, mode, addresses = _defaults(params, (4, 4), [])
    _address(contract, "contract")
    _text(method, "method", METHOD_CHARS_MAX)
    if mode not in ACL_MODES:
        raise GovernanceError(f"mode must be one of {', '.join(ACL_MODES)}")
    if type(addresses) is not list or len(addresses) > ACL_ADDRESSES_MAX:
        raise GovernanceError(f"addresses must be a list of at most {ACL_ADDRESSES_MAX} addresses")
    for a in addresses:
        _address(a, "ACL entry")
    return [contract, method, mode, sorted(set(addresses))]


def acl_writes(contract: bytes, method: str, mode: str | None, addresses: list[bytes]) -> dict[bytes, bytes | None]:
    return {ACL_PREFIX + contract + method.encode(): None if mode is None else pack([mode, addresses])}


def _apply_acl(changes: Changes, params: list) -> str:
    contract, method, mode, addresses = check_acl(params)
    changes.put(acl_writes(contract, method, mode, addresses))
    return f"{method} of {contract.hex()}: {mode} {len(addresses)} accounts"


def _check_clear_acl(params: list) -> list:
    contract, method = _defaults(params, (2, 2), [])
    return [_address(contract, "contract"), _text(method, "method", METHOD_CHARS_MAX)]


def _apply_clear_acl(changes: Changes, params: list) -> str:
    contract, method = _check_clear_acl(params)
    changes.put(acl_writes(contract, method, None, []))
    return f"{method} of {contract.hex()}: open to all"


def _check_revocation_ids(params: list) -> list:
    (ids,) = _defaults(params, (1, 1), [])
    lo, hi = REVOCATION_ID_BYTES
    if type(ids) is not list or not 1 <= len(ids) <= REVOKE_IDS_MAX:
        raise GovernanceError(f"revoke_cert takes a list of 1 to {REVOKE_IDS_MAX} revocation ids")
    for rid in ids:
        if type(rid) is not bytes or not lo <= len(rid) <= hi:
            raise GovernanceError(f"a revocation id is {lo} to {hi} bytes: the issuer's key hash and the serial (`chainnode ca show` prints it)")
    if len(set(ids)) != len(ids):
        raise GovernanceError("a revocation id is listed twice")
    return [ids]


def _apply_revoke_cert(changes: Changes, params: list) -> str:
    (ids,) = _check_revocation_ids(params)
    revoked = read_revoked(changes.state)
    new = set(ids) - revoked
    if not new:
        raise GovernanceError("every certificate of this proposal is already revoked")
    if len(revoked) + len(new) > CRL_SERIALS_MAX:
        raise GovernanceError(f"the revocation list is full ({CRL_SERIALS_MAX})")
    changes.put({CRL_KEY: pack(sorted(revoked | new))})
    return f"{len(new)} certificate(s) revoked" if len(new) > 1 else f"certificate {next(iter(new)).hex()} revoked"


def _check_name(params: list) -> list:
    name, address = _defaults(params, (2, 2), [])
    _text(name, "name", NAME_CHARS_MAX)
    if not all(c.isascii() and (c.isalnum() or c in "_-.") for c in name):
        raise GovernanceError("a name uses ASCII letters, digits, '_', '-' and '.' only")
    if address is not None:
        _address(address, "address")
    return [name, address]


def _apply_name(changes: Changes, params: list) -> str:
    name, address = _check_name(params)
    names = read_names(changes.state)
    if address is None:
        if names.pop(name, None) is None:
            raise GovernanceError(f"no contract is registered as {name!r}")
    else:
        if name not in names and len(names) >= NAMES_MAX:
            raise GovernanceError(f"the registry is full ({NAMES_MAX} names)")
        names[name] = address
    changes.put({NAMES_KEY: pack(dict(sorted(names.items())))})
    return f"{name} -> {address.hex() if address else 'removed'}"


@dataclass(frozen=True)
class Kind:
    check: Callable[[list], list]
    apply: Callable[[Changes, list], str]
    usage: str


KINDS: dict[str, Kind] = {
    "add_sealer": Kind(_check_node, _add_node("sealer"), "consensus_pub peer_id [weight [addrs]]: add a sealer or promote an observer"),
    "add_observer": Kind(_check_node, _add_node("observer"), "consensus_pub peer_id [weight [addrs]]: add an observer or demote a sealer"),
    "remove_node": Kind(_check_pub_only, _apply_remove, "consensus_pub: remove a node"),
    "set_addrs": Kind(_check_addrs, _apply_addrs, "consensus_pub [addrs]: where the other nodes dial a node ([] = its genesis addresses)"),
    "set_weight": Kind(_check_weight, _apply_weight, "consensus_pub weight: a node's voting weight"),
    "set_config": Kind(_check_config, _apply_config, "name value: a system config value"),
    "set_governor": Kind(_check_governor, _apply_governor, "address weight: add or re-weight a governor (weight 0 removes)"),
    "set_rates": Kind(_check_rates, _apply_rates, "participation_pct win_pct: how proposals pass"),
    "set_deploy_open": Kind(_check_bool, _apply_deploy_open, "true|false: whether anyone may deploy"),
    "grant_deploy": Kind(_check_address_only, _apply_grant_deploy, "address: may deploy while deploying is closed"),
    "revoke_deploy": Kind(_check_address_only, _apply_revoke_deploy, "address: no longer may deploy"),
    "freeze_account": Kind(_check_freeze, _apply_freeze, "address [reason]: its transactions are refused"),
    "unfreeze_account": Kind(_check_address_only, _apply_unfreeze, "address: lift a freeze"),
    "set_method_acl": Kind(check_acl, _apply_acl, "contract method allow|deny [addresses]: who may call a method"),
    "clear_method_acl": Kind(_check_clear_acl, _apply_clear_acl, "contract method: anyone may call it again"),
    "revoke_cert": Kind(_check_revocation_ids, _apply_revoke_cert, "[revocation id, ...]: revoke agency, node or client certificates"),
    "register_name": Kind(_check_name, _apply_name, "name address|null: the name registry"),
}


def check_params(kind: str, params: Any) -> list:
    spec = KINDS.get(kind) if type(kind) is str else None
    if spec is None:
        raise GovernanceError(f"unknown proposal kind {kind!r}; kinds: {', '.join(KINDS)}")
    try:
        return spec.check(params if type(params) is list else [params])
    except GovernanceError as exc:
        raise GovernanceError(f"{kind}: {exc}") from None


def governance_summary(state: StateReader) -> dict:
    """For RPC and CLI: the committee and how proposals pass."""
    p, w = read_rates(state)
    return {"governors": [{"address": a, "weight": wt} for a, wt in read_committee(state)],
            "participation_pct": p, "win_pct": w, "next_proposal_id": next_proposal_id(state)}


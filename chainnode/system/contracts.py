"""System contracts: trusted, native code at reserved addresses, called like any contract.

A transaction (or an RPC `call`) to one of these addresses runs a method here instead of
sandboxed code, with the same interface: a method name, plain arguments, a `CallResult` with
a value, events and, on failure, `ContractError` and a message that says what to do. Their
state is the system state (state.py, governance.py); a failed call changes nothing.

    0x…1001  committee    propose(kind, params[, expiry_blocks]), vote(id, yes), revoke(id)
    0x…1002  consensus    views of the membership (changes go through the committee)
    0x…1003  config       views of the system config (changes go through the committee)
    0x…1004  permission   set_method_acl / clear_method_acl by a contract's admin; views
    0x…1005  names        the name registry (registration goes through the committee)

Methods whose name starts with `view_` are read-only, as in sandboxed contracts.
"""

from __future__ import annotations

from typing import Any, Callable

from chainnode.protocol.codec import pack
from chainnode.system.addresses import COMMITTEE_ADDRESS, CONFIG_ADDRESS, CONSENSUS_ADDRESS, NAMES_ADDRESS, PERMISSION_ADDRESS
from chainnode.system.governance import (
    ACL_PREFIX,
    EXECUTED,
    EXPIRY_BLOCKS_DEFAULT,
    EXPIRY_BLOCKS_MAX,
    FAILED,
    KINDS,
    METHOD_CHARS_MAX,
    NEXT_ID_KEY,
    OPEN,
    REJECTED,
    REVOKED,
    Changes,
    GovernanceError,
    Proposal,
    acl_writes,
    check_acl,
    check_params,
    contract_admin,
    frozen_reason,
    governance_summary,
    may_deploy,
    next_proposal_id,
    outcome,
    proposal_key,
    read_committee,
    read_deploy_open,
    read_method_acl,
    read_names,
    read_proposal,
    read_proposals,
    read_rates,
    read_revoked,
)
from chainnode.system.state import CONFIG_SPEC, read_addrs, read_config, read_nodes, read_pending_nodes
from contracts.engine import CallContext, CallResult, Event
from contracts.engine.errors import ContractError
from contracts.engine.store import WriteBuffer

SYSTEM_NAMES = {
    COMMITTEE_ADDRESS: "committee",
    CONSENSUS_ADDRESS: "consensus",
    CONFIG_ADDRESS: "config",
    PERMISSION_ADDRESS: "permission",
    NAMES_ADDRESS: "names",
}
# Every call to a system contract costs this much gas: their work is small and bounded.
SYSTEM_CALL_GAS = 10_000
LIST_COUNT_MAX = 100


def is_system(address: bytes | None) -> bool:
    return address in SYSTEM_NAMES


class _Call:
    """One system call in progress: its context, write layer and events."""

    def __init__(self, state: Any, ctx: CallContext, readonly: bool) -> None:
        self.state = state
        self.ctx = ctx
        self.readonly = readonly
        self.events: list[Event] = []

    def emit(self, name: str, **fields: Any) -> None:
        self.events.append(Event(self.ctx.contract, name, fields))

    def writable(self) -> None:
        if self.readonly:
            raise ContractError("this method changes state: send it as a transaction, not a call")


def _arg(args: list, i: int, default: Any = ...) -> Any:
    if i < len(args):
        return args[i]
    if default is ...:
        raise ContractError(f"missing argument {i + 1}")
    return default


def _arity(args: list, lo: int, hi: int) -> None:
    if not lo <= len(args) <= hi:
        raise ContractError(f"expects {lo}..{hi} arguments, got {len(args)}")


# ---- committee ------------------------------------------------------------------------------


def _governor_weight(call: _Call) -> int:
    weight = dict(read_committee(call.state)).get(call.ctx.sender)
    if weight is None:
        raise ContractError(f"{call.ctx.sender.hex()} is not a governor; only committee members may propose or vote")
    return weight


def _store(call: _Call, p: Proposal) -> None:
    call.state.set(proposal_key(p.id), pack(p.to_fields()))


def _decide(call: _Call, p: Proposal) -> str:
    """Apply the rules after a vote: execute a passed proposal, close a lost one."""
    result = outcome(p, read_committee(call.state))
    height = call.ctx.block_height
    if result == "pass":
        layer = WriteBuffer(call.state)  # the change's own layer: dropped if it is refused
        try:
            summary = KINDS[p.kind].apply(Changes(layer, height), p.params)
        except GovernanceError as exc:
            p.status, p.result = FAILED, str(exc)
            call.emit("ProposalFailed", id=p.id, kind=p.kind, reason=p.result)
        else:
            layer.merge()
            p.status, p.result = EXECUTED, summary
            call.emit("ProposalExecuted", id=p.id, kind=p.kind, result=summary)
        p.decided_height = height
    elif result == REJECTED:
        p.status, p.result, p.decided_height = REJECTED, "the votes can no longer reach the win rate", height
        call.emit("ProposalRejected", id=p.id, kind=p.kind)
    _store(call, p)
    return p.status


def _propose(call: _Call, args: list) -> int:
    call.writable()
    _arity(args, 2, 3)
    _governor_weight(call)
    kind, params = args[0], args[1]
    expiry_blocks = _arg(args, 2, EXPIRY_BLOCKS_DEFAULT)
    if type(expiry_blocks) is not int or not 1 <= expiry_blocks <= EXPIRY_BLOCKS_MAX:
        raise ContractError(f"expiry_blocks must be an integer in [1, {EXPIRY_BLOCKS_MAX}]")
    try:
        params = check_params(kind, params)
    except GovernanceError as exc:
        raise ContractError(str(exc)) from None
    participation, win = read_rates(call.state)
    height = call.ctx.block_height
    pid = next_proposal_id(call.state)
    call.state.set(NEXT_ID_KEY, pack(pid + 1))
    p = Proposal(pid, kind, params, call.ctx.sender, height, height + expiry_blocks, participation, win)
    call.emit("ProposalCreated", id=pid, kind=kind, proposer=call.ctx.sender, expiry_height=p.expiry_height)
    p.votes[call.ctx.sender] = True  # the proposer votes yes (one governor: admin mode)
    call.emit("Voted", id=pid, governor=call.ctx.sender, yes=True)
    _decide(call, p)
    return pid


def _open_proposal(call: _Call, pid: Any, action: str = "voted on") -> Proposal:
    p = read_proposal(call.state, pid) if type(pid) is int else None
    if p is None:
        raise ContractError(f"no proposal {pid!r}; list them with `chainnode gov list`")
    status = p.status_at(call.ctx.block_height)
    if status != OPEN:
        hint = f" at block {p.expiry_height}" if status == "expired" else ""
        raise ContractError(f"proposal {pid} is {status}{hint}; it can no longer be {action}")
    return p


def _vote(call: _Call, args: list) -> str:
    call.writable()
    _arity(args, 2, 2)
    _governor_weight(call)
    p = _open_proposal(call, args[0])
    yes = args[1]
    if type(yes) is not bool:
        raise ContractError("the vote must be true (yes) or false (no)")
    if call.ctx.sender in p.votes:
        raise ContractError(f"{call.ctx.sender.hex()} has already voted on proposal {p.id}")
    p.votes[call.ctx.sender] = yes
    call.emit("Voted", id=p.id, governor=call.ctx.sender, yes=yes)
    return _decide(call, p)


def _revoke(call: _Call, args: list) -> str:
    call.writable()
    _arity(args, 1, 1)
    p = _open_proposal(call, args[0], "revoked")
    if call.ctx.sender != p.proposer:
        raise ContractError(f"only the proposer ({p.proposer.hex()}) may revoke proposal {p.id}")
    p.status, p.decided_height = REVOKED, call.ctx.block_height
    _store(call, p)
    call.emit("ProposalRevoked", id=p.id)
    return REVOKED


def _view_proposal(call: _Call, args: list) -> dict:
    _arity(args, 1, 1)
    p = read_proposal(call.state, args[0]) if type(args[0]) is int else None
    if p is None:
        raise ContractError(f"no proposal {args[0]!r}")
    return p.describe(read_committee(call.state), call.ctx.block_height)


def _view_proposals(call: _Call, args: list) -> list:
    _arity(args, 0, 2)
    first, count = _arg(args, 0, 1), _arg(args, 1, LIST_COUNT_MAX)
    if type(first) is not int or type(count) is not int or first < 1 or not 1 <= count <= LIST_COUNT_MAX:
        raise ContractError(f"view_proposals(first_id >= 1, count in 1..{LIST_COUNT_MAX})")
    committee = read_committee(call.state)
    return [p.describe(committee, call.ctx.block_height) for p in read_proposals(call.state, first, count)]


def _view_committee(call: _Call, args: list) -> dict:
    _arity(args, 0, 0)
    return governance_summary(call.state)


def _view_kinds(call: _Call, args: list) -> dict:
    _arity(args, 0, 0)
    return {name: k.usage for name, k in KINDS.items()}


# ---- consensus, config, names: views ------------------------------------------------------------


def _node_doc(n) -> dict:
    return {"consensus_pub": n.consensus_pub, "peer_id": n.peer_id, "role": n.role, "weight": n.weight}


def _view_nodes(call: _Call, args: list) -> dict:
    _arity(args, 0, 0)
    state = call.state
    return {
        "nodes": [dict(_node_doc(n), addrs=read_addrs(state, n.peer_id)) for n in read_nodes(state)],
        "pending": [{"from_height": h, "nodes": [_node_doc(n) for n in nodes]} for h, nodes in read_pending_nodes(state)],
    }


def _view_config(call: _Call, args: list) -> dict:
    _arity(args, 0, 0)
    return {name: read_config(call.state, name) for name in CONFIG_SPEC}


def _view_resolve(call: _Call, args: list) -> bytes | None:
    _arity(args, 1, 1)
    return read_names(call.state).get(args[0]) if type(args[0]) is str else None


def _view_names(call: _Call, args: list) -> dict:
    _arity(args, 0, 0)
    return read_names(call.state)


def _committee_only(what: str, kind: str) -> Callable[[_Call, list], Any]:
    def refuse(call: _Call, args: list) -> Any:
        raise ContractError(f"{what} changes need a committee vote: propose `{kind}` (chainnode gov propose {kind} ...)")

    return refuse


# ---- permission ------------------------------------------------------------------------------------


def _check_admin(call: _Call, contract: Any) -> None:
    if type(contract) is not bytes or len(contract) != 20:
        raise ContractError("contract must be a 20-byte address")
    admin = contract_admin(call.state, contract)
    if admin != call.ctx.sender:
        who = admin.hex() if admin else "nobody (not a deployed contract)"
        raise ContractError(f"only the contract's admin ({who}) may set its method access lists; or propose set_method_acl")


def _set_method_acl(call: _Call, args: list) -> None:
    call.writable()
    _check_admin(call, _arg(args, 0))
    try:
        contract, method, mode, addresses = check_acl(list(args))
    except GovernanceError as exc:
        raise ContractError(str(exc)) from None
    for k, v in acl_writes(contract, method, mode, addresses).items():
        call.state.set(k, v)
    call.emit("MethodAclChanged", contract=contract, method=method, mode=mode, count=len(addresses))


def _clear_method_acl(call: _Call, args: list) -> None:
    call.writable()
    _arity(args, 2, 2)
    _check_admin(call, args[0])
    if type(args[1]) is not str or not 0 < len(args[1]) <= METHOD_CHARS_MAX:
        raise ContractError(f"method must be a non-empty string of at most {METHOD_CHARS_MAX} characters")
    call.state.delete(ACL_PREFIX + args[0] + args[1].encode())
    call.emit("MethodAclChanged", contract=args[0], method=args[1], mode="open", count=0)


def _view_account(call: _Call, args: list) -> dict:
    _arity(args, 1, 1)
    a = args[0]
    if type(a) is not bytes or len(a) != 20:
        raise ContractError("address must be 20 bytes")
    reason = frozen_reason(call.state, a)
    return {"frozen": reason is not None, "frozen_reason": reason or "", "may_deploy": may_deploy(call.state, a),
            "admin_of_contract": contract_admin(call.state, a)}


def _view_method_acl(call: _Call, args: list) -> dict | None:
    _arity(args, 2, 2)
    if type(args[0]) is not bytes or type(args[1]) is not str:
        raise ContractError("view_method_acl(contract: address, method: str)")
    acl = read_method_acl(call.state, args[0], args[1])
    return None if acl is None else {"mode": acl[0], "addresses": acl[1]}


def _view_permissions(call: _Call, args: list) -> dict:
    _arity(args, 0, 0)
    return {"deploy_open": read_deploy_open(call.state), "revoked": sorted(read_revoked(call.state))}


METHODS: dict[bytes, dict[str, Callable[[_Call, list], Any]]] = {
    COMMITTEE_ADDRESS: {
        "propose": _propose, "vote": _vote, "revoke": _revoke,
        "view_proposal": _view_proposal, "view_proposals": _view_proposals,
        "view_committee": _view_committee, "view_kinds": _view_kinds,
    },
    CONSENSUS_ADDRESS: {
        "add_sealer": _committee_only("membership", "add_sealer"),
        "add_observer": _committee_only("membership", "add_observer"),
        "remove_node": _committee_only("membership", "remove_node"),
        "set_weight": _committee_only("membership", "set_weight"),
        "view_nodes": _view_nodes,
    },
    CONFIG_ADDRESS: {"set": _committee_only("system config", "set_config"), "view_config": _view_config},
    PERMISSION_ADDRESS: {
        "set_method_acl": _set_method_acl, "clear_method_acl": _clear_method_acl,
        "freeze_account": _committee_only("account freeze", "freeze_account"),
        "unfreeze_account": _committee_only("account freeze", "unfreeze_account"),
        "grant_deploy": _committee_only("deploy permission", "grant_deploy"),
        "revoke_cert": _committee_only("certificate revocation", "revoke_cert"),
        "view_account": _view_account, "view_method_acl": _view_method_acl, "view_permissions": _view_permissions,
    },
    NAMES_ADDRESS: {
        "register": _committee_only("name registry", "register_name"),
        "view_resolve": _view_resolve, "view_names": _view_names,
    },
}


def run_system(state: Any, ctx: CallContext, method: Any, args: Any, gas_limit: int, *, readonly: bool = False) -> CallResult:
    """Run a system contract method against `state` (get/set/delete); never raises for bad
    input. Writes reach `state` only if the call succeeds."""
    if gas_limit < SYSTEM_CALL_GAS:
        return CallResult(False, None, (), gas_limit, "OutOfGas", None)
    table = METHODS[ctx.contract]
    fn = table.get(method) if type(method) is str else None
    if fn is None:
        name = SYSTEM_NAMES[ctx.contract]
        return CallResult(False, None, (), SYSTEM_CALL_GAS, "MethodNotFound",
                          f"the {name} system contract has no method {method!r}; it has {', '.join(sorted(table))}")
    if readonly and not method.startswith("view_"):
        return CallResult(False, None, (), SYSTEM_CALL_GAS, "ContractError", f"{method} changes state: send it as a transaction")
    if type(args) is not list:
        return CallResult(False, None, (), SYSTEM_CALL_GAS, "ContractError", "arguments must be a list")
    layer = WriteBuffer(state)
    call = _Call(layer, ctx, readonly)
    try:
        value = fn(call, args)
    except ContractError as exc:
        return CallResult(False, None, (), SYSTEM_CALL_GAS, "ContractError", exc.message)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        # Input no check above foresaw: a failed call (the same on every node), never a
        # crashed block.
        return CallResult(False, None, (), SYSTEM_CALL_GAS, type(exc).__name__, None)
    if not readonly:
        layer.merge()
    return CallResult(True, value, tuple(call.events), SYSTEM_CALL_GAS)

"""Governance rules through the system contracts, on a plain state: proposals, votes, rates,
expiry, membership scheduling and the permission checks the executor and the pool apply."""

from __future__ import annotations

import pytest

from chainnode.crypto import get_suite
from chainnode.execution.executor import refusal
from chainnode.protocol.codec import pack
from chainnode.store.state import StateOverlay
from chainnode.system.contracts import (
    COMMITTEE_ADDRESS,
    CONFIG_ADDRESS,
    CONSENSUS_ADDRESS,
    NAMES_ADDRESS,
    PERMISSION_ADDRESS,
    run_system,
)
from chainnode.system.governance import read_proposal, read_revoked, resolve_name
from chainnode.system.state import (
    ADMIN_PREFIX,
    COMMITTEE_KEY,
    GOVERNANCE_KEY,
    WINDOW_LOWERED_KEY,
    NodeEntry,
    latest_nodes,
    nodes_at,
    nodes_writes,
    promotion_writes,
    read_config,
    read_window_lowerings,
    replay_window,
    sealers_at,
)
from contracts.engine import CallContext

SUITE = get_suite("ed25519")
GOV = [bytes([i + 1]) * 20 for i in range(4)]
STRANGER = b"\x99" * 20
PUBS = [bytes([0x40 + i]) * 32 for i in range(6)]
NODES = [NodeEntry(PUBS[i], f"12D3KooPeer{i}", "sealer") for i in range(4)]


class Dict:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)


def chain_state(governors: list[bytes], rates: tuple[int, int] = (51, 51)) -> StateOverlay:
    base = Dict()
    base.data[COMMITTEE_KEY] = pack([[g, 1] for g in governors])
    base.data[GOVERNANCE_KEY] = pack(list(rates))
    base.data.update(nodes_writes(NODES))
    return StateOverlay(base)


def send(state, sender: bytes, to: bytes, method: str, args: list, height: int = 10, readonly: bool = False):
    ctx = CallContext(sender, to, height, 1_700_000_000_000, b"\x00" * 32)
    return run_system(state, ctx, method, args, 1_000_000, readonly=readonly)


def propose(state, kind: str, params: list, sender: bytes = GOV[0], height: int = 10, expiry: int | None = None):
    args = [kind, params] + ([expiry] if expiry is not None else [])
    return send(state, sender, COMMITTEE_ADDRESS, "propose", args, height)


def test_one_governor_is_admin_mode_the_proposal_executes_at_once():
    state = chain_state(GOV[:1])
    r = propose(state, "set_config", ["tx_count_limit", 777])
    assert r.ok, r
    assert read_config(state, "tx_count_limit") == 777
    p = read_proposal(state, r.value)
    assert p.status == "executed" and p.result == "tx_count_limit = 777"
    assert [e.name for e in r.events] == ["ProposalCreated", "Voted", "ProposalExecuted"]


def test_a_proposal_passes_only_when_participation_and_win_rate_are_met():
    state = chain_state(GOV)  # 4 governors of weight 1, 51% / 51%
    pid = propose(state, "set_config", ["tx_count_limit", 500]).value
    r = send(state, GOV[1], COMMITTEE_ADDRESS, "vote", [pid, True])
    assert r.ok and r.value == "open"  # 2 of 4 voted: 50% participation < 51%
    assert read_config(state, "tx_count_limit") != 500
    r = send(state, GOV[2], COMMITTEE_ADDRESS, "vote", [pid, True])
    assert r.ok and r.value == "executed"
    assert read_config(state, "tx_count_limit") == 500


def test_a_proposal_that_fails_the_win_rate_is_rejected_and_changes_nothing():
    state = chain_state(GOV, rates=(51, 67))
    pid = propose(state, "set_config", ["tx_count_limit", 500]).value
    assert send(state, GOV[1], COMMITTEE_ADDRESS, "vote", [pid, False]).value == "open"
    # yes 1, no 2: even if the last governor votes yes, 2/4 < 67%.
    r = send(state, GOV[2], COMMITTEE_ADDRESS, "vote", [pid, False])
    assert r.ok and r.value == "rejected"
    assert read_config(state, "tx_count_limit") != 500
    r = send(state, GOV[3], COMMITTEE_ADDRESS, "vote", [pid, True])
    assert not r.ok and "rejected" in r.error_message


def test_a_proposal_short_of_participation_stays_open_then_expires():
    state = chain_state(GOV, rates=(100, 51))
    pid = propose(state, "set_config", ["tx_count_limit", 500], expiry=5).value
    for g in GOV[1:3]:
        assert send(state, g, COMMITTEE_ADDRESS, "vote", [pid, True]).value == "open"
    late = send(state, GOV[3], COMMITTEE_ADDRESS, "vote", [pid, True], height=16)
    assert not late.ok and "expired at block 15" in late.error_message
    assert read_config(state, "tx_count_limit") != 500
    shown = send(state, STRANGER, COMMITTEE_ADDRESS, "view_proposal", [pid], height=16, readonly=True)
    assert shown.value["status"] == "expired"


def test_only_governors_vote_once_each():
    state = chain_state(GOV)
    pid = propose(state, "set_config", ["tx_count_limit", 500]).value
    r = send(state, STRANGER, COMMITTEE_ADDRESS, "vote", [pid, True])
    assert not r.ok and "is not a governor" in r.error_message
    r = propose(state, "set_config", ["tx_count_limit", 9], sender=STRANGER)
    assert not r.ok and "is not a governor" in r.error_message
    r = send(state, GOV[0], COMMITTEE_ADDRESS, "vote", [pid, True])
    assert not r.ok and "already voted" in r.error_message
    r = send(state, GOV[1], COMMITTEE_ADDRESS, "vote", [pid, "yes"])
    assert not r.ok and "true (yes) or false (no)" in r.error_message
    r = send(state, GOV[1], COMMITTEE_ADDRESS, "vote", [12345, True])
    assert not r.ok and "no proposal 12345" in r.error_message


@pytest.mark.parametrize(
    "kind, params, message",
    [
        ("set_config", ["tx_count_limit", 0], "tx_count_limit must be an integer in [1, 10000]"),
        ("set_config", ["tx_count_limit", "many"], "must be an integer"),
        ("set_config", ["leader_period", 3], "fixed in the genesis file"),
        ("set_config", ["no_such_key", 3], "unknown system config"),
        ("add_sealer", [b"\x01" * 7, "12D3KooX"], "32 (ed25519) or 65 (sm) bytes"),
        ("add_observer", [PUBS[5], "12D3KooX", 1, ["not-a-multiaddr"]], "is not a multiaddr"),
        ("set_rates", [0, 50], "participation rate"),
        ("freeze_account", [b"\x01" * 3], "20-byte address"),
        ("revoke_cert", [[b"\x01" * 3]], "a revocation id is 33 to 52 bytes"),
        ("revoke_cert", [b"\x01" * 40], "a list of 1 to 256 revocation ids"),
        ("revoke_cert", [[b"\x01" * 40, b"\x01" * 40]], "listed twice"),
        ("register_name", ["bad name!", b"\x01" * 20], "ASCII letters"),
        ("launch_rockets", [], "unknown proposal kind"),
        ("set_config", ["tx_count_limit"], "expects 2..2 parameters"),
        # oversized
        ("set_method_acl", [b"\x01" * 20, "m", "allow", [bytes([i % 256, i // 256]) * 10 for i in range(257)]], "at most 256 addresses"),
        ("set_method_acl", [b"\x01" * 20, "m" * 65, "allow", []], "at most 64 characters"),
        ("freeze_account", [b"\x01" * 20, "r" * 257], "at most 256 characters"),
        ("register_name", ["n" * 65, b"\x01" * 20], "at most 64 characters"),
        ("add_observer", [PUBS[5], "p" * 129], "at most 128 characters"),
        ("add_observer", [PUBS[5], "p", 1, ["/ip4/1.2.3.4/tcp/1"] * 9], "at most 8 multiaddrs"),
        ("set_weight", [PUBS[0], 10**7], "weight must be an integer in [1, 1000000]"),
    ],
)
def test_an_absurd_or_malformed_proposal_is_refused_when_proposed(kind, params, message):
    state = chain_state(GOV[:1])
    before = dict(state.writes())
    r = propose(state, kind, params)
    assert not r.ok and message in r.error_message, r
    assert state.writes() == before  # no id used, nothing written


def test_membership_changes_take_effect_two_blocks_after_the_executing_block():
    state = chain_state(GOV[:1])
    r = propose(state, "add_observer", [PUBS[4], "12D3KooPeer4", 1, ["/ip4/127.0.0.1/tcp/30304"]], height=10)
    assert r.ok and "from block 12" in read_proposal(state, r.value).result
    assert [n.peer_id for n in nodes_at(state, 11)] == [n.peer_id for n in NODES]
    assert [n.role for n in nodes_at(state, 12)][-1] == "observer"
    # Promote it in block 11: in force from 13; block 12 still sees it as an observer.
    assert propose(state, "add_sealer", [PUBS[4], "12D3KooPeer4"], height=11).ok
    assert len(sealers_at(state, 12)) == 4 and len(sealers_at(state, 13)) == 5
    # The executor moves due changes into sys/nodes at the start of the block they govern.
    writes = promotion_writes(state, 12)
    for k, v in writes.items():
        state.set(k, v) if v is not None else state.delete(k)
    assert len(sealers_at(state, 12)) == 4 and len(sealers_at(state, 13)) == 5
    assert len(latest_nodes(state)) == 5
    # Removing the last sealer standing is refused when it passes.
    view = send(state, STRANGER, CONSENSUS_ADDRESS, "view_nodes", [], readonly=True)
    assert view.ok and view.value["nodes"][-1]["addrs"] == ["/ip4/127.0.0.1/tcp/30304"]


def test_removing_every_sealer_fails_and_changes_nothing():
    state = chain_state(GOV[:1])
    for pub in PUBS[:3]:
        assert read_proposal(state, propose(state, "remove_node", [pub]).value).status == "executed"
    r = propose(state, "remove_node", [PUBS[3]])
    assert r.ok  # the vote went through; the change was refused
    p = read_proposal(state, r.value)
    assert p.status == "failed" and "at least one sealer" in p.result
    assert [n.consensus_pub for n in latest_nodes(state)] == [PUBS[3]]


def test_direct_calls_to_change_membership_or_config_point_to_the_committee():
    state = chain_state(GOV[:1])
    r = send(state, GOV[0], CONSENSUS_ADDRESS, "add_sealer", [PUBS[4], "x"])
    assert not r.ok and "chainnode gov propose add_sealer" in r.error_message
    r = send(state, GOV[0], CONFIG_ADDRESS, "set", ["tx_count_limit", 5])
    assert not r.ok and "set_config" in r.error_message
    r = send(state, GOV[0], COMMITTEE_ADDRESS, "no_such_method", [])
    assert not r.ok and r.error_type == "MethodNotFound"
    r = send(state, GOV[0], COMMITTEE_ADDRESS, "propose", ["set_config", ["tx_count_limit", 5]], readonly=True)
    assert not r.ok and "send it as a transaction" in r.error_message


def test_permissions_freeze_deploy_and_method_acls():
    state = chain_state(GOV[:1])
    user, contract = b"\x55" * 20, b"\xcc" * 20
    assert refusal(state, user, contract, "transfer") is None
    assert propose(state, "freeze_account", [user, "court order 17"]).ok
    kind, message = refusal(state, user, contract, "transfer")
    assert kind == "AccountFrozen" and "court order 17" in message and "unfreezes" in message
    assert propose(state, "unfreeze_account", [user]).ok
    assert refusal(state, user, contract, "transfer") is None

    assert propose(state, "set_deploy_open", [False]).ok
    assert refusal(state, user, b"", "")[0] == "PermissionDenied"
    assert propose(state, "grant_deploy", [user]).ok
    assert refusal(state, user, b"", "") is None

    # The contract's admin (its deployer) sets who may call a method.
    state.set(ADMIN_PREFIX + contract, user)
    other = b"\x66" * 20
    r = send(state, other, PERMISSION_ADDRESS, "set_method_acl", [contract, "mint", "allow", [user]])
    assert not r.ok and "only the contract's admin" in r.error_message
    r = send(state, user, PERMISSION_ADDRESS, "set_method_acl", [contract, "mint", "allow", [user]])
    assert r.ok, r
    assert refusal(state, other, contract, "mint")[0] == "PermissionDenied"
    assert refusal(state, user, contract, "mint") is None
    assert refusal(state, other, contract, "transfer") is None  # other methods stay open
    assert send(state, user, PERMISSION_ADDRESS, "clear_method_acl", [contract, "mint"]).ok
    assert refusal(state, other, contract, "mint") is None


def test_certificate_revocation_and_name_registry():
    state = chain_state(GOV[:1])
    rid = b"\x07" * 32 + b"\x01"  # the issuer's key hash, then serial 1
    other = b"\x08" * 32 + b"\x01"  # serial 1 of another issuer: another certificate
    assert propose(state, "revoke_cert", [[rid]]).ok
    assert read_revoked(state) == {rid}
    again = read_proposal(state, propose(state, "revoke_cert", [[rid]]).value)
    assert again.status == "failed" and "already revoked" in again.result
    assert propose(state, "revoke_cert", [[rid, other]]).ok  # from a CRL: the ids not yet revoked are
    assert read_revoked(state) == {rid, other}
    addr = b"\x42" * 20
    assert propose(state, "register_name", ["payment", addr]).ok
    assert resolve_name(state, "payment") == addr
    r = send(state, STRANGER, NAMES_ADDRESS, "view_resolve", ["payment"], readonly=True)
    assert r.ok and r.value == addr


def test_the_committee_can_change_itself_but_never_empty_itself():
    state = chain_state(GOV[:1])
    assert propose(state, "set_governor", [GOV[1], 2]).ok
    # Now 2 governors (weights 1 and 2): GOV[0] alone has 1/3 participation.
    pid = propose(state, "set_rates", [60, 60]).value
    assert read_proposal(state, pid).status == "open"
    assert send(state, GOV[1], COMMITTEE_ADDRESS, "vote", [pid, True]).value == "executed"
    pid = propose(state, "set_governor", [GOV[1], 0]).value
    assert send(state, GOV[1], COMMITTEE_ADDRESS, "vote", [pid, True]).value == "executed"
    r = propose(state, "set_governor", [GOV[0], 0])
    assert read_proposal(state, r.value).status == "failed"


def test_system_calls_need_their_gas():
    state = chain_state(GOV[:1])
    ctx = CallContext(GOV[0], COMMITTEE_ADDRESS, 10, 0, b"\x00" * 32)
    r = run_system(state, ctx, "propose", ["set_config", ["tx_count_limit", 5]], 100)
    assert not r.ok and r.error_type == "OutOfGas" and r.gas_used == 100
    assert state.writes() == {}


def test_a_freeze_reason_of_multibyte_characters_reads_back():
    state = chain_state(GOV[:1])
    user = b"\x55" * 20
    reason = "\U0001d11e" * 256  # 1,024 bytes of UTF-8: the longest reason allowed, all 4-byte characters
    assert propose(state, "freeze_account", [user, reason]).ok
    assert refusal(state, user, b"\xcc" * 20, "transfer")[1].count("\U0001d11e") == 256


@pytest.mark.parametrize(
    "method, args",
    [
        ("view_proposals", ["x", None]), ("view_proposal", [[1]]), ("propose", [None, None]), ("propose", [["k"], {}]),
        ("vote", [{"a": 1}, True]), ("revoke", [b"\x00" * 999]),
    ],
)
def test_malformed_system_calls_fail_without_raising(method, args):
    state = chain_state(GOV[:1])
    r = send(state, GOV[0], COMMITTEE_ADDRESS, method, args)
    assert not r.ok and r.error_type


@pytest.mark.parametrize("address", [CONSENSUS_ADDRESS, CONFIG_ADDRESS, PERMISSION_ADDRESS, NAMES_ADDRESS])
def test_every_view_answers_bad_arguments_with_a_failed_result(address):
    from chainnode.system.contracts import METHODS

    state = chain_state(GOV[:1])
    for method in METHODS[address]:
        for args in ([], [None], [b"\x01" * 20, None, 7], ["x" * 100]):
            r = send(state, STRANGER, address, method, args, readonly=method.startswith("view_"))
            assert isinstance(r.ok, bool)


def test_a_node_moves_by_vote_and_the_compatibility_version_only_rises():
    state = chain_state(GOV[:1])
    r = propose(state, "set_addrs", [PUBS[1], ["/dns/node1.bank-b.example/tcp/30300"]])
    assert read_proposal(state, r.value).status == "executed"
    view = send(state, STRANGER, CONSENSUS_ADDRESS, "view_nodes", [], readonly=True).value
    assert view["nodes"][1]["addrs"] == ["/dns/node1.bank-b.example/tcp/30300"]
    stranger = propose(state, "set_addrs", [b"\x04" + b"\x09" * 64, []])
    assert read_proposal(state, stranger.value).status == "failed" and "no node has this consensus key" in read_proposal(state, stranger.value).result
    assert not propose(state, "set_addrs", [PUBS[1]]).ok  # the addresses are required ([] = back to the genesis ones)

    assert read_config(state, "compatibility_version") == 2000  # 0.2.0, the version that made the genesis
    up = propose(state, "set_config", ["compatibility_version", 3000])
    assert read_proposal(state, up.value).result == "compatibility_version = 0.3.0" and read_config(state, "compatibility_version") == 3000
    down = propose(state, "set_config", ["compatibility_version", 2500])
    assert read_proposal(state, down.value).status == "failed" and "never lowered" in read_proposal(state, down.value).result
    assert read_config(state, "compatibility_version") == 3000
    assert not propose(state, "set_config", ["compatibility_version", 1999]).ok  # below any release that has it


def test_a_lowered_block_limit_window_is_remembered_while_it_can_matter_for_replays():
    state = chain_state(GOV[:1])
    assert replay_window(state, 10) == 1000  # the default window, never changed
    propose(state, "set_config", ["block_limit_window", 500], height=20)  # a 0.2.0 chain's rules: nothing recorded
    assert state.get(WINDOW_LOWERED_KEY) is None and replay_window(state, 20) == 500
    propose(state, "set_config", ["compatibility_version", 3000])
    propose(state, "set_config", ["block_limit_window", 5000], height=30)  # raised: blocks before held less
    propose(state, "set_config", ["block_limit_window", 100], height=40)
    propose(state, "set_config", ["block_limit_window", 50], height=50)
    assert read_window_lowerings(state) == [(40, 5000), (50, 100)]
    # Block 40's transactions were checked against 5,000: block_limit up to 40 - 1 + 5000.
    assert replay_window(state, 60) == 5000 and replay_window(state, 5038) == 5000 and replay_window(state, 5039) == 50
    propose(state, "set_config", ["block_limit_window", 10], height=6000)  # entries out of reach are dropped
    assert read_window_lowerings(state) == [(6000, 50)]

"""Unit tests of the replica's handlers: the happy path, and every kind of invalid input a
handler must refuse (wrong view, wrong height, bad signature, not a sealer, wrong leader,
mismatched roots), with the exact effect checked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from chainnode.protocol.types import CommitCertificate, InvalidCertificate, commit_signing_bytes
from consensus import events as ev
from consensus.messages import (
    Checkpoint,
    Commit,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
    decode_message,
)
from consensus.replica import Phase
from consensus.safety import SafetyState
from consensus.sim import CountingSuite
from tests.consensus.helpers import (
    CFG,
    GENESIS,
    KEYS,
    PUBS,
    SUITE,
    TX,
    Cluster,
    deliver,
    key_of,
    make_header,
    make_replica,
    misbehaviour,
    of_type,
    sent,
    signed,
)

LEADER = 1  # leader of height 1, view 0: (1 + 0) % 4


def accepted_replica(index: int = 0):
    """Replica `index` that accepted and executed the leader's view-0 proposal (and voted)."""
    r = make_replica(index)
    header, txs = make_header()
    pp = signed(PrePrepare(1, 0, LEADER, header, txs))
    actions = deliver(r, pp)
    (execute,) = of_type(actions, ev.Execute)
    actions = r.handle(ev.ExecutionDone(execute.proposal_id, header))
    return r, header, txs, execute.proposal_id, actions


# ---- happy path --------------------------------------------------------------------------


def test_four_replicas_commit_a_block_with_a_verifiable_certificate():
    c = Cluster()
    c.submit(TX[:3])
    assert all(len(commits) == 1 for commits in c.commits)
    blocks = {commit.header.hash(SUITE) for commits in c.commits for commit in commits}
    assert len(blocks) == 1
    for commits in c.commits:
        cert = commits[0].certificate
        assert isinstance(cert, CommitCertificate)
        CommitCertificate.decode(cert.encode()).verify(SUITE, PUBS)
        assert commits[0].tx_hashes == TX[:3]
    assert all(r.hs.height == 2 and r.hs.view == 0 for r in c.replicas)


def test_the_phase_of_a_height_follows_the_protocol():
    c = Cluster()
    seen: list[list] = [[] for _ in range(4)]
    for i, r in enumerate(c.replicas):
        def handle(event, r=r, i=i, inner=r.handle):
            actions = inner(event)
            if not seen[i] or seen[i][-1] != (r.hs.height, r.hs.phase):
                seen[i].append((r.hs.height, r.hs.phase))
            return actions
        r.handle = handle
    c.submit(TX[:1])
    P = Phase
    # The leader builds and votes at once (it executed what it built); a follower executes first.
    assert seen[LEADER] == [(1, P.BUILDING), (1, P.PREPARING), (1, P.COMMITTING), (1, P.COMMITTED), (2, P.WAITING)]
    assert seen[0] == [(1, P.WAITING), (1, P.ACCEPTED), (1, P.PREPARING), (1, P.COMMITTING), (1, P.COMMITTED), (2, P.WAITING)]


def test_a_move_the_protocol_does_not_make_is_a_loud_error():
    r = make_replica(0)
    with pytest.raises(AssertionError, match="PBFT phase WAITING -> COMMITTED at height 1 view 0"):
        r._to(Phase.COMMITTED)


def test_a_restarted_replica_resumes_in_the_phase_its_votes_imply():
    r, header, txs, pid, actions = accepted_replica()
    assert r.hs.phase is Phase.PREPARING
    restarted = make_replica(0, persisted=of_type(actions, ev.Persist)[-1].data)
    assert (restarted.hs.view, restarted.hs.phase) == (0, Phase.PREPARING) and restarted.hs.restored
    assert make_replica(0).hs.phase is Phase.WAITING


def test_certificate_with_a_tampered_signature_does_not_verify():
    c = Cluster()
    c.submit(TX[:1])
    cert = c.commits[0][0].certificate
    index, sig = cert.signatures[0]
    bad = replace(cert, signatures=[(index, bytes(64))] + cert.signatures[1:])
    with pytest.raises(InvalidCertificate):
        bad.verify(SUITE, PUBS)


def test_chain_keeps_going_and_leaders_rotate():
    c = Cluster()
    for k in range(5):
        c.submit([TX[k]])
    heights = [[commit.header.height for commit in commits] for commits in c.commits]
    assert heights == [[1, 2, 3, 4, 5]] * 4
    proposers = [commit.header.proposer_index for commit in c.commits[0]]
    assert proposers == [1, 2, 3, 0, 1]


def test_idle_chain_sets_no_timers_and_builds_no_empty_blocks():
    c = Cluster()
    for i in range(4):
        c.feed(i, ev.BlockCommitted(0, GENESIS))  # nothing new: still idle
    assert not any(type(a) in (ev.SetTimer, ev.BuildProposal) for _, a in c.log)
    c.submit([TX[0]])
    assert [len(x) for x in c.commits] == [1, 1, 1, 1]
    # After the commit the pool is empty: every timer is cancelled and nobody proposes.
    assert all(not timers for timers in c.timers)
    builds = [a for _, a in c.log if type(a) is ev.BuildProposal]
    assert len(builds) == 1


def test_same_state_and_event_give_the_same_actions():
    a, b = make_replica(0), make_replica(0)
    header, txs = make_header()
    pp = signed(PrePrepare(1, 0, LEADER, header, txs))
    events = [ev.PoolNotEmpty(), ev.MessageReceived(PUBS[LEADER], pp.encode()), ev.ExecutionDone(header.hash(SUITE), header)]
    for event in events:
        assert a.handle(event) == b.handle(event)


# ---- PRE_PREPARE -------------------------------------------------------------------------


def test_pre_prepare_is_executed_then_prepared_after_persisting():
    r, header, txs, pid, actions = accepted_replica()
    assert pid == header.hash(SUITE)
    kinds = [type(a) for a in actions]
    assert kinds.index(ev.Persist) < kinds.index(ev.Broadcast)
    (prepare,) = sent(actions)
    assert isinstance(prepare, Prepare) and prepare.block_hash == pid and prepare.view == 0
    assert SafetyState.decode(of_type(actions, ev.Persist)[0].data).prepare_vote == (0, pid)


def test_pre_prepare_with_mismatched_roots_is_not_signed_and_triggers_view_change():
    r = make_replica(0)
    header, txs = make_header()
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    (execute,) = of_type(actions, ev.Execute)
    executed = replace(header, state_root=SUITE.hash(b"what the application computed"))
    actions = r.handle(ev.ExecutionDone(execute.proposal_id, executed))
    msgs = sent(actions)
    assert not any(isinstance(m, Prepare) for m in msgs)
    assert [type(m) for m in msgs] == [ViewChange]
    assert r.hs.view == 1 and r.hs.phase is Phase.VIEW_CHANGE
    assert any("roots differ" in reason for reason in misbehaviour(actions))


def test_pre_prepare_that_fails_execution_is_not_signed():
    r = make_replica(0)
    header, txs = make_header()
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    actions = r.handle(ev.ExecutionDone(of_type(actions, ev.Execute)[0].proposal_id, None))
    assert not any(isinstance(m, Prepare) for m in sent(actions))


def test_pre_prepare_with_bad_signature_is_refused():
    r = make_replica(0)
    header, txs = make_header()
    pp = replace(signed(PrePrepare(1, 0, LEADER, header, txs)), signature=bytes(64))
    actions = deliver(r, pp)
    assert not of_type(actions, ev.Execute)
    assert misbehaviour(actions) == ["bad signature on PrePrepare"]


def test_pre_prepare_signed_by_another_sealer_is_refused():
    r = make_replica(0)
    header, txs = make_header()
    pp = signed(PrePrepare(1, 0, LEADER, header, txs), by=2)  # claims to be the leader
    assert not of_type(deliver(r, pp), ev.Execute)


def test_pre_prepare_from_a_non_leader_is_refused():
    r = make_replica(0)
    header, txs = make_header(proposer=2)
    actions = deliver(r, signed(PrePrepare(1, 0, 2, header, txs)))
    assert not of_type(actions, ev.Execute)
    assert "the leader is 1" in misbehaviour(actions)[0]


def test_pre_prepare_from_a_non_sealer_is_dropped():
    r = make_replica(0)
    header, txs = make_header()
    pp = replace(signed(PrePrepare(1, 0, LEADER, header, txs)), sender=9)
    actions = deliver(r, pp, sender=9)
    assert actions == [] and r.stats["dropped"] == 1


def test_message_whose_sender_field_differs_from_the_transport_is_refused():
    r = make_replica(0)
    header, txs = make_header()
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)), sender=3)
    assert not of_type(actions, ev.Execute)
    assert "claims sender 1" in misbehaviour(actions)[0]


def test_senders_are_mapped_by_key_in_the_set_of_the_messages_height():
    # Sealer 0 leaves from height 2 on: the others' indices shift down by one there.
    r = make_replica(1)
    r.handle(ev.SealersChanged(2, PUBS[1:]))
    # A height-2 PREPARE from PUBS[2] is sealer 1 there (it is sealer 2 at height 1).
    actions = deliver(r, signed(Prepare(2, 0, 1, TX[0]), by=2), sender=2)
    assert misbehaviour(actions) == [] and r.hs.future[1][0].sender == 1
    # Claiming its height-1 index at height 2 is a lie, and the report names its key.
    actions = deliver(r, signed(Prepare(2, 0, 2, TX[0]), by=2), sender=2)
    assert [a.peer_pub for a in of_type(actions, ev.Misbehaviour)] == [PUBS[2]]
    assert "claims sender 2" in misbehaviour(actions)[0]
    # The leaving sealer has no say at height 2, and nothing to be punished for there.
    before = r.stats["dropped"]
    assert deliver(r, signed(Prepare(2, 0, 0, TX[0])), sender=0) == [] and r.stats["dropped"] == before + 1


def test_garbage_from_a_sealer_is_misbehaviour_and_from_anyone_else_is_dropped():
    r = make_replica(0)
    actions = r.handle(ev.MessageReceived(PUBS[2], b"\x93garbage"))
    assert [a.peer_pub for a in of_type(actions, ev.Misbehaviour)] == [PUBS[2]]
    before = r.stats["dropped"]
    assert r.handle(ev.MessageReceived(key_of(9), b"\x93garbage")) == [] and r.stats["dropped"] == before + 1


def test_config_changed_sets_the_next_timeouts_and_the_block_size_limit():
    r = make_replica(0)
    r.handle(ev.ConfigChanged(timeout_base_ms=2500, block_tx_count_max=1))
    assert r.cfg.timeout_base_ms == 2500 and r.cfg.timeout_max_ms == CFG.timeout_max_ms
    (timer,) = of_type(r.handle(ev.PoolNotEmpty()), ev.SetTimer)
    assert timer.delay_ms == 2500
    header, txs = make_header()  # two transactions: one more than the new limit
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    assert "exceed block_tx_count_max 1" in misbehaviour(actions)[0] and not of_type(actions, ev.Execute)
    # The backoff's cap never drops below the base.
    r.handle(ev.ConfigChanged(timeout_base_ms=CFG.timeout_max_ms * 2, block_tx_count_max=10))
    assert r.cfg.timeout_max_ms == CFG.timeout_max_ms * 2


def test_pre_prepare_for_a_later_view_outside_new_view_is_refused():
    r = make_replica(0)
    header, txs = make_header(proposer=2)
    actions = deliver(r, signed(PrePrepare(1, 1, 2, header, txs)))
    assert not of_type(actions, ev.Execute)
    assert "outside NEW_VIEW" in misbehaviour(actions)[0]


def test_pre_prepare_for_the_next_height_waits_for_our_commit():
    r = make_replica(0)
    header, txs = make_header(height=2, proposer=2)
    actions = deliver(r, signed(PrePrepare(2, 0, 2, header, txs)))
    assert actions == [] and r.hs.future[2]
    # Once height 1 is decided (here: by block sync), the buffered proposal is processed.
    h1, _ = make_header()
    header2, txs2 = make_header(height=2, proposer=2, parent=h1.hash(SUITE))
    r2 = make_replica(0)
    deliver(r2, signed(PrePrepare(2, 0, 2, header2, txs2)))
    actions = r2.handle(ev.BlockCommitted(1, h1.hash(SUITE)))
    assert [a.proposal_id for a in of_type(actions, ev.Execute)] == [header2.hash(SUITE)]


def test_pre_prepare_for_an_old_height_is_dropped():
    h1, _ = make_header()
    r = make_replica(0, head=(1, h1.hash(SUITE)))
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, *make_header())))
    assert not of_type(actions, ev.Execute)


@pytest.mark.parametrize(
    "change, reason",
    [
        (dict(parent=SUITE.hash(b"another chain")), "does not extend"),
        (dict(set_hash=SUITE.hash(b"other sealers")), "another sealer set"),
        (dict(proposer=3), "names proposer 3"),
    ],
)
def test_pre_prepare_with_a_bad_header_is_refused_and_replaces_the_leader(change, reason):
    r = make_replica(0)
    header, txs = make_header(**change)
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    assert not of_type(actions, ev.Execute)
    assert any(reason in m for m in misbehaviour(actions))
    assert r.hs.view == 1 and isinstance(sent(actions)[-1], ViewChange)


def test_pre_prepare_whose_tx_count_disagrees_is_refused():
    r = make_replica(0)
    header, txs = make_header()
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs[:1])))
    assert not of_type(actions, ev.Execute)
    assert any("counts 2 transactions" in m for m in misbehaviour(actions))


def test_equivocating_leader_is_detected_and_replaced():
    r, header, txs, pid, _ = accepted_replica()
    other, _ = make_header(extra=b"second proposal")
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, other, txs)))
    assert r.stats["equivocations"] == 1
    assert r.hs.view == 1 and r.hs.phase is Phase.VIEW_CHANGE
    (vc,) = sent(actions)
    assert isinstance(vc, ViewChange) and vc.view == 1


def test_equivocation_seen_in_prepares_triggers_view_change():
    r, header, txs, pid, _ = accepted_replica()
    other = SUITE.hash(b"the block the leader showed the others")
    deliver(r, signed(Prepare(1, 0, 2, other)))
    assert r.hs.view == 0
    actions = deliver(r, signed(Prepare(1, 0, 3, other)))  # f + 1 = 2 sealers saw another block
    assert r.hs.view == 1 and isinstance(sent(actions)[0], ViewChange)


def test_duplicate_pre_prepare_is_harmless():
    r, header, txs, pid, _ = accepted_replica()
    pp = signed(PrePrepare(1, 0, LEADER, header, txs))
    assert deliver(r, pp) == []


# ---- PREPARE / COMMIT --------------------------------------------------------------------


def test_quorum_of_prepares_leads_to_commit_then_checkpoint_then_commit_action():
    r, header, txs, pid, _ = accepted_replica()
    deliver(r, signed(Prepare(1, 0, 1, pid)))
    actions = deliver(r, signed(Prepare(1, 0, 2, pid)))
    (commit,) = sent(actions)
    assert isinstance(commit, Commit) and commit.block_hash == pid
    kinds = [type(a) for a in actions]
    assert kinds.index(ev.Persist) < kinds.index(ev.Broadcast)
    state = SafetyState.decode(of_type(actions, ev.Persist)[0].data)
    assert state.prepared is not None and state.prepared.header == header and len(state.prepared.signatures) == 3
    deliver(r, signed(Commit(1, 0, 1, pid)))
    actions = deliver(r, signed(Commit(1, 0, 2, pid)))
    (checkpoint,) = sent(actions)
    assert isinstance(checkpoint, Checkpoint)
    assert SUITE.verify(PUBS[0], commit_signing_bytes(1, pid), checkpoint.signature)
    for i in (1, 2):
        sig = SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))
        actions = deliver(r, Checkpoint(1, 0, i, pid, sig))
    (commit_action,) = of_type(actions, ev.Commit)
    commit_action.certificate.verify(SUITE, PUBS)
    assert r.hs.height == 2


def test_prepare_with_bad_signature_is_not_counted():
    r, header, txs, pid, _ = accepted_replica()
    deliver(r, signed(Prepare(1, 0, 1, pid)))
    actions = deliver(r, replace(signed(Prepare(1, 0, 2, pid)), signature=bytes(64)))
    assert not any(isinstance(m, Commit) for m in sent(actions))
    assert r.hs.prepares[0].count(pid) == 2


def test_prepare_for_a_stale_view_is_dropped():
    r, header, txs, pid, _ = accepted_replica()
    r.handle(ev.TimerFired(r.timer_id))  # now in view 1
    deliver(r, signed(Prepare(1, 0, 1, pid)))
    assert 0 not in r.hs.prepares


def test_vote_for_a_far_future_view_is_dropped_without_a_signature_check():
    suite = CountingSuite(SUITE)
    r = make_replica(0, suite=suite)
    before = suite.verifies
    actions = deliver(r, signed(Prepare(1, 2**63, 1, TX[0])))
    actions += deliver(r, signed(Commit(1, CFG.vote_view_ahead_max + 1, 1, TX[0])))
    assert suite.verifies == before and actions == [] and not r.hs.prepares and not r.hs.commits


def test_prepare_for_a_wrong_height_does_not_count():
    r, header, txs, pid, _ = accepted_replica()
    deliver(r, signed(Prepare(2, 0, 1, pid)))
    deliver(r, signed(Prepare(2, 0, 2, pid)))
    assert r.hs.prepares[0].count(pid) == 1  # only our own


def test_duplicate_prepare_costs_no_signature_check_and_counts_once():
    suite = CountingSuite(SUITE)
    r = make_replica(0, suite=suite)
    header, txs = make_header()
    deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    p = signed(Prepare(1, 0, 2, header.hash(SUITE)))
    deliver(r, p)
    checks = suite.verifies
    for _ in range(5):
        assert deliver(r, p) == []
    assert suite.verifies == checks and r.hs.prepares[0].count(header.hash(SUITE)) == 1


def test_two_different_votes_from_one_sealer_are_refused():
    r, header, txs, pid, _ = accepted_replica()
    deliver(r, signed(Prepare(1, 0, 2, pid)))
    actions = deliver(r, signed(Prepare(1, 0, 2, TX[0])))
    assert "two different Prepare votes" in misbehaviour(actions)[0]
    assert r.hs.prepares[0].count(TX[0]) == 0


def test_commits_without_our_prepared_certificate_do_not_commit():
    r = make_replica(0)
    pid = TX[0]
    for i in (1, 2, 3):
        actions = deliver(r, signed(Commit(1, 0, i, pid)))
        assert not sent(actions)


# ---- CHECKPOINT --------------------------------------------------------------------------


def test_checkpoint_with_bad_signature_or_from_a_non_sealer_is_refused():
    r = make_replica(0)
    pid = TX[0]
    bad = Checkpoint(1, 0, 1, pid, SUITE.sign(KEYS[2][0], commit_signing_bytes(1, pid)))
    assert misbehaviour(deliver(r, bad)) == ["bad signature on Checkpoint"]
    assert deliver(r, Checkpoint(1, 0, 7, pid, bytes(64)), sender=7) == []
    assert r.hs.checkpoints == {}


def test_checkpoint_quorum_without_the_block_waits_for_it():
    r = make_replica(0)
    header, txs = make_header()
    pid = header.hash(SUITE)
    for i in (1, 2, 3):
        actions = deliver(r, Checkpoint(1, 0, i, pid, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))))
    assert not of_type(actions, ev.Commit) and r.hs.certified is not None
    # The proposal arrives: execute, then commit with the certificate.
    actions = deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    actions = r.handle(ev.ExecutionDone(pid, header))
    (commit,) = of_type(actions, ev.Commit)
    assert commit.certificate.block_hash == pid and r.hs.height == 2


# ---- VIEW_CHANGE / NEW_VIEW --------------------------------------------------------------


def _vc(sender: int, view: int = 1, prepared=None) -> ViewChange:
    return signed(ViewChange(1, view, sender, prepared))


def test_timeout_sends_view_change_with_backoff_and_progress_resets_it():
    r = make_replica(0)
    actions = r.handle(ev.PoolNotEmpty())
    (timer,) = of_type(actions, ev.SetTimer)
    assert timer.delay_ms == CFG.timeout_base_ms
    delays = []
    for view in range(1, 6):
        actions = r.handle(ev.TimerFired(r.timer_id))
        vc = sent(actions)[0]
        assert isinstance(vc, ViewChange) and vc.view == view
        kinds = [type(a) for a in actions]
        assert kinds.index(ev.Persist) < kinds.index(ev.Broadcast)
        delays.append(of_type(actions, ev.SetTimer)[0].delay_ms)
        for peer in (2, 3):  # the others got there too, but no NEW_VIEW comes
            deliver(r, _vc(peer, view=view))
    assert delays == [2000, 4000, 8000, 8000, 8000]
    h1, _ = make_header()
    r.handle(ev.BlockCommitted(1, h1.hash(SUITE)))
    assert r.hs.view == 0
    (timer,) = of_type(r.handle(ev.PoolNotEmpty()), ev.SetTimer)
    assert timer.delay_ms == CFG.timeout_base_ms


def test_replica_ahead_of_the_others_waits_for_them_instead_of_running_away():
    r = make_replica(0)
    r.handle(ev.PoolNotEmpty())
    r.handle(ev.TimerFired(r.timer_id))
    assert r.hs.view == 1
    deliver(r, _vc(2, view=1))  # only 2 of a quorum of 3 are at view >= 1
    actions = r.handle(ev.TimerFired(r.timer_id))
    assert r.hs.view == 1  # stays, re-sends its VIEW_CHANGE, re-arms
    (vc,) = sent(actions)
    assert isinstance(vc, ViewChange) and vc.view == 1 and of_type(actions, ev.SetTimer)
    deliver(r, _vc(3, view=1))
    r.handle(ev.TimerFired(r.timer_id))
    assert r.hs.view == 2


def test_stale_timer_is_ignored():
    r = make_replica(0)
    r.handle(ev.PoolNotEmpty())
    old = r.timer_id
    r.handle(ev.TimerFired(old))
    assert r.handle(ev.TimerFired(old)) == [] and r.hs.view == 1


def test_f_view_changes_cannot_move_a_replica_but_f_plus_1_can():
    r = make_replica(0)
    deliver(r, _vc(2, view=5))
    assert r.hs.view == 0
    actions = deliver(r, _vc(3, view=7))
    assert r.hs.view == 5 and isinstance(sent(actions)[0], ViewChange)


def test_huge_view_number_is_dropped_unchecked_and_cannot_stall_the_chain():
    suite = CountingSuite(SUITE)
    r = make_replica(0, suite=suite)
    checks = suite.verifies
    for view in (2**64 - 1, 2**63, CFG.view_ahead_max + 1):
        assert deliver(r, signed(ViewChange(1, view, 3, None))) == []
    assert suite.verifies == checks and r.hs.view == 0 and not r.hs.view_changes
    # The replica still takes part normally.
    header, txs = make_header()
    assert of_type(deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs))), ev.Execute)


def test_far_future_height_is_dropped_unchecked():
    suite = CountingSuite(SUITE)
    r = make_replica(0, suite=suite)
    for height in (2**63, CFG.height_ahead_max + 2):
        assert deliver(r, signed(Prepare(height, 0, 1, TX[0]))) == []
    assert suite.verifies == 0 and not r.hs.future


def test_view_change_with_a_forged_prepared_certificate_is_refused():
    r = make_replica(0)
    header, txs = make_header()
    pid = header.hash(SUITE)
    sigs = [(i, signed(Prepare(1, 0, i, pid)).signature) for i in (1, 2)] + [(3, bytes(64))]
    vc = _vc(2, prepared=PreparedCertificate(0, header, txs, sigs))
    actions = deliver(r, vc)
    assert "bad signature of sealer 3" in misbehaviour(actions)[0]
    assert 2 not in r.hs.view_changes


def test_new_leader_re_proposes_the_highest_prepared_block():
    leader = make_replica(2)  # leader of height 1, view 1
    header, txs = make_header()
    pid = header.hash(SUITE)
    cert = PreparedCertificate(0, header, txs, [(i, signed(Prepare(1, 0, i, pid)).signature) for i in (0, 1, 3)])
    deliver(leader, _vc(0, prepared=cert))
    actions = deliver(leader, _vc(3))
    assert not of_type(actions, ev.BuildProposal)
    # f+1 VIEW_CHANGEs moved it to view 1; with its own that is a quorum: NEW_VIEW goes out.
    assert leader.hs.view == 1 and leader.hs.phase is Phase.ACCEPTED  # NEW_VIEW sent, executing its block
    nv = [m for m in sent(actions) if isinstance(m, NewView)]
    assert len(nv) == 1 and nv[0].pre_prepare.header == header


def test_new_view_without_prepared_blocks_builds_a_fresh_one():
    leader = make_replica(2)
    deliver(leader, _vc(0))
    actions = deliver(leader, _vc(3))
    (build,) = of_type(actions, ev.BuildProposal)
    assert build.view == 1 and build.allow_empty and build.proposer_index == 2


def _new_view(vcs, header, txs, leader=2, view=1):
    pp = signed(PrePrepare(1, view, leader, header, txs))
    return signed(NewView(1, view, leader, vcs, pp))


def test_valid_new_view_is_accepted():
    r = make_replica(0)
    header, txs = make_header(proposer=2)
    actions = deliver(r, _new_view([_vc(1), _vc(2), _vc(3)], header, txs))
    assert r.hs.view == 1 and r.hs.phase is Phase.ACCEPTED
    assert [a.proposal_id for a in of_type(actions, ev.Execute)] == [header.hash(SUITE)]


def test_new_view_from_the_wrong_leader_is_refused():
    r = make_replica(0)
    header, txs = make_header(proposer=3)
    actions = deliver(r, _new_view([_vc(1), _vc(2), _vc(3)], header, txs, leader=3))
    assert r.hs.view == 0 and "the leader of view 1 is 2" in misbehaviour(actions)[0]


def test_new_view_with_fewer_than_a_quorum_is_refused():
    r = make_replica(0)
    header, txs = make_header(proposer=2)
    actions = deliver(r, _new_view([_vc(1), _vc(2)], header, txs))
    assert r.hs.view == 0 and "a quorum is 3" in misbehaviour(actions)[0]


def test_new_view_with_repeated_or_wrong_view_changes_is_refused():
    r = make_replica(0)
    header, txs = make_header(proposer=2)
    assert "repeated" in misbehaviour(deliver(r, _new_view([_vc(1), _vc(1), _vc(3)], header, txs)))[0]
    assert "another height or view" in misbehaviour(deliver(r, _new_view([_vc(1), _vc(2), _vc(3, view=2)], header, txs)))[0]
    assert r.hs.view == 0


def test_new_view_that_drops_a_prepared_block_is_refused():
    r = make_replica(0)
    prepared_header, txs = make_header()
    pid = prepared_header.hash(SUITE)
    cert = PreparedCertificate(0, prepared_header, txs, [(i, signed(Prepare(1, 0, i, pid)).signature) for i in (1, 2, 3)])
    fresh, _ = make_header(proposer=2, extra=b"something else")
    actions = deliver(r, _new_view([_vc(1, prepared=cert), _vc(2), _vc(3)], fresh, txs))
    assert r.hs.view == 0 and "highest prepared block" in misbehaviour(actions)[0]
    # The same NEW_VIEW re-proposing the prepared block is fine.
    actions = deliver(r, _new_view([_vc(1, prepared=cert), _vc(2), _vc(3)], prepared_header, txs))
    assert r.hs.view == 1 and of_type(actions, ev.Execute)


def test_new_view_with_bad_signature_is_refused():
    r = make_replica(0)
    header, txs = make_header(proposer=2)
    nv = replace(_new_view([_vc(1), _vc(2), _vc(3)], header, txs), signature=bytes(64))
    assert misbehaviour(deliver(r, nv)) == ["bad signature on NewView"]
    assert r.hs.view == 0


def test_block_prepared_before_a_view_change_is_committed_after_it():
    """The lost-block scenario: every replica prepared B in view 0 but no COMMIT got through
    and the leader died. The next view must commit B, not the fresh block its leader would
    otherwise build from a pool that now holds more transactions."""
    c = Cluster()
    c.drop = lambda src, dst, data: isinstance(decode_message(data), Commit)
    c.submit(TX[:2])
    b = c.replicas[0].hs.prepared.header.hash(SUITE)
    assert all(r.hs.prepared is not None and r.hs.prepared.header.hash(SUITE) == b for r in c.replicas)
    assert not any(c.commits)
    c.down.add(LEADER)
    c.drop = lambda src, dst, data: dst == LEADER
    c.pool.extend(TX[2:5])
    c.fire_timer(0)
    c.fire_timer(2)  # with 0's VIEW_CHANGE that is f + 1: replica 3 follows without its timer
    committed = [[x.header.hash(SUITE) for x in c.commits[i]] for i in (0, 2, 3)]
    assert committed == [[b]] * 3
    assert all(c.replicas[i].hs.height == 2 and c.replicas[i].head_hash == b for i in (0, 2, 3))


# ---- crash, restart, persisted state -----------------------------------------------------


def test_restarted_replica_does_not_prepare_a_second_block_in_the_same_view():
    r, header, txs, pid, actions = accepted_replica()
    persisted = of_type(actions, ev.Persist)[-1].data
    restarted = make_replica(0, persisted=persisted)
    restarted.start()
    other, _ = make_header(extra=b"equivocating leader's second block")
    actions = deliver(restarted, signed(PrePrepare(1, 0, LEADER, other, txs)))
    assert not of_type(actions, ev.Execute)
    assert not any(isinstance(m, Prepare) for m in sent(actions))
    assert restarted.stats["equivocations"] == 1 and restarted.hs.view == 1


def test_restarted_replica_recovers_the_proposal_it_voted_for():
    r, header, txs, pid, actions = accepted_replica()
    restarted = make_replica(0, persisted=of_type(actions, ev.Persist)[-1].data)
    restarted.start()
    deliver(restarted, signed(Prepare(1, 0, 1, pid)))
    deliver(restarted, signed(Prepare(1, 0, 2, pid)))
    actions = deliver(restarted, signed(PrePrepare(1, 0, LEADER, header, txs)))  # retransmitted
    msgs = sent(actions)
    # No second PREPARE; its COMMIT goes out, and the block is executed again because the
    # restarted application needs its state to commit it.
    assert [type(m) for m in msgs] == [Commit] and msgs[0].block_hash == pid
    assert [a.proposal_id for a in of_type(actions, ev.Execute)] == [pid]


def test_restarted_replica_stays_in_its_view_and_resends_its_view_change():
    r = make_replica(0)
    r.handle(ev.PoolNotEmpty())
    actions = r.handle(ev.TimerFired(r.timer_id))
    restarted = make_replica(0, persisted=of_type(actions, ev.Persist)[-1].data)
    actions = restarted.start()
    assert restarted.hs.view == 1 and restarted.hs.phase is Phase.VIEW_CHANGE
    assert isinstance(sent(actions)[0], ViewChange) and of_type(actions, ev.SetTimer)
    # A view-0 proposal (a lower view) is no longer accepted.
    header, txs = make_header()
    assert not of_type(deliver(restarted, signed(PrePrepare(1, 0, LEADER, header, txs))), ev.Execute)


def test_restarted_leader_never_proposes_a_second_block():
    c = Cluster()
    c.pool.extend(TX[:1])
    leader = c.replicas[LEADER]
    actions = leader.handle(ev.PoolNotEmpty())
    (build,) = of_type(actions, ev.BuildProposal)
    header, txs = make_header(proposer=LEADER, txs=TX[:1])
    actions = leader.handle(ev.ProposalReady(1, 0, header, txs))
    kinds = [type(a) for a in actions]
    assert kinds[0] is ev.Persist  # the vote is durable before the proposal leaves
    restarted = make_replica(LEADER, persisted=of_type(actions, ev.Persist)[-1].data)
    restarted.start()
    assert not of_type(restarted.handle(ev.PoolNotEmpty()), ev.BuildProposal)


def test_persisted_state_from_the_future_is_a_loud_error():
    state = SafetyState(5, 0, False, None, None, None, None)
    with pytest.raises(AssertionError):
        make_replica(0, persisted=state.encode())


def test_persisted_state_of_a_committed_height_is_ignored():
    state = SafetyState(1, 3, True, None, None, None, None)
    h1, _ = make_header()
    r = make_replica(0, persisted=state.encode(), head=(1, h1.hash(SUITE)))
    assert r.hs.height == 2 and r.hs.view == 0 and r.start() == []


# ---- sealer set changes ------------------------------------------------------------------


def test_sealer_set_change_takes_effect_at_the_block_boundary():
    r = make_replica(0)
    new_pubs = PUBS[:3] + [SUITE.keypair_from_private(b"\x09" * 32)[1]]
    r.handle(ev.SealersChanged(2, new_pubs))
    assert r.hs.sealers.pubs == tuple(PUBS)  # height 1 is still certified by the old set
    h1, _ = make_header()
    r.handle(ev.BlockCommitted(1, h1.hash(SUITE)))
    assert r.hs.sealers.pubs == tuple(new_pubs) and r.hs.me == 0


def test_sealer_set_change_for_a_height_already_voted_on_is_refused():
    r, *_ = accepted_replica()
    with pytest.raises(ValueError):
        r.handle(ev.SealersChanged(1, PUBS[:3]))


def test_removed_sealer_stops_voting():
    r = make_replica(3)
    r.handle(ev.SealersChanged(2, PUBS[:3]))
    h1, _ = make_header()
    r.handle(ev.BlockCommitted(1, h1.hash(SUITE)))
    assert r.hs.me is None
    header, txs = make_header(height=2, proposer=2, parent=h1.hash(SUITE))
    from chainnode.protocol.types import sealer_set_hash

    header = replace(header, sealer_set_hash=sealer_set_hash(SUITE, PUBS[:3]))
    actions = deliver(r, signed(PrePrepare(2, 0, 2, header, txs)))
    actions = r.handle(ev.ExecutionDone(header.hash(SUITE), header))
    assert not sent(actions)


# ---- catching up -------------------------------------------------------------------------


def test_lagging_replica_catches_up_from_decided_blocks():
    c = Cluster()
    c.down.add(3)
    for k in range(3):
        c.submit([TX[k]])
    # Height 3's leader is the replica that is down: the others change view to get it done.
    for i in (0, 1, 2):
        if c.timers[i]:
            c.fire_timer(i)
    assert [len(x) for x in c.commits] == [3, 3, 3, 0]
    c.down.discard(3)
    c.submit([TX[3]])  # height 4: replica 3 sees it and asks for what it missed
    assert [x.header.height for x in c.commits[3]][:3] == [1, 2, 3]
    theirs = [x.header.hash(SUITE) for x in c.commits[0]]
    assert [x.header.hash(SUITE) for x in c.commits[3]] == theirs[: len(c.commits[3])]
    for commit in c.commits[3]:
        commit.certificate.verify(SUITE, PUBS)


def test_decided_block_with_a_forged_certificate_is_refused():
    from consensus.messages import Decided

    r = make_replica(0)
    header, txs = make_header()
    pid = header.hash(SUITE)
    cert = CommitCertificate(1, pid, [(i, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))) for i in (1, 2)] + [(3, bytes(64))])
    actions = deliver(r, signed(Decided(1, 0, 2, header, txs, cert, 1)))
    assert not of_type(actions, ev.Execute) and not of_type(actions, ev.Commit)
    assert "invalid certificate" in misbehaviour(actions)[0]
    good = CommitCertificate(1, pid, [(i, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))) for i in (1, 2, 3)])
    actions = deliver(r, signed(Decided(1, 0, 2, header, txs, good, 1)))
    actions = r.handle(ev.ExecutionDone(of_type(actions, ev.Execute)[0].proposal_id, header))
    assert of_type(actions, ev.Commit)[0].certificate == good and r.hs.height == 2


def test_replica_answers_a_view_change_for_a_height_it_decided():
    c = Cluster()
    c.submit([TX[0]])
    r = c.replicas[0]
    actions = deliver(r, signed(ViewChange(1, 1, 3, None)))
    (decided,) = sent(actions)
    assert decided.height == 1 and decided.certificate == c.commits[0][0].certificate
    assert deliver(r, signed(ViewChange(1, 1, 3, None))) == []  # once per (height, view)


def test_new_view_clock_starts_when_a_quorum_asks_for_it():
    r = make_replica(0)
    r.handle(ev.PoolNotEmpty())
    r.handle(ev.TimerFired(r.timer_id))  # view 1, alone
    first = r.timer_id
    deliver(r, _vc(3, view=1))
    assert r.timer_id == first
    actions = deliver(r, _vc(1, view=1))  # a quorum (3 of 4) now wants view 1
    assert r.timer_id != first
    assert of_type(actions, ev.CancelTimer)[0].timer_id == first
    assert of_type(actions, ev.SetTimer)[0].delay_ms == 2000


def test_certified_block_that_failed_execution_is_executed_once_more():
    r = make_replica(0)
    header, txs = make_header()
    pid = header.hash(SUITE)
    deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    r.handle(ev.ExecutionDone(pid, None))  # say, a transaction could not be fetched in time
    assert r.hs.view == 1
    for i in (1, 2, 3):
        actions = deliver(r, Checkpoint(1, 0, i, pid, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))))
    assert [a.proposal_id for a in of_type(actions, ev.Execute)] == [pid]
    (commit,) = of_type(r.handle(ev.ExecutionDone(pid, header)), ev.Commit)
    assert commit.header == header


def test_missing_data_is_retried_without_blame_and_never_taken_for_divergence():
    # A transaction the replica could not fetch in time said nothing about the block: it was
    # taken for a failed execution, and once the block was certified, for divergence (the node
    # crashed with "the application diverged").
    r = make_replica(0)
    header, txs = make_header()
    pid = header.hash(SUITE)
    deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    actions = r.handle(ev.ExecutionDone(pid, None, retry=True))
    assert [a.proposal_id for a in of_type(actions, ev.Execute)] == [pid]  # asked again ...
    assert r.hs.view == 0 and not of_type(actions, ev.Misbehaviour)  # ... with no view change, no blame
    for i in (1, 2, 3):
        actions = deliver(r, Checkpoint(1, 0, i, pid, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))))
    for _ in range(5):  # certified: asked again as often as the data is missing
        actions = r.handle(ev.ExecutionDone(pid, None, retry=True))
        assert [a.proposal_id for a in of_type(actions, ev.Execute)] == [pid]
    (commit,) = of_type(r.handle(ev.ExecutionDone(pid, header)), ev.Commit)
    assert commit.header == header and r.stats["execution_retries"] == 6


def test_a_certified_block_whose_roots_differ_here_halts_naming_the_reason():
    r = make_replica(0)
    header, txs = make_header()
    pid = header.hash(SUITE)
    deliver(r, signed(PrePrepare(1, 0, LEADER, header, txs)))
    for i in (1, 2, 3):
        deliver(r, Checkpoint(1, 0, i, pid, SUITE.sign(KEYS[i][0], commit_signing_bytes(1, pid))))
    r.handle(ev.ExecutionDone(pid, None, reason="differs from our execution in: state_root"))  # executed once more
    with pytest.raises(AssertionError, match="diverged at height 1: differs from our execution in: state_root"):
        r.handle(ev.ExecutionDone(pid, None, reason="differs from our execution in: state_root"))

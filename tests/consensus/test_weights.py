"""Weighted quorums (governance `NodeEntry.weight`, FISCO BCOS 3.x weighted PBFT).

Thresholds: W = total weight, F = (W - 1) // 3 the faulty weight tolerated, a quorum is
weight >= Q = W - F, and "f + 1" means weight > F. With unit weights every number, hash and
certificate is exactly the classical one."""

from __future__ import annotations

import itertools
import random

import pytest

from chainnode.protocol.codec import pack
from chainnode.protocol.types import (
    CommitCertificate,
    InvalidCertificate,
    check_weights,
    commit_signing_bytes,
    faulty_weight,
    quorum_size,
    quorum_weight,
    sealer_set_hash,
)
from consensus import events as ev
from consensus.messages import NewView, Prepare, PreparedCertificate, PrePrepare, ViewChange
from consensus.quorum import SealerSet, VoteSet
from consensus.replica import Phase
from tests.consensus.helpers import (
    KEYS,
    PUBS,
    SET_HASH,
    SUITE,
    TX,
    Cluster,
    deliver,
    make_header,
    make_replica,
    misbehaviour,
    of_type,
    sent,
    signed,
)

HEAVY_LEADER = [1, 4, 1, 1]  # W = 7, F = 2, Q = 5; sealer 1 leads height 1 view 0
HEAVY_LAST = [1, 1, 1, 4]  # same thresholds, the heavy sealer is 3


# ---- thresholds ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", range(1, 31))
def test_unit_weights_give_exactly_the_classical_thresholds(n):
    sset = SealerSet.build(SUITE, [bytes([i]) * 32 for i in range(n)])
    assert sset.unit and sset.total_weight == n
    assert sset.quorum == quorum_size(n) == n - (n - 1) // 3 == quorum_weight([1] * n)
    assert sset.f == (n - 1) // 3 == faulty_weight(n)
    # Passing explicit ones is the same set (same hash, same numbers) as passing nothing.
    explicit = SealerSet.build(SUITE, list(sset.pubs), [1] * n)
    assert explicit == sset and explicit.unit


def test_a_heavy_sealer_and_one_other_make_a_quorum_three_light_ones_do_not():
    sset = SealerSet.build(SUITE, PUBS, HEAVY_LAST)
    assert (sset.total_weight, sset.f, sset.quorum) == (7, 2, 5)
    assert sset.is_quorum([3, 0]) and sset.is_quorum([1, 3])
    assert not sset.is_quorum([0, 1, 2])  # three of four sealers, but 3 < 5
    assert sset.exceeds_faulty([3]) and not sset.exceeds_faulty([0, 1])  # "f + 1" is weight 3
    # Unit weights, same keys: three of four is a quorum, one is not "f + 1".
    unit = SealerSet.build(SUITE, PUBS)
    assert unit.is_quorum([0, 1, 2]) and not unit.is_quorum([3, 0]) and not unit.exceeds_faulty([3])


def test_leader_rotation_is_by_index_whatever_the_weights():
    unit, weighted = SealerSet.build(SUITE, PUBS), SealerSet.build(SUITE, PUBS, [9, 1, 1, 1])
    for height, view, period in itertools.product(range(12), range(5), (1, 3)):
        assert weighted.leader(height, view, period) == unit.leader(height, view, period)


def test_quorums_intersect_in_more_than_f_weight_and_honest_weight_is_a_quorum():
    rng = random.Random(7)
    for _ in range(300):
        n = rng.randint(1, 7)
        weights = [rng.choice([1, 1, 2, 3, 5, 10, 40]) for _ in range(n)]
        sset = SealerSet(tuple(bytes([i]) * 32 for i in range(n)), b"h", tuple(weights))
        W, F, Q = sset.total_weight, sset.f, sset.quorum
        assert W >= 3 * F + 1 and Q == W - F and 2 * Q - W > F
        subsets = [frozenset(c) for k in range(n + 1) for c in itertools.combinations(range(n), k)]
        weight = {s: sum(weights[i] for i in s) for s in subsets}
        quorums = [s for s in subsets if weight[s] >= Q]
        for a, b in itertools.combinations(quorums, 2):
            assert weight[a & b] > F  # so the overlap holds an honest sealer
        for faulty in subsets:
            if weight[faulty] <= F:
                honest = frozenset(range(n)) - faulty
                assert weight[honest] >= Q  # liveness: the honest ones alone are a quorum
                assert weight[faulty] < Q - F  # a quorum holds more than F honest weight


def test_vote_sets_count_weight():
    votes = VoteSet((1, 1, 1, 4))
    assert votes.add(0, b"a", b"s") == 1 and votes.add(3, b"a", b"s") == 5 and votes.add(1, b"b", b"s") == 1
    assert votes.count(b"a") == 5 and votes.max_other(b"b") == 5 and votes.max_other(b"a") == 1
    unit = VoteSet()
    unit.add(3, b"a", b"s")
    assert unit.count(b"a") == 1


def test_quorum_prefix_takes_just_enough_weight():
    sigs = [(0, b"x"), (1, b"y"), (3, b"z")]
    assert SealerSet.build(SUITE, PUBS, HEAVY_LAST).quorum_prefix(sigs) == sigs  # 1 + 1 + 4
    assert SealerSet.build(SUITE, PUBS, [1, 4, 1, 1]).quorum_prefix(sigs) == sigs[:2]  # 1 + 4
    assert SealerSet.build(SUITE, PUBS).quorum_prefix(sigs + [(2, b"w")]) == sigs  # unit: the first 3


def test_weights_are_validated():
    with pytest.raises(ValueError, match="3 weights for 4 sealers"):
        check_weights([1, 1, 1], 4)
    for bad in (0, -1, 1_000_001, 1.0, True):
        with pytest.raises(ValueError, match="not an integer"):
            check_weights([1, 1, 1, bad], 4)
    assert check_weights(None, 4) is None and check_weights([1] * 4, 4) is None
    assert check_weights([1, 1_000_000, 1, 1], 4) == [1, 1_000_000, 1, 1]
    with pytest.raises(ValueError):
        SealerSet.build(SUITE, PUBS, [1, 2])


# ---- the hash bound into headers ---------------------------------------------------------


def test_sealer_set_hash_is_unchanged_for_unit_weights_and_binds_other_weights():
    today = SUITE.hash(pack([1, "chainnode/sealers", list(PUBS)]))  # the pre-weights formula
    assert SET_HASH == today == sealer_set_hash(SUITE, PUBS) == sealer_set_hash(SUITE, PUBS, None)
    assert sealer_set_hash(SUITE, PUBS, [1, 1, 1, 1]) == today
    weighted = sealer_set_hash(SUITE, PUBS, HEAVY_LAST)
    assert weighted == SUITE.hash(pack([2, "chainnode/sealers", list(PUBS), HEAVY_LAST]))
    assert weighted != today
    assert weighted != sealer_set_hash(SUITE, PUBS, HEAVY_LEADER) != sealer_set_hash(SUITE, PUBS, [2, 2, 2, 2])
    assert SealerSet.build(SUITE, PUBS, HEAVY_LAST).set_hash == weighted
    assert SealerSet.build(SUITE, PUBS).set_hash == today


# ---- certificates ------------------------------------------------------------------------


def _cert(signers, height=7, block_hash=b"\x09" * 32):
    msg = commit_signing_bytes(height, block_hash)
    return CommitCertificate(height, block_hash, [(i, SUITE.sign(KEYS[i][0], msg)) for i in signers])


def test_certificate_verification_counts_weight():
    heavy_and_one = _cert([0, 3])
    heavy_and_one.verify(SUITE, PUBS, HEAVY_LAST)  # 1 + 4 >= 5
    with pytest.raises(InvalidCertificate, match="quorum"):
        heavy_and_one.verify(SUITE, PUBS)  # unit weights: 2 of 4 is not a quorum
    three_light = _cert([0, 1, 2])
    three_light.verify(SUITE, PUBS)  # unit: 3 of 4
    three_light.verify(SUITE, PUBS, [1, 1, 1, 1])  # explicit ones: the same rule
    with pytest.raises(InvalidCertificate, match="weight 3, a quorum of 4 sealers of total weight 7 is 5"):
        three_light.verify(SUITE, PUBS, HEAVY_LAST)
    with pytest.raises(InvalidCertificate, match="quorum"):
        _cert([3]).verify(SUITE, PUBS, HEAVY_LAST)  # 4 < 5
    # Structure is still checked with weights: repeats, strangers, bad signatures.
    sigs = _cert([0, 3]).signatures
    with pytest.raises(InvalidCertificate, match="quorum"):
        CommitCertificate(7, b"\x09" * 32, [sigs[1], sigs[1]]).verify(SUITE, PUBS, HEAVY_LAST)  # 4, not 8
    with pytest.raises(InvalidCertificate, match="unique"):
        CommitCertificate(7, b"\x09" * 32, [sigs[0], sigs[1], sigs[1]]).verify(SUITE, PUBS, HEAVY_LAST)
    with pytest.raises(InvalidCertificate, match="not in a set"):
        CommitCertificate(7, b"\x09" * 32, sigs + [(9, sigs[0][1])]).verify(SUITE, PUBS, HEAVY_LAST)
    with pytest.raises(InvalidCertificate, match="does not verify"):
        CommitCertificate(8, b"\x09" * 32, sigs).verify(SUITE, PUBS, HEAVY_LAST)
    with pytest.raises(ValueError):
        heavy_and_one.verify(SUITE, PUBS, [1, 4])


# ---- the replica counts weight everywhere ------------------------------------------------


def _accepted(weights):
    """Replica 0 accepted and executed leader 1's view-0 proposal (and voted PREPARE)."""
    r = make_replica(0, weights=weights)
    header, txs = make_header(set_hash=sealer_set_hash(SUITE, PUBS, weights))
    deliver(r, signed(PrePrepare(1, 0, 1, header, txs)))
    actions = r.handle(ev.ExecutionDone(header.hash(SUITE), header))
    assert [type(m).__name__ for m in sent(actions)] == ["Prepare"]
    return r, header.hash(SUITE)


def _prepare(sender, block_hash, view=0):
    return signed(Prepare(1, view, sender, block_hash))


def test_heavy_prepare_plus_own_vote_is_a_quorum():
    r, h = _accepted(HEAVY_LEADER)
    actions = deliver(r, _prepare(1, h))  # 1 (own) + 4 = 5
    assert [type(m).__name__ for m in sent(actions)] == ["Commit"]
    assert r.hs.prepared is not None and [i for i, _ in r.hs.prepared.signatures] == [0, 1]


def test_three_light_prepares_are_not_a_quorum_when_the_fourth_is_heavy():
    r, h = _accepted(HEAVY_LAST)
    assert sent(deliver(r, _prepare(1, h))) == [] and sent(deliver(r, _prepare(2, h))) == []
    assert r.hs.prepared is None  # weight 3 < 5 (with unit weights 3 of 4 would be a quorum)
    actions = deliver(r, _prepare(3, h))
    assert [type(m).__name__ for m in sent(actions)] == ["Commit"]
    unit, uh = _accepted(None)
    deliver(unit, _prepare(1, uh))
    assert [type(m).__name__ for m in sent(deliver(unit, _prepare(2, uh)))] == ["Commit"]


def test_equivocation_evidence_needs_more_than_f_weight():
    r, h = _accepted(HEAVY_LAST)
    other = b"\x77" * 32
    deliver(r, _prepare(2, other))
    assert r.hs.view == 0  # weight 1 for another block: could be one liar
    deliver(r, _prepare(3, other))
    assert r.hs.view == 1 and r.hs.phase is Phase.VIEW_CHANGE  # weight 5 > F = 2: an honest sealer saw another block


def test_joining_a_view_change_needs_more_than_f_weight():
    r = make_replica(0, weights=HEAVY_LAST)
    r.handle(ev.PoolNotEmpty())
    deliver(r, signed(ViewChange(1, 1, 1, None)))
    deliver(r, signed(ViewChange(1, 1, 2, None)))
    assert r.hs.view == 0  # weight 2 = F: could be liars only (unit weights: 2 > f = 1, we would follow)
    deliver(r, signed(ViewChange(1, 3, 3, None)))
    # Weight 4 reached view 3, more than F: follow to the highest view > F weight reached.
    assert r.hs.view == 3 and r.hs.phase is Phase.BUILDING_NEW_VIEW  # it leads view 3: it builds the block
    unit = make_replica(0)
    unit.handle(ev.PoolNotEmpty())
    deliver(unit, signed(ViewChange(1, 3, 3, None)))
    assert unit.hs.view == 0  # one sealer alone never moves a unit-weight replica


def test_new_view_quorum_is_by_weight():
    weights, set_hash = HEAVY_LAST, sealer_set_hash(SUITE, PUBS, HEAVY_LAST)
    header, txs = make_header(proposer=2, set_hash=set_hash)  # the leader of view 1 is 2

    def new_view(senders):
        vcs = [signed(ViewChange(1, 1, s, None)) for s in senders]
        return signed(NewView(1, 1, 2, vcs, signed(PrePrepare(1, 1, 2, header, txs))))

    r = make_replica(0, weights=weights)
    actions = deliver(r, new_view([1, 2]))
    assert r.hs.view == 0 and "2 VIEW_CHANGEs of weight 2, a quorum is 5" in misbehaviour(actions)[0]
    r = make_replica(0, weights=weights)
    actions = deliver(r, new_view([2, 3]))  # two sealers, weight 5
    assert r.hs.view == 1 and r.hs.phase is Phase.ACCEPTED and of_type(actions, ev.Execute)


def test_a_new_leader_sends_just_enough_weight():
    r = make_replica(2, weights=HEAVY_LAST)  # the leader of view 1
    r.handle(ev.PoolNotEmpty())
    r.handle(ev.TimerFired(r.timer_id))  # its own VIEW_CHANGE (weight 1)
    assert not of_type(deliver(r, signed(ViewChange(1, 1, 0, None))), ev.BuildProposal)  # 2 < 5
    actions = deliver(r, signed(ViewChange(1, 1, 3, None)))  # 1 + 1 + 4 >= 5
    (build,) = of_type(actions, ev.BuildProposal)
    assert build.sealer_set_hash == sealer_set_hash(SUITE, PUBS, HEAVY_LAST)


def _prepared_cert(signers, weights):
    header, txs = make_header(set_hash=sealer_set_hash(SUITE, PUBS, weights))
    h = header.hash(SUITE)
    return PreparedCertificate(0, header, txs, [(i, _prepare(i, h).signature) for i in signers])


def test_prepared_certificates_in_view_changes_need_quorum_weight():
    r = make_replica(0, weights=HEAVY_LAST)
    actions = deliver(r, signed(ViewChange(1, 1, 2, _prepared_cert([0, 1, 2], HEAVY_LAST))))
    assert "3 signatures of weight 3, a quorum is 5" in misbehaviour(actions)[0] and 2 not in r.hs.view_changes
    actions = deliver(r, signed(ViewChange(1, 1, 2, _prepared_cert([2, 3], HEAVY_LAST))))
    assert misbehaviour(actions) == [] and r.hs.view_changes[2].prepared is not None


# ---- weight changes are sealer-set changes -----------------------------------------------


def test_cluster_with_weights_commits_and_certificates_verify_with_weights():
    c = Cluster(weights=HEAVY_LEADER)
    c.submit(TX[:2])
    c.submit(TX[2:3])
    assert [len(x) for x in c.commits] == [2, 2, 2, 2]
    for commits in c.commits:
        for commit in commits:
            assert commit.header.sealer_set_hash == sealer_set_hash(SUITE, PUBS, HEAVY_LEADER) != SET_HASH
            CommitCertificate.decode(commit.certificate.encode()).verify(SUITE, PUBS, HEAVY_LEADER)


def test_weight_change_takes_effect_at_its_height_and_follows_the_set_change_rule():
    r = make_replica(0)
    r.handle(ev.SealersChanged(2, PUBS, HEAVY_LAST))  # announced ahead: always accepted
    assert r.hs.sealers.unit and r.sealers_at(2).weights == tuple(HEAVY_LAST)
    header, _ = make_header()
    r.handle(ev.BlockCommitted(1, header.hash(SUITE)))
    assert r.hs.height == 2 and r.hs.sealers.weights == tuple(HEAVY_LAST) and r.hs.sealers.quorum == 5
    assert r.hs.sealers.set_hash == sealer_set_hash(SUITE, PUBS, HEAVY_LAST)
    # Back to unit weights, positional call exactly as before weights existed.
    r.handle(ev.SealersChanged(3, PUBS))
    assert r.sealers_at(3).unit and r.sealers_at(3).set_hash == SET_HASH
    # Same rule as any set change: not for a height at which this replica already voted.
    v, h = _accepted(None)
    with pytest.raises(ValueError, match="after this replica started voting"):
        v.handle(ev.SealersChanged(1, PUBS, HEAVY_LAST))

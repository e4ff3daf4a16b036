"""The simulator: hundreds of seeds of a hostile network with f byzantine sealers, every
safety invariant checked on every commit, liveness checked after the heal."""

from __future__ import annotations

from collections import Counter

import consensus.replica
from chainnode.pbft.driver import PbftGlue
from consensus import sim
from consensus.quorum import SealerSet

CI_SEEDS = 1000  # across n = 4 and 7, f byzantine each (F weight in the weighted quarter): ~15 s on one core


def test_many_seeds_with_byzantine_sealers_are_safe_and_live(capsys):
    failures = []
    summary = sim.run_many(range(CI_SEEDS), [4, 7], "max", unstable_ms=2000, liveness_ms=30_000, on_failure=failures.append)
    with capsys.disabled():
        print("\n" + summary.render())
    for r in failures[:3]:
        print(sim.format_failure(r, sim.replay_command(r.seed, [4, 7], "max", 2000, 30_000, "sim")))
    assert summary.seeds == CI_SEEDS and summary.by_n == {4: CI_SEEDS // 2, 7: CI_SEEDS // 2}
    assert CI_SEEDS // 8 < summary.weighted < CI_SEEDS // 2  # the default mixes in weighted seeds
    assert summary.safety_violations == 0 and summary.liveness_failures == 0, summary.render()
    assert summary.blocks > 3 * CI_SEEDS and summary.view_changes > 0  # it really ran, and really fought


def test_ten_sealers_with_three_byzantine(capsys):
    summary = sim.run_many(range(10_000, 10_040), [10], "max", unstable_ms=2000)
    with capsys.disabled():
        print("\n" + summary.render())
    assert summary.failed == [] and summary.blocks > 0


def test_real_ed25519_signatures(capsys):
    summary = sim.run_many(range(20_000, 20_016), [4, 7], "max", suite="ed25519")
    with capsys.disabled():
        print("\n" + summary.render())
    assert summary.failed == []


def test_a_seed_replays_exactly():
    a = sim.run_seed(12345, [4, 7], "max", trace=True)
    b = sim.run_seed(12345, [4, 7], "max", trace=True)
    assert a.ok and a.trace and a.trace == b.trace and (a.blocks, a.messages, a.verifies) == (b.blocks, b.messages, b.verifies)


def test_weighted_seeds_are_safe_and_live(capsys):
    """Every seed with weights in 1..5, byzantine weight up to F, weight changes included."""
    failures = []
    summary = sim.run_many(range(30_000, 30_120), [4, 7], "max", weights="random", on_failure=failures.append)
    with capsys.disabled():
        print("\n" + summary.render())
    for r in failures[:3]:
        print(sim.format_failure(r, sim.replay_command(r.seed, [4, 7], "max", 2000, 30_000, "sim", "random")))
    assert summary.weighted == summary.seeds == 120
    assert summary.safety_violations == 0 and summary.liveness_failures == 0, summary.render()
    assert summary.blocks > 3 * summary.seeds and summary.view_changes > 0


def test_scenarios_cover_the_fault_model():
    scenarios = [sim.make_scenario(seed, [4, 7], "max", 2000, 30_000) for seed in range(300)]
    behaviours = {b for s in scenarios for bs in s.byzantine.values() for b in bs}
    assert behaviours == set(sim.BEHAVIOURS)
    assert all(len(s.byzantine) == (s.n - 1) // 3 for s in scenarios if s.weights is None)
    assert any(s.partitions for s in scenarios) and any(s.crashes for s in scenarios)
    assert {s.delay for s in scenarios} == {"uniform", "exponential", "bimodal"}
    assert any(s.drop_rate for s in scenarios) and any(s.dup_rate for s in scenarios)
    assert any(s.crash_after_persist_rate for s in scenarios)
    removals = [s for s in scenarios if s.remove_last_at_height is not None and s.weights is None]
    assert removals and all(s.n - 1 in s.byzantine for s in removals)


def test_weighted_scenarios_stay_within_the_fault_model_and_cover_it():
    scenarios = [sim.make_scenario(seed, [4, 7], "max", 2000, 30_000, "random") for seed in range(400)]
    assert all(s.weights is not None and all(1 <= w <= sim.WEIGHT_MAX_SIM for w in s.weights) for s in scenarios)
    for s in scenarios:
        for height in (1, 20):  # before and after any change
            weights = s.weights_at(height)
            byzantine = sum(weights[i] for i in s.byzantine if i < len(weights))
            assert byzantine <= (sum(weights) - 1) // 3, s.describe()
        # 'max': no further sealer fits (adding any honest one breaks the bound of some set).
        for extra in set(range(s.n)) - set(s.byzantine):
            liars = list(s.byzantine) + [extra]
            assert any(
                sum(s.weights_at(h)[i] for i in liars if i < len(s.weights_at(h))) > (sum(s.weights_at(h)) - 1) // 3
                for h in (1, 20)
            ), s.describe()
    # Uneven weights let more light liars in than the head count f, or keep a heavy one out.
    assert any(len(s.byzantine) > (s.n - 1) // 3 for s in scenarios)
    assert any(max(s.weights) > (sum(s.weights) - 1) // 3 for s in scenarios)
    assert any(s.reweight_at_height for s in scenarios) and any(s.remove_last_at_height for s in scenarios)
    assert {len(s.byzantine) for s in scenarios} >= {0, 1, 2, 3}
    mixed = [sim.make_scenario(seed, [4, 7], "max", 2000, 30_000) for seed in range(400)]
    assert 40 < sum(s.weights is not None for s in mixed) < 160
    assert all(s.weights is None for s in (sim.make_scenario(seed, [4], "max", 2000, 30_000, "unit") for seed in range(50)))


def test_weight_change_takes_effect_at_its_height():
    checked = 0
    for seed in range(40):
        sc = sim.make_scenario(seed, [4, 7], "max", 2000, 30_000, "random")
        if sc.reweight_at_height is None:
            continue
        world = sim.World(sc)
        world.run()
        checked += 1
        at = sc.reweight_at_height
        for i in world.honest():
            replica = world.nodes[i].replica
            assert replica.hs.height > at and replica.hs.sealers.weights == sc.weights_after
            blocks = {h.height: (h, c) for h, _, c in world.nodes[i].app.recent}
            before, cert_before = blocks[at - 1]
            header, cert = blocks[at]
            assert before.sealer_set_hash == world.sealers.set_hash
            assert header.sealer_set_hash == replica.hs.sealers.set_hash != world.sealers.set_hash
            cert.verify(world.suite, world.pubs, list(sc.weights_after))
            cert_before.verify(world.suite, world.pubs, list(sc.weights))
    assert checked >= 5


def test_the_simulator_catches_a_core_that_ignores_weights(monkeypatch):
    """A core that counts heads (every sealer once) while headers and certificates are
    checked with the governed weights: the simulator reports invalid certificates."""
    build = SealerSet.build.__func__

    def unweighted(cls, suite, pubs, weights=None):
        real = build(cls, suite, pubs, weights)
        return cls(real.pubs, real.set_hash)  # same set hash, weights dropped

    monkeypatch.setattr(SealerSet, "build", classmethod(unweighted))
    failures = []
    summary = sim.run_many(range(40), [4, 7], "max", weights="random", on_failure=failures.append)
    assert summary.safety_violations > 0
    assert any("certificate invalid" in r.error for r in failures)


def test_sealer_removal_takes_effect_at_its_height():
    checked = 0
    for seed in range(60):
        sc = sim.make_scenario(seed, [4, 7], "max", 2000, 30_000)
        if sc.remove_last_at_height is None:
            continue
        world = sim.World(sc)
        world.run()
        checked += 1
        for i in world.honest():
            replica = world.nodes[i].replica
            assert replica.hs.height > sc.remove_last_at_height and replica.hs.sealers.n == sc.n - 1
            # The block before the change names the old set; from the change on, the smaller
            # set names and certifies the blocks.
            blocks = {h.height: (h, c) for h, _, c in world.nodes[i].app.recent}
            before, _ = blocks[sc.remove_last_at_height - 1]
            header, cert = blocks[sc.remove_last_at_height]
            assert before.sealer_set_hash == world.sealers.set_hash
            assert header.height == sc.remove_last_at_height
            assert header.sealer_set_hash == replica.hs.sealers.set_hash != world.sealers.set_hash
            cert.verify(world.suite, world.pubs_after, sc.weights_at(sc.remove_last_at_height))
            assert all(index < sc.n - 1 for index, _ in cert.signatures)
    assert checked >= 5


def test_a_sealer_added_by_governance_joins_at_its_height():
    checked = by_consensus = 0
    for seed in range(60):
        sc = sim.make_scenario(seed, [4, 7], "max", 2000, 30_000)
        if sc.add_sealer_at_height is None:
            continue
        world = sim.World(sc)
        world.run()
        checked += 1
        at, joiner = sc.add_sealer_at_height, sc.n
        assert joiner in world.honest()  # it must keep up too (it catches up by block sync)
        replica = world.nodes[joiner].replica
        assert replica.hs.height > at and replica.hs.me == joiner and replica.hs.sealers.n == sc.n + 1
        blocks = {h.height: (h, c) for h, _, c in world.nodes[0].app.recent}
        assert blocks[at - 1][0].sealer_set_hash == world.sealers.set_hash
        header, cert = blocks[at]
        cert.verify(world.suite, world.pubs_after, sc.weights_at(at))
        # The glue sends to the sealers of the next height too: the joiner gets the last
        # block before its tenure by its CHECKPOINTs, not only by sync, in most runs.
        by_consensus += world.committed_by.get((joiner, at - 1)) == "consensus"
    assert checked >= 5 and by_consensus > checked // 2


def test_idle_calm_chain_has_no_view_changes():
    for seed in range(10):
        sc = sim.make_scenario(seed, [4], "none", 2000, 30_000)
        sc.partitions, sc.crashes, sc.drop_rate, sc.delay, sc.crash_after_persist_rate = [], [], 0.0, "uniform", 0.0
        sc.execution_retry_rate, sc.sync_interval_ms = 0.0, None  # a node's sync loop polls forever
        world = sim.World(sc)
        world.run()
        assert sum(n.replica.stats["view_changes"] for n in world.nodes) == 0
        # The run stops right after a commit; drain: with no new transactions nothing ticks.
        world.inject_txs = lambda: None
        for node in world.nodes:
            node.app.pool.clear()
        world.done, world.stable_target = False, None
        while world._queue:
            t, _, fn, args = sim.heapq.heappop(world._queue)
            world.now_ms = t
            if fn is not world.inject_txs:
                fn(*args)
        assert all(not node.timers for node in world.nodes)
        assert sum(n.replica.stats["view_changes"] for n in world.nodes) == 0


def test_the_simulator_catches_a_broken_core(monkeypatch, capsys):
    """Every test must be able to fail: with signature checks switched off, forged and
    replayed messages get through and the simulator reports safety violations."""
    monkeypatch.setattr(consensus.replica.Replica, "_verify", lambda self, msg, sset: True)
    failures = []
    summary = sim.run_many(range(150), [4, 7], "max", on_failure=failures.append)
    assert summary.safety_violations > 0
    text = sim.format_failure(failures[0], "python -m consensus.sim --seed N")
    assert f"FAILED seed {failures[0].seed}" in text and " ms  n" in text  # seed and a readable trace


def test_the_simulator_catches_a_lost_prepared_block(monkeypatch):
    """A NEW_VIEW that drops the highest prepared block: replicas locked on it refuse the
    leader's fresh proposal, so the chain stops; the simulator reports liveness failures
    (and the locks keep it safe)."""
    monkeypatch.setattr(consensus.replica, "_highest_prepared", lambda vcs: None)
    summary = sim.run_many(range(150), [4, 7], "max")
    assert summary.liveness_failures > 0 and summary.safety_violations == 0


def test_command_line(capsys):
    assert sim.main(["--seeds", "6", "--nodes", "4,7", "--byzantine", "max"]) == 0
    out = capsys.readouterr().out
    assert "6 seeds" in out and "safety violations = 0" in out
    assert sim.main(["--seed", "3", "--nodes", "4,7"]) == 0
    assert "ok:" in capsys.readouterr().out


def test_command_line_exits_non_zero_on_a_violation(monkeypatch, capsys):
    monkeypatch.setattr(consensus.replica.Replica, "_verify", lambda self, msg, sset: True)
    assert sim.main(["--seeds", "150", "--nodes", "4,7"]) == 1
    captured = capsys.readouterr()
    assert "safety violations = 0" not in captured.out
    assert "replay: python -m consensus.sim --seed" in captured.err


def test_the_simulator_catches_a_replica_that_forgets_its_votes(monkeypatch):
    """Without the write barrier a crash-restarted replica signs a second, different vote;
    the simulator's non-equivocation invariant for honest replicas reports it."""
    monkeypatch.setattr(consensus.replica.Replica, "_persist", lambda self: None)
    failures = []
    summary = sim.run_many(range(100), [4, 7], "max", on_failure=failures.append)
    assert summary.safety_violations > 0
    assert any("(honest) signed two different" in r.error for r in failures)


def test_the_seeds_run_the_node_side_glue_down_every_path(monkeypatch):
    """The replicas run behind chainnode.pbft.driver.PbftGlue: over a CI share of the seeds,
    it tells the core of sealer-set and config changes and of synced blocks, and a commit
    that block sync got to first is skipped (before the chain worker, or on it)."""
    fed, skipped, lost = Counter(), [], []
    feed, glue_commit, world_commit = PbftGlue._feed, PbftGlue._commit, sim.World.commit

    def counting_feed(self, event):
        fed[type(event).__name__] += 1
        feed(self, event)

    def counting_glue_commit(self, action):
        if action.header.height <= self.app.head_height():
            skipped.append(action.header.height)
        glue_commit(self, action)

    def counting_world_commit(self, node, header, tx_hashes, cert, *, by):
        wrote = world_commit(self, node, header, tx_hashes, cert, by=by)
        if by == "consensus" and not wrote:
            lost.append(header.height)
        return wrote

    monkeypatch.setattr(PbftGlue, "_feed", counting_feed)
    monkeypatch.setattr(PbftGlue, "_commit", counting_glue_commit)
    monkeypatch.setattr(sim.World, "commit", counting_world_commit)
    summary = sim.run_many(range(150), [4, 7], "max")
    assert summary.failed == []
    assert fed["SealersChanged"] and fed["ConfigChanged"] and fed["BlockCommitted"], fed
    assert skipped and lost, (len(skipped), len(lost))

"""`devnet chaos`, short: a real 4-sealer devnet under a trickle of payments while a sealer is
killed, one is paused, and two are killed at once (devnet/chaos.py). What a tester relies on:
no fork, no crash, the same receipts on every node.

The long run is on demand, against a running devnet (docs/operations.md#chaos):

    devnet up --detach && devnet chaos --duration-s 300 --rate 100
"""

from __future__ import annotations

import json
import os
import subprocess

from devnet.chaos import run_chaos, schedule
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster

DEVNET = os.path.join(os.path.dirname(CHAINNODE), "devnet")
SEED = 14  # a kill, a pause, then a double kill within 28 s (see schedule)
DURATION_S = 28
RATE_TPS = 5


def test_the_schedule_is_reproducible_and_has_every_fault():
    sealers = ["node0", "node1", "node2", "node3"]
    plan = schedule(sealers, DURATION_S, SEED)
    assert plan == schedule(sealers, DURATION_S, SEED)
    assert [f.kind for f in plan] == ["kill", "pause", "kill2"]
    assert sum(f.gap_s + f.hold_s for f in plan) < DURATION_S


async def test_a_short_chaos_run_forks_nothing_crashes_nothing_and_receipts_agree(tmp_path):
    with Cluster(tmp_path / "net") as cluster:
        cluster.start_all()
        report = await run_chaos(cluster.net, duration_s=DURATION_S, rate_tps=RATE_TPS, seed=SEED, converge_timeout_s=90)
    summary = json.dumps(report.as_dict())
    assert [f["kind"] for f in report.faults] == ["kill", "pause", "kill2"], summary
    assert report.acknowledged > 0 and report.heights_compared > 0, summary
    assert report.forks == 0, summary
    assert report.crash_count == 0, summary
    assert report.receipts_identical and report.receipts_compared == min(200, report.committed) > 0, summary
    assert report.lost == 0 and report.converged and report.committed == report.acknowledged, summary


def test_chaos_on_a_devnet_that_is_not_running_says_what_to_do(tmp_path):
    Cluster(tmp_path / "net")  # laid out, never started
    p = subprocess.run([DEVNET, "chaos", "--duration-s", "10", "--dir", str(tmp_path / "net")], capture_output=True, text=True, timeout=60)
    assert p.returncode != 0
    assert "not running" in p.stderr and "devnet up --detach" in p.stderr, p.stderr

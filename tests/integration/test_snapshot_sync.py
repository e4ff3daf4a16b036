"""Snapshot sync with real processes: a node that was never started joins a running 4-node
chain with `chainnode start --sync snapshot`, is killed -9 halfway and resumes, ignores
a peer that serves tampered tree nodes (the test hook CHAINNODE_TEST_TAMPER_SNAPSHOT makes
node1 such a peer), then follows the chain block by block.

CHAINNODE_IT_SNAPSHOT_TXS sets the chain's length in transfers (default 1,000; the issue's
demonstration is 100,000: `CHAINNODE_IT_SNAPSHOT_TXS=100000 pytest tests/integration/test_snapshot_sync.py`).
"""

from __future__ import annotations

import os
import signal
import time

import trio

from chainnode.blocksync.snapshot import TAMPER_ENV
from devnet.bench import run_bench
from tests.integration.cluster import Cluster

TX_COUNT = int(os.environ.get("CHAINNODE_IT_SNAPSHOT_TXS", "1000"))
JOINER = 4


def _snapshot(cluster: Cluster) -> dict | None:
    return cluster.rpc(JOINER, "getSyncStatus")["snapshot"]


def _wait(what: str, condition, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"waited {timeout_s} s for {what}")
        time.sleep(0.1)


async def test_a_new_node_joins_by_snapshot_resumes_after_kill_and_follows(tmp_path):
    # The load is signed before it is sent, each transaction valid for block_limit_window
    # blocks from then; at ~10 blocks a second a 100,000-transfer load outlives the default
    # 1,000 blocks, and its last transactions would expire unsent.
    config = {"block_interval_min_ms": 100, "tx_count_limit": 2000, "block_limit_window": 10_000}
    with Cluster(tmp_path / "net", sealers=4, observers=1, config=config) as cluster:
        for i in range(4):
            cluster.start(i, env={TAMPER_ENV: "1"} if i == 1 else None)
        for i in range(4):
            cluster.wait_rpc(i)
        result = await run_bench(cluster.net, TX_COUNT)
        assert result.committed == TX_COUNT
        head = cluster.height(0)

        # One tree node per request, so the sync takes long enough to be killed halfway.
        joiner = cluster.layout[JOINER]
        toml = joiner.config.read_text()
        assert "snapshot_nodes_per_request_max = 4096" in toml
        joiner.config.write_text(toml.replace("snapshot_nodes_per_request_max = 4096", "snapshot_nodes_per_request_max = 1"))
        cluster.start(JOINER, args=("--sync", "snapshot"))
        cluster.wait_rpc(JOINER)
        _wait("the snapshot sync to fetch 200 nodes", lambda: (_snapshot(cluster) or {}).get("nodesFetched", 0) >= 200)
        os.kill(cluster.net.pid(joiner.name), signal.SIGKILL)
        _wait("the killed node to be gone", lambda: cluster.net.pid(joiner.name) is None, 30)

        joiner.config.write_text(toml)  # the restart asks for the default 512 nodes at a time
        cluster.start(JOINER, args=("--sync", "snapshot"))
        cluster.wait_rpc(JOINER)
        _wait("the snapshot to be installed", lambda: cluster.height(JOINER) >= head)
        log = cluster.log(JOINER)
        installed = [line for line in log.splitlines() if "snapshot: installed block" in line][-1]
        present = int(installed.split(" already here")[0].rsplit(", ", 1)[1])
        assert present > 0, installed  # it went on from what the killed run fetched
        assert "sent a tree node that fails its check" in log  # node1's tampering was caught, and the others served

        # Before it takes part it holds the transactions a replay could repeat: one from the
        # snapshot's last block with transactions, sent to it again, is answered as committed.
        _wait("the blocks before the snapshot to be fetched", lambda: "replay protection:" in cluster.log(JOINER) and
              "blocks before the snapshot stored" in cluster.log(JOINER))
        height = head
        while not (txs := cluster.rpc(0, "getBlockByNumber", height, False, False)["transactions"]):
            height -= 1
        replayed = txs[0]
        assert cluster.rpc(JOINER, "sendTransaction", replayed["raw"])["status"] == "committed"  # not "added"
        assert cluster.rpc(JOINER, "getTransaction", replayed["hash"])["blockNumber"] == height

        # From there it follows the chain block by block.
        more = await run_bench(cluster.net, 100)
        assert more.committed == 100
        top = cluster.height(0)
        await trio.to_thread.run_sync(lambda: cluster.wait_height([JOINER], top, timeout_s=60))
        assert cluster.rpc(JOINER, "getBlockHashByNumber", top) == cluster.rpc(0, "getBlockHashByNumber", top)
        assert cluster.rpc(JOINER, "getTotalTransactionCount")["transactionCount"] >= TX_COUNT

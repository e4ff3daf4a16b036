"""Online backup on real processes: `chainnode db snapshot` of a running 4-sealer chain
while transactions are being sent, restored into a stopped sealer's data directory; the
restored node rejoins and agrees with the others. On the way: a block archive exported
from a running node, and a malformed admin request that the node shrugs off."""

from __future__ import annotations

import json
import struct

import trio

from chainnode.client import Account, Client
from chainnode.node.admin import ADMIN_SOCKET_NAME
from chainnode.store.backup import check_archive
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster
from tests.integration.workload import TOKEN, transfers

LOAD_TXS = 1500
DEADLINE_S = 60


async def chainnode(*args) -> dict:
    """`chainnode ARGS --json`, which must succeed; its JSON."""
    done = await trio.run_process([CHAINNODE, *map(str, args), "--json"], capture_stdout=True, capture_stderr=True, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return json.loads(done.stdout)


async def wait_until(condition, what: str) -> None:
    try:
        with trio.fail_after(DEADLINE_S):
            while not condition():
                await trio.sleep(0.1)  # polling the chain, with a deadline
    except trio.TooSlowError:
        raise AssertionError(f"no {what} within {DEADLINE_S} s") from None


async def test_a_backup_of_a_running_chain_under_load_restores_a_node_that_rejoins(tmp_path):
    with Cluster(tmp_path / "net", config={"block_interval_min_ms": 100, "consensus_timeout_ms": 1500}) as cluster:
        cluster.start_all()
        node0, node3 = cluster.layout[0], cluster.layout[3]
        alice = Account.generate("sm")
        async with Client(cluster.layout[1].rpc_url, timeout_s=30) as client:
            token = (await client.deploy(alice, TOKEN, [LOAD_TXS], timeout_s=30)).contract_address
        txs = transfers(alice, token, LOAD_TXS, block_limit=cluster.height(1) + 900)
        sent = 0

        async def load(stop: trio.Event) -> None:
            nonlocal sent
            clients = [Client(node.rpc_url, timeout_s=30) for node in cluster.layout[1:]]
            try:
                for i, tx in enumerate(txs):
                    if stop.is_set():
                        return
                    await clients[i % len(clients)].send_transaction(tx)
                    sent += 1
            finally:
                for c in clients:
                    await c.close()

        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(load, stop)
            await wait_until(lambda: sent >= 100, "load flowing")
            height_before, sent_before = cluster.height(0), sent
            backup = await chainnode("db", "snapshot", "--config", node0.config, "--out", tmp_path / "node0.backup")
            sent_during = sent - sent_before
            await wait_until(lambda: cluster.height(0) >= backup["height"] + 3, "blocks after the snapshot")
            stop.set()
        assert backup["online"] and height_before <= backup["height"] and sent_during > 0, (backup, height_before, sent_during)

        # The node shrugs off a malformed admin request, and archives blocks while it runs.
        async with await trio.open_unix_socket(str(node0.folder / ADMIN_SOCKET_NAME)) as admin:
            await admin.send_all(struct.pack(">I", 3) + b"\xc1\xc1\xc1")
            assert b"malformed admin request" in await admin.receive_some(4096)
        archive = await chainnode("db", "export-blocks", "--config", node0.config, "--from", 1, "--to", backup["height"],
                                  "--out", tmp_path / "blocks.archive")
        assert check_archive(tmp_path / "blocks.archive").to_height == archive["to"] == backup["height"]

        # A sealer's disk is replaced by the backup: its chain and votes moved away, as docs/operations.md says.
        cluster.stop(3)
        for name in ("chain.db", "consensus.state"):
            (node3.folder / name).rename(tmp_path / f"node3-{name}.old")
        restored = await chainnode("db", "restore", "--in", tmp_path / "node0.backup", "--config", node3.config)
        assert restored["height"] == backup["height"]
        verified = await chainnode("db", "verify", "--config", node3.config)
        assert verified["ok"] and verified["height"] == backup["height"]
        cluster.start(3)
        cluster.wait_rpc(3)
        async with Client(node3.rpc_url, timeout_s=30) as client:  # the chain goes on with it
            assert (await client.send(alice, token, "transfer", [alice.address, 1], timeout_s=30)).ok
        common = cluster.height(0)
        cluster.wait_height(range(4), common, timeout_s=DEADLINE_S)
        for height in (backup["height"], common):
            assert len({cluster.rpc(i, "getBlockHashByNumber", height) for i in range(4)}) == 1, f"block {height} differs"
        assert cluster.rpc(3, "getBlockHashByNumber", backup["height"]) == "0x" + backup["headHash"]

"""A rolling upgrade with real processes (docs/operations.md, "Rolling upgrades").

A chain made by version N, 0.2.0 (its genesis names no compatibility_version, so it runs
0.2.0's rules: block headers of version 1, no state tree), with four sealers and an
observer that report 0.2.0 (the test hook CHAINNODE_TEST_SOFTWARE_VERSION,
chainnode/protocol/versions.py). The sealers are replaced one at a time by build N+1, this
build (0.3.0); the chain commits while each one is down and after it returns. While a sealer
still runs N, the CLI refuses to propose compatibility_version 0.3.0; once all four run N+1
the vote passes, and from the next block on the headers carry the state tree's root (built
from the whole state at that block): a balance proves against it. The observer, still on N,
then stops by itself with the version to install, and a sealer started again as N refuses
to start, with exit status 78 and the same message.
"""

from __future__ import annotations

import json
import os
import subprocess

import trio

from chainnode.client import Client, contract_state_key, verify_state_proof
from chainnode.crypto import get_suite
from chainnode.protocol.codec import pack
from chainnode.protocol.hexstr import parse_hex, to_hex
from chainnode.protocol.versions import TEST_VERSION_ENV
from devnet.bench import TOKEN
from devnet.layout import DEVNET_PASSWORD
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster
from tests.integration.test_governance import governors, vote

OLD = {TEST_VERSION_ENV: "0.2.0"}
TOO_OLD = "install chainnode 0.3.0 or newer"


async def test_sealers_replaced_one_at_a_time_then_the_vote_stops_the_old_build(tmp_path):
    config = {"block_interval_min_ms": 100, "consensus_timeout_ms": 1500, "compatibility_version": 2000}
    with Cluster(tmp_path / "net", sealers=4, observers=1, config=config) as cluster:
        cluster.start_all(env=OLD)
        govs = governors(cluster)
        alice = govs[0]
        async with Client([n.rpc_url for n in cluster.layout], timeout_s=30) as client:
            token = (await client.deploy(alice, TOKEN, [10**9], timeout_s=30)).contract_address

            async def commits() -> int:
                receipt = await client.send(alice, token, "transfer", [os.urandom(20), 1], timeout_s=60)
                return receipt.block_number

            for i in range(4):
                assert cluster.stop(i) == 0
                await commits()  # three sealers of four commit while one is replaced
                cluster.start(i)
                cluster.wait_rpc(i)
                assert cluster.rpc(i, "getClientVersion")["version"] == "0.3.0"
                if i == 2:  # node3 still runs 0.2.0: the CLI will not propose what would stop it
                    refused = _propose_cli(cluster, 0)
                    assert refused.returncode == 1 and "not every sealer is seen running chainnode 0.3.0" in refused.stderr, refused.stderr
                    assert cluster.layout[3].peer_id in refused.stderr
                height = await commits()
                await trio.to_thread.run_sync(lambda: cluster.wait_height([i], height, timeout_s=60))
            peers = cluster.rpc(0, "getSyncStatus")["peers"]
            assert sorted(p["version"] for p in peers if p["role"] == "sealer") == ["0.3.0"] * 3
            assert [p["version"] for p in peers if p["role"] == "observer"] == ["0.2.0"]

            proposed = _propose_cli(cluster, 0)
            assert proposed.returncode == 0, proposed.stderr
            pid = json.loads(proposed.stdout)["proposalId"]
            for g in govs[1:3]:
                r = await vote(client, g, pid, True)
                assert r.ok, r.error_message
            assert r.output == "executed"
            assert cluster.rpc(0, "getClientVersion")["compatibilityVersion"] == "0.3.0"
            voted = r.block_number
            payee = os.urandom(20)  # the upgraded chain goes on, under 0.3.0's rules
            height = (await client.send(alice, token, "transfer", [payee, 5], timeout_s=60)).block_number
            assert cluster.rpc(0, "getBlockByNumber", voted, True)["version"] == 1
            assert cluster.rpc(0, "getBlockByNumber", voted + 1, True)["version"] == 2
            key = contract_state_key(token, "bal:" + payee.hex())
            sealers = [parse_hex(s["publicKey"]) for s in cluster.rpc(0, "getSealerList", height)]
            proven = verify_state_proof(cluster.rpc(1, "getStateProof", "raw", to_hex(key), height), key, sealers, get_suite("sm"))
            assert proven.value == pack(5)

        # The observer, still 0.2.0, stops at the block that raised the version.
        assert cluster.wait_exit(4, timeout_s=60) == 78
        assert TOO_OLD in cluster.log(4)
        # A sealer downgraded to 0.2.0 refuses to start, saying which version to install.
        assert cluster.stop(3) == 0
        cluster.start(3, env=OLD)
        assert cluster.wait_exit(3, timeout_s=60) == 78
        assert cluster.log(3).count(TOO_OLD) == 1


def _propose_cli(cluster: Cluster, i: int) -> subprocess.CompletedProcess:
    node = cluster.layout[i]
    return subprocess.run(
        [CHAINNODE, "gov", "propose", "set-config", "compatibility_version", "0.3.0", "--key", str(node.folder / "node.key"),
         "--rpc", node.rpc_url, "--json"],
        capture_output=True, text=True, env=dict(os.environ, CHAINNODE_PASSWORD=DEVNET_PASSWORD), timeout=120,
    )

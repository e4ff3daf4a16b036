"""dApps on the channel port of real node processes: the SDK with the devnet's client
certificates deploys, calls and subscribes over Noise_XX_SM2_SM4GCM_SM3; a client with no
certificate, a revoked one or one from another CA is refused with the reason; an auditor
reads but cannot send; the bytes on the wire hold no plaintext of a transaction; and the
`chainnode` console commands connect through the channel by default."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import trio

from chainnode.client import Account, Forbidden, RefusedByNode
from chainnode.system.addresses import COMMITTEE_ADDRESS
from devnet.layout import DEVNET_PASSWORD, client_files, create_pki, devnet_client, issue_client_certificate
from devnet.supervisor import CHAINNODE
from tests.integration.cluster import Cluster

COUNTER = """
def init(start):
    storage["n"] = start

def add(k):
    storage["n"] = storage["n"] + k
    emit("Added", k=k, total=storage["n"])
    return storage["n"]

def get():
    return storage["n"]
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with Cluster(tmp_path_factory.mktemp("channel") / "net", sealers=1, config={"block_interval_min_ms": 50}) as c:
        c.start_all()
        yield c


def url(cluster: Cluster) -> str:
    return cluster.layout[0].channel_url


async def test_a_dapp_deploys_calls_and_subscribes_over_the_sm_channel(cluster):
    async with devnet_client(cluster.folder, url(cluster), timeout_s=30) as client:
        dapp = Account.generate("sm")
        with trio.fail_after(60):
            deployed = await client.deploy(dapp, COUNTER, [1])
            async with client.subscribe_events(address=deployed.contract_address, name="Added", from_block=deployed.block_number) as events:
                receipt = await client.send(dapp, deployed.contract_address, "add", [4])
                event = await events.__anext__()
            assert receipt.output == 5 and event.event.fields["total"] == 5 and event.tx_hash == receipt.tx_hash
            assert await client.call(deployed.contract_address, "get") == 5
        assert client.channel.protocol == "Noise_XX_SM2_SM4GCM_SM3" and client.channel.node.subject == "node0"


async def test_an_auditor_reads_but_cannot_send(cluster):
    async with devnet_client(cluster.folder, url(cluster), role="auditor", timeout_s=30) as client:
        assert await client.block_number() >= 0
        dapp = Account.generate("sm")
        with pytest.raises(Forbidden) as info:
            await client.deploy(dapp, COUNTER, [1])
    assert info.value.code == -32007 and "read-only" in str(info.value) and "sendTransaction" in str(info.value)


async def refused(cluster: Cluster, **kwargs) -> RefusedByNode:
    async with devnet_client(cluster.folder, url(cluster), timeout_s=30, **kwargs) as client:
        with pytest.raises(RefusedByNode) as info:
            await client.block_number()
    return info.value


async def test_no_foreign_or_revoked_certificate_is_refused_with_the_reason(cluster, tmp_path):
    ca_cert = cluster.folder / "ca" / "ca.pem"
    none = await refused(cluster, key=Account.generate("sm"), cert=None, ca=ca_cert)
    assert none.reason == "no certificate" and "refused this client certificate: no certificate" in str(none)

    create_pki(tmp_path, "sm", scrypt_n=1024)  # another consortium's CA and agency
    outsider = Account.generate("sm")
    issue_client_certificate(tmp_path, outsider.public_key, name="outsider", role="user", out=tmp_path / "outsider.pem")
    foreign = await refused(cluster, key=outsider, cert=tmp_path / "outsider.pem", ca=ca_cert)
    assert foreign.reason == "wrong CA" and "another consortium" in str(foreign)

    # A certificate of the consortium, revoked on chain by the committee (node0's key, alone):
    # its live session ends at the next block, and it cannot connect again.
    app = Account.generate("sm")
    chain = issue_client_certificate(cluster.folder, app.public_key, name="leaver", role="user", out=tmp_path / "leaver.pem")
    governor = Account.load(cluster.layout[0].folder / "node.key", DEVNET_PASSWORD)
    async with devnet_client(cluster.folder, url(cluster), key=app, cert=tmp_path / "leaver.pem", timeout_s=30) as client, \
            devnet_client(cluster.folder, url(cluster), timeout_s=30) as admin:
        assert await client.block_number() >= 0
        session = client.channel
        with trio.fail_after(60):
            r = await admin.send(governor, COMMITTEE_ADDRESS, "propose", ["revoke_cert", [[chain.leaf.revocation_id(chain.agency)]]], check=False)
            assert r.ok, r.error_message
            await admin.deploy(governor, COUNTER, [0])  # one more block: the node rechecks live sessions
            await session.ended.wait()
        assert "certificate revoked" in session.end_reason
        with pytest.raises(RefusedByNode) as info:
            await client.block_number()
    assert info.value.reason == "certificate revoked" and "ask your agency for a new one" in str(info.value)


async def relay(listener: trio.SocketListener, target_port: int, captured: bytearray, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
    """A loopback TCP relay that keeps a copy of every byte going either way: the capture."""

    async def pump(src: trio.SocketStream, dst: trio.SocketStream) -> None:
        try:
            while data := await src.receive_some(65536):
                captured.extend(data)
                await dst.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await dst.aclose()

    async def one(client_stream: trio.SocketStream) -> None:
        async with await trio.open_tcp_stream("127.0.0.1", target_port) as node_stream:
            async with trio.open_nursery() as n:
                n.start_soon(pump, client_stream, node_stream)
                n.start_soon(pump, node_stream, client_stream)

    await trio.serve_listeners(one, [listener], task_status=task_status)


async def test_the_channel_carries_no_plaintext_of_a_transaction(cluster, nursery):
    marker = "MARKER-" + os.urandom(8).hex()
    source = f"def init():\n    storage['m'] = {marker!r}\n"
    captures = {}
    for kind in ("channel", "http"):
        node = cluster.layout[0]
        port = node.channel_port if kind == "channel" else node.rpc_port
        captured = bytearray()
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        await nursery.start(relay, listeners[0], port, captured)
        relay_port = listeners[0].socket.getsockname()[1]
        through = f"chainnode://127.0.0.1:{relay_port}" if kind == "channel" else f"http://127.0.0.1:{relay_port}"
        async with devnet_client(cluster.folder, through, timeout_s=30, ws_url="" if kind == "http" else None) as client:
            with trio.fail_after(60):
                receipt = await client.deploy(Account.generate("sm"), source, [])
        assert receipt.ok
        captures[kind] = bytes(captured)
    assert len(captures["channel"]) > len(source)
    assert marker.encode() not in captures["channel"] and marker.encode().hex().encode() not in captures["channel"]
    # The same transaction over the plain HTTP port: the capture does see it (the test can see).
    assert marker.encode().hex().encode() in captures["http"]


def chainnode_cli(*args: str) -> dict:
    env = {**os.environ, "CHAINNODE_PASSWORD": DEVNET_PASSWORD}
    env.pop("CHAINNODE_URL", None)
    done = subprocess.run([CHAINNODE, *args, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and "Traceback" not in done.stderr, f"chainnode {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout)


def test_console_commands_go_through_the_channel(cluster, tmp_path):
    key, chain = client_files(cluster.folder, "user")
    source = tmp_path / "counter.py"
    source.write_text(COUNTER)
    over = ["--url", url(cluster), "--key", str(key), "--client-cert", str(chain)]
    deployed = chainnode_cli("contract", "deploy", str(source), "--args", "[2]", *over)
    assert deployed["status"] == 0
    assert chainnode_cli("contract", "call", deployed["contractAddress"], "get", *over)["output"] == 2
    auditor_key, auditor_chain = client_files(cluster.folder, "auditor")
    status = chainnode_cli("status", "--url", url(cluster), "--key", str(auditor_key), "--client-cert", str(auditor_chain))
    assert status["blockNumber"] >= deployed["blockNumber"]
    # A governor signs with its node key and connects with a client certificate of its own.
    node_key = cluster.layout[0].folder / "node.key"
    proposed = chainnode_cli("gov", "propose", "set-config", "tx_count_limit", "600", "--key", str(node_key),
                             "--client-key", str(key), "--client-cert", str(chain), "--url", url(cluster))
    assert proposed["status"] in ("open", "executed") and proposed["blockNumber"] > deployed["blockNumber"], proposed

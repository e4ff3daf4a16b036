"""No plaintext of a transaction on the wire: every byte on the loopback interface is
recorded (tests/capture.py, an AF_PACKET socket on "lo"; root only) while real node
processes carry a transaction whose contract source holds a fresh marker string.

The control comes first in each capture: the marker of a transaction sent to the plain
HTTP port IS in the bytes of that port (hex in the JSON-RPC request), which proves the
capture sees what the nodes send. Then the marker must be absent, raw or in hex, from the
node-to-node traffic (Noise_XX_SM2_SM4GCM_SM3 over libp2p) that carried the transaction
to the other sealer, and from the SDK's channel port traffic.
"""

from __future__ import annotations

import secrets
import socket
import time

import httpx
import pytest
import trio

from chainnode.client import Account, Client
from devnet.layout import devnet_client
from tests.capture import CaptureUnavailable, LoopbackCapture, open_loopback_socket
from tests.integration.cluster import Cluster

SM_P2P_PROTOCOL = "/chainnode/noise-sm/1"
SM_CHANNEL_PROTOCOL = "Noise_XX_SM2_SM4GCM_SM3"
TIMEOUT_S = 30


def _capture_or_skip() -> None:
    try:
        open_loopback_socket().close()
    except CaptureUnavailable as exc:
        pytest.skip(f"no loopback capture here: {exc}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    _capture_or_skip()
    with Cluster(tmp_path_factory.mktemp("no-plaintext") / "net", sealers=2, config={"block_interval_min_ms": 50}) as c:
        c.start_all()
        yield c


def new_marker() -> bytes:
    return b"NO-PLAINTEXT-" + secrets.token_hex(8).encode()


def needles(marker: bytes) -> list[bytes]:
    """The forms a transaction's bytes take on the wire in clear: raw (the binary encoding
    between nodes) and hex (JSON-RPC)."""
    return [marker, marker.hex().encode(), marker.hex().upper().encode()]


def marked_contract(marker: bytes) -> str:
    return f'def init():\n    storage["note"] = "{marker.decode()}"\n'


async def deploy_marked(client: Client, marker: bytes):
    """Deploy a contract whose source holds `marker`; its receipt once committed."""
    with trio.fail_after(TIMEOUT_S):
        return await client.deploy(Account.generate("sm"), marked_contract(marker))


def ports(cluster: Cluster, kind: str) -> set[int]:
    return {getattr(n, kind) for n in cluster.layout}


def security_protocols(cluster: Cluster, i: int) -> dict[str, int]:
    """chainnode_peers_connected_by_security of node i: protocol id -> connected peers."""
    text = httpx.get(cluster.layout[i].rpc_url.rstrip("/") + "/metrics", timeout=10).text
    out = {}
    for line in text.splitlines():
        if line.startswith("chainnode_peers_connected_by_security{"):
            labels, value = line.rsplit(" ", 1)
            out[labels.split('protocol="', 1)[1].split('"', 1)[0]] = int(float(value))
    return out


def wait_peers(cluster: Cluster, i: int) -> dict[str, int]:
    """security_protocols of node i once it has a connected peer (the devnet has two nodes)."""
    deadline = time.monotonic() + TIMEOUT_S
    while not (protocols := security_protocols(cluster, i)) and time.monotonic() < deadline:
        time.sleep(0.1)  # a counter polled, not a guess: the loop ends when the peer is in
    return protocols


def test_the_capture_finds_a_marker_split_across_tcp_segments():
    _capture_or_skip()
    marker = new_marker()
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with LoopbackCapture({port}) as capture, socket.create_connection(("127.0.0.1", port)) as sender, server.accept()[0] as receiver:
            sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for part in (marker[:7], marker[7:]):  # one segment each: the first is read before the second is sent
                sender.sendall(part)
                assert receiver.recv(64) == part
    ((flow, segments),) = [(key, f.segments) for key, f in capture.flows.items() if key[1] == port]
    assert len(segments) == 2, f"the marker did not travel in two segments: {segments}"
    assert capture.find([marker]) == [(flow, marker)]  # found in the flow's bytes, though in no one segment


async def test_control_a_marker_sent_to_the_plain_http_port_is_in_the_capture(cluster):
    marker = new_marker()
    with LoopbackCapture(ports(cluster, "rpc_port")) as capture:
        async with Client(cluster.layout[0].rpc_url, timeout_s=TIMEOUT_S) as client:
            await deploy_marked(client, marker)
    seen = f"{capture.frames} frames, {capture.bytes_on()} payload bytes"
    assert capture.find(needles(marker)), f"the capture missed a marker sent in clear over HTTP ({seen}): it proves nothing"


async def test_a_transaction_between_nodes_is_not_in_the_capture(cluster):
    for i in (0, 1):
        assert wait_peers(cluster, i) == {SM_P2P_PROTOCOL: 1}, f"node{i}'s peer does not speak the SM channel"
    marker = new_marker()
    p2p = ports(cluster, "p2p_port")
    with LoopbackCapture(p2p | ports(cluster, "rpc_port")) as capture:
        async with Client(cluster.layout[0].rpc_url, timeout_s=TIMEOUT_S) as client:
            receipt = await deploy_marked(client, marker)
        cluster.wait_height([1], receipt.block_number, timeout_s=TIMEOUT_S)  # the block with it crossed to node1
    assert capture.find(needles(marker), ports(cluster, "rpc_port")), "control: the marker sent over HTTP is not in the capture"
    assert capture.bytes_on(p2p) > len(marked_contract(marker)), "no node-to-node traffic was captured"
    assert not capture.find(needles(marker), p2p), "a transaction's plaintext crossed between nodes"


async def test_a_transaction_from_the_sdk_over_the_channel_port_is_not_in_the_capture(cluster):
    control, marker = new_marker(), new_marker()
    channel, p2p, http = ports(cluster, "channel_port"), ports(cluster, "p2p_port"), ports(cluster, "rpc_port")
    assert all(channel), "the devnet nodes have no channel port"
    with LoopbackCapture(channel | p2p | http) as capture:
        async with Client(cluster.layout[0].rpc_url, timeout_s=TIMEOUT_S) as client:
            await deploy_marked(client, control)
        async with devnet_client(cluster.folder, cluster.layout[0].channel_url, timeout_s=TIMEOUT_S) as client:
            await deploy_marked(client, marker)
            assert client.channel.protocol == SM_CHANNEL_PROTOCOL
    assert capture.find(needles(control), http), "control: the marker sent over HTTP is not in the capture"
    assert capture.bytes_on(channel) > len(marked_contract(marker)), "no channel traffic was captured"
    leaks = capture.find(needles(marker))
    assert not leaks, f"a transaction's plaintext is on the wire: {leaks}"

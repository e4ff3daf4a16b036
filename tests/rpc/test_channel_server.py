"""The channel port: a real ChannelServer on loopback in front of the real RpcApp, dispatcher,
ChainRpc and SubscriptionHub over a real chain, driven by a raw client made with
chainnode.channel.stream.secure (what the SDK does), with real certificate chains."""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager

import pytest
import trio

from chainnode.channel import ChannelError, Payload, RefusedByPeer
from chainnode.channel.stream import secure
from chainnode.network.identity import peer_id_from_seed
from chainnode.protocol.hexstr import to_hex
from chainnode.rpc.channel import ChannelLimits, ChannelServer, Credentials, serve_channel
from chainnode.rpc.jsonrpc import FORBIDDEN, PARSE_ERROR, Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.rpc.server import PortInUse, RpcApp
from chainnode.rpc.subscriptions import SubscriptionHub
from chainnode.security.certs import CertChain, issue
from chainnode.txpool.pool import TxPool
from tests.chain_fixtures import SUITE, USER, certify, open_chain
from tests.helpers import free_port
from tests.rpc.test_subscriptions import FakeNodeShell

DAY_MS = 86_400_000
NOW_MS = 1_900_000_000_000  # the server's clock (tests move it to expire a certificate)


class Pki:
    """A consortium CA with one agency, issuing node and client chains."""

    def __init__(self, name: str = "Consortium CA", now_ms: int = NOW_MS) -> None:
        self.now_ms = now_ms
        self.ca_priv, ca_pub = SUITE.generate_keypair()
        self.ag_priv, ag_pub = SUITE.generate_keypair()
        window = dict(not_before_ms=now_ms - 100 * DAY_MS, not_after_ms=now_ms + 100 * DAY_MS)
        common = dict(role="", peer_id="", suite="sm", issuer_priv=self.ca_priv, **window)
        self.ca = issue(kind="ca", subject=name, organisation=name, public_key=ca_pub, issuer=None, **common)
        self.agency = issue(kind="agency", subject="Bank A", organisation="Bank A", public_key=ag_pub, issuer=self.ca, **common)

    def chain(self, kind: str, role: str, pub: bytes, *, name: str = "alice", days: int = 10, peer_id: str = "") -> CertChain:
        if kind == "node" and not peer_id:
            peer_id = peer_id_from_seed(os.urandom(32))
        leaf = issue(
            kind=kind, subject=name, organisation="Bank A", role=role, public_key=pub, peer_id=peer_id, suite="sm",
            issuer_priv=self.ag_priv, issuer=self.agency, not_before_ms=self.now_ms - DAY_MS, not_after_ms=self.now_ms + days * DAY_MS,
        )
        return CertChain(leaf, self.agency, self.ca)


PKI = Pki()
NODE_KEY = SUITE.generate_keypair()
NODE_CHAIN = PKI.chain("node", "sealer", NODE_KEY[1], name="node0")


class Dapp:
    """A client key and its chain."""

    def __init__(self, role: str = "user", *, pki: Pki | None = None, days: int = 10) -> None:
        pki = pki or PKI
        self.priv, self.pub = SUITE.generate_keypair()
        self.chain = pki.chain("client", role, self.pub, days=days)


class Env:
    def __init__(self, chain, node, hub, server: ChannelServer, port: int, clock: list[int], revoked: set[bytes]) -> None:
        self.chain, self.node, self.hub, self.server, self.port, self.clock, self.revoked = chain, node, hub, server, port, clock, revoked

    def commit(self, txs=()) -> int:
        proposal = self.chain.execute_proposal(list(txs), timestamp_ms=self.chain.height, proposer_index=0, is_verified=lambda h: True)
        self.chain.commit(proposal, certify(proposal.header))
        for listener in self.node.commit_listeners:  # as the node does after a commit
            listener(proposal.header.height)
        return proposal.header.height


def wire_channel_server(chain, *, node_chain: CertChain, ca, revoked: set[bytes], now_ms, limits: ChannelLimits):
    """What chainnode/node/node.py does to wire the RPC app and the channel port, around a
    FakeNodeShell: (node, hub, server)."""
    pool = TxPool(SUITE, "c", "g", head_height=lambda: chain.height, is_committed=chain.is_committed)
    node = FakeNodeShell(chain, pool)
    hub = SubscriptionHub(chain.ledger, SUITE, "g", node_name="node0")
    node.commit_listeners.append(hub.on_commit)
    dispatcher = Dispatcher()
    ChainRpc(node).register(dispatcher)
    credentials = Credentials("sm", NODE_KEY[0], chain.ledger.genesis_hash, node_chain.encode(), (ca,), lambda: revoked, now_ms)
    server = ChannelServer(RpcApp(dispatcher, hub=hub), credentials, limits)
    node.commit_listeners.append(server.on_commit)
    return node, hub, server


@pytest.fixture
async def env(nursery, tmp_path):
    chain = open_chain(tmp_path / "chain")
    clock, revoked = [NOW_MS], set()
    node, hub, server = wire_channel_server(
        chain, node_chain=NODE_CHAIN, ca=PKI.ca, revoked=revoked, now_ms=lambda: clock[0],
        limits=ChannelLimits(handshake_timeout_ms=2_000, message_bytes_max=64 * 1024),
    )
    port = free_port()
    await nursery.start(serve_channel, server, "127.0.0.1", port)
    yield Env(chain, node, hub, server, port, clock, revoked)
    chain.ledger.close()


def check_node(remote: Payload, remote_static: bytes) -> CertChain:
    """The client's side of the check: the node presents a node chain for its static key."""
    chain = CertChain.decode(remote.credentials)
    assert remote.role == "node" and chain.leaf.kind == "node" and chain.leaf.public_key == remote_static
    return chain


@asynccontextmanager
async def open_channel(
    port: int, dapp: Dapp | None, *, credentials: bytes | None = None, priv: bytes | None = None, genesis: bytes = b"", local_address: str | None = None
):
    creds = credentials if credentials is not None else dapp.chain.encode()
    payload = Payload("client", genesis, credentials=creds)
    async with await trio.open_tcp_stream("127.0.0.1", port, local_address=local_address) as stream:
        with trio.fail_after(10):
            channel = await secure(
                stream, initiator=True, suite_name="sm", purpose="rpc", certified_priv=priv or dapp.priv, payload=payload, check=check_node
            )
        yield channel


class Rpc:
    def __init__(self, channel) -> None:
        self.channel = channel
        self.next_id = 1
        self.notes: list[dict] = []

    async def send(self, obj) -> None:
        await self.channel.send_message(json.dumps(obj).encode())

    async def message(self) -> dict | list:
        with trio.fail_after(10):
            return json.loads(await self.channel.receive_message())

    async def call(self, method: str, *params):
        rid = self.next_id
        self.next_id += 1
        await self.send({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)})
        while True:
            msg = await self.message()
            if isinstance(msg, dict) and msg.get("id") == rid:
                return msg
            self.notes.append(msg)

    async def closed(self) -> dict:
        """The close message, skipping anything before it; then the node hangs up."""
        while True:
            msg = await self.message()
            if isinstance(msg, dict) and msg.get("method") == "close":
                with trio.fail_after(10):
                    try:
                        assert await self.channel.stream.receive_some(1) == b""
                    except trio.BrokenResourceError:
                        pass  # a reset: the node closed with our unread bytes in its buffer
                return msg["params"]


def signed_tx(chain, marker: str = "x"):
    from chainnode.protocol.types import Transaction

    source = f"def init():\n    storage['m'] = {marker!r}\n"
    return Transaction("c", "g", os.urandom(16), chain.height + 100, b"", "", [source], 1_000_000, USER[1]).signed(SUITE, USER[0])


async def refused_with(env: Env, **kwargs) -> RefusedByPeer:
    with pytest.raises(RefusedByPeer) as info:
        async with open_channel(env.port, **kwargs):
            pass
    return info.value


# ---- accepted clients ---------------------------------------------------------------------


async def test_a_client_calls_methods_and_subscribes(env):
    async with open_channel(env.port, Dapp("user"), genesis=env.chain.ledger.genesis_hash) as channel:
        assert channel.handshake.protocol == "Noise_XX_SM2_SM4GCM_SM3"
        assert channel.handshake.accepted.leaf.subject == "node0"
        rpc = Rpc(channel)
        assert (await rpc.call("getBlockNumber", "g", ""))["result"] == 0
        assert env.server.sessions_open == 1
        sub = (await rpc.call("subscribe", "g", "", "newBlocks", {}))["result"]
        height = env.commit()
        note = await rpc.message()
        assert note["method"] == "subscription" and note["params"]["subscription"] == sub
        assert note["params"]["result"]["number"] == height
        # a transaction goes through (role user): the pool has it
        tx = signed_tx(env.chain)
        reply = await rpc.call("sendTransaction", "g", "", to_hex(tx.encode()), False)
        assert "result" in reply, reply
        assert len(env.node.pool) == 1
    with trio.fail_after(10):
        while env.server.connections:
            await trio.sleep(0.01)  # the node notices the client left (an event it exposes no other way)
    assert env.server.sessions_open == 0 and not env.hub.sessions


async def test_an_auditor_reads_but_may_not_send(env):
    async with open_channel(env.port, Dapp("auditor")) as channel:
        rpc = Rpc(channel)
        assert (await rpc.call("getBlockNumber", "g", ""))["result"] == 0
        assert "result" in await rpc.call("subscribe", "g", "", "newBlocks", {})
        tx = signed_tx(env.chain)
        reply = await rpc.call("sendTransaction", "g", "", to_hex(tx.encode()), False)
        err = reply["error"]
        assert err["code"] == FORBIDDEN
        assert "'auditor'" in err["message"] and "sendTransaction" in err["message"] and "--role user" in err["message"]
        # inside a batch: the read is answered, the write refused, each under its own id
        await rpc.send([
            {"jsonrpc": "2.0", "id": "a", "method": "getBlockNumber", "params": ["g", ""]},
            {"jsonrpc": "2.0", "id": "b", "method": "sendTransaction", "params": ["g", "", to_hex(tx.encode()), False]},
        ])
        batch = {r["id"]: r for r in await rpc.message()}
        assert batch["a"]["result"] == 0 and batch["b"]["error"]["code"] == FORBIDDEN
        assert len(env.node.pool) == 0  # nothing got through


# ---- refused clients ------------------------------------------------------------------------


async def test_refusals_each_say_why(env):
    dapp = Dapp("user")
    none = await refused_with(env, dapp=dapp, credentials=b"")
    assert none.verdict.reason == "no certificate" and "chainnode ca issue-client" in none.verdict.detail
    expired = await refused_with(env, dapp=Dapp("user", days=-1))
    assert expired.verdict.reason == "certificate expired" and "new client certificate" in expired.verdict.detail
    foreign = await refused_with(env, dapp=Dapp("user", pki=Pki("Other CA")))
    assert foreign.verdict.reason == "wrong CA" and "another consortium" in foreign.verdict.detail
    mismatch = await refused_with(env, dapp=dapp, priv=SUITE.generate_keypair()[0])
    assert mismatch.verdict.reason == "certificate key mismatch"
    node_cert = await refused_with(env, dapp=None, credentials=NODE_CHAIN.encode(), priv=NODE_KEY[0])
    assert node_cert.verdict.reason == "not a client certificate"
    wrong_chain = await refused_with(env, dapp=dapp, genesis=b"\x01" * 32)
    assert wrong_chain.verdict.reason == "wrong chain" and env.chain.ledger.genesis_hash.hex() in wrong_chain.verdict.detail
    garbled = await refused_with(env, dapp=dapp, credentials=b"\xc1not a chain")
    assert garbled.verdict.reason == "bad certificate"
    env.revoked.add(dapp.chain.leaf.revocation_id(dapp.chain.agency))
    revoked = await refused_with(env, dapp=dapp)
    assert revoked.verdict.reason == "certificate revoked" and "revoked" in revoked.verdict.detail
    assert env.server.refused == {
        "no certificate": 1, "certificate expired": 1, "wrong CA": 1, "certificate key mismatch": 1, "not a client certificate": 1,
        "wrong chain": 1, "bad certificate": 1, "certificate revoked": 1,
    }
    assert env.server.sessions_open == 0
    # and the server still serves the next client
    async with open_channel(env.port, Dapp("user")) as channel:
        assert (await Rpc(channel).call("getBlockNumber", "g", ""))["result"] == 0


async def test_revocation_and_expiry_close_live_sessions_at_the_next_block(env):
    alice, bob, carol = Dapp("user"), Dapp("auditor", days=2), Dapp("user")
    async with open_channel(env.port, alice) as a, open_channel(env.port, bob) as b, open_channel(env.port, carol) as c:
        ra, rb, rc = Rpc(a), Rpc(b), Rpc(c)
        for rpc in (ra, rb, rc):
            assert (await rpc.call("getBlockNumber", "g", ""))["result"] == 0
        env.revoked.add(alice.chain.leaf.revocation_id(alice.chain.agency))  # governance revoked alice's certificate...
        env.clock[0] = NOW_MS + 3 * DAY_MS  # ...and bob's ran out
        env.commit()  # the next block: both sessions end, carol's goes on
        closed_a, closed_b = await ra.closed(), await rb.closed()
        assert closed_a["code"] == 1008 and closed_a["reason"].startswith("certificate revoked") and "chainnode ca issue-client" in closed_a["reason"]
        assert closed_b["code"] == 1008 and closed_b["reason"].startswith("certificate expired")
        assert (await rc.call("getBlockNumber", "g", ""))["result"] == 1
    assert env.server.sessions_closed == {"certificate revoked": 1, "certificate expired": 1}


# ---- bad input: the server answers or closes, stays up, serves the next client ------------------


async def test_malformed_messages_are_answered(env):
    async with open_channel(env.port, Dapp("user")) as channel:
        rpc = Rpc(channel)
        await channel.send_message(b"{not json")
        assert (await rpc.message())["error"]["code"] == PARSE_ERROR
        await channel.send_message(b'{"jsonrpc":"2.0","id":1,"method":"getBlockNumber","params":["g","\xff"]}')
        reply = await rpc.message()
        assert reply["error"]["code"] == PARSE_ERROR and "UTF-8" in reply["error"]["message"]
        await channel.send_message(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "getBlockNumber", "params": "g"}).encode())
        assert (await rpc.message())["error"]["code"] == -32602
        await channel.send_message(b"[]")
        assert (await rpc.message())["error"]["code"] == -32600
        assert (await rpc.call("getBlockNumber", "g", ""))["result"] == 0  # the session goes on


async def test_an_oversized_message_closes_the_session_with_1009(env):
    async with open_channel(env.port, Dapp("user")) as channel:
        channel.message_bytes_max = 1 << 20  # our side would send it; the node takes 64 KiB
        await channel.send_message(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "getBlockNumber", "params": ["x" * 100_000]}).encode())
        closed = await Rpc(channel).closed()
        assert closed["code"] == 1009 and "65536" in closed["reason"] and "smaller" in closed["reason"]
    async with open_channel(env.port, Dapp("user")) as channel:
        assert (await Rpc(channel).call("getBlockNumber", "g", ""))["result"] == 0


async def read_to_end(stream) -> None:
    with trio.fail_after(10):
        while await stream.receive_some(65536):
            pass  # whatever the node wrote before it hung up


async def test_garbage_before_and_after_the_handshake(env):
    # Each hostile client comes from an address of its own (127.0.0.N): a violation bans its
    # address, and the honest clients of this test connect from 127.0.0.1.
    for n, garbage in enumerate((b"\x00\x05hello", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", b"\xff\xff" + os.urandom(64)), start=2):
        stream = await trio.open_tcp_stream("127.0.0.1", env.port, local_address=f"127.0.0.{n}")
        await stream.send_all(garbage)
        await read_to_end(stream)
        await stream.aclose()
    assert sum(env.server.refused.values()) == 3 and env.server.refused["oversized frame"] >= 1
    # a banned address is closed before any handshake: an honest handshake from it fails
    with pytest.raises((ChannelError, trio.BrokenResourceError)):
        async with open_channel(env.port, Dapp("user"), local_address="127.0.0.2"):
            pass
    assert env.server.refused["banned"] == 1
    # after: bytes that are not a channel packet of ours (a flipped, forged or replayed frame)
    async with open_channel(env.port, Dapp("user"), local_address="127.0.0.5") as channel:
        await channel.stream.send_all(b"\x00\x20" + os.urandom(32))
        closed = await Rpc(channel).closed()
        assert closed["code"] == 1008 and "bad frame" in closed["reason"]
    assert env.server.penalties.banned("127.0.0.5", trio.current_time() * 1000)
    # a client that connects and says nothing is cut at the handshake deadline
    stream = await trio.open_tcp_stream("127.0.0.1", env.port)
    with trio.fail_after(10):
        assert await stream.receive_some(1) == b""
    await stream.aclose()
    assert env.server.refused["handshake timeout"] == 1
    async with open_channel(env.port, Dapp("user")) as channel:
        assert (await Rpc(channel).call("getBlockNumber", "g", ""))["result"] == 0


async def test_connections_over_the_limit_are_closed_and_the_port_in_use_is_refused(env, nursery):
    small = ChannelServer(env.server.app, env.server.credentials, ChannelLimits(connections_max=1))
    port = free_port()
    await nursery.start(serve_channel, small, "127.0.0.1", port)
    async with open_channel(port, Dapp("user")) as first:
        assert (await Rpc(first).call("getBlockNumber", "g", ""))["result"] == 0
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        with trio.fail_after(10):
            assert await stream.receive_some(1) == b""  # closed at once: no slot
        await stream.aclose()
        assert small.refused == {"too many connections": 1}
    with pytest.raises(PortInUse, match=rf"port {port} on 127.0.0.1 is in use; .*\[channel\] listen"):
        await serve_channel(small, "127.0.0.1", port)


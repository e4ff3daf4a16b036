"""The SDK over the channel port: a real ChannelServer (chainnode.rpc.channel) on loopback in
front of the real RpcApp, dispatcher, ChainRpc and SubscriptionHub over a real chain, with
real certificate chains; the Client connects with chainnode://, multiplexes its requests
and subscriptions on one connection, and prints the node's reason when it is refused."""

from __future__ import annotations

import time

import pytest
import trio

from chainnode.client import Account, Client, ClientCredentials, Forbidden, RefusedByNode
from chainnode.client.channel import parse_channel_url
from chainnode.rpc.channel import ChannelLimits, ChannelServer, serve_channel
from chainnode.security.certs import CertChain, CertificateError
from tests.chain_fixtures import certify, open_chain
from tests.helpers import free_port
from tests.rpc.test_channel_server import NODE_KEY, Pki, wire_channel_server
from tests.rpc.test_subscriptions import EMITTER


def now_ms() -> int:
    return int(time.time() * 1000)


PKI = Pki(now_ms=now_ms())  # the client checks the node's chain by its own clock: valid now


def dapp(role: str = "user", pki: Pki = PKI) -> tuple[Account, CertChain]:
    account = Account.generate("sm")
    return account, pki.chain("client", role, account.public_key, name=f"{role}-app")


class Env:
    def __init__(self, chain, node, server: ChannelServer, port: int, revoked: set[bytes]) -> None:
        self.chain, self.node, self.server, self.revoked = chain, node, server, revoked
        self.url = f"chainnode://127.0.0.1:{port}"

    def commit_pool(self) -> int:
        pooled = self.node.pool.take(100, self.chain.height + 1)
        proposal = self.chain.execute_proposal([p.tx for p in pooled], timestamp_ms=self.chain.height, proposer_index=0, is_verified=lambda h: True)
        self.chain.commit(proposal, certify(proposal.header))
        self.node.pool.remove([p.tx_hash for p in pooled])
        for listener in self.node.commit_listeners:  # as the node does after a commit
            listener(proposal.header.height)
        return proposal.header.height

    def client(self, account: Account | None, chain: CertChain | None, **kwargs) -> Client:
        return Client(self.url, key=account or Account.generate("sm"), cert=chain, group="g", **kwargs)


def serve(chain, node_chain: CertChain, revoked: set[bytes]):
    node, _, server = wire_channel_server(chain, node_chain=node_chain, ca=PKI.ca, revoked=revoked, now_ms=now_ms,
                                          limits=ChannelLimits(handshake_timeout_ms=5_000))
    return node, server


@pytest.fixture
async def env(nursery, tmp_path):
    chain = open_chain(tmp_path / "chain")
    revoked: set[bytes] = set()
    node, server = serve(chain, PKI.chain("node", "sealer", NODE_KEY[1], name="node0"), revoked)
    port = free_port()
    await nursery.start(serve_channel, server, "127.0.0.1", port)
    yield Env(chain, node, server, port, revoked)
    chain.ledger.close()


async def seal_pool(env: Env) -> None:
    while True:
        await trio.sleep(0.02)
        if len(env.node.pool):
            env.commit_pool()


async def test_deploy_send_call_and_subscribe_over_one_channel(env, nursery):
    nursery.start_soon(seal_pool, env)
    account, chain = dapp("user")
    async with env.client(account, chain) as c:
        with trio.fail_after(20):
            async with c.subscribe_blocks(from_block=0) as blocks:
                deployed = await c.deploy(account, EMITTER, [])
                receipt = await c.send(account, deployed.contract_address, "bump", [3])
                assert receipt.ok and receipt.output == 1
                assert await c.call(deployed.contract_address, "count") == 1
                seen = [(await blocks.__anext__()).number for _ in range(receipt.block_number + 1)]
                assert seen == list(range(receipt.block_number + 1))
            # many requests at once share the connection; each gets its own answer
            results: dict[int, int] = {}

            async def ask(i: int) -> None:
                results[i] = (await c.request("getBlockByNumber", i % (receipt.block_number + 1), False))["number"]

            async with trio.open_nursery() as n:
                for i in range(40):
                    n.start_soon(ask, i)
            assert results == {i: i % (receipt.block_number + 1) for i in range(40)}
        assert c.channel is not None and c.channel.protocol == "Noise_XX_SM2_SM4GCM_SM3" and c.channel.node.subject == "node0"
        assert env.server.handshakes == 1  # everything above went over one connection


async def test_a_dropped_channel_is_reopened_on_the_next_request(env):
    account, chain = dapp("user")
    async with env.client(account, chain) as c:
        assert await c.block_number() == 0
        for conn in list(env.server.connections):
            conn.abort()  # the node's side goes away, as at a restart
        with trio.fail_after(20):
            assert await c.block_number() == 0
        assert env.server.handshakes == 2


async def test_an_auditor_reads_but_may_not_send(env):
    account, chain = dapp("auditor")
    async with env.client(account, chain) as c:
        assert await c.block_number() == 0
        with pytest.raises(Forbidden) as info:
            await c.deploy(account, EMITTER, [])
        assert info.value.code == -32007 and "read-only" in str(info.value) and "--role user" in str(info.value)


async def refusal(env: Env, account: Account | None, chain: CertChain | None, **kwargs) -> RefusedByNode:
    async with env.client(account, chain, **kwargs) as c:
        with pytest.raises(RefusedByNode) as info:
            await c.block_number()
    return info.value


async def test_missing_revoked_and_foreign_certificates_are_refused_with_the_reason(env):
    no_cert = await refusal(env, None, None, ca=PKI.ca)
    assert no_cert.reason == "no certificate" and "refused this client certificate: no certificate" in str(no_cert)
    assert "chainnode ca issue-client" in str(no_cert)

    other_ca = Pki("Other CA", now_ms=now_ms())
    foreign = await refusal(env, *dapp("user", other_ca), ca=PKI.ca)
    assert foreign.reason == "wrong CA" and "another consortium" in str(foreign)

    account, chain = dapp("user")
    env.revoked.add(chain.leaf.revocation_id(chain.agency))
    revoked = await refusal(env, account, chain)
    assert revoked.reason == "certificate revoked" and "ask your agency for a new one" in str(revoked)
    assert env.server.handshakes == 0


async def test_a_certificate_revoked_on_chain_ends_the_session_and_the_reconnection_is_refused(env):
    account, chain = dapp("user")
    async with env.client(account, chain) as c:
        assert await c.block_number() == 0
        conn = c.channel
        env.revoked.add(chain.leaf.revocation_id(chain.agency))
        env.commit_pool()  # the next block: the node checks live sessions again
        with trio.fail_after(20):
            await conn.ended.wait()  # the close message and the hang-up arrive on the reader task
        assert "certificate revoked" in conn.end_reason
        with pytest.raises(RefusedByNode, match="certificate revoked"):
            await c.block_number()


async def test_the_client_refuses_a_node_outside_its_consortium(env, nursery, tmp_path):
    chain = open_chain(tmp_path / "other")
    impostor = Pki("Impostor CA", now_ms=now_ms()).chain("node", "sealer", NODE_KEY[1], name="node0")
    _, server = serve(chain, impostor, set())
    port = free_port()
    await nursery.start(serve_channel, server, "127.0.0.1", port)
    account, cert = dapp("user")
    async with Client(f"chainnode://127.0.0.1:{port}", key=account, cert=cert, group="g") as c:
        with pytest.raises(RefusedByNode) as info:
            await c.block_number()
    assert info.value.by_us and info.value.reason == "not a consortium node" and "wrong or missing CA" in str(info.value)
    chain.ledger.close()


async def test_bad_urls_keys_and_certificates_say_what_to_do(env, tmp_path):
    for bad in ("chainnode://127.0.0.1", "chainnode://:20200", "chainnode://h:99999", "ftp://x"):
        with pytest.raises(ValueError, match="chainnode://"):
            Client(bad, key=Account.generate("sm"))
    with pytest.raises(ValueError, match="needs the client's key"):
        Client(env.url)
    account, chain = dapp("user")
    with pytest.raises(CertificateError, match="certifies another key"):
        ClientCredentials.load(Account.generate("sm"), cert=chain)
    with pytest.raises(CertificateError, match="not a client"):
        ClientCredentials.load(account, cert=PKI.chain("node", "sealer", account.public_key, name="n"))
    with pytest.raises(ValueError, match="password"):
        ClientCredentials.load(tmp_path / "alice.key")
    assert parse_channel_url("chainnode://[::1]:20200/") == ("::1", 20200)
    dead = f"chainnode://127.0.0.1:{free_port()}"
    async with Client([dead, env.url], key=account, cert=chain, group="g") as c:
        assert await c.block_number() == 0 and c.url == env.url
    async with Client(dead, key=account, cert=chain, group="g") as c:
        with pytest.raises(ConnectionError, match="cannot reach the node at chainnode://"):
            await c.block_number()


async def hostile_node(nursery, behave) -> str:
    """A channel server that completes a real handshake as a consortium node, then runs
    `behave(channel)` instead of answering JSON-RPC; its chainnode:// URL."""
    from chainnode.channel import Payload
    from chainnode.channel.stream import secure

    node_chain = PKI.chain("node", "sealer", NODE_KEY[1], name="node0")

    async def serve_one(stream) -> None:
        channel = await secure(stream, initiator=False, suite_name="sm", purpose="rpc", certified_priv=NODE_KEY[0],
                               payload=Payload("node", b"\x01" * 32, credentials=node_chain.encode()), check=lambda p, s: None)
        await behave(channel)
        await stream.aclose()

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    await nursery.start(trio.serve_listeners, serve_one, listeners)
    return f"chainnode://127.0.0.1:{listeners[0].socket.getsockname()[1]}"


async def test_a_node_that_sends_garbage_or_closes_with_a_reason_is_a_connection_error(nursery):
    async def garbage_then_close(channel) -> None:
        await channel.receive_message()
        for junk in (b"not json", b"\xff\xfe", b"[1, 2]", b'{"id": 999, "result": 1}', b'{"method": "subscription", "params": 5}'):
            await channel.send_message(junk)  # ignored: nothing waits for them
        await channel.send_message(b'{"jsonrpc":"2.0","method":"close","params":{"code":1008,"reason":"certificate expired: renew it"}}')

    async def oversized(channel) -> None:
        await channel.receive_message()
        plain = (64 << 20).to_bytes(4, "big")  # a message header far above the client's 16 MiB limit, sealed properly
        sealed = channel.handshake.noise.encrypt(plain)
        await channel.stream.send_all(len(sealed).to_bytes(2, "big") + sealed)
        await trio.sleep_forever()

    account, chain = dapp("user")
    for behave, expected in ((garbage_then_close, "certificate expired: renew it (code 1008)"), (oversized, "oversized frame")):
        url = await hostile_node(nursery, behave)
        async with Client(url, key=account, cert=chain, group="g", timeout_s=10) as c:
            with trio.fail_after(20), pytest.raises(ConnectionError) as info:
                await c.block_number()
        assert expected in str(info.value)

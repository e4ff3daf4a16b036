"""WebSocket subscriptions: a real SubscriptionHub over a real chain (blocks executed and
committed with certificates), served by a real RpcApp on hypercorn on loopback, and driven
by a WebSocket client. The slow-client case drives a session through the ASGI interface
directly, because a loopback socket buffers megabytes before a non-reading client is slow."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from chainnode.execution.chain import Chain
from chainnode.protocol.types import Transaction
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.rpc.server import RpcApp, serve_rpc
from chainnode.rpc.subscriptions import CLOSE_POLICY, SubscriptionHub, SubscriptionLimits
from chainnode.txpool.pool import TxPool
from tests.chain_fixtures import GENESIS, SUITE, USER, certify, grow, open_chain
from tests.helpers import free_port
from tests.store.test_verify import FETCHED_FROM, GENESIS_WINDOW_10, SNAPSHOT_AT, joined_by_snapshot

EMITTER = (
    "def init():\n    storage['n'] = 0\n\n"
    "def bump(k):\n    storage['n'] = storage['n'] + 1\n    emit('Bumped', n=storage['n'])\n    emit('Other', k=k)\n    return storage['n']\n\n"
    "def count():\n    return storage['n']\n\n"
    "def echo(x):\n    return x\n"
)



@dataclass
class FakeNodeShell:
    """The node fields ChainRpc reads (the real Node provides the same); chain and pool are real."""

    chain: Chain
    pool: TxPool
    name: str = "node0"
    group_id: str = "g"
    syncer: object = None
    commit_listeners: list = field(default_factory=list)
    receipt_wait_ms_max: int = 10_000
    peer_id: str = "12D3KooWtest"

    def advertised_status(self):
        return []

    def peer_summaries(self):
        return []

    def consensus_status(self):
        return None

    def snapshot_status(self):
        return None

    async def submit_transaction(self, raw):
        return await self.pool.submit_durably(raw)

    async def on_chain(self, fn, *args):
        return fn(*args)


def tx(to: bytes, method: str, args: list, chain: Chain) -> Transaction:
    return Transaction("c", "g", os.urandom(16), chain.height + 100, to, method, args, 1_000_000, USER[1]).signed(SUITE, USER[0])


class Env:
    """A chain, its hub and an RPC server on a loopback port."""

    def __init__(self, chain: Chain, hub: SubscriptionHub, node: FakeNodeShell, port: int) -> None:
        self.chain, self.hub, self.node, self.port = chain, hub, node, port
        self.http_url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}/"

    def commit(self, txs: list[Transaction]) -> int:
        proposal = self.chain.execute_proposal(txs, timestamp_ms=self.chain.height, proposer_index=0, is_verified=lambda h: True)
        self.chain.commit(proposal, certify(proposal.header))
        for listener in self.node.commit_listeners:  # as the node does after a commit
            listener(proposal.header.height)
        return proposal.header.height

    def commit_pool(self) -> int:
        pooled = self.node.pool.take(100, self.chain.height + 1)
        height = self.commit([p.tx for p in pooled])
        self.node.pool.remove([p.tx_hash for p in pooled])
        return height

    def deploy(self) -> bytes:
        t = tx(b"", "", [EMITTER], self.chain)
        self.commit([t])
        return self.chain.ledger.get_receipt(t.hash(SUITE)).contract_address

    def bumps(self, contract: bytes, count: int) -> int:
        """A block with `count` bump calls: 2 * count events."""
        return self.commit([tx(contract, "bump", [i], self.chain) for i in range(count)])

    def events(self, address: bytes | None = None, name: str | None = None, start: int = 0) -> list[tuple[int, int, int]]:
        """Positions of the matching events in the ledger: the expected stream."""
        ledger, out = self.chain.ledger, []
        for height in range(start, ledger.head_height + 1):
            for ti, h in enumerate(ledger.get_block_tx_hashes(height) or []):
                for li, e in enumerate(ledger.get_receipt(h).events):
                    if (address is None or e.address == address) and (name is None or e.name == name):
                        out.append((height, ti, li))
        return out


async def start_env(nursery, path, limits: SubscriptionLimits | None = None, genesis=GENESIS) -> Env:
    chain = open_chain(path, genesis)
    pool = TxPool(SUITE, "c", "g", head_height=lambda: chain.height, is_committed=chain.is_committed)
    node = FakeNodeShell(chain, pool)
    # These lines are what chainnode/node/node.py does to wire the hub in.
    hub = SubscriptionHub(chain.ledger, SUITE, "g", limits or SubscriptionLimits(), node_name="node0")
    node.commit_listeners.append(hub.on_commit)
    dispatcher = Dispatcher()
    ChainRpc(node).register(dispatcher)
    app = RpcApp(dispatcher, hub=hub)
    port = free_port()
    await nursery.start(serve_rpc, app, "127.0.0.1", port)
    return Env(chain, hub, node, port)


@pytest.fixture
async def env(nursery, tmp_path):
    e = await start_env(nursery, tmp_path / "chain", SubscriptionLimits(replay_blocks_per_step=4, replay_receipts_per_step=3, subscriptions_per_connection_max=3))
    yield e
    e.chain.ledger.close()


class WsClient:
    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 1
        self.notes: list[dict] = []  # notifications received while waiting for a response

    async def call(self, method: str, *params):
        rid = self.next_id
        self.next_id += 1
        await self.ws.send_message(json.dumps({"jsonrpc": "2.0", "id": rid, "method": method, "params": list(params)}))
        while True:
            msg = json.loads(await self.ws.get_message())
            if msg.get("id") == rid:
                return msg
            assert msg["method"] == "subscription", msg
            self.notes.append(msg["params"])

    async def subscribe(self, kind: str, options: dict | None = None) -> str:
        reply = await self.call("subscribe", "g", "", kind, options or {})
        assert "result" in reply, reply
        return reply["result"]

    async def note(self) -> dict:
        if self.notes:
            return self.notes.pop(0)
        msg = json.loads(await self.ws.get_message())
        assert msg["method"] == "subscription" and "id" not in msg, msg
        return msg["params"]


def pos(result: dict) -> tuple[int, int, int]:
    return (result["blockNumber"], result["transactionIndex"], result["logIndex"])


async def test_events_replay_then_live_without_gap_or_duplicate(env):
    contract = env.deploy()
    for _ in range(6):
        env.bumps(contract, 2)  # 6 blocks, 4 events each, replayed 2 blocks per step (the 3-receipt bound)
    # a step stops after the block that reaches 3 receipts: here 2 blocks of 2, not 4 blocks
    assert [h for h, _ in env.hub.events_view(2, 7, None, None)] == [2, 3]
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)
        sub = await c.subscribe("events", {"address": "0x" + contract.hex(), "fromBlock": 1})
        got = []

        async def produce():
            # Commit while the replay is running, so the switch-over races with commits.
            for _ in range(6):
                env.bumps(contract, 1)
                await trio.sleep(0.005)

        async with trio.open_nursery() as n:
            n.start_soon(produce)
            with trio.fail_after(20):
                while len(got) < 6 * 4 + 6 * 2:
                    note = await c.note()
                    assert note["subscription"] == sub
                    got.append(note["result"])
        assert [pos(r) for r in got] == env.events(address=contract, start=1)
        first = got[0]
        assert first["name"] == "Bumped" and first["fields"] == {"n": 1} and first["transactionHash"].startswith("0x")
        assert first["address"] == "0x" + contract.hex() and first["raw"].startswith("0x")
        # nothing more is pending: a new block brings exactly its own events
        env.bumps(contract, 1)
        with trio.fail_after(5):
            assert pos((await c.note())["result"]) == env.events(address=contract)[-2]
            assert pos((await c.note())["result"]) == env.events(address=contract)[-1]


async def test_new_blocks_from_zero_then_live(env):
    env.deploy()
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)
        await c.subscribe("newBlocks", {"fromBlock": 0})
        heights = []
        with trio.fail_after(10):
            while len(heights) < 2:
                heights.append((await c.note())["result"]["number"])
            env.commit([])
            env.commit([])
            while len(heights) < 4:
                r = (await c.note())["result"]
                heights.append(r["number"])
        assert heights == [0, 1, 2, 3]
        assert r["hash"] == "0x" + env.chain.ledger.get_header(3).hash(SUITE).hex()
        assert r["certificate"]["number"] == 3 and r["raw"].startswith("0x")
        # default fromBlock: the next block only
        sub2 = await c.subscribe("newBlocks")
        env.commit([])
        with trio.fail_after(5):
            seen = {}
            while len(seen) < 2:
                note = await c.note()
                seen.setdefault(note["subscription"], []).append(note["result"]["number"])
        assert seen[sub2] == [4]


async def test_filters_by_name_and_address(env):
    contract = env.deploy()
    other = env.deploy()
    env.bumps(contract, 1)
    env.bumps(other, 2)
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)
        by_name = await c.subscribe("events", {"name": "Other", "fromBlock": 0})
        by_both = await c.subscribe("events", {"name": "Bumped", "address": "0x" + other.hex(), "fromBlock": 0})
        env.bumps(contract, 1)
        want = {by_name: env.events(name="Other"), by_both: env.events(address=other, name="Bumped")}
        assert len(want[by_name]) == 4 and len(want[by_both]) == 2
        got = {by_name: [], by_both: []}
        with trio.fail_after(10):
            while sum(map(len, got.values())) < 6:
                note = await c.note()
                got[note["subscription"]].append(pos(note["result"]))
        assert got == want


async def test_receipt_subscription_pushes_once_and_ends(env):
    contract = env.deploy()
    committed = tx(contract, "bump", [1], env.chain)
    env.commit([committed])
    pending = tx(contract, "bump", [2], env.chain)
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)
        sub1 = await c.subscribe("receipt", {"transactionHash": "0x" + committed.hash(SUITE).hex()})
        with trio.fail_after(5):
            note = await c.note()
        assert note["subscription"] == sub1 and note["result"]["transactionHash"] == "0x" + committed.hash(SUITE).hex()
        assert note["result"]["blockNumber"] == 2 and note["result"]["status"] == 0
        sub2 = await c.subscribe("receipt", {"transactionHash": "0x" + pending.hash(SUITE).hex()})
        env.commit([])  # a block without it: nothing yet
        env.commit([pending])
        with trio.fail_after(5):
            note = await c.note()
        assert note["subscription"] == sub2 and note["result"]["blockNumber"] == 4
        # both ended: unsubscribing finds nothing, and no further notification arrives
        assert (await c.call("unsubscribe", "g", "", sub1))["result"] is False
        assert (await c.call("unsubscribe", "g", "", sub2))["result"] is False
        env.commit([])
        with trio.move_on_after(0.2):
            extra = await c.note()
            pytest.fail(f"unexpected notification {extra}")


async def test_events_from_a_pruned_block_are_refused_and_a_replay_that_pruning_overtakes_is_closed(env):
    ledger = env.chain.ledger
    ledger.block_history_blocks = 2  # as `[storage] block_history_blocks` opens it (at least 128 in node.toml)

    def expiring(to: bytes, method: str, args: list) -> Transaction:  # for the next block only: its body may go 2 blocks on
        return Transaction("c", "g", os.urandom(16), env.chain.height + 1, to, method, args, 1_000_000, USER[1]).signed(SUITE, USER[0])

    deploy = expiring(b"", "", [EMITTER])
    env.commit([deploy])
    contract = ledger.get_receipt(deploy.hash(SUITE)).contract_address
    for i in range(4):
        env.commit([expiring(contract, "bump", [i])])
    assert (ledger.head_height, ledger.oldest_block_height()) == (5, 4)
    assert [h for h, _ in env.hub.blocks_view(0, 5)] == list(range(6))  # headers stay: newBlocks from any block
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)
        refused = (await c.call("subscribe", "g", "", "events", {"fromBlock": 3}))["error"]
        assert refused["code"] == -32001 and refused["data"] == {"oldestBlock": 4}
        assert refused["message"].startswith("cannot replay events from block 3: block 3's transactions and receipts are not kept")
        assert refused["message"].endswith("subscribe with fromBlock >= 4")
        await c.subscribe("events", {"fromBlock": 4})
        with trio.fail_after(5):
            assert [pos((await c.note())["result"]) for _ in range(4)] == env.events(start=4)
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)
        await env.hub._reader.acquire()  # the replay reader is busy: the new subscription waits to read block 5...
        try:
            await c.subscribe("events", {"fromBlock": 5})
            for i in range(3):  # ...while blocks 5 and 6 are pruned
                env.commit([expiring(contract, "bump", [i])])
        finally:
            env.hub._reader.release()
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(5):
            while True:
                await c.note()
    assert closed.value.reason.code == CLOSE_POLICY
    assert closed.value.reason.reason == "events of block 5 are pruned here (bodies kept from block 7); resubscribe from 7 or ask an archive node"


async def test_new_blocks_below_what_a_snapshot_node_holds_are_refused_naming_its_oldest(nursery, tmp_path):
    # It holds block 0 and the blocks from FETCHED_FROM on: a replay from lower would meet
    # blocks that were never here.
    server = open_chain(tmp_path / "server", GENESIS_WINDOW_10)
    grow(server, SNAPSHOT_AT)
    (await joined_by_snapshot(server, tmp_path / "joiner")).ledger.close()
    server.ledger.close()
    env = await start_env(nursery, tmp_path / "joiner", genesis=GENESIS_WINDOW_10)
    try:
        async with open_websocket_url(env.ws_url) as ws:
            c = WsClient(ws)
            for from_block in (0, 1, FETCHED_FROM - 1):
                refused = (await c.call("subscribe", "g", "", "newBlocks", {"fromBlock": from_block}))["error"]
                assert refused["code"] == -32001 and refused["data"] == {"oldestHeader": FETCHED_FROM}, refused
                assert refused["message"] == (f"cannot replay blocks from block {from_block}: block {from_block} is not on this node: it "
                                              f"started from a snapshot and holds block 0 and the blocks from {FETCHED_FROM} on; ask an "
                                              f"archive node for older blocks; subscribe with fromBlock >= {FETCHED_FROM}")
            await c.subscribe("newBlocks", {"fromBlock": FETCHED_FROM})
            with trio.fail_after(5):
                got = [(await c.note())["result"]["number"] for _ in range(SNAPSHOT_AT - FETCHED_FROM + 1)]
            assert got == list(range(FETCHED_FROM, SNAPSHOT_AT + 1))
    finally:
        env.chain.ledger.close()


async def test_bad_params_limits_and_http(env):
    async with open_websocket_url(env.ws_url) as ws:
        c = WsClient(ws)

        async def error(*params):
            reply = await c.call("subscribe", *params)
            assert "error" in reply, reply
            return reply["error"]

        assert "'kind' must be one of" in (await error("g", "", "bogus"))["message"]
        assert "'fromBlock' must be an integer" in (await error("g", "", "newBlocks", {"fromBlock": "soon"}))["message"]
        assert "'fromBlock' must be an integer" in (await error("g", "", "events", {"fromBlock": -1}))["message"]
        assert "'address' must be 20 bytes" in (await error("g", "", "events", {"address": "0x1234"}))["message"]
        assert "'name' must be a string" in (await error("g", "", "events", {"name": 5}))["message"]
        assert "unknown: toBlock" in (await error("g", "", "events", {"toBlock": 5}))["message"]
        assert "'transactionHash' is required" in (await error("g", "", "receipt", {}))["message"]
        assert "'transactionHash' must be 32 bytes" in (await error("g", "", "receipt", {"transactionHash": "zz"}))["message"]
        assert "'options' must be an object" in (await error("g", "", "events", [1]))["message"]
        assert "group 'x' is not served here" in (await error("x", "", "newBlocks"))["message"]
        assert "not this node" in (await error("g", "node9", "newBlocks"))["message"]
        assert (await error("g", "", "bogus"))["code"] == -32602
        ids = [await c.subscribe("newBlocks") for _ in range(3)]
        err = await error("g", "", "newBlocks")
        assert "too many subscriptions on this connection (limit 3)" in err["message"]
        assert (await c.call("unsubscribe", "g", "", ids[0]))["result"] is True
        assert (await c.call("unsubscribe", "g", "", ids[0]))["result"] is False
        await c.subscribe("newBlocks")  # room again
        assert env.hub.stats()["subscriptions"] == 3
        # ordinary methods still work on a subscription connection
        assert (await c.call("getBlockNumber", "g", ""))["result"] == env.chain.height
        assert env.hub.sessions
    async with httpx.AsyncClient() as http:
        r = await http.post(env.http_url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["g", "", "newBlocks"]})
        assert "subscriptions need a WebSocket connection" in r.json()["error"]["message"]
        r = await http.post(env.http_url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["g", "", "nope"]})
        assert "'kind' must be one of" in r.json()["error"]["message"]
    with trio.fail_after(5):  # the connection's session and tasks are gone after the client left
        while env.hub.sessions:
            await trio.sleep(0.01)


def stuck_client(incoming: list[dict], *, messages_taken: int = 0):
    """ASGI receive/send of a WebSocket client that sends `incoming` and then nothing, and
    stops reading once more than `messages_taken` messages were sent to it (accept counts).
    Returns (receive, send, sent)."""
    sent: list[dict] = []

    async def receive():
        return incoming.pop(0) if incoming else await trio.sleep_forever()

    async def send(message):
        sent.append(message)
        if message["type"] == "websocket.send" and len(sent) > messages_taken:
            await trio.sleep_forever()  # the client stopped reading: the socket is full

    return receive, send, sent


async def test_slow_client_is_disconnected_with_a_reason(tmp_path):
    chain = open_chain(tmp_path / "c")
    try:
        for _ in range(10):
            proposal = chain.execute_proposal([], timestamp_ms=chain.height, proposer_index=0)
            chain.commit(proposal, certify(proposal.header))
        hub = SubscriptionHub(chain.ledger, SUITE, "g", SubscriptionLimits(queue_bytes_max=100, queue_full_timeout_ms=100))
        dispatcher = Dispatcher()
        app = RpcApp(dispatcher, hub=hub)
        incoming = [
            {"type": "websocket.connect"},
            {"type": "websocket.receive", "text": json.dumps({"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": ["g", "", "newBlocks", {"fromBlock": 0}]})},
        ]
        receive, send, sent = stuck_client(incoming, messages_taken=2)  # the accept and one response

        with trio.fail_after(5):
            await app({"type": "websocket", "path": "/"}, receive, send)
        assert sent[0]["type"] == "websocket.accept"
        assert "result" in json.loads(sent[1]["text"])
        close = sent[-1]
        assert close["type"] == "websocket.close" and close["code"] == CLOSE_POLICY
        assert "subscription queue overflow" in close["reason"] and "fromBlock" in close["reason"]
        assert hub.stats() == {"connections": 0, "subscriptions": 0, "disconnectedSlow": 1}
        # bounded: the 11 blocks never all got written (accept, response, one stuck in send, close)
        assert len(sent) <= 4
    finally:
        chain.ledger.close()


async def test_client_that_sends_but_never_reads_is_disconnected(tmp_path):
    chain = open_chain(tmp_path / "c")
    try:
        hub = SubscriptionHub(chain.ledger, SUITE, "g", SubscriptionLimits(queue_bytes_max=200, queue_full_timeout_ms=100))
        app = RpcApp(Dispatcher(), hub=hub)
        request = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "unsubscribe", "params": ["g", "", "0x01"]})
        incoming = [{"type": "websocket.connect"}] + [{"type": "websocket.receive", "text": request}] * 50
        receive, send, sent = stuck_client(incoming)  # never read: the first response is stuck in the socket

        with trio.fail_after(5):
            await app({"type": "websocket", "path": "/"}, receive, send)  # returns, never raises
        assert sent[-1]["type"] == "websocket.close" and sent[-1]["code"] == CLOSE_POLICY
        assert len(incoming) > 40  # it stopped reading requests too, within the queue bound
    finally:
        chain.ledger.close()


async def test_connection_limit(tmp_path, nursery):
    env = await start_env(nursery, tmp_path / "c", SubscriptionLimits(connections_max=1))
    try:
        async with open_websocket_url(env.ws_url) as ws1:
            await WsClient(ws1).subscribe("newBlocks")
            async with open_websocket_url(env.ws_url) as ws2:
                with pytest.raises(ConnectionClosed) as info:
                    await ws2.get_message()
                assert info.value.reason.code == 1013 and "too many subscription connections" in info.value.reason.reason
    finally:
        env.chain.ledger.close()


async def test_replay_chunks_count_against_the_queue_bound(tmp_path, monkeypatch):
    """Many subscriptions replaying from block 0 to a client that reads nothing: what the
    connection holds never exceeds its byte bound plus one chunk (one chunk in memory per
    connection, read only when the queue has room), and the client is then dropped."""
    from chainnode.rpc import subscriptions

    chain = open_chain(tmp_path / "c")
    try:
        for _ in range(40):
            proposal = chain.execute_proposal([], timestamp_ms=chain.height, proposer_index=0)
            chain.commit(proposal, certify(proposal.header))
        limits = SubscriptionLimits(queue_bytes_max=4000, queue_full_timeout_ms=200, replay_blocks_per_step=4, subscriptions_per_connection_max=16)
        hub = SubscriptionHub(chain.ledger, SUITE, "g", limits)
        app = RpcApp(Dispatcher(), hub=hub)
        held: list[int] = []
        put = subscriptions.Session._put

        def recording_put(self, texts):
            put(self, texts)
            held.append(self.queued_bytes)

        monkeypatch.setattr(subscriptions.Session, "_put", recording_put)
        subscribe = [{"type": "websocket.receive", "text": json.dumps({"jsonrpc": "2.0", "id": i, "method": "subscribe", "params": ["g", "", "newBlocks", {"fromBlock": 0}]})} for i in range(16)]
        incoming = [{"type": "websocket.connect"}] + subscribe
        receive, send, sent = stuck_client(incoming)  # the client reads nothing

        with trio.fail_after(10):
            await app({"type": "websocket", "path": "/"}, receive, send)
        chunk_bytes_max = max(len(json.dumps(v)) + 200 for _, vs in hub.blocks_view(0, 3) for v in vs) * limits.replay_blocks_per_step
        assert held and max(held) <= limits.queue_bytes_max + chunk_bytes_max, (max(held), chunk_bytes_max)
        assert sent[-1]["type"] == "websocket.close" and sent[-1]["code"] == CLOSE_POLICY
        assert hub.stats() == {"connections": 0, "subscriptions": 0, "disconnectedSlow": 1}
    finally:
        chain.ledger.close()

"""The SDK against a real RPC server (hypercorn on loopback) over a real chain: subscriptions
that resume after dropped connections, receipts by subscription and by polling, offline
receipt proofs, state proofs across sealer-set changes followed from the genesis sealers,
and the node's errors as exceptions."""

from __future__ import annotations

import dataclasses
import os

import pytest
import trio

from chainnode.client import (
    Account,
    CallFailed,
    Client,
    EventNotification,
    NodeError,
    ProofError,
    ReceiptTimeout,
    contract_state_key,
    verify_receipt_proof,
)
from chainnode.crypto import get_suite
from chainnode.protocol.codec import unpack
from chainnode.protocol.hexstr import parse_hex
from chainnode.protocol.stateproof import StateProof
from chainnode.protocol.types import BlockHeader, Transaction, sealer_set_hash
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.rpc.server import RpcApp, serve_rpc
from chainnode.rpc.subscriptions import SubscriptionLimits
from chainnode.system.state import NODES_KEY
from tests.chain_fixtures import GENESIS_GOVERNED, NEW_SEALER, SEALERS, USER, change_sealers
from tests.helpers import free_port
from tests.rpc.test_subscriptions import EMITTER, SUITE, Env, start_env, tx


@pytest.fixture
async def env(nursery, tmp_path):
    e = await start_env(nursery, tmp_path / "chain", SubscriptionLimits(replay_blocks_per_step=3))
    yield e
    e.chain.ledger.close()


def client(env: Env, **kwargs) -> Client:
    return Client(env.http_url, group="g", **kwargs)


SEALER_PUBS = [pub for _, pub in SEALERS]


async def test_events_resume_exactly_once_after_dropped_connections(env):
    contract = env.deploy()
    env.bumps(contract, 3)
    got: list[EventNotification] = []
    async with client(env) as c:
        async with c.subscribe_events(address=contract, name="Bumped", from_block=0) as events:

            async def produce():
                for i in range(12):
                    env.bumps(contract, 2)
                    await trio.sleep(0.01)

            async with trio.open_nursery() as n:
                n.start_soon(produce)
                with trio.fail_after(30):
                    async for ev in events:
                        got.append(ev)
                        # drop the connection mid-block (after the first of a block's two
                        # events) and between blocks: both must resume without loss or repeat
                        if len(got) in (2, 5, 9, 14):
                            await events.drop_connection()
                        if len(got) == 3 + 12 * 2:
                            break
            assert events.connections >= 5
    want = env.events(address=contract, name="Bumped")
    assert [e.position for e in got] == want
    assert [e.event.fields["n"] for e in got] == list(range(1, len(want) + 1))
    assert got[0].event.address == contract and got[0].tx_hash == env.chain.ledger.get_block_tx_hashes(got[0].block_number)[0]


async def test_blocks_resume_after_drop_and_default_from_next_block(env):
    async with client(env) as c:
        async with c.subscribe_blocks() as blocks:
            with trio.fail_after(10):
                while blocks.connections == 0:  # subscribed: "next block" is now pinned to 1
                    await trio.sleep(0.01)
            env.commit([])
            seen = []
            with trio.fail_after(10):
                async for b in blocks:
                    seen.append(b.number)
                    assert b.header.hash(SUITE) == env.chain.ledger.get_header(b.number).hash(SUITE)
                    b.certificate.verify(SUITE, SEALER_PUBS)
                    if len(seen) == 1:
                        await blocks.drop_connection()
                        env.commit([])  # committed while disconnected
                        env.commit([])
                    if len(seen) == 3:
                        break
    assert seen == [1, 2, 3]


async def test_wait_for_receipt_by_subscription_and_by_polling(env, nursery):
    contract = env.deploy()
    t = tx(contract, "bump", [7], env.chain)

    async def commit_later():
        await trio.sleep(0.3)
        env.commit([t])

    async with client(env) as c:
        nursery.start_soon(commit_later)
        with trio.fail_after(10):
            r = await c.wait_for_receipt(t.hash(SUITE), timeout_s=5, poll_ms=60_000)  # polling would take a minute
        assert r.ok and r.output == 1 and r.block_number == env.chain.height
    # a node without subscriptions: the same call falls back to polling
    plain = Dispatcher()
    ChainRpc(env.node).register(plain)
    port = free_port()
    await nursery.start(serve_rpc, RpcApp(plain), "127.0.0.1", port)
    async with Client(f"http://127.0.0.1:{port}", group="g") as c:
        r = await c.wait_for_receipt(t.hash(SUITE), timeout_s=5)
        assert r.block_number == env.chain.height
        assert c._ws_subscriptions_ok is False
        with pytest.raises(NodeError) as info:
            async with c.subscribe_blocks(reconnect_attempts_max=1) as blocks:
                async for _ in blocks:
                    pass
        assert info.value.code == -32601


async def test_verified_receipt_and_every_broken_link(env):
    contract = env.deploy()
    t = tx(contract, "bump", [1], env.chain)
    env.commit([t, tx(contract, "bump", [2], env.chain)])
    async with client(env) as c:
        r = await c.get_verified_receipt(t.hash(SUITE), SEALER_PUBS)
        assert r.ok and r.index == 0 and r.tx_hash == t.hash(SUITE)
        answer = await c.request("getTransactionReceipt", "0x" + t.hash(SUITE).hex(), True)
        second_hash = env.chain.ledger.get_block_tx_hashes(env.chain.height)[1]
        second = await c.request("getTransactionReceipt", "0x" + second_hash.hex(), True)
        other_block = await c.request("getBlockByNumber", 1, True)
        with pytest.raises(ProofError, match="no receipt for"):
            await c.get_verified_receipt(os.urandom(32), SEALER_PUBS)
    other = [get_suite("sm").generate_keypair()[1] for _ in range(4)]
    with pytest.raises(ProofError, match="does not verify against the 4 sealers"):
        verify_receipt_proof(answer, other, SUITE)
    with pytest.raises(ProofError, match="different sealer set"):
        verify_receipt_proof(answer, SEALER_PUBS[:3] + [other[0]], SUITE)  # signers 0-2 are a quorum, but the set differs
    swapped = dict(answer, raw=second["raw"])  # a true receipt of the block, claimed at the wrong index
    with pytest.raises(ProofError, match="not in the receipt root"):
        verify_receipt_proof(swapped, SEALER_PUBS, SUITE)
    forged = dict(answer, receiptProof=dict(answer["receiptProof"], header=other_block))
    with pytest.raises(ProofError, match="certificate is for block|does not hash"):
        verify_receipt_proof(forged, SEALER_PUBS, SUITE)
    with pytest.raises(ProofError, match="not the transaction asked for"):
        verify_receipt_proof(answer, SEALER_PUBS, SUITE, tx_hash=os.urandom(32))
    with pytest.raises(ProofError, match="malformed proof"):
        verify_receipt_proof(dict(answer, raw="0x00"), SEALER_PUBS, SUITE)
    with pytest.raises(ProofError, match="receipt raw must be a hex string"):
        verify_receipt_proof(dict(answer, raw="0x0g"), SEALER_PUBS, SUITE)
    # Hex in the answer may use 0X and upper-case digits, as the node's RPC accepts them.
    assert verify_receipt_proof(_upper_hex(answer), SEALER_PUBS, SUITE).tx_hash == t.hash(SUITE)
    with pytest.raises(ProofError, match="requireProof"):
        verify_receipt_proof({k: v for k, v in answer.items() if k != "receiptProof"}, SEALER_PUBS, SUITE)


def _upper_hex(v):
    if isinstance(v, str) and v.startswith("0x"):
        return "0X" + v[2:].upper()
    if isinstance(v, dict):
        return {k: _upper_hex(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_upper_hex(x) for x in v]
    return v


async def test_node_errors_are_exceptions(env):
    async with client(env) as c:
        with pytest.raises(NodeError) as info:
            await c.request("getBlockByNumber", 99)
        assert info.value.code == -32001 and "block 99 not found" in info.value.message
        with pytest.raises(NodeError) as info:
            async with c.subscribe_events(from_block=0) as events:
                events._options["name"] = 5  # what a buggy caller could send
                async for _ in events:
                    pass
        assert info.value.code == -32602 and "'name'" in info.value.message
    async with Client(f"http://127.0.0.1:{free_port()}", group="g") as dead:
        with pytest.raises(ConnectionError, match="reconnection attempts failed"):
            async with dead.subscribe_blocks(reconnect_attempts_max=1) as blocks:
                async for _ in blocks:
                    pass


async def test_read_only_call(env):
    contract = env.deploy()
    env.bumps(contract, 2)
    async with client(env) as c:
        assert await c.call(contract, "count") == 2
        assert await c.call(contract, "echo", [b"\x00\xff"]) == b"\x00\xff"  # bytes stay bytes
        assert await c.call(contract, "echo", ["0xff"]) == "0xff"  # and text stays text
        with pytest.raises(CallFailed) as info:
            await c.call(contract, "bump", [b"\x00\xff"])  # a write: refused in a read-only call
        assert info.value.error_type == "PermissionError"
        with pytest.raises(CallFailed, match="MethodNotFound|NoContract"):
            await c.call(os.urandom(20), "nothing")


async def seal_pool(env) -> None:
    """Commit whatever the pool holds, as the leader would."""
    while True:
        await trio.sleep(0.02)
        if len(env.node.pool):
            env.commit_pool()


async def test_deploy_and_send_through_the_pool(env, nursery):
    nursery.start_soon(seal_pool, env)
    alice = Account.generate("sm")
    async with client(env) as c:
        with trio.fail_after(20):
            deployed = await c.deploy(alice, EMITTER, [])
            receipt = await c.send(alice, deployed.contract_address, "bump", [3])
        assert receipt.ok and receipt.output == 1 and [e.name for e in receipt.events] == ["Bumped", "Other"]
        assert receipt.block_number > deployed.block_number
        with pytest.raises(NodeError) as info:
            await c.send_transaction((await c.build(alice, deployed.contract_address, "bump", [1])).signed(alice.suite, Account.generate("sm").private_key))
        assert info.value.code == -32000 and info.value.reason is not None


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # nothing listens there


async def test_requests_fail_over_to_the_next_node(env):
    down = dead_url()
    async with Client([down, env.http_url], group="g") as c:
        assert await c.block_number() == env.chain.height
        assert c.url == env.http_url + "/" and c.ws_url == env.ws_url
    async with Client([down, dead_url()], group="g") as c:
        with pytest.raises(ConnectionError) as info:
            await c.block_number()
        assert "cannot reach any node" in str(info.value) and down in str(info.value)
    with pytest.raises(ValueError, match="ws_url"):
        Client([down, env.http_url], ws_url=env.ws_url)
    with pytest.raises(ValueError, match="node URL"):
        Client([])


async def test_send_transaction_answers_with_the_receipt_when_asked(env, nursery):
    contract = env.deploy()
    t = tx(contract, "bump", [2], env.chain)
    data = "0x" + t.encode().hex()

    async def commit_when_pooled():
        while not len(env.node.pool):
            await trio.sleep(0.01)
        env.commit_pool()

    nursery.start_soon(commit_when_pooled)
    async with client(env) as c:
        with trio.fail_after(20):
            out = await c.request("sendTransaction", data, False, {"waitForReceipt": True, "timeoutMs": 10_000})
        assert out["status"] == "added" and out["receipt"]["status"] == 0 and out["receipt"]["blockNumber"] == env.chain.height
        # the same bytes again: its hash, and that it is committed, with the same receipt
        again = await c.request("sendTransaction", data, False, {"waitForReceipt": True})
        assert again["status"] == "committed" and again["receipt"] == out["receipt"]
        assert (await c.request("sendTransaction", data))["status"] == "committed"
        for bad in ({"waitForReceipt": 1}, {"wait": True}, {"waitForReceipt": True, "timeoutMs": -1}, [True]):
            with pytest.raises(NodeError) as info:
                await c.request("sendTransaction", data, False, bad)
            assert info.value.code == -32602


async def test_a_wait_that_runs_out_says_the_transaction_is_still_pending(env):
    t = tx(env.deploy(), "bump", [1], env.chain)
    async with client(env) as c:
        with pytest.raises(NodeError) as info:
            await c.request("sendTransaction", "0x" + t.encode().hex(), False, {"waitForReceipt": True, "timeoutMs": 50})
        assert info.value.code == -32003 and "still pending" in info.value.message
        assert info.value.data == {"transactionHash": "0x" + t.hash(SUITE).hex(), "status": "pending", "timeoutMs": 50}
        assert env.node.pool.get(t.hash(SUITE)) is not None  # not lost
        # the SDK resubmits to each node it knows, then says who holds it
        with pytest.raises(ReceiptTimeout) as timeout:
            await c.wait_for_receipt(t, timeout_s=0.5, resubmit_after_s=0.1)
        assert timeout.value.acknowledged_by == [env.http_url + "/"]
        assert "held durably" in str(timeout.value) and f"until block {t.block_limit}" in str(timeout.value)
        assert (await c.request("sendTransaction", "0x" + t.encode().hex()))["status"] == "pending"


async def test_a_wait_for_a_transaction_that_expires_ends_with_expired(env, nursery):
    t = Transaction("c", "g", os.urandom(16), env.chain.height + 1, env.deploy(), "bump", [1], 1_000_000, USER[1]).signed(SUITE, USER[0])

    async def expire_it():
        while not len(env.node.pool):
            await trio.sleep(0.01)
        env.commit([])  # a block without it: its block_limit has now passed
        env.node.pool.drop_expired(env.chain.height)
        for listener in env.node.commit_listeners:
            listener(env.chain.height)

    nursery.start_soon(expire_it)
    async with client(env) as c:
        with trio.fail_after(20), pytest.raises(NodeError) as info:
            await c.request("sendTransaction", "0x" + t.encode().hex(), False, {"waitForReceipt": True, "timeoutMs": 10_000})
    assert info.value.reason == "block_limit_expired" and "rebuild it" in info.value.message


async def test_send_fails_over_when_the_first_node_is_down(env, nursery):
    nursery.start_soon(seal_pool, env)
    alice = Account.generate("sm")
    async with Client([dead_url(), env.http_url], group="g") as c:
        with trio.fail_after(20):
            deployed = await c.deploy(alice, EMITTER, [])
        assert deployed.ok


# ---- following sealer-set changes, then proving later state ---------------------------------

@pytest.fixture
async def changing_env(nursery, tmp_path):
    """A chain whose one governor is USER (a proposal executes at once), where the sealer set
    changes twice: block 2 adds a fifth sealer (in force from block 4), block 5 gives sealer 0
    weight 3 (from block 7); block 7 bumps a counter deployed in block 1 (storage n = 1)."""
    e = await start_env(nursery, tmp_path / "chain", genesis=GENESIS_GOVERNED)
    contract = change_sealers(e.chain)
    e.contract = contract
    yield e
    e.chain.ledger.close()


FIVE = SEALER_PUBS + [NEW_SEALER[1]]


async def test_a_verifier_trusting_only_the_genesis_sealers_follows_the_changes_and_proves_later_state(changing_env):
    env = changing_env
    key = contract_state_key(env.contract, "n")
    async with client(env) as c:
        # Each later set is proven from the state of a block the set before it certified.
        assert await c.follow_sealer_sets(SEALER_PUBS, None, 3) == (SEALER_PUBS, [1, 1, 1, 1])
        assert await c.follow_sealer_sets(SEALER_PUBS, None, 4) == (FIVE, [1] * 5)
        pubs, weights = await c.follow_sealer_sets(SEALER_PUBS, [1, 1, 1, 1], 7)
        assert (pubs, weights) == (FIVE, [3, 1, 1, 1, 1])
        # ... and with that set, a value of block 7 proves; the genesis set alone cannot.
        proven = await c.get_verified_state(key, pubs, block_number=7, sealer_weights=weights)
        assert unpack(proven.value, max_bytes=64) == 1 and proven.block_number == 7
        assert proven.state_root == env.chain.ledger.get_header(7).state_root
        before = await c.get_verified_state(key, SEALER_PUBS, block_number=3)
        assert unpack(before.value, max_bytes=64) == 0 and before.block_number == 3
        with pytest.raises(ProofError, match="does not verify against the 4 sealers given"):
            await c.get_verified_state(key, SEALER_PUBS, block_number=7)
        absent = await c.get_verified_state(contract_state_key(env.contract, "m"), pubs, sealer_weights=weights)
        assert absent.value is None and absent.block_number == 7
        # Trusting the wrong genesis set gets nowhere.
        strangers = [SUITE.generate_keypair()[1] for _ in range(4)]
        for wrong in (strangers, SEALER_PUBS[:3] + strangers[:1]):
            with pytest.raises(ProofError, match="block 1 was certified by another sealer set than the one given: it is not this chain's genesis set"):
                await c.follow_sealer_sets(wrong, None, 7)
        # nor does starting from a later set (the walk starts at genesis)
        with pytest.raises(ProofError, match="not this chain's genesis set"):
            await c.follow_sealer_sets(FIVE, [1] * 5, 7)


async def test_the_walk_refuses_a_tampered_proof_or_header(changing_env):
    async with client(changing_env) as c:
        honest = c.request
        flipped = []

        async def tampering(method, *params, **kwargs):
            out = await honest(method, *params, **kwargs)
            if method == "getStateProof":
                raw = parse_hex(out["proof"])
                at = raw.index(StateProof.decode(raw).steps[-1][1][0])  # a sibling hash on the key's path
                out = dict(out, proof="0x" + (raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1:]).hex())
                flipped.append(params)
            return out

        c.request = tampering
        with pytest.raises(ProofError, match="block 3: the proof of its value does not lead to the state root"):
            await c.follow_sealer_sets(SEALER_PUBS, None, 7)
        assert flipped == [("raw", "0x" + NODES_KEY.hex(), 3)]  # the first proof of the walk, refused
        c.request = honest
        assert (await c.follow_sealer_sets(SEALER_PUBS, None, 7))[1] == [3, 1, 1, 1, 1]

        # Headers are not trusted: one that names another set (a real one: block 7's) than
        # the state before it schedules is refused.
        later = sealer_set_hash(SUITE, FIVE, [3, 1, 1, 1, 1])

        async def lying(method, *params, **kwargs):
            out = await honest(method, *params, **kwargs)
            if method == "getBlockByNumber" and params[0] == 4:
                header = dataclasses.replace(BlockHeader.decode(parse_hex(out["raw"])), sealer_set_hash=later)
                out = dict(out, raw="0x" + header.encode().hex())
            return out

        c.request = lying
        with pytest.raises(ProofError, match=f"block 4 names sealer set 0x{later.hex()}, not the one the state after block 3 schedules"):
            await c.follow_sealer_sets(SEALER_PUBS, None, 7)

"""The governance RPC reads (getProposal, getCommittee, ...) over the real dispatcher, on a real
chain whose committee has one governor (admin mode): proposals sent as transactions execute
at once, and the reads report the state they changed."""

import os

import pytest

from chainnode.execution.chain import Chain
from chainnode.execution.executor import Executor
from chainnode.protocol.codec import unpack
from chainnode.protocol.types import Transaction
from chainnode.rpc.jsonrpc import Dispatcher
from chainnode.rpc.methods import ChainRpc
from chainnode.store.ledger import Ledger
from chainnode.system.contracts import COMMITTEE_ADDRESS, PERMISSION_ADDRESS
from chainnode.system.genesis import parse_genesis
from contracts.engine import Engine
from tests.chain_fixtures import SEALERS, SUITE
from tests.rpc.test_rpc_methods import commit_pool, serve

GOVERNOR = SUITE.keypair_from_private((77).to_bytes(32, "big"))
STRANGER = SUITE.keypair_from_private((78).to_bytes(32, "big"))
GOV_ADDRESS = SUITE.address(GOVERNOR[1])
GENESIS = parse_genesis({
    "format": "chainnode-genesis/1", "chain_id": "c", "group_id": "g", "suite": "sm", "timestamp_ms": 0,
    "nodes": [{"name": f"n{i}", "role": "sealer", "consensus_pub": pub.hex(), "peer_id": f"p{i}"} for i, (_, pub) in enumerate(SEALERS)],
    "committee": [{"address": GOV_ADDRESS.hex(), "weight": 3}],
    "governance": {"participation_rate_pct": 60, "win_rate_pct": 70},
})
NEW_PUB = bytes([4]) + bytes(range(64))  # an sm public key's shape; never dialled here
CONTRACT = "def init():\n    storage['n'] = 0\n\ndef get():\n    return storage['n']\n"


@pytest.fixture
def rpc(tmp_path):
    ledger = Ledger.open(tmp_path, SUITE)
    block, writes = GENESIS.block()
    ledger.commit_block(block, [], None, writes)
    chain = Chain(ledger, Executor(SUITE, Engine(SUITE), "c", "g"))
    yield serve(chain)
    chain.ledger.close()


async def send(node, keypair, to: bytes, method: str, args: list):
    """Sign, pool and commit one transaction; its receipt."""
    tx = Transaction("c", "g", os.urandom(16), node.chain.height + 10, to, method, args, 1_000_000, keypair[1]).signed(SUITE, keypair[0])
    await node.pool.submit(tx.encode())
    commit_pool(node)
    receipt = node.chain.ledger.get_receipt(tx.hash(SUITE))
    assert receipt is not None
    return receipt


async def test_committee_and_proposals(rpc):
    node, call = rpc
    committee = await call("getCommittee", "g", "")
    assert committee == {
        "governors": [{"address": "0x" + GOV_ADDRESS.hex(), "weight": 3}], "totalWeight": 3,
        "participationPct": 60, "winPct": 70, "nextProposalId": 1, "blockNumber": 0,
    }
    assert await call("getProposals", "g", "") == {"blockNumber": 0, "nextProposalId": 1, "proposals": []}
    missing = await call("getProposal", "g", "", 1)
    assert missing["code"] == -32001 and missing["message"] == "no proposal 1; there are no proposals yet (getProposals lists them)"

    r = await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["set_config", ["tx_count_limit", 321]])
    assert r.ok and r.output == 1
    r = await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["add_observer", [NEW_PUB, "p9", 2, ["/ip4/10.0.0.9/tcp/30300"]], 50])
    assert r.ok and r.output == 2
    height = node.chain.height
    p = await call("getProposal", "g", "", 1)
    assert p["status"] == "executed" and p["kind"] == "set_config" and p["params"] == ["tx_count_limit", 321]
    assert p["proposer"] == "0x" + GOV_ADDRESS.hex() and p["result"] == "tx_count_limit = 321"
    assert p["votes"] == [{"governor": "0x" + GOV_ADDRESS.hex(), "yes": True}]
    assert (p["totalWeight"], p["votedWeight"], p["yesWeight"]) == (3, 3, 3)
    assert (p["participationPct"], p["winPct"], p["createdHeight"], p["decidedHeight"]) == (60, 70, 1, 1)
    assert p["blockNumber"] == height and p["expiryHeight"] == 1 + 7200
    assert await call("getSystemConfigByKey", "g", "", "tx_count_limit") == {"value": 321, "blockNumber": height}
    # bytes params: hex in the view, exact in paramsRaw; a string id works as for block numbers
    p2 = await call("getProposal", "g", "", "0x2")
    assert p2["params"][0] == "0x" + NEW_PUB.hex() and p2["expiryHeight"] == 2 + 50
    assert unpack(bytes.fromhex(p2["paramsRaw"][2:]), max_bytes=1024) == [NEW_PUB, "p9", 2, ["/ip4/10.0.0.9/tcp/30300"]]

    listed = await call("getProposals", "g", "")
    assert listed["nextProposalId"] == 3 and [x["id"] for x in listed["proposals"]] == [1, 2]
    assert [x["id"] for x in (await call("getProposals", "g", "", 2))["proposals"]] == [2]
    assert (await call("getProposals", "g", "", 1, 1))["proposals"][0]["id"] == 1
    assert (await call("getProposals", "g", "", 5))["proposals"] == []
    assert (await call("getProposal", "g", "", 7))["message"] == "no proposal 7; proposals so far are 1..2 (getProposals lists them)"

    # the membership change is pending for two blocks after the block that made it
    pending = await call("getPendingMembership", "g", "")
    assert pending["blockNumber"] == height and [e["fromHeight"] for e in pending["pending"]] == [2 + 2]
    added = pending["pending"][0]["nodes"][-1]
    assert added == {"nodeId": "p9", "publicKey": "0x" + NEW_PUB.hex(), "address": "0x" + SUITE.address(NEW_PUB).hex(), "role": "observer", "weight": 2}
    await send(node, STRANGER, COMMITTEE_ADDRESS, "view_committee", [])  # any transaction: a block
    await send(node, STRANGER, COMMITTEE_ADDRESS, "view_committee", [])
    assert (await call("getPendingMembership", "g", ""))["pending"] == []
    assert [o["nodeId"] for o in await call("getObserverList", "g", "")] == ["p9"]


async def test_permissions_names_and_revocations(rpc):
    node, call = rpc
    stranger = "0x" + SUITE.address(STRANGER[1]).hex()
    status = await call("getAccountStatus", "g", "", stranger)
    assert status == {"address": stranger, "frozen": False, "frozenReason": "", "mayDeploy": True, "deployOpen": True, "contractAdmin": None, "blockNumber": 0}
    deployed = await send(node, STRANGER, b"", "", [CONTRACT, []])
    contract = deployed.contract_address
    assert (await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["freeze_account", [SUITE.address(STRANGER[1]), "lost key"]])).ok
    assert (await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["set_deploy_open", [False]])).ok
    status = await call("getAccountStatus", "g", "", stranger)
    assert (status["frozen"], status["frozenReason"], status["mayDeploy"], status["deployOpen"]) == (True, "lost key", False, False)
    assert (await call("getAccountStatus", "g", "", "0x" + contract.hex()))["contractAdmin"] == stranger

    acl = await call("getMethodAcl", "g", "", "0x" + contract.hex(), "get")
    assert acl["mode"] == "open" and acl["addresses"] == [] and acl["admin"] == stranger
    gov = "0x" + GOV_ADDRESS.hex()
    assert (await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["set_method_acl", [contract, "get", "allow", [GOV_ADDRESS]]])).ok
    acl = await call("getMethodAcl", "g", "", "0x" + contract.hex(), "get")
    assert (acl["mode"], acl["addresses"], acl["contract"], acl["method"]) == ("allow", [gov], "0x" + contract.hex(), "get")
    # the admin's own call is refused while the admin is frozen: the governance rules apply to it
    r = await send(node, STRANGER, PERMISSION_ADDRESS, "clear_method_acl", [contract, "get"])
    assert not r.ok and r.error_type == "AccountFrozen"

    rid = bytes(range(32)) + b"\x01\x02"  # issuer key hash, serial 0x0102
    assert await call("getRevokedCertificates", "g", "") == {"revoked": [], "blockNumber": node.chain.height}
    assert (await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["revoke_cert", [[rid]]])).ok
    assert (await call("getRevokedCertificates", "g", ""))["revoked"] == [
        {"id": "0x" + rid.hex(), "issuerKeyHash": "0x" + rid[:32].hex(), "serial": "0102"}]

    assert await call("getNames", "g", "") == {"names": {}, "blockNumber": node.chain.height}
    assert (await call("resolveName", "g", "", "counter"))["address"] is None
    assert (await send(node, GOVERNOR, COMMITTEE_ADDRESS, "propose", ["register_name", ["counter", contract]])).ok
    assert (await call("resolveName", "g", "", "counter")) == {"name": "counter", "address": "0x" + contract.hex(), "blockNumber": node.chain.height}
    assert (await call("getNames", "g", ""))["names"] == {"counter": "0x" + contract.hex()}


@pytest.mark.parametrize("method, params, message", [
    ("getProposal", [], "expected group, node, id; got 2 parameter(s)"),
    ("getProposal", [0], "'id' must be an integer in [1, "),
    ("getProposal", ["one"], "'id' must be an integer"),
    ("getProposal", [1, 2], "at most 3 parameters (group, node, id); got 4"),
    ("getProposals", [0], "'first' must be an integer in [1, "),
    ("getProposals", [1, 0], "'count' must be an integer in [1, 100]"),
    ("getProposals", [1, 101], "'count' must be an integer in [1, 100]"),
    ("getProposals", [1, True], "'count' must be an integer"),
    ("getCommittee", [1], "at most 2 parameters (group, node); got 3"),
    ("getAccountStatus", [], "expected group, node, address"),
    ("getAccountStatus", ["0x1234"], "'address' must be 20 bytes (40 hex digits)"),
    ("getAccountStatus", ["alice"], "'address' must be a hex string"),
    ("getMethodAcl", ["0x" + "11" * 20], "expected group, node, contract, method"),
    ("getMethodAcl", ["0x" + "11" * 20, ""], "'method' must name a contract method"),
    ("getMethodAcl", ["0x" + "11" * 20, 5], "'method' must be a string of at most 64 characters"),
    ("getMethodAcl", ["0x11", "get"], "'contract' must be 20 bytes"),
    ("getRevokedCertificates", ["x"], "at most 2 parameters"),
    ("resolveName", [], "expected group, node, name"),
    ("resolveName", ["no spaces"], "'name' must be 1..64 ASCII letters, digits, '_', '-' or '.'; got 'no spaces'"),
    ("resolveName", [""], "'name' must be 1..64 ASCII letters"),
    ("resolveName", ["x" * 65], "'name' must be a string of at most 64 characters"),
    ("getNames", [None], "at most 2 parameters"),
    ("getPendingMembership", [1], "at most 2 parameters"),
])
async def test_invalid_params_say_what_is_expected(rpc, method, params, message):
    _, call = rpc
    err = await call(method, "g", "", *params)
    assert err["code"] == -32602 and message in err["message"], err


@pytest.mark.parametrize("method, params", [
    ("getProposal", [1]), ("getProposals", []), ("getCommittee", []), ("getAccountStatus", ["0x" + "11" * 20]),
    ("getMethodAcl", ["0x" + "11" * 20, "get"]), ("getRevokedCertificates", []), ("resolveName", ["x"]),
    ("getNames", []), ("getPendingMembership", []),
])
async def test_the_group_is_checked(rpc, method, params):
    _, call = rpc
    err = await call(method, "other", "", *params)
    assert err["code"] == -32602 and "group 'other' is not served here; this node serves group 'g'" in err["message"]


# ---- the SDK (chainnode.client.governance) over the same RPC --------------------------------


def sdk_client(node, call_dispatcher):
    """A Client whose HTTP goes straight to the dispatcher; a sent transaction is committed
    at once (as a one-sealer chain would), before sendTransaction's waitForReceipt waits."""
    import httpx

    from chainnode.client import Client

    submit = node.submit_transaction

    async def submit_and_commit(raw):
        out = await submit(raw)
        commit_pool(node)
        return out

    node.submit_transaction = submit_and_commit

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=await call_dispatcher.handle(await request.aread()))

    client = Client("http://node.test", group="g", ws_url="")
    client._http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    return client


@pytest.fixture
def sdk(rpc):
    node, _ = rpc
    d = Dispatcher()
    ChainRpc(node).register(d)
    return node, sdk_client(node, d)


async def test_sdk_governance(sdk):
    from chainnode.client import Account, CallFailed, TransactionFailed
    from chainnode.client.governance import CONFIG_ADDRESS, CONSENSUS_ADDRESS, NAMES_ADDRESS, Governance, GovernanceRefused
    from chainnode.system import contracts as syscontracts
    assert (COMMITTEE_ADDRESS, CONSENSUS_ADDRESS, CONFIG_ADDRESS, PERMISSION_ADDRESS, NAMES_ADDRESS) == (
        syscontracts.COMMITTEE_ADDRESS, syscontracts.CONSENSUS_ADDRESS, syscontracts.CONFIG_ADDRESS,
        syscontracts.PERMISSION_ADDRESS, syscontracts.NAMES_ADDRESS)
    node, client = sdk
    governor = Account(SUITE, *GOVERNOR)
    stranger = Account(SUITE, *STRANGER)
    async with client:
        g = Governance(client)
        committee = await g.committee()
        assert committee["governors"] == [{"address": GOV_ADDRESS, "weight": 3}] and committee["next_proposal_id"] == 1
        assert "set_config" in await g.kinds()
        assert await g.proposal(1) is None

        pid, receipt = await g.propose(governor, "set_config", ["tx_count_limit", 222])
        assert pid == 1 and receipt.ok
        p = await g.proposal(pid)
        assert p["status"] == "executed" and p["proposer"] == GOV_ADDRESS and p["result"] == "tx_count_limit = 222"
        assert (await g.config())["tx_count_limit"] == 222

        # refusals carry the contract's own reason
        with pytest.raises(GovernanceRefused) as refused:
            await g.propose(governor, "set_config", ["tx_count_limit", 0])
        assert isinstance(refused.value, TransactionFailed)
        assert refused.value.reason == "set_config: tx_count_limit must be an integer in [1, 10000], got 0"
        assert str(refused.value).startswith("propose set_config refused in block ") and str(refused.value).endswith("got 0")
        with pytest.raises(GovernanceRefused, match="is not a governor; only committee members may propose or vote"):
            await g.propose(stranger, "set_config", ["tx_count_limit", 5])
        with pytest.raises(GovernanceRefused, match="proposal 1 is executed; it can no longer be voted on"):
            await g.vote(governor, 1, True)
        with pytest.raises(GovernanceRefused, match="no proposal 9"):
            await g.revoke(governor, 9)

        pid, _ = await g.propose(governor, "add_observer", [NEW_PUB, "p9"], expiry_blocks=10)
        nodes = await g.nodes()
        assert nodes["pending"][0]["nodes"][-1]["consensus_pub"] == NEW_PUB and len(nodes["nodes"]) == 4
        assert len(await g.proposals()) == 2 and [p["id"] for p in await g.proposals(2, 150)] == [2]

        deployed = await client.deploy(stranger, CONTRACT)
        contract = deployed.contract_address
        status = await g.account_status(contract)
        assert status["admin_of_contract"] == stranger.address and status["frozen"] is False
        assert await g.method_acl(contract, "get") is None
        await g.set_method_acl(stranger, "0x" + contract.hex(), "get", "deny", [governor.address])
        assert await g.method_acl(contract, "get") == {"mode": "deny", "addresses": [governor.address]}
        with pytest.raises(GovernanceRefused, match=r"only the contract's admin \(" + stranger.address.hex()):
            await g.clear_method_acl(governor, contract, "get")
        await g.clear_method_acl(stranger, contract, "get")
        assert await g.method_acl(contract, "get") is None
        with pytest.raises(ValueError, match="contract must be a 20-byte address"):
            await g.method_acl(b"\x01", "get")

        await g.propose(governor, "register_name", ["counter", contract])
        assert await g.resolve("counter") == contract and await g.names() == {"counter": contract}
        assert await g.resolve("nobody") is None
        assert (await g.permissions())["deploy_open"] is True
        with pytest.raises(CallFailed):
            await client.call(COMMITTEE_ADDRESS, "view_proposals", [0, 1])


async def test_sealer_list_of_a_past_block(rpc):
    node, call = rpc
    now = await call("getSealerList", "g", "")
    assert await call("getSealerList", "g", "", 0) == now  # block 0's set is recorded by the genesis
    missing = await call("getSealerList", "g", "", 99)
    assert missing["code"] == -32001 and "block 99 not found; the chain is at height" in missing["message"]
    bad = await call("getSealerList", "g", "", "zero")
    assert bad["code"] == -32602

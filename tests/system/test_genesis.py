"""Genesis files: strict parsing with errors that name the field, and block 0."""

import copy
import json

import pytest

from chainnode.crypto import get_suite
from chainnode.store.ledger import Ledger
from chainnode.system.genesis import GENESIS_BYTES_MAX, GenesisError, load_genesis, parse_genesis
from chainnode.system.state import ConfigValueError, check_config_value, read_chain, read_config, read_nodes, read_sealers

SUITE = get_suite("sm")
KEYS = [SUITE.keypair_from_private((i + 1).to_bytes(32, "big")) for i in range(5)]


def doc():
    return {
        "format": "chainnode-genesis/1",
        "chain_id": "chain0",
        "group_id": "group0",
        "suite": "sm",
        "timestamp_ms": 1_767_225_600_000,
        "nodes": [
            {"name": f"node{i}", "role": "sealer" if i < 4 else "observer", "consensus_pub": KEYS[i][1].hex(), "peer_id": f"12D3KooPeer{i}", "addrs": [f"/ip4/127.0.0.1/tcp/{30300 + i}"]}
            for i in range(5)
        ],
        "committee": [{"address": SUITE.address(KEYS[0][1]).hex(), "weight": 1}],
        "governance": {"participation_rate_pct": 51, "win_rate_pct": 67},
        "config": {"tx_count_limit": 500, "consensus_timeout_ms": 2000},
    }


def test_parse_and_commit_genesis(tmp_path):
    g = parse_genesis(doc())
    assert [n.name for n in g.sealers] == ["node0", "node1", "node2", "node3"]
    block, writes = g.block()
    with Ledger.open(tmp_path, SUITE) as ledger:
        ledger.commit_block(block, [], None, writes)
        assert ledger.genesis_hash == g.hash()
        state = ledger.state
        assert [n.consensus_pub for n in read_sealers(state)] == [k[1] for k in KEYS[:4]]
        assert read_nodes(state)[4].role == "observer"
        assert read_config(state, "tx_count_limit") == 500
        assert read_config(state, "leader_period") == 1  # default
        assert read_chain(state) == ("chain0", "group0", "sm")


def test_hash_ignores_addresses_and_json_layout(tmp_path):
    a = doc()
    b = copy.deepcopy(a)
    b["nodes"][0]["addrs"] = ["/ip4/10.1.1.1/tcp/1"]
    assert parse_genesis(a).hash() == parse_genesis(b).hash()
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(a, indent=4, sort_keys=True))
    assert load_genesis(path).hash() == parse_genesis(a).hash()
    c = copy.deepcopy(a)
    c["config"]["tx_count_limit"] = 501
    assert parse_genesis(c).hash() != parse_genesis(a).hash()


def test_p2p_noise25519_defaults_to_false_and_is_not_in_the_hash():
    assert parse_genesis(doc()).p2p_noise25519 is False
    allowed = {**doc(), "p2p_noise25519": True}
    g = parse_genesis(allowed)
    assert g.p2p_noise25519 is True
    assert g.hash() == parse_genesis(doc()).hash()  # a transport setting, like the addresses
    assert g.to_json()["p2p_noise25519"] is True and "p2p_noise25519" not in parse_genesis(doc()).to_json()


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(format="x"), "not a chainnode genesis"),
        (lambda d: d.update(surprise=1), "unknown field"),
        (lambda d: d.update(suite="rsa"), "suite must be one of"),
        (lambda d: d.update(chain_id=""), "chain_id"),
        (lambda d: d.update(chain_id=5), "chain_id"),
        (lambda d: d.update(timestamp_ms=-1), "timestamp_ms"),
        (lambda d: d.update(nodes=[]), "1..256 nodes"),
        (lambda d: d["nodes"][1].update(role="king"), r"nodes\[1\] \(node1\): role"),
        (lambda d: d["nodes"][1].update(consensus_pub="zz"), r"nodes\[1\] \(node1\): consensus_pub must be a hex string"),
        (lambda d: d["nodes"][1].update(consensus_pub="04" * 10), "must be 65 bytes"),
        (lambda d: d["nodes"][1].update(consensus_pub=KEYS[0][1].hex()), "duplicate consensus_pub"),
        (lambda d: d["nodes"][1].update(peer_id="12D3KooPeer0"), "duplicate peer_id"),
        (lambda d: d["nodes"][1].update(name="node0"), "duplicate name"),
        (lambda d: d["nodes"][1].update(addrs="127.0.0.1:1"), "dial addresses"),
        (lambda d: d["nodes"][1].update(addrs=["/ip4/300.0.0.1/tcp/1"]), "is not an IPv4 address"),
        (lambda d: d["nodes"][1].update(addrs=["/ip4/10.0.0.1/tcp/1/p2p/12D3Koo"]), "is not a dial address"),
        (lambda d: d["nodes"][1].update(addrs=["/dns/bad_name/tcp/1"]), "is not a DNS name"),
        (lambda d: d["nodes"][1].update(addrs=["/ip4/10.0.0.1/tcp/1"] * 9), "at most 8"),
        (lambda d: d["nodes"][1].update(weight=0), "weight"),
        (lambda d: [n.update(role="observer") for n in d["nodes"]], "at least one node must be a sealer"),
        (lambda d: d.update(committee=[]), "committee"),
        (lambda d: d["committee"][0].update(address="abcd"), "20 bytes"),
        (lambda d: d["governance"].update(win_rate_pct=101), "win_rate_pct"),
        (lambda d: d["config"].update(tx_count_limit=0), r"tx_count_limit must be an integer in \[1, 10000\]"),
        (lambda d: d["config"].update(tx_count_limit="1000"), "tx_count_limit"),
        (lambda d: d["config"].update(warp_speed=9), "unknown system config"),
        (lambda d: d.update(p2p_noise25519="yes"), "'p2p_noise25519' must be true or false"),
        (lambda d: d.update(p2p_noise25519=1), "'p2p_noise25519' must be true or false"),
    ],
)
def test_bad_genesis_names_the_problem(edit, match):
    d = doc()
    edit(d)
    with pytest.raises(GenesisError, match=match):
        parse_genesis(d, "genesis.json")


@pytest.mark.parametrize("content,match", [(b"{", "not valid JSON"), (b"[]", "not a chainnode genesis"), (b"\xff\xfe", "not valid JSON")])
def test_bad_genesis_files(tmp_path, content, match):
    path = tmp_path / "g.json"
    path.write_bytes(content)
    with pytest.raises(GenesisError, match=match):
        load_genesis(path)
    with pytest.raises(GenesisError, match="not found"):
        load_genesis(tmp_path / "missing.json")


def test_oversized_genesis_file_is_refused(tmp_path):
    path = tmp_path / "big.json"
    path.write_bytes(b" " * (GENESIS_BYTES_MAX + 1))
    with pytest.raises(GenesisError, match=f"larger than any genesis file \\({GENESIS_BYTES_MAX} bytes\\)"):
        load_genesis(path)


def test_config_values_are_range_checked():
    assert check_config_value("consensus_timeout_ms", 3000) == 3000
    for name, value in [("consensus_timeout_ms", 10), ("tx_count_limit", 10**9), ("tx_count_limit", True), ("nope", 1)]:
        with pytest.raises(ConfigValueError):
            check_config_value(name, value)


# ---- contracts deployed in block 0 ------------------------------------------------------------

DEEP: list = [1]
for _ in range(100):
    DEEP = [DEEP]
COUNTER = "def init(start):\n    storage['n'] = start\n\ndef view_n():\n    return storage.get('n', 0)\n"


def with_contracts(contracts):
    d = doc()
    d["contracts"] = contracts
    return d


def test_genesis_contracts_are_deployed_and_named_in_block_0(tmp_path):
    from chainnode.store.state import StateOverlay
    from chainnode.system.governance import contract_admin, resolve_name
    from contracts.engine import CallContext, Engine

    deployer = SUITE.address(KEYS[0][1])
    g = parse_genesis(with_contracts([{"name": "counter", "deployer": deployer.hex(), "init_args": [41], "source": COUNTER}]))
    block, writes = g.block()
    with Ledger.open(tmp_path, SUITE) as ledger:
        ledger.commit_block(block, [], None, writes)
        state = ledger.state
        address = resolve_name(state, "counter")
        assert address is not None and contract_admin(state, address) == deployer
        ctx = CallContext(deployer, address, 0, 0, b"\x00" * 32)
        assert Engine(SUITE).query(StateOverlay(state), ctx, address, "view_n", [], 1_000_000).value == 41
    # The contracts are part of what the consortium agreed on: another init changes the hash.
    other = parse_genesis(with_contracts([{"name": "counter", "deployer": deployer.hex(), "init_args": [42], "source": COUNTER}]))
    assert other.hash() != g.hash()
    assert parse_genesis(g.to_json()).hash() == g.hash()  # round trip, bytes args included


@pytest.mark.parametrize(
    "contract, message",
    [
        ({"name": "c", "deployer": "00" * 20, "source": "def init(:\n"}, "does not deploy: ContractRejected"),
        ({"name": "c", "deployer": "00" * 20, "source": COUNTER, "init_args": []}, "does not deploy"),
        ({"name": "c", "deployer": "zz", "source": COUNTER}, "deployer must be a hex string"),
        ({"name": "bad name", "deployer": "00" * 20, "source": COUNTER}, "ASCII letters"),
        ({"name": "c", "deployer": "00" * 20, "source": COUNTER, "init_args": ["0xnothex"]}, "is not hex"),
        ({"name": "c", "deployer": "00" * 20, "source": COUNTER, "init_args": [1.5]}, "no floats"),
        ({"name": "c", "deployer": "00" * 20, "source": COUNTER, "extra": 1}, "must be an object with name"),
        ({"name": "c", "deployer": "00" * 20, "source": COUNTER, "init_args": [DEEP]}, "nested deeper"),
    ],
)
def test_bad_genesis_contracts_are_refused_naming_the_contract(contract, message):
    with pytest.raises(GenesisError, match=message):
        parse_genesis(with_contracts([contract])).block()


def test_too_many_genesis_contracts_are_refused():
    many = [{"name": f"c{i}", "deployer": "00" * 20, "source": COUNTER, "init_args": [i]} for i in range(33)]
    with pytest.raises(GenesisError, match="at most 32 contracts"):
        parse_genesis(with_contracts(many))

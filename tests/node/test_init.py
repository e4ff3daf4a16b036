"""`chainnode init`: a ready data directory, or a one-line reason why not."""

import json

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.crypto import get_suite
from chainnode.node.config import load_config
from chainnode.node.init import InitError, open_chain_ledger
from chainnode.security.keyfile import encrypt_key, write_key_file
from chainnode.store.ledger import Ledger
from chainnode.system.genesis import load_genesis

SUITE = get_suite("sm")


def setup(tmp_path, chain_id="chain0"):
    keys = [SUITE.generate_keypair() for _ in range(2)]
    for i, (priv, _) in enumerate(keys):
        path = tmp_path / f"k{i}.key"
        if not path.exists():
            write_key_file(path, encrypt_key("sm", priv, "pw", scrypt_n=1024))
    genesis = {
        "format": "chainnode-genesis/1", "chain_id": chain_id, "group_id": "g", "suite": "sm", "timestamp_ms": 0,
        "nodes": [{"name": f"bank{i}", "role": "sealer", "consensus_pub": json.loads((tmp_path / f"k{i}.key").read_text())["public_key"], "peer_id": f"p{i}", "addrs": [f"/ip4/127.0.0.1/tcp/{31000 + i}"]} for i in range(2)],
        "committee": [{"address": "00" * 20}],
    }
    (tmp_path / f"{chain_id}.json").write_text(json.dumps(genesis))
    return tmp_path / f"{chain_id}.json"


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_init_creates_then_is_idempotent(tmp_path):
    genesis = setup(tmp_path)
    data = tmp_path / "node1"
    r = run("init", "--genesis", str(genesis), "--key", str(tmp_path / "k1.key"), "--data-dir", str(data), "--json")
    assert r.exit_code == 0, r.output
    info = json.loads(r.output)
    assert info["created"] and info["name"] == "bank1" and info["role"] == "sealer"
    cfg = load_config(info["config"])
    assert cfg.p2p_listen == "/ip4/127.0.0.1/tcp/31001" and cfg.data_dir == data.resolve()
    assert cfg.genesis_file == (data / "genesis.json").resolve() and cfg.key_file == (tmp_path / "k1.key").resolve()
    with Ledger.open(data, SUITE) as ledger:
        assert ledger.head_height == 0 and ledger.genesis_hash.hex() == info["genesis_hash"]
    again = run("init", "--genesis", str(genesis), "--key", str(tmp_path / "k1.key"), "--data-dir", str(data))
    assert again.exit_code == 0 and "already initialised" in again.output


def test_init_refusals(tmp_path):
    genesis = setup(tmp_path)
    stranger = tmp_path / "stranger.key"
    write_key_file(stranger, encrypt_key("sm", SUITE.generate_keypair()[0], "pw", scrypt_n=1024))
    r = run("init", "--genesis", str(genesis), "--key", str(stranger), "--data-dir", str(tmp_path / "x"))
    assert r.exit_code == 1 and "is not a node of" in r.output
    ed = tmp_path / "ed.key"
    write_key_file(ed, encrypt_key("ed25519", get_suite("ed25519").generate_keypair()[0], "pw", scrypt_n=1024))
    r = run("init", "--genesis", str(genesis), "--key", str(ed), "--data-dir", str(tmp_path / "x"))
    assert r.exit_code == 1 and "ed25519 key but the chain uses the sm suite" in r.output
    r = run("init", "--genesis", str(tmp_path / "none.json"), "--key", str(stranger), "--data-dir", str(tmp_path / "x"))
    assert r.exit_code == 1 and "not found" in r.output
    for bad in ("zz", None):  # a damaged key file: one line, no traceback
        doc = json.loads(stranger.read_text())
        doc["public_key"] = bad
        damaged = tmp_path / "damaged.key"
        damaged.write_text(json.dumps(doc))
        r = run("init", "--genesis", str(genesis), "--key", str(damaged), "--data-dir", str(tmp_path / "x"))
        assert r.exit_code == 1 and f"the public_key of {damaged}" in r.output and "chainnode keygen" in r.output, r.output
    data = tmp_path / "node0"
    assert run("init", "--genesis", str(genesis), "--key", str(tmp_path / "k0.key"), "--data-dir", str(data)).exit_code == 0
    other = setup(tmp_path, chain_id="other")
    r = run("init", "--genesis", str(other), "--key", str(tmp_path / "k0.key"), "--data-dir", str(data))
    assert r.exit_code == 1 and "holds another chain" in r.output


def test_init_writes_the_channel_port(tmp_path):
    from chainnode.node.init import init_node

    genesis = setup(tmp_path)
    info = init_node(genesis, tmp_path / "k0.key", tmp_path / "n0", p2p_listen=None, rpc_listen="127.0.0.1:8600", channel_listen="127.0.0.1:20300")
    cfg = load_config(info["config"])
    assert (cfg.channel_host, cfg.channel_port, cfg.rpc_port) == ("127.0.0.1", 20300, 8600)
    info = init_node(genesis, tmp_path / "k1.key", tmp_path / "n1", p2p_listen=None, rpc_listen="127.0.0.1:8601")
    assert (load_config(info["config"]).channel_port) == 20200  # the default: FISCO's channel port


def test_a_ledger_that_recorded_its_genesis_content_opens_without_making_block_0_again(tmp_path):
    genesis_path = setup(tmp_path)
    data = tmp_path / "node0"
    assert run("init", "--genesis", str(genesis_path), "--key", str(tmp_path / "k0.key"), "--data-dir", str(data)).exit_code == 0
    genesis = load_genesis(genesis_path)
    with open_chain_ledger(data, genesis, create=False) as ledger:
        assert ledger.genesis_source == genesis.content_digest()
    assert "_state_writes" not in genesis.__dict__  # block 0 was not made (its contracts not deployed) to check it
    with Ledger.open(data, SUITE) as ledger:  # a ledger from before the record: checked in full once, then recorded
        ledger._store.write_batch([], [b"m:genesis_source"])
    with open_chain_ledger(data, genesis, create=False) as ledger:
        assert ledger.genesis_source == genesis.content_digest() and "_state_writes" in genesis.__dict__
    other = load_genesis(setup(tmp_path, chain_id="other"))
    with pytest.raises(InitError, match="holds another chain"):
        open_chain_ledger(data, other, create=False)

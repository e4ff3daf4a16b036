"""The console commands of `chainnode` (chainnode/cli/rpc.py): argument errors caught before
any network call, an unreachable node, and the offline receipt-proof check on a real chain."""

import json
import os
import socket

import pytest
from click.testing import CliRunner

from chainnode.cli.main import main
from chainnode.cli.rpc import ProofError, verify_receipt_proof
from chainnode.protocol.types import Transaction
from tests.chain_fixtures import SOURCE, SUITE, USER
from tests.rpc.test_rpc_methods import commit_pool, rpc  # noqa: F401  (the fixture)

ADDR = "0x" + "11" * 20
HASH = "0x" + "22" * 32


def closed_port_url() -> str:
    """A loopback URL where nothing listens (the kernel picked the port, then it was released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}"


def run(*args, env=None):
    result = CliRunner().invoke(main, list(args), env={"CHAINNODE_RPC": closed_port_url(), "CHAINNODE_PASSWORD": "pw", **(env or {})})
    return result.exit_code, result.output


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "alice.key"
    code, out = run("account", "new", "--out", str(path), "--scrypt-n", "1024", "--json")
    assert code == 0, out
    assert json.loads(out)["address"] == json.loads(run("account", "show", str(path), "--json")[1])["address"]
    return str(path)


@pytest.mark.parametrize(
    "args,message",
    [
        (["tx", "send", "--key", "k", "--to", "0x12", "--method", "m"], "Invalid value for --to: must be 20 bytes of hex"),
        (["tx", "send", "--key", "k", "--to", ADDR, "--method", "m", "--args", "[1,"], "Invalid value for --args: is not JSON"),
        (["tx", "send", "--key", "k", "--to", ADDR, "--method", "m", "--args", '{"a": 1}'], "Invalid value for --args: must be a JSON array"),
        (["tx", "send", "--key", "k", "--to", ADDR, "--method", "m", "--args", "[1.5]"], "values of type float are not allowed"),
        (["tx", "send", "--key", "k", "--to", ADDR, "--method", "m", "--args", '["0xzz"]', "--hex-as-bytes"], "'0xzz' starts with 0x but is not hex"),
        (["tx", "send", "--to", ADDR, "--method", "m"], "Missing option '--key'"),
        (["contract", "send", "--key", "k", "--to", "nothex", "--method", "m"], "Invalid value for --to"),
        (["contract", "call", "0x1234", "get"], "Invalid value for ADDRESS: must be 20 bytes"),
        (["contract", "call", ADDR, "get", "--from", "0x01"], "Invalid value for --from"),
        (["contract", "code", "xyz"], "Invalid value for ADDRESS"),
        (["block", "tall"], "Invalid value for N: must be a block number or 'latest'"),
        (["block", "-3"], "No such option '-3'"),
        (["tx", "0x1234"], "Invalid value for HASH: must be 32 bytes of hex"),
        (["receipt", "0x1234", "--proof"], "Invalid value for HASH"),
        (["config", "get"], "Missing argument 'KEY'"),
        (["state", "0x1234", "n"], "Invalid value for ADDRESS: must be 20 bytes of hex"),
        (["state", "alice", "n", "--proof"], "Invalid value for ADDRESS: must be 20 bytes of hex"),
        (["state", "raw", "zz"], "Invalid value for KEY: value must be a hex string"),
        (["state", "system", ""], "Invalid value for KEY: a system state name is a non-empty string"),
        (["state", ADDR, "0xzz"], "Invalid value for KEY: '0xzz' starts with 0x but is not hex"),
        (["state", ADDR, "n", "--block", "-1"], "Invalid value for '--block': -1 is not in the range x>=0"),
        (["state", ADDR, "n", "--block", "ten"], "Invalid value for '--block': 'ten' is not a valid integer"),
    ],
)
def test_argument_errors_name_the_argument(args, message):
    code, out = run(*args)
    assert code == 2 and message in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "args",
    [["status"], ["peers"], ["sealers"], ["block"], ["block", "3", "--txs"], ["tx", HASH], ["receipt", HASH], ["config", "get", "tx_count_limit"], ["contract", "call", ADDR, "get"], ["status", "--json"],
     ["state", "system", "nodes", "--proof"]],
)
def test_an_unreachable_node_is_one_line_and_status_1(args):
    url = closed_port_url()
    code, out = run(*args, "--rpc", url)
    assert code == 1, out
    assert out.startswith(f"Error: cannot reach the node at {url}/ (") and "is it running, and is this its rpc listen address?" in out
    assert out.rstrip().endswith("or a local test network with `devnet up`") and out.count("\n") == 1
    assert "Traceback" not in out


def test_rpc_url_env_and_scheme():
    for env in ({"CHAINNODE_RPC": "127.0.0.1:8545"}, {"CHAINNODE_URL": "127.0.0.1:20200"}):
        code, out = run("status", env=env)
        assert code == 1 and "--url must be chainnode://HOST:PORT (the node's channel port, e.g. chainnode://127.0.0.1:20200)" in out


def test_the_channel_needs_a_key_and_a_client_certificate(tmp_path, key_file):
    url = closed_port_url().replace("http://", "chainnode://")
    code, out = run("status", "--url", url)
    assert code == 1 and "pass your account key (--key FILE, or set CHAINNODE_CLIENT_KEY)" in out
    assert "--url http://127.0.0.1:8545 needs neither" in out
    code, out = run("status", "--url", url, "--key", key_file)
    assert code == 1 and "pass your client certificate chain (--client-cert FILE" in out and "chainnode ca issue-client --key" in out
    (tmp_path / "bad.chain").write_text("{}")
    code, out = run("status", "--url", url, "--key", key_file, "--client-cert", str(tmp_path / "bad.chain"))
    assert code == 1 and "bad.chain" in out and "check --url, --client-cert and its key" in out and "Traceback" not in out
    code, out = run("status", "--url", "chainnode://127.0.0.1", "--key", key_file)
    assert code == 1 and "write chainnode://HOST:PORT" in out


def test_sending_needs_a_readable_key_and_password(tmp_path, key_file):
    code, out = run("tx", "send", "--key", str(tmp_path / "missing.key"), "--to", ADDR, "--method", "m")
    assert code == 1 and "key file" in out and "not found; create one with `chainnode keygen" in out
    code, out = run("tx", "send", "--key", key_file, "--to", ADDR, "--method", "m", env={"CHAINNODE_PASSWORD": "wrong"})
    assert code == 1 and "wrong password" in out
    code, out = run("tx", "send", "--key", key_file, "--to", ADDR, "--method", "m", env={"CHAINNODE_PASSWORD": ""})
    assert code == 1 and "no password given: pass --password-file FILE or set CHAINNODE_PASSWORD" in out
    # with a good key the next stop is the node, which is not there
    code, out = run("tx", "send", "--key", key_file, "--to", ADDR, "--method", "m", "--no-wait")
    assert code == 1 and "cannot reach the node" in out


def test_deploy_checks_the_source_first(tmp_path, key_file):
    code, out = run("contract", "deploy", "--key", key_file, str(tmp_path / "nope.py"))
    assert code == 1 and "cannot read" in out and "nope.py" in out
    bad = tmp_path / "bad.py"
    bad.write_text("def f(:\n    pass\n")
    code, out = run("contract", "deploy", "--key", key_file, str(bad))
    assert code == 1 and "bad.py: the contract is rejected at line 1" in out and "docs/contracts.md" in out
    banned = tmp_path / "banned.py"
    banned.write_text("import os\n")
    code, out = run("contract", "deploy", "--key", key_file, str(banned))
    assert code == 1 and "the contract is rejected" in out
    binary = tmp_path / "bin.py"
    binary.write_bytes(b"\xff\xfe\x00")
    code, out = run("contract", "deploy", "--key", key_file, str(binary))
    assert code == 1 and "is not UTF-8 text" in out


def test_account_new_refuses_to_overwrite(tmp_path, key_file):
    code, out = run("account", "new", "--out", key_file, "--scrypt-n", "1024")
    assert code == 1 and "already exists; choose another --out" in out


async def test_receipt_proof_verifies_offline_and_catches_tampering(rpc):  # noqa: F811
    node, call = rpc
    tx = Transaction("c", "g", os.urandom(16), 10, b"", "", [SOURCE], 1_000_000, USER[1]).signed(SUITE, USER[0])
    h = (await call("sendTransaction", "g", "", "0x" + tx.encode().hex()))["transactionHash"]
    commit_pool(node)
    receipt = await call("getTransactionReceipt", "g", "", h, True)
    sealers = await call("getSealerList", "g", "")
    checked = verify_receipt_proof(receipt, h, sealers, "sm")
    assert checked["blockNumber"] == 1 and checked["signers"] == [0, 1, 2] and checked["sealerCount"] == 4

    def tampered(edit):
        r = json.loads(json.dumps(receipt))
        edit(r)
        return r

    with pytest.raises(ProofError, match="not the transaction asked for"):
        verify_receipt_proof(receipt, "0x" + "00" * 32, sealers, "sm")
    with pytest.raises(ProofError, match="is not in the receipt root of block 1"):
        verify_receipt_proof(tampered(lambda r: r.update(raw=_flip_status(r["raw"]))), h, sealers, "sm")
    strangers = [{"publicKey": "0x" + SUITE.generate_keypair()[1].hex()} for _ in range(4)]
    with pytest.raises(ProofError, match="does not verify against the 4 sealers given"):
        verify_receipt_proof(receipt, h, strangers, "sm")
    with pytest.raises(ProofError, match="the node's sealer list is malformed"):
        verify_receipt_proof(receipt, h, [{"publicKey": "0xzz"}], "sm")
    with pytest.raises(ProofError, match="does not verify"):
        verify_receipt_proof(tampered(lambda r: r["receiptProof"]["certificate"].update(raw=_drop_signature(r["receiptProof"]["certificate"]["raw"]))), h, sealers, "sm")
    with pytest.raises(ProofError, match="has no receiptProof"):
        verify_receipt_proof(await call("getTransactionReceipt", "g", "", h), h, sealers, "sm")
    with pytest.raises(ProofError, match="malformed proof"):
        verify_receipt_proof(tampered(lambda r: r["receiptProof"].update(proof="0x00")), h, sealers, "sm")


def _flip_status(raw_hex: str) -> str:
    """The same receipt with another status: a different leaf, so the proof must fail."""
    from chainnode.protocol.types import Receipt

    r = Receipt.decode(bytes.fromhex(raw_hex[2:]))
    return "0x" + Receipt(r.tx_hash, 1 - r.status, r.gas_used, r.output, r.contract_address, r.events, r.error_type, r.error_message).encode().hex()


def _drop_signature(raw_hex: str) -> str:
    """The certificate with one signature fewer: below the 2f+1 quorum of 4 sealers."""
    from chainnode.protocol.types import CommitCertificate

    c = CommitCertificate.decode(bytes.fromhex(raw_hex[2:]))
    return "0x" + CommitCertificate(c.height, c.block_hash, c.signatures[:2]).encode().hex()

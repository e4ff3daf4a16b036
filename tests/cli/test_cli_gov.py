"""`chainnode gov` argument parsing and validation (no node: every error here is found before
anything is signed or sent), and the node-unreachable message."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from chainnode.cli.gov import CLI_USAGE, parse_proposal
from chainnode.cli.main import main
from chainnode.security.certs import read_cert_file
from chainnode.system.governance import KINDS, check_params
from tests.helpers import free_ports

PUB = bytes([4]) + bytes(range(64))
ADDR = bytes(range(20))
ADDR2 = bytes([0xAB]) * 20
REVOCATION_ID = bytes(range(32)) + b"\x01\x02"  # issuer key hash, serial 0x0102


def run(*args: str, key: bool = True):
    """The command with a (never read) key and an RPC URL nobody listens on."""
    extra = ["--key", "nokey.key"] if key else []
    return CliRunner().invoke(main, ["gov", *args, *extra], env={"CHAINNODE_RPC": "http://127.0.0.1:9", "CHAINNODE_PASSWORD": "x"})


@pytest.mark.parametrize("kind, args, opts, params", [
    ("add-sealer", [PUB.hex(), "12D3Koo"], {}, [PUB, "12D3Koo"]),
    ("add_sealer", ["0x" + PUB.hex(), "12D3Koo", "3"], {}, [PUB, "12D3Koo", 3]),
    ("add-observer", [PUB.hex(), "12D3Koo"], {"addrs": ("/ip4/10.0.0.5/tcp/30300",)}, [PUB, "12D3Koo", 1, ["/ip4/10.0.0.5/tcp/30300"]]),
    ("Add-Observer", [PUB.hex(), "p", "2"], {"addrs": ("/ip4/1.2.3.4/tcp/1", "/dns4/n.example/tcp/2")}, [PUB, "p", 2, ["/ip4/1.2.3.4/tcp/1", "/dns4/n.example/tcp/2"]]),
    ("remove-node", [PUB.hex()], {}, [PUB]),
    ("set-weight", [PUB.hex(), "5"], {}, [PUB, 5]),
    ("set-config", ["tx_count_limit", "500"], {}, ["tx_count_limit", 500]),
    ("set-config", ["tx_gas_limit", "50_000_000"], {}, ["tx_gas_limit", 50_000_000]),
    ("set-governor", ["0x" + ADDR.hex(), "0"], {}, [ADDR, 0]),
    ("set-rates", ["67", "67"], {}, [67, 67]),
    ("set-deploy-open", ["false"], {}, [False]),
    ("set-deploy-open", ["TRUE"], {}, [True]),
    ("grant-deploy", [ADDR.hex()], {}, [ADDR]),
    ("revoke-deploy", [ADDR.hex()], {}, [ADDR]),
    ("freeze-account", [ADDR.hex()], {}, [ADDR]),
    ("freeze-account", [ADDR.hex(), "lost", "key"], {}, [ADDR, "lost key"]),
    ("unfreeze-account", [ADDR.hex()], {}, [ADDR]),
    ("set-method-acl", [ADDR.hex(), "withdraw", "allow", f"0x{ADDR2.hex()},0x{ADDR.hex()}"], {}, [ADDR, "withdraw", "allow", [ADDR2, ADDR]]),
    ("set-method-acl", [ADDR.hex(), "withdraw", "DENY", ADDR2.hex(), ADDR.hex() + ","], {}, [ADDR, "withdraw", "deny", [ADDR2, ADDR]]),
    ("set-method-acl", [ADDR.hex(), "withdraw", "allow"], {}, [ADDR, "withdraw", "allow", []]),
    ("clear-method-acl", [ADDR.hex(), "withdraw"], {}, [ADDR, "withdraw"]),
    ("revoke-cert", [REVOCATION_ID.hex()], {}, [[REVOCATION_ID]]),
    ("register-name", ["counter", ADDR.hex()], {}, ["counter", ADDR]),
    ("register-name", ["counter", "null"], {}, ["counter", None]),
])
def test_arguments_are_typed_per_kind_and_pass_the_chains_checks(kind, args, opts, params):
    k, got = parse_proposal(kind, tuple(args), **opts)
    assert k == kind.lower().replace("-", "_") and got == params
    check_params(k, got)  # what the committee contract runs first


def test_every_kind_has_a_usage():
    assert set(CLI_USAGE) == set(KINDS)
    out = run("kinds", "--json", key=False)
    assert out.exit_code == 0 and set(json.loads(out.output)) == set(KINDS)
    text = run("kinds", key=False).output
    assert "set-config" in text and "NAME VALUE" in text and "register-name" in text


@pytest.mark.parametrize("args, message", [
    (["frobnicate", "1"], "unknown proposal kind 'frobnicate'; the kinds are:"),
    (["set-config", "tx_count_limit"], "set_config takes 2 argument(s); got 1: tx_count_limit\nusage: chainnode gov propose set-config NAME VALUE"),
    (["set-config", "tx_count_limit", "5", "6"], "set_config takes 2 argument(s); got 3"),
    (["set-config", "tx_count_limit", "lots"], "argument 2 (VALUE) of set_config: must be an integer; got 'lots'"),
    (["set-config", "tx_count_limit", "0"], "set_config: tx_count_limit must be an integer in [1, 10000], got 0 (checked here, nothing was sent"),
    (["set-config", "leader_period", "3"], "leader_period is fixed in the genesis file"),
    (["set-config", "tx_limit", "3"], "unknown system config 'tx_limit'; known:"),
    (["add-sealer", "0xzz", "peer"], "argument 1 (CONSENSUS_PUB) of add_sealer: must be hex"),
    (["add-sealer", "abcd", "peer"], "must be 32 bytes (64 hex digits) or 65 bytes (130 hex digits), 0x optional"),
    (["add-sealer", PUB.hex()], "add_sealer takes 2 to 3 argument(s); got 1"),
    (["add-sealer", PUB.hex(), "p", "heavy"], "argument 3 (WEIGHT) of add_sealer: must be an integer; got 'heavy'"),
    (["set-weight", PUB.hex(), "0"], "weight must be an integer in [1, 1000000], got 0"),
    (["set-governor", "0x1234", "1"], "argument 1 (ADDRESS) of set_governor: must be 20 bytes (40 hex digits), 0x optional; got '0x1234'"),
    (["set-rates", "0", "50"], "participation rate (percent) must be an integer in [1, 100], got 0"),
    (["set-deploy-open", "maybe"], "argument 1 (true|false) of set_deploy_open: must be true or false; got 'maybe'"),
    (["freeze-account"], "freeze_account takes 1 argument(s); got 0"),
    (["set-method-acl", ADDR.hex(), "get"], "set_method_acl takes 3 argument(s); got 2"),
    (["set-method-acl", ADDR.hex(), "get", "block"], "argument 3 (MODE) of set_method_acl: must be allow"),
    (["set-method-acl", ADDR.hex(), "get", "allow", "0x12,0x34"], "argument 4 (ADDRESSES) of set_method_acl: '0x12' is not an address"),
    (["revoke-cert", "00ff"], "argument 1 (REVOCATION_ID) of revoke_cert: must be 33 bytes (66 hex digits) or"),
    (["revoke-cert", "--crl", "x.crl"], "--crl needs --issuer"),
    (["set-config", "tx_count_limit", "5", "--crl", "x.crl"], "--crl and --issuer apply to revoke_cert; not to set_config"),
    (["register-name", "bad name", ADDR.hex()], "a name uses ASCII letters, digits"),
    (["register-name", "counter", "nowhere"], "argument 2 (ADDRESS) of register_name: must be hex"),
    (["set-config", "tx_count_limit", "5", "--cert", "x.pem"], "--cert applies to add_sealer, add_observer, remove_node, set_weight, set_addrs, revoke_cert; not to set_config"),
    (["remove-node", PUB.hex(), "--addr", "/ip4/1.2.3.4/tcp/1"], "--addr applies to add_sealer, add_observer and set_addrs; not to remove_node"),
    (["add-sealer", PUB.hex(), "12D3KooWx", "--addr", "10.0.0.1"], "is neither a multiaddr nor host:port"),
    (["add-sealer", PUB.hex(), "12D3KooWx", "--addr", "/ip4/10.0.0.1/tcp/1/p2p/x"], "is not a dial address"),
    (["set-addrs", "--request", "r.json", "--addr", "10.0.0.1:5"], "--request carries the node's key"),
    (["add-sealer", "--request", "missing.json"], "missing.json"),
    (["set-config", "tx_count_limit", "5", "--request", "r.json"], "--request applies to add_sealer, add_observer, set_addrs; not to set_config"),
    (["set-config", "compatibility_version", "0.3"], "VALUE"),
    (["set-addrs"], "CONSENSUS_PUB"),
    (["add-observer", PUB.hex(), "p", "--addr", "10.0.0.5:99999"], "the TCP port must be 1 to 65535"),
    (["add-sealer", "--cert", "missing.chain"], "missing.chain"),
])
def test_propose_refuses_bad_arguments_before_sending(args, message):
    out = run("propose", *args)
    assert out.exit_code == 2, out.output
    assert message in out.output, out.output
    assert "Traceback" not in out.output and out.exception is None or isinstance(out.exception, SystemExit)


def test_unknown_kind_lists_every_kind_with_its_arguments():
    out = run("propose", "set-confg", "a", "1")
    assert out.exit_code == 2
    for kind in KINDS:
        assert kind.replace("_", "-") in out.output


@pytest.mark.parametrize("args, message", [
    (["vote", "first", "yes"], "Invalid value for ID: must be a proposal id (1, 2, ...; `chainnode gov list` shows them); got 'first'"),
    (["vote", "0", "yes"], "must be a proposal id"),
    (["vote", "1", "maybe"], "'maybe' is not one of 'yes', 'no'"),
    (["vote", "1"], "Missing argument 'yes|no'"),
    (["revoke", "-"], "must be a proposal id"),
    (["acl", "set", "0x12", "get", "allow"], "argument 1 (CONTRACT) of set_method_acl: must be 20 bytes"),
    (["acl", "set", ADDR.hex(), "get", "permit"], "'permit' is not one of 'allow', 'deny'"),
    (["acl", "set", ADDR.hex(), "get", "allow", "0xnope"], "'0xnope' is not an address"),
    (["acl", "clear", "nope", "get"], "Invalid value for CONTRACT: must be an address (0x + 40 hex digits); got 'nope'"),
])
def test_other_commands_check_their_arguments(args, message):
    out = run(*args)
    assert out.exit_code == 2 and message in out.output, out.output


@pytest.mark.parametrize("args", [["show", "x"], ["account", "0x12"], ["acl", "show", "zz", "get"]])
def test_read_commands_check_their_arguments(args):
    out = run(*args, key=False)
    assert out.exit_code == 2 and "Invalid value for" in out.output, out.output


def test_a_missing_key_names_the_file(tmp_path):
    out = CliRunner().invoke(main, ["gov", "propose", "set-config", "tx_count_limit", "5", "--key", str(tmp_path / "gov.key"), "--password-file", str(tmp_path / "pw")])
    assert out.exit_code == 1 and "cannot read password file" in out.output


@pytest.mark.parametrize("args", [["list"], ["show", "1"], ["committee"], ["account", "0x" + ADDR.hex()], ["acl", "show", ADDR.hex(), "get"]])
def test_node_unreachable_says_which_url_and_how_to_start_one(args):
    url = f"http://127.0.0.1:{free_ports(1)[0]}"
    out = CliRunner().invoke(main, ["gov", *args, "--rpc", url])
    assert out.exit_code == 1, out.output
    assert f"cannot reach the node at {url}/" in out.output and "is it running" in out.output and "devnet up" in out.output
    assert "`chainnode start --config node.toml`" in out.output and "`devnet up`" in out.output
    assert "Traceback" not in out.output


def test_a_bad_rpc_url(tmp_path):
    out = CliRunner().invoke(main, ["gov", "list", "--rpc", "127.0.0.1:8545"])
    assert out.exit_code == 1 and "--url must be chainnode://HOST:PORT" in out.output


# ---- --cert / --crl: the node's key and peer id (or what to revoke) from certificate files -------


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    from chainnode.crypto import get_suite
    from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
    from devnet.layout import create_pki, issue_node_certificate

    out = tmp_path_factory.mktemp("pki")
    create_pki(out, "sm", scrypt_n=1024)
    suite = get_suite("sm")
    priv, pub = suite.generate_keypair()
    peer_id = peer_id_from_seed(host_seed_from_consensus_key(suite, priv))
    chain = issue_node_certificate(out, pub, peer_id, name="node4", role="sealer", out=out / "node4.pem")
    return out, chain


def test_cert_supplies_the_key_and_peer_id(pki):
    out, chain = pki
    path = str(out / "node4.pem")
    leaf = chain.leaf
    assert parse_proposal("add-sealer", (), cert=path) == ("add_sealer", [leaf.public_key, leaf.peer_id])
    assert parse_proposal("add-observer", ("2",), cert=path, addrs=("/ip4/10.0.0.5/tcp/30300",)) == (
        "add_observer", [leaf.public_key, leaf.peer_id, 2, ["/ip4/10.0.0.5/tcp/30300"]])
    assert parse_proposal("remove-node", (), cert=path) == ("remove_node", [leaf.public_key])
    assert parse_proposal("set-weight", ("4",), cert=path) == ("set_weight", [leaf.public_key, 4])
    rid = leaf.revocation_id(chain.agency)
    assert parse_proposal("revoke-cert", (), cert=path) == ("revoke_cert", [[rid]])
    assert parse_proposal("revoke-cert", (rid.hex(), "0x" + rid.hex()[:-2])) == ("revoke_cert", [[rid, rid[:-1]]])
    for kind, params in [("add_sealer", [leaf.public_key, leaf.peer_id]), ("revoke_cert", [[rid]])]:
        check_params(kind, params)


def test_cert_errors_name_the_file(pki, tmp_path):
    out, _ = pki
    # a CA certificate is not a node's chain
    got = run("propose", "add-sealer", "--cert", str(out / "ca" / "ca.pem"))
    assert got.exit_code == 2 and "starts with a ca certificate 'Devnet CA'" in got.output and "not a node certificate" in got.output
    junk = tmp_path / "junk.pem"
    junk.write_text("{}")
    got = run("propose", "add-sealer", "--cert", str(junk))
    assert got.exit_code == 2 and str(junk) in got.output and "--cert" in got.output
    got = run("propose", "add-sealer", PUB.hex(), "--cert", str(out / "node4.pem"))
    assert got.exit_code == 2 and "argument 1 (WEIGHT) of add_sealer: must be an integer" in got.output  # with --cert, only WEIGHT
    got = run("propose", "remove-node", PUB.hex(), "--cert", str(out / "node4.pem"))
    assert got.exit_code == 2 and "remove_node takes 0 argument(s); got 1" in got.output
    # an agency is revoked by a file holding it and its issuer; a lone certificate does not say who issued it
    agency, ca = read_cert_file(out / "agency" / "agency.pem"), read_cert_file(out / "ca" / "ca.pem")
    both = tmp_path / "agency-chain.pem"
    both.write_bytes((out / "agency" / "agency.pem").read_bytes() + (out / "ca" / "ca.pem").read_bytes())
    assert parse_proposal("revoke-cert", (), cert=str(both)) == ("revoke_cert", [[agency.revocation_id(ca)]])
    got = run("propose", "revoke-cert", "--cert", str(out / "agency" / "agency.pem"))
    assert got.exit_code == 2 and "holds one certificate; a revocation names its issuer too" in got.output


def test_a_crl_names_what_to_revoke(pki, tmp_path):
    """A standard X.509 CRL, signed by the agency, is the input of a revoke_cert proposal."""
    from chainnode.security.certs import cert_pem, crl_to_pem, issue_crl
    from chainnode.security.keyfile import load_key
    from devnet.layout import DEVNET_PASSWORD

    out, chain = pki
    key = load_key(out / "agency" / "agency.key", DEVNET_PASSWORD)
    crl = issue_crl(issuer=chain.agency.x509, issuer_priv=key.private_key, serials=frozenset({chain.leaf.serial, 7}), number=1,
                    this_update_ms=chain.leaf.not_before_ms)
    (tmp_path / "revoked.crl").write_bytes(crl_to_pem(crl))
    (tmp_path / "agency.pem").write_bytes(cert_pem(chain.agency))
    kind, params = parse_proposal("revoke-cert", (), crl=str(tmp_path / "revoked.crl"), issuer=str(tmp_path / "agency.pem"))
    assert kind == "revoke_cert" and set(params[0]) == {chain.leaf.revocation_id(chain.agency), chain.leaf.revocation_id(chain.agency)[:32] + b"\x07"}
    check_params(kind, params)
    # Signed by someone else: refused before anything is sent.
    (tmp_path / "ca.pem").write_bytes((out / "ca" / "ca.pem").read_bytes())
    got = run("propose", "revoke-cert", "--crl", str(tmp_path / "revoked.crl"), "--issuer", str(tmp_path / "ca.pem"))
    assert got.exit_code == 2 and "the revocation list was issued by" in got.output


def test_dial_addresses_are_written_canonically_and_a_version_is_a_number():
    """host:port and DNS names become the multiaddr the chain keeps; a compatibility version
    is proposed as "0.3.0" and sent as the number system config holds."""
    kind, params = parse_proposal("add-observer", (PUB.hex(), "p"), addrs=("10.0.0.5:30300", "Node5.Bank.example:30300"))
    assert params[3] == ["/ip4/10.0.0.5/tcp/30300", "/dns/node5.bank.example/tcp/30300"]
    assert parse_proposal("set-addrs", (PUB.hex(),), addrs=("[fd00::5]:1",)) == ("set_addrs", [PUB, ["/ip6/fd00::5/tcp/1"]])
    assert parse_proposal("set-config", ("compatibility_version", "0.3.0")) == ("set_config", ["compatibility_version", 3000])

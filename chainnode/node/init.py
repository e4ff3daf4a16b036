"""`chainnode init`: turn a genesis file and a key file into a ready data directory."""

from __future__ import annotations

import ipaddress
import shutil
from pathlib import Path

from chainnode.crypto import get_suite
from chainnode.node.config import DEFAULT_CHANNEL_LISTEN, render_config
from chainnode.protocol.dialaddr import DialAddrError, parse_dial_addr, split_dial_addr
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.security.keyfile import KeyFileError, read_key_file
from chainnode.store.ledger import BLOCK_HISTORY_BLOCKS_DEFAULT, STATE_HISTORY_BLOCKS_DEFAULT, Ledger
from chainnode.store.leveldb import StorageError
from chainnode.system.genesis import GenesisError, load_genesis

CONFIG_NAME = "node.toml"
GENESIS_NAME = "genesis.json"


class InitError(RuntimeError):
    pass


def open_chain_ledger(data_dir: Path, genesis, *, create: bool, state_history_blocks: int = STATE_HISTORY_BLOCKS_DEFAULT,
                      block_history_blocks: int = BLOCK_HISTORY_BLOCKS_DEFAULT) -> Ledger:
    """Open the ledger of `data_dir` and make sure it is this genesis's chain (committing
    block 0 into an empty one when `create`)."""
    suite = get_suite(genesis.suite)
    ledger = Ledger.open(data_dir, suite, create=create, state_history_blocks=state_history_blocks, block_history_blocks=block_history_blocks)
    try:
        # Making block 0 deploys the genesis contracts (most of a node's start-up time); a
        # ledger that records the digest of the content it was checked against skips that.
        digest = genesis.content_digest()
        if ledger.head_height < 0:
            if not create:
                raise InitError(f"{data_dir} has no chain yet; run `chainnode init` first")
            block, writes = genesis.block()
            ledger.commit_block(block, [], None, writes)
            ledger.set_genesis_source(digest)
        elif ledger.genesis_source != digest:
            if ledger.genesis_hash != genesis.hash():
                raise InitError(
                    f"{data_dir} holds another chain (genesis {ledger.genesis_hash.hex()[:16]}…, this genesis is "
                    f"{genesis.hash().hex()[:16]}…); use the genesis file this node was initialised with, or a new --data-dir"
                )
            ledger.set_genesis_source(digest)
    except BaseException:
        ledger.close()
        raise
    return ledger


def init_node(
    genesis_path: Path,
    key_path: Path,
    data_dir: Path,
    *,
    p2p_listen: str | None,
    rpc_listen: str,
    channel_listen: str = DEFAULT_CHANNEL_LISTEN,
    password_file: Path | None = None,
    cert_file: Path | None = None,
    name: str | None = None,
    member_required: bool = True,
    rpc_allow_remote: bool = False,
    advertise: tuple[str, ...] = (),
) -> dict:
    """Commit block 0 into `data_dir` and write its node.toml (if absent).

    `cert_file`: this node's certificate chain, written into node.toml and checked against
    the genesis CA (everything but the peer id, which needs the key's password; `chainnode
    start` checks that). `member_required=False` prepares a node that is not in the genesis
    (to be added by governance); it then needs `name`. `channel_listen` is the dApp channel
    port's host:port ([channel] listen; served only when the genesis has a CA). Without
    `p2p_listen` the node listens on all interfaces at the port of its first address in the
    genesis (that address may be a DNS name or a NAT's public address), or on that address
    itself when it is a loopback one (a chain on one machine). Files inside `data_dir` are
    named relative to it in node.toml, so the folder can be copied to another machine."""
    try:
        genesis = load_genesis(genesis_path)
        key_doc = read_key_file(key_path)
    except (GenesisError, KeyFileError) as exc:
        raise InitError(str(exc)) from None
    if key_doc.get("suite") != genesis.suite:
        raise InitError(f"{key_path} is a {key_doc.get('suite')} key but the chain uses the {genesis.suite} suite; generate one with `chainnode keygen --suite {genesis.suite}`")
    try:
        pub = parse_hex(key_doc.get("public_key"), what=f"the public_key of {key_path}")
    except HexError as exc:
        raise InitError(f"{exc}; is it a key file written by `chainnode keygen`?") from None
    node = next((n for n in genesis.nodes if n.entry.consensus_pub == pub), None)
    if node is None and member_required:
        raise InitError(
            f"the key {key_path} (address 0x{key_doc.get('address')}) is not a node of {genesis_path}; "
            "use this node's own key file, or, for a node the consortium adds by vote, run init with --join"
        )
    if node is None and not name:
        raise InitError("a node that is not in the genesis needs a name")
    node_name = name or node.name
    listen = p2p_listen or _default_listen(node.addrs if node is not None else [])
    if cert_file is not None:
        _check_cert_file(genesis, genesis_path, cert_file, key_path, pub)
    existed = (data_dir / "chain.db").exists()
    try:
        ledger = open_chain_ledger(data_dir, genesis, create=True)
    except StorageError as exc:
        raise InitError(str(exc)) from None
    ledger.close()
    genesis_copy = data_dir / GENESIS_NAME
    if genesis_copy.resolve() != genesis_path.resolve():
        shutil.copyfile(genesis_path, genesis_copy)
    config_path = data_dir / CONFIG_NAME
    if not config_path.exists():
        config_path.write_text(render_config(
            name=node_name,
            data_dir=".",
            genesis_file=GENESIS_NAME,
            key_file=_config_path(key_path, data_dir),
            p2p_listen=listen,
            rpc_listen=rpc_listen,
            channel_listen=channel_listen,
            password_file=_config_path(password_file, data_dir) if password_file else None,
            cert_file=_config_path(cert_file, data_dir) if cert_file else None,
            cert_required=bool(genesis.ca_certs),
            rpc_allow_remote=rpc_allow_remote,
            advertise=advertise,
        ))
    return {
        "created": not existed,
        "data_dir": str(data_dir),
        "config": str(config_path),
        "name": node_name,
        "role": node.entry.role if node is not None else None,
        "member": node is not None,
        "certificates_required": bool(genesis.ca_certs),
        "cert_file": str(cert_file.resolve()) if cert_file else None,
        "chain_id": genesis.chain_id,
        "group_id": genesis.group_id,
        "genesis_hash": genesis.hash().hex(),
    }


def _default_listen(addrs: list[str]) -> str:
    try:
        proto, host, port = split_dial_addr(parse_dial_addr(addrs[0])) if addrs else ("ip4", "0.0.0.0", 30300)
    except DialAddrError:
        return "/ip4/0.0.0.0/tcp/30300"
    if proto in ("ip4", "ip6") and ipaddress.ip_address(host).is_loopback:
        return f"/{proto}/{host}/tcp/{port}"
    return f"/ip4/0.0.0.0/tcp/{port}" if proto != "ip6" else f"/ip6/::/tcp/{port}"


def _config_path(path: Path, data_dir: Path) -> str:
    """`path` as node.toml names it: relative to the data directory when inside it."""
    path, base = path.resolve(), data_dir.resolve()
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def _check_cert_file(genesis, genesis_path: Path, cert_file: Path, key_path: Path, pub: bytes) -> None:
    """The chain file must certify this key under the genesis CA (peer id: at start)."""
    from chainnode.node.config import NodeConfig
    from chainnode.security.admission import Admission, AdmissionError

    if not genesis.ca_certs:
        raise InitError(f"{genesis_path} names no root CAs (ca_certs), so this chain uses no certificates; leave out the certificate ({cert_file})")
    config = NodeConfig(
        path=Path("node.toml"), name="", data_dir=Path("."), genesis_file=genesis_path, key_file=key_path, password_file=None,
        p2p_listen="", rpc_host="", rpc_port=0, cert_file=cert_file,
    )
    try:
        Admission.load(config, genesis, pub, None)
    except AdmissionError as exc:
        raise InitError(str(exc)) from None

"""Lay out a local network in one folder: keys, certificates, genesis, one initialised data
directory and config per node. Everything a tester needs to start the nodes as processes.

    out/
      genesis.json                 (with "ca_certs": the devnet CA)
      ca/ ca.key ca.pem            the consortium CA (`chainnode ca` layout, X.509 PEM)
      agency/ agency.key agency.pem ca.pem
      clients/ user.key user.pem auditor.key auditor.pem   client certificates for dApps
      node0/ node.key password.txt node.pem node.toml genesis.json chain.db/ ...
      node1/ ...

Every key file (CA and agency included) is encrypted with DEVNET_PASSWORD, so
`chainnode ca issue-node --agency-dir out/agency` and `chainnode ca revoke --ca-dir out/ca`
work on a devnet too. `certificates=False` lays out a network without a CA (and so without
channel ports: its dApps use the HTTP port).

Each node serves its channel port (chainnode://127.0.0.1:PORT) for dApps; the clients/
folder holds an account key and client certificate per role of CLIENT_ROLES, issued by the
devnet agency, to connect with (`devnet_client`).

`prepare_extra_node` adds a node folder that is NOT in the genesis (same genesis file, new
key, certificate from the same agency): what a governance test adds to a running chain.
"""

from __future__ import annotations

import json
import os
import random
import socket
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from chainnode.crypto import get_suite
from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed
from chainnode.node.init import init_node
from chainnode.protocol.hexstr import to_hex
from chainnode.security.certs import CertChain, Certificate, cert_pem, issue, read_cert_file, write_pem
from chainnode.security.keyfile import SCRYPT_N_DEFAULT, encrypt_key, load_key, write_key_file
from chainnode.system.genesis import load_genesis, new_chain_config
from contracts import library

DEVNET_PASSWORD = "devnet"  # local test networks only
CA_NAME = "Devnet CA"
AGENCY_NAME = "Devnet Agency"
CERT_DAYS = 365
DAY_MS = 86_400_000
CLOCK_SLACK_MS = 60_000  # certificates start a minute in the past: no "not yet valid" at once
CHAIN_FILE = "node.pem"
CLIENTS_DIR = "clients"
CLIENT_ROLES = ("user", "auditor")  # one client certificate each: a dApp that sends, one that only reads


@dataclass(frozen=True)
class NodeLayout:
    name: str
    role: str
    folder: Path
    config: Path
    rpc_url: str
    rpc_port: int
    p2p_port: int
    address: str
    # Defaults keep layout files written before these fields loadable (devnet/supervisor.py).
    consensus_pub: str = ""  # hex
    peer_id: str = ""
    cert_file: str = ""  # the node's chain file, "" without certificates
    revocation_id: str = ""  # hex: what a revoke_cert proposal names for its certificate (certs.Certificate.revocation_id)
    channel_port: int = 0  # the channel port for dApps; 0 without certificates
    channel_url: str = ""  # chainnode://127.0.0.1:PORT, "" without certificates

    @property
    def url(self) -> str:
        """Where a dApp connects: the channel port, or the HTTP port on a chain without a CA."""
        return self.channel_url or self.rpc_url


def _now_ms() -> int:
    return int(time.time() * 1000)


def create_pki(out_dir: Path, suite: str, *, scrypt_n: int = SCRYPT_N_DEFAULT) -> Certificate:
    """out_dir/ca and out_dir/agency, laid out as `chainnode ca init` / `issue-agency` do."""
    ca_dir, agency_dir = Path(out_dir) / "ca", Path(out_dir) / "agency"
    ca_dir.mkdir(parents=True, exist_ok=True)
    agency_dir.mkdir(parents=True, exist_ok=True)
    ca_key = _new_key_file(ca_dir / "ca.key", suite, scrypt_n)
    return certify_pki(out_dir, suite, ca_key, _new_key_file(agency_dir / "agency.key", suite, scrypt_n)[1])


def certify_pki(out_dir: Path, suite: str, ca_key: tuple[bytes, bytes], agency_pub: bytes) -> Certificate:
    """ca/ca.pem and agency/{agency,ca}.pem for the CA's (private, public) key and the
    agency's public key; returns the CA."""
    not_before = _now_ms() - CLOCK_SLACK_MS
    not_after = not_before + 10 * CERT_DAYS * DAY_MS
    ca_dir, agency_dir = Path(out_dir) / "ca", Path(out_dir) / "agency"
    ca_priv, ca_pub = ca_key
    ca = issue(kind="ca", subject=CA_NAME, organisation=CA_NAME, role="", public_key=ca_pub, peer_id="", suite=suite,
               not_before_ms=not_before, not_after_ms=not_after, issuer_priv=ca_priv, issuer=None)
    agency = issue(kind="agency", subject=AGENCY_NAME, organisation=AGENCY_NAME, role="", public_key=agency_pub, peer_id="",
                   suite=suite, not_before_ms=not_before, not_after_ms=not_after, issuer_priv=ca_priv, issuer=ca)
    write_pem(ca_dir / "ca.pem", cert_pem(ca), overwrite=True)
    write_pem(agency_dir / "agency.pem", cert_pem(agency), overwrite=True)
    write_pem(agency_dir / "ca.pem", cert_pem(ca), overwrite=True)
    return ca


def _issue_leaf(out_dir: Path, public_key: bytes, *, kind: str, name: str, role: str, peer_id: str, out: Path,
                not_before_ms: int | None, not_after_ms: int | None) -> CertChain:
    """Certify a key with the devnet agency (out_dir/agency), as `chainnode ca issue-node` /
    `issue-client` do, and write the chain file [leaf, agency, CA] to `out`. The window
    defaults to a year from a minute ago (tests pass others)."""
    agency_dir = Path(out_dir) / "agency"
    ca = read_cert_file(agency_dir / "ca.pem")
    agency = read_cert_file(agency_dir / "agency.pem")
    agency_key = load_key(agency_dir / "agency.key", DEVNET_PASSWORD)
    nb = not_before_ms if not_before_ms is not None else _now_ms() - CLOCK_SLACK_MS
    na = not_after_ms if not_after_ms is not None else min(nb + CERT_DAYS * DAY_MS, agency.not_after_ms)
    leaf = issue(kind=kind, subject=name, organisation=agency.organisation, role=role, public_key=public_key, peer_id=peer_id,
                 suite=agency.suite, not_before_ms=nb, not_after_ms=na, issuer_priv=agency_key.private_key, issuer=agency)
    chain = CertChain(leaf, agency, ca)
    write_pem(out, chain.to_pem(), overwrite=True)
    return chain


def issue_node_certificate(out_dir: Path, public_key: bytes, peer_id: str, *, name: str, role: str, out: Path,
                           not_before_ms: int | None = None, not_after_ms: int | None = None) -> CertChain:
    """A node's chain file from the devnet agency (see _issue_leaf)."""
    return _issue_leaf(out_dir, public_key, kind="node", name=name, role=role, peer_id=peer_id, out=out,
                       not_before_ms=not_before_ms, not_after_ms=not_after_ms)


# Where free ports are looked for: below the kernel's ephemeral range. A port the kernel
# hands out from that range (bind to 0) and that is released until the node binds it may
# meanwhile become the source port of any process's outgoing connection, and the node then
# exits with "port ... is in use" (seen once in a test suite run). The kernel never picks a
# source port outside the range.
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
PICKED_PORTS_MIN = 10_000
# Devnets run side by side (the test suite's parallel workers) each pick from their own
# range, "LOW-HIGH" (HIGH excluded), so two of them never pick the same port at once.
PORT_RANGE_ENV = "DEVNET_PORT_RANGE"


def picking_range() -> tuple[int, int]:
    """(low, high): the ports kernel_ports picks from, high excluded."""
    text = os.environ.get(PORT_RANGE_ENV)
    if text:
        low, _, high = text.partition("-")
        try:
            low_port, high_port = int(low), int(high)
        except ValueError:
            low_port = high_port = 0
        if not 1024 <= low_port < high_port <= 65536:
            raise ValueError(f"{PORT_RANGE_ENV} must be LOW-HIGH with 1024 <= LOW < HIGH <= 65536, like 20000-30000, not {text!r}")
        return low_port, high_port
    try:
        return PICKED_PORTS_MIN, int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return PICKED_PORTS_MIN, PICKED_PORTS_MIN


def kernel_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports: random ones between PICKED_PORTS_MIN and the
    kernel's ephemeral range (or in $DEVNET_PORT_RANGE) that bind now, or, if too few do (or
    the range is not known), ones the kernel chooses (bound, then released)."""
    candidates = list(range(*picking_range()))
    random.shuffle(candidates)
    ports: list[int] = []
    for port in candidates[:50 * count]:
        if len(ports) == count:
            break
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
    if len(ports) == count:
        return ports
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def issue_client_certificate(out_dir: Path, public_key: bytes, *, name: str, role: str, out: Path,
                             not_before_ms: int | None = None, not_after_ms: int | None = None) -> CertChain:
    """A dApp's chain file from the devnet agency (see _issue_leaf)."""
    return _issue_leaf(out_dir, public_key, kind="client", name=name, role=role, peer_id="", out=out,
                       not_before_ms=not_before_ms, not_after_ms=not_after_ms)


def create_clients(out_dir: Path, suite: str, *, scrypt_n: int = SCRYPT_N_DEFAULT) -> dict[str, CertChain]:
    """out_dir/clients/<role>.key and <role>.pem for each of CLIENT_ROLES; role -> chain."""
    folder = Path(out_dir) / CLIENTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    chains = {}
    for role in CLIENT_ROLES:
        _, pub = _new_key_file(folder / f"{role}.key", suite, scrypt_n)
        chains[role] = issue_client_certificate(out_dir, pub, name=f"devnet-{role}", role=role, out=folder / f"{role}.pem")
    return chains


def client_files(out_dir: Path, role: str = "user") -> tuple[Path, Path]:
    """(key file, chain file) of the devnet's client certificate for `role`."""
    folder = Path(out_dir) / CLIENTS_DIR
    return folder / f"{role}.key", folder / f"{role}.pem"


@lru_cache(maxsize=16)
def _client_credentials(key: Path, chain: Path) -> Any:
    # Decrypting a key file costs a scrypt run: once per process, not once per connection.
    from chainnode.client import Account, ClientCredentials

    return ClientCredentials.load(Account.load(key, DEVNET_PASSWORD), cert=chain)


def devnet_client(out_dir: Path, urls: str | list[str], *, role: str = "user", **kwargs: Any):
    """A chainnode.client.Client for `urls` that connects as the devnet's `role` client (its
    key and certificate, unless `key`/`cert` are given); an http URL needs neither, and gets none."""
    from chainnode.client import Client

    listed = [urls] if isinstance(urls, str) else list(urls)
    if any(u.startswith("chainnode://") for u in listed) and "key" not in kwargs and "cert" not in kwargs:
        key, chain = client_files(out_dir, role)
        credentials = _client_credentials(Path(key).resolve(), Path(chain).resolve())
        kwargs = {"key": credentials.account, "cert": credentials.chain, **kwargs}
    return Client(urls, **kwargs)


def _new_key_file(path: Path, suite: str, scrypt_n: int) -> tuple[bytes, bytes]:
    """A new key pair, written encrypted with DEVNET_PASSWORD to `path`: (private, public)."""
    priv, pub = get_suite(suite).generate_keypair()
    write_key_file(path, encrypt_key(suite, priv, DEVNET_PASSWORD, scrypt_n=scrypt_n), overwrite=True)
    return priv, pub


def _new_node_key(folder: Path, suite: str, scrypt_n: int) -> tuple[bytes, bytes, str]:
    folder.mkdir(parents=True, exist_ok=True)
    priv, pub = _new_key_file(folder / "node.key", suite, scrypt_n)
    (folder / "password.txt").write_text(DEVNET_PASSWORD + "\n")
    return priv, pub, peer_id_from_seed(host_seed_from_consensus_key(get_suite(suite), priv))


ACCOUNTS_DIR = "accounts"
# Role accounts of the business contracts every devnet deploys in block 0 (devnet demo).
ROLE_ACCOUNTS = ("central-bank", "regulator", "consortium-admin")


def create_accounts(out_dir: Path, suite: str, *, scrypt_n: int = SCRYPT_N_DEFAULT) -> dict[str, bytes]:
    """out_dir/accounts/<role>.key for each of ROLE_ACCOUNTS (password DEVNET_PASSWORD);
    returns role -> address."""
    s = get_suite(suite)
    folder = Path(out_dir) / ACCOUNTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    addresses = {}
    for role in ROLE_ACCOUNTS:
        _, pub = _new_key_file(folder / f"{role}.key", suite, scrypt_n)
        addresses[role] = s.address(pub)
    return addresses


def library_contracts(accounts: dict[str, bytes]) -> list[dict]:
    """The genesis "contracts" entries of the business contracts (contracts/library):
    payment(issuer=central bank, regulator), supply_chain and cross_border(admin, regulator)."""
    bank, regulator, admin = (to_hex(accounts[r]) for r in ROLE_ACCOUNTS)
    init = {"payment": [bank, regulator], "supply_chain": [admin, regulator], "cross_border": [admin, regulator]}
    return [{"name": name, "deployer": admin[2:], "init_args": init[name], "source": library.source(name)} for name in library.NAMES]


def create_network(
    out_dir: Path,
    *,
    sealers: int = 4,
    observers: int = 0,
    suite: str = "sm",
    p2p_port_base: int = 30300,
    rpc_port_base: int = 8545,
    channel_port_base: int = 20200,
    chain_id: str = "chain0",
    group_id: str = "group0",
    config: dict | None = None,
    scrypt_n: int = SCRYPT_N_DEFAULT,
    ports: tuple[list[int], ...] | None = None,
    certificates: bool = True,
    contracts: bool = True,
    extra_roots: tuple[Certificate, ...] = (),
) -> list[NodeLayout]:
    """`ports`, if given, is (p2p ports, rpc ports[, channel ports]), one per node, instead of
    base + index; without channel ports the kernel picks free ones. With `certificates` (the
    default) the genesis has a CA, every node a chain file and a channel port, and
    out_dir/clients the client certificates; `extra_roots` are root CAs the genesis trusts
    besides the devnet's (a member's own CA). With `contracts` (the default) block 0 deploys
    the business contracts and out_dir/accounts holds their role accounts."""
    s = get_suite(suite)
    count = sealers + observers
    if ports:
        p2p_ports, rpc_ports = ports[0], ports[1]
        channel_ports = ports[2] if len(ports) > 2 else kernel_ports(count)
    else:
        p2p_ports, rpc_ports = [p2p_port_base + i for i in range(count)], [rpc_port_base + i for i in range(count)]
        channel_ports = [channel_port_base + i for i in range(count)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ca = create_pki(out_dir, suite, scrypt_n=scrypt_n) if certificates else None
    entries, keys, chains = [], [], []
    for i in range(count):
        folder = out_dir / f"node{i}"
        priv, pub, peer_id = _new_node_key(folder, suite, scrypt_n)
        role = "sealer" if i < sealers else "observer"
        entries.append({
            "name": f"node{i}", "role": role, "consensus_pub": pub.hex(), "peer_id": peer_id,
            "addrs": [f"/ip4/127.0.0.1/tcp/{p2p_ports[i]}"],
        })
        keys.append((priv, pub))
        chains.append(issue_node_certificate(out_dir, pub, peer_id, name=f"node{i}", role=role, out=folder / CHAIN_FILE) if ca else None)
    genesis = {
        "format": "chainnode-genesis/1",
        "chain_id": chain_id,
        "group_id": group_id,
        "suite": suite,
        "timestamp_ms": _now_ms(),
        "nodes": entries,
        "committee": [{"address": s.address(pub).hex(), "weight": 1} for _, pub in keys[:sealers]],
        "governance": {"participation_rate_pct": 51, "win_rate_pct": 51},
        "config": new_chain_config(config),
    }
    if ca is not None:
        genesis["ca_certs"] = [ca.der.hex()] + [root.der.hex() for root in extra_roots]
    if contracts:
        genesis["contracts"] = library_contracts(create_accounts(out_dir, suite, scrypt_n=scrypt_n))
    if ca is not None:
        create_clients(out_dir, suite, scrypt_n=scrypt_n)
    genesis_path = out_dir / "genesis.json"
    genesis_path.write_text(json.dumps(genesis, indent=2) + "\n")
    layout = []
    for i, entry in enumerate(entries):
        folder = out_dir / entry["name"]
        cert_file = folder / CHAIN_FILE if ca is not None else None
        info = init_node(
            genesis_path, folder / "node.key", folder,
            p2p_listen=entry["addrs"][0], rpc_listen=f"127.0.0.1:{rpc_ports[i]}", channel_listen=f"127.0.0.1:{channel_ports[i]}",
            password_file=folder / "password.txt", cert_file=cert_file,
        )
        layout.append(NodeLayout(
            name=entry["name"], role=entry["role"], folder=folder, config=Path(info["config"]),
            rpc_url=f"http://127.0.0.1:{rpc_ports[i]}", rpc_port=rpc_ports[i], p2p_port=p2p_ports[i],
            address=s.address(keys[i][1]).hex(), consensus_pub=entry["consensus_pub"], peer_id=entry["peer_id"],
            cert_file=str(cert_file.resolve()) if cert_file else "",
            revocation_id=chains[i].leaf.revocation_id(chains[i].agency).hex() if chains[i] else "",
            channel_port=channel_ports[i] if ca is not None else 0,
            channel_url=f"chainnode://127.0.0.1:{channel_ports[i]}" if ca is not None else "",
        ))
    return layout


def prepare_extra_node(
    out_dir: Path, name: str, *, p2p_port: int, rpc_port: int, channel_port: int | None = None, role: str = "observer",
    scrypt_n: int = SCRYPT_N_DEFAULT,
) -> NodeLayout:
    """A node folder out_dir/<name> for a node that is NOT in the genesis: new key, a
    certificate from the devnet agency (if the genesis has a CA), node.toml on the given
    ports and a data directory holding block 0. It can start only once governance has added
    its consensus key and peer id (NodeLayout.consensus_pub / .peer_id) to the chain."""
    out_dir = Path(out_dir)
    genesis_path = out_dir / "genesis.json"
    genesis = load_genesis(genesis_path)
    folder = out_dir / name
    if (folder / "node.toml").exists() or (folder / "chain.db").exists():
        raise FileExistsError(f"{folder} already holds a node; choose another name")
    if any(n.name == name for n in genesis.nodes):
        raise ValueError(f"{name!r} is already a node of {genesis_path}")
    priv, pub, peer_id = _new_node_key(folder, genesis.suite, scrypt_n)
    chain = None
    if genesis.ca_certs:
        chain = issue_node_certificate(out_dir, pub, peer_id, name=name, role=role, out=folder / CHAIN_FILE)
    channel_port = channel_port or kernel_ports(1)[0]
    info = init_node(
        genesis_path, folder / "node.key", folder,
        p2p_listen=f"/ip4/127.0.0.1/tcp/{p2p_port}", rpc_listen=f"127.0.0.1:{rpc_port}", channel_listen=f"127.0.0.1:{channel_port}",
        password_file=folder / "password.txt", cert_file=folder / CHAIN_FILE if chain else None, name=name, member_required=False,
    )
    return NodeLayout(
        name=name, role=role, folder=folder, config=Path(info["config"]),
        rpc_url=f"http://127.0.0.1:{rpc_port}", rpc_port=rpc_port, p2p_port=p2p_port,
        address=get_suite(genesis.suite).address(pub).hex(), consensus_pub=pub.hex(), peer_id=peer_id,
        cert_file=str((folder / CHAIN_FILE).resolve()) if chain else "", revocation_id=chain.leaf.revocation_id(chain.agency).hex() if chain else "",
        channel_port=channel_port if chain else 0, channel_url=f"chainnode://127.0.0.1:{channel_port}" if chain else "",
    )

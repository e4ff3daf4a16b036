"""`chainnode genesis lab`: a whole consortium for a test lab in one command, as FISCO BCOS's
build_chain.sh -l "10.0.0.1:2,10.0.0.2:2" lays one out: one folder per host to copy to that
host, each with its nodes' keys, certificates, initialised data directories, configs and a
start script.

It runs the ceremony's own steps (chainnode/node/ceremony.py) in one process: a lab root CA
and agency, one key and request per node, the agency signing each CSR, `build_genesis`,
then `init_node` for each node. So what a lab runs is what a consortium's members make by
hand, without the separation of machines; a production consortium uses the steps one by
one (docs/operations.md, "Deploying a consortium").

    out/
      genesis.json  lab.json  password.txt
      ca/ ca.key ca.pem              the lab's root CA (`chainnode ca` layout)
      agency/ agency.key agency.pem ca.pem
      accounts/ governor.key         the committee's one governor
      clients/ user.key user.pem governor.pem   client certificates for the channel port
      <host>/ start.sh stop.sh
      <host>/node<i>/ node.key password.txt node.pem node.request.json node.toml genesis.json chain.db/

Every key is encrypted with one random password, written to password.txt (and into each
node folder, so a host folder works on its own wherever it is copied). Lab use only: a consortium's members each
keep their own.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from chainnode.crypto import get_suite
from chainnode.node.ceremony import CeremonyError, build_genesis, make_request, write_request
from chainnode.node.init import init_node
from chainnode.protocol.dialaddr import DialAddrError, parse_dial_addr
from chainnode.security.certs import CertChain, Certificate, cert_pem, issue, write_pem
from chainnode.security.keyfile import SCRYPT_N_DEFAULT, KeyPair, encrypt_key, write_key_file
from chainnode.store.files import write_atomic

LAB_CA = "Lab CA"
LAB_AGENCY = "Lab Agency"
DAY_MS = 86_400_000
CERT_DAYS = 365
CLOCK_SLACK_MS = 60_000  # certificates start a minute in the past: hosts' clocks differ a little
HOSTS_MAX = 64
NODES_PER_HOST_MAX = 16

START_SCRIPT = """#!/bin/sh
# Start the chainnode nodes of {host} in the background (written by `chainnode genesis lab`).
# Each node logs to <node>/node.log; its pid is in <node>/node.pid. Stop them with ./stop.sh.
# Set CHAINNODE to the chainnode command if it is not on PATH.
cd "$(dirname "$0")" || exit 1
for n in {nodes}; do
  if [ -f "$n/node.pid" ] && kill -0 "$(cat "$n/node.pid")" 2>/dev/null; then echo "$n is running"; continue; fi
  nohup "${{CHAINNODE:-chainnode}}" start --config "$n/node.toml" >>"$n/node.log" 2>&1 &
  echo $! > "$n/node.pid"
  echo "started $n (pid $!, log $n/node.log)"
done
"""

STOP_SCRIPT = """#!/bin/sh
# Stop the chainnode nodes of {host} (SIGTERM: each finishes its block write and exits 0).
cd "$(dirname "$0")" || exit 1
for n in {nodes}; do
  [ -f "$n/node.pid" ] || continue
  pid=$(cat "$n/node.pid")
  if kill -TERM "$pid" 2>/dev/null; then
    while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
    echo "stopped $n"
  fi
  rm -f "$n/node.pid"
done
"""


class LabError(ValueError):
    pass


@dataclass(frozen=True)
class LabHost:
    host: str  # an IP address or a DNS name
    nodes: int


def parse_hosts(text: str) -> list[LabHost]:
    """"10.0.0.1:2,10.0.0.2:2" -> two hosts with two nodes each (":N" defaults to 1)."""
    hosts = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            raise LabError(f"--hosts {text!r}: an empty entry; write host:count, comma-separated, like 10.0.0.1:2,10.0.0.2:2")
        if item.startswith("["):  # [fd00::1]:2
            host, _, rest = item[1:].partition("]")
            count = rest[1:] if rest.startswith(":") else "" if rest else "1"
        elif ":" in item:
            host, _, count = item.rpartition(":")
        else:
            host, count = item, "1"
        if not count.isdigit() or not 1 <= int(count) <= NODES_PER_HOST_MAX:
            raise LabError(f"--hosts: {item!r}: the node count must be 1 to {NODES_PER_HOST_MAX}")
        try:
            parse_dial_addr(f"[{host}]:1" if ":" in host else f"{host}:1")
        except DialAddrError:
            raise LabError(f"--hosts: {host!r} is neither an IP address nor a DNS name") from None
        hosts.append(LabHost(host, int(count)))
    if not 1 <= len(hosts) <= HOSTS_MAX or len({h.host for h in hosts}) != len(hosts):
        raise LabError(f"--hosts: 1 to {HOSTS_MAX} distinct hosts")
    return hosts


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _new_key(path: Path, suite: str, password: str, scrypt_n: int) -> KeyPair:
    priv, pub = get_suite(suite).generate_keypair()
    write_key_file(path, encrypt_key(suite, priv, password, scrypt_n=scrypt_n))
    return KeyPair(suite, priv, pub, get_suite(suite).address(pub))


def make_lab(
    out_dir: Path,
    hosts: list[LabHost],
    *,
    suite: str = "sm",
    p2p_port: int = 30300,
    rpc_port: int = 8545,
    channel_port: int = 20200,
    rpc_remote: bool = False,
    chain_id: str = "chain0",
    group_id: str = "group0",
    config: dict[str, int] | None = None,
    scrypt_n: int = SCRYPT_N_DEFAULT,
) -> dict:
    """Lay out the lab in `out_dir` (which must be empty or new); returns lab.json's document.
    The k-th node of a host uses ports p2p_port + k, rpc_port + k and channel_port + k.
    `rpc_remote`: the plain HTTP port listens on the host's address (allow_remote), so a lab
    test can reach it from another machine; otherwise on loopback."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise LabError(f"{out_dir} is not empty; pass a new --out folder")
    if max(h.nodes for h in hosts) - 1 + max(p2p_port, rpc_port, channel_port) > 65535:
        raise LabError("the ports run past 65535: choose lower base ports")
    out_dir.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    write_atomic(out_dir / "password.txt", (password + "\n").encode(), mode=0o600)
    for sub in ("ca", "agency", "accounts", "clients"):
        (out_dir / sub).mkdir()
    ca, agency, agency_key = _make_pki(out_dir, suite, password, scrypt_n)
    now_ms = int(time.time() * 1000) - CLOCK_SLACK_MS
    window = {"not_before_ms": now_ms, "not_after_ms": now_ms + CERT_DAYS * DAY_MS}

    def certify(kind: str, name: str, role: str, public_key: bytes, peer_id: str, out: Path) -> CertChain:
        leaf = issue(kind=kind, subject=name, organisation=LAB_AGENCY, role=role, public_key=public_key, peer_id=peer_id, suite=suite,
                     issuer_priv=agency_key.private_key, issuer=agency, **window)
        chain = CertChain(leaf, agency, ca)
        write_pem(out, chain.to_pem())
        return chain

    governor = _new_key(out_dir / "accounts" / "governor.key", suite, password, scrypt_n)
    user = _new_key(out_dir / "clients" / "user.key", suite, password, scrypt_n)
    certify("client", "user", "user", user.public_key, "", out_dir / "clients" / "user.pem")
    certify("client", "governor", "governor", governor.public_key, "", out_dir / "clients" / "governor.pem")

    requests, chains, placed = [], [], []
    index = 0
    for host in hosts:
        host_dir = out_dir / host.host
        host_dir.mkdir()
        for k in range(host.nodes):
            name = f"node{index}"
            folder = host_dir / name
            folder.mkdir()
            write_atomic(folder / "password.txt", (password + "\n").encode(), mode=0o600)
            key = _new_key(folder / "node.key", suite, password, scrypt_n)
            try:
                request = make_request(key, name=name, organisation=LAB_AGENCY, role="sealer", addrs=[_host_port(host.host, p2p_port + k)])
            except CeremonyError as exc:
                raise LabError(str(exc)) from None
            write_request(folder / "node.request.json", request)
            chains.append(certify("node", name, request.role, request.consensus_pub, request.peer_id, folder / "node.pem"))
            requests.append(request)
            placed.append((host, k, folder, request))
            index += 1
    genesis = build_genesis(requests, chains=chains, roots=[ca], governors=[(governor.address, 1)],
                            chain_id=chain_id, group_id=group_id, config=config)
    genesis_path = out_dir / "genesis.json"
    write_atomic(genesis_path, (json.dumps(genesis, indent=2) + "\n").encode())
    doc_hosts = {h.host: {"host": h.host, "start": str(out_dir / h.host / "start.sh"), "stop": str(out_dir / h.host / "stop.sh"), "nodes": []}
                 for h in hosts}
    for host, k, folder, request in placed:
        rpc_host = host.host if rpc_remote else "127.0.0.1"
        init_node(
            genesis_path, folder / "node.key", folder,
            p2p_listen=f"/ip4/0.0.0.0/tcp/{p2p_port + k}" if ":" not in host.host else f"/ip6/::/tcp/{p2p_port + k}",
            rpc_listen=_host_port(rpc_host, rpc_port + k), channel_listen=_host_port("0.0.0.0", channel_port + k),
            password_file=folder / "password.txt", cert_file=folder / "node.pem", rpc_allow_remote=rpc_remote,
        )
        doc_hosts[host.host]["nodes"].append({
            "name": request.name, "folder": str(folder), "config": str(folder / "node.toml"), "p2p": request.addrs[0],
            "peer_id": request.peer_id, "consensus_pub": request.consensus_pub.hex(), "address": request.address.hex(),
            "rpc_url": f"http://{_host_port(rpc_host, rpc_port + k)}", "channel_url": f"chainnode://{_host_port(host.host, channel_port + k)}",
        })
    for host in hosts:
        names = " ".join(n["name"] for n in doc_hosts[host.host]["nodes"])
        for script, text in (("start.sh", START_SCRIPT), ("stop.sh", STOP_SCRIPT)):
            path = out_dir / host.host / script
            path.write_text(text.format(host=host.host, nodes=names))
            os.chmod(path, 0o755)
    doc = {
        "format": "chainnode-lab/1",
        "genesis": str(genesis_path),
        "password_file": str(out_dir / "password.txt"),
        "ca": str(out_dir / "ca" / "ca.pem"),
        "hosts": list(doc_hosts.values()),
        "governor": {"key": str(out_dir / "accounts" / "governor.key"), "address": governor.address.hex(),
                     "cert": str(out_dir / "clients" / "governor.pem")},
        "clients": {"user": {"key": str(out_dir / "clients" / "user.key"), "cert": str(out_dir / "clients" / "user.pem")},
                    "governor": {"key": str(out_dir / "accounts" / "governor.key"), "cert": str(out_dir / "clients" / "governor.pem")}},
    }
    write_atomic(out_dir / "lab.json", (json.dumps(doc, indent=2) + "\n").encode())
    return doc


def _make_pki(out_dir: Path, suite: str, password: str, scrypt_n: int) -> tuple[Certificate, Certificate, KeyPair]:
    """ca/ and agency/ as `chainnode ca init` and `ca issue-agency` lay them out."""
    ca_key = _new_key(out_dir / "ca" / "ca.key", suite, password, scrypt_n)
    agency_key = _new_key(out_dir / "agency" / "agency.key", suite, password, scrypt_n)
    now_ms = int(time.time() * 1000) - CLOCK_SLACK_MS
    window = {"not_before_ms": now_ms, "not_after_ms": now_ms + 10 * CERT_DAYS * DAY_MS}
    ca = issue(kind="ca", subject=LAB_CA, organisation=LAB_CA, role="", public_key=ca_key.public_key, peer_id="", suite=suite,
               issuer_priv=ca_key.private_key, issuer=None, **window)
    agency = issue(kind="agency", subject=LAB_AGENCY, organisation=LAB_AGENCY, role="", public_key=agency_key.public_key, peer_id="",
                   suite=suite, issuer_priv=ca_key.private_key, issuer=ca, **window)
    write_pem(out_dir / "ca" / "ca.pem", cert_pem(ca))
    write_pem(out_dir / "agency" / "agency.pem", cert_pem(agency))
    write_pem(out_dir / "agency" / "ca.pem", cert_pem(ca))
    return ca, agency, agency_key

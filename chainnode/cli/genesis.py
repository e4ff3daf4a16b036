"""`chainnode genesis`: the organiser's steps of the consortium ceremony (chainnode/node/ceremony.py).

    chainnode genesis new --member bank-a.request.json --member bank-b.request.json ... \\
        --cert bank-a.pem --cert bank-b.pem ... --ca ca.pem --governor 0x<address> --out genesis.json
    chainnode genesis lab --hosts 10.0.0.1:2,10.0.0.2:2 --out lab/
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from chainnode.cli.common import emit
from chainnode.protocol.hexstr import HexError, parse_hex
from chainnode.security.keyfile import SCRYPT_N_DEFAULT
from chainnode.store.files import write_atomic
from chainnode.system.state import CONFIG_SPEC, ConfigValueError, check_config_value

# chainnode.node.ceremony and .lab are imported by the commands that use them: they load
# libp2p (peer ids), which every other `chainnode` command would otherwise wait for.


@click.group("genesis")
def genesis_group() -> None:
    """Make a chain's genesis from its members' requests (or a whole test lab at once)."""


def _governor(text: str) -> tuple[bytes, int]:
    address, _, weight = text.partition(":")
    try:
        value = parse_hex(address, what="governor address", length=20)
    except HexError as exc:
        raise click.BadParameter(f"{exc}; a governor is an account address (`chainnode key show ACCOUNT.key`), optionally :weight") from None
    if weight and (not weight.isdigit() or not 1 <= int(weight) <= 1_000_000):
        raise click.BadParameter(f"{text!r}: the weight after ':' must be 1 to 1000000")
    return value, int(weight or 1)


def _config(items: tuple[str, ...]) -> dict[str, int]:
    config = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not value.lstrip("-").isdigit():
            raise click.BadParameter(f"{item!r}: write NAME=INTEGER, one of {', '.join(sorted(CONFIG_SPEC))}", param_hint="--config")
        try:
            config[name] = check_config_value(name, int(value))
        except ConfigValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--config") from None
    return config


@genesis_group.command("new")
@click.option("--member", "members", multiple=True, required=True, type=click.Path(dir_okay=False),
              help="A node's request file (`chainnode init --request`), once per node.")
@click.option("--cert", "certs", multiple=True, type=click.Path(dir_okay=False),
              help="A node's certificate chain from its agency (`chainnode ca sign-csr --request`); every node's, with --ca.")
@click.option("--ca", "cas", multiple=True, type=click.Path(dir_okay=False), help="A root CA certificate (PEM) the chain trusts; repeat for several.")
@click.option("--governor", "governors", multiple=True, required=True, help="A committee member's account address[:weight]; repeat.")
@click.option("--chain-id", default="chain0", show_default=True)
@click.option("--group-id", default="group0", show_default=True)
@click.option("--config", "config_items", multiple=True, help="A system config value NAME=INTEGER (e.g. tx_count_limit=2000); repeat.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write genesis.json.")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def genesis_new(members, certs, cas, governors, chain_id, group_id, config_items, out_path, force, as_json) -> None:
    """Check every member's request and certificate, and write the genesis they will all start from."""
    from chainnode.node.ceremony import CeremonyError, build_genesis, read_request
    from chainnode.security.certs import CertificateError, read_certs, read_chain_file
    from chainnode.system.genesis import parse_genesis

    out = Path(out_path)
    if out.exists() and not force:
        raise click.ClickException(f"{out} exists; pass --force to overwrite it, or another --out")
    try:
        requests = [read_request(Path(m)) for m in members]
        roots = [root for ca in cas for root in read_certs(ca)]
        chains = [read_chain_file(c) for c in certs]
        doc = build_genesis(requests, chains=chains, roots=roots, governors=[_governor(g) for g in governors], chain_id=chain_id,
                            group_id=group_id, config=_config(config_items))
    except (CeremonyError, CertificateError) as exc:
        raise click.ClickException(str(exc)) from None
    write_atomic(out, (json.dumps(doc, indent=2) + "\n").encode())
    genesis_hash = parse_genesis(doc).hash().hex()
    emit(as_json, {"genesis": str(out), "genesis_hash": genesis_hash, "nodes": doc["nodes"], "ca_certs": len(roots)},
         [f"wrote {out}: chain {chain_id}/{group_id}, {len(requests)} node(s), {len(roots)} root CA(s), genesis hash {genesis_hash}",
          *(f"  {n['role']:<8} {n['name']:<16} {', '.join(n['addrs']) or '(no dial address)'}" for n in doc["nodes"]),
          "next: send it to every member; each runs `chainnode init --genesis genesis.json --key node.key --cert node.pem --data-dir DIR`"])


@genesis_group.command("lab")
@click.option("--hosts", required=True, help="Hosts and node counts, comma-separated: 10.0.0.1:2,10.0.0.2:2 (IP addresses or DNS names).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="A new folder for the lab.")
@click.option("--suite", type=click.Choice(["sm", "ed25519"]), default="sm", show_default=True)
@click.option("--p2p-port", type=click.IntRange(1, 65535), default=30300, show_default=True, help="The first node's P2P port on each host.")
@click.option("--rpc-port", type=click.IntRange(1, 65535), default=8545, show_default=True)
@click.option("--channel-port", type=click.IntRange(1, 65535), default=20200, show_default=True)
@click.option("--rpc-remote", is_flag=True, help="The plain HTTP port listens on the host's address, not loopback (a closed lab only).")
@click.option("--chain-id", default="chain0", show_default=True)
@click.option("--config", "config_items", multiple=True, help="A system config value NAME=INTEGER; repeat.")
@click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True, help="scrypt cost (tests use a small one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def genesis_lab(hosts, out_dir, suite, p2p_port, rpc_port, channel_port, rpc_remote, chain_id, config_items, scrypt_n, as_json) -> None:
    """Lay out a whole test-lab consortium: one folder per host with keys, certificates, configs and start.sh."""
    from chainnode.node.ceremony import CeremonyError
    from chainnode.node.lab import LabError, make_lab, parse_hosts

    try:
        doc = make_lab(Path(out_dir), parse_hosts(hosts), suite=suite, p2p_port=p2p_port, rpc_port=rpc_port, channel_port=channel_port,
                       rpc_remote=rpc_remote, chain_id=chain_id, config=_config(config_items), scrypt_n=scrypt_n)
    except (LabError, CeremonyError) as exc:
        raise click.ClickException(str(exc)) from None
    lines = [f"wrote the lab to {out_dir} ({sum(len(h['nodes']) for h in doc['hosts'])} sealers on {len(doc['hosts'])} hosts)"]
    for h in doc["hosts"]:
        lines.append(f"  {h['host']}: {', '.join(n['name'] + ' ' + n['p2p'] for n in h['nodes'])}")
    lines += ["next: copy each host's folder to that host and run its start.sh there (docs/operations.md, \"A test lab\")",
              f"      open the P2P ports {p2p_port}+ and the channel ports {channel_port}+ between the hosts"]
    emit(as_json, doc, lines)

"""The `chainnode` command line for node operators: keys and running a node here; the
console commands that talk to a running node (account, tx, contract, block, receipt,
status, peers, sealers, config) are in `rpc.py` and docs/cli.md.

Every command prints human-readable text by default and one JSON document with `--json`,
and fails with a one-line message that says what to do next (exit status 1), never a
traceback.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path

import click

from chainnode.cli.common import PASSWORD_ENV, emit as _emit, read_password
from chainnode.crypto import SUITE_NAMES, CryptoUnavailable, get_suite
from chainnode.security import pkcs8
from chainnode.security.keyfile import SCRYPT_N_DEFAULT, KeyFileError, encrypt_key, load_key, read_key_file, write_key_file
from chainnode.security.pkcs8 import PBKDF2_ITERATIONS_DEFAULT, PBKDF2_ITERATIONS_MAX
from chainnode.store.files import read_bounded, write_atomic


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="chainnode")
def main() -> None:
    """chainnode: a permissioned consortium blockchain node (PBFT, SM2/SM3, LevelDB)."""


@main.command()
@click.option("--suite", type=click.Choice(SUITE_NAMES), default="sm", show_default=True, help="Crypto suite of the chain this key is for.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the encrypted key file.")
@click.option("--password-file", type=click.Path(dir_okay=False), help=f"Read the password from this file (else ${PASSWORD_ENV}, else a prompt).")
@click.option("--pem", "pem_path", type=click.Path(dir_okay=False),
              help="Also write the key here as encrypted PKCS#8 PEM (same password), for openssl and the members' PKI tools.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True, help="scrypt cost (tests use a small one).")
@click.option("--pem-iterations", type=click.IntRange(1, PBKDF2_ITERATIONS_MAX), default=PBKDF2_ITERATIONS_DEFAULT, hidden=True,
              help="PBKDF2 cost of --pem (tests use a small one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def keygen(suite: str, out_path: str, pem_path: str | None, password_file: str | None, force: bool, scrypt_n: int, pem_iterations: int,
           as_json: bool) -> None:
    """Generate a key pair and write it as an encrypted key file (and, with --pem, as PKCS#8)."""
    if pem_path and Path(pem_path).resolve() == Path(out_path).resolve():
        raise click.ClickException("--pem and --out name the same file; give the PEM another name (e.g. node-key.pem)")
    # Before the password prompt, so that a taken name costs nothing to fix.
    for option, path in (("--out", out_path), ("--pem", pem_path)):
        if path and Path(path).exists() and not force:
            raise click.ClickException(f"{path} already exists; choose another {option}, or pass --force if you are sure")
    password = read_password(password_file, confirm=True)
    try:
        s = get_suite(suite)
        priv, _ = s.generate_keypair()
        doc = encrypt_key(suite, priv, password, scrypt_n=scrypt_n)
        # Both encodings are made before either is written, so a refusal leaves no half pair.
        pem_bytes = pkcs8.to_pem(suite, priv, password, iterations=pem_iterations) if pem_path else None
        with _writing(out_path):
            write_key_file(out_path, doc, overwrite=force)
        if pem_path:
            try:
                with _writing(pem_path):
                    write_atomic(Path(pem_path), pem_bytes, mode=0o600)
            except click.ClickException:
                # A fresh key nobody has used: drop it rather than leave a key file without its PEM.
                Path(out_path).unlink(missing_ok=True)
                raise
    except (KeyFileError, CryptoUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    lines = [f"wrote {out_path} ({suite})" + (f" and {pem_path} (PKCS#8, encrypted)" if pem_path else ""),
             f"address:    0x{doc['address']}", f"public key: {doc['public_key']}"]
    _emit(as_json, {"file": out_path, "pem": pem_path, "suite": suite, "address": doc["address"], "public_key": doc["public_key"]}, lines)


@contextmanager
def _writing(path: str):
    """An OSError while writing `path` as a one-line message (a missing folder, a read-only disk)."""
    try:
        yield
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}; check that its folder exists and is writable") from None


@main.group()
def key() -> None:
    """Inspect and import key files."""


@key.command("import")
@click.argument("pem_path", metavar="PEM", type=click.Path(dir_okay=False))
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False), help="Where to write the chainnode key file.")
@click.option("--pem-password-file", type=click.Path(dir_okay=False), help="The PEM's password, if it is encrypted.")
@click.option("--password-file", type=click.Path(dir_okay=False), help=f"Password for the new key file (else ${PASSWORD_ENV}, else a prompt).")
@click.option("--force", is_flag=True, help="Overwrite --out.")
@click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True, help="scrypt cost (tests use a small one).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def key_import(pem_path: str, out_path: str, pem_password_file: str | None, password_file: str | None, force: bool, scrypt_n: int,
               as_json: bool) -> None:
    """Make a chainnode key file of a PKCS#8 PEM key (from `openssl genpkey`, or exported from an HSM); the suite is the key's."""
    if Path(out_path).exists() and not force:
        raise click.ClickException(f"{out_path} already exists; choose another --out, or pass --force if you are sure")
    try:
        data = read_bounded(Path(pem_path), noun="PKCS#8 key", max_bytes=pkcs8.PEM_BYTES_MAX, error=KeyFileError)
        pem_password = read_password(pem_password_file, confirm=False) if pem_password_file else None
        suite, priv = pkcs8.from_pem(data, pem_password, source=pem_path)
        doc = encrypt_key(suite, priv, read_password(password_file, confirm=True), scrypt_n=scrypt_n)
        with _writing(out_path):
            write_key_file(out_path, doc, overwrite=force)
    except (KeyFileError, CryptoUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    _emit(as_json, {"file": out_path, "suite": suite, "address": doc["address"], "public_key": doc["public_key"]},
          [f"wrote {out_path} ({suite}) from {pem_path}", f"address:    0x{doc['address']}", f"public key: {doc['public_key']}"])


@key.command("show")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--check-password", is_flag=True, help="Also decrypt, to check the password.")
@click.option("--peer-id", "with_peer_id", is_flag=True, help="Also print the libp2p peer id a node with this key has (decrypts: needs the password).")
@click.option("--password-file", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def key_show(path: str, check_password: bool, with_peer_id: bool, password_file: str | None, as_json: bool) -> None:
    """Print a key file's suite, address and public key (no password needed)."""
    peer_id = None
    try:
        doc = read_key_file(path)
        if check_password or with_peer_id:
            key = load_key(path, read_password(password_file, confirm=False))
            if with_peer_id:
                # What a node certificate's subjectAltName URI:p2p:<peer id> must name (docs/certificates.md).
                from chainnode.network.identity import host_seed_from_consensus_key, peer_id_from_seed

                peer_id = peer_id_from_seed(host_seed_from_consensus_key(get_suite(key.suite), key.private_key))
    except KeyFileError as exc:
        raise click.ClickException(str(exc)) from None
    data = {"file": path, "suite": doc.get("suite"), "address": doc.get("address"), "public_key": doc.get("public_key")}
    if check_password:
        data["password"] = "ok"
    if peer_id:
        data["peer_id"] = peer_id
    lines = [f"suite:      {data['suite']}", f"address:    0x{data['address']}", f"public key: {data['public_key']}"]
    if check_password:
        lines.append("password:   ok")
    if peer_id:
        lines.append(f"peer id:    {peer_id}")
    _emit(as_json, data, lines)


@main.command()
@click.option("--genesis", "genesis_path", required=True, type=click.Path(dir_okay=False), help="The genesis file your consortium shared.")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="This node's key file (from `chainnode keygen`).")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False), help="Folder for this node's chain data and config.")
@click.option("--p2p-listen", default=None, help="libp2p listen multiaddr (default: this node's first address in genesis).")
@click.option("--rpc-listen", default="127.0.0.1:8545", show_default=True, help="Plain JSON-RPC host:port, for tools on this machine (loopback).")
@click.option("--channel-listen", default="0.0.0.0:20200", show_default=True,
              help="The channel port's host:port: dApps and the SDK connect here with a client certificate.")
@click.option("--cert", "cert_path", default=None, type=click.Path(dir_okay=False),
              help="This node's certificate chain (from `chainnode ca issue-node`); required when the genesis names a CA.")
@click.option("--join", is_flag=True,
              help="This node is not in the genesis: the consortium adds it by vote (chainnode gov propose add_observer).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def init(genesis_path: str, key_path: str, data_dir: str, p2p_listen: str | None, rpc_listen: str, channel_listen: str, cert_path: str | None, join: bool,
         as_json: bool) -> None:
    """Prepare a data directory: check the key is a node of the genesis, commit block 0, write node.toml."""
    from chainnode.node.init import InitError, init_node

    try:
        result = init_node(Path(genesis_path), Path(key_path), Path(data_dir), p2p_listen=p2p_listen, rpc_listen=rpc_listen, channel_listen=channel_listen,
                           cert_file=Path(cert_path) if cert_path else None, member_required=not join,
                           name=Path(data_dir).resolve().name if join else None)
    except InitError as exc:
        raise click.ClickException(str(exc)) from None
    _emit(
        as_json,
        result,
        [
            f"{'initialised' if result['created'] else 'already initialised'} {result['data_dir']} as {result['name']} ({result['role']})",
            f"chain:  {result['chain_id']} / {result['group_id']}, genesis {result['genesis_hash']}",
            f"config: {result['config']}",
            f"start it with: chainnode start --config {result['config']}",
        ],
    )


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's config file (node.toml from `chainnode init`).")
def start(config_path: str) -> None:
    """Run the node in the foreground until Ctrl-C or SIGTERM."""
    import signal

    import multiaddr
    import trio

    from chainnode.network import PortInUse as P2PPortInUse
    from chainnode.network.service import check_port_free as check_p2p_port_free
    from chainnode.node.config import ConfigError, load_config
    from chainnode.node.logs import setup_logging
    from chainnode.node.node import Node, NodeError
    from chainnode.rpc.server import PortInUse as RpcPortInUse, check_port_free
    from chainnode.store.leveldb import StorageError
    from chainnode.system.genesis import GenesisError, load_genesis

    try:
        config = load_config(config_path)
        genesis = load_genesis(config.genesis_file)
        password = read_password(str(config.password_file) if config.password_file else None, confirm=False)
        key = load_key(config.key_file, password)
        check_port_free(config.rpc_host, config.rpc_port)
        check_p2p_port_free(multiaddr.Multiaddr(config.p2p_listen))
        setup_logging(config.log_level, config.log_format)
        node = Node(config, genesis, key)
    except (ConfigError, GenesisError, KeyFileError, StorageError, NodeError, RpcPortInUse, P2PPortInUse, CryptoUnavailable, ValueError) as exc:
        raise click.ClickException(str(exc)) from None

    async def run() -> None:
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as nursery:
                await nursery.start(node.run)
                async for signum in signals:
                    logging.getLogger("chainnode.node").info("%s: %s received, stopping", config.name, signal.Signals(signum).name)
                    nursery.cancel_scope.cancel()
                    break

    try:
        trio.run(run)
    finally:
        node.chain.ledger.close()
    logging.getLogger("chainnode.node").info("%s: stopped cleanly at height %d", config.name, node.chain.height)


@main.group()
def account() -> None:
    """Accounts that sign transactions (console names for `keygen` and `key show`)."""


# The same commands under the console's names: one implementation, two spellings.
account.add_command(keygen, "new")
account.add_command(key_show, "show")


def _add_console_commands() -> None:
    from chainnode.cli import rpc as cli_rpc
    from chainnode.cli.ca import ca_group
    from chainnode.cli.gov import gov_group

    for command in cli_rpc.COMMANDS:
        cli_rpc.add_channel_options(command)
        main.add_command(command)
    main.add_command(ca_group)
    cli_rpc.add_channel_options(gov_group)
    main.add_command(gov_group)


_add_console_commands()

if __name__ == "__main__":
    main()

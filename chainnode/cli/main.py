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


class _Commands(click.Group):
    """The console commands (RPC, governance, db, ca, genesis, service) are added the first
    time a command this module does not define is looked up or the list is shown: `chainnode
    start` then never imports the SDK and its HTTP stack, a third of a node's start-up time."""

    _console_added = False

    def _with_console(self) -> None:
        if not self._console_added:
            type(self)._console_added = True
            _add_console_commands()

    def get_command(self, ctx, cmd_name):
        command = super().get_command(ctx, cmd_name)
        if command is None:
            self._with_console()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx):
        self._with_console()
        return super().list_commands(ctx)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
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
@click.option("--genesis", "genesis_path", type=click.Path(dir_okay=False), help="The genesis file your consortium shared.")
@click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="This node's key file (from `chainnode keygen`).")
@click.option("--data-dir", type=click.Path(file_okay=False), help="Folder for this node's chain data and config (with --genesis).")
@click.option("--p2p-listen", default=None, help="libp2p listen multiaddr (default: all interfaces, at the port of this node's first address in genesis).")
@click.option("--advertise", "advertise", multiple=True,
              help="Where other nodes reach this one (host:port or multiaddr; a public, NAT or DNS address); repeat. "
                   "With --request it goes into the request; with --genesis into node.toml.")
@click.option("--rpc-listen", default="127.0.0.1:8545", show_default=True, help="Plain JSON-RPC host:port, for tools on this machine (loopback).")
@click.option("--channel-listen", default="0.0.0.0:20200", show_default=True,
              help="The channel port's host:port: dApps and the SDK connect here with a client certificate.")
@click.option("--cert", "cert_path", default=None, type=click.Path(dir_okay=False),
              help="This node's certificate chain (from `chainnode ca sign-csr`); required when the genesis names a CA.")
@click.option("--join", is_flag=True,
              help="This node is not in the genesis: the consortium adds it by vote (chainnode gov propose add-sealer --request).")
@click.option("--request", "request_path", default=None, type=click.Path(dir_okay=False),
              help="Before there is a genesis (or to join one): write this node's request for the organiser and its agency, and stop.")
@click.option("--name", default=None, help="With --request: the node's name (its certificate's CN), unique in the chain.")
@click.option("--org", default=None, help="With --request: the organisation, as the agency's certificate names it (O).")
@click.option("--role", type=click.Choice(["sealer", "observer"]), default="sealer", show_default=True, help="With --request: the role asked for.")
@click.option("--password-file", type=click.Path(dir_okay=False), help=f"With --request: the key's password (else ${PASSWORD_ENV}, else a prompt).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def init(genesis_path: str | None, key_path: str, data_dir: str | None, p2p_listen: str | None, advertise: tuple[str, ...], rpc_listen: str,
         channel_listen: str, cert_path: str | None, join: bool, request_path: str | None, name: str | None, org: str | None, role: str,
         password_file: str | None, as_json: bool) -> None:
    """Prepare a node: with --request, the request to join a consortium; with --genesis, a data directory (block 0 and node.toml)."""
    if request_path is not None:
        if genesis_path or data_dir or cert_path or join:
            raise click.ClickException("--request makes a node's request before it has a genesis: leave out --genesis, --data-dir, --cert and --join")
        _write_request(Path(key_path), Path(request_path), name=name, org=org, role=role, advertise=advertise, password_file=password_file,
                       as_json=as_json)
        return
    if not genesis_path or not data_dir:
        raise click.ClickException("pass --genesis and --data-dir (to initialise a node), or --request (to ask a consortium to admit it)")
    from chainnode.node.ceremony import CeremonyError, dial_addrs
    from chainnode.node.init import InitError, init_node

    try:
        result = init_node(Path(genesis_path), Path(key_path), Path(data_dir), p2p_listen=p2p_listen, rpc_listen=rpc_listen, channel_listen=channel_listen,
                           cert_file=Path(cert_path) if cert_path else None, member_required=not join,
                           name=Path(data_dir).resolve().name if join else None, advertise=dial_addrs(advertise))
    except (InitError, CeremonyError) as exc:
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


def _write_request(key_path: Path, out: Path, *, name: str | None, org: str | None, role: str, advertise: tuple[str, ...],
                   password_file: str | None, as_json: bool) -> None:
    from chainnode.node.ceremony import CeremonyError, make_request, write_request

    if not name or not org:
        raise click.ClickException("--request needs --name (this node's name in the chain) and --org (its organisation, as its agency names it)")
    if out.exists():
        raise click.ClickException(f"{out} exists; remove it or choose another path for --request")
    try:
        key = load_key(key_path, read_password(password_file, confirm=False))
        request = make_request(key, name=name, organisation=org, role=role, addrs=list(advertise))
    except (KeyFileError, CeremonyError) as exc:
        raise click.ClickException(str(exc)) from None
    write_request(out, request)
    _emit(as_json, request.to_json(), [
        f"wrote {out}: {request.role} {request.name} of {request.organisation}",
        f"  peer id:  {request.peer_id}",
        f"  address:  0x{request.address.hex()}",
        f"  dial at:  {', '.join(request.addrs) or '(none: this node dials the others; fine for an observer behind NAT)'}",
        f"next: send {out} (public parts only) to your agency (`chainnode ca sign-csr --request {out.name} ...`) and to the organiser",
    ])


@main.command()
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False), help="The node's config file (node.toml from `chainnode init`).")
@click.option("--log-format", type=click.Choice(["text", "json"]), default=None,
              help="Override node.toml's [log] format; json: one JSON object per line (for journald and jq).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default=None, help="Override node.toml's [log] level.")
@click.option("--sync", "sync_mode", type=click.Choice(["full", "snapshot"]), default="full", show_default=True,
              help="How a new node catches up: replay every block from genesis (full), or fetch the state at a peer's "
                   "certified head, each piece proven, and follow blocks from there (snapshot).")
def start(config_path: str, log_format: str | None, log_level: str | None, sync_mode: str) -> None:
    """Run the node in the foreground until SIGTERM or Ctrl-C (then exit status 0).

    Exit status 78: a refusal a restart cannot fix (config, genesis, key, password, data
    directory, storage); 75: a port or the data directory is in use, a restart may work;
    1: an unexpected error (a bug: its traceback is logged). SIGHUP is ignored.
    """
    import dataclasses
    import os
    import signal

    import multiaddr
    import trio

    from chainnode.cli.service import EX_TEMPFAIL, PASSWORD_CREDENTIAL, StartRefused, credential_file, exit_status, refusal
    from chainnode.network import PortInUse as P2PPortInUse
    from chainnode.network.errors import NetworkError
    from chainnode.network.service import check_port_free as check_p2p_port_free
    from chainnode.node.config import load_config
    from chainnode.node.logs import setup_logging
    from chainnode.node.node import Node
    from chainnode.rpc.server import check_port_free
    from chainnode.security.keyfile import WrongPassword
    from chainnode.system.genesis import load_genesis

    log = logging.getLogger("chainnode.node")
    # From the flags at once, so that even a refusal to read node.toml is in the chosen format.
    setup_logging(log_level or "info", log_format or "text")
    # SIGHUP is ignored, here and while running (below), rather than left to stop the node: a
    # daemon's SIGHUP means "reload" or "reopen your log file", and the node has neither to do.
    # Its logs go to stderr, which journald (or whatever the supervisor pipes it to) owns and
    # rotates, and node.toml is read once per start. So a `kill -HUP` sent by habit, or by a
    # logrotate postrotate script, must not take a sealer out of consensus.
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    # Until trio takes the signals over, SIGTERM stops a starting node as Ctrl-C does: exit 0.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    node = None
    try:
        try:
            config = load_config(config_path)
            config = dataclasses.replace(config, log_level=log_level or config.log_level, log_format=log_format or config.log_format)
            setup_logging(config.log_level, config.log_format)
            genesis = load_genesis(config.genesis_file)
            # A systemd credential (LoadCredential=password:FILE, `chainnode service unit`) comes
            # first: under the unit's sandbox the file node.toml names may not even be readable.
            credential = credential_file(PASSWORD_CREDENTIAL)
            password_file = credential or config.password_file
            source = (f"the systemd credential {credential}" if credential else f"password_file {password_file} in {config.path}"
                      if password_file else f"${PASSWORD_ENV}" if os.environ.get(PASSWORD_ENV) else "the prompt")
            password = read_password(str(password_file) if password_file else None, confirm=False)
            try:
                key = load_key(config.key_file, password)
            except WrongPassword as exc:
                raise WrongPassword(f"{exc} (the password came from {source})") from None
            check_port_free(config.rpc_host, config.rpc_port)  # the channel port: Node checks it (exit 75 too)
            try:
                check_p2p_port_free(multiaddr.Multiaddr(config.p2p_listen))
            except P2PPortInUse as exc:
                raise StartRefused(f"{exc}; stop the other process or choose another [network] listen address in node.toml", EX_TEMPFAIL) from None
            except NetworkError as exc:
                raise StartRefused(f"{exc}; is [network] listen an address of this machine (and is its network up)?",
                                   exit_status(exc, starting=True)) from None
            node = Node(config, genesis, key, sync=sync_mode)
        except StartRefused:
            raise
        except Exception as exc:
            raise refusal(exc, starting=True) from None

        async def run() -> None:
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM, signal.SIGHUP) as signals:
                async with trio.open_nursery() as nursery:
                    await nursery.start(node.run)
                    async for signum in signals:
                        if signum == signal.SIGHUP:
                            log.info("%s: SIGHUP received and ignored: there is nothing to reload (node.toml is read at start, logs go to "
                                     "stderr); restart the node to apply a new config, stop it with SIGTERM", config.name)
                            continue
                        log.info("%s: %s received, stopping", config.name, signal.Signals(signum).name)
                        nursery.cancel_scope.cancel()
                        break

        # From here on trio owns SIGINT and SIGTERM (the receiver above); the instant before
        # it opens, SIGTERM's default ends the process, which systemd counts as a clean stop.
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            trio.run(run)
        except Exception as exc:
            raise refusal(exc, starting=False) from None
    except KeyboardInterrupt:  # SIGINT or SIGTERM before the node ran: nothing of it to stop
        log.info("stopped before the node started (SIGINT or SIGTERM)")
        return
    finally:
        if node is not None:
            node.chain.ledger.close()
    log.info("%s: stopped cleanly at height %d", config.name, node.chain.height)


@main.group()
def account() -> None:
    """Accounts that sign transactions (console names for `keygen` and `key show`)."""


# The same commands under the console's names: one implementation, two spellings.
account.add_command(keygen, "new")
account.add_command(key_show, "show")


def _add_console_commands() -> None:
    from chainnode.cli import rpc as cli_rpc
    from chainnode.cli.ca import ca_group
    from chainnode.cli.db import db_group
    from chainnode.cli.genesis import genesis_group
    from chainnode.cli.gov import gov_group
    from chainnode.cli.service import service_group

    for command in cli_rpc.COMMANDS:
        cli_rpc.add_channel_options(command)
        main.add_command(command)
    main.add_command(ca_group)
    main.add_command(genesis_group)
    main.add_command(db_group)
    cli_rpc.add_channel_options(gov_group)
    main.add_command(gov_group)
    main.add_command(service_group)


if __name__ == "__main__":
    main()

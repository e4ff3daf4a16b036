"""Running `chainnode start` as a service: its exit statuses, the key password from a
systemd credential, and `chainnode service unit`, which writes a hardened systemd unit for
one node (docs/operations.md, "Running as a service").

The exit statuses follow sysexits.h, so that systemd (or any supervisor) can tell a node
that must not be restarted from one that may be:

- 0: stopped cleanly on SIGTERM or SIGINT;
- 78 (EX_CONFIG): a restart cannot help: bad config, genesis, key file or password, a data
  directory of another chain, a storage or format error. The unit says
  RestartPreventExitStatus=78, so systemd leaves the node down until the operator fixes it;
- 75 (EX_TEMPFAIL): a restart may help: a port (or the data directory) held by another
  process, a listen address not on this machine yet;
- 1: anything unexpected, a bug; the traceback is logged and systemd restarts the node.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import sys
from pathlib import Path

import click

EXIT_UNEXPECTED = 1  # what Python exits with on an uncaught exception, too
EX_TEMPFAIL = 75  # sysexits.h: temporary failure, the user is invited to retry
EX_CONFIG = 78  # sysexits.h: configuration error

# The name of the systemd credential that holds the node's key password (LoadCredential=password:FILE).
PASSWORD_CREDENTIAL = "password"

log = logging.getLogger("chainnode.node")


class StartRefused(click.ClickException):
    """`chainnode start` cannot run (or stopped) for a reason the message gives, with the
    exit status that tells a supervisor whether to try again. Shown as one line: "Error: ..."
    with text logs, one JSON log record with JSON logs (a JSON log stays JSON to its end)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        from chainnode.node.logs import active_format

        if active_format() == "json":
            log.error("%s (exit status %d)", self.message, self.exit_code)
        else:
            super().show(file)


def credential_file(name: str) -> Path | None:
    """The file of systemd credential `name` ($CREDENTIALS_DIRECTORY/name), if the service
    manager passed one (LoadCredential=, SetCredential=; systemd 247 and later)."""
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        return None
    path = Path(folder) / name
    return path if path.is_file() else None


def _leaves(exc: BaseException):
    if isinstance(exc, BaseExceptionGroup):  # trio's nurseries group what their tasks raised
        for inner in exc.exceptions:
            yield from _leaves(inner)
    else:
        yield exc


def exit_status(exc: BaseException, *, starting: bool) -> int:
    """The exit status `chainnode start` ends with for `exc`: EX_CONFIG, EX_TEMPFAIL, or
    EXIT_UNEXPECTED. `starting`: raised before the node ran (where a ValueError comes from
    reading node.toml, genesis or key, not from a bug)."""
    from chainnode.crypto import CryptoUnavailable
    from chainnode.network.errors import NetworkError
    from chainnode.node.config import ConfigError
    from chainnode.node.init import InitError
    from chainnode.node.node import NodeError
    from chainnode.rpc.server import PortInUse as RpcPortInUse
    from chainnode.security.keyfile import KeyFileError
    from chainnode.store.leveldb import DataDirInUse, StorageError
    from chainnode.system.genesis import GenesisError

    def one(e: BaseException) -> int:
        cause = e.__context__  # the OSError a listen check turned into its message
        if isinstance(e, (RpcPortInUse, NetworkError)) and isinstance(cause, OSError) and cause.errno in (errno.EACCES, errno.EPERM):
            return EX_CONFIG  # a port below 1024 without CAP_NET_BIND_SERVICE: node.toml or the unit must change
        # Held by someone else, or not there yet: the same start may work in a moment.
        if isinstance(e, (RpcPortInUse, NetworkError, DataDirInUse)) or isinstance(cause, (RpcPortInUse, DataDirInUse)):
            return EX_TEMPFAIL
        if isinstance(e, OSError) and e.errno in (errno.EADDRINUSE, errno.EADDRNOTAVAIL):
            return EX_TEMPFAIL  # a listener lost the race for its port after the check at start
        if isinstance(e, (ConfigError, GenesisError, KeyFileError, StorageError, NodeError, InitError, CryptoUnavailable, click.ClickException)):
            return EX_CONFIG
        if starting and isinstance(e, ValueError):
            return EX_CONFIG
        return EXIT_UNEXPECTED

    statuses = {one(e) for e in _leaves(exc)}
    for status in (EXIT_UNEXPECTED, EX_CONFIG, EX_TEMPFAIL):  # the worst one wins
        if status in statuses:
            return status
    return EXIT_UNEXPECTED


def refusal(exc: BaseException, *, starting: bool) -> StartRefused:
    """`exc` as the StartRefused that `chainnode start` exits with. An unexpected error is a
    bug: its traceback is logged here (one JSON record with JSON logs)."""
    status = exit_status(exc, starting=starting)
    leaves = list(_leaves(exc))
    if status == EXIT_UNEXPECTED:
        log.critical("unexpected error %s: %s", "while starting" if starting else "while running",
                     "; ".join(f"{type(e).__name__}: {e}" for e in leaves), exc_info=exc)
        return StartRefused(f"the node stopped on an unexpected error ({type(leaves[0]).__name__}: {leaves[0]}); this is a bug: "
                            "please report it with the traceback logged above. A supervisor may restart the node", EXIT_UNEXPECTED)
    message = "; ".join(e.message if isinstance(e, click.ClickException) else str(e) for e in leaves)
    return StartRefused(message, status)


# ---- chainnode service unit -------------------------------------------------------------

# systemd's own limits on names (unit_name_is_valid, valid_user_group_name in relaxed mode).
_UNIT_NAME = re.compile(r"[A-Za-z0-9:_.\\@-]{1,249}")
_USER_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,30}")
_HOME_DIRS = (Path("/home"), Path("/root"), Path("/run/user"))
_TMP_DIRS = (Path("/tmp"), Path("/var/tmp"))
STOP_TIMEOUT_S = 60  # SIGTERM -> exit: the block being executed and written finishes first
NOFILE_MAX = 65536  # RPC connections (up to rpc_connections_max) + channel + peers + LevelDB files


@click.group("service")
def service_group() -> None:
    """Run a node as a system service (systemd)."""


@service_group.command("unit")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="The node's node.toml, as the service will read it (e.g. /etc/chainnode/bank-a/node.toml).")
@click.option("--user", default="chainnode", show_default=True, help="The system user the node runs as.")
@click.option("--group", default=None, help="Its group (default: the same name as --user).")
@click.option("--exec", "exec_path", default=None, type=click.Path(dir_okay=False),
              help="The absolute path of the chainnode command (default: this one, e.g. /opt/chainnode/bin/chainnode).")
@click.option("--name", default=None, help="The unit's name (default: chainnode-<node name>).")
@click.option("--password-file", default=None, type=click.Path(dir_okay=False),
              help="The key password file systemd hands the node as its 'password' credential "
                   "(default: node.toml's password_file, else 'password' next to node.toml). Keep it root-only (0600).")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False), help="Write the unit here instead of stdout.")
def service_unit(config_path: str, user: str, group: str | None, exec_path: str | None, name: str | None, password_file: str | None,
                 out_path: str | None) -> None:
    """Print a hardened systemd unit that runs this node: chainnode-<name>.service."""
    from chainnode.node.config import ConfigError, load_config

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    group = group or user
    for option, value in (("--user", user), ("--group", group)):
        if not _USER_NAME.fullmatch(value):
            raise click.BadParameter(f"{value!r} is not a user or group name systemd accepts (letters, digits, _ . -)", param_hint=option)
    name = name or f"chainnode-{config.name}"
    name = name.removesuffix(".service")
    if not _UNIT_NAME.fullmatch(name):
        raise click.BadParameter(f"{name!r} is not a valid systemd unit name (letters, digits, : _ . - @)", param_hint="--name")
    exe = Path(exec_path) if exec_path else default_exec()
    if not exe.is_absolute():
        raise click.BadParameter(f"{exe} is not an absolute path; systemd needs one (e.g. /opt/chainnode/bin/chainnode)", param_hint="--exec")
    if not os.access(exe, os.X_OK):
        click.echo(f"note: {exe} is not an executable here; install chainnode there before starting the unit", err=True)
    secret = Path(password_file).absolute() if password_file else (config.password_file or config.path.parent / "password")
    _check_secret(secret)
    text = render_unit(config, user=user, group=group, exe=exe, name=name, password_file=secret)
    if out_path:
        try:
            Path(out_path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise click.ClickException(f"cannot write {out_path}: {exc.strerror}") from None
        installed = Path(out_path).absolute() == Path("/etc/systemd/system") / f"{name}.service"
        click.echo(f"wrote {out_path}; " + ("" if installed else f"install it as /etc/systemd/system/{name}.service, ")
                   + f"then: systemctl daemon-reload && systemctl enable --now {name}", err=True)
    else:
        click.echo(text, nl=False)


def default_exec() -> Path:
    """The chainnode command that is running now, as an absolute path."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "chainnode" and argv0.is_file():
        return argv0.resolve()
    sibling = Path(sys.executable).parent / "chainnode"  # the console script of this interpreter's environment
    if sibling.is_file():
        return sibling.absolute()
    found = shutil.which("chainnode")
    if found:
        return Path(found).resolve()
    raise click.ClickException("cannot find the chainnode command; pass its absolute path with --exec (e.g. /opt/chainnode/bin/chainnode)")


def _check_secret(path: Path) -> None:
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        click.echo(f"note: {path} does not exist yet; write the key password there (owner root, mode 0600) before starting", err=True)
        return
    except OSError:
        return  # not ours to read (root's file, as it should be): systemd reads it as root
    if mode & 0o077:
        click.echo(f"note: {path} is readable by others (mode {mode & 0o777:o}); `chmod 600 {path}` (systemd reads it as root)", err=True)


def render_unit(config, *, user: str, group: str, exe: Path, name: str, password_file: Path) -> str:
    """The text of the unit. Every line that is not obvious says why it is there."""
    files = [config.path, config.data_dir, config.genesis_file, config.key_file, password_file]
    files += [p for p in (config.cert_file, config.rpc_tls_cert, config.rpc_tls_key) if p is not None]
    for path in files:
        if any(c in str(path) for c in "\n\r\t") or not path.is_absolute():
            raise click.ClickException(f"{path}: a path for a systemd unit must be absolute and hold no control characters")
    under_home = [str(p) for p in files if any(p == h or h in p.parents for h in _HOME_DIRS)]
    under_tmp = [str(p) for p in files if any(p == t or t in p.parents for t in _TMP_DIRS)]
    low_ports = sorted({p for p in (config.rpc_port, config.channel_port, _p2p_port(config.p2p_listen)) if p and p < 1024})
    argv = [str(exe), "start", "--config", str(config.path), "--log-format", "json"]
    lines = [
        f"# {name}.service: the chainnode node {config.name!r}, written by `chainnode service unit --config {config.path}`.",
        f"# Install as /etc/systemd/system/{name}.service, then: systemctl daemon-reload && systemctl enable --now {name}",
        "# Logs: journalctl -u " + name + " -o cat | jq   (docs/operations.md, \"Running as a service\")",
        "",
        "[Unit]",
        f"Description=chainnode node {_escape(config.name)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "# Restarts (exit status 75 or 1) every RestartSec; after 10 failures in 10 minutes systemd gives up",
        "# until `systemctl reset-failed` (the journal then says why).",
        "StartLimitIntervalSec=600",
        "StartLimitBurst=10",
        "",
        "[Service]",
        "# exec: the unit counts as started once chainnode runs; failures to start are its exit status.",
        "Type=exec",
        f"User={user}",
        f"Group={group}",
        f"WorkingDirectory={_escape(str(config.data_dir))}",
        "ExecStart=" + " ".join(_quote(a) for a in argv),
        "# The key password: systemd reads this root-only file and hands it to the node in a private,",
        "# unswappable $CREDENTIALS_DIRECTORY/password, which chainnode start reads before node.toml's",
        "# password_file and $CHAINNODE_PASSWORD. Never put the password itself in this unit.",
        f"LoadCredential={PASSWORD_CREDENTIAL}:{_escape(str(password_file))}",
        "",
        "# 0: stopped cleanly. 78 (EX_CONFIG): bad config, genesis, key, password or data directory:",
        "# a restart cannot fix it, so systemd leaves the node down. 2: a bad command line, likewise.",
        "# 75 (EX_TEMPFAIL, a port in use) and 1 (an unexpected error, logged with its traceback): restarted.",
        "Restart=on-failure",
        "RestartSec=10s",
        "RestartPreventExitStatus=78 2",
        "# SIGTERM: the node finishes the block it is writing (one synced batch), closes its database and",
        "# exits 0. Only a node stuck longer than TimeoutStopSec is killed (SIGKILL), which is safe too:",
        "# it restarts at its last committed block.",
        "KillSignal=SIGTERM",
        f"TimeoutStopSec={STOP_TIMEOUT_S}s",
        "# Enough for rpc_connections_max and channel_connections_max connections, peers and LevelDB's files.",
        f"LimitNOFILE={NOFILE_MAX}",
        "UMask=0077",
        "",
        "# Sandbox (systemd.exec(5)); `systemd-analyze security " + name + "` rates it.",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "# The only place the node writes: its data directory (chain.db, node.pid, txpool.journal, PBFT state).",
        f"ReadWritePaths={_quote(str(config.data_dir))}",
    ]
    if under_home:
        lines += [f"# Some of the node's files are under a home directory ({', '.join(under_home)}): read-only, not hidden.",
                  "ProtectHome=read-only"]
    else:
        lines.append("ProtectHome=yes")
    if under_tmp:
        lines += [f"# Some of the node's files are in a temporary directory ({', '.join(under_tmp)}), which PrivateTmp=yes",
                  "# would hide: move them (e.g. to /var/lib/chainnode and /etc/chainnode) and set PrivateTmp=yes.",
                  "PrivateTmp=no"]
    else:
        lines.append("PrivateTmp=yes")
    lines += [
        "PrivateDevices=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "ProtectProc=invisible",
        "PrivateMounts=yes",
        "# TCP for peers, dApps and RPC; AF_UNIX for trio's wake-up socket pair. No netlink, no raw sockets.",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "RestrictNamespaces=yes",
        "RestrictRealtime=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "RemoveIPC=yes",
        "SystemCallArchitectures=native",
        "# Every system call a node makes (measured with strace: start, peers, sync, transactions, stop)",
        "# is in @system-service, and none in @privileged or @resources.",
        "SystemCallFilter=@system-service",
        "SystemCallFilter=~@privileged @resources",
        "# A call outside the filter fails with EPERM, which the node reports, instead of a SIGSYS kill.",
        "SystemCallErrorNumber=EPERM",
        "# No MemoryDenyWriteExecute=yes: py-libp2p makes a ctypes callback as the node starts",
        "# (libp2p/security/tls/openssl_verify.py), and a libffi without static trampolines (before 3.4)",
        "# needs writable+executable memory for it: the node would fail at start. Where libffi is 3.4 or",
        "# later (Debian 12, `ldd` on Python's _ctypes shows libffi.so.8) it runs with it; add it in a drop-in.",
    ]
    if low_ports:
        lines += [f"# Port(s) {', '.join(map(str, low_ports))} below 1024: binding them is the only privilege the node gets.",
                  "CapabilityBoundingSet=CAP_NET_BIND_SERVICE",
                  "AmbientCapabilities=CAP_NET_BIND_SERVICE"]
    else:
        lines += ["# No capabilities at all: every port is 1024 or above.",
                  "CapabilityBoundingSet=",
                  "AmbientCapabilities=",
                  "# Other users' files look owned by nobody; root's and the node's own are as they are.",
                  "PrivateUsers=yes"]
    lines += ["", "[Install]", "WantedBy=multi-user.target", ""]
    return "\n".join(lines)


def _p2p_port(listen: str) -> int | None:
    parts = listen.split("/")
    return int(parts[parts.index("tcp") + 1]) if "tcp" in parts and parts[parts.index("tcp") + 1].isdigit() else None


def _escape(value: str) -> str:
    """A value systemd reads verbatim, with its specifiers (%) escaped."""
    return value.replace("%", "%%")


def _quote(arg: str) -> str:
    """One word of a systemd command line or path list: specifiers (%) and variables ($)
    escaped, quoted when it holds a space, a quote or a backslash."""
    arg = arg.replace("%", "%%").replace("$", "$$")
    if re.fullmatch(r"[A-Za-z0-9/._:=@+,%$-]+", arg):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'

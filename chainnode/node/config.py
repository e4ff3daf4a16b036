"""The node configuration file (TOML), strictly checked.

Relative paths are relative to the file's own folder, so a node folder can be moved as a
whole. Unknown sections or keys are refused (a misspelt limit silently ignored is how a
node ends up running with the wrong one). Every error names the file, the key and what is
expected. `render_config` writes the documented default file that `chainnode init` makes.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from chainnode.protocol.dialaddr import ADDR_CHARS_MAX, ADDRS_MAX, DialAddrError, parse_dial_addr
from chainnode.store.files import read_bounded
from chainnode.store.ledger import BLOCK_HISTORY_BLOCKS_DEFAULT, STATE_HISTORY_BLOCKS_DEFAULT

CONFIG_BYTES_MAX = 256 * 1024
BOOTSTRAP_MAX = 64


class ConfigError(ValueError):
    pass


@dataclass(frozen=True)
class Limits:
    tx_bytes_max: int = 128 * 1024
    pool_txs_max: int = 100_000
    pool_bytes_max: int = 256 * 1024 * 1024
    sender_share_pct: int = 20
    rpc_body_bytes_max: int = 4 * 1024 * 1024
    rpc_batch_max: int = 100
    rpc_connections_max: int = 1_000  # HTTP and WebSocket connections open at once
    # RPC limits (docs/operations.md, "RPC limits"): slow clients, floods, free calls.
    rpc_header_timeout_ms: int = 5_000  # connect (or last response) -> whole request head
    rpc_body_timeout_ms: int = 10_000  # request head -> end of its body
    rpc_client_requests_per_s_max: int = 1_000  # per remote address (HTTP requests and WebSocket messages)
    rpc_send_timeout_ms: int = 30_000  # a write the client does not take this long closes its connection
    rpc_ws_connections_max: int = 256  # WebSocket connections open at once
    rpc_ws_queue_bytes_max: int = 1024 * 1024  # unsent notifications per WebSocket connection
    rpc_ws_queue_full_timeout_ms: int = 5_000  # a full queue for this long disconnects the client
    rpc_ws_idle_timeout_ms: int = 60_000  # no subscription and no message for this long: closed
    rpc_call_gas_max: int = 10_000_000  # gas of one read-only `call` (also capped by tx_gas_limit)
    rpc_call_timeout_ms: int = 2_000  # a `call` is answered within this, finished or not
    rpc_calls_max: int = 2  # read-only calls running at once
    rpc_calls_gas_per_s_max: int = 20_000_000  # gas all read-only calls may burn per second, together
    peer_frame_bytes_max: int = 4 * 1024 * 1024
    peer_messages_per_s_max: int = 20_000
    sync_blocks_per_request_max: int = 64
    snapshot_nodes_per_request_max: int = 4_096  # state tree nodes a snapshot sync asks one peer for at once
    # The pool's journal of acknowledged transactions (chainnode/txpool/journal.py); above the pool's own
    # byte limit, so it only binds if the disk budget is set lower on purpose.
    txjournal_bytes_max: int = 512 * 1024 * 1024
    # The longest sendTransaction may wait for the receipt (options.waitForReceipt).
    rpc_receipt_wait_ms_max: int = 60_000
    # The channel port for dApps (chainnode/rpc/channel.py); its sessions also count against rpc_ws_connections_max.
    channel_connections_max: int = 256  # channel connections open at once, handshaking ones included
    channel_handshake_timeout_ms: int = 5_000  # connect -> handshake done (slow or silent clients are cut)


# key -> (minimum, maximum) for every limit: nonsense values are refused at start.
LIMIT_BOUNDS = {
    "tx_bytes_max": (1024, 1 << 20),
    "pool_txs_max": (10, 10_000_000),
    "pool_bytes_max": (1 << 20, 1 << 36),
    "sender_share_pct": (1, 100),
    "rpc_body_bytes_max": (1024, 64 << 20),
    "rpc_batch_max": (1, 10_000),
    "rpc_connections_max": (1, 100_000),
    "rpc_header_timeout_ms": (100, 600_000),
    "rpc_body_timeout_ms": (100, 600_000),
    "rpc_client_requests_per_s_max": (1, 1_000_000),
    "rpc_send_timeout_ms": (100, 600_000),
    "rpc_ws_connections_max": (1, 100_000),
    "rpc_ws_queue_bytes_max": (64 * 1024, 1 << 30),
    "rpc_ws_queue_full_timeout_ms": (100, 600_000),
    "rpc_ws_idle_timeout_ms": (100, 86_400_000),
    "rpc_call_gas_max": (10_000, 1 << 40),
    "rpc_call_timeout_ms": (10, 600_000),
    "rpc_calls_max": (1, 64),
    "rpc_calls_gas_per_s_max": (100_000, 1 << 40),
    "peer_frame_bytes_max": (64 * 1024, 64 << 20),
    "peer_messages_per_s_max": (10, 1_000_000),
    "sync_blocks_per_request_max": (1, 1_000),
    "snapshot_nodes_per_request_max": (1, 4_096),
    "txjournal_bytes_max": (1 << 20, 1 << 36),
    "rpc_receipt_wait_ms_max": (0, 600_000),
    "channel_connections_max": (1, 100_000),
    "channel_handshake_timeout_ms": (100, 600_000),
}

DEFAULT_RPC_LISTEN = "127.0.0.1:8545"
DEFAULT_CHANNEL_LISTEN = "0.0.0.0:20200"  # FISCO BCOS's channel port


@dataclass(frozen=True)
class NodeConfig:
    path: Path
    name: str
    data_dir: Path
    genesis_file: Path
    key_file: Path
    password_file: Path | None
    p2p_listen: str
    rpc_host: str
    rpc_port: int
    log_level: str = "info"
    log_format: str = "text"
    limits: Limits = field(default_factory=Limits)
    # The node's certificate chain (`chainnode ca issue-node --out`); required when the
    # genesis names root CAs ("ca_certs"), ignored otherwise. Checked at start by admission.py.
    cert_file: Path | None = None
    # The channel port for dApps (served only when the genesis has a CA).
    channel_host: str = "0.0.0.0"
    channel_port: int = 20200
    # The plain HTTP/WebSocket port listens on loopback only unless [rpc] allow_remote = true.
    rpc_allow_remote: bool = False
    # Standard TLS on the HTTP port (PEM files), both or neither.
    rpc_tls_cert: Path | None = None
    rpc_tls_key: Path | None = None
    # [network] advertise: the dial addresses other nodes should reach this one at (a public
    # or NAT address, a DNS name); () = the node's addresses on chain. Checked for
    # reachability at start (chainnode/network/reachability.py) and shown in the status.
    p2p_advertise: tuple[str, ...] = ()
    # [network] bootstrap: (peer id, dial address) this node dials a peer at, before the
    # addresses the chain lists for it (a private link, a test lab).
    p2p_bootstrap: tuple[tuple[str, str], ...] = ()
    # [storage] state_history_blocks: past states kept for proofs; 0 keeps every one (an
    # archive node). Older ones are deleted a few blocks' worth at each commit.
    state_history_blocks: int = STATE_HISTORY_BLOCKS_DEFAULT
    # [storage] block_history_blocks: block bodies (transactions, receipts) kept; 0 keeps every
    # one (an archive of blocks). Headers and certificates always stay (ledger.py, `_body_prune_ops`).
    block_history_blocks: int = BLOCK_HISTORY_BLOCKS_DEFAULT


_SCHEMA = {
    "node": {"name", "data_dir", "genesis_file", "key_file", "password_file", "cert_file"},
    "network": {"listen", "advertise", "bootstrap"},
    "rpc": {"listen", "allow_remote", "tls_cert", "tls_key"},
    "channel": {"listen"},
    "limits": set(LIMIT_BOUNDS),
    "log": {"level", "format"},
    "storage": {"state_history_blocks", "block_history_blocks"},
}
STATE_HISTORY_BLOCKS_MAX = 1 << 40
# The fewest block bodies a pruning node keeps. Peers a little behind (a restart, a short
# partition, an upgrade) catch up from them by block sync, and PBFT answers lagging sealers
# from the last 128 (chainnode/pbft/driver.py, RECENT_BLOCKS_FOR_REPLICA): a node that falls
# further behind than every peer keeps bodies must start over by snapshot sync.
BLOCK_HISTORY_BLOCKS_MIN = 128


def load_config(path: str | os.PathLike) -> NodeConfig:
    path = Path(path).resolve()
    raw = read_bounded(path, noun="node config", max_bytes=CONFIG_BYTES_MAX, error=ConfigError,
                       label="config file ", missing_hint="; create one with `chainnode init`")
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    return parse_config(doc, path)


def parse_config(doc: dict, path: Path) -> NodeConfig:
    where = str(path)
    for section, value in doc.items():
        if section not in _SCHEMA:
            raise ConfigError(f"{where}: unknown section [{section}]; known: {', '.join(f'[{s}]' for s in _SCHEMA)}")
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: [{section}] must be a table")
        unknown = set(value) - _SCHEMA[section]
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) in [{section}]: {', '.join(sorted(unknown))}; known: {', '.join(sorted(_SCHEMA[section]))}")
    base = path.parent

    def text(section: str, key: str, default: str | None = None) -> str:
        v = doc.get(section, {}).get(key, default)
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}: [{section}] {key} must be a non-empty string")
        return v

    def file(section: str, key: str, default: str | None = None) -> Path:
        return (base / text(section, key, default)).resolve()

    rpc_host, rpc_port = _host_port(where, "rpc", text("rpc", "listen", DEFAULT_RPC_LISTEN), DEFAULT_RPC_LISTEN)
    allow_remote = doc.get("rpc", {}).get("allow_remote", False)
    if type(allow_remote) is not bool:
        raise ConfigError(f"{where}: [rpc] allow_remote must be true or false")
    if not allow_remote and not is_loopback(rpc_host):
        raise ConfigError(
            f"{where}: [rpc] listen = \"{rpc_host}:{rpc_port}\" is not a loopback address, but the HTTP port is plain text and "
            "unauthenticated, for tools on this machine only; dApps on other machines connect to the channel port ([channel] listen) "
            f"with a client certificate. Listen on 127.0.0.1:{rpc_port}, or, if you must, set allow_remote = true under [rpc]"
        )
    tls = {key: doc.get("rpc", {}).get(key) for key in ("tls_cert", "tls_key")}
    if (tls["tls_cert"] is None) != (tls["tls_key"] is None):
        raise ConfigError(f"{where}: [rpc] tls_cert and tls_key go together: set both (PEM certificate chain and private key) or neither")
    channel_host, channel_port = _host_port(where, "channel", text("channel", "listen", DEFAULT_CHANNEL_LISTEN), DEFAULT_CHANNEL_LISTEN)
    p2p = text("network", "listen", "/ip4/127.0.0.1/tcp/30300")
    if not p2p.startswith("/ip4/") and not p2p.startswith("/ip6/"):
        raise ConfigError(f"{where}: [network] listen must be a multiaddr like /ip4/127.0.0.1/tcp/30300")
    advertise = _addr_list(where, doc, "advertise", ADDRS_MAX)
    bootstrap = tuple(_bootstrap_entry(where, a) for a in _str_list(where, doc, "bootstrap", BOOTSTRAP_MAX))
    level = text("log", "level", "info")
    if level not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"{where}: [log] level must be debug, info, warning or error")
    fmt = text("log", "format", "text")
    if fmt not in ("text", "json"):
        raise ConfigError(f"{where}: [log] format must be text or json")
    limits = {}
    for key, value in doc.get("limits", {}).items():
        lo, hi = LIMIT_BOUNDS[key]
        if type(value) is not int or not lo <= value <= hi:
            raise ConfigError(f"{where}: [limits] {key} must be an integer in [{lo}, {hi}], got {value!r}")
        limits[key] = value
    history = doc.get("storage", {}).get("state_history_blocks", STATE_HISTORY_BLOCKS_DEFAULT)
    if type(history) is not int or not (history == 0 or 2 <= history <= STATE_HISTORY_BLOCKS_MAX):
        raise ConfigError(f"{where}: [storage] state_history_blocks must be 0 (keep every past state: an archive node) "
                          f"or an integer in [2, {STATE_HISTORY_BLOCKS_MAX}], got {history!r}")
    bodies = doc.get("storage", {}).get("block_history_blocks", BLOCK_HISTORY_BLOCKS_DEFAULT)
    if type(bodies) is not int or not (bodies == 0 or BLOCK_HISTORY_BLOCKS_MIN <= bodies <= STATE_HISTORY_BLOCKS_MAX):
        raise ConfigError(f"{where}: [storage] block_history_blocks must be 0 (keep every block's transactions and receipts: an archive "
                          f"of blocks) or an integer in [{BLOCK_HISTORY_BLOCKS_MIN}, {STATE_HISTORY_BLOCKS_MAX}] (the newest blocks whose "
                          f"bodies are kept), got {bodies!r}")
    password = doc.get("node", {}).get("password_file")
    cert = doc.get("node", {}).get("cert_file")
    return NodeConfig(
        path=path,
        name=text("node", "name", "node"),
        data_dir=file("node", "data_dir", "data"),
        genesis_file=file("node", "genesis_file", "genesis.json"),
        key_file=file("node", "key_file", "node.key"),
        password_file=file("node", "password_file") if password else None,
        p2p_listen=p2p,
        rpc_host=rpc_host,
        rpc_port=rpc_port,
        log_level=level,
        log_format=fmt,
        limits=Limits(**limits),
        cert_file=file("node", "cert_file") if cert is not None else None,
        channel_host=channel_host,
        channel_port=channel_port,
        rpc_allow_remote=allow_remote,
        rpc_tls_cert=file("rpc", "tls_cert") if tls["tls_cert"] is not None else None,
        rpc_tls_key=file("rpc", "tls_key") if tls["tls_key"] is not None else None,
        p2p_advertise=advertise,
        p2p_bootstrap=bootstrap,
        state_history_blocks=history,
        block_history_blocks=bodies,
    )


def _str_list(where: str, doc: dict, key: str, max_items: int) -> list[str]:
    value = doc.get("network", {}).get(key, [])
    if type(value) is not list or len(value) > max_items or not all(type(v) is str and 0 < len(v) <= 2 * ADDR_CHARS_MAX for v in value):
        raise ConfigError(f"{where}: [network] {key} must be a list of at most {max_items} address strings")
    return value


def _addr_list(where: str, doc: dict, key: str, max_items: int) -> tuple[str, ...]:
    try:
        return tuple(parse_dial_addr(a) for a in _str_list(where, doc, key, max_items))
    except DialAddrError as exc:
        raise ConfigError(f"{where}: [network] {key}: {exc}") from None


def _bootstrap_entry(where: str, text: str) -> tuple[str, str]:
    """"/ip4/10.0.0.2/tcp/30300/p2p/12D3KooW..." -> (peer id, dial address)."""
    addr, sep, peer_id = text.rpartition("/p2p/")
    if not sep or not peer_id or "/" in peer_id:
        raise ConfigError(f"{where}: [network] bootstrap entry {text!r} must end in /p2p/<peer id>, like /ip4/10.0.0.2/tcp/30300/p2p/12D3KooW...")
    try:
        return peer_id, parse_dial_addr(addr)
    except DialAddrError as exc:
        raise ConfigError(f"{where}: [network] bootstrap: {exc}") from None


def _host_port(where: str, section: str, listen: str, example: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not port_text.isdigit() or not 0 < int(port_text) < 65536 or not host.strip("[]"):
        raise ConfigError(f"{where}: [{section}] listen must be host:port, like {example}")
    return host.strip("[]"), int(port_text)


def is_loopback(host: str) -> bool:
    """Whether `host` (a name or an IP address) is this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # another host name: it may resolve to anything


def render_config(
    *,
    name: str,
    data_dir: str,
    genesis_file: str,
    key_file: str,
    p2p_listen: str,
    rpc_listen: str,
    channel_listen: str = DEFAULT_CHANNEL_LISTEN,
    password_file: str | None = None,
    cert_file: str | None = None,
    cert_required: bool = False,
    rpc_allow_remote: bool = False,
    advertise: tuple[str, ...] = (),
) -> str:
    """The text of a documented node config file with the default limits."""
    defaults = Limits()
    lines = [
        "# chainnode node configuration (docs/operations.md). Relative paths are relative to this file.",
        "[node]",
        f"name = {_quote(name)}",
        f"data_dir = {_quote(data_dir)}",
        f"genesis_file = {_quote(genesis_file)}",
        f"key_file = {_quote(key_file)}",
        (f"password_file = {_quote(password_file)}" if password_file else "# password_file = \"password.txt\"   # else $CHAINNODE_PASSWORD, else a prompt"),
        (
            f"cert_file = {_quote(cert_file)}"
            if cert_file
            else "# cert_file = \"node.pem\"   # REQUIRED: the genesis names root CAs; from `chainnode ca issue-node`"
            if cert_required
            else "# cert_file = \"node.pem\"   # only if the genesis has ca_certs (docs/certificates.md)"
        ),
        "",
        "[network]",
        f"listen = {_quote(p2p_listen)}",
        (f"advertise = [{', '.join(_quote(a) for a in advertise)}]" if advertise
         else "# advertise = [\"/dns/node1.example.org/tcp/30300\"]   # where others reach this node, if not its addresses on chain"),
        "# bootstrap = [\"/ip4/10.0.0.2/tcp/30300/p2p/12D3KooW...\"]   # dial a peer here first",
        "",
        "[rpc]",
        "# Plain HTTP and WebSocket, for tools on this machine: loopback only, unless allow_remote = true (not advised).",
        f"listen = {_quote(rpc_listen)}",
        "allow_remote = true" if rpc_allow_remote else "# allow_remote = false",
        "# tls_cert = \"rpc.crt\"   # standard TLS (HTTPS/WSS) on this port: a PEM certificate chain...",
        "# tls_key = \"rpc.key\"    # ...and its unencrypted PEM private key",
        "",
        "[channel]",
        "# The encrypted, certificate-authenticated port for dApps and the SDK (when the genesis has a CA).",
        f"listen = {_quote(channel_listen)}",
        "",
        "[limits]",
    ]
    lines += [f"{f.name} = {getattr(defaults, f.name)}" for f in fields(Limits)]
    lines += [
        "",
        "[storage]",
        f"state_history_blocks = {STATE_HISTORY_BLOCKS_DEFAULT}   # past states kept for proofs; 0 keeps all (an archive node)",
        f"block_history_blocks = {BLOCK_HISTORY_BLOCKS_DEFAULT}   # block bodies kept; 0 keeps all (an archive of blocks), "
        f"else at least {BLOCK_HISTORY_BLOCKS_MIN}",
    ]
    lines += ["", "[log]", 'level = "info"', 'format = "text"', ""]
    return "\n".join(lines)


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

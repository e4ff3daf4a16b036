"""The console commands of `chainnode`: they talk to a running node over JSON-RPC through
the SDK (`chainnode.client`), in the manner of the FISCO BCOS console, and are scriptable:
`--json` prints one JSON document, failures print one line to stderr and exit 1.

By default they connect to the node's channel port (--url chainnode://HOST:PORT) with your
account key (--key) and its client certificate (--client-cert, from `chainnode ca
issue-client`); `--url http://127.0.0.1:8545` uses the node's plain HTTP port instead, on
the node's own machine.

    chainnode tx send --key alice.key --client-cert alice.pem --to 0x… --method add --args '[5]'
    chainnode contract deploy --key alice.key counter.py --args '[1]'
    chainnode contract call 0x… get
    chainnode block latest --txs | chainnode tx 0x… | chainnode receipt 0x… --proof
    chainnode status | peers | sealers | config get tx_count_limit

docs/cli.md has an example of each.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Awaitable, Callable

import click
import trio

from chainnode.cli.common import PASSWORD_ENV, emit, read_password
from chainnode.client.errors import ProofError
from chainnode.client.proof import verify_receipt_proof as sdk_verify_receipt_proof
from chainnode.crypto import ADDRESS_BYTES, HASH_BYTES
from chainnode.protocol.hexstr import HexError, parse_hex, to_hex
from chainnode.protocol.jsonvalue import from_json, to_json
from chainnode.rpc.jsonrpc import NOT_FOUND

URL_ENV = "CHAINNODE_URL"
RPC_ENV = "CHAINNODE_RPC"  # the older name of CHAINNODE_URL, still read
GROUP_ENV = "CHAINNODE_GROUP"
KEY_ENV = "CHAINNODE_CLIENT_KEY"
CLIENT_CERT_ENV = "CHAINNODE_CLIENT_CERT"
URL_DEFAULT = "chainnode://127.0.0.1:20200"
RPC_DEFAULT = "http://127.0.0.1:8545"  # the node's plain HTTP port, on its own machine
_CONNECTION = "chainnode.connection"  # ctx.meta key: the channel credentials the options gave
SOURCE_BYTES_MAX = 1 << 20  # a contract source larger than this is surely the wrong file
RECEIPT_POLL_MS = 200
RECEIPT_TIMEOUT_S_DEFAULT = 60.0


# ---- shared options and plumbing ---------------------------------------------------------


def rpc_options(fn: Callable) -> Callable:
    """--url (alias --rpc), --group and --json, on every command that talks to a node; the
    channel's --key / --client-cert / --password-file come from `add_channel_options`."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")(fn)
    fn = click.option("--group", envvar=GROUP_ENV, default="group0", show_default=True, help=f"Group id (env {GROUP_ENV}).")(fn)
    fn = click.option(
        "--url", "--rpc", "rpc_url", envvar=[URL_ENV, RPC_ENV], default=URL_DEFAULT, show_default=True,
        help=f"The node: its channel port chainnode://HOST:PORT, or on its machine its HTTP port http://127.0.0.1:8545 (env {URL_ENV}).",
    )(fn)
    return fn


def _remember(name: str) -> Callable:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        ctx.meta.setdefault(_CONNECTION, {})[name] = value
        return value

    return callback


def add_channel_options(command: click.Command) -> None:
    """Give every command under `command` that talks to a node the channel's options: your
    client certificate (--client-cert), the account key it is for (--client-key; spelled
    --key too where the command has no --key of its own) and its password. Without
    --client-key a signing command's --key, the signer, is also the channel's key."""
    if isinstance(command, click.Group):
        for sub in command.commands.values():
            add_channel_options(sub)
        return
    names = {p.name for p in command.params}
    if "rpc_url" not in names or "client_cert" in names:
        return
    command.params.append(click.Option(
        ["--client-cert", "client_cert"], envvar=CLIENT_CERT_ENV, type=click.Path(dir_okay=False), expose_value=False, callback=_remember("cert"),
        help=f"Your client certificate chain (`chainnode ca issue-client --out`), for a chainnode:// --url (env {CLIENT_CERT_ENV}).",
    ))
    signs = "key_path" in names
    command.params.append(click.Option(
        ["--client-key", "client_key"] if signs else ["--key", "--client-key", "client_key"], envvar=KEY_ENV, type=click.Path(dir_okay=False),
        expose_value=False, callback=_remember("key"),
        help=f"The account key file your client certificate is for, for a chainnode:// --url (env {KEY_ENV})"
             + ("; default: --key, the signer." if signs else "."),
    ))
    if "password_file" not in names:
        command.params.append(click.Option(
            ["--password-file", "client_password_file"], type=click.Path(dir_okay=False), expose_value=False, callback=_remember("password_file"),
            help=f"The --key's password file (else ${PASSWORD_ENV}, else a prompt).",
        ))


def _channel_credentials(rpc_url: str) -> dict:
    """The Client's key= and cert= for a chainnode:// URL, from the options."""
    ctx = click.get_current_context(silent=True)
    given = ctx.meta.get(_CONNECTION, {}) if ctx is not None else {}
    if given.get("key"):
        account = _load_key(given["key"], given.get("password_file"))
    elif given.get("account") is not None:
        account = given["account"]  # the signer's
    else:
        raise click.ClickException(
            f"{rpc_url} is a node's channel port: pass your account key (--key FILE, or set {KEY_ENV}) and its client certificate "
            f"(--client-cert FILE, or set {CLIENT_CERT_ENV}); on the node's own machine --url {RPC_DEFAULT} needs neither"
        )
    if not given.get("cert"):
        raise click.ClickException(
            f"{rpc_url} is a node's channel port: pass your client certificate chain (--client-cert FILE, or set {CLIENT_CERT_ENV}), "
            "the file `chainnode ca issue-client --key` wrote for your key; ask your agency for one"
        )
    return {"key": account, "cert": given["cert"]}


def run_with_client(rpc_url: str, group: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run `body(client)` under trio; expected failures become one-line ClickExceptions."""
    from chainnode.client import Client, NodeError, ReceiptTimeout, RefusedByNode
    from chainnode.client.channel import is_channel_url, parse_channel_url
    from chainnode.security.certs import CertificateError

    if not rpc_url.startswith(("http://", "https://", "chainnode://")):
        raise click.ClickException(f"--url must be chainnode://HOST:PORT (the node's channel port, e.g. {URL_DEFAULT}) or {RPC_DEFAULT}; got {rpc_url!r}")
    try:
        if is_channel_url(rpc_url):
            parse_channel_url(rpc_url)
        credentials = _channel_credentials(rpc_url) if is_channel_url(rpc_url) else {}
        client = Client(rpc_url, group=group, **credentials)
    except (CertificateError, ValueError) as exc:
        raise click.ClickException(f"{exc} (check --url, --client-cert and its key: --client-key, else --key)") from None

    async def main() -> Any:
        async with client:
            return await body(client)

    try:
        return trio.run(main)
    except RefusedByNode as exc:  # the node's reason, and what to do
        raise click.ClickException(str(exc)) from None
    except ConnectionError as exc:  # the SDK's text already says what to check
        raise click.ClickException(
            f"{exc}; pass --url URL (or set {URL_ENV}); start a node with `chainnode start --config node.toml`, "
            "or a local test network with `devnet up`"
        ) from None
    except NodeError as exc:
        if exc.code == NOT_FOUND:  # the node's text says what is missing and what exists
            raise click.ClickException(exc.message) from None
        hint = ""
        if exc.code == -32601:
            hint = "; the node does not offer this method: is it an older chainnode? (`chainnode status` shows its version)"
        elif "is not served here" in exc.message:
            hint = f"; pass --group (or set {GROUP_ENV})"
        raise click.ClickException(f"the node at {rpc_url} refused the request: {exc.message}{hint}") from None
    except ReceiptTimeout as exc:
        raise click.ClickException(str(exc)) from None


def _hex_bytes(text: str, what: str, length: int) -> bytes:
    try:
        return parse_hex(text, length=length)
    except HexError:
        raise click.BadParameter(f"must be {length} bytes of hex ({2 * length} hex digits, 0x optional); got {text!r}", param_hint=what) from None


def _parse_args(text: str, flag: str, hex_as_bytes: bool) -> list:
    """A JSON array of arguments; with --hex-as-bytes, "0x…" strings become bytes."""
    from chainnode.protocol.codec import DecodeError, expect_value

    try:
        args = json.loads(text)
    except ValueError as exc:
        raise click.BadParameter(f"is not JSON ({exc}); write a JSON array, e.g. '[5, \"alice\"]'", param_hint=flag) from None
    if not isinstance(args, list):
        raise click.BadParameter("must be a JSON array, e.g. '[5, \"alice\"]' (use '[]' for none)", param_hint=flag)
    if hex_as_bytes:
        args = _hex_strings_to_bytes(args, flag)
    try:
        expect_value(args, flag)
    except DecodeError as exc:
        raise click.BadParameter(f"{exc}; arguments are integers, strings, booleans, null, arrays and objects", param_hint=flag) from None
    return args


def _hex_strings_to_bytes(value: Any, flag: str) -> Any:
    try:
        return from_json(value)
    except ValueError as exc:
        raise click.BadParameter(f"{exc} (with --hex-as-bytes every 0x string is bytes)", param_hint=flag) from None


def _load_key(key_path: str, password_file: str | None):
    from chainnode.client import Account
    from chainnode.crypto import CryptoUnavailable
    from chainnode.security.keyfile import KeyFileError

    password = read_password(password_file, confirm=False)
    try:
        return Account.load(key_path, password)
    except (KeyFileError, CryptoUnavailable) as exc:
        raise click.ClickException(str(exc)) from None


def load_account(key_path: str, password_file: str | None):
    """The signer's account from --key (also the channel's key unless --client-key is given)."""
    account = _load_key(key_path, password_file)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:  # the signer is also who connects on the channel
        ctx.meta.setdefault(_CONNECTION, {}).setdefault("account", account)
    return account


@contextlib.contextmanager
def spinner(as_json: bool, text: str):
    """A spinner on stderr while we wait, for people; nothing for scripts (--json, pipes)."""
    if as_json or not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status(text):
        yield


def print_table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in columns:
        table.add_column(col, no_wrap=True)
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    if sys.stdout.isatty():
        Console().print(table)
        return
    # Piped or captured: wide enough never to wrap a node id, without trailing padding.
    console = Console(width=200, no_color=True)
    with console.capture() as captured:
        console.print(table)
    click.echo("\n".join(line.rstrip() for line in captured.get().splitlines()))


def show_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ---- transactions ------------------------------------------------------------------------


async def wait_receipt(client: Any, tx_hash: str, timeout_s: float) -> dict:
    from chainnode.client import ReceiptTimeout

    with trio.move_on_after(timeout_s):
        while True:
            receipt = await client.request("getTransactionReceipt", tx_hash)
            if receipt is not None:
                return receipt
            await trio.sleep(RECEIPT_POLL_MS / 1000)
    raise ReceiptTimeout(
        f"no receipt for {tx_hash} after {timeout_s:g} s; it may still be pending (`chainnode tx {tx_hash}`) "
        "or may have expired; wait longer with --timeout-s"
    )


def _send(rpc_url: str, group: str, as_json: bool, account: Any, to: bytes, method: str, args: list, gas_limit: int, wait: bool, timeout_s: float) -> None:
    """Sign, send, and (unless `wait` is false) wait for and print the receipt; exit 1 if it failed."""

    async def body(client: Any) -> dict:
        suite = (await client.group_info())["suite"]
        if account.suite.name != suite:
            # The node would only say "bad signature"; the cause is the key's suite.
            raise click.ClickException(f"the key is a {account.suite.name} key but the chain uses {suite}; create one with `chainnode account new --suite {suite} --out FILE`")
        tx = await client.build(account, to, method, args, gas_limit=gas_limit)
        tx_hash = to_hex(await client.send_transaction(tx))
        if not wait:
            return {"transactionHash": tx_hash}
        with spinner(as_json, f"waiting for the receipt of {tx_hash[:18]}…"):
            return await wait_receipt(client, tx_hash, timeout_s)

    out = run_with_client(rpc_url, group, body)
    if not wait:
        emit(as_json, out, [f"sent {out['transactionHash']}", f"its receipt: chainnode receipt {out['transactionHash']}"])
        return
    _print_receipt(out, as_json)
    if out["status"] != 0:
        _fail_receipt(out)


def _print_receipt(r: dict, as_json: bool) -> None:
    lines = [
        f"transaction {r['transactionHash']}",
        f"block:    {r['blockNumber']} (index {r['transactionIndex']})",
        f"status:   {'ok' if r['status'] == 0 else 'FAILED: ' + r['errorType'] + (': ' + r['errorMessage'] if r['errorMessage'] else '')}",
        f"gas used: {r['gasUsed']}",
    ]
    if r["contractAddress"]:
        lines.append(f"contract: {r['contractAddress']}")
    if r["status"] == 0:
        lines.append(f"output:   {show_json(r['output'])}")
    for e in r["logEntries"]:
        lines.append(f"event:    {e['name']} {show_json(e['fields'])} from {e['address']}")
    emit(as_json, r, lines)


def _fail_receipt(r: dict) -> None:
    what = r["errorType"] + (f": {r['errorMessage']}" if r["errorMessage"] else "")
    click.echo(f"Error: the transaction failed in block {r['blockNumber']}: {what}", err=True)
    sys.exit(1)


def _send_options(fn: Callable) -> Callable:
    for option in reversed([
        click.option("--key", "key_path", required=True, type=click.Path(dir_okay=False), help="The sender's key file (from `chainnode account new`)."),
        click.option("--password-file", type=click.Path(dir_okay=False), help=f"The key's password file (else ${PASSWORD_ENV}, else a prompt)."),
        click.option("--gas-limit", type=click.IntRange(1, 2**63 - 1), default=10_000_000, show_default=True, help="Gas for the transaction (the chain caps it at tx_gas_limit)."),
        click.option("--no-wait", is_flag=True, help="Return once the node accepted it; do not wait for the receipt."),
        click.option("--timeout-s", type=click.FloatRange(0.1, 3600), default=RECEIPT_TIMEOUT_S_DEFAULT, show_default=True, help="How long to wait for the receipt, in seconds."),
    ]):
        fn = option(fn)
    return fn


class _TxGroup(click.Group):
    """`chainnode tx HASH` shows a transaction; `chainnode tx send …` sends one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["show", *args]
        return super().parse_args(ctx, args)


@click.group("tx", cls=_TxGroup, subcommand_metavar="HASH | send [OPTIONS]")
def tx_group() -> None:
    """Show a transaction (`tx HASH`) or send one (`tx send`)."""


@click.command("send")
@_send_options
@click.option("--to", "to_text", required=True, help="The contract's address (0x + 40 hex digits).")
@click.option("--method", required=True, help="The contract method to call.")
@click.option("--args", "args_text", default="[]", show_default=True, help="The arguments, a JSON array.")
@click.option("--hex-as-bytes", is_flag=True, help="Pass every \"0x…\" string in --args as bytes (addresses, hashes).")
@rpc_options
def tx_send(key_path: str, password_file: str | None, gas_limit: int, no_wait: bool, timeout_s: float, to_text: str, method: str, args_text: str, hex_as_bytes: bool, rpc_url: str, group: str, as_json: bool) -> None:
    """Sign a contract call with --key's account, send it, and wait for the receipt."""
    to = _hex_bytes(to_text, "--to", ADDRESS_BYTES)
    if not method:
        raise click.BadParameter("must name a method", param_hint="--method")
    args = _parse_args(args_text, "--args", hex_as_bytes)
    account = load_account(key_path, password_file)
    _send(rpc_url, group, as_json, account, to, method, args, gas_limit, not no_wait, timeout_s)


tx_group.add_command(tx_send)


@tx_group.command("show", hidden=True)
@click.argument("tx_hash", metavar="HASH")
@rpc_options
def tx_show(tx_hash: str, rpc_url: str, group: str, as_json: bool) -> None:
    """A transaction by hash, committed or still pending."""
    h = to_hex(_hex_bytes(tx_hash, "HASH", HASH_BYTES))
    out = run_with_client(rpc_url, group, lambda c: c.request("getTransaction", h))
    if out is None:
        raise click.ClickException(f"no transaction {h} on the node at {rpc_url}, committed or pending; check the hash, or ask another node with --url")
    where = f"block {out['blockNumber']} (index {out['transactionIndex']})" if "blockNumber" in out else "pending (in the pool, not yet in a block)"
    lines = [
        f"transaction {out['hash']}",
        f"state:  {where}",
        f"from:   {out['from']}",
        f"to:     {out['to'] or '(deploy)'}",
        f"method: {out['method'] or '-'}",
        f"args:   {show_json(out['args']) if out['to'] else '[<source>, ' + show_json(out['args'][1:]) + ']'}",
        f"gas:    {out['gasLimit']}, block limit {out['blockLimit']}, nonce {out['nonce']}",
    ]
    emit(as_json, out, lines)


# ---- contracts ---------------------------------------------------------------------------


@click.group("contract")
def contract_group() -> None:
    """Deploy contracts, call them read-only, send them transactions."""


@contract_group.command("deploy")
@_send_options
@click.argument("source_path", metavar="SOURCE.py", type=click.Path(dir_okay=False))
@click.option("--args", "args_text", default="[]", show_default=True, help="Arguments of the contract's init(), a JSON array.")
@click.option("--hex-as-bytes", is_flag=True, help="Pass every \"0x…\" string in --args as bytes.")
@rpc_options
def contract_deploy(key_path: str, password_file: str | None, gas_limit: int, no_wait: bool, timeout_s: float, source_path: str, args_text: str, hex_as_bytes: bool, rpc_url: str, group: str, as_json: bool) -> None:
    """Deploy the contract in SOURCE.py; prints its address."""
    from contracts.engine import ContractRejected, Engine

    try:
        with open(source_path, "rb") as f:
            raw = f.read(SOURCE_BYTES_MAX + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {source_path}: {exc.strerror}") from None
    if len(raw) > SOURCE_BYTES_MAX:
        raise click.ClickException(f"{source_path} is larger than {SOURCE_BYTES_MAX} bytes; is it the right file?")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise click.ClickException(f"{source_path} is not UTF-8 text; is it the right file?") from None
    init_args = _parse_args(args_text, "--args", hex_as_bytes)
    # Compile here first: a rejected contract gets its line and reason now, where the chain
    # would only record "ContractRejected" in a failed receipt (and charge gas for it).
    try:
        Engine().compile(source)
    except ContractRejected as exc:
        raise click.ClickException(f"{source_path}: the contract is rejected at {exc}; see docs/contracts.md for the language") from None
    account = load_account(key_path, password_file)
    _send(rpc_url, group, as_json, account, b"", "", [source, init_args], gas_limit, not no_wait, timeout_s)


@contract_group.command("call")
@click.argument("address", metavar="ADDRESS")
@click.argument("method", metavar="METHOD")
@click.option("--args", "args_text", default="[]", show_default=True, help="The arguments, a JSON array.")
@click.option("--hex-as-bytes", is_flag=True, help="Pass every \"0x…\" string in --args as bytes.")
@click.option("--from", "from_text", default=None, help="The caller's address the contract sees as ctx.sender (default: zero address).")
@rpc_options
def contract_call(address: str, method: str, args_text: str, hex_as_bytes: bool, from_text: str | None, rpc_url: str, group: str, as_json: bool) -> None:
    """Run METHOD of the contract at ADDRESS read-only on the head state (nothing is sent)."""
    from chainnode.protocol.codec import pack

    to = to_hex(_hex_bytes(address, "ADDRESS", ADDRESS_BYTES))
    args = _parse_args(args_text, "--args", hex_as_bytes)
    params: list[Any] = [to, method, to_hex(pack(args))]  # the exact form: bytes stay bytes
    if from_text is not None:
        params.append(to_hex(_hex_bytes(from_text, "--from", ADDRESS_BYTES)))
    out = run_with_client(rpc_url, group, lambda c: c.request("call", *params))
    if out["status"] == 0:
        emit(as_json, out, [show_json(out["output"]), f"(read at block {out['blockNumber']}, gas used {out['gasUsed']})"])
        return
    if as_json:
        emit(True, out, [])
    what = out["errorType"] + (f": {out['errorMessage']}" if out["errorMessage"] else "")
    hint = ""
    if out["errorType"] == "MethodNotFound":
        hint = f"; check the method name (`chainnode contract code {to}` shows the source)"
    elif out["errorType"] == "NoContract":
        hint = "; check the address (a deploy's receipt has it as contractAddress)"
    click.echo(f"Error: {method} failed at block {out['blockNumber']}: {what}{hint}", err=True)
    sys.exit(1)


@contract_group.command("code")
@click.argument("address", metavar="ADDRESS")
@rpc_options
def contract_code(address: str, rpc_url: str, group: str, as_json: bool) -> None:
    """Print the Python source of the contract at ADDRESS."""
    to = to_hex(_hex_bytes(address, "ADDRESS", ADDRESS_BYTES))
    source = run_with_client(rpc_url, group, lambda c: c.request("getCode", to))
    if source is None:
        raise click.ClickException(f"no contract at {to}; check the address (a deploy's receipt has it as contractAddress)")
    emit(as_json, {"address": to, "source": source}, [source.rstrip("\n")])


contract_group.add_command(tx_send, "send")


# ---- blocks, receipts --------------------------------------------------------------------


@click.command("block")
@click.argument("which", metavar="[N|latest]", default="latest")
@click.option("--txs", is_flag=True, help="Include the full transactions (else only their hashes).")
@rpc_options
def block_cmd(which: str, txs: bool, rpc_url: str, group: str, as_json: bool) -> None:
    """Show block N (default: the latest)."""
    if which != "latest":
        try:
            number = int(which, 0)
        except ValueError:
            number = -1
        if number < 0:
            raise click.BadParameter(f"must be a block number or 'latest'; got {which!r}", param_hint="N")

    async def body(client: Any) -> dict:
        height = await client.request("getBlockNumber") if which == "latest" else number
        return await client.request("getBlockByNumber", height, False, not txs)

    b = run_with_client(rpc_url, group, body)
    cert = b.get("certificate")
    lines = [
        f"block {b['number']}  {b['hash']}",
        f"parent:     {b['parentHash']}",
        f"timestamp:  {b['timestamp']} ms",
        f"sealer:     {b['sealer']}",
        f"txs root:   {b['txsRoot']}",
        f"receipts:   {b['receiptsRoot']}",
        f"state root: {b['stateRoot']}",
        f"gas used:   {b['gasUsed']}",
        "certified:  " + (f"by sealers {', '.join(str(s['index']) for s in cert['signatureList'])}" if cert else "no (genesis)"),
        f"{b['txCount']} transaction(s)" + (":" if b["txCount"] else ""),
    ]
    for t in b.get("transactions", []):
        if isinstance(t, str):
            lines.append(f"  {t}")
        else:
            lines.append(f"  {t['hash']}  from {t['from']} to {t['to'] or '(deploy)'} {t['method']}")
    emit(as_json, b, lines)


@click.command("receipt")
@click.argument("tx_hash", metavar="HASH")
@click.option("--proof", is_flag=True, help="Also fetch the Merkle proof and verify it here against the block header and its commit certificate.")
@rpc_options
def receipt_cmd(tx_hash: str, proof: bool, rpc_url: str, group: str, as_json: bool) -> None:
    """Show a transaction's receipt; with --proof, verify offline that it is on the chain."""
    h = to_hex(_hex_bytes(tx_hash, "HASH", HASH_BYTES))

    async def body(client: Any) -> tuple:
        receipt = await client.request("getTransactionReceipt", h, proof)
        if receipt is None or not proof:
            return receipt, None, None
        # The sealers that certified the receipt's block (recorded on chain per set), so a
        # receipt from before a membership change still proves.
        return receipt, await client.request("getSealerList", receipt["blockNumber"]), await client.group_info()

    receipt, sealers, info = run_with_client(rpc_url, group, body)
    if receipt is None:
        raise click.ClickException(f"no receipt for {h}: it is pending or unknown to this node; `chainnode tx {h}` says which")
    if not proof:
        _print_receipt(receipt, as_json)
        if receipt["status"] != 0 and not as_json:
            click.echo(f"note: the transaction failed ({receipt['errorType']})", err=True)
        return
    try:
        verified = verify_receipt_proof(receipt, h, sealers, info["suite"])
    except ProofError as exc:
        if as_json:
            click.echo(json.dumps({**receipt, "proofVerified": False, "proofError": str(exc)}, indent=2))
        raise click.ClickException(f"proof NOT verified: {exc}") from None
    if as_json:
        emit(True, {**receipt, "proofVerified": True, "proofCheck": verified}, [])
    else:
        _print_receipt(receipt, False)
        click.echo(
            f"proof verified: the receipt is in block {verified['blockNumber']} ({verified['blockHash']}), "
            f"certified by sealers {', '.join(map(str, verified['signers']))} of {verified['sealerCount']}"
        )


def verify_receipt_proof(receipt: dict, tx_hash: str, sealers: list[dict], suite_name: str) -> dict:
    """Check, with nothing but the data given, that `receipt` is committed on the chain (the
    SDK's `verify_receipt_proof`: certificate by a quorum of `sealers`, header, sealer-set
    hash, Merkle proof, transaction hash) and summarise what was proven.

    `sealers` is the node's list for the receipt's block (`getSealerList` with its number);
    the header's sealer-set hash must match it.
    Raises `ProofError` naming the check that failed.
    """
    from chainnode.crypto import get_suite
    from chainnode.protocol.types import BlockHeader, CommitCertificate

    suite = get_suite(suite_name)
    try:
        pubs = [parse_hex(s["publicKey"]) for s in sealers]
        weights = [int(s.get("weight", 1)) for s in sealers]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProofError(f"the node's sealer list is malformed ({exc})") from None
    sdk_verify_receipt_proof(receipt, pubs, suite, tx_hash=parse_hex(tx_hash), sealer_weights=weights)
    # Verified: the header and certificate decode and are the ones proven above.
    rp = receipt["receiptProof"]
    header = BlockHeader.decode(parse_hex(rp["header"]["raw"]))
    cert = CommitCertificate.decode(parse_hex(rp["certificate"]["raw"]))
    return {
        "blockNumber": header.height,
        "blockHash": to_hex(header.hash(suite)),
        "receiptsRoot": to_hex(header.receipt_root),
        "signers": sorted(i for i, _ in cert.signatures),
        "sealerCount": len(pubs),
    }


@click.command("state")
@click.argument("address", metavar="ADDRESS")
@click.argument("key", metavar="KEY")
@click.option("--block", "block_number", type=click.IntRange(min=0), help="The state after this block (default: the head).")
@click.option("--proof", is_flag=True, help="Verify here, offline, that the value (or its absence) is in the block's certified state root.")
@rpc_options
def state_cmd(address: str, key: str, block_number: int | None, proof: bool, rpc_url: str, group: str, as_json: bool) -> None:
    """Read one state value: a contract's storage[KEY] (ADDRESS 0x…; KEY a JSON value, or
    text; "0x…" is bytes), system state (ADDRESS `system`; KEY e.g. nodes, committee,
    config/tx_count_limit) or any key (ADDRESS `raw`; KEY its hex). With --proof, prove it."""
    from chainnode.client import contract_state_key, system_state_key, verify_state_proof
    from chainnode.crypto import get_suite
    from chainnode.protocol.codec import DecodeError, unpack

    if address == "system":
        try:
            state_key, key_param = system_state_key(key), key
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="KEY") from None
    elif address == "raw":
        state_key = parse_hex_arg(key, "KEY")
        key_param = to_hex(state_key)
    else:
        contract = _hex_bytes(address, "ADDRESS", ADDRESS_BYTES)
        try:
            key_param = json.loads(key)
        except ValueError:
            key_param = key  # plain text
        try:
            state_key = contract_state_key(contract, from_json(key_param))
        except (HexError, TypeError, ValueError) as exc:
            raise click.BadParameter(str(exc), param_hint="KEY") from None
        address = to_hex(contract)

    async def body(client: Any) -> tuple:
        out = await client.request("getStateProof", address, key_param, *([] if block_number is None else [block_number]))
        if not proof:
            return out, None, None
        return out, await client.request("getSealerList", out["blockNumber"]), await client.group_info()

    out, sealers, info = run_with_client(rpc_url, group, body)
    value = parse_hex(out["value"]) if out["value"] is not None else None
    try:
        decoded = None if value is None else unpack(value, max_bytes=len(value))
        shown = json.dumps(to_json(decoded))
    except (DecodeError, TypeError, ValueError):
        decoded, shown = None, to_hex(value) if value is not None else None
    doc = {"blockNumber": out["blockNumber"], "stateKey": out["stateKey"], "value": out["value"], "decoded": to_json(decoded)}
    lines = [f"block {out['blockNumber']}: {out['stateKey']} " + ("is absent" if value is None else f"= {shown}")]
    if proof:
        try:
            pubs = [parse_hex(s["publicKey"]) for s in sealers]
            weights = [int(s.get("weight", 1)) for s in sealers]
            proven = verify_state_proof(out, state_key, pubs, get_suite(info["suite"]), sealer_weights=weights)
        except (ProofError, KeyError, TypeError, ValueError) as exc:
            if as_json:
                click.echo(json.dumps({**doc, "proofVerified": False, "proofError": str(exc)}, indent=2))
            raise click.ClickException(f"proof NOT verified: {exc}") from None
        doc |= {"proofVerified": True, "stateRoot": to_hex(proven.state_root), "proofBytes": len(parse_hex(out["proof"]))}
        lines.append(f"proof verified: {'the value' if value is not None else 'its absence'} is in the state root {to_hex(proven.state_root)} "
                     f"of block {proven.block_number}, certified by {len(pubs)} sealers ({doc['proofBytes']} bytes of proof)")
    emit(as_json, doc, lines)


def parse_hex_arg(text: str, what: str) -> bytes:
    try:
        return parse_hex(text)
    except HexError as exc:
        raise click.BadParameter(str(exc), param_hint=what) from None


# ---- the node ----------------------------------------------------------------------------


@click.command("status")
@rpc_options
def status_cmd(rpc_url: str, group: str, as_json: bool) -> None:
    """One screen about the node: chain, height, view, peers, sync, pool."""

    async def body(client: Any) -> dict:
        info = await client.group_info()
        version = await client.request("getClientVersion")
        sync = await client.request("getSyncStatus")
        consensus = await client.request("getConsensusStatus")
        pending = await client.request("getPendingTxSize")
        peers = sync["peers"]
        return {
            "node": info["nodeName"],
            "version": version["version"],
            "compatibilityVersion": version.get("compatibilityVersion"),
            "advertised": version.get("advertised", []),
            "chainId": info["chainId"],
            "groupId": info["groupId"],
            "suite": info["suite"],
            "role": consensus["role"],
            "blockNumber": sync["blockNumber"],
            "latestHash": sync["latestHash"],
            "knownHighestNumber": sync["knownHighestNumber"],
            "isSyncing": sync["isSyncing"],
            "view": consensus.get("view"),
            "leader": consensus.get("leader"),
            "inViewChange": consensus.get("in_view_change"),
            "peersConnected": sum(1 for p in peers if p["connected"]),
            "peersTotal": len(peers),
            "pendingTxs": pending,
            "oldestBlock": sync.get("oldestBlock"),  # (None from a node before 0.3.0)
            "oldestStateBlock": sync.get("oldestStateBlock"),
        }

    s = run_with_client(rpc_url, group, body)
    consensus = f"view {s['view']}, leader {s['leader']}" + (" (view change in progress)" if s["inViewChange"] else "") if s["role"] == "sealer" else "observer (follows by sync)"
    emit(as_json, s, [
        f"node:       {s['node']} at {rpc_url} (chainnode {s['version']})",
        f"chain:      {s['chainId']} / {s['groupId']}, suite {s['suite']}, rules of chainnode {s['compatibilityVersion']}",
        *(f"advertised: {a['addr']} " + ("reachable" if a["reachable"] else "not checked yet" if a["reachable"] is None else f"UNREACHABLE: {a['error']}")
          for a in s["advertised"]),
        f"height:     {s['blockNumber']}  {s['latestHash']}",
        f"consensus:  {s['role']}, {consensus}" if s["role"] == "sealer" else f"consensus:  {consensus}",
        "sync:       " + (f"syncing to {s['knownHighestNumber']}" if s["isSyncing"] else "up to date"),
        f"peers:      {s['peersConnected']} of {s['peersTotal']} connected",
        f"pool:       {s['pendingTxs']} pending transaction(s)",
        *([f"history:    {_history(s['oldestBlock'], s['oldestStateBlock'])}"] if s["oldestBlock"] is not None else []),
    ])


def _history(oldest_block: int, oldest_state: int | None) -> str:
    """What the node keeps (docs/operations.md, "Pruning")."""
    state = "no state tree" if oldest_state is None else f"state from block {oldest_state}"
    return f"transactions and receipts from block {oldest_block}, {state}"


@click.command("peers")
@rpc_options
def peers_cmd(rpc_url: str, group: str, as_json: bool) -> None:
    """The chain's other nodes as this node sees them: connected or not, announced height, software
    version, and the security protocol of the connection (/chainnode/noise-sm/1 is the SM channel)."""
    peers = run_with_client(rpc_url, group, lambda c: c.request("getSyncStatus"))["peers"]
    if as_json:
        emit(True, peers, [])
        return
    connected = sum(1 for p in peers if p["connected"])
    print_table(f"{connected} of {len(peers)} peers connected", ["index", "node id", "role", "connected", "height", "version", "security"],
                [[p["index"], p["nodeId"], p["role"], "yes" if p["connected"] else "NO", p["blockNumber"], p.get("version") or "", p.get("security") or ""]
                 for p in peers])


@click.command("sealers")
@rpc_options
def sealers_cmd(rpc_url: str, group: str, as_json: bool) -> None:
    """The sealer set (PBFT index order) that certifies the next block."""
    sealers = run_with_client(rpc_url, group, lambda c: c.request("getSealerList"))
    if as_json:
        emit(True, sealers, [])
        return
    print_table(f"{len(sealers)} sealers", ["index", "node id", "address", "weight"], [[s["index"], s["nodeId"], s["address"], s["weight"]] for s in sealers])


@click.group("config")
def config_group() -> None:
    """System configuration kept on the chain (changed by governance)."""


@config_group.command("get")
@click.argument("key", metavar="KEY")
@rpc_options
def config_get(key: str, rpc_url: str, group: str, as_json: bool) -> None:
    """The value of system config KEY (e.g. tx_count_limit) at the head."""
    out = run_with_client(rpc_url, group, lambda c: c.request("getSystemConfigByKey", key))
    emit(as_json, {"key": key, **out}, [f"{key} = {out['value']}  (at block {out['blockNumber']})"])


COMMANDS = [tx_group, contract_group, block_cmd, receipt_cmd, state_cmd, status_cmd, peers_cmd, sealers_cmd, config_group]

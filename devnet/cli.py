"""The `devnet` command line for testers: a local multi-node network with one command.

    devnet up --nodes 4              # create (first time) and start; live status until Ctrl-C
    devnet up --nodes 4 --detach     # start and return
    devnet status | logs NODE | stop NODE | start NODE | kill NODE | down | clean
    devnet demo payment|supply-chain|cross-border   # a business contract's story, on the running devnet
    devnet bench | chaos | keys
"""

from __future__ import annotations

import json
import shutil
import signal
import time
from pathlib import Path

import click
import trio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from chainnode.client import Account, CallFailed, NodeError, ReceiptTimeout, RefusedByNode, TransactionFailed
from chainnode.crypto import SUITE_NAMES
from chainnode.security.keyfile import SCRYPT_N_DEFAULT, KeyFileError, encrypt_key, write_key_file
from devnet.layout import CLIENT_ROLES, DEVNET_PASSWORD, client_files
from devnet.supervisor import LAYOUT_FILE, Devnet, DevnetError

DEFAULT_DIR = "devnet-data"
HELLO_CONTRACT = "def hello():\n    return 'hello from devnet'\n"
console = Console(width=160) if not Console().is_terminal else Console()

dir_option = click.option("--dir", "folder", type=click.Path(file_okay=False), default=DEFAULT_DIR, show_default=True, help="The devnet folder.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _open(folder: str) -> Devnet:
    try:
        # A node this command (re)starts keeps running after it, like `devnet up --detach`'s.
        return Devnet(Path(folder), bind_nodes=False)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None


def _table(rows: list[dict]) -> Table:
    table = Table(title="chainnode devnet", title_justify="left")
    for col in ("node", "role", "state", "pid", "height", "peers", "pending", "channel (dApps)", "JSON-RPC (local)", "p2p"):
        table.add_column(col, no_wrap=True)
    dash = lambda v: "-" if v is None else str(v)  # noqa: E731
    for r in rows:
        state = "up" if r["pid"] else "[red]down[/red]"
        table.add_row(r["node"], r["role"], state, dash(r["pid"]), dash(r["height"]), dash(r["peers"]), dash(r["pending"]), r.get("channel") or "-", r["rpc"], r["p2p"])
    return table


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """devnet: a local multi-node chainnode network for testing."""


@main.command()
@dir_option
@json_option
def migrate(folder: str, as_json: bool) -> None:
    """Convert a devnet made by chainnode 0.1 to X.509 certificates (same keys; the chain restarts at block 0)."""
    try:
        net = Devnet.migrate(Path(folder))
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    lines = [f"converted {folder} to X.509 certificates: {len(net.nodes)} node(s), same keys and peer ids; block 0 is new, "
             f"so each node's chain starts again", f"start it with `devnet up --dir {folder}`"]
    if as_json:
        click.echo(json.dumps({"dir": str(Path(folder).resolve()), "nodes": [n.name for n in net.nodes]}))
    else:
        for line in lines:
            console.print(line)


@main.command()
@click.option("--nodes", type=click.IntRange(1, 32), default=4, show_default=True, help="Sealers.")
@click.option("--observers", type=click.IntRange(0, 16), default=0, show_default=True)
@click.option("--suite", type=click.Choice(SUITE_NAMES), default="sm", show_default=True)
@click.option("--p2p-port", type=click.IntRange(1024, 65000), default=30300, show_default=True, help="First libp2p port.")
@click.option("--rpc-port", type=click.IntRange(1024, 65000), default=8545, show_default=True, help="First JSON-RPC port (plain HTTP, loopback).")
@click.option("--channel-port", type=click.IntRange(1024, 65000), default=20200, show_default=True, help="First channel port (dApps, with a client certificate).")
@click.option("--detach", is_flag=True, help="Return once the network commits blocks; leave the nodes running.")
@dir_option
@json_option
def up(nodes: int, observers: int, suite: str, p2p_port: int, rpc_port: int, channel_port: int, detach: bool, folder: str, as_json: bool) -> None:
    """Create the network (first time), start every node, check it commits, show it."""
    path = Path(folder)
    created = False
    try:
        if not (path / LAYOUT_FILE).exists():
            Devnet.create(path, sealers=nodes, observers=observers, suite=suite, p2p_port_base=p2p_port, rpc_port_base=rpc_port,
                          channel_port_base=channel_port)
            created = True
        # In the foreground the nodes live and die with this command, even if it is SIGKILLed.
        net = Devnet(path, bind_nodes=not detach)
        with console.status("starting nodes...", spinner="dots") if not as_json else _nullcontext():
            for n in net.nodes:
                net.start(n.name)
            for n in net.nodes:
                net.wait_rpc(n.name)
            if created:
                height = trio.run(_hello, net)
                _wait_all_at(net, height)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    rows = net.status()
    clients = {role: [str(f) for f in client_files(path, role)] for role in CLIENT_ROLES if client_files(path, role)[1].exists()}
    if as_json:
        click.echo(json.dumps({"dir": str(path.resolve()), "nodes": rows, "clients": clients}, indent=2))
    else:
        console.print(_table(rows))
        first = net.nodes[0]
        if first.channel_url:
            console.print(f"channel: {first.channel_url} (and the others above), for dApps with a client certificate; "
                          f"JSON-RPC {first.rpc_url} on this machine only")
            for role, (key, chain) in clients.items():
                console.print(f"client certificate ({role}): --key {key} --client-cert {chain}")
            user_key, user_chain = clients.get("user", ("KEY", "CHAIN"))
            hint = f"--url {first.channel_url} --key {user_key} --client-cert {user_chain} --password-file {first.folder / 'password.txt'}"
        else:
            console.print(f"JSON-RPC: {first.rpc_url} (and the others above): this devnet has no CA, so no channel port")
            hint = f"--url {first.rpc_url}"
        console.print(f"key files' password: {DEVNET_PASSWORD!r}; try `chainnode status {hint}`")
        if (path / "accounts").is_dir():
            console.print(f"block 0 holds the business contracts payment, supply_chain and cross_border (role accounts in "
                          f"{path / 'accounts'}); try `devnet demo payment --dir {folder}` and `chainnode gov committee {hint}`")
    if detach:
        if not as_json:
            console.print(f"detached: `devnet status --dir {folder}` to look, `devnet down --dir {folder}` to stop")
        return
    console.print("live status; Ctrl-C stops the nodes")
    # SIGTERM (a service manager, or `kill`) stops the nodes too, like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda signum, frame: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        with Live(_table(rows), console=console, refresh_per_second=2) as live:
            while True:
                time.sleep(1)
                live.update(_table(net.status()))
    except KeyboardInterrupt:
        pass
    _down(net)


async def _hello(net: Devnet) -> int:
    """Commit one transaction (through the first node's channel port, as a dApp would):
    proof that the network agrees on blocks. Its block number."""
    async with net.client(net.nodes[0].url, timeout_s=30) as client:
        receipt = await client.deploy(Account.generate((await client.group_info())["suite"]), HELLO_CONTRACT, [], timeout_s=60)
    return receipt.block_number


def _wait_all_at(net: Devnet, height: int, timeout_s: float = 30.0) -> None:
    """Until every node has committed `height` (so the table shows one chain, not a race)."""
    deadline = time.monotonic() + timeout_s
    for n in net.nodes:
        while net.rpc(n.name, "getBlockNumber") < height:
            if time.monotonic() > deadline:
                raise DevnetError(f"{n.name} did not reach block {height} within {timeout_s} s; see `devnet logs {n.name}`")
            time.sleep(0.05)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def _down(net: Devnet) -> list[str]:
    stopped = []
    for n in net.nodes:
        try:
            if net.stop(n.name):
                stopped.append(n.name)
        except DevnetError:
            net.kill(n.name)
            stopped.append(n.name)
    console.print(f"stopped {', '.join(stopped) or 'nothing (no node was running)'}")
    return stopped


@main.command()
@dir_option
@json_option
def status(folder: str, as_json: bool) -> None:
    """Each node: up or down, height, peers, pending transactions, endpoints."""
    rows = _open(folder).status()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        console.print(_table(rows))


@main.command()
@click.argument("node")
@click.option("--lines", "-n", type=int, default=50, show_default=True)
@dir_option
def logs(node: str, lines: int, folder: str) -> None:
    """Print the end of a node's log."""
    net = _open(folder)
    try:
        text = net.log(node)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo("\n".join(text.splitlines()[-lines:]))


def _each(action: str, node: str, folder: str) -> None:
    net = _open(folder)
    try:
        if action == "start":
            net.start(node)
            net.wait_rpc(node)
            done = True
        else:
            done = getattr(net, action)(node)
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{node}: {action} {'done' if done else '(it was not running)'}")


@main.command()
@click.argument("node")
@dir_option
def start(node: str, folder: str) -> None:
    """Start one node."""
    _each("start", node, folder)


@main.command()
@click.argument("node")
@dir_option
def stop(node: str, folder: str) -> None:
    """Stop one node cleanly (SIGTERM)."""
    _each("stop", node, folder)


@main.command()
@click.argument("node")
@dir_option
def kill(node: str, folder: str) -> None:
    """Kill one node at once (SIGKILL), as a crash would."""
    _each("kill", node, folder)


@main.command()
@dir_option
def down(folder: str) -> None:
    """Stop every node (the data stays; `devnet up` resumes)."""
    _down(_open(folder))


@main.command()
@dir_option
@click.option("--yes", is_flag=True, help="Do not ask.")
def clean(folder: str, yes: bool) -> None:
    """Stop every node and delete the devnet folder."""
    path = Path(folder)
    if not path.exists():
        click.echo(f"{folder} does not exist; nothing to clean")
        return
    if (path / LAYOUT_FILE).exists():
        _down(Devnet(path, bind_nodes=False))
    elif any(path.iterdir()):
        raise click.ClickException(f"{folder} is not a devnet folder (no {LAYOUT_FILE}); not deleting it")
    if not yes and not click.confirm(f"delete {path.resolve()}?"):
        return
    shutil.rmtree(path)
    click.echo(f"deleted {folder}")


@main.command()
@click.argument("story", type=click.Choice(["payment", "supply-chain", "cross-border"]))
@click.option("--node", default=None, help="The node to send to (default: the first one running).")
@click.option("--http", "use_http", is_flag=True, help="Talk to the node's plain HTTP port instead of its channel port.")
@dir_option
def demo(story: str, node: str | None, use_http: bool, folder: str) -> None:
    """Play a business contract's story on the running devnet, step by step (docs/business-contracts.md)."""
    from rich.text import Text

    from devnet.demo import StoryFailed, run_story

    net = _open(folder)
    try:
        if node is not None:
            target = net.node(node)
            if net.pid(node) is None:
                raise click.ClickException(f"{node} is not running; start it with `devnet start {node} --dir {folder}` (or `devnet up --dir {folder}`)")
        else:
            running = [n for n in net.nodes if net.pid(n.name) is not None]
            if not running:
                raise click.ClickException(f"the devnet in {folder} is not running; start it with `devnet up --dir {folder}`")
            target = running[0]
    except DevnetError as exc:
        raise click.ClickException(str(exc)) from None

    def say(text: str, style: str | None = None) -> None:
        console.print(Text(text, style=style or ""), soft_wrap=True)

    url = target.rpc_url if use_http else target.url
    console.print(Text(f"devnet demo {story}: on {target.name} ({url})", style="bold"))
    try:
        result = trio.run(run_story, story, url, folder, say)
    except StoryFailed as exc:
        raise click.ClickException(f"the {story} story failed: {exc}") from None
    except (KeyFileError, ConnectionError, NodeError, TransactionFailed, ReceiptTimeout, CallFailed, RefusedByNode) as exc:
        raise click.ClickException(f"the {story} story failed: {exc}") from None
    console.print(Text(f"the {story} story ran to its end: {result['transactions']} transactions, every outcome checked", style="bold"))


@main.command()
@click.option("--txs", type=click.IntRange(1, 1_000_000), default=5000, show_default=True, help="Transfers to send.")
@click.option("--rate", type=click.FloatRange(1, None), default=None, help="Target transactions per second (default: as fast as the nodes take them).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None, help="Also write the results to this file.")
@click.option("--http", "use_http", is_flag=True, help="Send to the nodes' plain HTTP ports instead of their channel ports (to compare).")
@dir_option
def bench(txs: int, rate: float | None, json_path: str | None, use_http: bool, folder: str) -> None:
    """Send pre-signed payment transfers to every node; report TPS, latency, CPU and memory."""
    from rich.progress import BarColumn, Progress, TextColumn

    from devnet.bench import run_bench

    net = _open(folder)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"), console=console) as bar:
        task = bar.add_task("starting", total=1)

        def progress(stage: str, done: int, total: int) -> None:
            bar.update(task, description=stage, completed=done, total=total)

        try:
            result = trio.run(lambda: run_bench(net, txs, rate_tps=rate, progress=progress, http=use_http))
        except (RuntimeError, DevnetError, ConnectionError, RefusedByNode) as exc:
            raise click.ClickException(str(exc)) from None
    if json_path:
        Path(json_path).write_text(json.dumps(result.as_dict(), indent=2) + "\n")
    console.print(
        f"{result.committed}/{result.transactions} committed in {result.seconds} s: [bold]{result.tps:,.0f} TPS[/bold] "
        f"({result.sealers} sealers; sent over the {result.transport} ports in {result.send_seconds} s)"
    )
    console.print(f"commit latency p50 {result.latency_p50_s} s, p95 {result.latency_p95_s} s, p99 {result.latency_p99_s} s")
    console.print(f"raw SM2 verify on this machine: {result.raw_sm2_verify_per_s:,.0f}/s per core; TPS / raw = {result.tps_per_raw_verify:.2f}")
    table = Table(title="nodes during the run", title_justify="left")
    for col in ("node", "CPU s", "CPU %", "RSS MiB"):
        table.add_column(col)
    for n in result.nodes:
        table.add_row(n["node"], str(n["cpu_s"]), str(n["cpu_pct"]), str(n["rss_mib"]))
    console.print(table)


@main.command()
@click.option("--duration-s", type=click.FloatRange(10, 3600), default=300, show_default=True, help="How long the load and the faults last.")
@click.option("--rate", type=click.FloatRange(1, 2000), default=100, show_default=True, help="Transfers per second offered, round-robin over the nodes.")
@click.option("--seed", type=click.IntRange(0, None), default=None, help="Replay a run's fault schedule (default: a new one; the report prints it).")
@click.option("--converge-timeout-s", type=click.FloatRange(1, 3600), default=120, show_default=True, help="How long to wait for the nodes to agree after the load.")
@click.option("--http", "use_http", is_flag=True, help="Send the load to the nodes' plain HTTP ports instead of their channel ports.")
@dir_option
@json_option
def chaos(duration_s: float, rate: float, seed: int | None, converge_timeout_s: float, use_http: bool, folder: str, as_json: bool) -> None:
    """Load the running devnet while killing, pausing and restarting sealers; audit what it acknowledged.

    Exits 1 if an acknowledged transaction was lost, the nodes forked, their receipts
    differ, they did not converge, or a node crashed (docs/operations.md#chaos).
    """
    from devnet.chaos import run_chaos

    net = _open(folder)
    # With --json, stdout holds only the report; the running commentary goes to stderr.
    say = (lambda text: click.echo(text, err=True)) if as_json else (lambda text: console.print(text, highlight=False))
    try:
        report = trio.run(lambda: run_chaos(net, duration_s=duration_s, rate_tps=rate, seed=seed, converge_timeout_s=converge_timeout_s, say=say, http=use_http))
    except (DevnetError, ConnectionError, NodeError, TransactionFailed, ReceiptTimeout, RefusedByNode) as exc:
        raise click.ClickException(f"devnet chaos could not run: {exc}") from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
    else:
        r = report
        table = Table(title=f"devnet chaos, seed {r.seed}: {r.duration_s:g} s at {r.rate_tps:g} tx/s, {len(r.faults)} fault(s)", title_justify="left")
        table.add_column("figure")
        table.add_column("value", justify="right")
        rows = [
            ("acknowledged", r.acknowledged), ("committed", r.committed), ("lost (acknowledged, never committed)", r.lost),
            ("not acknowledged (refused or no answer)", r.not_acknowledged),
            ("forks (heights compared)", f"{r.forks} ({r.heights_compared})"),
            ("receipts identical on every node (compared)", f"{'yes' if r.receipts_identical else 'NO'} ({r.receipts_compared})"),
            ("convergence after the last fault, s", "did not converge" if r.convergence_s is None else r.convergence_s),
            ("longest stall with a quorum of sealers up, s", r.longest_stall_s),
            ("blocks (during faults)", f"{r.blocks} ({r.blocks_during_faults})"),
            ("view changes (the most on one node)", r.view_changes), ("node crashes", r.crash_count),
        ]
        for name, value in rows:
            table.add_row(name, str(value))
        console.print(table)
        kinds: dict[str, int] = {}
        for crash in r.crashes:
            key = f"{crash['node']}: {crash['how']} {crash.get('detail', '')}".strip()
            kinds[key] = kinds.get(key, 0) + 1
        for key, count in kinds.items():
            console.print(f"crash x{count}: {key}", highlight=False)
        for error, count in sorted(r.send_errors.items(), key=lambda kv: -kv[1])[:5]:
            console.print(f"not acknowledged x{count}: {error}", highlight=False)
        console.print(("PASS" if r.ok else "FAIL") + f" in {r.seconds} s; `--seed {r.seed}` replays these faults")
    if not report.ok:
        raise SystemExit(1)


@main.command()
@click.option("--nodes", type=click.IntRange(1, 64), default=4, show_default=True)
@click.option("--suite", type=click.Choice(SUITE_NAMES), default="sm", show_default=True)
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="devnet-keys", show_default=True)
@click.option("--scrypt-n", type=int, default=SCRYPT_N_DEFAULT, hidden=True)
@json_option
def keys(nodes: int, suite: str, out_dir: str, scrypt_n: int, as_json: bool) -> None:
    """Generate one encrypted key file per node (password "devnet")."""
    from chainnode.crypto import get_suite

    s = get_suite(suite)
    out = Path(out_dir)
    rows = []
    for i in range(nodes):
        node_dir = out / f"node{i}"
        node_dir.mkdir(parents=True, exist_ok=True)
        priv, _ = s.generate_keypair()
        doc = encrypt_key(suite, priv, DEVNET_PASSWORD, scrypt_n=scrypt_n)
        try:
            write_key_file(node_dir / "node.key", doc)
        except KeyFileError as exc:
            raise click.ClickException(f"{exc} (or run with a fresh --out)") from None
        rows.append({"node": f"node{i}", "key": str(node_dir / "node.key"), "address": doc["address"]})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
    else:
        for row in rows:
            click.echo(f"{row['node']}: 0x{row['address']}  {row['key']}")


if __name__ == "__main__":
    main()

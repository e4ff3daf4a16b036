"""`devnet chaos`: a running devnet under load and faults, then an audit of what it promised.

For `duration_s` (longer if restarts are slow: every planned fault happens) it sends
~`rate_tps` payment transfers a second (the `devnet bench` load,
devnet/bench.py) round-robin over the nodes that are up, and meanwhile, at random intervals,
SIGKILLs a sealer and restarts it, SIGSTOPs one for a while and SIGCONTs it, or kills two at
once and restarts them. The fault schedule is drawn from `seed` before the run, so a seed
replays the same faults. Then it stops the load, waits until every node has the same head and
every acknowledged transaction is committed, and audits the nodes' chains:

- acknowledged: sendTransaction returned the hash; committed: of those, in a block;
  lost: acknowledged but in no node's chain after convergence (the number that must be 0);
- forks: heights where two nodes hold different blocks; receipts: a sample of receipts
  fetched from every node, byte for byte;
- convergence: seconds from the last fault's end (or the load's end, if later) until every
  node agrees on the head and holds every acknowledged transaction;
- the longest stall: seconds without a new block while a quorum of sealers was up;
- blocks committed while a fault was on, view changes, node crashes (a process that exited
  on its own, or a Traceback in a node's log during the run).

Loopback only, bounded in time (duration + convergence timeout) and in count (the load rate,
RPC batches, receipts sampled).
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from typing import Callable

import httpx
import trio

from chainnode.client import Client, NodeError
from chainnode.protocol.hexstr import parse_hex, to_hex
from devnet.bench import Transfers, send_batch, send_transactions
from devnet.supervisor import Devnet, DevnetError, process_alive

GAP_S = (10.0, 40.0)  # between the end of one fault and the start of the next
PAUSE_S = 15.0  # how long a SIGSTOPped sealer stays stopped
DOWN_S = (1.0, 5.0)  # how long a killed sealer stays down before its restart
FULL_SCALE_RUN_S = 120.0  # shorter runs scale gaps and holds down, so they still see faults
HOLD_MIN_S = 1.0
QUIET_END_S = 5.0  # the load goes on this long after the last fault
KINDS = ("kill", "pause", "kill2")

SENDS_PER_S = 10  # the load goes out in batches, this many a second (round-robin over nodes)
SENDER_ACCOUNTS = 4
SENDS_IN_FLIGHT_MAX = 32  # a stopped node holds requests until they time out
SEND_TIMEOUT_S = 5.0
POLL_TIMEOUT_S = 2.0
POLL_INTERVAL_S = 0.25
RESTART_TIMEOUT_S = 60.0
BLOCKS_PER_BATCH = 100  # the nodes' default rpc_batch_max
RECEIPT_SAMPLE = 200
BLOCK_LIMIT_MARGIN = 10
LOG_SIGNATURES_MAX = 20
CRASHES_LISTED_MAX = 50


@dataclass(frozen=True)
class Fault:
    kind: str  # kill | pause | kill2
    nodes: tuple[str, ...]
    gap_s: float  # after the previous fault's end (or the start of the load)
    hold_s: float  # down, or stopped, this long


def schedule(sealers: list[str], duration_s: float, seed: int) -> list[Fault]:
    """The faults of a run: same sealers, duration and seed, same faults."""
    rng = random.Random(seed)
    scale = min(1.0, duration_s / FULL_SCALE_RUN_S)
    kinds = KINDS if len(sealers) >= 2 else KINDS[:2]
    faults, t = [], 0.0
    while sealers:
        kind = rng.choice(kinds)
        gap = rng.uniform(*GAP_S) * scale
        hold = max(HOLD_MIN_S, (PAUSE_S if kind == "pause" else rng.uniform(*DOWN_S)) * scale)
        nodes = tuple(sorted(rng.sample(sealers, 2 if kind == "kill2" else 1)))
        if t + gap + hold > duration_s - QUIET_END_S:
            break
        faults.append(Fault(kind, nodes, round(gap, 1), round(hold, 1)))
        t += gap + hold
    return faults


@dataclass
class ChaosReport:
    seed: int
    duration_s: float
    rate_tps: float
    nodes: int
    sealers: int
    faults: list[dict] = field(default_factory=list)  # what was done, when (s after the load started)
    acknowledged: int = 0
    committed: int = 0
    lost: int = 0
    not_acknowledged: int = 0  # refused, or the node did not answer
    send_errors: dict[str, int] = field(default_factory=dict)  # first words of each error -> count
    heights_compared: int = 0
    forks: int = 0
    receipts_compared: int = 0
    receipts_identical: bool = True  # False too if a node could not answer (see audit_unreachable)
    audit_unreachable: list[str] = field(default_factory=list)  # nodes that did not answer the audit
    converged: bool = False
    convergence_s: float | None = None
    longest_stall_s: float = 0.0
    blocks: int = 0
    blocks_during_faults: int = 0
    view_changes: int = 0  # the most any node went through
    view_changes_per_node: dict[str, int] = field(default_factory=dict)
    pending_after: dict[str, int | None] = field(default_factory=dict)
    crash_count: int = 0
    crashes: list[dict] = field(default_factory=list)  # the first CRASHES_LISTED_MAX
    log_signatures: dict[str, int] = field(default_factory=dict)  # warnings and errors in the nodes' logs during the run
    load_s: float = 0.0  # how long the load ran
    seconds: float = 0.0  # the whole run, setup and audit included

    def add_crash(self, crash: dict) -> None:
        self.crash_count += 1
        if len(self.crashes) < CRASHES_LISTED_MAX:
            self.crashes.append(crash)

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.forks == 0 and not self.crash_count and self.receipts_identical and self.converged

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


class _Rpc:
    """JSON-RPC to the devnet's nodes over one HTTP client; None when a node does not answer."""

    def __init__(self, http: httpx.AsyncClient, group: str) -> None:
        self.http, self.group = http, group

    async def call(self, url: str, method: str, *params, timeout_s: float = POLL_TIMEOUT_S):
        out = await self.batch(url, [(method, params)], timeout_s=timeout_s)
        return None if out is None else out[0]

    async def batch(self, url: str, calls: list[tuple[str, tuple]], *, timeout_s: float = POLL_TIMEOUT_S) -> list | None:
        body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": [self.group, "", *p]} for i, (m, p) in enumerate(calls)]
        try:
            reply = (await self.http.post(url, json=body, timeout=timeout_s)).json()
        except (httpx.HTTPError, OSError, ValueError):
            return None
        if not isinstance(reply, list):
            return None
        by_id = {r.get("id"): r.get("result") for r in reply if isinstance(r, dict)}
        return [by_id.get(i) for i in range(len(calls))]


class _Chaos:
    def __init__(self, net: Devnet, duration_s: float, rate_tps: float, seed: int, say: Callable[[str], None]) -> None:
        self.net, self.duration_s, self.rate_tps, self.say = net, duration_s, rate_tps, say
        self.urls = {n.name: n.rpc_url for n in net.nodes}
        self.sealers = [n.name for n in net.nodes if n.role == "sealer"]
        f = (len(self.sealers) - 1) // 3
        self.quorum = len(self.sealers) - f
        self.plan = schedule(self.sealers, duration_s, seed)
        self.report = ChaosReport(seed=seed, duration_s=duration_s, rate_tps=rate_tps, nodes=len(net.nodes), sealers=len(self.sealers))
        self.faulted: set[str] = set()  # killed, stopped or restarting: not sent to, not a crash
        self.heads: dict[str, int] = {}
        self.max_head = 0
        self.acked: set[bytes] = set()
        self.committed: set[bytes] = set()  # followed during the run (the audit rereads every chain)
        self.followed = 0
        self.load_running = True
        self.faults_done = False
        self.last_fault_end = 0.0
        self.vc_seen: dict[str, tuple[int | None, int]] = {}  # node -> (pid, view_changes counter)
        self.t0 = self.load_end = 0.0  # trio clock at the load's start; seconds after it
        self.rpc: _Rpc | None = None
        self.group = ""

    def now(self) -> float:
        return trio.current_time() - self.t0

    # ---- faults ------------------------------------------------------------------------

    async def _gone(self, name: str, pid: int) -> None:
        while self.net.pid(name) is not None or process_alive(pid):
            self.net.exit_code(name)  # reaps it if this process started it
            await trio.sleep(0.05)

    async def _restart(self, name: str) -> None:
        self.net.start(name)
        with trio.move_on_after(RESTART_TIMEOUT_S):
            while True:
                code = self.net.exit_code(name)
                if code is not None:
                    self._crash(name, f"exited with status {code} while restarting")
                    self.net.start(name)
                elif await self.rpc.call(self.urls[name], "getBlockNumber", timeout_s=1.0) is not None:
                    return
                await trio.sleep(0.2)
        self._crash(name, f"did not answer RPC within {RESTART_TIMEOUT_S:.0f} s of its restart")

    def _crash(self, name: str, how: str) -> None:
        self.report.add_crash({"node": name, "at_s": round(self.now(), 1), "how": how})
        self.say(f"{self.now():6.1f} s  CRASH {name}: {how}")

    async def inject(self, fault: Fault) -> None:
        pids = {name: self.net.pid(name) for name in fault.nodes}
        self.faulted.update(fault.nodes)
        start = self.now()
        self.say(f"{start:6.1f} s  {fault.kind} {', '.join(fault.nodes)} for {fault.hold_s} s")
        try:
            if fault.kind == "pause":
                for pid in pids.values():
                    if pid:
                        os.kill(pid, signal.SIGSTOP)
                await trio.sleep(fault.hold_s)
            else:
                for pid in pids.values():
                    if pid:
                        os.kill(pid, signal.SIGKILL)
                for name, pid in pids.items():
                    if pid:
                        await self._gone(name, pid)
                await trio.sleep(fault.hold_s)
        finally:
            for name, pid in pids.items():
                if fault.kind == "pause" and pid and process_alive(pid):
                    os.kill(pid, signal.SIGCONT)
        if fault.kind != "pause":
            async with trio.open_nursery() as nursery:
                for name in fault.nodes:
                    nursery.start_soon(self._restart, name)
        self.faulted.difference_update(fault.nodes)
        self.last_fault_end = self.now()
        self.say(f"{self.last_fault_end:6.1f} s  {', '.join(fault.nodes)} back")
        self.report.faults.append({"at_s": round(start, 1), "kind": fault.kind, "nodes": list(fault.nodes), "hold_s": fault.hold_s,
                                   "restored_at_s": round(self.last_fault_end, 1)})

    async def injector(self) -> None:
        for fault in self.plan:
            await trio.sleep(fault.gap_s)
            await self.inject(fault)
        self.faults_done = True

    # ---- load --------------------------------------------------------------------------

    async def load(self, transfers: Transfers, http: httpx.AsyncClient, channels: dict[str, Client] | None = None) -> None:
        """Offer the load; to each node's channel port through `channels` (a Client per node),
        or to its HTTP port when None."""
        batch = max(1, min(BLOCKS_PER_BATCH, round(self.rate_tps / SENDS_PER_S)))
        interval_s = batch / self.rate_tps
        window = transfers.info["blockLimitWindow"]
        limiter = trio.CapacityLimiter(SENDS_IN_FLIGHT_MAX)
        names = list(self.urls)

        async def send(name: str, txs) -> None:
            async with limiter:
                try:
                    if channels is None:
                        errors = await send_batch(http, self.urls[name], self.group, txs)
                    else:
                        errors = await send_transactions(channels[name], txs)
                except (httpx.HTTPError, OSError, ValueError, NodeError) as exc:  # ConnectionError is an OSError
                    errors = [f"no answer: {type(exc).__name__}"] * len(txs)
            for tx, error in zip(txs, errors):
                if error is None:
                    self.acked.add(tx.hash(transfers.suite))
                else:
                    self.report.not_acknowledged += 1
                    key = " ".join(error.split()[:6])
                    self.report.send_errors[key] = self.report.send_errors.get(key, 0) + 1

        async with trio.open_nursery() as nursery:
            k, next_t = 0, self.t0
            # Every planned fault happens, however slow restarts are on this machine: the
            # load then runs past duration_s until QUIET_END_S after the last one.
            while self.now() < self.duration_s or not self.faults_done or self.now() < self.last_fault_end + QUIET_END_S:
                up = [n for n in names if n not in self.faulted]
                if not up:
                    pass  # every node is down: a client would have nowhere to send either
                elif limiter.available_tokens == 0:
                    self.report.not_acknowledged += batch
                    key = f"not sent: {SENDS_IN_FLIGHT_MAX} requests already waiting for an answer"
                    self.report.send_errors[key] = self.report.send_errors.get(key, 0) + batch
                else:
                    name = up[k % len(up)]
                    # Within the window of the node it goes to, which may lag (just restarted).
                    txs = transfers.sign(batch, block_limit=self.heads.get(name, self.max_head) + window - BLOCK_LIMIT_MARGIN)
                    nursery.start_soon(send, name, txs)
                    k += 1
                next_t += interval_s
                await trio.sleep_until(next_t)
        self.load_running = False
        self.load_end = self.now()
        self.report.load_s = round(self.load_end, 1)

    # ---- watching ----------------------------------------------------------------------

    async def _poll_heads(self) -> None:
        async def one(name: str) -> None:
            head = await self.rpc.call(self.urls[name], "getBlockNumber")
            if isinstance(head, int):
                self.heads[name] = head

        async with trio.open_nursery() as nursery:
            for name in self.urls:
                if name not in self.faulted:
                    nursery.start_soon(one, name)

    async def _poll_view_changes(self) -> None:
        for name in self.urls:
            if name in self.faulted:
                continue
            status = await self.rpc.call(self.urls[name], "getConsensusStatus")
            if not isinstance(status, dict) or "stats" not in status:
                continue
            pid, count = self.net.pid(name), int(status["stats"].get("view_changes", 0))
            before = self.vc_seen.get(name)
            if before is not None:  # a restarted node counts from 0 again
                gained = count if before[0] != pid else max(0, count - before[1])
                self.report.view_changes_per_node[name] = self.report.view_changes_per_node.get(name, 0) + gained
            self.vc_seen[name] = (pid, count)

    async def monitor(self, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self._poll_heads()
        await self._poll_view_changes()
        self.max_head = max(self.heads.values(), default=0)
        self.followed = self.max_head
        task_status.started()
        last_block = quorum_since = self.now()
        had_quorum = True
        tick = 0
        while True:
            await self._poll_heads()
            now = self.now()
            head = max(self.heads.values(), default=0)
            if head > self.max_head:
                self.report.blocks += head - self.max_head
                if self.faulted:
                    self.report.blocks_during_faults += head - self.max_head
                self.max_head, last_block = head, now
            sealers_up = sum(1 for s in self.sealers if s not in self.faulted)
            if sealers_up >= self.quorum and not had_quorum:
                quorum_since = now
            had_quorum = sealers_up >= self.quorum
            if had_quorum and self.load_running:
                self.report.longest_stall_s = max(self.report.longest_stall_s, round(now - max(last_block, quorum_since), 1))
            for name in self.urls:  # a node that is down and nobody took it down crashed
                if name not in self.faulted and self.net.pid(name) is None:
                    self._crash(name, "the process exited by itself; restarted")
                    self.faulted.add(name)
                    await self._restart(name)
                    self.faulted.discard(name)
            await self._follow()
            tick += 1
            if tick % 4 == 0:
                await self._poll_view_changes()
            await trio.sleep(POLL_INTERVAL_S)

    async def _follow(self) -> None:
        """Collect the transactions of blocks up to the highest head, from nodes that have them."""
        while self.followed < self.max_head:
            have = [n for n, h in self.heads.items() if h > self.followed and n not in self.faulted]
            if not have:
                return
            heights = list(range(self.followed + 1, min(self.max_head, self.followed + BLOCKS_PER_BATCH) + 1))
            node = have[self.followed % len(have)]
            heights = [h for h in heights if h <= self.heads[node]]
            blocks = await self.rpc.batch(self.urls[node], [("getBlockByNumber", (h, False, True)) for h in heights], timeout_s=SEND_TIMEOUT_S)
            if blocks is None or any(b is None for b in blocks):
                return
            for block in blocks:
                self.committed.update(parse_hex(t) for t in block["transactions"])
            self.followed = heights[-1]

    async def converge(self, timeout_s: float) -> None:
        start = max(self.load_end, self.last_fault_end)
        with trio.move_on_after(max(0.0, start + timeout_s - self.now())):
            while True:
                heads = dict(self.heads)
                if (not self.faulted and len(heads) == len(self.urls) and len(set(heads.values())) == 1
                        and all(self.net.pid(n) is not None for n in self.urls) and self.acked <= self.committed):
                    self.report.converged = True
                    self.report.convergence_s = round(max(0.0, self.now() - start), 1)
                    return
                await trio.sleep(POLL_INTERVAL_S)

    # ---- audit -------------------------------------------------------------------------

    async def _chain(self, name: str, head: int) -> dict[int, tuple[str, list[str]]]:
        """height -> (block hash, transaction hashes) of a node's chain up to `head`."""
        chain: dict[int, tuple[str, list[str]]] = {}
        for first in range(1, head + 1, BLOCKS_PER_BATCH):
            heights = list(range(first, min(head, first + BLOCKS_PER_BATCH - 1) + 1))
            blocks = await self.rpc.batch(self.urls[name], [("getBlockByNumber", (h, False, True)) for h in heights], timeout_s=60)
            for h, block in zip(heights, blocks or []):
                if block is not None:
                    chain[h] = (block["hash"], block["transactions"])
        return chain

    async def audit(self) -> None:
        chains = {}
        for name in self.urls:
            head = await self.rpc.call(self.urls[name], "getBlockNumber", timeout_s=10)
            if not isinstance(head, int):
                self.report.audit_unreachable.append(name)
            chains[name] = await self._chain(name, head) if isinstance(head, int) else {}
            self.report.pending_after[name] = await self.rpc.call(self.urls[name], "getPendingTxSize", timeout_s=10)
        heights = set().union(*(c.keys() for c in chains.values()))
        self.report.heights_compared = len(heights)
        self.report.forks = sum(1 for h in heights if len({c[h][0] for c in chains.values() if h in c}) > 1)
        on_chain = {parse_hex(t) for c in chains.values() for _, txs in c.values() for t in txs}
        self.report.acknowledged = len(self.acked)
        self.report.committed = len(self.acked & on_chain)
        self.report.lost = len(self.acked - on_chain)
        sample = sorted(self.acked & on_chain)
        sample = random.Random(self.report.seed).sample(sample, min(RECEIPT_SAMPLE, len(sample)))
        for first in range(0, len(sample), BLOCKS_PER_BATCH):
            part = sample[first:first + BLOCKS_PER_BATCH]
            calls = [("getTransactionReceipt", (to_hex(h),)) for h in part]
            answers = [await self.rpc.batch(url, calls, timeout_s=60) for url in self.urls.values()]
            for i in range(len(part)):
                views = {None if a is None or a[i] is None else (a[i]["raw"], a[i]["blockNumber"], a[i]["transactionIndex"]) for a in answers}
                self.report.receipts_compared += 1
                if len(views) != 1 or None in views:
                    self.report.receipts_identical = False

    def scan_logs(self, offsets: dict[str, int]) -> None:
        """Tracebacks (crashes) and the warning/error signatures in what each node logged during the run."""
        for n in self.net.nodes:
            path = n.folder / "node.log"
            try:
                with open(path, "rb") as f:
                    f.seek(offsets.get(n.name, 0))
                    lines = f.read().decode(errors="replace").splitlines()
            except OSError:
                continue
            for i, line in enumerate(lines):
                # One per traceback: nested ones (an exception group's) follow indented lines.
                if "Traceback (most recent call last)" in line and not (i and lines[i - 1].startswith((" ", "|", "+"))):
                    self.report.add_crash({"node": n.name, "how": "Traceback in its log", "detail": _exception_of(lines[i + 1:])})
                for level in (" ERROR ", " WARNING ", " CRITICAL "):
                    if level in line:
                        text = line.split(level, 1)[1]
                        key = level.strip() + " " + _signature(text)
                        if key in self.report.log_signatures or len(self.report.log_signatures) < LOG_SIGNATURES_MAX:
                            self.report.log_signatures[key] = self.report.log_signatures.get(key, 0) + 1


_EXCEPTION = re.compile(r"^[\s|+]*([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Timeout)\b.*)$")


def _exception_of(lines: list[str]) -> str:
    """The innermost exception of a traceback (its last `SomeError: message` line before the
    next log record), not an ExceptionGroup's wrapper."""
    found = ""
    for line in lines[:2000]:
        if line[:4].isdigit():  # the next timestamped log record
            break
        m = _EXCEPTION.match(line)
        if m and not m.group(1).startswith(("ExceptionGroup", "BaseExceptionGroup")):
            found = m.group(1)
    return found[:300]


def _signature(text: str) -> str:
    """A log message without its numbers and hashes, so repeats of one failure count together."""
    words = []
    for w in text.split()[:12]:
        words.append("#" if any(c.isdigit() for c in w) else w)
    return " ".join(words)


async def run_chaos(
    net: Devnet, *, duration_s: float, rate_tps: float, seed: int | None = None,
    converge_timeout_s: float = 120.0, say: Callable[[str], None] | None = None, http: bool = False,
) -> ChaosReport:
    """Run the scenario against `net`'s running nodes (see the module's docstring). The load
    goes to the nodes' channel ports, as a dApp's would (with `http`, or on a devnet without
    certificates, to their HTTP ports); watching and the audit use the HTTP ports."""
    seed = random.SystemRandom().randrange(1 << 32) if seed is None else seed
    say = say or (lambda text: None)
    down = [n.name for n in net.nodes if net.pid(n.name) is None]
    if down:
        raise DevnetError(f"{', '.join(down)} not running; start the whole devnet first (`devnet up --detach --dir {net.folder}`)")
    for n in net.nodes:  # a chaos run killed while a node was stopped leaves it stopped
        pid = net.pid(n.name)
        if pid and pid > 0:
            os.kill(pid, signal.SIGCONT)
    chaos = _Chaos(net, duration_s, rate_tps, seed, say)
    wall = time.monotonic()
    offsets = {n.name: (n.folder / "node.log").stat().st_size if (n.folder / "node.log").exists() else 0 for n in net.nodes}
    limits = httpx.Limits(max_connections=SENDS_IN_FLIGHT_MAX + 2 * len(net.nodes))
    by_channel = not http and all(n.channel_url for n in net.nodes)
    async with httpx.AsyncClient(timeout=SEND_TIMEOUT_S, limits=limits) as http_client, AsyncExitStack() as stack:
        async with net.client(net.nodes[0].channel_url if by_channel else net.nodes[0].rpc_url, timeout_s=60) as client:
            say(f"seed {seed}: {len(chaos.plan)} fault(s) planned; deploying the token and funding {SENDER_ACCOUNTS} senders")
            transfers = await Transfers.setup(client, SENDER_ACCOUNTS, supply=10**15)
        chaos.group = transfers.info["groupId"]
        chaos.rpc = _Rpc(http_client, chaos.group)
        channels = None
        if by_channel:
            channels = {n.name: await stack.enter_async_context(net.client(n.channel_url, group=chaos.group, timeout_s=SEND_TIMEOUT_S)) for n in net.nodes}
        chaos.t0 = trio.current_time()
        async with trio.open_nursery() as nursery:
            await nursery.start(chaos.monitor)
            say(f"   0.0 s  load: {rate_tps:g} transfers/s for {duration_s:g} s over the {'channel' if by_channel else 'HTTP'} ports")
            async with trio.open_nursery() as run:
                run.start_soon(chaos.load, transfers, http_client, channels)
                run.start_soon(chaos.injector)
            say(f"{chaos.now():6.1f} s  load stopped: {len(chaos.acked)} acknowledged; waiting for convergence")
            await chaos.converge(converge_timeout_s)
            nursery.cancel_scope.cancel()
        await chaos.audit()
    chaos.scan_logs(offsets)
    chaos.report.view_changes = max(chaos.report.view_changes_per_node.values(), default=0)
    chaos.report.seconds = round(time.monotonic() - wall, 1)
    return chaos.report

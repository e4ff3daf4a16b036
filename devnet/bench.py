"""`devnet bench`: drive a running devnet with pre-signed payment transfers over JSON-RPC
and report what a tester needs: committed TPS, commit latency percentiles, each node's CPU
and memory, and the raw SM2 verification rate of this machine measured in the same run
(the ceiling: every node checks every transaction's signature once).

The transactions go over each node's secure channel port, as a dApp's do, with the devnet's
user client certificate; `http=True` (`devnet bench --http`) sends them to the plain HTTP
port instead, so the two can be compared in one sitting.
"""

from __future__ import annotations

import os
import statistics
import time
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass, field
from typing import Awaitable, Callable

import httpx
import trio

from chainnode.client import Account, Client
from chainnode.crypto import get_suite
from chainnode.protocol.hexstr import parse_hex, to_hex
from chainnode.protocol.types import Transaction
from devnet.supervisor import Devnet

RPC_BATCH = 100  # transactions per JSON-RPC batch (the default rpc_batch_max)
SENDERS_PER_NODE = 2
# A node answers a batch once it has verified its signatures, on `verify_threads` (2)
# threads; with only two batches in flight a single node idles between them and the
# generator, not the node, sets the pace (1 sealer: ~1.0 core used, 4 in flight: ~1.3 cores
# and ~20% more TPS, measured in session 3).
REQUESTS_IN_FLIGHT_MIN = 4
TXS_PER_SENDER_ACCOUNT = 1000  # a pool caps one sender's share, so spread over accounts
FOLLOW_POLL_S = 0.05

TOKEN = '''
def init(supply):
    storage["bal:" + ctx.sender.hex()] = supply

def transfer(to, amount):
    require(amount > 0, "amount must be positive")
    src = "bal:" + ctx.sender.hex()
    dst = "bal:" + to.hex()
    balance = storage.get(src, 0)
    require(balance >= amount, "insufficient balance")
    storage[src] = balance - amount
    storage[dst] = storage.get(dst, 0) + amount
    emit("Transfer", to=to, amount=amount)
    return True

def balance_of(who):
    return storage.get("bal:" + who.hex(), 0)
'''


@dataclass
class BenchResult:
    sealers: int
    transactions: int
    committed: int = 0
    send_seconds: float = 0.0
    seconds: float = 0.0
    tps: float = 0.0
    latency_p50_s: float | None = None
    latency_p95_s: float | None = None
    latency_p99_s: float | None = None
    raw_sm2_verify_per_s: float = 0.0
    tps_per_raw_verify: float = 0.0
    nodes: list[dict] = field(default_factory=list)
    transport: str = "channel"  # how the transactions were sent: "channel" or "http"

    def as_dict(self) -> dict:
        return asdict(self)


def raw_sm2_verify_rate(seconds: float = 1.0) -> float:
    """SM2 verifications per second on one core of this machine, now."""
    suite = get_suite("sm")
    priv, pub = suite.generate_keypair()
    msg = b"m" * 32
    sig = suite.sign(priv, msg)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            suite.verify(pub, msg, sig)
        count += 100
    return count / (time.perf_counter() - start)


def proc_stats(pid: int | None) -> tuple[float, float, float]:
    """(CPU seconds used, resident MiB, of which anonymous MiB) of a process, from /proc;
    zeros if unavailable. Resident but not anonymous is mostly LevelDB's table files,
    which it maps into memory to read: page cache the kernel may drop, not heap."""
    if not pid or pid <= 0:
        return 0.0, 0.0, 0.0
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        with open(f"/proc/{pid}/status") as f:
            kib = {line.split(":")[0]: int(line.split()[1]) for line in f if line.startswith(("VmRSS:", "RssAnon:"))}
        return cpu_s, kib["VmRSS"] / 1024, kib.get("RssAnon", 0) / 1024
    except (OSError, KeyError, ValueError, IndexError):
        return 0.0, 0.0, 0.0


class Transfers:
    """The load: transfers of a token contract (TOKEN) deployed for the run, from funded
    sender accounts taken in turn, to fresh addresses, or to `recipients` in turn (existing
    accounts: tests/bench/scale.py sends to accounts of a seeded chain, so that the reads
    and tree updates hit cold state). Used by `devnet bench` and `devnet chaos`."""

    def __init__(self, info: dict, token: bytes, senders: list[Account], recipients: list[bytes] | None = None) -> None:
        self.info, self.token, self.senders = info, token, senders
        self.recipients = recipients
        self.suite = senders[0].suite
        self._next = 0

    @classmethod
    async def setup(cls, client: Client, sender_count: int, *, supply: int) -> "Transfers":
        """Deploy the token through `client` and give each of `sender_count` new accounts an
        equal share of `supply` (one committed transaction each)."""
        info = await client.group_info()
        alice = Account.generate(info["suite"])
        senders = [Account.generate(info["suite"]) for _ in range(sender_count)]
        token = (await client.deploy(alice, TOKEN, [supply], timeout_s=60)).contract_address
        share = -(-supply // sender_count)
        for acct in senders:
            await client.send(alice, token, "transfer", [acct.address, share], timeout_s=60)
        return cls(info, token, senders)

    def sign(self, count: int, *, block_limit: int) -> list[Transaction]:
        """`count` signed transfers of 1 unit, valid until `block_limit`."""
        txs = []
        for _ in range(count):
            acct = self.senders[self._next % len(self.senders)]
            to = self.recipients[self._next % len(self.recipients)] if self.recipients else os.urandom(20)
            self._next += 1
            txs.append(acct.transaction(chain_id=self.info["chainId"], group_id=self.info["groupId"], block_limit=block_limit,
                                        to=self.token, method="transfer", args=[to, 1], gas_limit=1_000_000))
        return txs


async def send_transactions(client: Client, txs: list[Transaction]) -> list[str | None]:
    """Send `txs` in one JSON-RPC batch through `client` (over its channel, or HTTP); per
    transaction the node's error message, or None if it acknowledged it. Raises
    ConnectionError if no node answers in time."""
    replies = await client.request_batch([("sendTransaction", [to_hex(tx.encode())]) for tx in txs])
    return [str(r["error"].get("message", r["error"])) if isinstance(r.get("error"), dict) else (str(r["error"]) if "error" in r else None) for r in replies]


async def send_batch(http: httpx.AsyncClient, url: str, group: str, txs: list[Transaction]) -> list[str | None]:
    """Send `txs` in one JSON-RPC batch; per transaction the node's error message, or None
    if it acknowledged it (sendTransaction returned its hash). Raises httpx.HTTPError if the
    node cannot be reached or does not answer in time."""
    body = [{"jsonrpc": "2.0", "id": j, "method": "sendTransaction", "params": [group, "", to_hex(tx.encode())]} for j, tx in enumerate(txs)]
    reply = (await http.post(url, json=body)).json()
    if not isinstance(reply, list):  # the whole batch refused (too large, say)
        return [str(reply.get("error", {}).get("message", reply))] * len(txs)
    by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
    out: list[str | None] = []
    for j in range(len(txs)):
        r = by_id.get(j, {"error": {"message": "no answer for this transaction in the batch reply"}})
        out.append(str(r["error"].get("message", r["error"])) if "error" in r else None)
    return out


def _percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    return round(sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))], 3)


async def run_bench(
    net: Devnet,
    tx_count: int,
    *,
    rate_tps: float | None = None,
    progress: Callable[[str, int, int], None] | None = None,
    timeout_s: float = 600.0,
    http: bool = False,
    load: Callable[[Client], Awaitable[Transfers]] | None = None,
) -> BenchResult:
    """Deploy a token, fund senders (or take `load(client)`'s: a chain that has them
    already), pre-sign `tx_count` transfers, send them over all nodes
    (at `rate_tps`, or as fast as the nodes take them), and follow the chain until all are
    committed. `progress(stage, done, total)` is called as it goes. The transactions go over
    the nodes' channel ports (one connection per sender and node), or with `http` (or on a
    devnet without certificates) to their HTTP ports."""
    report = progress or (lambda stage, done, total: None)
    up = [n for n in net.nodes if net.pid(n.name) is not None]
    if not up:
        raise RuntimeError("no node of this devnet is running; start it with `devnet up`")
    result = BenchResult(sealers=sum(1 for n in up if n.role == "sealer"), transactions=tx_count)
    result.transport = "http" if http or not up[0].channel_url else "channel"
    first = up[0]
    async with net.client(first.rpc_url if result.transport == "http" else first.channel_url, timeout_s=60) as client:
        report("deploying the token contract", 0, 1)
        senders = max(1, -(-tx_count // TXS_PER_SENDER_ACCOUNT))
        transfers = await (load(client) if load else Transfers.setup(client, senders, supply=tx_count))
        if len(transfers.senders) < senders:
            raise RuntimeError(f"{tx_count} transfers need {senders} senders (a pool caps one sender's share), the load has {len(transfers.senders)}")
        height = await client.block_number()
    info = transfers.info
    txs = []
    for i in range(0, tx_count, 200):
        report("signing transactions", i, tx_count)
        txs += transfers.sign(min(200, tx_count - i), block_limit=height + info["blockLimitWindow"] - 10)
    hashes = [tx.hash(transfers.suite) for tx in txs]
    report("measuring raw SM2 verification", 0, 1)
    result.raw_sm2_verify_per_s = round(raw_sm2_verify_rate(), 1)

    pids = {n.name: net.pid(n.name) for n in up}
    before = {name: proc_stats(pid) for name, pid in pids.items()}
    sent_at: dict[bytes, float] = {}
    batches = [list(range(i, min(i + RPC_BATCH, tx_count))) for i in range(0, tx_count, RPC_BATCH)]
    interval_s = (RPC_BATCH / rate_tps) if rate_tps else 0.0
    in_flight = max(REQUESTS_IN_FLIGHT_MIN, len(up) * SENDERS_PER_NODE)  # concurrent senders
    start = time.monotonic()
    schedule_start = trio.current_time()  # trio's clock has its own origin
    committed: list[float] = []

    async def sender(k: int, http: httpx.AsyncClient) -> None:
        # Over the channel, a connection of its own per node, as each sender has over HTTP.
        clients: dict[str, Client] = {}
        async with AsyncExitStack() as stack:
            for b in range(k, len(batches), in_flight):
                if interval_s:
                    await trio.sleep_until(schedule_start + b * interval_s)
                now = time.monotonic()
                for j in batches[b]:
                    sent_at[hashes[j]] = now
                node = up[b % len(up)]
                batch = [txs[j] for j in batches[b]]
                if result.transport == "http":
                    errors = await send_batch(http, node.rpc_url, info["groupId"], batch)
                else:
                    if node.name not in clients:
                        clients[node.name] = await stack.enter_async_context(net.client(node.channel_url, group=info["groupId"], timeout_s=120))
                    errors = await send_transactions(clients[node.name], batch)
                errors = [e for e in errors if e]
                if errors:
                    raise RuntimeError(f"the node refused transactions: {errors[0]}")

    async def follow(http: httpx.AsyncClient) -> None:
        seen = height
        wanted = set(hashes)
        deadline = time.monotonic() + timeout_s
        while len(committed) < tx_count and time.monotonic() < deadline:
            head = (await http.post(first.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getBlockNumber", "params": [info["groupId"], ""]})).json()["result"]
            for h in range(seen + 1, head + 1):
                block = (await http.post(first.rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "getBlockByNumber", "params": [info["groupId"], "", h, False, True]})).json()["result"]
                now = time.monotonic()
                for tx_hash in block["transactions"]:
                    key = parse_hex(tx_hash)
                    if key in wanted:
                        committed.append(now - sent_at.get(key, now))
            seen = head
            report("committed", len(committed), tx_count)
            await trio.sleep(FOLLOW_POLL_S)

    async with httpx.AsyncClient(timeout=120) as http:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(follow, http)
            async with trio.open_nursery() as senders_nursery:
                for k in range(in_flight):
                    senders_nursery.start_soon(sender, k, http)
            result.send_seconds = round(time.monotonic() - start, 2)
    elapsed = time.monotonic() - start
    after = {name: proc_stats(pid) for name, pid in pids.items()}
    latencies = sorted(committed)
    result.committed = len(committed)
    result.seconds = round(elapsed, 2)
    result.tps = round(len(committed) / elapsed, 1)
    result.latency_p50_s = round(statistics.median(latencies), 3) if latencies else None
    result.latency_p95_s = _percentile(latencies, 0.95)
    result.latency_p99_s = _percentile(latencies, 0.99)
    result.tps_per_raw_verify = round(result.tps / result.raw_sm2_verify_per_s, 3) if result.raw_sm2_verify_per_s else 0.0
    for name in pids:
        cpu_s = after[name][0] - before[name][0]
        result.nodes.append({"node": name, "cpu_s": round(cpu_s, 2), "cpu_pct": round(100 * cpu_s / elapsed, 1), "rss_mib": round(after[name][1], 1),
                             "anon_mib": round(after[name][2], 1)})
    return result

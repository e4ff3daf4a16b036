"""WAN benchmark: 4 sealers, each in a network namespace of its own (devnet/netns.py),
deployed with `chainnode genesis lab`, with the user-space WAN emulator (devnet/wan.py)
between them, driven by the `devnet bench` load (devnet/bench.py: pre-signed token
transfers over the nodes' channel ports, followed on node 0 until committed).

    python -m tests.bench.wan [--duration-s 20] [--rate 200] [--loss-pct 1] [--json FILE]

One chain, one run per WAN setting, in this order: the bridge (no emulator), then through
the emulator at one-way delay 0 ms, 20 ms +/- 10 ms with 1 % loss, and 50 ms +/- 10 ms
with 1 % loss (`--loss-pct`), between every pair of hosts, both ways. Each run offers
`--rate` transfers a second (`--rate 0`: as fast as the nodes take them) for
`--duration-s` seconds and prints committed TPS and the commit latency (send -> seen in a
block on node 0) at p50 and p99, with what the WAN did: packets forwarded, packets it
dropped as loss, the TCP segments the hosts' kernels retransmitted (each namespace's
/proc/net/snmp; tail-loss probes count too, so the bridge shows a few) and the switch
process's CPU use. The dApp side (the load generator,
in the root namespace) reaches the nodes over the bridge, without delay: the WAN is the
network between the members.

A benchmark, not a test: it prints, it asserts nothing about time. It exits 1 only if a
run could not commit what it sent. Needs root (network namespaces) and /dev/net/tun.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import trio

from devnet.bench import BenchResult, run_bench
from devnet.netns import Consortium, Lab
from devnet.wan import LinkSettings, Wan

CHAIN_CONFIG = {"block_interval_min_ms": 200, "tx_count_limit": 2000}  # as tests/bench/chain.py
FULL_SPEED_TPS_GUESS = 600  # --rate 0 sends duration_s * this many, as fast as they are taken
SCRYPT_N = 1024  # key files of a throwaway lab: cheap to open


def settings(loss_pct: float) -> list[tuple[str, LinkSettings | None]]:
    """The runs, in order: the bridge, the emulator at 0 ms, at 20 and 50 ms with jitter and loss."""
    loss = f"{loss_pct:g} % loss" if loss_pct else "no loss"
    return [
        ("bridge, no emulator", None),
        ("0 ms", LinkSettings()),
        (f"20 ms +/- 10, {loss}", LinkSettings(delay_ms=20, jitter_ms=10, loss_pct=loss_pct)),
        (f"50 ms +/- 10, {loss}", LinkSettings(delay_ms=50, jitter_ms=10, loss_pct=loss_pct)),
    ]


@dataclass
class Run:
    label: str
    result: BenchResult
    forwarded: int = 0
    lost: int = 0  # dropped by the loss setting
    dropped_other: int = 0  # queue, link down, unroutable, write
    tcp_retransmits: int = 0
    seconds: float = 0.0
    switch_cpu_pct: float | None = None  # the emulator process's CPU use during the run


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (from /proc), 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError, TypeError):
        return 0.0


def tcp_retransmits(lab: Lab) -> int:
    """TCP segments retransmitted so far, summed over the lab's hosts (/proc/net/snmp is per
    network namespace)."""
    total = 0
    for i in range(len(lab.hosts)):
        lines = [line.split() for line in lab.run(i, ["cat", "/proc/net/snmp"], check=True).stdout.splitlines() if line.startswith("Tcp:")]
        header, values = lines[0], lines[1]
        total += int(values[header.index("RetransSegs")])
    return total


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration-s", type=float, default=20.0, help="seconds of load per WAN setting")
    ap.add_argument("--rate", type=float, default=200.0, help="transfers offered per second (0: as fast as the nodes take them)")
    ap.add_argument("--loss-pct", type=float, default=1.0, help="packet loss of the 20 and 50 ms runs")
    ap.add_argument("--seed", type=int, default=1, help="the emulator's random seed (jitter, loss)")
    ap.add_argument("--json", help="also write the results to this file")
    args = ap.parse_args()
    ok, why = Lab.available()
    if not ok:
        print(f"cannot run: {why}", file=sys.stderr)
        return 2
    tx_count = max(100, int(args.duration_s * (args.rate or FULL_SPEED_TPS_GUESS)))
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="chainnode-wan-") as tmp, Lab.create(hosts=4) as lab:
        chain = Consortium.create(lab, Path(tmp) / "lab", scrypt_n=SCRYPT_N, config=CHAIN_CONFIG)
        chain.start_all()
        for label, wan_settings in settings(args.loss_pct):
            wan = Wan(lab, wan_settings, seed=args.seed) if wan_settings is not None else None
            try:
                retrans = tcp_retransmits(lab)
                start = time.monotonic()
                cpu_before = cpu_seconds(wan.pid) if wan is not None else 0.0
                result = trio.run(lambda: run_bench(chain, tx_count, rate_tps=args.rate or None, timeout_s=max(120.0, 4 * args.duration_s)))
                elapsed = time.monotonic() - start
                run = Run(label, result, seconds=round(elapsed, 1), tcp_retransmits=tcp_retransmits(lab) - retrans)
                if wan is not None:
                    run.switch_cpu_pct = round(100 * (cpu_seconds(wan.pid) - cpu_before) / elapsed, 1)
                    stats = wan.stats()
                    run.forwarded, run.lost = stats.forwarded, stats.dropped_loss
                    run.dropped_other = stats.dropped - stats.dropped_loss
            finally:
                if wan is not None:
                    wan.close()
            runs.append(run)
            print(f"  {label}: {result.committed}/{result.transactions} committed, {result.tps:,.0f} TPS, "
                  f"p50 {result.latency_p50_s} s, p99 {result.latency_p99_s} s", file=sys.stderr, flush=True)
        heights = [chain.height(i) for i in range(len(chain.nodes))]
    offered = f"{args.rate:g} transfers/s offered for {args.duration_s:g} s" if args.rate else "transfers sent as fast as the nodes take them"
    print(f"chainnode over an emulated WAN: 4 sealers in 4 network namespaces, {offered} ({tx_count} per run); heights at the end {heights}")
    print(f"| {'WAN between the hosts (one way)':<32} | {'committed':>11} | {'TPS':>5} | p50 latency | p99 latency | packets forwarded | lost by the WAN | TCP retransmits | switch CPU |")
    print(f"| {'-' * 32} | ----------: | ----: | ----------: | ----------: | ----------------: | --------------: | --------------: | ---------: |")
    for r in runs:
        res = r.result
        lost = f"{r.lost} ({100 * r.lost / max(1, r.forwarded + r.lost):.2f} %)" if r.forwarded else "-"
        print(f"| {r.label:<32} | {f'{res.committed}/{res.transactions}':>11} | {res.tps:>5,.0f} | {res.latency_p50_s!s:>9} s | "
              f"{res.latency_p99_s!s:>9} s | {r.forwarded or '-':>17} | {lost:>15} | {r.tcp_retransmits:>15} | "
              f"{'-' if r.switch_cpu_pct is None else f'{r.switch_cpu_pct} %':>10} |")
    if args.json:
        Path(args.json).write_text(json.dumps([{"wan": r.label, "forwarded": r.forwarded, "lost": r.lost, "dropped_other": r.dropped_other,
                                                "tcp_retransmits": r.tcp_retransmits, "switch_cpu_pct": r.switch_cpu_pct, **r.result.as_dict()} for r in runs], indent=2))
    return 0 if all(r.result.committed == r.result.transactions for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())

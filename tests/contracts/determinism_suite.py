"""A fixed contract workload whose every observable output is printed as canonical bytes.

`python -m tests.contracts.determinism_suite` prints one hex line: msgpack of every
CallResult (value, events, gas, error) and of the final base store, in key order. The
determinism test runs it under several PYTHONHASHSEED values and compares the bytes: str
hashing (dict layout, anything set-like) is the classic source of divergence.
"""

from __future__ import annotations

import sys

from contracts.engine import Engine
from contracts.engine.values import encode
from tests.contracts.support import ALICE, BOB, CAROL, MemoryStore, ctx

LEDGER = '''
def init():
    storage["accounts"] = {}

def open_accounts(names):
    accounts = storage["accounts"]
    for n in names:
        accounts[n] = len(n) * 10
    storage["accounts"] = accounts
    emit("Opened", names=names, count=len(accounts))
    return sorted(accounts.keys())

def settle(pairs):
    accounts = storage["accounts"]
    moved = {}
    for frm, to, amount in pairs:
        require(accounts.get(frm, 0) >= amount, f"{frm} cannot pay {amount}")
        accounts[frm] -= amount
        accounts[to] = accounts.get(to, 0) + amount
        moved[frm + ">" + to] = amount
    storage["accounts"] = accounts
    emit("Settled", moved=moved)
    return [list(kv) for kv in accounts.items()]

def report():
    accounts = storage["accounts"]
    by_balance = sorted(accounts.items(), key=_second)
    words = {w: len(w) for w in "the quick brown fox jumps over the lazy dog".split()}
    fees = [str(decimal_div(Decimal(v), 7).quantize(Decimal("0.001"))) for k, v in by_balance]
    # Insertion order everywhere (keys(), values(), iteration), never hash order.
    return [by_balance, list(words), words.keys(), list(accounts.values())[:3], fees,
            f"{len(words):04d}", "%s=%d" % ("n", len(accounts)), hash(b"ledger")]

def _second(kv):
    return kv[1]

def broken():
    accounts = storage["accounts"]
    storage["accounts"] = {}
    return accounts["nobody"]

def burn():
    x = 0
    while True:
        x += 1
'''

FORWARDER = '''
def init(target):
    storage["target"] = target

def forward(names):
    storage["calls"] = storage.get("calls", 0) + 1
    return call(storage["target"], "open_accounts", names)

def forward_and_fail(names):
    call(storage["target"], "open_accounts", names)
    require(False, "forwarder gives up")
'''

NAMES = ["zeta", "alpha", "mu", "beta", "omega", "kappa", "delta", "xi", "pi", "rho"]


def workload() -> bytes:
    engine = Engine()
    base = MemoryStore()
    out = []
    for result in (
        engine.deploy(base, ctx(ALICE), LEDGER, [], 2_000_000, b"\x01"),
        engine.deploy(base, ctx(ALICE), FORWARDER, [], 2_000_000, b"\x02"),
    ):
        out.append(result.receipt_fields())
    ledger = out[0][-1]
    forwarder = engine.deploy(base, ctx(BOB), FORWARDER, [ledger], 2_000_000, b"\x03")
    out.append(forwarder.receipt_fields())
    fwd = forwarder.contract_address
    calls = [
        (ledger, "open_accounts", [NAMES]),
        (fwd, "forward", [["sigma", "tau", "upsilon"]]),
        (fwd, "forward_and_fail", [["phi"]]),
        (fwd, "forward", [[1, 2]]),
        (ledger, "settle", [[["zeta", "alpha", 5], ["omega", "mu", 7], ["kappa", "xi", 1]]]),
        (ledger, "settle", [[["pi", "rho", 1000]]]),
        (ledger, "report", []),
        (ledger, "broken", []),
        (ledger, "burn", []),
    ]
    for to, method, args in calls:
        out.append(engine.execute(base, ctx(CAROL), to, method, args, 300_000).receipt_fields())
    out.append([[k, v] for k, v in sorted(base.data.items())])
    return encode(out)


if __name__ == "__main__":
    sys.stdout.write(workload().hex() + "\n")

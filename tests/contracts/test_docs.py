"""The examples in docs/contracts.md compile and do what the page says."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from chainnode.crypto import get_suite
from contracts.engine import Engine
from contracts.engine.gas import SCHEDULE
from tests.contracts.support import ALICE, BOB, CAROL, MemoryStore, ctx, deploy

DOC = (Path(__file__).resolve().parents[2] / "docs" / "contracts.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", DOC, re.S)
CONTRACT_BLOCKS = [b for b in BLOCKS if b.lstrip().startswith(("def ", '"""'))]


def test_the_page_has_its_examples() -> None:
    assert len(CONTRACT_BLOCKS) >= 5


@pytest.mark.parametrize("source", CONTRACT_BLOCKS, ids=[f"block{i}" for i in range(len(CONTRACT_BLOCKS))])
def test_every_contract_example_compiles(source: str) -> None:
    Engine().compile(source)


def test_every_gas_and_limit_constant_is_documented_with_its_value() -> None:
    for name, value in SCHEDULE.items():
        row = re.search(rf"\| `{name}` \| ([\d,]+) \|", DOC)
        assert row is not None, f"{name} is missing from docs/contracts.md"
        assert int(row.group(1).replace(",", "")) == value, f"{name}: docs say {row.group(1)}, code says {value}"


def _example(title: str) -> str:
    section = DOC.split(title, 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_supply_chain_example_runs() -> None:
    engine = Engine()
    base = MemoryStore()
    address = deploy(engine, base, _example("### Supply chain"))
    assert engine.execute(base, ctx(ALICE), address, "register", ["S1", BOB], 500_000).ok
    denied = engine.execute(base, ctx(CAROL), address, "hand_over", ["S1", "Shanghai", CAROL], 500_000)
    assert denied.error_message == "only the current carrier hands over"
    moved = engine.execute(base, ctx(BOB), address, "hand_over", ["S1", "Shanghai", CAROL], 500_000)
    assert moved.ok and moved.events[0].name == "HandedOver"
    shipment = engine.query(base, ctx(), address, "view_shipment", ["S1"], 500_000).value
    assert shipment["carrier"] == CAROL and shipment["legs"][0]["at"] == "Shanghai"


def test_cross_border_example_runs() -> None:
    suite = get_suite("ed25519")
    priv, pub = suite.generate_keypair()
    engine = Engine(suite=suite)
    base = MemoryStore()
    address = deploy(engine, base, _example("### Cross-border record"), pub)
    doc = b"declaration 42: 100 crates"
    ok = engine.execute(base, ctx(), address, "record", ["D42", doc, suite.sign(priv, doc)], 500_000)
    assert ok.ok and ok.value == suite.hash(doc)
    forged = engine.execute(base, ctx(), address, "record", ["D43", doc, b"\x00" * 64], 500_000)
    assert forged.error_message == "not signed by the regulator"


def test_first_contract_and_escrow_examples_run_together() -> None:
    engine = Engine()
    base = MemoryStore()
    token = deploy(engine, base, _example("## A first contract"), 1_000, nonce=b"\x01")
    escrow = deploy(engine, base, _example("### Escrow calling a token"), token, nonce=b"\x02")
    assert engine.execute(base, ctx(), token, "transfer", [escrow, 100], 500_000).ok
    released = engine.execute(base, ctx(), escrow, "release", [BOB, 30], 500_000)
    assert released.ok and released.value == 70
    failed = engine.execute(base, ctx(), escrow, "release", [BOB, 500], 500_000)
    assert failed.ok and failed.value is None
    assert [e.name for e in failed.events] == ["ReleaseFailed"]
    assert engine.query(base, ctx(), token, "view_balance", [BOB], 500_000).value == 30


def test_decimal_interest_example() -> None:
    engine = Engine()
    source = re.search(r"```python\n(def interest.*?)```", DOC, re.S).group(1)
    result = engine.call(engine.compile(source), "interest", [1_000_000, 350, 90], state=MemoryStore(), ctx=ctx(),
                         gas_limit=100_000)
    assert result.ok and result.value == 8630  # 1,000,000 * 3.5% * 90/365 = 8630.1369...

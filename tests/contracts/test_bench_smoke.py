"""The contracts benchmark keeps running (its numbers are judged by the benchmark itself,
never here: timing assertions do not belong in unit tests)."""

from __future__ import annotations

from tests.bench import contracts as bench


def test_benchmark_runs_and_reports_every_number() -> None:
    m = bench.measure(rounds=1, calls=200)
    assert set(m) == {"plain_calls_per_s", "lean_plain_calls_per_s", "engine_calls_per_s", "ratio", "lean_ratio",
                      "cached_compile_us", "full_compile_ms", "gas_used"}
    assert all(v > 0 for v in m.values())


def test_plain_baseline_does_the_same_work_as_the_contract() -> None:
    from contracts.engine import CallContext

    ctx = CallContext(b"a" * 20, b"c" * 20, 1, 1, b"\x11" * 32)
    transfer, events = bench.plain_transfer(ctx)
    transfer(b"b" * 20, 5)
    assert [(e.name, e.fields) for e in events] == [("Transfer", {"frm": b"a" * 20, "to": b"b" * 20, "amount": 5})]

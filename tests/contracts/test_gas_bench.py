"""The gas benchmark (tests/bench/gas.py) in the suite: every case runs to the end of its
gas, and the slowest burns gas at no less than the floor ratio to a payment block
measured in the same run (a ratio, not a wall-clock budget)."""

from __future__ import annotations

from tests.bench import gas as bench


def test_every_case_compiles_and_runs_out_of_gas() -> None:
    rates = bench.measure(gas=200_000, rounds=1, payment_calls=50)
    assert set(rates) == set(bench.CASES) | {bench.REFERENCE}
    assert all(r > 0 for r in rates.values())


def test_the_slowest_case_is_above_the_floor() -> None:
    # CPU time, the best of 3 interleaved runs of each case and of the reference: the
    # ratio holds on a loaded machine (measured with a busy loop beside it).
    rates = bench.measure(gas=500_000, rounds=3, payment_calls=200)
    lines, worst = bench.report(rates)
    assert worst >= bench.FLOOR_RATIO, "\n".join(lines[:10])

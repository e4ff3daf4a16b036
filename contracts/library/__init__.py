"""The business contract library: payment, supply_chain and cross_border.

Each contract is a contract-language module (see docs/contracts.md and
docs/business-contracts.md) stored here as a `.py` file so editors highlight it. The files
are never imported as Python: they are read as text and handed to the engine, which
compiles them in its sandbox.

    from contracts.library import source
    result = engine.deploy(store, ctx, source("payment"), [issuer, regulator], gas_limit, nonce)
"""

from __future__ import annotations

from pathlib import Path

NAMES = ("payment", "supply_chain", "cross_border")

_DIR = Path(__file__).resolve().parent


def source(name: str) -> str:
    """The source text of the contract called `name` (one of `NAMES`)."""
    if name not in NAMES:
        raise ValueError(f"unknown contract {name!r}: choose one of {', '.join(NAMES)}")
    return (_DIR / f"{name}.py").read_text(encoding="utf-8")


__all__ = ["NAMES", "source"]

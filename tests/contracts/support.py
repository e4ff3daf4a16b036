"""Shared helpers for the contract engine tests: an in-memory byte store and a runner."""

from __future__ import annotations

from typing import Any

from contracts.engine import CallContext, CallResult, Engine

ALICE = b"\xa1" * 20
BOB = b"\xb0" * 20
CAROL = b"\xc4" * 20
CONTRACT = b"\xcc" * 20
TX_HASH = b"\x7e" * 32


class MemoryStore:
    """A dict-backed byte store with the node's state interface (get/set/delete)."""

    def __init__(self, data: dict[bytes, bytes] | None = None) -> None:
        self.data: dict[bytes, bytes] = dict(data or {})
        self.writes = 0

    def get(self, key: bytes) -> bytes | None:
        assert type(key) is bytes
        return self.data.get(key)

    def set(self, key: bytes, value: bytes) -> None:
        assert type(key) is bytes and type(value) is bytes
        self.writes += 1
        self.data[key] = value

    def delete(self, key: bytes) -> None:
        assert type(key) is bytes
        self.writes += 1
        self.data.pop(key, None)

    def snapshot(self) -> dict[bytes, bytes]:
        return dict(self.data)


def ctx(sender: bytes = ALICE, contract: bytes = CONTRACT, height: int = 7) -> CallContext:
    return CallContext(sender, contract, height, 1_700_000_000_000 + height, TX_HASH)


def run(source: str, method: str, *args: Any, gas_limit: int = 1_000_000, engine: Engine | None = None,
        state: MemoryStore | None = None, sender: bytes = ALICE) -> CallResult:
    """Compile `source` and call `method` on a fresh (or given) scoped store."""
    engine = engine or Engine()
    compiled = engine.compile(source)
    return engine.call(compiled, method, list(args), state=state if state is not None else MemoryStore(),
                       ctx=ctx(sender), gas_limit=gas_limit)


def deploy(engine: Engine, base: MemoryStore, source: str, *init_args: Any, sender: bytes = ALICE,
           nonce: bytes = b"\x00", gas_limit: int = 2_000_000) -> bytes:
    result = engine.deploy(base, ctx(sender), source, list(init_args), gas_limit, nonce)
    assert result.ok, result
    assert result.contract_address is not None
    return result.contract_address

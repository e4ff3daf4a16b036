"""A tiny chain for the business contract tests: the real engine on a dict byte store."""

from __future__ import annotations

from typing import Any

from chainnode.crypto import get_suite
from contracts.engine import CallContext, CallResult, Engine
from contracts.library import source
from tests.contracts.support import MemoryStore

GAS = 30_000_000          # the default transaction gas limit
TX_HASH = b"\x7e" * 32
T0 = 1_700_000_000_000    # block time at height 0 (ms); one block per second
DAY_MS = 86_400_000


def addr(n: int) -> bytes:
    """A readable test address: 20 bytes of one value."""
    return bytes([n]) * 20


class Chain:
    """One contract engine, one store and a block clock tests can move."""

    def __init__(self, suite: str = "sm") -> None:
        self.suite = get_suite(suite)
        self.engine = Engine(self.suite)
        self.store = MemoryStore()
        self.height = 10
        self.time_ms = T0 + 10_000
        self._nonce = 0

    def ctx(self, sender: bytes) -> CallContext:
        return CallContext(sender, b"\x00" * 20, self.height, self.time_ms, TX_HASH)

    def advance(self, blocks: int = 1, ms: int | None = None) -> None:
        self.height += blocks
        self.time_ms += blocks * 1000 if ms is None else ms

    def deploy(self, name: str, *init_args: Any, sender: bytes) -> "Contract":
        self._nonce += 1
        result = self.engine.deploy(self.store, self.ctx(sender), source(name), list(init_args), GAS,
                                    self._nonce.to_bytes(8, "big"))
        assert result.ok, result
        return Contract(self, result.contract_address, result)


class Contract:
    def __init__(self, chain: Chain, address: bytes, deployed: CallResult) -> None:
        self.chain = chain
        self.address = address
        self.deployed = deployed

    def tx(self, sender: bytes, method: str, *args: Any, gas: int = GAS) -> CallResult:
        return self.chain.engine.execute(self.chain.store, self.chain.ctx(sender), self.address, method,
                                         list(args), gas)

    def ok(self, sender: bytes, method: str, *args: Any) -> CallResult:
        result = self.tx(sender, method, *args)
        assert result.ok, result
        return result

    def fails(self, sender: bytes, method: str, *args: Any, match: str = "") -> CallResult:
        """The call fails with a ContractError whose message contains `match`, and writes nothing."""
        before = self.chain.store.snapshot()
        result = self.tx(sender, method, *args)
        assert not result.ok, result
        assert result.error_type == "ContractError", result
        assert match in (result.error_message or ""), result
        assert result.events == ()
        assert self.chain.store.snapshot() == before
        return result

    def view(self, method: str, *args: Any) -> Any:
        result = self.chain.engine.query(self.chain.store, self.chain.ctx(b"\x01" * 20), self.address, method,
                                         list(args), GAS)
        assert result.ok, result
        return result.value


def names(result: CallResult) -> list[str]:
    return [e.name for e in result.events]


def events(result: CallResult, name: str) -> list[dict]:
    return [e.fields for e in result.events if e.name == name]


def event(result: CallResult, name: str) -> dict:
    found = events(result, name)
    assert len(found) == 1, (name, names(result))
    return found[0]

"""Read-only contract calls for RPC: a consistent view of the head, and a bounded runner.

`HeadView` reads the committed chain from a LevelDB snapshot, so it needs no lock and no
turn on the chain's worker thread: a block's one write batch (ledger.py) moves the head,
the headers and the state together, and a snapshot sees all of that batch or none of it.
The head is read from the snapshot itself (`m:head`), never from the ledger's in-memory
fields, which move a moment after the batch is durable; the state is read around the
ledger's cache, which a commit refreshes key by key after the batch.

`CallRunner` runs contract code for RPC callers with its own engines (an engine runs one
call at a time), at most `calls_max` at once, each bounded by gas and answered within
`timeout_ms`. A thread cannot be stopped: a call that is still running at its deadline
keeps its slot until it really ends (gas bounds that), and the caller gets an error now.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import outcome
import trio

from chainnode.protocol.codec import expect_int, expect_list, unpack
from chainnode.protocol.types import BlockHeader
from chainnode.rpc.jsonrpc import LIMIT_EXCEEDED, TIMED_OUT, RpcError
from chainnode.store.ledger import HEAD_KEY, Ledger
from chainnode.store.state import STATE_PREFIX
from contracts.engine import Engine


class _SnapshotState:
    """The committed state as of the snapshot (a StateReader)."""

    def __init__(self, snapshot: Any) -> None:
        self._snapshot = snapshot

    def get(self, key: bytes) -> bytes | None:
        return self._snapshot.get(STATE_PREFIX + key)


class HeadView:
    """The head block and its state, as of one instant. Close it (or use `with`) when done."""

    def __init__(self, ledger: Ledger) -> None:
        self._snapshot = ledger.snapshot()
        try:
            head = expect_list(unpack(self._snapshot.get(HEAD_KEY), max_bytes=64), "head", length=2)
            self.height = expect_int(head[0], "head height")
            self.header = BlockHeader.decode(self._snapshot.get(b"h:" + self.height.to_bytes(8, "big")))
        except BaseException:
            self._snapshot.close()
            raise
        self.state = _SnapshotState(self._snapshot)

    def close(self) -> None:
        self._snapshot.close()

    def __enter__(self) -> "HeadView":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass(frozen=True)
class CallLimits:
    gas_max: int = 10_000_000  # a call's gas: the lower of this and the chain's tx_gas_limit
    timeout_ms: int = 2_000  # the caller's answer comes within this, finished or not
    calls_max: int = 2  # calls running at once (each on its own thread and engine)
    # Gas all calls together may burn per second. Calls run beside block execution in this
    # process and share its interpreter lock: without a budget, a few callers spinning
    # contracts slowed every block several times over. Gas is priced by CPU time
    # (docs/contracts.md), so this is a share of one core: ~10% at the floor rate.
    gas_per_s_max: int = 20_000_000

    @classmethod
    def from_config(cls, limits: Any) -> "CallLimits":
        """From chainnode.node.config.Limits."""
        return cls(gas_max=limits.rpc_call_gas_max, timeout_ms=limits.rpc_call_timeout_ms, calls_max=limits.rpc_calls_max,
                   gas_per_s_max=limits.rpc_calls_gas_per_s_max)


# A call is refused when the budget holds less than this: too little to do anything useful.
CALL_GAS_MIN = 100_000


class GasBudget:
    """A token bucket of gas, refilled at `per_s` up to `burst`. A call reserves what it may
    burn, runs with that as its gas cap, and gives back what it did not use."""

    def __init__(self, per_s: int, burst: int, now_s: Callable[[], float]) -> None:
        self.per_s, self.burst, self._now_s = per_s, burst, now_s
        self._tokens = float(burst)
        self._at_s: float | None = None  # the clock may only be read inside the event loop

    def reserve(self, gas_max: int) -> int:
        now = self._now_s()
        self._tokens = min(self.burst, self._tokens + (now - (self._at_s or now)) * self.per_s)
        self._at_s = now
        grant = int(min(gas_max, self._tokens))
        self._tokens -= grant
        return grant

    def give_back(self, gas: int) -> None:
        self._tokens = min(self.burst, self._tokens + gas)


class CallRunner:
    def __init__(self, suite: Any, limits: CallLimits | None = None) -> None:
        self.limits = limits = limits or CallLimits()
        self._engines = [Engine(suite) for _ in range(limits.calls_max)]  # the free ones
        self._slots = trio.Semaphore(limits.calls_max)
        self._budget = GasBudget(limits.gas_per_s_max, max(limits.gas_max, limits.gas_per_s_max), trio.current_time)
        self.timed_out = 0  # for metrics
        self.refused = 0

    @property
    def busy(self) -> int:
        return self.limits.calls_max - len(self._engines)

    async def run(self, fn: Callable[..., tuple[Any, int]], *args: Any) -> Any:
        """`fn(engine, gas_max, *args)` on a thread of its own, off the chain's worker thread;
        it returns (answer, gas used) and this returns the answer."""
        limits = self.limits
        deadline = trio.current_time() + limits.timeout_ms / 1000
        acquired = False
        with trio.move_on_at(deadline):
            await self._slots.acquire()
            acquired = True
        if not acquired:
            self.refused += 1
            raise RpcError(LIMIT_EXCEEDED, f"too many calls in progress (limit {limits.calls_max} at once); none finished within {limits.timeout_ms} ms; retry later")
        gas_max = self._budget.reserve(limits.gas_max)
        if gas_max < min(CALL_GAS_MIN, limits.gas_max):
            self._budget.give_back(gas_max)
            self._slots.release()
            self.refused += 1
            raise RpcError(LIMIT_EXCEEDED, f"read-only calls have used this node's budget of {limits.gas_per_s_max} gas per second "
                                           "(rpc_calls_gas_per_s_max); retry in a moment, or send a transaction")
        engine = self._engines.pop()
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        result: list[outcome.Outcome] = []

        def finished(out: outcome.Outcome) -> None:  # on the call's thread, when it really ends
            def back() -> None:
                self._engines.append(engine)
                self._slots.release()
                used = out.value[1] if isinstance(out, outcome.Value) else gas_max
                self._budget.give_back(max(0, gas_max - used))
                result.append(out)
                done.set()

            try:
                token.run_sync_soon(back)
            except trio.RunFinishedError:
                pass  # the node is stopping; nobody is waiting

        trio.lowlevel.start_thread_soon(partial(fn, engine, gas_max, *args), finished, name="chainnode rpc call")
        with trio.move_on_at(deadline):
            await done.wait()
        if result:
            return result[0].unwrap()[0]
        self.timed_out += 1
        raise RpcError(
            TIMED_OUT,
            f"the call did not finish within {limits.timeout_ms} ms (rpc_call_timeout_ms); it still runs, bounded by "
            f"{limits.gas_max} gas (rpc_call_gas_max): make the method cheaper or send it as a transaction",
        )

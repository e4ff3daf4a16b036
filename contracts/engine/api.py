"""The engine's public API: compile, call, deploy, execute.

    engine = Engine(suite=get_suite("sm"))
    compiled = engine.compile(source)                      # raises ContractRejected
    result = engine.call(compiled, "transfer", [to, 5], state=store, ctx=ctx, gas_limit=100_000)

`call` runs against a byte store already scoped to one contract. `deploy` and `execute` run
against the node's raw base store (the state overlay of the block being executed): they
load code from it, scope storage per contract, and support cross-contract calls. Every call
gets a write buffer layered on its caller's; it is merged on success and dropped on any
failure, including running out of gas. A failed call is a `CallResult` with `ok=False`,
never an exception: outside input never crashes a node.
"""

from __future__ import annotations

import sys
import time
from decimal import getcontext, setcontext
from typing import Any

from chainnode.crypto import ADDRESS_BYTES, get_suite
from chainnode.protocol.codec import INT64_MIN, UINT64_MAX
from contracts.engine import values
from contracts.engine.builtins_curated import DECIMAL_CONTEXT
from contracts.engine.compile_check import INIT_METHOD
from contracts.engine.compiler import CodeCache, CompiledContract, cache_key, compile_contract
from contracts.engine.errors import (
    CallDepthExceeded,
    CallError,
    ContractError,
    ContractRejected,
    EngineAbort,
    LimitExceeded,
    OutOfGas,
    ReentrancyError,
    abort_state,
    text_ok,
)
from contracts.engine.frame import FRAME_CONTRACT, FRAME_CTX, FRAME_EVENTS, FRAME_READONLY, FRAME_STORAGE, new_frame
from contracts.engine.gas import (
    CALL_BASE_GAS,
    CALL_DEPTH_MAX,
    CODE_BYTE_GAS,
    CROSS_CALL_GAS,
    DEPLOY_BASE_GAS,
    DEPLOY_BYTE_GAS,
    ERROR_MESSAGE_CHARS_MAX,
    VALUE_BYTE_GAS,
    VALUE_BYTES_MAX,
)
from contracts.engine.model import CallContext, CallResult
from contracts.engine.runtime import Runtime
from contracts.engine.store import ContractStore, Storage, WriteBuffer, code_key, storage_prefix

DEPLOY_DOMAIN = b"chainnode/deploy/v1"
_ARG_SCALARS = frozenset({bytes, str, bool, type(None)})
_INIT = object()  # the key of `init` in an entry table: no method name can equal it
# Python frames the host needs above the deepest contract stack (contract frames, guard
# frames, engine frames per nested call). Our own depth limits trip long before this.
_RECURSION_HEADROOM = 3_000
_TURN_POLL_S = 0.0002  # how often a thread waiting for the engine looks again


def contract_address(suite: Any, sender: bytes, nonce: bytes) -> bytes:
    """The address a deploy creates: H("chainnode/deploy/v1" + sender + nonce)[-20:]."""
    assert type(sender) is bytes and len(sender) == 20, "sender must be a 20-byte address"
    assert type(nonce) is bytes, "nonce must be bytes"
    return suite.hash(DEPLOY_DOMAIN + sender + nonce)[-20:]


class MethodNotFound(Exception):
    """The method does not exist or may not be called from outside (private, init)."""


class Engine:
    """Compiles and runs contracts. One engine runs one transaction at a time."""

    def __init__(self, suite: Any = None, *, cache_size: int = 1024) -> None:
        self.suite = suite if suite is not None else get_suite("ed25519")
        self._cache = CodeCache(cache_size)
        self._rt = rt = Runtime(self.suite, self._cross_call)
        # Per-transaction state that lives as long as the engine and is reset by every
        # top-level call (never shared by two transactions: the lock below serialises them).
        # The gas meter ([gas left, contract function depth]) is bound once into every
        # namespace (`_g_`), the runtime and the top-level storage; the top-level storage
        # object (and its write buffer) is re-pointed per call, its writes emptied when the
        # call ends, whatever the outcome.
        self._gas = rt.gas
        self._frames = rt.frames
        top_buf = WriteBuffer(None)
        self._top_writes = top_buf.writes
        self._top_storage = Storage(top_buf, b"", rt.gas, False)
        # The top-level call's frame (frame.py), always `frames[0]`: its fields are set per
        # call (nested calls push and pop their own).
        self._top_frame = new_frame(None, [], False, self._top_storage, None)
        rt.frames.append(self._top_frame)
        # The transaction in progress: its world layer (None for Engine.call: no
        # cross-contract calls), whether it is read-only, and whether one is running.
        self._world: WriteBuffer | None = None
        self._watch_aborts = False  # whether the transaction ran code that can swallow an abort
        self._host_decimal: Any = None  # the host's Decimal context while ours is entered
        # The turn: one token in a list. Taking it (`list.pop`) and giving it back
        # (`list.append`) are single C calls, atomic under the GIL, and cost ~20 ns where a
        # threading.Lock's acquire/release measured ~170 ns in this frame (5% of a payment
        # call). A thread that finds the list empty waits in `_wait_turn`; that only
        # happens when an RPC query runs on another thread while a block executes.
        self._turn = [True]
        self._take_turn = self._turn.pop
        self._give_turn = self._turn.append
        # Python frames are not what limits a contract (our own counters are), but the host
        # must never be the one to fail first.
        if sys.getrecursionlimit() < _RECURSION_HEADROOM + 1000:
            sys.setrecursionlimit(_RECURSION_HEADROOM + 1000)

    # ---- compile ----------------------------------------------------------------------

    def compile(self, source: str) -> CompiledContract:
        """Compile (or fetch from the bounded cache) a contract; raises ContractRejected."""
        if type(source) is not str:
            raise ContractRejected(0, 0, "source must be text")
        key = cache_key(source)
        compiled = self._cache.get(key)
        if compiled is None:
            compiled = compile_contract(source)
            self._cache.put(key, compiled)
        return compiled

    # ---- entry points -----------------------------------------------------------------

    def deploy(
        self,
        base_store: Any,
        ctx: CallContext,
        source: str,
        init_args: list,
        gas_limit: int,
        nonce: bytes,
    ) -> CallResult:
        """Deploy `source` at contract_address(sender, nonce) and run its `init`."""
        address = contract_address(self.suite, ctx.sender, nonce)
        gas = DEPLOY_BASE_GAS + DEPLOY_BYTE_GAS * len(source.encode("utf-8", "surrogatepass")) if type(source) is str else DEPLOY_BASE_GAS
        if gas > gas_limit:
            return CallResult(False, None, (), gas_limit, "OutOfGas", None, address)
        try:
            compiled = self.compile(source)
        except ContractRejected:
            # The reason is for the developer (Engine.compile gives it); receipts carry the
            # type only, as parser texts differ between CPython releases.
            return CallResult(False, None, (), gas, "ContractRejected", None, address)
        world = WriteBuffer(base_store)
        if world.get(code_key(address)) is not None:
            return CallResult(False, None, (), gas, "AddressInUse", None, address)
        world.set(code_key(address), source.encode("utf-8", "surrogatepass"))
        ctx = _with_contract(ctx, address)
        if compiled.has_init:
            result = self.call(compiled, INIT_METHOD, init_args, state=world, ctx=ctx, gas_limit=gas_limit,
                               _world=world, _prefix=storage_prefix(address), _base_gas=gas, _init=True)
        else:
            if init_args:
                return CallResult(False, None, (), gas, "TypeError", None, address)
            result = CallResult(True, None, (), gas)
        if result.ok:
            world.merge()
        return result._replace(contract_address=address)

    def execute(
        self,
        base_store: Any,
        ctx: CallContext,
        to_address: bytes,
        method: str,
        args: list,
        gas_limit: int,
    ) -> CallResult:
        """Call `method` on the contract at `to_address` (a transaction with a `to`)."""
        return self._execute(base_store, ctx, to_address, method, args, gas_limit, False)

    def query(
        self,
        base_store: Any,
        ctx: CallContext,
        to_address: bytes,
        method: str,
        args: list,
        gas_limit: int,
    ) -> CallResult:
        """Run a method read-only (storage writes and events fail); nothing is written."""
        return self._execute(base_store, ctx, to_address, method, args, gas_limit, True)

    def _execute(self, base_store: Any, ctx: CallContext, to_address: bytes, method: str, args: list,
                 gas_limit: int, readonly: bool) -> CallResult:
        world = WriteBuffer(base_store)
        if type(to_address) is not bytes or len(to_address) != ADDRESS_BYTES:
            return CallResult(False, None, (), min(CALL_BASE_GAS, gas_limit), "NoContract", None)
        source = world.get(code_key(to_address))
        if source is None:
            return CallResult(False, None, (), min(CALL_BASE_GAS, gas_limit), "NoContract", None)
        try:
            compiled = self.compile(source.decode("utf-8", "surrogatepass"))
        except (ContractRejected, UnicodeDecodeError):
            # Stored code this node cannot compile (it compiled at deploy): fail the call,
            # never the node.
            return CallResult(False, None, (), min(CALL_BASE_GAS, gas_limit), "ContractRejected", None)
        if ctx.contract != to_address:
            ctx = _with_contract(ctx, to_address)
        # Loading code is charged by its size whether or not it was in this node's cache:
        # gas must not depend on what a node happens to have cached.
        base_gas = CALL_BASE_GAS + CODE_BYTE_GAS * len(source)
        result = self.call(compiled, method, args, state=world, ctx=ctx, gas_limit=gas_limit, readonly=readonly,
                           _world=world, _prefix=storage_prefix(to_address), _base_gas=base_gas)
        if result.ok and not readonly:
            world.merge()
        return result

    # ---- the call machinery -----------------------------------------------------------

    def call(
        self,
        compiled: CompiledContract,
        method: str,
        args: list,
        state: Any,
        ctx: CallContext,
        gas_limit: int,
        readonly: bool = False,
        _world: WriteBuffer | None = None,
        _prefix: bytes = b"",
        _base_gas: int = CALL_BASE_GAS,
        _init: bool = False,
    ) -> CallResult:
        """Run `method` of `compiled` against `state` (a byte store scoped to the contract).

        Writes reach `state` only if the call succeeds. Cross-contract `call()` needs the
        world and fails here; use `execute` for that.

        Pass `state`, `ctx`, `gas_limit` and `readonly` by keyword. (They are not declared
        keyword-only because CPython fills missing keyword-only arguments from a dict and
        positional ones from a tuple: measurably faster on this path.)

        The parameters starting with `_` are the engine's own (`deploy` and `execute` run
        their top-level call through here): the world layer for cross-contract calls, the
        contract's key prefix in `state`, the gas charged before the code runs, and whether
        this runs `init`. This is the hot path of every transaction, in one frame.
        """
        if type(gas_limit) is not int or gas_limit < _base_gas:
            if type(gas_limit) is not int or gas_limit < 0:
                raise ValueError("gas_limit must be a non-negative int")
            return CallResult(False, None, (), gas_limit, "OutOfGas", None)
        # One transaction at a time per engine: the runtime's gas, frames and namespaces
        # belong to the call in progress. A second thread (an RPC query during a block)
        # waits instead of corrupting them.
        try:
            self._take_turn()
        except IndexError:
            self._wait_turn()
        gas = self._gas
        gas[0] = gas_limit - _base_gas
        gas[1] = 1  # the function depth inside the entry function (see below)
        rt = self._rt
        rt.events_total = 0
        rt.event_bytes = 0
        frames = self._frames
        if len(frames) != 1:  # only if a nested call could not pop its frame
            frames[:] = [self._top_frame]
        self._world = _world
        self._host_decimal = None
        writes = self._top_writes
        try:
            try:
                # The fixed Decimal context is entered for any call whose code can touch a
                # Decimal (only code that names Decimal/decimal_div can make one: storage,
                # arguments and results are plain values). Callees enter it too.
                if type(args) is not list:
                    if type(args) is not tuple:
                        raise TypeError("args must be a list")
                    args = list(args)
                for a in args:  # the common case: scalars; anything else takes the walker
                    t = type(a)
                    if t is int:
                        if not INT64_MIN <= a <= UINT64_MAX:
                            values.to_plain(a, "argument")
                    elif t not in _ARG_SCALARS:
                        values.to_plain(a, "argument")
                # The top-level call, inlined (see _invoke for the nested form): this is the
                # hot path of every transaction.
                # The method's entry variant (see compile_guards.entry_variant): it starts at
                # function depth 1 without counting it itself.
                table = compiled.entry_tables.get(rt)
                if table is None:
                    table = self._entry_table(compiled)
                entry = table.get(_INIT if _init else method)
                if entry is None:
                    raise MethodNotFound(method if type(method) is str else "?")
                fn, view, ns = entry
                if compiled.uses_decimal:
                    self._host_decimal = getcontext()
                    setcontext(DECIMAL_CONTEXT)
                # The reused top-level layer, re-pointed. Its writes are empty: every call
                # that used it cleared them in the `finally` below, whatever the outcome.
                ro = readonly or view
                self._top_storage.repoint(state, _prefix, ro)
                top = self._top_frame
                top[FRAME_CONTRACT] = ctx.contract
                top[FRAME_EVENTS] = events = []
                top[FRAME_READONLY] = ro
                top[FRAME_CTX] = ctx
                ns["ctx"] = ctx  # `storage` is already this storage object (see _namespace)
                # Swallowed aborts (see EngineAbort): only code with a `try` can swallow one,
                # so the per-thread record is reset and checked only once such code runs in
                # this transaction (here, or in a callee: see _cross_call).
                self._watch_aborts = watch = compiled.has_try
                if watch:
                    abort_state.pending = None
                value = fn(*args)
                if gas[0] < 0:
                    raise OutOfGas("out of gas")
                if self._watch_aborts and abort_state.pending is not None:
                    raise abort_state.pending
                if value is not None:
                    value = values.to_receipt_value(value, "return value", gas)
                    encoded = values.encode(value)
                    if len(encoded) > VALUE_BYTES_MAX:
                        raise LimitExceeded("return value too large")
                    rt.charge(VALUE_BYTE_GAS * len(encoded))
                # WriteBuffer.merge, inlined.
                if writes:
                    if type(state) is WriteBuffer:
                        state.writes.update(writes)
                    else:
                        # The bottom layer writes through to the caller's store in the order
                        # the contract wrote (dict order): the same sequence on every node.
                        put = state.set
                        for key, data in writes.items():
                            if data is None:
                                state.delete(key)
                            else:
                                put(key, data)
                # Read the meter while the lock is held: it is the engine's, and the next
                # transaction (another thread) resets it as soon as the lock is released.
                used = gas_limit - gas[0]
            except OutOfGas:
                return CallResult(False, None, (), gas_limit, "OutOfGas", None)
            except EngineAbort as exc:
                if gas[0] < 0:
                    return CallResult(False, None, (), gas_limit, "OutOfGas", None)
                # The engine's own texts (which limit, which size): fixed by ENGINE_VERSION.
                return CallResult(False, None, (), _used(gas_limit, gas), type(exc).__name__, _abort_message(exc))
            except ContractError as exc:
                if gas[0] < 0:
                    return CallResult(False, None, (), gas_limit, "OutOfGas", None)
                return CallResult(False, None, (), _used(gas_limit, gas), type(exc).__name__, exc.message)
            except RecursionError:
                # Our counters trip first; if the host stack still ran out, fail the same
                # way the counter would have.
                return CallResult(False, None, (), _used(gas_limit, gas), "CallDepthExceeded", None)
            except Exception as exc:  # TypeError, KeyError, MethodNotFound ... (type only)
                if gas[0] < 0:
                    # An error raised while unwinding from out-of-gas (say, an except clause
                    # naming an unknown type) must not turn OutOfGas into something cheaper.
                    return CallResult(False, None, (), gas_limit, "OutOfGas", None)
                # Text the codec cannot encode (a return value, storage key or value, event
                # name or field): our own message, never CPython's (it names positions and
                # changes between releases).
                message = values.BAD_TEXT_MESSAGE if type(exc) is UnicodeEncodeError else None
                return CallResult(False, None, (), _used(gas_limit, gas), type(exc).__name__, message)
        finally:
            # Nothing of this call's state survives it in the reused layer: its writes were
            # merged above, or are dropped here on failure.
            writes.clear()
            if self._host_decimal is not None:
                setcontext(self._host_decimal)
            self._give_turn(True)
        # tuple.__new__ skips NamedTuple's Python-level __new__ (defaults): hot path.
        return _new_result(CallResult, (True, value, tuple(events), used, None, None, None))

    def _wait_turn(self) -> None:
        """Wait until the transaction running on another thread gives the turn back.

        Polled, not signalled: it is rare and short (a query waiting for a block's
        execution), and a signal would put a condition variable on every call's path."""
        while True:
            time.sleep(_TURN_POLL_S)
            try:
                self._take_turn()
                return
            except IndexError:
                pass

    def _invoke(self, compiled: CompiledContract, method: str, args: Any, parent: Any, prefix: bytes,
                ctx: CallContext, caller_readonly: bool) -> tuple[Any, list]:
        """Run a nested contract call in a new write layer; merge it only if the call returns.

        A view stays read-only all the way down: whatever it calls cannot write or emit."""
        if method in compiled.public_methods:
            fn_name = method
        else:
            raise MethodNotFound(method if type(method) is str else "?")
        readonly = caller_readonly or method in compiled.view_methods
        rt = self._rt
        ns = compiled.namespaces.get(rt)
        if ns is None:
            ns = self._namespace(compiled)
        address = ctx.contract
        frames = rt.frames
        for f in frames:
            if f[FRAME_CONTRACT] == address:
                raise ReentrancyError("contract is already on the call stack")
        if len(frames) >= CALL_DEPTH_MAX:
            raise CallDepthExceeded(f"more than {CALL_DEPTH_MAX} nested contract calls")
        buf = WriteBuffer(parent)
        storage = Storage(buf, prefix, rt.gas, readonly)
        events: list = []
        frames.append(new_frame(address, events, readonly, storage, ctx))
        # The namespace may be shared by two addresses running the same code (the caller
        # and a callee deployed from the same source): put the caller's bindings back.
        saved = (ns.get("storage"), ns.get("ctx"))
        ns["storage"] = storage
        ns["ctx"] = ctx
        try:
            value = ns[fn_name](*args)
        finally:
            frames.pop()
            ns["storage"], ns["ctx"] = saved
        buf.merge()
        return value, events

    def _entry_table(self, compiled: CompiledContract) -> dict:
        """What the top-level call needs per method, looked up once per compiled contract:
        public method (or `_INIT`) -> (its entry function, whether it is a view, namespace).
        The entry functions are those of compile_guards.entry_variant."""
        ns = self._namespace(compiled)
        table: dict = {m: (ns[name], m in compiled.view_methods, ns) for m, name in compiled.entries.items()}
        if compiled.init_entry is not None:
            table[_INIT] = (ns[compiled.init_entry], False, ns)
        compiled.entry_tables[self._rt] = table
        return table

    def _namespace(self, compiled: CompiledContract) -> dict:
        ns = compiled.namespaces.get(self._rt)
        if ns is None:
            # `_g_` is the engine's gas meter for good: it is the same list for every call.
            # `storage` is the engine's reused top-level storage object unless a nested call
            # is running this code (_invoke binds the callee's and puts this one back).
            ns = {"__builtins__": self._rt.builtins, "__name__": "contract", "_g_": self._gas,
                  "storage": self._top_storage}
            # The module body only defines functions and constant literals (checked at
            # compile time), so running it once and reusing it is the same as running it
            # for every call.
            exec(compiled.code, ns)  # noqa: S102 - sandboxed, compiled code
            compiled.namespaces[self._rt] = ns
        return ns

    def _cross_call(self, address: bytes, method: str, args: tuple) -> Any:
        """`call(address, method, *args)` from a contract: a nested call with its own layer."""
        rt = self._rt
        assert not self._turn, "a cross-contract call outside a transaction"
        rt.charge(CROSS_CALL_GAS)
        if self._world is None:
            raise CallError("cross-contract calls need the world state (use Engine.execute)")
        if len(address) != ADDRESS_BYTES:
            raise CallError("address must be 20 bytes")
        source = self._world.get(code_key(address))
        caller_frame = rt.frames[-1]
        # The caller's pending writes are visible to the callee: read through its layer.
        parent = caller_frame[FRAME_STORAGE].write_layer()
        if source is None:
            raise CallError(f"no contract at {address.hex()}")
        rt.charge(CODE_BYTE_GAS * len(source))
        try:
            compiled = self.compile(source.decode("utf-8", "surrogatepass"))
        except (ContractRejected, UnicodeDecodeError):
            raise CallError(f"contract at {address.hex()} cannot be compiled") from None
        # Arguments and results are copied: contracts never share mutable objects.
        copied = values.encode(values.to_plain(list(args), "call arguments", rt.gas))
        if len(copied) > VALUE_BYTES_MAX:
            raise CallError("call arguments too large")
        rt.charge(VALUE_BYTE_GAS * len(copied))
        caller_ctx: CallContext = caller_frame[FRAME_CTX]
        if compiled.has_try and not self._watch_aborts:
            # The first code in this transaction that can swallow an abort: nothing could
            # before it, so start the record here.
            abort_state.pending = None
            self._watch_aborts = True
        if compiled.uses_decimal and self._host_decimal is None:
            self._host_decimal = getcontext()
            setcontext(DECIMAL_CONTEXT)
        ctx = CallContext(
            sender=caller_frame[FRAME_CONTRACT],
            contract=address,
            block_height=caller_ctx.block_height,
            block_timestamp_ms=caller_ctx.block_timestamp_ms,
            tx_hash=caller_ctx.tx_hash,
        )
        events_before = rt.events_total, rt.event_bytes
        try:
            value, events = self._invoke(compiled, method, values.decode(copied), parent,
                                         storage_prefix(address), ctx, caller_frame[FRAME_READONLY])
        except ContractError as exc:
            rt.events_total, rt.event_bytes = events_before
            raise CallError(f"{address.hex()}.{method}: {type(exc).__name__}: {exc.message}") from None
        except EngineAbort:
            raise
        except Exception as exc:
            rt.events_total, rt.event_bytes = events_before
            raise CallError(f"{address.hex()}.{method}: {type(exc).__name__}") from None
        caller_frame[FRAME_EVENTS].extend(events)
        if value is None:
            return None
        out = values.encode(values.to_plain(value, "call result", rt.gas))
        if len(out) > VALUE_BYTES_MAX:
            raise CallError("call result too large")
        rt.charge(VALUE_BYTE_GAS * len(out))
        return values.decode(out)

    @property
    def cache_size(self) -> int:
        return len(self._cache)


_new_result = tuple.__new__


def _abort_message(exc: EngineAbort) -> str | None:
    text = str(exc)[:ERROR_MESSAGE_CHARS_MAX]
    return text if text and text_ok(text) else None


def _used(gas_limit: int, gas: list[int]) -> int:
    return min(gas_limit, gas_limit - gas[0])


def _with_contract(ctx: CallContext, address: bytes) -> CallContext:
    return CallContext(ctx.sender, address, ctx.block_height, ctx.block_timestamp_ms, ctx.tx_hash)


__all__ = [
    "CallContext",
    "CallResult",
    "CompiledContract",
    "ContractStore",
    "Engine",
    "MethodNotFound",
    "contract_address",
]

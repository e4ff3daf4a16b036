"""The sandboxed Python contract engine.

Public API (stable; the node, the tools and outside reviewers drive it directly):

    from contracts.engine import Engine, CallContext
    engine = Engine(suite=get_suite("sm"))
    compiled = engine.compile(source)            # ContractRejected(line, column, reason)
    result = engine.call(compiled, "method", [args], state=store, ctx=ctx, gas_limit=n)
    result = engine.deploy(base_store, ctx, source, init_args, gas_limit, nonce)
    result = engine.execute(base_store, ctx, to_address, method, args, gas_limit)

See docs/contracts.md for the language, the gas schedule and the limits.
"""

from contracts.engine.api import Engine, MethodNotFound, contract_address
from contracts.engine.compiler import ENGINE_VERSION, CompiledContract
from contracts.engine.errors import (
    CallDepthExceeded,
    CallError,
    ContractError,
    ContractRejected,
    DeterminismError,
    EngineAbort,
    LimitExceeded,
    OutOfGas,
    ReentrancyError,
)
from contracts.engine.model import CallContext, CallResult, Event
from contracts.engine.store import CODE_PREFIX, ContractStore, WriteBuffer, code_key, storage_prefix

__all__ = [
    "CODE_PREFIX",
    "ENGINE_VERSION",
    "CallContext",
    "CallDepthExceeded",
    "CallError",
    "CallResult",
    "CompiledContract",
    "ContractError",
    "ContractRejected",
    "ContractStore",
    "DeterminismError",
    "Engine",
    "EngineAbort",
    "Event",
    "LimitExceeded",
    "MethodNotFound",
    "OutOfGas",
    "ReentrancyError",
    "WriteBuffer",
    "code_key",
    "contract_address",
    "storage_prefix",
]

"""The call frame: what the engine keeps about each contract on the call stack.

A frame is a plain list indexed by the names below: the engine builds one per call
(api.py) and the builtins read the running contract's (runtime.py), and so does the C
accelerator, by `#define`s of the same names in _speedups.c, checked against these when
the engine imports it. A list, not an object: the top-level frame is re-pointed field by
field on every call, and an index is the cheapest access from both Python and C.
"""

from __future__ import annotations

from typing import Any

FRAME_CONTRACT = 0  # address of the running contract: its events' address, its callees' sender
FRAME_EVENTS = 1  # the events it emitted (a list), its callees' included once they return
FRAME_READONLY = 2  # whether it may not write or emit: a view, or anything a view calls
FRAME_STORAGE = 3  # its `storage` object (store.Storage)
FRAME_CTX = 4  # its CallContext
FRAME_SIZE = 5

# new_frame lists the fields in this order.
assert (FRAME_CONTRACT, FRAME_EVENTS, FRAME_READONLY, FRAME_STORAGE, FRAME_CTX) == tuple(range(FRAME_SIZE))


def new_frame(contract: bytes | None, events: list, readonly: bool, storage: Any, ctx: Any) -> list:
    return [contract, events, readonly, storage, ctx]

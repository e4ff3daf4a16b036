"""Whether the engine runs on its C accelerator or on the Python reference.

The accelerator (contracts/engine/_speedups.c) is the common case of `storage.get`,
`storage[key] = value` and event emission, identical in results and gas to the Python
code in store.py and runtime.py, which stays the reference and runs whenever the extension
is not built (no C compiler at install) or CHAINNODE_PURE_PYTHON=1 is set (to test or
debug the reference). This module makes that choice once for the whole engine: `speedups`
is the extension module, or None.
"""

from __future__ import annotations

import os
from typing import Any

from contracts.engine import frame

speedups: Any = None
if os.environ.get("CHAINNODE_PURE_PYTHON") != "1":
    try:
        import contracts.engine._speedups as speedups
    except ImportError:  # pragma: no cover - depends on the install
        speedups = None
if speedups is not None:
    # Its Emitter reads call frames by the C file's own #defines of their indices.
    assert speedups.FRAME_LAYOUT == {name: getattr(frame, name) for name in speedups.FRAME_LAYOUT}, (
        "contracts/engine/_speedups.c and frame.py disagree on the call frame's layout (rebuild it?)")

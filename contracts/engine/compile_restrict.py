"""Pass 2 of the compiler: RestrictedPython (>= 9.0), its checks and rewrites: guarded
attribute and item access, guarded iteration and unpacking, protected names.

Our whitelist (compile_check.py) runs first and is stricter, so this is defence in depth.
"""

from __future__ import annotations

import ast
from importlib.metadata import version as _installed_version

from RestrictedPython.transformer import RestrictingNodeTransformer

from contracts.engine.errors import ContractRejected

# RestrictedPython 9.0 fixes escapes our whitelist also blocks (generator frames, format
# strings, AttributeError.obj/string.Formatter, except*, positional-only defaults); refuse
# to run on an older one rather than lose a layer silently.
RESTRICTEDPYTHON_MAJOR_MIN = 9
if int(_installed_version("RestrictedPython").split(".")[0]) < RESTRICTEDPYTHON_MAJOR_MIN:  # pragma: no cover
    raise ImportError(f"the contract engine needs RestrictedPython >= {RESTRICTEDPYTHON_MAJOR_MIN}")


def restrict(tree: ast.Module) -> None:
    """RestrictedPython's rewrites, in place; raises ContractRejected with its first error."""
    errors: list[str] = []
    RestrictingNodeTransformer(errors, [], {}).visit(tree)
    if errors:
        # RestrictedPython reports "Line N: reason" without a column.
        first = errors[0]
        line = 0
        if first.startswith("Line "):
            head = first[5:].split(":", 1)[0]
            line = int(head) if head.isdigit() else 0
        raise ContractRejected(line, 0, first)

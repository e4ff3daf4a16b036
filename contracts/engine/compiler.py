"""From contract source to a code object: the compiler's driver, its cache and its result.

Three passes, in this order, each for a reason:

1. The whitelist (compile_check.py) on the parsed AST. Anything not listed is rejected
   with its line, column and a reason. Then a desugar step renames private names, turns
   augmented assignment into plain assignment and drops gas *markers* at the start of
   every block: the cost of each block is counted there, on the user's AST, so gas never
   depends on what RestrictedPython or CPython generate.
2. RestrictedPython (compile_restrict.py, >= 9.0): its checks and rewrites, guarded
   attribute and item access, guarded iteration and unpacking, protected names.
3. Guards (compile_guards.py), after RestrictedPython so the names they insert (`_g_`,
   `_add_`...) are not refused by it: markers become inline gas arithmetic, operators and
   comparisons of possibly large values become calls to size-checking guards, item writes
   and deletes become guard calls, and f-string fields go through a width-checking
   formatter.
"""

from __future__ import annotations

import ast
import hashlib
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from types import CodeType

from contracts.engine.compile_check import INIT_METHOD, VIEW_PREFIX, check, desugar
from contracts.engine.compile_guards import add_guards, entry_variant
from contracts.engine.compile_restrict import restrict
from contracts.engine.errors import ContractRejected
from contracts.engine.gas import SOURCE_BYTES_MAX

# Part of every cache key and of consensus: bump when the language, a guard or the gas
# schedule changes.
ENGINE_VERSION = "chainnode-contracts/3"
PYTHON_VERSION = "%d.%d.%d" % sys.version_info[:3]

# The names through which code can make a Decimal (CompiledContract.uses_decimal).
_DECIMAL_NAMES = frozenset({"Decimal", "decimal_div"})


@dataclass(eq=False)
class CompiledContract:
    """A compiled contract: its code object and its method table. Immutable once built."""

    source_hash: bytes
    code: CodeType
    public_methods: frozenset[str]
    view_methods: frozenset[str]
    has_init: bool
    source_bytes: int
    # Whether the code names Decimal or decimal_div: the only way a Decimal can exist.
    uses_decimal: bool
    # Whether the code has a `try` statement. Only a `try` can turn an in-flight engine abort
    # into something a contract goes on with (an `except` clause whose type expression
    # raises a catchable error, a `finally` block that raises one): the engine watches for
    # swallowed aborts in a transaction once a contract with a `try` runs in it.
    has_try: bool = True
    # Public method -> the name of its entry variant, the form the engine calls at the top
    # of a transaction (see compile_guards.entry_variant); `init`'s is `init_entry`.
    entries: dict = field(default_factory=dict)
    init_entry: str | None = None
    # Caches the engine fills, per Runtime that runs the code: the module namespace with its
    # functions (Engine._namespace) and the per-method entry table (Engine._entry_table).
    namespaces: dict = field(default_factory=dict, repr=False)
    entry_tables: dict = field(default_factory=dict, repr=False)


def cache_key(source: str) -> bytes:
    """The cache key: hash of source + engine version + Python version."""
    h = hashlib.sha256()
    h.update(ENGINE_VERSION.encode())
    h.update(b"\x00")
    h.update(PYTHON_VERSION.encode())
    h.update(b"\x00")
    h.update(source.encode("utf-8", "surrogatepass"))
    return h.digest()


class CodeCache:
    """A bounded LRU of compiled contracts by `cache_key`."""

    def __init__(self, size_max: int = 256) -> None:
        assert size_max > 0
        self.size_max = size_max
        self._items: OrderedDict[bytes, CompiledContract] = OrderedDict()
        self._lock = threading.Lock()  # get+move_to_end must not race an eviction

    def get(self, key: bytes) -> CompiledContract | None:
        with self._lock:
            item = self._items.get(key)
            if item is not None:
                self._items.move_to_end(key)
            return item

    def put(self, key: bytes, item: CompiledContract) -> None:
        with self._lock:
            self._items[key] = item
            self._items.move_to_end(key)
            while len(self._items) > self.size_max:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def compile_contract(source: str, *, fast_paths: bool = True) -> CompiledContract:
    """Compile `source` (no cache); raises ContractRejected.

    `fast_paths=False` leaves out the guard pass's shortcuts (inlined int arithmetic and
    comparisons, `require` as an `if`, `emit` with a prebuilt dict): the reference form the
    tests hold the fast one to (same results, same gas, same errors). The engine always
    compiles with them."""
    if type(source) is not str:
        raise ContractRejected(0, 0, "source must be text")
    if len(source.encode("utf-8", "surrogatepass")) > SOURCE_BYTES_MAX:
        raise ContractRejected(0, 0, f"source exceeds {SOURCE_BYTES_MAX} bytes")
    try:
        tree = ast.parse(source, "<contract>", "exec")
    except SyntaxError as exc:
        raise ContractRejected(exc.lineno or 0, exc.offset or 0, f"syntax error: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError) as exc:  # null bytes, absurd nesting
        raise ContractRejected(0, 0, f"source cannot be parsed: {type(exc).__name__}") from None
    checker = check(tree)  # pass 1: the whitelist
    uses_decimal = False
    has_try = False
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            if n.id in _DECIMAL_NAMES:
                uses_decimal = True
        elif isinstance(n, (ast.Try, ast.TryStar)):
            has_try = True
    desugar(tree)  # pass 1: desugaring and gas markers, on the user's AST
    restrict(tree)  # pass 2
    add_guards(tree, fast_paths)  # pass 3
    entries: dict[str, str] = {}
    init_entry = None
    for fn in list(tree.body):
        if isinstance(fn, ast.FunctionDef) and (fn.name == INIT_METHOD or fn.name in checker.public):
            entry = entry_variant(fn)
            tree.body.append(entry)
            if fn.name == INIT_METHOD:
                init_entry = entry.name
            else:
                entries[fn.name] = entry.name
    ast.fix_missing_locations(tree)
    code = compile(tree, "<contract>", "exec", dont_inherit=True)
    return CompiledContract(
        source_hash=cache_key(source),
        code=code,
        public_methods=frozenset(checker.public),
        view_methods=frozenset(n for n in checker.public if n.startswith(VIEW_PREFIX)),
        has_init=checker.has_init,
        source_bytes=len(source.encode("utf-8", "surrogatepass")),
        uses_decimal=uses_decimal,
        has_try=has_try,
        entries=entries,
        init_entry=init_entry,
    )



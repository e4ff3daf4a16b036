"""From contract source to a code object: AST whitelist, RestrictedPython, gas and size guards.

Three passes, in this order, each for a reason:

1. `_Checker` — a whitelist on the parsed AST. Anything not listed is rejected with its
   line, column and a reason: imports, classes, lambdas, decorators, generators, async,
   `with`, `match`, `except*`, walrus, `global`/`nonlocal`, `assert`, sets, `/`, floats,
   star-args, nested functions, names containing `__`, attribute writes... Then a desugar
   step renames private names (`_x` -> `private__x`, which user code cannot spell because
   `__` is rejected), turns `x += y` into `x = x + y`, and drops gas *markers* at the start
   of every block: the cost of each block is counted here, on the user's AST as desugared
   by this module, so gas never depends on what RestrictedPython or CPython generate.
2. RestrictedPython (>= 9.0) — its checks and rewrites: guarded attribute and item access,
   guarded iteration and unpacking, protected names.
3. `_Guards` — runs after RestrictedPython so the names it inserts (`_g_`, `_add_`...) are
   not refused by it: markers become inline gas arithmetic, `+ - * ** % << |` and
   comparisons of possibly large values become calls to size-checking guards, item writes
   and deletes become guard calls, and f-string fields go through a width-checking
   formatter.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import sys
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from types import CodeType

from importlib.metadata import version as _installed_version

from RestrictedPython.transformer import RestrictingNodeTransformer

from contracts.engine.errors import ContractRejected
from contracts.engine.values import text_ok
from chainnode.protocol.codec import VALUE_ITEMS_MAX
from contracts.engine.gas import (
    EVENT_NAME_CHARS_MAX,
    FUNCTION_DEPTH_MAX,
    ATTRIBUTE_NODE_GAS,
    CALL_NODE_GAS,
    COMPREHENSION_ELEMENT_GAS,
    DICT_COMPREHENSION_ELEMENT_GAS,
    EXCEPT_HANDLER_GAS,
    FORMAT_NODE_GAS,
    OPERATOR_NODE_GAS,
    SUBSCRIPT_NODE_GAS,
    FUNCTION_ENTRY_GAS,
    RAISE_NODE_GAS,
    UNPACK_NODE_GAS,
    INT_BITS_MAX,
    ITERATION_GAS,
    NODE_GAS,
    SOURCE_BYTES_MAX,
)

# Part of every cache key and of consensus: bump when the language, a guard or the gas
# schedule changes.
ENGINE_VERSION = "chainnode-contracts/3"
PYTHON_VERSION = "%d.%d.%d" % sys.version_info[:3]

# RestrictedPython 9.0 fixes escapes our whitelist also blocks (generator frames, format
# strings, AttributeError.obj/string.Formatter, except*, positional-only defaults); refuse
# to run on an older one rather than lose a layer silently.
RESTRICTEDPYTHON_MAJOR_MIN = 9
if int(_installed_version("RestrictedPython").split(".")[0]) < RESTRICTEDPYTHON_MAJOR_MIN:  # pragma: no cover
    raise ImportError(f"the contract engine needs RestrictedPython >= {RESTRICTEDPYTHON_MAJOR_MIN}")

INIT_METHOD = "init"
VIEW_PREFIX = "view_"
PRIVATE_PREFIX = "private__"
AST_DEPTH_MAX = 64
FUNCTIONS_MAX = 256

# Names the engine provides; a contract may not rebind them (that would let it shadow a
# guard or a chain service for code that trusts the name).
RESERVED_NAMES = frozenset(
    {
        "storage", "ctx", "emit", "require", "call", "verify_signature", "hash",
        "ContractError", "CallError", "Decimal", "decimal_div",
        "len", "abs", "min", "max", "sum", "sorted", "range", "enumerate", "zip", "reversed",
        "any", "all", "divmod", "pow", "isinstance", "int", "str", "bytes", "bool", "list",
        "dict", "tuple", "chr", "ord", "hex", "int_from_bytes",
        "Exception", "ValueError", "TypeError", "KeyError", "IndexError", "LookupError",
        "ArithmeticError", "ZeroDivisionError", "AttributeError", "PermissionError",
        "True", "False", "None",
        # Not provided, and never bindable, so a reviewer can grep for them with confidence.
        "print", "printed", "exec", "eval", "compile", "globals", "locals", "vars", "getattr",
        "setattr", "delattr", "type", "object", "super", "open", "id", "repr", "format",
        "float", "complex", "set", "frozenset", "iter", "next", "breakpoint", "builtins",
        "BaseException",
    }
)

_CONST_TYPES = (int, str, bytes, bool, type(None))
# Names RestrictedPython would rewrite into its own machinery (print collectors) or that
# read as an escape attempt; refusing them here gives a clear reason with a column.
_FORBIDDEN_LOADS = frozenset({"print", "printed", "exec", "eval", "compile", "breakpoint", "builtins"})

_REJECTED = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.ClassDef: "classes are not allowed",
    ast.Lambda: "lambda is not allowed; define a function",
    ast.GeneratorExp: "generator expressions are not allowed; use a list comprehension",
    ast.Yield: "generators are not allowed",
    ast.YieldFrom: "generators are not allowed",
    ast.Await: "async code is not allowed",
    ast.AsyncFunctionDef: "async code is not allowed",
    ast.AsyncFor: "async code is not allowed",
    ast.AsyncWith: "async code is not allowed",
    ast.With: "with statements are not allowed",
    ast.Match: "match statements are not allowed",
    ast.TryStar: "except* is not allowed",
    ast.NamedExpr: "assignment expressions (:=) are not allowed",
    ast.Global: "global is not allowed: module names are constants",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Assert: "assert is not allowed (it vanishes under python -O); use require()",
    ast.AnnAssign: "annotated assignments are not allowed",
    ast.Set: "sets are not allowed: their order differs between nodes",
    ast.SetComp: "sets are not allowed: their order differs between nodes",
    ast.Starred: "star arguments and star unpacking are not allowed",
    ast.Div: "true division '/' produces floats; use // or decimal_div()",
    ast.MatMult: "the @ operator is not allowed",
}

_ALLOWED = frozenset(
    {
        ast.Module, ast.FunctionDef, ast.arguments, ast.arg, ast.Return, ast.Assign,
        ast.AugAssign, ast.For, ast.While, ast.If, ast.Break, ast.Continue, ast.Pass, ast.Expr,
        ast.Try, ast.ExceptHandler, ast.Raise, ast.Delete, ast.Name, ast.Constant, ast.List,
        ast.Tuple, ast.Dict, ast.ListComp, ast.DictComp, ast.comprehension, ast.BinOp,
        ast.UnaryOp, ast.BoolOp, ast.Compare, ast.Call, ast.keyword, ast.IfExp, ast.Attribute,
        ast.Subscript, ast.Slice, ast.JoinedStr, ast.FormattedValue, ast.Load, ast.Store,
        ast.Del, ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod, ast.Pow, ast.LShift,
        ast.RShift, ast.BitOr, ast.BitXor, ast.BitAnd, ast.UAdd, ast.USub, ast.Not,
        ast.Invert, ast.And, ast.Or, ast.Eq, ast.NotEq, ast.Lt, ast.LtE, ast.Gt, ast.GtE,
        ast.Is, ast.IsNot, ast.In, ast.NotIn,
    }
)

# Node kinds that are not counted by the gas schedule (they are part of another node).
_DECIMAL_NAMES = frozenset({"Decimal", "decimal_div"})
_UNCOUNTED = (ast.expr_context, ast.operator, ast.boolop, ast.cmpop, ast.unaryop)


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
    # of a transaction (see _entry_variant); `init`'s is `init_entry`.
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
    _check_depth(tree)
    checker = _Checker()
    checker.check_module(tree)
    uses_decimal = False
    has_try = False
    for n in ast.walk(tree):
        if isinstance(n, ast.Name):
            if n.id in _DECIMAL_NAMES:
                uses_decimal = True
        elif isinstance(n, (ast.Try, ast.TryStar)):
            has_try = True
    _Desugar().visit(tree)
    _insert_gas_markers(tree)
    ast.fix_missing_locations(tree)

    errors: list[str] = []
    RestrictingNodeTransformer(errors, [], {}).visit(tree)
    if errors:
        # Our whitelist runs first and is stricter, so this is defence in depth; RP reports
        # "Line N: reason" without a column.
        first = errors[0]
        line = 0
        if first.startswith("Line "):
            head = first[5:].split(":", 1)[0]
            line = int(head) if head.isdigit() else 0
        raise ContractRejected(line, 0, first)
    _Guards(fast_paths).visit(tree)
    entries: dict[str, str] = {}
    init_entry = None
    for fn in list(tree.body):
        if isinstance(fn, ast.FunctionDef) and (fn.name == INIT_METHOD or fn.name in checker.public):
            entry = _entry_variant(fn)
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


# ---- pass 1: the whitelist ----------------------------------------------------------------


def _reject(node: ast.AST, reason: str) -> None:
    raise ContractRejected(getattr(node, "lineno", 0), getattr(node, "col_offset", 0), reason)


def _check_depth(tree: ast.AST) -> None:
    """Iteratively bound the AST depth, so no later recursive pass can overflow the stack."""
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > AST_DEPTH_MAX:
            _reject(node, f"code is nested deeper than {AST_DEPTH_MAX} levels")
        for child in ast.iter_child_nodes(node):
            stack.append((child, depth + 1))


def _is_constant_literal(node: ast.AST) -> bool:
    """Immutable literal usable at module level or as a default: shared across calls."""
    if isinstance(node, ast.Constant):
        return type(node.value) in _CONST_TYPES
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return isinstance(node.operand, ast.Constant) and type(node.operand.value) is int
    if isinstance(node, ast.Tuple):
        return all(_is_constant_literal(e) for e in node.elts)
    return False


def _is_name_target(node: ast.AST) -> bool:
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, (ast.Tuple, ast.List)):
        return bool(node.elts) and all(_is_name_target(e) for e in node.elts)
    return False


class _Checker:
    def __init__(self) -> None:
        self.public: list[str] = []
        self.has_init = False
        self._in_finally = 0
        self._loops_in_finally = 0  # loops entered since the innermost finally

    # Module level: function definitions, constant assignments, docstrings. Nothing that
    # runs contract logic or creates a mutable object shared between calls.
    def check_module(self, tree: ast.Module) -> None:
        names: set[str] = set()
        functions = 0
        for stmt in tree.body:
            if isinstance(stmt, ast.FunctionDef):
                functions += 1
                if functions > FUNCTIONS_MAX:
                    _reject(stmt, f"more than {FUNCTIONS_MAX} functions")
                if stmt.name in names:
                    _reject(stmt, f"{stmt.name!r} is defined twice")
                names.add(stmt.name)
                self._check_name(stmt, stmt.name)
                self._check_function(stmt)
                if stmt.name == INIT_METHOD:
                    self.has_init = True
                elif not stmt.name.startswith("_"):
                    self.public.append(stmt.name)
            elif isinstance(stmt, ast.Assign):
                if len(stmt.targets) != 1 or not isinstance(stmt.targets[0], ast.Name):
                    _reject(stmt, "module level may only assign constants to single names")
                if not _is_constant_literal(stmt.value):
                    _reject(stmt, "module-level values must be int/str/bytes/bool/None literals or tuples of them")
                target = stmt.targets[0]
                self._check_name(target, target.id)
                if target.id in names:
                    _reject(stmt, f"{target.id!r} is defined twice")
                names.add(target.id)
                self._visit(stmt.value)
            elif isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant) and type(stmt.value.value) is str:
                continue  # docstring
            else:
                kind = type(stmt)
                _reject(stmt, _REJECTED.get(kind, "only functions and constants are allowed at module level"))

    def _check_name(self, node: ast.AST, name: str) -> None:
        if not name.isascii() or not name.isidentifier():
            _reject(node, f"name {name!r} must be an ASCII identifier")
        if "__" in name:
            _reject(node, f"name {name!r} contains '__', which is reserved")
        if name in RESERVED_NAMES:
            _reject(node, f"name {name!r} is reserved by the engine")

    def _check_function(self, fn: ast.FunctionDef) -> None:
        if fn.decorator_list:
            _reject(fn.decorator_list[0], "decorators are not allowed")
        if fn.returns is not None:
            _reject(fn.returns, "annotations are not allowed")
        a = fn.args
        if a.posonlyargs:
            _reject(fn, "positional-only parameters are not allowed")
        if a.vararg or a.kwarg:
            _reject(fn, "*args and **kwargs parameters are not allowed")
        for arg in a.args + a.kwonlyargs:
            self._check_name(arg, arg.arg)
            if arg.annotation is not None:
                _reject(arg.annotation, "annotations are not allowed")
        for default in a.defaults + [d for d in a.kw_defaults if d is not None]:
            # A mutable default would be shared by every call on this node but fresh on a
            # node that just restarted: a determinism leak.
            if not _is_constant_literal(default):
                _reject(default, "default values must be int/str/bytes/bool/None literals")
        self._block(fn.body)

    def _block(self, body: list[ast.stmt]) -> None:
        for stmt in body:
            self._stmt(stmt)

    def _stmt(self, s: ast.stmt) -> None:
        kind = type(s)
        if kind in _REJECTED:
            _reject(s, _REJECTED[kind])
        if kind is ast.FunctionDef:
            _reject(s, "functions are defined at module level only")
        if kind not in _ALLOWED:
            _reject(s, f"{kind.__name__} statements are not allowed")
        if kind is ast.Assign:
            if len(s.targets) != 1 and not all(_is_name_target(t) for t in s.targets):
                _reject(s, "chained assignment is allowed to plain names only")
            target = s.targets[0]
            if not _is_name_target(target) and not isinstance(target, ast.Subscript):
                _reject(target, "only names, tuples of names and items (x[k]) can be assigned")
            for t in s.targets:
                self._target(t)
            self._visit(s.value)
        elif kind is ast.AugAssign:
            self._op(s, s.op)
            t = s.target
            if isinstance(t, ast.Subscript):
                if not isinstance(t.value, ast.Name) or not isinstance(t.slice, (ast.Name, ast.Constant)):
                    _reject(t, "augmented item assignment needs a plain name and key: d[k] += v")
            elif not isinstance(t, ast.Name):
                _reject(t, "augmented assignment of attributes is not allowed")
            self._target(t)
            self._visit(s.value)
        elif kind is ast.Delete:
            for t in s.targets:
                if not isinstance(t, (ast.Name, ast.Subscript)):
                    _reject(t, "only names and items can be deleted")
                self._target(t)
        elif kind is ast.For:
            if not _is_name_target(s.target):
                _reject(s.target, "loop targets must be names or tuples of names")
            self._target(s.target)
            self._visit(s.iter)
            self._loop(s)
        elif kind is ast.While:
            self._visit(s.test)
            self._loop(s)
        elif kind is ast.If:
            self._visit(s.test)
            self._block(s.body)
            self._block(s.orelse)
        elif kind is ast.Try:
            self._block(s.body)
            for h in s.handlers:
                if h.type is None:
                    _reject(h, "bare except is not allowed; name the exception types")
                self._visit(h.type)
                if h.name is not None:
                    self._check_name(h, h.name)
                self._block(h.body)
            self._block(s.orelse)
            # return/break/continue in finally would swallow an out-of-gas abort.
            self._in_finally += 1
            saved, self._loops_in_finally = self._loops_in_finally, 0
            self._block(s.finalbody)
            self._loops_in_finally = saved
            self._in_finally -= 1
        elif kind is ast.Raise:
            if s.cause is not None:
                _reject(s, "raise ... from ... is not allowed")
            if s.exc is not None:
                self._visit(s.exc)
        elif kind in (ast.Return, ast.Break, ast.Continue):
            # Leaving a finally block this way would swallow the exception in flight,
            # including an out-of-gas or limit abort. A loop inside the finally may still
            # break or continue itself.
            if self._in_finally and (kind is ast.Return or self._loops_in_finally == 0):
                _reject(s, f"{kind.__name__.lower()} inside finally is not allowed")
            if kind is ast.Return and s.value is not None:
                self._visit(s.value)
        elif kind is ast.Expr:
            self._visit(s.value)
        elif kind is ast.Pass:
            pass
        else:  # pragma: no cover - every allowed statement kind is handled above
            _reject(s, f"{kind.__name__} statements are not allowed")

    def _loop(self, s: ast.For | ast.While) -> None:
        self._loops_in_finally += 1
        self._block(s.body)
        self._loops_in_finally -= 1
        self._block(s.orelse)

    def _target(self, t: ast.AST) -> None:
        if isinstance(t, ast.Name):
            self._check_name(t, t.id)
        elif isinstance(t, (ast.Tuple, ast.List)):
            for e in t.elts:
                self._target(e)
        elif isinstance(t, ast.Subscript):
            self._visit(t.value)
            self._visit(t.slice)
        elif isinstance(t, ast.Attribute):
            _reject(t, "attribute assignment is not allowed")
        else:
            _reject(t, f"cannot assign to {type(t).__name__}")

    def _op(self, node: ast.AST, op: ast.AST) -> None:
        if type(op) in _REJECTED:
            _reject(node, _REJECTED[type(op)])

    def _visit(self, node: ast.AST) -> None:
        """Check an expression subtree (iteratively bounded by _check_depth)."""
        kind = type(node)
        if kind in _REJECTED:
            _reject(node, _REJECTED[kind])
        if kind not in _ALLOWED:
            _reject(node, f"{kind.__name__} is not allowed")
        if kind is ast.Constant:
            v = node.value
            if type(v) not in _CONST_TYPES:
                _reject(node, f"{type(v).__name__} literals are not allowed (no floats, complex or ...)")
            if type(v) is int and v.bit_length() > INT_BITS_MAX:
                _reject(node, f"integer literal exceeds {INT_BITS_MAX} bits")
            return
        if kind is ast.Name:
            if isinstance(node.ctx, ast.Load):
                if not node.id.isascii() or "__" in node.id:
                    _reject(node, f"name {node.id!r} is not allowed")
                if node.id in _FORBIDDEN_LOADS:
                    _reject(node, f"{node.id!r} is not available to contracts")
            else:
                self._check_name(node, node.id)
            return
        if kind is ast.Attribute:
            if node.attr.startswith("_"):
                _reject(node, f"attribute {node.attr!r} starts with '_'")
            if not isinstance(node.ctx, ast.Load):
                _reject(node, "attribute assignment is not allowed")
        elif kind is ast.BinOp:
            self._op(node, node.op)
        elif kind is ast.Compare:
            # a < f() < c evaluates f() once; our guards would need a temporary, so only
            # plain names and constants may sit in the middle of a chain.
            for middle in node.comparators[:-1]:
                if not isinstance(middle, (ast.Name, ast.Constant)):
                    _reject(middle, "chained comparisons need a name or constant in the middle; use 'and'")
        elif kind is ast.Call:
            for kw in node.keywords:
                if kw.arg is None:
                    _reject(kw, "**kwargs in calls is not allowed")
                elif "__" in kw.arg or kw.arg.startswith("_"):
                    _reject(kw, f"keyword {kw.arg!r} is not allowed")
        elif kind is ast.Dict:
            if any(k is None for k in node.keys):
                _reject(node, "**mapping in dict literals is not allowed")
        elif kind is ast.FormattedValue:
            if node.conversion in (ord("r"), ord("a")):
                _reject(node, "!r and !a conversions are not allowed: repr can expose memory addresses")
            spec = node.format_spec
            if spec is not None:
                if not (isinstance(spec, ast.JoinedStr) and all(isinstance(v, ast.Constant) for v in spec.values)):
                    _reject(node, "format specs must be constant (no nested {fields})")
            self._visit(node.value)
            return
        elif kind in (ast.ListComp, ast.DictComp):
            for gen in node.generators:
                if gen.is_async:
                    _reject(node, "async comprehensions are not allowed")
                if not _is_name_target(gen.target):
                    _reject(gen.target, "comprehension targets must be names or tuples of names")
                self._target(gen.target)
                self._visit(gen.iter)
                for cond in gen.ifs:
                    self._visit(cond)
            if kind is ast.ListComp:
                self._visit(node.elt)
            else:
                self._visit(node.key)
                self._visit(node.value)
            return
        elif kind in (ast.Subscript, ast.List, ast.Tuple) and not isinstance(node.ctx, ast.Load):
            self._target(node)
            return
        for child in ast.iter_child_nodes(node):
            self._visit(child)


# ---- desugaring and gas markers (still on the user's AST) ----------------------------------


def _private(name: str) -> str:
    if name.startswith("_") and name != "_":
        return PRIVATE_PREFIX + name[1:]
    return name


class _Desugar(ast.NodeTransformer):
    """Rename private names; turn augmented assignment into plain assignment."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        node.id = _private(node.id)
        return node

    def visit_arg(self, node: ast.arg) -> ast.AST:
        node.arg = _private(node.arg)
        return node

    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        node.name = _private(node.name)
        self.generic_visit(node)
        return node

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> ast.AST:
        if node.name is not None:
            node.name = _private(node.name)
        self.generic_visit(node)
        return node

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        # x += y  ->  x = x + y ; d[k] += y -> d[k] = d[k] + y (d and k are plain names or
        # constants, checked above, so evaluating them twice has no side effect).
        # Lists are rebound rather than extended in place: documented.
        self.generic_visit(node)
        t = node.target
        if isinstance(t, ast.Name):
            load = ast.Name(t.id, ast.Load())
        else:
            load = ast.Subscript(ast.Name(t.value.id, ast.Load()), _copy_expr(t.slice), ast.Load())
        new = ast.Assign(targets=[t], value=ast.BinOp(load, node.op, node.value))
        return ast.copy_location(new, node)


def _copy_expr(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Name):
        return ast.Name(node.id, ast.Load())
    assert isinstance(node, ast.Constant)
    return ast.Constant(node.value)


def _nodes(node: ast.AST | None) -> int:
    """Gas units of an expression or statement: one per node, plus the extra of the node
    kinds whose guards cost more (gas.py, measured by tests/bench/gas.py)."""
    if node is None:
        return 0
    total = 0
    for n in ast.walk(node):
        if isinstance(n, _UNCOUNTED):
            continue
        total += 1
        extra = _NODE_EXTRA.get(type(n))
        if extra is not None:
            total += extra
        elif isinstance(n, (ast.Tuple, ast.List)) and isinstance(n.ctx, ast.Store):
            total += UNPACK_NODE_GAS
        elif isinstance(n, ast.Compare):
            total += OPERATOR_NODE_GAS * len(n.ops)
    return total


_NODE_EXTRA = {
    ast.Call: CALL_NODE_GAS,
    ast.Attribute: ATTRIBUTE_NODE_GAS,
    ast.FormattedValue: FORMAT_NODE_GAS,
    ast.Raise: RAISE_NODE_GAS,
    ast.Subscript: SUBSCRIPT_NODE_GAS,
    ast.BinOp: OPERATOR_NODE_GAS,
}


def _header_cost(s: ast.stmt) -> int:
    """Nodes a statement runs itself, excluding the blocks it contains."""
    if isinstance(s, ast.If):
        return 1 + _nodes(s.test)
    if isinstance(s, ast.For):
        return 1 + _nodes(s.iter) + _nodes(s.target)
    if isinstance(s, ast.While):
        return 1 + _nodes(s.test)
    if isinstance(s, ast.Try):
        return 1 + sum(_nodes(h.type) for h in s.handlers)
    return _nodes(s)


def _marker(kind: str, cost: int, like: ast.AST) -> ast.stmt:
    call = ast.Call(ast.Name(kind, ast.Load()), [ast.Constant(cost)], [])
    return ast.copy_location(ast.Expr(call), like)


def _charge_block(body: list[ast.stmt], extra: int, kind: str = "gas__block") -> list[ast.stmt]:
    """Prefix a block with one charge for all its straight-line statements."""
    # Cost first, on the user's nodes only, then instrument the nested blocks.
    cost = NODE_GAS * sum(_header_cost(s) for s in body) + extra
    for s in body:
        _instrument_stmt(s)
    like = body[0] if body else None
    if like is None:
        return body
    return [_marker(kind, cost, like)] + body


def _instrument_stmt(s: ast.stmt) -> None:
    if isinstance(s, ast.If):
        s.body = _charge_block(s.body, 0)
        if s.orelse:
            s.orelse = _charge_block(s.orelse, 0)
    elif isinstance(s, ast.For):
        s.body = _charge_block(s.body, ITERATION_GAS + NODE_GAS * _nodes(s.target))
        if s.orelse:
            s.orelse = _charge_block(s.orelse, 0)
    elif isinstance(s, ast.While):
        # The test runs before every iteration: charged with the body.
        s.body = _charge_block(s.body, ITERATION_GAS + NODE_GAS * _nodes(s.test))
        if s.orelse:
            s.orelse = _charge_block(s.orelse, 0)
    elif isinstance(s, ast.Try):
        s.body = _charge_block(s.body, 0)
        for h in s.handlers:
            h.body = _charge_block(h.body, EXCEPT_HANDLER_GAS)
        if s.orelse:
            s.orelse = _charge_block(s.orelse, 0)
        if s.finalbody:
            s.finalbody = _charge_block(s.finalbody, 0)
    _instrument_comprehensions(s)


def _instrument_comprehensions(s: ast.stmt) -> None:
    """Charge every element of every comprehension generator, filtered or not."""
    roots: list[ast.AST]
    if isinstance(s, (ast.If, ast.While)):
        roots = [s.test]
    elif isinstance(s, ast.For):
        roots = [s.iter]
    elif isinstance(s, ast.Try):
        roots = [h.type for h in s.handlers if h.type is not None]
    else:
        roots = [s]
    for root in roots:
        for node in ast.walk(root):
            if isinstance(node, (ast.ListComp, ast.DictComp)):
                if isinstance(node, ast.ListComp):
                    elt_cost = _nodes(node.elt)
                    per = ITERATION_GAS + COMPREHENSION_ELEMENT_GAS
                else:
                    elt_cost = _nodes(node.key) + _nodes(node.value)
                    per = ITERATION_GAS + COMPREHENSION_ELEMENT_GAS + DICT_COMPREHENSION_ELEMENT_GAS
                for gen in node.generators:
                    cost = per + NODE_GAS * (elt_cost + _nodes(gen.target) + sum(_nodes(c) for c in gen.ifs))
                    tick = ast.Call(ast.Name("gas__item", ast.Load()), [ast.Constant(cost)], [])
                    gen.ifs.insert(0, tick)


def _insert_gas_markers(tree: ast.Module) -> None:
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            fn.body = _charge_block(fn.body, FUNCTION_ENTRY_GAS, kind="gas__enter")


# ---- pass 3: guards (after RestrictedPython) ----------------------------------------------

_BINOP_GUARDS = {
    ast.Add: "_add_",
    ast.Sub: "_sub_",
    ast.Mult: "_mul_",
    ast.Pow: "_pow_",
    ast.LShift: "_lshift_",
    ast.Mod: "_mod_",
    ast.FloorDiv: "_floordiv_",
    ast.BitOr: "_or_",
}
_CMP_GUARDS = {
    ast.Eq: "_eq_",
    ast.NotEq: "_ne_",
    ast.Lt: "_lt_",
    ast.LtE: "_le_",
    ast.Gt: "_gt_",
    ast.GtE: "_ge_",
}


def _name(id_: str) -> ast.Name:
    return ast.Name(id_, ast.Load())


def _call(func: str, *args: ast.expr) -> ast.Call:
    return ast.Call(_name(func), list(args), [])


def _gas_sub(cost: int) -> ast.stmt:
    # _g_[0] -= cost   (_g_ is the transaction's [gas_left, function_depth] list)
    return ast.AugAssign(ast.Subscript(_name("_g_"), ast.Constant(0), ast.Store()), ast.Sub(), ast.Constant(cost))


def _gas_check() -> ast.stmt:
    test = ast.Compare(ast.Subscript(_name("_g_"), ast.Constant(0), ast.Load()), [ast.Lt()], [ast.Constant(0)])
    return ast.If(test, [ast.Expr(_call("_abort_"))], [])


def _is_marker(s: ast.stmt, kind: str) -> int | None:
    if (
        isinstance(s, ast.Expr)
        and isinstance(s.value, ast.Call)
        and isinstance(s.value.func, ast.Name)
        and s.value.func.id == kind
    ):
        return s.value.args[0].value
    return None


_SERVICE_ATTRS = {
    "ctx": frozenset({"sender", "contract", "block_height", "block_timestamp_ms", "tx_hash"}),
    "storage": frozenset({"get"}),
}


def _is_service(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in _SERVICE_ATTRS


def _is_storage(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id == "storage"


def _method_call(obj: str, method: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Attribute(_name(obj), method, ast.Load()), list(args), [])


def _scalar_constant(node: ast.AST) -> bool:
    # Comparing anything with a small constant is O(1) or O(len(constant)) in C: no guard.
    return isinstance(node, ast.Constant) and type(node.value) in _CONST_TYPES


def _plain_emit(node: ast.Call) -> bool:
    """`emit` with one constant, valid event name and explicit, valid field names."""
    if len(node.args) != 1 or not isinstance(node.args[0], ast.Constant):
        return False
    name = node.args[0].value
    if type(name) is not str or not 0 < len(name) <= EVENT_NAME_CHARS_MAX or not text_ok(name):
        return False  # the runtime `emit` refuses it, with the reason
    if len(node.keywords) >= VALUE_ITEMS_MAX:
        return False
    seen = set()
    for k in node.keywords:
        if k.arg is None or len(k.arg) > EVENT_NAME_CHARS_MAX or k.arg in seen:
            return False
        seen.add(k.arg)
    return True


def _entry_variant(fn: ast.FunctionDef) -> ast.FunctionDef:
    """The same function for the engine to call at the top of a transaction, where the
    function depth is known to go from 0 to 1: the engine sets `_g_[1] = 1` itself, so the
    variant only charges its entry gas. Identical gas, errors and depth for everything it
    calls (which calls the ordinary functions); calls from contract code, recursion and
    cross-contract calls never reach a variant. The name cannot be spelt by a contract."""
    gas_sub, depth_up, check, body = fn.body
    assert isinstance(depth_up, ast.AugAssign) and isinstance(body, ast.Try) and not body.handlers
    entry_check = ast.If(
        ast.Compare(ast.Subscript(_name("_g_"), ast.Constant(0), ast.Load()), [ast.Lt()], [ast.Constant(0)]),
        [ast.Expr(_call("_abort_"))],
        [],
    )
    return ast.FunctionDef(
        name=f"_entry_{fn.name}",
        args=copy.deepcopy(fn.args),
        body=[copy.deepcopy(gas_sub), entry_check] + copy.deepcopy(body.body),
        decorator_list=[],
        returns=None,
        type_comment=None,
    )


def _int_operand(node: ast.AST) -> bool:
    """A name, or an int constant: evaluating it twice is the same as once."""
    return isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and type(node.value) is int)


def _copy_operand(node: ast.expr) -> ast.expr:
    if isinstance(node, ast.Name):
        return _name(node.id)
    assert isinstance(node, ast.Constant)
    return ast.Constant(node.value)


def _is_int(node: ast.expr) -> ast.expr:
    # `_type_` and `_int_` are the builtins type and int under names contract code cannot
    # spell (RestrictedPython refuses names that start with "_").
    return ast.Compare(ast.Call(_name("_type_"), [node], []), [ast.Is()], [_name("_int_")])


class _Guards(ast.NodeTransformer):
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        cost = _is_marker(node.body[0], "gas__enter")
        assert cost is not None, "every function starts with its entry charge"
        # _g_[0] -= cost; _g_[1] += 1; if _g_[0] < 0 or _g_[1] > MAX: _abort_()
        # try: body  finally: _g_[1] -= 1
        depth_up = ast.AugAssign(ast.Subscript(_name("_g_"), ast.Constant(1), ast.Store()), ast.Add(), ast.Constant(1))
        test = ast.BoolOp(
            ast.Or(),
            [
                ast.Compare(ast.Subscript(_name("_g_"), ast.Constant(0), ast.Load()), [ast.Lt()], [ast.Constant(0)]),
                ast.Compare(ast.Subscript(_name("_g_"), ast.Constant(1), ast.Load()), [ast.Gt()], [ast.Constant(FUNCTION_DEPTH_MAX)]),
            ],
        )
        depth_down = ast.AugAssign(ast.Subscript(_name("_g_"), ast.Constant(1), ast.Store()), ast.Sub(), ast.Constant(1))
        body = node.body[1:] or [ast.Pass()]
        node.body = [
            _gas_sub(cost),
            depth_up,
            ast.If(test, [ast.Expr(_call("_abort_"))], []),
            ast.Try(body=body, handlers=[], orelse=[], finalbody=[depth_down]),
        ]
        return node

    def _expand_markers(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for s in body:
            cost = _is_marker(s, "gas__block")
            if cost is not None:
                out.append(_gas_sub(cost))
                out.append(_gas_check())
            else:
                out.append(s)
        return out

    def generic_visit(self, node: ast.AST) -> ast.AST:
        super().generic_visit(node)
        for attr in ("body", "orelse", "finalbody"):
            body = getattr(node, attr, None)
            if isinstance(body, list) and body and isinstance(body[0], ast.stmt):
                setattr(node, attr, self._expand_markers(body))
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        self.generic_visit(node)
        if not isinstance(node.func, ast.Name):
            return node
        func = node.func.id
        if func == "emit" and self._fast and _plain_emit(node):
            # emit("Name", k=v, ...) -> _emit_("Name", {"k": v, ...}): the name and the field
            # names are checked here, once; the values are evaluated in the same order.
            fields = ast.Dict([ast.Constant(k.arg) for k in node.keywords], [k.value for k in node.keywords])
            return ast.copy_location(_call("_emit_", node.args[0], fields), node)
        if func == "gas__item":
            node.func = _name("_tick_")
        elif func == "_getattr_" and _is_service(node.args[0]):
            # `ctx` and `storage` cannot be rebound (reserved names), so their known fields
            # can be read natively: the allow-list check is done here, once, at compile time.
            obj, attr = node.args
            if isinstance(attr, ast.Constant) and attr.value in _SERVICE_ATTRS[obj.id]:
                return ast.copy_location(ast.Attribute(_name(obj.id), attr.value, ast.Load()), node)
        elif func == "_getitem_" and _is_storage(node.args[0]):
            return ast.copy_location(_method_call("storage", "read", node.args[1]), node)
        elif func == "_in_" and _is_storage(node.args[1]):
            return ast.copy_location(_method_call("storage", "contains", node.args[0]), node)
        elif func == "_setitem_" and _is_storage(node.args[1]):
            value, _, key = node.args
            return ast.copy_location(_method_call("storage", "_assign", value, key), node)
        elif func == "_delitem_" and _is_storage(node.args[0]):
            return ast.copy_location(_method_call("storage", "remove", node.args[1]), node)
        return node

    def __init__(self, fast_paths: bool = True) -> None:
        super().__init__()
        self._fast = fast_paths
        self._comprehensions = 0  # comprehensions being visited: no inlined guards inside
        self._temps = 0

    def visit_ListComp(self, node: ast.ListComp) -> ast.AST:
        self._comprehensions += 1
        try:
            self.generic_visit(node)
        finally:
            self._comprehensions -= 1
        return node

    def visit_BinOp(self, node: ast.BinOp) -> ast.AST:
        self.generic_visit(node)
        guard = _BINOP_GUARDS.get(type(node.op))
        if guard is None:
            return node
        if isinstance(node.left, ast.Constant) and isinstance(node.right, ast.Constant):
            if type(node.op) in (ast.Add, ast.Sub, ast.BitOr):
                return node  # constant-sized result, no growth possible
        if self._fast and type(node.op) in (ast.Add, ast.Sub) and not self._comprehensions and _int_operand(node.right):
            return ast.copy_location(self._inline_int_op(node, guard), node)
        return ast.copy_location(_call(guard, node.left, node.right), node)

    def _inline_int_op(self, node: ast.BinOp, guard: str) -> ast.expr:
        """`a + b` / `a - b` of two ints whose result is within INT_BITS_MAX, without the
        guard call; anything else (other types, a result too large) calls the guard, which
        gives exactly the result or the error it always gives:

            _rN_ if _type_(a) is _int_ and _type_(b) is _int_ and -2**1024 < (_rN_ := a + b) < 2**1024
            else _add_(a, b)

        `b` is a name or an int constant (evaluating it again has no effect); a left operand
        that is any other expression is evaluated once, first, into `_aN_`."""
        self._temps += 1
        result = f"_r{self._temps}_"
        left, right = node.left, node.right
        tests: list[ast.expr] = []
        if _int_operand(left):
            def left_load() -> ast.expr:
                return _copy_operand(left)
            if isinstance(left, ast.Name):
                tests.append(_is_int(_copy_operand(left)))
        else:
            held = f"_a{self._temps}_"
            tests.append(_is_int(ast.NamedExpr(ast.Name(held, ast.Store()), left)))

            def left_load() -> ast.expr:
                return _name(held)
        if isinstance(right, ast.Name):
            tests.append(_is_int(_copy_operand(right)))
        limit = 1 << INT_BITS_MAX
        computed = ast.NamedExpr(ast.Name(result, ast.Store()), ast.BinOp(left_load(), node.op, _copy_operand(right)))
        tests.append(ast.Compare(ast.Constant(-limit), [ast.Lt(), ast.Lt()], [computed, ast.Constant(limit)]))
        return ast.IfExp(ast.BoolOp(ast.And(), tests), _name(result), _call(guard, left_load(), _copy_operand(right)))

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        pairs = []
        left = node.left
        for op, right in zip(node.ops, node.comparators):
            pairs.append(self._compare(left, op, right))
            left = right
        if len(pairs) == 1:
            return ast.copy_location(pairs[0], node)
        return ast.copy_location(ast.BoolOp(ast.And(), pairs), node)

    def _compare(self, left: ast.expr, op: ast.cmpop, right: ast.expr) -> ast.expr:
        kind = type(op)
        if kind in (ast.Is, ast.IsNot):
            return ast.Compare(left, [op], [right])
        if kind in (ast.In, ast.NotIn):
            if _scalar_constant(right):
                return ast.Compare(left, [op], [right])
            if _is_storage(right):
                call = _method_call("storage", "contains", left)
            else:
                call = _call("_in_", left, right)
            return call if kind is ast.In else ast.UnaryOp(ast.Not(), call)
        if _scalar_constant(left) or _scalar_constant(right):
            return ast.Compare(left, [op], [right])
        if self._fast and isinstance(left, ast.Name) and isinstance(right, ast.Name) and not self._comprehensions:
            # An int on the left compares in O(1) whatever the right is (the guard checks
            # nothing then): `a OP b if _type_(a) is _int_ else _guard_(a, b)`.
            return ast.IfExp(
                _is_int(_copy_operand(left)),
                ast.Compare(_copy_operand(left), [op], [_copy_operand(right)]),
                _call(_CMP_GUARDS[kind], _copy_operand(left), _copy_operand(right)),
            )
        return _call(_CMP_GUARDS[kind], left, right)

    def visit_Expr(self, node: ast.Expr) -> ast.AST:
        self.generic_visit(node)
        call = node.value
        if (
            self._fast
            and isinstance(call, ast.Call)
            and isinstance(call.func, ast.Name)
            and call.func.id == "require"
            and not call.keywords
            and (len(call.args) == 1 or (len(call.args) == 2 and isinstance(call.args[1], ast.Constant)))
        ):
            # require(cond[, "constant message"]) as a statement -> if not cond: raise
            # ContractError(message): what `require` does, without the call. Only with a
            # constant message: a computed one is evaluated before the test, by the call.
            message = call.args[1] if len(call.args) == 2 else ast.Constant("requirement failed")
            raise_ = ast.Raise(_call("ContractError", message), None)
            charge = ast.Expr(_call("_tick_", ast.Constant(RAISE_NODE_GAS)))  # as the builtin charges
            return ast.copy_location(ast.If(ast.UnaryOp(ast.Not(), call.args[0]), [charge, raise_], []), node)
        return node

    def visit_Assign(self, node: ast.Assign) -> ast.AST:
        self.generic_visit(node)
        target = node.targets[0]
        if isinstance(target, ast.Subscript):
            # RestrictedPython made this `_write_(obj)[key] = value`; we need the key too, so
            # the write becomes `_setitem_(value, obj, key)` (Python's evaluation order).
            obj = target.value
            if isinstance(obj, ast.Call) and isinstance(obj.func, ast.Name) and obj.func.id == "_write_":
                obj = obj.args[0]
            if _is_storage(obj):
                call = _method_call("storage", "_assign", node.value, target.slice)
            else:
                call = _call("_setitem_", node.value, obj, target.slice)
            return ast.copy_location(ast.Expr(call), node)
        return node

    def visit_Delete(self, node: ast.Delete) -> ast.AST | list[ast.AST]:
        self.generic_visit(node)
        out: list[ast.AST] = []
        names = [t for t in node.targets if isinstance(t, ast.Name)]
        for t in node.targets:
            if isinstance(t, ast.Subscript):
                obj = t.value
                if isinstance(obj, ast.Call) and isinstance(obj.func, ast.Name) and obj.func.id == "_write_":
                    obj = obj.args[0]
                if _is_storage(obj):
                    call = _method_call("storage", "remove", t.slice)
                else:
                    call = _call("_delitem_", obj, t.slice)
                out.append(ast.copy_location(ast.Expr(call), node))
        if names:
            out.append(ast.copy_location(ast.Delete(targets=names), node))
        return out

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.keys = [k if _scalar_constant(k) else _call("_key_", k) for k in node.keys]
        return node

    def visit_DictComp(self, node: ast.DictComp) -> ast.AST:
        self._comprehensions += 1
        try:
            self.generic_visit(node)
        finally:
            self._comprehensions -= 1
        node.key = _call("_key_", node.key)
        return node

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.AST:
        self.generic_visit(node)
        spec = ""
        if node.format_spec is not None:
            spec = "".join(v.value for v in node.format_spec.values)  # constants, checked
        node.value = _call("_fmt_", node.value, ast.Constant(spec))
        node.conversion = -1
        node.format_spec = None
        return node

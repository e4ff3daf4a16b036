"""Pass 1 of the compiler: the whitelist on the parsed AST, then desugaring and gas markers,
still on the user's AST.

`check` rejects anything not listed, with its line, column and a reason: imports,
classes, lambdas, decorators, generators, async, `with`, `match`, `except*`, walrus,
`global`/`nonlocal`, `assert`, sets, `/`, floats, star-args, nested functions, names
containing `__`, attribute writes... `desugar` then renames private names (`_x` ->
`private__x`, which user code cannot spell because `__` is rejected), turns `x += y` into
`x = x + y`, and drops gas *markers* at the start of every block: the cost of each block
is counted here, on the user's AST as desugared by this module, so gas never depends on
what RestrictedPython or CPython generate. The guard pass (compile_guards.py) turns the
markers into gas arithmetic.
"""

from __future__ import annotations

import ast

from contracts.engine.errors import ContractRejected
from contracts.engine.gas import (
    ATTRIBUTE_NODE_GAS,
    CALL_NODE_GAS,
    COMPREHENSION_ELEMENT_GAS,
    DICT_COMPREHENSION_ELEMENT_GAS,
    EXCEPT_HANDLER_GAS,
    FORMAT_NODE_GAS,
    FUNCTION_ENTRY_GAS,
    INT_BITS_MAX,
    ITERATION_GAS,
    NODE_GAS,
    OPERATOR_NODE_GAS,
    RAISE_NODE_GAS,
    SUBSCRIPT_NODE_GAS,
    UNPACK_NODE_GAS,
)

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

CONST_TYPES = (int, str, bytes, bool, type(None))
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
_UNCOUNTED = (ast.expr_context, ast.operator, ast.boolop, ast.cmpop, ast.unaryop)

# The markers desugar() puts at the start of blocks, function bodies and comprehension
# generators, for the guard pass to expand: calls to names contract code cannot spell.
BLOCK_MARKER = "gas__block"
ENTRY_MARKER = "gas__enter"
ITEM_MARKER = "gas__item"


def check(tree: ast.Module) -> Checker:
    """The whitelist; raises ContractRejected. The checker says what the module defines."""
    _check_depth(tree)
    checker = Checker()
    checker.check_module(tree)
    return checker


def desugar(tree: ast.Module) -> None:
    """Private names renamed, augmented assignments made plain, gas markers dropped in."""
    _Desugar().visit(tree)
    _insert_gas_markers(tree)
    ast.fix_missing_locations(tree)


# ---- the whitelist -------------------------------------------------------------------------


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
        return type(node.value) in CONST_TYPES
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


class Checker:
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
            if type(v) not in CONST_TYPES:
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
            load = ast.Subscript(ast.Name(t.value.id, ast.Load()), copy_operand(t.slice), ast.Load())
        new = ast.Assign(targets=[t], value=ast.BinOp(load, node.op, node.value))
        return ast.copy_location(new, node)


def copy_operand(node: ast.expr) -> ast.expr:
    """A fresh load of a name or a constant, to evaluate an operand a second time (which
    has no effect); the guard pass does the same for its inlined fast paths."""
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


def _charge_block(body: list[ast.stmt], extra: int, kind: str = BLOCK_MARKER) -> list[ast.stmt]:
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
                    tick = ast.Call(ast.Name(ITEM_MARKER, ast.Load()), [ast.Constant(cost)], [])
                    gen.ifs.insert(0, tick)


def _insert_gas_markers(tree: ast.Module) -> None:
    for fn in tree.body:
        if isinstance(fn, ast.FunctionDef):
            fn.body = _charge_block(fn.body, FUNCTION_ENTRY_GAS, kind=ENTRY_MARKER)


"""Pass 3 of the compiler: guards. It runs after RestrictedPython, so that RestrictedPython
does not refuse the names this pass inserts (`_g_`, `_add_`...).

Gas markers (compile_check.py) become inline gas arithmetic; `+ - * ** % << |` and
comparisons of possibly large values become calls to size-checking guards (runtime.py and
the builtins_* modules), item writes and deletes become guard calls, and f-string fields
go through a width-checking formatter. With `fast_paths`, the shortcuts the engine always
compiles with: int arithmetic and comparisons inlined, `require` as an `if`, `emit` with a
prebuilt dict. Also here: the entry variant of a method, the form the engine calls at the
top of a transaction.
"""

from __future__ import annotations

import ast
import copy

from chainnode.protocol.codec import VALUE_ITEMS_MAX
from contracts.engine.compile_check import BLOCK_MARKER, CONST_TYPES, ENTRY_MARKER, ITEM_MARKER, copy_operand
from contracts.engine.errors import text_ok
from contracts.engine.gas import EVENT_NAME_CHARS_MAX, FUNCTION_DEPTH_MAX, INT_BITS_MAX, RAISE_NODE_GAS


def add_guards(tree: ast.Module, fast_paths: bool) -> None:
    """The guard pass, in place."""
    _Guards(fast_paths).visit(tree)


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
    return isinstance(node, ast.Constant) and type(node.value) in CONST_TYPES


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


def entry_variant(fn: ast.FunctionDef) -> ast.FunctionDef:
    """The same function for the engine to call at the top of a transaction, where the
    function depth is known to go from 0 to 1: the engine sets `_g_[1] = 1` itself, so the
    variant only charges its entry gas. Identical gas, errors and depth for everything it
    calls (which calls the ordinary functions); calls from contract code, recursion and
    cross-contract calls never reach a variant. The name cannot be spelt by a contract."""
    gas_sub, depth_up, check, body = fn.body
    assert isinstance(depth_up, ast.AugAssign) and isinstance(body, ast.Try) and not body.handlers
    return ast.FunctionDef(
        name=f"_entry_{fn.name}",
        args=copy.deepcopy(fn.args),
        body=[copy.deepcopy(gas_sub), _gas_check()] + copy.deepcopy(body.body),
        decorator_list=[],
        returns=None,
        type_comment=None,
    )


def _int_operand(node: ast.AST) -> bool:
    """A name, or an int constant: evaluating it twice is the same as once."""
    return isinstance(node, ast.Name) or (isinstance(node, ast.Constant) and type(node.value) is int)


def _is_int(node: ast.expr) -> ast.expr:
    # `_type_` and `_int_` are the builtins type and int under names contract code cannot
    # spell (RestrictedPython refuses names that start with "_").
    return ast.Compare(ast.Call(_name("_type_"), [node], []), [ast.Is()], [_name("_int_")])


class _Guards(ast.NodeTransformer):
    def visit_FunctionDef(self, node: ast.FunctionDef) -> ast.AST:
        self.generic_visit(node)
        cost = _is_marker(node.body[0], ENTRY_MARKER)
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
            cost = _is_marker(s, BLOCK_MARKER)
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
        if func == ITEM_MARKER:
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

    def _visit_comprehension(self, node: ast.ListComp | ast.DictComp) -> ast.AST:
        self._comprehensions += 1
        try:
            self.generic_visit(node)
        finally:
            self._comprehensions -= 1
        return node

    def visit_ListComp(self, node: ast.ListComp) -> ast.AST:
        return self._visit_comprehension(node)

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
                return copy_operand(left)
            if isinstance(left, ast.Name):
                tests.append(_is_int(copy_operand(left)))
        else:
            held = f"_a{self._temps}_"
            tests.append(_is_int(ast.NamedExpr(ast.Name(held, ast.Store()), left)))

            def left_load() -> ast.expr:
                return _name(held)
        if isinstance(right, ast.Name):
            tests.append(_is_int(copy_operand(right)))
        limit = 1 << INT_BITS_MAX
        computed = ast.NamedExpr(ast.Name(result, ast.Store()), ast.BinOp(left_load(), node.op, copy_operand(right)))
        tests.append(ast.Compare(ast.Constant(-limit), [ast.Lt(), ast.Lt()], [computed, ast.Constant(limit)]))
        return ast.IfExp(ast.BoolOp(ast.And(), tests), _name(result), _call(guard, left_load(), copy_operand(right)))

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
                _is_int(copy_operand(left)),
                ast.Compare(copy_operand(left), [op], [copy_operand(right)]),
                _call(_CMP_GUARDS[kind], copy_operand(left), copy_operand(right)),
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
        self._visit_comprehension(node)
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


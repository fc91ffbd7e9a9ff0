"""A tiny, safe expression language for computed fields.

Mapping authors write things like ``concat(ckbm, "-", coalesce(pc, "0"))`` or
``sl * 1000`` or ``"1" if lb == "实物" else "2"``. The text is parsed with
Python's own parser (``ast.parse(mode="eval")``) and then *compiled here into
closures* from a small whitelist of node types; it is never handed to eval().
Bare names are source columns; ``col("名 称")`` reads a column whose name is not
an identifier (XML paths, spaces). Templates ``"{wzbm}-{pc}"`` are also supported.
"""

from __future__ import annotations

import ast
import operator
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

Expr = Callable[[Mapping[str, Any]], Any]
MAX_LENGTH = 500
MAX_DEPTH = 30


class ExprError(ValueError):
    pass


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _num(v: Any) -> Any:
    if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
        return v
    try:
        return Decimal(str(v).strip())
    except InvalidOperation:
        raise ExprError(f"{v!r} is not a number") from None


def _substr(s: Any, start: Any, length: Any = None) -> str:
    t = _s(s)
    b = int(start)
    return t[b:] if length is None else t[b : b + int(length)]


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "concat": lambda *a: "".join(_s(x) for x in a),
    "coalesce": lambda *a: next((x for x in a if x is not None and x != ""), None),
    "upper": lambda s: None if s is None else _s(s).upper(),
    "lower": lambda s: None if s is None else _s(s).lower(),
    "trim": lambda s: None if s is None else _s(s).strip(),
    "substr": _substr,
    "replace": lambda s, a, b: None if s is None else _s(s).replace(_s(a), _s(b)),
    "len": lambda s: len(_s(s)),
    "str": lambda v: None if v is None else _s(v),
    "int": lambda v: None if v is None or v == "" else int(_num(v)),
    "num": lambda v: None if v is None or v == "" else _num(v),
    "round": lambda v, n=0: None if v is None else round(Decimal(str(_num(v))), int(n)),
}

_BINOPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
}
_CMPOPS: dict[type, Callable[[Any, Any], bool]] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
}


def _add(a: Any, b: Any) -> Any:
    # '+' joins text when either side is text, so "CK-" + code works without casts.
    if isinstance(a, str) or isinstance(b, str) or a is None or b is None:
        return _s(a) + _s(b)
    return a + b


def _arith(op: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def run(a: Any, b: Any) -> Any:
        if a is None or b is None:
            return None
        a, b = _num(a), _num(b)
        if isinstance(a, float) or isinstance(b, float):
            a, b = Decimal(str(a)), Decimal(str(b))
        if isinstance(a, Decimal) != isinstance(b, Decimal):
            a, b = Decimal(a), Decimal(b)
        return op(a, b)

    return run


def compile_expr(text: str, columns: set[str]) -> Expr:
    """Compile `text`; the column names it reads are added to `columns`."""
    if len(text) > MAX_LENGTH:
        raise ExprError(f"expression longer than {MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise ExprError(f"syntax error in expression {text!r}: {e.msg}") from None
    return _node(tree.body, columns, 0)


def _node(n: ast.AST, cols: set[str], depth: int) -> Expr:
    if depth > MAX_DEPTH:
        raise ExprError("expression nested too deeply")
    d = depth + 1
    if isinstance(n, ast.Constant):
        if not isinstance(n.value, str | int | float | bool | type(None)):
            raise ExprError(f"constant {n.value!r} is not allowed")
        value = n.value
        return lambda row: value
    if isinstance(n, ast.Name):
        name = n.id
        if name in ("None", "True", "False"):
            value = {"None": None, "True": True, "False": False}[name]
            return lambda row: value
        cols.add(name)
        return lambda row: row.get(name)
    if isinstance(n, ast.BinOp):
        left, right = _node(n.left, cols, d), _node(n.right, cols, d)
        if isinstance(n.op, ast.Add):
            return lambda row: _add(left(row), right(row))
        op = _BINOPS.get(type(n.op))
        if op is None:
            raise ExprError(f"operator {type(n.op).__name__} is not allowed")
        run = _arith(op)
        return lambda row: run(left(row), right(row))
    if isinstance(n, ast.UnaryOp):
        inner = _node(n.operand, cols, d)
        if isinstance(n.op, ast.USub):
            return lambda row: None if (v := inner(row)) is None else -_num(v)
        if isinstance(n.op, ast.Not):
            return lambda row: not inner(row)
        raise ExprError(f"operator {type(n.op).__name__} is not allowed")
    if isinstance(n, ast.BoolOp):
        parts = [_node(v, cols, d) for v in n.values]
        if isinstance(n.op, ast.And):
            return lambda row: all(p(row) for p in parts)
        return lambda row: next((v for p in parts if (v := p(row))), None)
    if isinstance(n, ast.Compare):
        if len(n.ops) != 1:
            raise ExprError("chained comparisons are not allowed")
        cmp = _CMPOPS.get(type(n.ops[0]))
        if cmp is None:
            raise ExprError(f"comparison {type(n.ops[0]).__name__} is not allowed")
        left, right = _node(n.left, cols, d), _node(n.comparators[0], cols, d)
        return lambda row: cmp(left(row), right(row))
    if isinstance(n, ast.IfExp):
        test, body, orelse = _node(n.test, cols, d), _node(n.body, cols, d), _node(n.orelse, cols, d)
        return lambda row: body(row) if test(row) else orelse(row)
    if isinstance(n, ast.Call):
        if not isinstance(n.func, ast.Name) or n.keywords:
            raise ExprError("only calls like name(arg, ...) of the built-in functions are allowed")
        fname = n.func.id
        if fname == "col":
            if len(n.args) != 1 or not isinstance(n.args[0], ast.Constant) or not isinstance(n.args[0].value, str):
                raise ExprError('col() takes one column name in quotes, e.g. col("物资 名称")')
            cname = n.args[0].value
            cols.add(cname)
            return lambda row: row.get(cname)
        fn = FUNCTIONS.get(fname)
        if fn is None:
            raise ExprError(f"unknown function {fname}(); known: col, {', '.join(sorted(FUNCTIONS))}")
        args = [_node(a, cols, d) for a in n.args]
        return lambda row: fn(*(a(row) for a in args))
    raise ExprError(f"{type(n).__name__} is not allowed in expressions")


_FIELD_RE = re.compile(r"\{([^{}]+)\}")


def compile_template(text: str, columns: set[str]) -> Expr:
    """'{wzbm}-{pc}' -> the columns' text joined; an empty column gives ''."""
    parts: list[str | tuple[str]] = []
    pos = 0
    for m in _FIELD_RE.finditer(text):
        parts.append(text[pos : m.start()])
        parts.append((m.group(1).strip(),))
        columns.add(m.group(1).strip())
        pos = m.end()
    parts.append(text[pos:])
    if not any(isinstance(p, tuple) for p in parts):
        raise ExprError(f"template {text!r} names no column; write columns as {{column}}")

    def run(row: Mapping[str, Any]) -> Any:
        out = "".join(p if isinstance(p, str) else _s(row.get(p[0])).strip() for p in parts)
        return out or None

    return run

"""Built-in field transforms.

A transform is registered in the ``gateway.transforms`` entry-point group
(setup.cfg) as a *factory*: ``factory(arg, ctx) -> fn`` where ``arg`` is what the
mapping file gives (None for the bare-name form) and ``fn(value, row) -> value``
runs per row. The factory checks its argument once at load (raising ValueError
with a readable reason); ``fn`` raises TransformFailure for a value it cannot
convert, which becomes a per-field RowProblem. Most transforms pass None through
unchanged, so an empty cell stays empty until ``default`` fills it.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from gateway.errors import SkippableError

Fn = Callable[[Any, Mapping[str, Any]], Any]


class TransformFailure(SkippableError):
    """A value this transform cannot convert; `message` is Chinese for users."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message


@dataclass
class TransformContext:
    """What a factory may need beyond its argument."""

    record_type: str
    field: str  # the target field being mapped
    base_dir: Path = field(default_factory=Path.cwd)  # for relative CSV paths
    # name -> rows of another configured source, for `lookup = {source = ...}`
    source_rows: Callable[[str], Any] | None = None
    columns_used: set[str] = field(default_factory=set)  # extra source columns a transform reads


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


# ---- text ---------------------------------------------------------------------------


def trim(arg: Any, ctx: TransformContext) -> Fn:
    _no_arg("trim", arg)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if isinstance(v, str):
            v = v.strip().replace("\u3000", " ").strip()
            return v or None
        return v

    return fn


def upper(arg: Any, ctx: TransformContext) -> Fn:
    _no_arg("upper", arg)
    return lambda v, row: v.upper() if isinstance(v, str) else v


def lower(arg: Any, ctx: TransformContext) -> Fn:
    _no_arg("lower", arg)
    return lambda v, row: v.lower() if isinstance(v, str) else v


def to_str(arg: Any, ctx: TransformContext) -> Fn:
    _no_arg("str", arg)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v is None or isinstance(v, str):
            return v
        if isinstance(v, float) and v.is_integer():
            return str(int(v))  # 1001.0 from a spreadsheet is the code "1001"
        if isinstance(v, Decimal):
            return format(v.normalize(), "f") if v == v.to_integral_value() else format(v, "f")
        return str(v)

    return fn


def null_if(arg: Any, ctx: TransformContext) -> Fn:
    values = arg if isinstance(arg, list) else [arg]
    if arg is None:
        raise ValueError('null_if needs the values that mean "empty", e.g. null_if = ["", "-", "无"]')
    blank = {str(x).strip() for x in values}
    return lambda v, row: None if v is not None and str(v).strip() in blank else v


def regex(arg: Any, ctx: TransformContext) -> Fn:
    if isinstance(arg, str):
        pattern, group = arg, None
    elif isinstance(arg, dict) and isinstance(arg.get("pattern"), str):
        pattern, group = arg["pattern"], arg.get("group")
        _only_keys("regex", arg, {"pattern", "group"})
    else:
        raise ValueError('regex needs a pattern: regex = "(\\d+)" or regex = {pattern = "...", group = 1}')
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise ValueError(f"regex pattern {pattern!r} is invalid: {e}") from None
    if group is None:
        group = 1 if rx.groups else 0
    if not isinstance(group, int | str) or (isinstance(group, int) and group > rx.groups):
        raise ValueError(f"regex group {group!r} does not exist in {pattern!r}")

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v is None:
            return None
        m = rx.search(str(v))
        if not m:
            raise TransformFailure("regex", f"不符合格式 {pattern}")
        return m.group(group)

    return fn


def concat(arg: Any, ctx: TransformContext) -> Fn:
    """Append other columns: concat = {with = ["pc"], sep = "-"}."""
    if not isinstance(arg, dict) or not isinstance(arg.get("with"), list) or not arg["with"]:
        raise ValueError('concat needs the columns to append: concat = {with = ["col"], sep = "-"}')
    _only_keys("concat", arg, {"with", "sep"})
    cols = [str(c) for c in arg["with"]]
    sep = str(arg.get("sep", ""))
    ctx.columns_used.update(cols)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        parts = [v, *(row.get(c) for c in cols)]
        parts = [str(p).strip() for p in parts if not _blank(p)]
        return sep.join(parts) if parts else None

    return fn


# ---- numbers ------------------------------------------------------------------------

_NUM_RE = re.compile(r"^\s*([-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|[-+]?\.\d+)\s*(.*?)\s*$")


def _number(v: Any, rule: str) -> int | Decimal:
    if isinstance(v, bool):
        raise TransformFailure(rule, "不是数字")
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return Decimal(repr(v))
    if isinstance(v, Decimal):
        return v
    s = str(v).strip().replace(",", "").replace("，", "")
    try:
        d = Decimal(s)
    except InvalidOperation:
        raise TransformFailure(rule, "不是数字") from None
    if not d.is_finite():
        raise TransformFailure(rule, "不是数字")
    return d


def _plain(d: int | Decimal) -> int | str:
    """Numbers leave the mapping as int or as a plain decimal string (JSON-safe, exact)."""
    if isinstance(d, int):
        return d
    if d == d.to_integral_value():
        return int(d)
    return format(d.normalize(), "f")


def to_int(arg: Any, ctx: TransformContext) -> Fn:
    _no_arg("int", arg)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if _blank(v):
            return None
        d = _number(v, "int")
        if isinstance(d, Decimal):
            if d != d.to_integral_value():
                raise TransformFailure("int", "应为整数")
            return int(d)
        return d

    return fn


def to_decimal(arg: Any, ctx: TransformContext) -> Fn:
    """decimal or decimal = 2 (round half up to that many places)."""
    places = arg
    if places is not None and (not isinstance(places, int) or isinstance(places, bool) or not 0 <= places <= 12):
        raise ValueError("decimal takes the number of decimal places, 0-12")
    q = Decimal(1).scaleb(-places) if places is not None else None

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if _blank(v):
            return None
        d = _number(v, "decimal")
        if q is not None:
            d = Decimal(d).quantize(q, rounding="ROUND_HALF_UP")
        return _plain(d)

    return fn


def number(arg: Any, ctx: TransformContext) -> Fn:
    """'200箱' -> 200, '1,250.5 公斤' -> '1250.5': the number before any unit text."""
    _no_arg("number", arg)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v.__class__ is str and len(v) < 19 and v.isdigit() and v.isascii():
            return int(v)  # plain digits, the common case: what the Decimal route gives
        if _blank(v):
            return None
        if isinstance(v, int | float | Decimal) and not isinstance(v, bool):
            return _plain(_number(v, "number"))
        m = _NUM_RE.match(str(v))
        if not m:
            raise TransformFailure("number", "找不到数量")
        return _plain(_number(m.group(1), "number"))

    return fn


def unit_of(arg: Any, ctx: TransformContext) -> Fn:
    """'200箱' -> '箱': the unit text after the number (None when there is none)."""
    _no_arg("unit_of", arg)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if _blank(v) or not isinstance(v, str):
            return None
        m = _NUM_RE.match(v)
        if not m:
            raise TransformFailure("unit_of", "找不到数量和单位")
        return m.group(2) or None

    return fn


def convert_unit(arg: Any, ctx: TransformContext) -> Fn:
    """convert_unit = {factors = {公斤 = 0.001, 吨 = 1}, unit_column = "dw"}.

    Multiplies the number by the factor of its unit, taken from `unit_column`
    or from unit text in the value itself ("500公斤"). An unknown unit fails.
    """
    if not isinstance(arg, dict) or not isinstance(arg.get("factors"), dict) or not arg["factors"]:
        raise ValueError("convert_unit needs factors = {unit = factor, ...}")
    _only_keys("convert_unit", arg, {"factors", "unit_column", "places"})
    factors: dict[str, Decimal] = {}
    for u, f in arg["factors"].items():
        if isinstance(f, bool) or not isinstance(f, int | float | str):
            raise ValueError(f"convert_unit factor for {u!r} must be a number")
        try:
            factors[str(u)] = Decimal(str(f))
        except InvalidOperation:
            raise ValueError(f"convert_unit factor for {u!r} must be a number") from None
    unit_col = arg.get("unit_column")
    if unit_col is not None:
        ctx.columns_used.add(str(unit_col))
    places = arg.get("places", 3)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if _blank(v):
            return None
        if unit_col is not None:
            qty, unit = _number(v, "convert_unit"), row.get(unit_col)
        else:
            m = _NUM_RE.match(str(v))
            if not m:
                raise TransformFailure("convert_unit", "找不到数量")
            qty, unit = _number(m.group(1), "convert_unit"), m.group(2)
        unit = "" if unit is None else str(unit).strip()
        if unit not in factors:
            raise TransformFailure("convert_unit", f"无法换算的计量单位 {unit!r}（可换算：{'、'.join(factors)}）")
        d = (Decimal(qty) * factors[unit]).quantize(Decimal(1).scaleb(-places), rounding="ROUND_HALF_UP")
        return _plain(d)

    return fn


# ---- dates --------------------------------------------------------------------------

_DATE_RES = (
    re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T].*)?$"),
    re.compile(r"^(\d{4})年(\d{1,2})月(\d{1,2})日?$"),
    re.compile(r"^(\d{4})\.(\d{1,2})\.(\d{1,2})$"),
    re.compile(r"^(\d{4})/(\d{1,2})/(\d{1,2})(?: .*)?$"),
    re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
)


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_CACHE = 4096  # canonical date texts remembered per field; rows share few distinct dates


def parse_date(v: Any) -> str:
    """A date in any of the forms departments use, as ISO 'YYYY-MM-DD'."""
    if v.__class__ is str and len(v) == 10 and _ISO_DATE.fullmatch(v):
        # Already canonical (most rows): the C parser only has to check the day exists.
        try:
            dt.date.fromisoformat(v)
        except ValueError:
            raise TransformFailure("date", f"日期不存在：{v}") from None
        return v
    if isinstance(v, dt.datetime):
        return v.date().isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, int) and not isinstance(v, bool):
        v = str(v)
    s = str(v).strip()
    for rx in _DATE_RES:
        m = rx.match(s)
        if m:
            y, mo, d = (int(x) for x in m.groups())
            try:
                return dt.date(y, mo, d).isoformat()
            except ValueError:
                raise TransformFailure("date", f"日期不存在：{s}") from None
    raise TransformFailure("date", f"无法识别的日期格式：{s}（可用 2023-05-01、2023年5月1日、2023.5.1、2023/5/1、20230501）")


def date(arg: Any, ctx: TransformContext) -> Fn:
    """date, or date = "%d/%m/%Y" / ["%d/%m/%Y", ...] for other layouts (tried first)."""
    fmts = [arg] if isinstance(arg, str) else arg
    if fmts is not None and (not isinstance(fmts, list) or not all(isinstance(f, str) for f in fmts)):
        raise ValueError('date takes a strptime format or a list of them, e.g. date = "%d/%m/%Y"')
    for f in fmts or ():
        if "%" not in f:
            raise ValueError(f"date format {f!r} has no % directive")

    seen: set[str] = set()  # canonical texts already checked (no formats: they pass unchanged)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v.__class__ is str and v in seen:
            return v
        if v.__class__ is dt.date:  # a DATE column: what parse_date gives
            return v.isoformat()
        if _blank(v):
            return None
        if not fmts and v.__class__ is str:
            out = parse_date(v)
            if out == v:
                if len(seen) >= DATE_CACHE:
                    seen.clear()
                seen.add(v)
            return out
        if fmts and isinstance(v, str):
            for f in fmts:
                try:
                    return dt.datetime.strptime(v.strip(), f).date().isoformat()
                except ValueError:
                    continue
        return parse_date(v)

    return fn


# ---- code tables --------------------------------------------------------------------


def value_map(arg: Any, ctx: TransformContext) -> Fn:
    """map = {"省级" = "2", ...} or map = {values = {...}, other = "keep" | "error" | "null" | <value>}."""
    if not isinstance(arg, dict) or not arg:
        raise ValueError('map needs a table of source value = target value, e.g. map = {"省级" = "2"}')
    if isinstance(arg.get("values"), dict):
        _only_keys("map", arg, {"values", "other"})
        table, other = arg["values"], arg.get("other", "error")
    else:
        table, other = arg, "error"
    table = {str(k).strip(): v for k, v in table.items()}

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v is None:
            return None
        k = str(v).strip()
        if k in table:
            return table[k]
        if other == "keep":
            return v
        if other == "null":
            return None
        if other == "error":
            raise TransformFailure("map", f"值不在对照表中（可用：{'、'.join(table)}）")
        return other

    return fn


def code(arg: Any, ctx: TransformContext) -> Fn:
    """Standard code list: '实物储备' -> '1' using the target field's (or the named field's) codes."""
    from gateway.standard.schema import RECORD_TYPES

    rt = RECORD_TYPES[ctx.record_type]
    fname = arg if isinstance(arg, str) else ctx.field
    if arg is not None and not isinstance(arg, str):
        raise ValueError("code takes the name of a standard field whose code list to use")
    f = rt.field_map.get(fname)
    if f is None or not f.codes:
        raise ValueError(f"field {fname!r} of {ctx.record_type} has no code list")
    by_label = {label: c for c, label in f.codes.items()}
    # Labels without their parenthesised part also match: 协议储备 -> 协议(商业)储备.
    for label, c in list(by_label.items()):
        by_label.setdefault(re.sub(r"[(（].*?[)）]", "", label), c)
    codes = set(f.codes)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v is None:
            return None
        s = str(v).strip()
        if isinstance(v, float) and v.is_integer():
            s = str(int(v))
        if s in codes:
            return s
        if s in by_label:
            return by_label[s]
        allowed = "、".join(f"{c} {label}" for c, label in f.codes.items())
        raise TransformFailure("code", f"不是{f.label}的代码或名称（可用：{allowed}）")

    return fn


def lookup(arg: Any, ctx: TransformContext) -> Fn:
    """lookup = {csv = "depots.csv", key = "old_code", value = "depot_id", missing = "error"}
    or lookup = {source = "other_source", key = ..., value = ...}: a keyed table loaded once."""
    if not isinstance(arg, dict) or not (("csv" in arg) ^ ("source" in arg)):
        raise ValueError("lookup needs either csv = \"file.csv\" or source = \"name\", plus key and value columns")
    _only_keys("lookup", arg, {"csv", "source", "key", "value", "missing", "encoding"})
    key, val = arg.get("key"), arg.get("value")
    if not isinstance(key, str) or not isinstance(val, str):
        raise ValueError("lookup needs key = \"column\" and value = \"column\"")
    missing = arg.get("missing", "error")
    if "csv" in arg:
        path = Path(str(arg["csv"]))
        if not path.is_absolute():
            path = ctx.base_dir / path
        if not path.is_file():
            raise ValueError(f"lookup csv file not found: {path}")
        enc = arg.get("encoding", "utf-8-sig")
        with path.open(encoding=enc, newline="") as fh:
            reader = csv.DictReader(fh)
            if not reader.fieldnames or key not in reader.fieldnames or val not in reader.fieldnames:
                raise ValueError(f"lookup csv {path.name} needs columns {key!r} and {val!r} (has {reader.fieldnames})")
            table = {str(r[key]).strip(): r[val] for r in reader}
    else:
        if ctx.source_rows is None:
            raise ValueError("lookup from another source needs the gateway config (not available here)")
        table = {}
        for r in ctx.source_rows(str(arg["source"])):
            if key not in r or val not in r:
                raise ValueError(f"lookup source {arg['source']!r} has no column {key!r} or {val!r}")
            table[str(r[key]).strip()] = r[val]

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if v is None:
            return None
        k = str(v).strip()
        if k in table:
            return table[k]
        if missing == "keep":
            return v
        if missing == "null":
            return None
        raise TransformFailure("lookup", f"在对照表中找不到 {k}")

    return fn


# ---- constants and defaults ---------------------------------------------------------


def constant(arg: Any, ctx: TransformContext) -> Fn:
    if arg is None:
        raise ValueError("constant needs a value")
    return lambda v, row: arg


def default(arg: Any, ctx: TransformContext) -> Fn:
    if arg is None:
        raise ValueError("default needs a value")
    return lambda v, row: arg if _blank(v) else v


def from_json(arg: Any, ctx: TransformContext) -> Fn:
    """Parse JSON text (e.g. agreement items kept as JSON in one column)."""
    _no_arg("json", arg)

    def fn(v: Any, row: Mapping[str, Any]) -> Any:
        if not isinstance(v, str | bytes):
            return v
        try:
            return json.loads(v)
        except ValueError as e:
            raise TransformFailure("json", f"不是有效的 JSON：{e}") from None

    return fn


def _no_arg(name: str, arg: Any) -> None:
    if arg is not None:
        raise ValueError(f"{name} takes no argument (got {arg!r})")


def _only_keys(name: str, arg: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(arg) - allowed)
    if extra:
        raise ValueError(f"{name} does not know {', '.join(extra)} (knows {', '.join(sorted(allowed))})")

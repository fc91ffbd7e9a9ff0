"""One converter per field, built once from the schema.

A converter takes a non-empty input value (strings already stripped), the
reference date and the ValidationContext, and returns the canonical JSON value
or raises Invalid. Converters are plain closures so the hot path does no
lookups by field kind per record.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import date
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from gateway.standard import category, dates, division, phone, uscc
from gateway.standard.schema import (
    ATTACHMENT_TYPES,
    CATEGORY_CODE,
    DATE,
    DECIMAL,
    DIVISION_CODE,
    ENUM,
    FILE_REF,
    INT,
    ITEMS,
    PHONE,
    STRING,
    USCC,
    Field,
)

if TYPE_CHECKING:
    from gateway.standard.validate import ValidationContext

Converter = Callable[[Any, date, "ValidationContext"], Any]


class Invalid(Exception):
    """A value that breaks a rule. `more` carries further (rule, message) pairs of the same field."""

    __slots__ = ("rule", "message", "more")

    def __init__(self, rule: str, message: str, more: tuple[tuple[str, str], ...] = ()) -> None:
        self.rule = rule
        self.message = message
        self.more = more


def _num_text(x: float | int) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _as_text(v: Any, label: str) -> str:
    """Text of a code-like value; spreadsheets hand over 13800138000 or 1001.0 as numbers."""
    t = v.__class__
    if t is str:
        return v
    if t is int:
        return str(v)
    if t is float and v.is_integer():  # False for nan and inf
        return str(int(v))
    raise Invalid("type.string", f"{label}应为文本")


def string(f: Field) -> Converter:
    label, max_len, units = f.label, f.max_len, f.units

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        if v.__class__ is not str:
            if v.__class__ is float and math.isfinite(v) and not v.is_integer():
                v = str(v)
            else:
                v = _as_text(v, label)
        if max_len is not None and len(v) > max_len:
            raise Invalid("max_len", f"{label}长度为 {len(v)} 个字符，超过上限 {max_len}")
        if units and v not in ctx.units:
            raise Invalid("unit", f"{label}“{v}”不在计量单位列表中")
        return v

    return conv


def _bounds(f: Field) -> Callable[[float | int], None]:
    label, lo, excl, hi = f.label, f.minimum, f.exclusive_minimum, f.maximum

    def check(n: float | int) -> None:
        if lo is not None and (n <= lo if excl else n < lo):
            raise Invalid("min", f"{label}{'必须大于' if excl else '不能小于'} {_num_text(lo)}，实际为 {_num_text(n)}")
        if hi is not None and n > hi:
            raise Invalid("max", f"{label}不能大于 {_num_text(hi)}，实际为 {_num_text(n)}")

    return check


MAX_DIGITS = 15  # integer digits; beyond this a value is a typo, not a quantity (and floats lose precision)
BIG = 10**MAX_DIGITS


def _parse_decimal(v: str | Decimal, label: str, rule: str) -> Decimal | None:
    """A finite Decimal from text or a Decimal; None if it is not a number; Invalid if absurdly large."""
    try:
        d = Decimal(v.replace(",", "")) if isinstance(v, str) else v
    except InvalidOperation:
        return None
    if not d.is_finite():
        return None
    if d.adjusted() >= MAX_DIGITS:
        raise Invalid(rule, f"{label}数值过大（整数部分最多 {MAX_DIGITS} 位），实际为“{v}”")
    return d


def integer(f: Field) -> Converter:
    label, bounds = f.label, _bounds(f)

    def conv(v: Any, today: date, ctx: ValidationContext) -> int:
        t = v.__class__
        if t is int:
            n = v
        elif t is float and v.is_integer():
            n = int(v)
        else:
            d = _parse_decimal(v, label, "type.int") if t is str or isinstance(v, Decimal) else None
            if d is None or d != d.to_integral_value():
                raise Invalid("type.int", f"{label}应为整数，实际为“{v}”")
            n = int(d)
        if not -BIG < n < BIG:  # a typo, not a count; beyond 64 bits it could not even be sent (canonical JSON)
            raise Invalid("type.int", f"{label}数值过大（整数部分最多 {MAX_DIGITS} 位），实际为“{v}”")
        bounds(n)
        return n

    return conv


def decimal(f: Field) -> Converter:
    label, bounds, scale = f.label, _bounds(f), f.scale
    quantum = Decimal(1).scaleb(-scale) if scale is not None else None
    max_places = scale if scale is not None else MAX_DIGITS

    def conv(v: Any, today: date, ctx: ValidationContext) -> int | float:
        t = v.__class__
        if t is int:
            if not -BIG < v < BIG:
                raise Invalid("type.decimal", f"{label}数值过大（整数部分最多 {MAX_DIGITS} 位），实际为“{v}”")
            bounds(v)
            return v
        if t is float:
            if not math.isfinite(v):
                raise Invalid("type.decimal", f"{label}应为数字，实际为“{v}”")
            if abs(v) >= 10.0**MAX_DIGITS:
                raise Invalid("type.decimal", f"{label}数值过大（整数部分最多 {MAX_DIGITS} 位），实际为“{v}”")
            n: int | float = round(v, scale) if scale is not None else v
        elif t is Decimal and v.is_finite() and v.adjusted() < MAX_DIGITS:
            # A NUMERIC column: the steps of the general route below, without its checks by type.
            n = float(v.quantize(quantum, ROUND_HALF_UP) if quantum is not None else v)
        elif t is str and 0 < len(v) <= MAX_DIGITS and v.isascii() and (dot := v.find(".")) != 0 and (
            v.isdigit() if dot < 0 else (v[:dot].isdigit() and v[dot + 1 :].isdigit() and len(v) - dot - 1 <= max_places)
        ):
            # Fast path for plain text like "120" or "35.5" (no sign, no more places than the
            # scale): float() gives exactly what the Decimal route would.
            if dot < 0:
                n = int(v)
                bounds(n)
                return n
            n = float(v)
        else:
            d = _parse_decimal(v, label, "type.decimal") if t is str or isinstance(v, Decimal) else None
            if d is None:
                raise Invalid("type.decimal", f"{label}应为数字，实际为“{v}”")
            if quantum is not None:
                d = d.quantize(quantum, ROUND_HALF_UP)
            n = float(d)
        if n.is_integer():
            n = int(n)
        bounds(n)
        return n

    return conv


_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE_CACHE = 4096  # canonical date texts remembered per field; rows share few distinct dates


def date_field(f: Field) -> Converter:
    label, not_future = f.label, f.not_future
    seen: dict[str, date] = {}  # canonical text -> the existing date it names

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        if v.__class__ is str and (d := seen.get(v)) is not None:
            pass  # checked before: canonical and a real day
        elif v.__class__ is str and len(v) == 10 and _ISO_DATE.fullmatch(v):
            # Fast path for canonical text (most rows): fromisoformat is C code.
            try:
                d = date.fromisoformat(v)
            except ValueError:
                raise Invalid("date.invalid", f"{label}“{v}”不是存在的日期") from None
            if len(seen) >= DATE_CACHE:
                seen.clear()
            seen[v] = d
        else:
            try:
                d = dates.parse_date(v)
            except dates.DateProblem as e:
                raise Invalid(e.rule, f"{label}{'“' + v + '”' if isinstance(v, str) else ''}{e.reason}") from None
            v = d.isoformat()
        if not_future and d > today:
            raise Invalid("not_future", f"{label} {v} 晚于今天（{today.isoformat()}），不能是将来的日期")
        return v

    return conv


_FULLWIDTH = str.maketrans("（）　", "() ")


def enum_lookup(codes: Mapping[str, str]) -> dict[object, str]:
    """Every accepted spelling of a code: the code, its label, 'code label', an int code."""
    lookup: dict[object, str] = {}
    for code, text in codes.items():
        for key in (code, code.upper(), code.lower(), text, f"{code} {text}", f"{code}-{text}", f"{code}{text}"):
            lookup[key] = code
        if code.isdigit():
            lookup[int(code)] = code
    return lookup


def enum(f: Field) -> Converter:
    assert f.codes is not None, f"enum field {f.name} has no codes"
    label, lookup = f.label, enum_lookup(f.codes)
    choices = "、".join(c if c == t else f"{c} {t}" for c, t in f.codes.items())

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        code = lookup.get(v) if v.__class__ in (str, int) else None
        if code is None:
            if v.__class__ is float and v.is_integer():
                code = lookup.get(int(v))
            elif v.__class__ is str:
                code = lookup.get(" ".join(v.translate(_FULLWIDTH).split()))
            if code is None:
                raise Invalid("enum", f"{label}取值“{v}”无效，应为：{choices}")
        return code

    return conv


def category_code(f: Field) -> Converter:
    label = f.label

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        s = _as_text(v, label)
        why = category.structure_problem(s)
        if why:
            raise Invalid("category.structure", f"{label}“{s}”结构错误：{why}")
        table = ctx.category_table
        if table is not None:
            why = table.membership_problem(s)
            if why:
                raise Invalid("category.unknown", f"{label}“{s}”无效：{why}")
        return s

    return conv


def division_code(f: Field) -> Converter:
    label = f.label

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        s = _as_text(v, label)
        bad = division.problem(s)
        if bad:
            raise Invalid(bad[0], f"{label}“{s}”{bad[1]}")
        return s

    return conv


def uscc_code(f: Field) -> Converter:
    label = f.label

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        s = _as_text(v, label).upper()
        bad = uscc.problem(s)
        if bad:
            raise Invalid(bad[0], f"{label}“{s}”{bad[1]}")
        return s

    return conv


def phone_number(f: Field) -> Converter:
    label, max_len = f.label, f.max_len

    def conv(v: Any, today: date, ctx: ValidationContext) -> str:
        if v.__class__ is str and len(v) == 11 and v[0] == "1" and v[1] in "3456789" and v.isascii() and v.isdigit():
            return v  # a plain mobile number, the common case
        s = phone.normalize(_as_text(v, label))
        if not phone.is_valid(s):
            raise Invalid("phone.format", f"{label}“{v}”不是有效的电话号码（手机 11 位；座机 区号-号码，可带分机）")
        if max_len is not None and len(s) > max_len:
            raise Invalid("max_len", f"{label}长度为 {len(s)} 个字符，超过上限 {max_len}")
        return s

    return conv


ITEM_FIELDS = ("material_id", "quantity", "unit")
_ITEM_SPLIT = re.compile(r"[;；\n]+")
_ITEM_PART = re.compile(r"\s*[:：]\s*")
_item_id = string(Field("material_id", "物资编码", max_len=32))
_item_qty = decimal(Field("quantity", "数量", "decimal", minimum=0, exclusive_minimum=True, scale=3))
_item_unit = string(Field("unit", "计量单位", max_len=10, units=True))


def parse_items_text(text: str) -> list[dict[str, str]]:
    """'M001:10:箱; M002:5:个' -> [{material_id, quantity, unit}, ...] (values still text)."""
    items = []
    for entry in _ITEM_SPLIT.split(text):
        if entry.strip():
            parts = _ITEM_PART.split(entry.strip())
            items.append(dict(zip(ITEM_FIELDS, parts + [""] * (3 - len(parts)), strict=False)) if len(parts) <= 3 else {"_bad": entry})
    return items


def normalize_item(item: Mapping[str, Any], today: date, ctx: ValidationContext) -> tuple[dict | None, list[tuple[str, str, str]]]:
    """One agreement item -> (canonical item or None, [(field, rule, message), ...])."""
    out: dict[str, Any] = {}
    problems: list[tuple[str, str, str]] = []
    if "_bad" in item:
        return None, [("", "items.format", f"“{item['_bad']}”格式应为 物资编码:数量:计量单位")]
    extra = set(item) - set(ITEM_FIELDS)
    if extra:
        problems.append(("", "items.unknown_field", f"未知的项目字段 {', '.join(sorted(map(str, extra)))}"))
    for name, conv, label in zip(ITEM_FIELDS, (_item_id, _item_qty, _item_unit), ("物资编码", "数量", "计量单位"), strict=False):
        v = item.get(name)
        if v.__class__ is str:
            v = v.strip()
        if v is None or v == "":
            problems.append((name, "items.required", f"{label}必填"))
            continue
        try:
            out[name] = conv(v, today, ctx)
        except Invalid as e:
            problems.append((name, f"items.{e.rule}", e.message))
    return (None if problems else out), problems


def items(f: Field) -> Converter:
    label = f.label

    def conv(v: Any, today: date, ctx: ValidationContext) -> list[dict]:
        raw = parse_items_text(v) if isinstance(v, str) else v
        if not isinstance(raw, (list, tuple)) or not all(isinstance(i, Mapping) for i in raw):
            raise Invalid("type.items", f"{label}应为物资列表（物资编码、数量、计量单位）")
        if not raw:
            raise Invalid("required", f"{label}至少需要一项")
        result, problems = [], []
        for i, item in enumerate(raw, start=1):
            norm, probs = normalize_item(item, today, ctx)
            result.append(norm)
            problems.extend((rule, f"{label}第 {i} 项：{msg}") for _, rule, msg in probs)
        if problems:
            raise Invalid(problems[0][0], problems[0][1], tuple(problems[1:]))
        return result

    return conv


_SHA256 = re.compile(r"[0-9a-f]{64}", re.ASCII)


def file_ref(f: Field) -> Converter:
    label = f.label
    types = "、".join(ATTACHMENT_TYPES)

    def conv(v: Any, today: date, ctx: ValidationContext) -> dict:
        if not isinstance(v, Mapping):
            raise Invalid("file_ref.format", f"{label}应为已上传文件的引用（sha256、大小、文件名）")
        sha, size, name = str(v.get("sha256") or "").lower(), v.get("size"), v.get("name")
        if not _SHA256.fullmatch(sha) or size.__class__ is not int or size < 0 or not isinstance(name, str) or not name.strip():
            raise Invalid("file_ref.format", f"{label}应包含 64 位十六进制 sha256、非负整数大小和文件名")
        if name.rsplit(".", 1)[-1].lower() not in ATTACHMENT_TYPES or "." not in name:
            raise Invalid("file_ref.type", f"{label}“{name}”文件类型不允许，应为 {types}")
        return {"sha256": sha, "size": size, "name": name.strip()}

    return conv


BUILDERS: dict[str, Callable[[Field], Converter]] = {
    STRING: string,
    INT: integer,
    DECIMAL: decimal,
    DATE: date_field,
    ENUM: enum,
    CATEGORY_CODE: category_code,
    DIVISION_CODE: division_code,
    USCC: uscc_code,
    PHONE: phone_number,
    ITEMS: items,
    FILE_REF: file_ref,
}


def converter(f: Field) -> Converter:
    try:
        return BUILDERS[f.kind](f)
    except KeyError:
        raise ValueError(f"field {f.name}: no converter for kind {f.kind!r}") from None

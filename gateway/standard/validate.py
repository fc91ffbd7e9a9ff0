"""Validate and normalise records of the standard: every error of a record, never just the first.

    normalize("stock", row) -> (canonical dict, [FieldError, ...])

Per record type the field converters and record rules are compiled once;
the per-record loop only looks values up and calls them (hot path: a sync
may push a million rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

from gateway import localtime
from gateway.standard.category import CategoryTable, load_table
from gateway.standard.converters import Converter, Invalid, converter
from gateway.standard.schema import UNITS, Field, record_type


def _jsonable(v: object) -> object:
    if v is None or isinstance(v, (str, int, float, bool)):
        return v
    if isinstance(v, Mapping):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v.isoformat() if isinstance(v, date) else str(v)


@dataclass(frozen=True)
class FieldError:
    field: str  # standard field name; record rules name their first field
    label: str  # Chinese label from the schema
    value: object
    rule: str  # stable rule id, see docs/standard.md
    message: str  # Chinese, for a clerk

    def as_dict(self) -> dict[str, object]:
        """JSON-ready: a value that JSON cannot carry (date, Decimal, ...) becomes its text."""
        return {"field": self.field, "label": self.label, "value": _jsonable(self.value), "rule": self.rule,
                "message": self.message}

    def __str__(self) -> str:
        return f"{self.message} [{self.rule}]"


@dataclass(frozen=True)
class ValidationContext:
    """What validation needs beyond the schema: reference date, extra units, a code table."""

    today: date | None = None
    extra_units: tuple[str, ...] = ()
    category_table: CategoryTable | None = None
    units: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra_units", tuple(self.extra_units))
        object.__setattr__(self, "units", frozenset(UNITS).union(self.extra_units))

    @classmethod
    def from_settings(
        cls, *, category_codes: str | Path | None = None, extra_units: tuple[str, ...] | list[str] = (), today: date | None = None
    ) -> ValidationContext:
        """Context from the config's [standard] settings (category_codes: path to a CSV code table)."""
        table = load_table(category_codes) if category_codes else None
        return cls(today=today, extra_units=tuple(extra_units), category_table=table)

    @classmethod
    def from_config(cls, config: Any) -> ValidationContext:
        """Context from a GatewayConfig (its category_codes path and extra_units)."""
        return cls.from_settings(category_codes=config.category_codes, extra_units=config.extra_units)


DEFAULT_CONTEXT = ValidationContext()

Present = Callable[[str], bool]
Rule = Callable[[dict, list, Present, Mapping[str, Field]], None]


def _order(errors: list, out: dict, fields: Mapping[str, Field], earlier: str, later: str) -> bool:
    a, b = out.get(earlier), out.get(later)
    if a is not None and b is not None and a > b:  # ISO dates compare as text
        fa, fb = fields[earlier], fields[later]
        errors.append(
            FieldError(earlier, fa.label, a, "date.order", f"{fa.label}（{a}）不能晚于{fb.label}（{b}）")
        )
        return False
    return True


def _production_before_expiry(out: dict, errors: list, present: Present, fields: Mapping[str, Field]) -> None:
    _order(errors, out, fields, "production_date", "expiry_date")


def _signed_start_end_order(out: dict, errors: list, present: Present, fields: Mapping[str, Field]) -> None:
    if _order(errors, out, fields, "signed_date", "start_date"):
        _order(errors, out, fields, "start_date", "end_date")


def _coords_need_system(out: dict, errors: list, present: Present, fields: Mapping[str, Field]) -> None:
    lon, lat = present("longitude"), present("latitude")
    if lon != lat:
        missing = "latitude" if lon else "longitude"
        given = "longitude" if lon else "latitude"
        errors.append(
            FieldError(
                missing, fields[missing].label, None, "coords_need_system",
                f"填写了{fields[given].label}时必须同时填写{fields[missing].label}",
            )
        )
    if (lon or lat) and not present("coord_system"):
        errors.append(
            FieldError(
                "coord_system", fields["coord_system"].label, None, "coords_need_system",
                f"填写经纬度时必须填写{fields['coord_system'].label}（CGCS2000、WGS84 或 GCJ02）",
            )
        )


RECORD_RULES: dict[str, Rule] = {
    "coords_need_system": _coords_need_system,
    "production_before_expiry": _production_before_expiry,
    "signed_start_end_order": _signed_start_end_order,
}


@dataclass(frozen=True)
class _Plan:
    steps: tuple[tuple[str, str, bool, Converter], ...]  # (name, label, required, converter)
    fields: Mapping[str, Field]
    rules: tuple[Rule, ...]
    type_label: str


@cache
def _plan(type_name: str) -> _Plan:
    rt = record_type(type_name)
    unknown = [r for r in rt.rules if r not in RECORD_RULES]
    if unknown:
        raise ValueError(f"record type {type_name}: unknown record rule(s) {unknown}")
    steps = tuple((f.name, f.label, f.is_required, converter(f)) for f in rt.fields)
    return _Plan(steps, rt.field_map, tuple(RECORD_RULES[r] for r in rt.rules), rt.label)


def normalize(
    record_type: str,
    data: Mapping[str, object],
    *,
    today: date | None = None,
    context: ValidationContext | None = None,
) -> tuple[dict, list[FieldError]]:
    """Canonical record (absent/empty fields left out) and every error found.

    Fields with errors are left out of the returned dict; callers must not
    push a record whose error list is not empty.
    """
    plan = _plan(record_type)
    ctx = context or DEFAULT_CONTEXT
    ref = today or ctx.today or localtime.today()
    fields = plan.fields
    out: dict[str, Any] = {}
    errors: list[FieldError] = []
    for key in data:
        if key not in fields:
            errors.append(FieldError(str(key), "", data[key], "unknown_field", f"未知字段“{key}”，不属于{plan.type_label}"))
    get = data.get
    for name, label, required, conv in plan.steps:
        v = get(name)
        if v.__class__ is str:
            v = v.strip()
            if not v:
                v = None
        if v is None:
            if required:
                errors.append(FieldError(name, label, None, "required", f"{label}必填"))
            continue
        try:
            out[name] = conv(v, ref, ctx)
        except Invalid as e:
            errors.append(FieldError(name, label, v, e.rule, e.message))
            for rule, message in e.more:
                errors.append(FieldError(name, label, v, rule, message))
    if plan.rules:
        bad = {e.field for e in errors}

        def present(name: str) -> bool:
            return name in out or name in bad

        for rule in plan.rules:
            rule(out, errors, present, fields)
    return out, errors


def fused_normalizer(
    record_type: str, getters: Mapping[str, Callable[[Any], Any] | str], context: ValidationContext | None = None
) -> Callable[..., dict | None]:
    """A fast path for mapping + `normalize` in one pass: fn(row, ref=None) -> the canonical record, or None
    when anything is wrong (a getter raised, a required field is empty, a rule failed). `ref` is the
    reference date (default: the context's, else today).

    `getters` maps standard field names to fn(row) -> raw value, or to a column name
    (the value is row.get(column), without a call per field). The record equals
    ``normalize(record_type, {name: get(row) ...})[0]`` whenever that has no errors; on None
    the caller takes the full path, which reports every problem.
    """
    plan = _plan(record_type)
    ctx = context or DEFAULT_CONTEXT
    fixed_today = ctx.today
    fields, rules = plan.fields, plan.rules
    steps = tuple(
        (name, g, None, required, conv) if isinstance(g := getters[name], str) else (name, None, g, required, conv)
        for name, _, required, conv in plan.steps
        if name in getters
    )
    today = localtime.today
    if any(name not in fields for name in getters):
        return lambda row: None  # unknown fields: only the full path reports them

    def run(row: Any, ref: date | None = None) -> dict | None:
        ref = ref or fixed_today or today()
        out: dict[str, Any] = {}
        try:
            row_get = row.get
            for name, column, get, required, conv in steps:
                v = row_get(column) if get is None else get(row)
                if v is None:
                    if required:
                        return None
                    continue
                if v.__class__ is str:
                    v = v.strip()
                    if not v:
                        if required:
                            return None
                        continue
                out[name] = conv(v, ref, ctx)
            if rules:
                errors: list[FieldError] = []
                present = out.__contains__  # no field had an error, so "present" is "in out", as in normalize
                for rule in rules:
                    rule(out, errors, present, fields)
                if errors:
                    return None
        except Exception:  # noqa: BLE001 - the full path re-runs this row and reports (or raises) properly
            return None
        return out

    return run


def validate(record_type: str, data: Mapping[str, object], **kw: Any) -> list[FieldError]:
    """Every error of the record (empty list: valid)."""
    return normalize(record_type, data, **kw)[1]

"""The mapping editor's form <-> mapping TOML text, and Chinese wording of mapping problems.

Each standard field is one form row: where the value comes from (column,
path, expr, template or constant), its transforms (a TOML inline array, as
in the file) and an optional default. Writing the file from the form keeps
the documented format (docs/mappings.md); comments in a hand-written file are
not kept, the version history keeps the old text. Constants and defaults are written
as text; the standard's validators convert them to the field's kind.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.standard.schema import RECORD_TYPES, RecordType

SOURCE_KINDS = ("column", "path", "expr", "template", "constant")
KIND_LABELS = {"": "不映射", "column": "列", "path": "路径(XML)", "expr": "表达式", "template": "模板", "constant": "常量"}
_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


class FormProblem(ValueError):
    """A form entry that cannot be written as TOML; message in Chinese."""


@dataclass
class FieldRow:
    name: str
    kind: str = ""
    value: str = ""
    transforms: str = ""
    default: str = ""


def toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise FormProblem(f"无法写入的值：{v!r}")


def toml_key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k, ensure_ascii=False)


def rows_from_text(text: str, rt: RecordType) -> tuple[list[FieldRow], str]:
    """Form rows for every field of the record type, filled from mapping text; plus the description."""
    try:
        doc = tomllib.loads(text) if text.strip() else {}
    except tomllib.TOMLDecodeError:
        doc = {}
    fields = doc.get("fields") if isinstance(doc.get("fields"), dict) else {}
    rows = []
    for f in rt.fields:
        spec = fields.get(f.name)
        row = FieldRow(f.name)
        if isinstance(spec, str):
            row.kind, row.value = "column", spec
        elif isinstance(spec, dict):
            kind = next((k for k in SOURCE_KINDS if k in spec), "")
            row.kind = kind
            if kind:
                v = spec[kind]
                row.value = v if isinstance(v, str) else toml_value(v)
            if spec.get("transforms"):
                row.transforms = toml_value(spec["transforms"])
            if "default" in spec:
                d = spec["default"]
                row.default = d if isinstance(d, str) else toml_value(d)
        rows.append(row)
    return rows, str(doc.get("description", ""))


def rows_from_form(form: Mapping[str, str], rt: RecordType) -> list[FieldRow]:
    return [
        FieldRow(
            f.name,
            (form.get(f"f.{f.name}.kind") or "").strip(),
            (form.get(f"f.{f.name}.value") or "").strip(),
            (form.get(f"f.{f.name}.transforms") or "").strip(),
            (form.get(f"f.{f.name}.default") or ""),
        )
        for f in rt.fields
    ]


_ENTRY = re.compile(r"^\s*([A-Za-z0-9_]+)\s*=")


def _kept_entries(original: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """The original file cut where the form can keep it as written: the lines before [fields], each
    field's own entry (with the comment lines just above it), in the file's order, and the lines
    after the last entry. An entry spanning several lines is not kept (it is written anew)."""
    lines = original.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() == "[fields]")
    except StopIteration:
        return [], {}, []
    head, entries, pending = lines[:start], {}, []
    for line in lines[start + 1:]:
        m = _ENTRY.match(line)
        if m:
            try:
                tomllib.loads(line)
            except tomllib.TOMLDecodeError:
                pending = []
                continue
            entries[m.group(1)] = [*pending, line]
            pending = []
        elif line.strip().startswith("#") or not line.strip():
            pending.append(line)
        else:  # a continuation line or another table: nothing after it is kept as written
            break
    return head, entries, [x for x in pending if x.strip()]


def text_from_rows(record_type: str, rows: list[FieldRow], description: str = "", original: str | None = None) -> str:
    """Mapping TOML text; raises FormProblem naming the field (Chinese) when a transforms entry is not TOML.

    With `original` (the file as it is), what the form leaves unchanged is written as the file had it
    — short forms, order, comments — so a save changes only the lines of the fields that changed."""
    rt = RECORD_TYPES[record_type]
    old_rows, old_description = rows_from_text(original, rt) if original else ([], None)
    before = {r.name: r for r in old_rows}
    head, kept, tail = _kept_entries(original) if original else ([], {}, [])
    if head and old_description == description.strip():
        lines = [*head, "[fields]"]
    else:
        lines = [f"record_type = {toml_value(record_type)}"]
        if description.strip():
            lines.append(f"description = {toml_value(description.strip())}")
        lines += ["", "[fields]"]
    order = {name: i for i, name in enumerate(kept)}
    rows = sorted(rows, key=lambda r: order.get(r.name, len(order)))  # the file's order, new fields after
    problems = []
    for row in rows:
        if not row.kind:
            continue
        if row.name in kept and before.get(row.name) == row:
            lines += kept[row.name]
            continue
        if row.kind == "column" and not row.transforms and row.default == "":
            lines.append(f"{row.name} = {toml_value(row.value)}")  # the short form the docs use
            continue
        label = rt[row.name].label
        if row.kind not in SOURCE_KINDS:
            problems.append(f"{label}：未知的取值方式 {row.kind}")
            continue
        spec: dict[str, Any] = {row.kind: row.value}
        if row.transforms:
            try:
                steps = tomllib.loads("x = " + row.transforms)["x"]
            except tomllib.TOMLDecodeError as e:
                problems.append(f"{label}：转换设置不是有效的 TOML 数组（{e}），示例：[\"trim\", {{date = \"%Y%m%d\"}}]")
                continue
            if not isinstance(steps, list):
                steps = [steps]
            spec["transforms"] = steps
        if row.default != "":
            spec["default"] = row.default
        lines.append(f"{row.name} = {toml_value(spec)}")
    if problems:
        raise FormProblem("\n".join(problems))
    return "\n".join([*lines, *tail]) + "\n"


_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^fields\.(\w+): source has no column '([^']*)'(?:; did you mean '([^']*)'\?)?$"), "nocol"),
    (re.compile(r"^fields\.(\w+): required field .* is not mapped$"), "required"),
    (re.compile(r"^fields\.(\w+)\.transforms\[\d+\]: unknown transform type '([^']*)'.*$"), "transform"),
    (re.compile(r"^fields\.(\w+)\.transforms\[\d+\]: bad argument for (\w+): (.*)$"), "badarg"),
    (re.compile(r"^fields\.(\w+)(?:\.\w+)?: (.*)$"), "field"),
]


def problem_text(problem: str, rt: RecordType) -> str:
    """A mapping compile problem in Chinese, naming the field by its label."""
    for pat, kind in _PATTERNS:
        m = pat.match(problem)
        if not m:
            continue
        name = m.group(1)
        label = rt[name].label if name in rt.field_map else name
        if kind == "nocol":
            hint = f"，是否为 {m.group(3)}？" if m.group(3) else ""
            return f"{label}：数据源中没有列 {m.group(2)}{hint}"
        if kind == "required":
            return f"{label}：必填字段未映射"
        if kind == "transform":
            return f"{label}：未知的转换 {m.group(2)}"
        if kind == "badarg":
            return f"{label}：转换 {m.group(2)} 的参数有误（{m.group(3)}）"
        return f"{label}：映射设置有误（{m.group(2)}）"
    return f"映射设置有误：{problem}"

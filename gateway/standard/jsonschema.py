"""JSON Schema (Draft 2020-12) of the standard, generated from gateway.standard.schema.

What JSON Schema cannot express (USCC check character, GB/T 38565 level
structure, real calendar dates, not-in-future, date order, code-table
membership) is left to gateway.standard.validate; the schema carries the
shape, lengths, ranges, code lists with their Chinese labels, and required
fields, so other systems can build forms and pre-check records.
"""

from __future__ import annotations

from typing import Any

from gateway.standard.doc import RECORD_RULE_TEXT
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
    RECORD_TYPES,
    SCHEMA_VERSION,
    STRING,
    UNITS,
    USCC,
    Field,
    RecordType,
)

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "urn:emergency-gateway:standard:" + SCHEMA_VERSION

USCC_CHARS = "0-9A-HJ-NPQRTUWXY"
PATTERNS = {
    CATEGORY_CODE: r"^[123](00|\d\d)(00|\d\d)(00|\d\d)$",
    DIVISION_CODE: r"^(\d{6}|\d{12})$",
    USCC: rf"^[{USCC_CHARS}]{{2}}\d{{6}}[{USCC_CHARS}]{{10}}$",
    PHONE: r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8}((-|转|ext\.?|#)\d{1,6})?)$",
    DATE: r"^\d{4}-\d{2}-\d{2}$",
}

def _bounds(f: Field, node: dict[str, Any]) -> None:
    if f.minimum is not None:
        node["exclusiveMinimum" if f.exclusive_minimum else "minimum"] = f.minimum
    if f.maximum is not None:
        node["maximum"] = f.maximum


def _items_schema() -> dict[str, Any]:
    return {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "object",
            "properties": {
                "material_id": {"type": "string", "title": "物资编码", "minLength": 1, "maxLength": 32},
                "quantity": {"type": "number", "title": "数量", "exclusiveMinimum": 0},
                "unit": {"type": "string", "title": "计量单位", "minLength": 1, "maxLength": 10},
            },
            "required": ["material_id", "quantity", "unit"],
            "additionalProperties": False,
        },
    }


def _file_ref_schema() -> dict[str, Any]:
    # ECMA-262 patterns have no inline (?i): spell each extension case-insensitively.
    ext = "|".join("".join(f"[{c.lower()}{c.upper()}]" for c in t) for t in ATTACHMENT_TYPES)
    return {
        "type": "object",
        "properties": {
            "sha256": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
            "size": {"type": "integer", "minimum": 0},
            "name": {"type": "string", "minLength": 1, "pattern": rf"\.({ext})$"},
        },
        "required": ["sha256", "size", "name"],
        "additionalProperties": False,
    }


def field_schema(f: Field) -> dict[str, Any]:
    node: dict[str, Any]
    if f.kind == ENUM:
        assert f.codes is not None
        node = {"type": "string", "enum": list(f.codes), "oneOf": [{"const": c, "title": t} for c, t in f.codes.items()]}
    elif f.kind == INT:
        node = {"type": "integer"}
        _bounds(f, node)
    elif f.kind == DECIMAL:
        node = {"type": "number"}
        _bounds(f, node)
        if f.scale is not None:
            node["x-scale"] = f.scale
    elif f.kind == DATE:
        node = {"type": "string", "format": "date", "pattern": PATTERNS[DATE]}
    elif f.kind == ITEMS:
        node = _items_schema()
    elif f.kind == FILE_REF:
        node = _file_ref_schema()
    else:
        node = {"type": "string", "minLength": 1}
        if f.max_len is not None:
            node["maxLength"] = f.max_len
        if f.kind in PATTERNS:
            node["pattern"] = PATTERNS[f.kind]
        elif f.kind != STRING:
            raise ValueError(f"field {f.name}: no JSON Schema for kind {f.kind!r}")
    node = {"title": f.label, **node}
    notes = [f.help] if f.help else []
    if f.units:
        notes.append("计量单位列表（可扩展）：" + "、".join(UNITS))
    if f.not_future:
        notes.append("不能晚于当天")
    if notes:
        node["description"] = "；".join(notes)
    if f.confidential:
        node["x-confidential"] = True
    return node


def record_schema(rt: RecordType) -> dict[str, Any]:
    node: dict[str, Any] = {
        "$id": f"{BASE_ID}:{rt.name}",
        "title": rt.label,
        "type": "object",
        "properties": {f.name: field_schema(f) for f in rt.fields},
        "required": list(rt.required_fields),
        "additionalProperties": False,
        "x-key": list(rt.key),
    }
    if "coords_need_system" in rt.rules:
        node["dependentRequired"] = {
            "longitude": ["latitude", "coord_system"],
            "latitude": ["longitude", "coord_system"],
        }
    if rt.rules:
        node["description"] = "；".join(RECORD_RULE_TEXT.get(r, r) for r in rt.rules)
    return node


def json_schema(record_type: str | None = None) -> dict[str, Any]:
    """One record type's schema, or (None) all five under $defs."""
    if record_type is not None:
        try:
            rt = RECORD_TYPES[record_type]
        except KeyError:
            raise KeyError(f"unknown record type {record_type!r}; expected one of {', '.join(RECORD_TYPES)}") from None
        return {"$schema": DRAFT, **record_schema(rt), "x-schema-version": SCHEMA_VERSION}
    return {
        "$schema": DRAFT,
        "$id": BASE_ID,
        "title": "应急物资信息数据标准",
        "x-schema-version": SCHEMA_VERSION,
        "$defs": {name: record_schema(rt) for name, rt in RECORD_TYPES.items()},
    }

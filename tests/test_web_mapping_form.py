"""The mapping editor's form writes back what it read: every shipped and demo mapping round-trips."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from gateway.demo.layout import MAPPINGS
from gateway.standard.schema import RECORD_TYPES
from gateway.web import mapping_form as mf

ROOT = Path(__file__).resolve().parents[1]
TEXTS = {f"demo:{k}": v for k, v in MAPPINGS.items()} | {
    f"config:{p.name}": p.read_text(encoding="utf-8") for p in sorted((ROOT / "config" / "mappings").glob("*.toml"))
}


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_form_round_trip_keeps_every_field_spec(name: str) -> None:
    doc = tomllib.loads(TEXTS[name])
    rt = RECORD_TYPES[doc["record_type"]]
    rows, description = mf.rows_from_text(TEXTS[name], rt)
    form = {}
    for r in rows:
        form |= {f"f.{r.name}.kind": r.kind, f"f.{r.name}.value": r.value,
                 f"f.{r.name}.transforms": r.transforms, f"f.{r.name}.default": r.default}
    again = tomllib.loads(mf.text_from_rows(rt.name, mf.rows_from_form(form, rt), description))

    def norm(spec: object) -> object:
        spec = {"column": spec} if isinstance(spec, str) else dict(spec)  # type: ignore[arg-type]
        if "default" in spec and not isinstance(spec["default"], str):
            spec["default"] = mf.toml_value(spec["default"])  # the form keeps defaults as text
        for k in mf.SOURCE_KINDS:
            if k in spec and not isinstance(spec[k], str):
                spec[k] = mf.toml_value(spec[k])
        return spec

    assert {k: norm(v) for k, v in doc["fields"].items()} == {k: norm(v) for k, v in again["fields"].items()}
    assert again.get("description", "") == doc.get("description", "")


def test_bad_transforms_text_is_named_in_chinese() -> None:
    rt = RECORD_TYPES["material"]
    rows = [mf.FieldRow("material_id", "column", "a", '["trim"'), mf.FieldRow("unit", "column", "b")]
    with pytest.raises(mf.FormProblem) as e:
        mf.text_from_rows("material", rows)
    assert str(e.value).startswith("物资编码：转换设置不是有效的 TOML 数组")
    assert mf.problem_text("fields.unit: required field 计量单位(unit) is not mapped", rt) == "计量单位：必填字段未映射"


def _form_of(rows: list[mf.FieldRow]) -> dict[str, str]:
    form: dict[str, str] = {}
    for r in rows:
        form |= {f"f.{r.name}.kind": r.kind, f"f.{r.name}.value": r.value,
                 f"f.{r.name}.transforms": r.transforms, f"f.{r.name}.default": r.default}
    return form


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_saving_the_form_unchanged_writes_the_file_as_it_was(name: str) -> None:
    text = TEXTS[name]
    rt = RECORD_TYPES[tomllib.loads(text)["record_type"]]
    rows, description = mf.rows_from_text(text, rt)
    again = mf.text_from_rows(rt.name, mf.rows_from_form(_form_of(rows), rt), description, text)
    assert again == text if text.endswith("\n") else again == text + "\n"


def test_a_changed_field_changes_only_its_own_line() -> None:
    import difflib

    text = """record_type = "stock"
description = "库存"

[fields]
# 物资编码来自 wzbm
material_id = "wzbm"
depot_id = {column = "ckbm", transforms = ["trim", "upper"]}
unit = {constant = "个"}
quantity = {column = "sl", transforms = [{decimal = 2}]}
checked_date = {column = "hcrq", transforms = [{date = "%Y/%m/%d"}], default = "2026-01-01"}
"""
    rt = RECORD_TYPES["stock"]
    rows, description = mf.rows_from_text(text, rt)
    form = _form_of(rows) | {"f.unit.value": "件", "f.batch_no.kind": "column", "f.batch_no.value": "pc"}
    again = mf.text_from_rows("stock", mf.rows_from_form(form, rt), description, text)
    changed = [d for d in difflib.unified_diff(text.splitlines(), again.splitlines(), lineterm="", n=0)
               if d[:1] in "+-" and not d.startswith(("+++", "---"))]
    # The short form, the comment and the file's order stay; a new column field is written short too.
    assert changed == ['-unit = {constant = "个"}', '+unit = {constant = "件"}', '+batch_no = "pc"']

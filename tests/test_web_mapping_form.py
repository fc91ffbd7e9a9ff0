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

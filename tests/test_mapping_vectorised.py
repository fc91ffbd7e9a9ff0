"""The vectorised map_batch gives exactly map_row's answers, row for row (gateway.mappings.vectorised).

The corpus is tests/test_standard_vectorised.py's (every record type, values in every spelling the
adapters hand over, every standard rule broken), read as source rows under mappings that use every
built-in transform; batches are built both from the rows (RowBatch.from_rows) and from Arrow
(RowBatch.from_arrow). Records must be equal type for type and problems equal (repr compares both).
Seeds are fixed.
"""

from __future__ import annotations

import json
import random
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from gateway.adapters.base import SourceRow
from gateway.adapters.batches import RowBatch
from gateway.mappings import load_mapping, preview
from gateway.mappings.compile import CompiledMapping
from gateway.mappings.vectorised import VECTORISED, map_batch_detail, row_fields_note, vectorised_plan
from gateway.standard.schema import (
    CATEGORY_CODE,
    DATE,
    DECIMAL,
    DIVISION_CODE,
    ENUM,
    INT,
    ITEMS,
    PHONE,
    RECORD_TYPES,
    STRING,
    USCC,
    Field,
)
from tests.test_standard_vectorised import CHUNK, CTX, CTX_TABLE, EVERY_RULE, TODAY, _typed_table, corpus

# A mapping names its fields, so the one rule a mapped record cannot break is an unknown field.
MAPPABLE_RULES = EVERY_RULE - {"unknown_field"}

# Per field kind, the transform chains the generated mappings rotate through (TOML inline values).
CHAINS: dict[str, list[str]] = {
    STRING: [
        '["trim"]',
        '["trim", {null_if = ["-", "无", "x"]}]',
        '["str", "trim"]',
        '["upper"]',
        "[]",
        '["lower"]',
        "[{regex = '^\\s*(\\S.*?)\\s*$'}]",
    ],
    INT: ['["int"]', '["number"]', "[]"],
    DECIMAL: ['["number"]', '[{decimal = 2}]', '[{convert_unit = {factors = {"" = 1, "吨" = 1, "公斤" = 0.001}}}]', "[]"],
    DATE: ['["date"]', '[{date = ["%Y%m%d", "%d/%m/%Y"]}]', "[]", '["date"]'],
    ENUM: ['["code"]', '["str", "code"]', "MAP", "[]"],
    CATEGORY_CODE: ["[\"str\", {regex = '^(\\d{7})'}]", "LOOKUP_CSV", "[]"],
    DIVISION_CODE: ['["str"]', "LOOKUP_SOURCE"],
    USCC: ['["trim", "upper"]', '[{null_if = ""}]'],
    PHONE: ['["str"]', '["trim"]', "[]"],
    ITEMS: ['["json"]', "[]"],
}
# Fields computed row by row in the generated mappings (an expression, a template, concat).
ROW_FIELDS = {
    ("material", "spec_model"): '{ column = "s_spec_model", transforms = [{ concat = { with = ["s_brand"], sep = " " } }] }',
    ("depot", "address"): '{ template = "{s_address}" }',
    ("stock", "batch_no"): "{ expr = 'trim(s_batch_no)' }",
}
OTHER = {  # the other source kinds and keys: a constant, a default, a path
    ("capacity", "spec_model"): '{ constant = "标准型" }',
    ("capacity", "agreement_no"): '{ column = "s_agreement_no", default = "XY-0" }',
    ("agreement", "party_b_contact"): '{ path = "s_party_b_contact", transforms = ["trim"] }',
}


def _chain(t: str, f: Field, i: int, seed: int) -> str:
    options = CHAINS.get(f.kind, ["[]"])
    chain = options[(i + seed) % len(options)]
    if chain == "MAP":
        assert f.codes is not None
        table = {**{label: c for c, label in f.codes.items()}, **{c: c for c in f.codes}}
        pairs = ", ".join(f'"{k}" = "{v}"' for k, v in table.items())
        return f'[{{map = {{values = {{{pairs}}}, other = "error"}}}}]'
    if chain == "LOOKUP_CSV":
        return '[{lookup = {csv = "categories.csv", key = "old", value = "new", missing = "keep"}}]'
    if chain == "LOOKUP_SOURCE":
        return '[{lookup = {source = "regions", key = "code", value = "name", missing = "keep"}}]'
    return chain


def mapping_text(t: str, seed: int) -> str:
    lines = [f'record_type = "{t}"', "[fields]"]
    for i, f in enumerate(RECORD_TYPES[t].fields):
        spec = ROW_FIELDS.get((t, f.name)) or OTHER.get((t, f.name))
        if spec is None:
            spec = f'{{ column = "s_{f.name}", transforms = {_chain(t, f, i, seed)} }}'
        lines.append(f"{f.name} = {spec}")
    return "\n".join(lines) + "\n"


def _regions() -> list[dict[str, Any]]:
    return [{"code": "350102", "name": "350102"}, {"code": "999999", "name": "110101"}, {"code": "110101", "name": "1101"}]


def load(t: str, seed: int, base: Path, context: Any = CTX) -> CompiledMapping:
    (base / "categories.csv").write_text("old,new\nA1,1010100\n1010101,1010100\n2000000,2000000x\n", encoding="utf-8")
    return load_mapping(
        mapping_text(t, seed), t, base_dir=base, source_rows=lambda name: _regions(), context=context, source="s"
    )


def source_rows(t: str, records: list[dict[str, Any]], start: int, json_items: bool) -> list[SourceRow]:
    """Records read back as a source would hand them over: a column per field (None where absent)."""
    rows = []
    for k, r in enumerate(records):
        data = {f"s_{f.name}": r.get(f.name) for f in RECORD_TYPES[t].fields}
        if json_items and isinstance(data.get("s_items"), list):
            data["s_items"] = json.dumps(data["s_items"], ensure_ascii=False)
        rows.append(SourceRow(str(start + k), data, f"row {start + k}", None))
    return rows


def assert_same(mapping: CompiledMapping, batch: RowBatch) -> tuple[int, int]:
    """map_batch == [map_row ...] on `batch`; (rows the verdict answered, rows the mapping found valid)."""
    expected = [mapping.map_row(r) for r in batch.source_rows()]
    got, row_path = map_batch_detail(mapping, batch)
    assert len(got) == len(expected)
    for i, (g, e) in enumerate(zip(got, expected, strict=True)):
        assert repr(g) == repr(e), (i, batch.dicts()[i], g, e)  # repr: 35 is not 35.0, "1" is not 1
    assert got == expected
    return len(batch) - len(row_path), sum(1 for r, _ in expected if r is not None)


def _arrow_batch(rows: list[SourceRow]) -> RowBatch | None:
    try:
        data = pa.RecordBatch.from_pylist([r.data for r in rows])
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return None
    return RowBatch.from_arrow(data, [r.key for r in rows], [r.locator for r in rows], [r.version for r in rows])


def _text(rows: list[SourceRow]) -> list[SourceRow]:
    """The rows as a text source (CSV) gives them: every value its text."""
    def s(v: Any) -> Any:
        return None if v is None else json.dumps(v, ensure_ascii=False) if isinstance(v, list | dict) else str(v)

    return [SourceRow(r.key, {k: s(v) for k, v in r.data.items()}, r.locator, r.version) for r in rows]


@pytest.mark.parametrize("seed", [1, 2])
def test_map_batch_equals_map_row_on_the_corpus(seed: int, tmp_path: Path) -> None:
    seen: set[str] = set()
    for k, ctx in enumerate((CTX, CTX_TABLE)):
        for t, records in corpus(seed, 1500).items():
            mapping = load(t, seed + k, tmp_path, ctx)  # each context with the other rotation of transforms
            fast = valid = arrow_batches = 0
            for start in range(0, len(records), CHUNK):
                rows = source_rows(t, records[start : start + CHUNK], start, json_items=start % 2 == 0)
                for r in rows:
                    seen.update(p.rule for p in mapping.map_row(r)[1])
                batches = [RowBatch.from_rows(rows), RowBatch.from_rows(_text(rows))]
                batches += [b for b in (_arrow_batch(rows), _arrow_batch(_text(rows))) if b is not None]
                arrow_batches += len(batches) - 2
                for batch in batches:
                    f, v = assert_same(mapping, batch)
                    if batch.arrow() is not None:  # else Arrow cannot hold the rows: all go through map_row
                        fast, valid = fast + f, valid + v
            assert arrow_batches >= len(records) // CHUNK, t  # every chunk ran from Arrow at least as text
            # The vectorised path answers for most valid rows (it does not hand everything to map_row).
            assert fast >= 0.8 * valid, (t, fast, valid)
    assert MAPPABLE_RULES <= seen, MAPPABLE_RULES - seen
    assert {"date", "regex", "map", "code", "int", "convert_unit", "number"} <= seen  # transform failures too


def test_typed_arrow_columns(tmp_path: Path) -> None:
    """Columns as a database driver gives them (decimal128, date32/date64, timestamps, small ints, large and
    dictionary strings), through passthrough, value transforms and the date shortcut."""
    table = _typed_table(random.Random(7), 3000)
    renamed = table.rename_columns([f"c_{n}" for n in table.column_names])
    text = "\n".join(
        [
            'record_type = "stock"',
            "[fields]",
            'material_id = { column = "c_material_id", transforms = ["trim", "upper"] }',
            'depot_id = "c_depot_id"',
            'quantity = { column = "c_quantity", transforms = [{ decimal = 2 }] }',
            'unit = { column = "c_unit", default = "箱" }',
            'alert_threshold = { column = "c_alert_threshold", transforms = ["str"] }',
            'production_date = { column = "c_production_date", transforms = ["date"] }',
            'inbound_date = { column = "c_inbound_date", transforms = ["date"] }',
            'expiry_date = { column = "c_expiry_date", transforms = ["date"] }',
            'condition = { column = "c_condition", transforms = ["code"] }',
            'reserve_level = { column = "c_reserve_level", transforms = ["str"] }',
            'responsible_phone = "c_responsible_phone"',
            'checked_date = { column = "c_checked_date", transforms = ["date"] }',
        ]
    )
    mapping = load_mapping(text, "stock", context=CTX)
    assert set(vectorised_plan(mapping).values()) == {VECTORISED}
    fast = valid = 0
    for start in range(0, 3000, 500):
        part = renamed.slice(start, 500).to_batches()[0]
        n = part.num_rows
        keys = [str(start + i) for i in range(n)]
        f, v = assert_same(mapping, RowBatch.from_arrow(part, keys, keys, [None] * n))
        fast, valid = fast + f, valid + v
    assert fast >= 0.9 * valid and valid > 50, (fast, valid)


def test_batches_built_from_dicts_whose_arrow_view_differs(tmp_path: Path) -> None:
    """Dicts Arrow would change (ints beside floats, Decimals of several scales, keys missing from the first
    row) have no Arrow form (RowBatch.arrow is exact) and take the row path, with map_row's results."""
    mapping = load(
        "stock", 1, tmp_path
    )  # quantity through number/decimal/convert_unit, unit through a string chain
    rows = []
    for i in range(300):
        data: dict[str, Any] = {
            "s_material_id": f" wz{i} ",
            "s_quantity": [1, 2.5, 3, 8.0][i % 4],
            "s_unit": "箱",
            "s_alert_threshold": [Decimal("1.5"), Decimal("2.50")][i % 2],
            "s_checked_date": TODAY - timedelta(days=i),
        }
        if i % 3 and i:  # absent from the first row: Arrow's view has no such column
            data["s_depot_id"] = f"CK{i}"
            data["s_production_date"] = (TODAY - timedelta(days=900 + i)).isoformat()
        rows.append(SourceRow(str(i), data, f"row {i}", None))
    for chunk in (rows[:100], rows[100:]):
        batch = RowBatch.from_rows(chunk)
        assert batch.arrow() is None
        assert_same(mapping, batch)
    mixed = [SourceRow("m", {"s_material_id": 1, "s_quantity": "1", "s_unit": "箱"}, "m", None), *rows[:5]]
    batch = RowBatch.from_rows(mixed)
    assert batch.arrow() is None  # Arrow cannot hold it: the whole batch takes the row path
    assert_same(mapping, batch)


NOT_VECTORISABLE = """\
record_type = "stock"
[fields]
material_id = { expr = 'upper(trim(wzbm)) + ""' }
depot_id = { template = "CK-{ckbm}" }
batch_no = { column = "pch", transforms = [{ concat = { with = ["ckbm"], sep = "-" } }] }
quantity = { column = "sl", transforms = [{ convert_unit = { factors = { "吨" = 1, "公斤" = 0.001 }, unit_column = "dw" } }] }
unit = { constant = "吨" }
checked_date = { column = "rq", transforms = ["date"] }
"""


def _stock_rows(n: int) -> list[SourceRow]:
    rng = random.Random(11)
    rows = []
    for i in range(n):
        data = {
            "wzbm": rng.choice([f" wz{i % 40} ", None, "", "长" * 40]),
            "ckbm": rng.choice([f"{i % 7}", None, "a b"]),
            "pch": rng.choice([f"P{i}", None, "", "-"]),
            "sl": rng.choice(["12.5", "3", "x", None, "1,000"]),
            "dw": rng.choice(["吨", "公斤", "箱", None]),
            "rq": rng.choice(["2026-01-02", "2026年1月3日", "20260104", "2026-02-30", "昨天", None, "2027-01-01"]),
        }
        rows.append(SourceRow(str(i), data, f"kc row {i}", None))
    return rows


def test_a_mapping_that_cannot_be_vectorised_gives_the_same_results() -> None:
    mapping = load_mapping(NOT_VECTORISABLE, "stock", context=CTX, source="kc")
    plan = vectorised_plan(mapping)
    assert plan == {
        "material_id": "由表达式（expr）计算",
        "depot_id": "由模板（template）拼接多列",
        "batch_no": "转换 concat 读取其他列",
        "quantity": "转换 convert_unit 读取计量单位列",
        "unit": VECTORISED,
        "checked_date": VECTORISED,
    }
    rows = _stock_rows(1200)
    fast = valid = 0
    for chunk in (rows[:600], rows[600:]):
        for batch in (RowBatch.from_rows(chunk), _arrow_batch(chunk)):
            assert batch is not None
            f, v = assert_same(mapping, batch)
            fast, valid = fast + f, valid + v
    assert fast == valid > 20  # the row-by-row fields still go to the vectorised validator


def test_the_preview_names_the_fields_computed_row_by_row() -> None:
    mapping = load_mapping(NOT_VECTORISABLE, "stock", context=CTX, source="kc")
    note = row_fields_note(mapping)
    assert note == (
        "以下字段逐行计算：物资编码(material_id)（由表达式（expr）计算）、储备库编码(depot_id)（由模板（template）拼接多列）、"
        "批次号(batch_no)（转换 concat 读取其他列）、储备数量(quantity)（转换 convert_unit 读取计量单位列）"
    )
    plain = load_mapping('record_type = "stock"\n[fields]\nmaterial_id = "a"\nquantity = "b"\nunit = "c"\nchecked_date = "d"\n')
    assert row_fields_note(plain) is None
    assert preview(mapping, _stock_rows(3))  # the preview itself still maps the rows


def test_the_plan_follows_a_swapped_context(tmp_path: Path) -> None:
    mapping = load("material", 1, tmp_path)
    first = mapping.vector_plan()
    assert mapping.vector_plan() is first  # built once
    mapping.context = CTX_TABLE
    assert mapping.vector_plan() is not first
    rows = source_rows("material", corpus(4, 250)["material"], 0, json_items=False)
    assert_same(mapping, RowBatch.from_rows(rows))
    # Fields swapped in by code: the plan is rebuilt from the closures' own specs; one made by hand
    # (no spec) is computed row by row.
    mapping.fields = (*mapping.fields[:-1], ("usage_desc", lambda row: row.get("s_material_name")))
    plan = vectorised_plan(mapping)
    assert plan["usage_desc"] == "不是由映射文件编译的字段" and plan["material_id"] == VECTORISED
    assert_same(mapping, RowBatch.from_rows(rows))


def test_empty_batch() -> None:
    mapping = load_mapping(NOT_VECTORISABLE, "stock", context=CTX)
    assert mapping.map_batch(RowBatch.from_rows([])) == []
    assert date.today()  # the context pins today; nothing else reads the clock here


def test_cli_preview_names_the_row_by_row_fields(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from gateway.cli import cli
    from tests.test_mapping_check import STOCK, write_department

    cfg = write_department(tmp_path, STOCK.replace('material_id = "wzbm"', "material_id = { expr = 'upper(wzbm)' }"))
    r = CliRunner().invoke(cli, ["--config", str(cfg), "mapping", "preview", "kc"])
    assert r.exit_code == 0, r.output
    assert "通过 1，有错误 0" in r.output
    assert "以下字段逐行计算：物资编码(material_id)（由表达式（expr）计算）" in r.output
    (tmp_path / "plain").mkdir()
    plain = write_department(tmp_path / "plain")
    r = CliRunner().invoke(cli, ["--config", str(plain), "mapping", "preview", "kc"])
    assert r.exit_code == 0 and "逐行计算" not in r.output, r.output


def test_web_live_preview_names_the_row_by_row_fields(gw_site) -> None:  # type: ignore[no-untyped-def]
    from tests.fixtures.web import client_as, csrf_of
    from tests.test_web_pages import _form_of_mapping

    c = client_as(gw_site, "clerk")
    tok = csrf_of(c, "/mappings/wz_db")
    page = c.get("/mappings/wz_db").get_data(as_text=True)
    assert 'id="preview-row-fields"' in page  # where mapping.js shows it
    body = c.post("/mappings/wz_db/api/preview", data=_form_of_mapping(), headers={"X-CSRF-Token": tok}).get_json()
    assert body["ok"] and body["row_fields"] is None
    form = _form_of_mapping({"material_id": ("template", "WZ-{wzbm}")})
    body = c.post("/mappings/wz_db/api/preview", data=form, headers={"X-CSRF-Token": tok}).get_json()
    assert body["ok"], body
    assert body["row_fields"] == "以下字段逐行计算：物资编码(material_id)（由模板（template）拼接多列）"


TRICKY = ["", " ", "\u3000", " a\u3000b ", "\t-\n", "-", "无", " 无 ", "abc", "AbC ", "straße", "ǅ", "物资A",
          "\u2003x\u2003", "\x1cx\x1f", "1.0", "True", None, "x\u3000\u3000y", "\u0130i"]


@pytest.mark.parametrize(
    "chain",
    ['["trim"]', '["trim", {null_if = ["-", "无", 1.0, true]}]', '["upper"]', '["lower", "trim"]', '["str"]',
     '["trim", "upper"]', '[{null_if = ""}]'],
)
@pytest.mark.parametrize("default", [None, "缺省"])
def test_text_kernels_equal_the_transforms(chain: str, default: str | None) -> None:
    """Arrow's text kernels give what the row closures give, value for value (ASCII-only for case)."""
    from gateway.mappings.kernels import text_kernel

    spec = f'{{ column = "c", transforms = {chain}' + (f', default = "{default}"' if default else "") + " }"
    required = 'material_id = "a"\nmaterial_name = "b"\ncategory_code = "d"\nunit = "e"\nreserve_mode = "f"\n'
    mapping = load_mapping(f'record_type = "material"\n[fields]\n{required}usage_desc = {spec}\n')
    fn = dict(mapping.fields)["usage_desc"]
    kernel = text_kernel(fn.spec.get("transforms", []) + ([{"default": default}] if default else []))  # type: ignore[attr-defined]
    assert kernel is not None
    ascii_only = [v for v in TRICKY if v is None or v.isascii()]
    for values in (TRICKY, ascii_only):
        out = kernel(pa.array(values, pa.string()))
        if out is None:  # only case steps refuse, and only for text beyond ASCII
            assert "upper" in chain or "lower" in chain
            assert values is TRICKY
            continue
        assert out.to_pylist() == [fn({"c": v}) for v in values], chain

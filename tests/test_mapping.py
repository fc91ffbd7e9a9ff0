"""The mapping engine: load-time checks, transforms, safe expressions, preview, versions, plug-ins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.adapters import registry
from gateway.adapters.base import SourceRow
from gateway.errors import MappingError
from gateway.mappings import diff, list_versions, load_mapping, preview, rollback, save_version
from gateway.store import open_store

MATERIAL = """
record_type = "material"
[fields]
material_id = {{ column = "bm", transforms = ["trim", "upper"] }}
material_name = {{ column = "mc", transforms = ["trim"] }}
category_code = {{ column = "fl", transforms = ["str"] }}
unit = {{ column = "dw", default = "个" }}
reserve_mode = {{ column = "cbfs", transforms = ["code"] }}
{extra}
"""


def material(extra: str = "", **kw: object):  # type: ignore[no-untyped-def]
    return load_mapping(MATERIAL.format(extra=extra), **kw)  # type: ignore[arg-type]


def row(**data: object) -> dict[str, object]:
    base = {"bm": " wz-001 ", "mc": "折叠床", "fl": "1010100", "dw": "张", "cbfs": "实物储备"}
    base.update(data)
    return base


def test_mapping_with_three_mistakes_reports_all_three() -> None:
    text = """
record_type = "stock"
[fields]
material_id = "wzbm"
depot_idd = "ckbm"                                          # 1: no such target field
quantity = { column = "sl", transforms = ["numbr"] }        # 2: unknown transform
checked_date = { column = "hcrqq", transforms = ["date"] }  # 3: no such source column
unit = { constant = "箱" }
"""
    with pytest.raises(MappingError) as ei:
        load_mapping(text, "stock", columns=["wzbm", "ckbm", "sl", "hcrq"])
    problems = ei.value.problems
    assert len(problems) == 3, problems
    assert "depot_idd" in problems[0] and "depot_id" in problems[0]
    assert "numbr" in problems[1] and "number" in problems[1]
    assert "hcrqq" in problems[2] and "'hcrq'" in problems[2]


def test_required_unmapped_and_bad_arguments_are_reported() -> None:
    text = """
record_type = "stock"
[fields]
material_id = "a"
quantity = { column = "b", transforms = [{ decimal = "two" }, { regex = "(" }, { convert_unit = { factors = {} } }] }
"""
    with pytest.raises(MappingError) as ei:
        load_mapping(text)
    msg = str(ei.value)
    assert "bad argument for decimal" in msg and "bad argument for regex" in msg and "bad argument for convert_unit" in msg
    assert "核查日期(checked_date) is not mapped" in msg and "计量单位(unit) is not mapped" in msg


def test_record_type_must_match_the_source() -> None:
    with pytest.raises(MappingError, match="mapping is for 'material' but the source is 'stock'"):
        material(record_type="stock")


def test_maps_and_normalises_a_row() -> None:
    m = material()
    assert m.record_type == "material" and m.source_fields == {"bm", "mc", "fl", "dw", "cbfs"}
    record, problems = m.map_row(SourceRow("1", row(cbfs="协议储备", dw=None), "t key=1"))
    assert problems == []
    assert record == {"material_id": "WZ-001", "material_name": "折叠床", "category_code": "1010100", "unit": "个", "reserve_mode": "2"}


@pytest.mark.parametrize("text", ["2023年5月1日", "2023.5.1", "20230501", "2023/5/1", "2023-05-01", "2023年05月01日"])
def test_chinese_date_forms(text: str) -> None:
    m = material('shelf_life_months = { column = "d", transforms = ["date", { regex = "-(\\\\d+)-" }, "int"] }')
    record, problems = m.map_row(row(d=text))
    assert problems == [] and record is not None and record["shelf_life_months"] == 5


def test_impossible_date_is_an_error_not_a_guess() -> None:
    m = load_mapping(
        'record_type = "stock"\n[fields]\nmaterial_id = "a"\nquantity = "q"\nunit = "u"\n'
        'checked_date = { column = "d", transforms = ["date"] }'
    )
    record, problems = m.map_row({"a": "x", "q": 1, "u": "箱", "d": "2023年2月30日"})
    assert record is None
    assert [(p.field, p.rule) for p in problems] == [("checked_date", "date")]
    assert "核查日期" in problems[0].message and "不存在" in problems[0].message


def test_units_numbers_and_conversions() -> None:
    m = load_mapping(
        """
record_type = "stock"
[fields]
material_id = { template = "{bm}-{pc}" }
batch_no = { column = "pc", transforms = [{ concat = { with = ["ck"], sep = "/" } }] }
quantity = { column = "zl", transforms = [{ convert_unit = { factors = { "公斤" = 0.001, "吨" = 1 } } }] }
alert_threshold = { column = "sl", transforms = ["number"] }
unit = { column = "sl", transforms = ["unit_of"] }
checked_date = { constant = "2024-01-01" }
"""
    )
    record, problems = m.map_row({"bm": "W1", "pc": "B2", "ck": "C3", "zl": "1,500公斤", "sl": "200箱"})
    assert problems == []
    assert record is not None
    assert (record["material_id"], record["batch_no"], record["unit"]) == ("W1-B2", "B2/C3", "箱")
    assert float(record["quantity"]) == 1.5 and float(record["alert_threshold"]) == 200
    _, problems = m.map_row({"bm": "W1", "pc": "B2", "ck": "C3", "zl": "3斤", "sl": "200箱"})
    assert [p.rule for p in problems] == ["convert_unit"] and "斤" in problems[0].message


def test_value_map_and_lookup_csv(tmp_path: Path) -> None:
    (tmp_path / "depots.csv").write_text("old,new\n老库,CK01\n东库,CK02\n", encoding="utf-8-sig")
    m = load_mapping(
        """
record_type = "stock"
[fields]
material_id = "a"
depot_id = { column = "ck", transforms = [{ lookup = { csv = "depots.csv", key = "old", value = "new" } }] }
quantity = "q"
unit = "u"
condition = { column = "zt", transforms = [{ map = { "好" = "1", "坏" = "3" } }] }
checked_date = { column = "d", transforms = ["date"] }
""",
        base_dir=tmp_path,
    )
    ok, problems = m.map_row({"a": "x", "ck": "东库", "q": 2, "u": "箱", "zt": "坏", "d": "20240101"})
    assert problems == [] and ok is not None and (ok["depot_id"], ok["condition"]) == ("CK02", "3")
    bad, problems = m.map_row({"a": "x", "ck": "西库", "q": 2, "u": "箱", "zt": "好的", "d": "20240101"})
    assert bad is None and sorted(p.rule for p in problems) == ["lookup", "map"]


def test_expressions_compute_but_cannot_escape() -> None:
    m = material('spec_model = { expr = "concat(upper(trim(gg)), \'-\', coalesce(xh, \'标准\')) if gg else None" }')
    assert m.map_row(row(gg=" ab ", xh=None))[0]["spec_model"] == "AB-标准"  # type: ignore[index]
    assert "spec_model" not in m.map_row(row(gg=""))[0]  # type: ignore[operator]
    for evil in ("__import__('os').system('id')", "gg.__class__", "[x for x in gg]", "open('/etc/passwd')", "(lambda: 1)()"):
        with pytest.raises(MappingError) as ei:
            material(f"[fields.spec_model]\nexpr = '''{evil}'''")
        assert "fields.spec_model.expr" in str(ei.value), ei.value


def test_preview_of_20_rows_shows_each_field_error_with_its_row() -> None:
    m = material('unit_price = { column = "dj", transforms = ["decimal"] }')
    rows = [SourceRow(str(i), row(bm=f"W{i}", dj="12.5"), f"wz.csv:{i + 1}") for i in range(20)]
    rows[3].data["cbfs"] = "库存"  # not a reserve mode
    rows[7].data["dj"] = "面议"  # not a number
    rows[12].data.update(fl="abc", mc="")  # two errors in one row
    result = preview(m, rows, limit=20)
    assert len(result) == 20
    bad = {r.locator: sorted((e.field, e.label) for e in r.errors) for r in result if not r.ok}
    assert bad == {
        "wz.csv:4": [("reserve_mode", "储备方式")],
        "wz.csv:8": [("unit_price", "单价(元)")],
        "wz.csv:13": [("category_code", "物资分类代码"), ("material_name", "物资名称")],
    }
    for r in result:
        for e in r.errors:
            assert e.message and any("\u4e00" <= ch <= "\u9fff" for ch in e.message), e
    assert result[0].record is not None and result[0].record["unit_price"] in (12.5, "12.5", "12.50")


def test_versions_diff_and_rollback(tmp_path: Path) -> None:
    engine = open_store(tmp_path / "state.db")
    f = tmp_path / "m.toml"
    v1 = save_version(engine, "wz", "a = 1\n", "张三", "初版")
    v2 = save_version(engine, "wz", "a = 2\n", "李四", "改单位")
    assert (v1, v2) == (1, 2)
    assert [(v.version, v.author, v.comment) for v in list_versions(engine, "wz")] == [(1, "张三", "初版"), (2, "李四", "改单位")]
    d = diff(engine, "wz", 1, 2)
    assert "-a = 1" in d and "+a = 2" in d and "wz v1" in d
    v3 = rollback(engine, "wz", 1, "王五", f)
    assert v3 == 3 and f.read_text() == "a = 1\n"
    assert list_versions(engine, "wz")[-1].comment == "回滚到版本 1"


def test_a_plugin_transform_registers_like_the_builtins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert registry.load("trim", registry.TRANSFORM_GROUP).__module__ == "gateway.mappings.transforms"
    pkg = tmp_path / "plug"
    pkg.mkdir()
    (pkg / "reverse_plugin.py").write_text(
        "def reverse(arg, ctx):\n    return lambda v, row: v[::-1] if isinstance(v, str) else v\n"
    )
    dist = pkg / "reverse_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reverse-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[gateway.transforms]\nreverse = reverse_plugin:reverse\n")
    monkeypatch.syspath_prepend(str(pkg))
    registry._group.cache_clear()
    try:
        m = material('spec_model = { column = "gg", transforms = ["reverse"] }')
        assert m.map_row(row(gg="abc"))[0]["spec_model"] == "cba"  # type: ignore[index]
    finally:
        sys.modules.pop("reverse_plugin", None)
        registry._group.cache_clear()


def test_cli_mapping_preview_and_versions(tmp_path: Path) -> None:
    from tests.test_sync_pipeline import kc, seed_source, source_entry, write_config

    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "cursor")])
    src = seed_source(url, 5)
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 2).values(sl="若干"))
    from gateway.cli import cli

    base = ["--config", str(cfg.file), "mapping"]
    r = CliRunner().invoke(cli, [*base, "preview", "kc", "--limit", "3"])
    assert r.exit_code == 0, r.output
    assert "通过 2，有错误 1" in r.output and "储备数量(quantity) 值 '若干'" in r.output
    from gateway.store import open_store as _open
    from gateway.sync import sync_source

    sync_source(cfg, "kc", _open(cfg.state_path))
    r = CliRunner().invoke(cli, [*base, "versions", "kc"])
    assert r.exit_code == 0 and r.output.startswith("v1 ")
    src.dispose()


def test_preview_takes_an_adapter_event_stream() -> None:
    from gateway.adapters.base import Checkpoint
    from gateway.errors import RowProblem

    m = material()
    events = [
        SourceRow("1", row(), "t key=1"),
        Checkpoint({"cursor": 1}),
        RowProblem("src", "t key=2", "fl", "x", "type:int", "列 fl 的值 'x' 不是整数"),
        SourceRow("3", row(), "t key=3"),
    ]
    result = preview(m, iter(events), limit=20)
    assert [(r.locator, r.ok) for r in result] == [("t key=1", True), ("t key=2", False), ("t key=3", True)]
    assert result[1].errors[0].rule == "type:int"

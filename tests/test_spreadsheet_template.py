"""Template → clerk fills it with openpyxl → import → error workbook → fix → import again."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import openpyxl
import pytest

from gateway.spreadsheet.export import write_error_workbook
from gateway.spreadsheet.importer import import_workbook
from gateway.standard import uscc
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.validate import ValidationContext
from gateway.workbook.template import write_template

TODAY = date(2025, 6, 30)
CTX = ValidationContext(today=TODAY)
STOCK_SHEET = "应急物资管理信息"

# row offset within the 1,000 data rows -> (field, bad value, rule, label)
BAD = {
    7: ("quantity", -1, "min", "储备数量"),
    101: ("unit", "筐", "unit", "计量单位"),
    222: ("checked_date", "2023-02-30", "date.invalid", "核查日期"),
    333: ("checked_date", "2999-01-01", "not_future", "核查日期"),
    444: ("material_id", None, "required", "物资编码"),
    555: ("condition", "良好", "enum", "物资状态"),
    666: ("production_date", "2025-05-02", "date.order", "生产日期"),
    777: ("responsible_phone", "12345", "phone.format", "责任人电话"),
    888: ("batch_no", "B" * 40, "max_len", "批次号"),
    999: ("quantity", "十箱", "type.decimal", "储备数量"),
}


def columns(ws) -> dict[str, int]:
    """Field name -> column number, from the template's hidden field-name row."""
    return {c.value: c.column for c in ws[2] if c.value}


def good_row(i: int) -> dict[str, object]:
    row: dict[str, object] = {
        "material_id": f"M{i:04d}", "depot_id": f"D{i % 7:02d}", "batch_no": f"2025-{i:04d}",
        "quantity": [120, 35.5, "1,200", "0"][i % 4], "unit": ["顶", "箱", "件"][i % 3],
        "condition": ["1 完好", "完好", 1][i % 3], "reserve_level": ["县", "4 县", "3"][i % 3],
        "production_date": datetime(2024, 1 + i % 12, 1), "expiry_date": "2027-12-31",
        "responsible_phone": 13800138000 if i % 2 else "0591-87654321",
        "checked_date": ["2025-06-01", date(2025, 5, 1), "2025年6月30日"][i % 3],
    }
    return row


@pytest.fixture
def filled(tmp_path: Path) -> Path:
    tpl = write_template(tmp_path / "template.xlsx")
    wb = openpyxl.load_workbook(tpl)
    ws = wb[STOCK_SHEET]
    col = columns(ws)
    for i in range(1000):
        row = good_row(i)
        if i in BAD:
            name, value, _, _ = BAD[i]
            row[name] = value
            if name == "production_date":
                row["expiry_date"] = "2025-05-01"
        for name, value in row.items():
            ws.cell(3 + i, col[name], value)
    out = tmp_path / "filled.xlsx"
    wb.save(out)
    return out


def test_template_has_a_sheet_per_type_with_headers_names_and_dropdowns(tmp_path: Path) -> None:
    wb = openpyxl.load_workbook(write_template(tmp_path / "t.xlsx"))
    assert wb.sheetnames[0] == "说明"
    for rt in RECORD_TYPES.values():
        ws = wb[rt.label]
        heads = [c.value for c in ws[1]]
        names = [c.value for c in ws[2]]
        assert ws.row_dimensions[2].hidden
        for f in rt.fields:
            if f.kind in ("items", "file_ref"):
                continue
            assert f.name in names
            assert heads[names.index(f.name)] == f.label + ("*" if f.is_required else "")
        enum_cols = {names.index(f.name) + 1 for f in rt.fields if f.codes}
        covered = set()
        for dv in ws.data_validations.dataValidation:
            assert dv.type == "list" and "代码表" in dv.formula1
            for rng in dv.sqref.ranges:
                covered.add(rng.min_col)
        assert enum_cols <= covered
    assert [c.value for c in wb["协议物资"][2]] == ["agreement_no", "material_id", "quantity", "unit"]
    lists = wb["代码表"]
    assert lists.sheet_state == "hidden"
    assert "1 实物储备" in [c.value for c in lists["A"]]
    # the 说明 sheet lists every field with its label
    text = {str(c.value) for row in wb["说明"].iter_rows() for c in row if c.value}
    for rt in RECORD_TYPES.values():
        for f in rt.fields:
            assert f.name in text and f.label in text


def test_thousand_rows_with_ten_bad_ones(filled: Path, tmp_path: Path) -> None:
    result = import_workbook(filled, context=CTX)
    assert result.counts() == {"stock": 990}
    assert len(result.errors) == 10
    by_row = {e.row: e for e in result.errors}
    assert set(by_row) == {3 + i for i in BAD}
    for i, (name, value, rule, label) in BAD.items():
        e = by_row[3 + i]
        assert (e.sheet, e.field, e.label, e.rule) == (STOCK_SHEET, name, label, rule)
        assert e.value == value
        assert label in e.message
    first = result.records[0]
    assert (first.sheet, first.row) == (STOCK_SHEET, 3)
    assert first.data["condition"] == "1" and first.data["reserve_level"] == "4"
    assert first.data["production_date"] == "2024-01-01" and first.data["responsible_phone"] == "0591-87654321"
    assert {r.data["quantity"] for r in result.records} == {120, 35.5, 1200, 0}
    assert result.records[1].data["responsible_phone"] == "13800138000"

    report = tmp_path / "errors.xlsx"
    assert write_error_workbook(filled, result, report) == 10
    ws = openpyxl.load_workbook(report)[STOCK_SHEET]
    err_col = [c.column for c in ws[1] if c.value == "错误说明"]
    assert len(err_col) == 1
    marked = {r for r in range(3, ws.max_row + 1) if ws.cell(r, err_col[0]).value}
    assert marked == {3 + i for i in BAD}
    assert "储备数量不能小于 0" in ws.cell(3 + 7, err_col[0]).value

    # the clerk fixes the marked rows in the report and imports it again
    wb = openpyxl.load_workbook(report)
    ws = wb[STOCK_SHEET]
    col = columns(ws)
    for i in BAD:
        for name, value in good_row(i).items():
            ws.cell(3 + i, col[name], value)
    wb.save(report)
    again = import_workbook(report, context=CTX)
    assert again.errors == [] and again.counts() == {"stock": 1000}
    fixed = tmp_path / "fixed-report.xlsx"
    write_error_workbook(report, again, fixed)  # stale messages are cleared
    ws = openpyxl.load_workbook(fixed)[STOCK_SHEET]
    assert not any(ws.cell(r, err_col[0]).value for r in range(3, ws.max_row + 1))


def usc(body: str) -> str:
    return body + uscc.check_char(body)


def test_agreements_join_their_items_sheet(tmp_path: Path) -> None:
    wb = openpyxl.load_workbook(write_template(tmp_path / "t.xlsx"))
    ws = wb["协议信息"]
    col = columns(ws)
    base = {
        "agreement_name": "帐篷代储", "agreement_type": "协议(商业)储备", "party_a_name": "县应急局",
        "party_a_uscc": usc("11350100MB0000001"), "party_b_name": "商贸公司", "party_b_uscc": usc("91350100M000100Y4"),
        "party_b_contact": "李四", "party_b_phone": "13900139000", "signed_date": "2025-01-10",
        "start_date": "2025-02-01", "end_date": "2027-01-31", "file_name": "协议.pdf", "status": "有效",
    }
    for r, no in enumerate(["XY-1", "XY-2", "XY-3"], start=3):
        for name, value in {**base, "agreement_no": no}.items():
            ws.cell(r, col[name], value)
    items = wb["协议物资"]
    for r, row in enumerate([("XY-1", "M1", 500, "顶"), ("XY-1", "M2", "20.5", "箱"), ("XY-2", "M1", 0, "顶"),
                             ("XY-9", "M1", 1, "顶")], start=3):
        for c, v in enumerate(row, start=1):
            items.cell(r, c, v)
    wb.save(tmp_path / "a.xlsx")
    result = import_workbook(tmp_path / "a.xlsx", context=CTX)
    (rec,) = result.records
    assert rec.data["agreement_no"] == "XY-1" and rec.data["agreement_type"] == "2"
    assert rec.data["items"] == [{"material_id": "M1", "quantity": 500, "unit": "顶"},
                                 {"material_id": "M2", "quantity": 20.5, "unit": "箱"}]
    got = sorted((e.sheet, e.row, e.rule) for e in result.errors)
    assert got == [
        ("协议信息", 4, "items.invalid"),  # XY-2: its only item is bad, the agreement is held back
        ("协议信息", 5, "required"),  # XY-3: no items at all
        ("协议物资", 5, "items.min"),
        ("协议物资", 6, "items.orphan"),
    ]
    invalid = next(e for e in result.errors if e.rule == "items.invalid")
    assert "第 5 行" in invalid.message


def test_plain_workbook_with_label_headers_only(tmp_path: Path) -> None:
    """A workbook not made from the template: one header row of labels, sheet named by label."""
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = STOCK_SHEET
    ws.append(["物资编码", "储备数量*", "计量单位", "核查日期", "颜色"])
    ws.append(["M1", 5, "箱", "2025-01-01", "红"])
    ws.append([None, None, None, None, None])
    ws.append(["M2", 6, "箱", "2025-01-02", None])
    ws.append(["M1", 7, "箱", "2025-01-03", None])  # same key (material, no depot, no batch) as row 2
    wb.create_sheet("Sheet2")  # empty: ignored
    wb.create_sheet("库存").append(["物资编码"])  # not a sheet of the template: reported, not silently skipped
    wb.save(tmp_path / "p.xlsx")
    result = import_workbook(tmp_path / "p.xlsx", context=CTX)
    assert [(r.row, r.data["material_id"]) for r in result.records] == [(2, "M1"), (4, "M2")]
    head, dup, sheet = result.errors
    assert (sheet.sheet, sheet.rule) == ("库存", "unknown_sheet")
    assert (head.row, head.rule, head.value) == (1, "unknown_column", "颜色")
    assert (dup.row, dup.field, dup.rule) == (5, "material_id", "duplicate_key")
    assert "第 2 行" in dup.message


def test_column_added_by_a_clerk_next_to_the_hidden_names_row(tmp_path: Path) -> None:
    """A labelled column without a field name under it is matched by its label, not dropped."""
    wb = openpyxl.load_workbook(write_template(tmp_path / "t.xlsx", ("stock",)))
    ws = wb[STOCK_SHEET]
    col = columns(ws)
    extra = ws.max_column + 1
    ws.cell(1, extra, "备注")
    for name, value in {"material_id": "M1", "quantity": 1, "unit": "箱", "checked_date": "2025-01-01"}.items():
        ws.cell(3, col[name], value)
    ws.cell(3, extra, "x")
    ws.cell(1, col["batch_no"]).value = "批次"  # an edited header is fine: row 2 decides
    ws.cell(3, col["batch_no"], "B7")
    wb.save(tmp_path / "f.xlsx")
    result = import_workbook(tmp_path / "f.xlsx", context=CTX)
    assert [r.data["batch_no"] for r in result.records] == ["B7"]
    (err,) = result.errors
    assert (err.row, err.rule, err.value) == (1, "unknown_column", "备注")


def test_files_that_are_not_workbooks_are_refused_with_a_clear_error(tmp_path: Path) -> None:
    import zipfile

    from gateway.errors import SourceError

    notzip = tmp_path / "x.xlsx"
    notzip.write_text("物资编码,数量\n", encoding="utf-8")
    with pytest.raises(SourceError, match="x.xlsx"):
        import_workbook(notzip)
    bomb = tmp_path / "bomb.xlsx"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("xl/worksheets/sheet1.xml", b"<a>" + b" " * (4 << 20) + b"</a>")
    with pytest.raises(SourceError, match="过大"):
        import_workbook(bomb)


def test_an_xls_file_tells_the_clerk_to_save_it_as_xlsx(tmp_path: Path) -> None:
    """An Excel 97-2003 file used to get "不是有效的 XLSX 文件：File is not a zip file"."""
    import xlwt

    from gateway.errors import SourceError

    book = xlwt.Workbook(encoding="utf-8")
    book.add_sheet("物资基础信息").write(0, 0, "物资编码")
    book.save(str(tmp_path / "填报.xls"))
    with pytest.raises(SourceError, match="另存为.*xlsx") as e:
        import_workbook(tmp_path / "填报.xls")
    assert "zip" not in str(e.value)

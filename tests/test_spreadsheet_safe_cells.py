"""Formula injection: exported text that a spreadsheet would evaluate is neutralised."""

from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

import openpyxl
import pytest

from gateway.safe_cells import append_row, csv_writer, neutralise, restore, write_only_row
from gateway.spreadsheet.export import export_csv, write_error_list_xlsx, write_error_workbook
from gateway.spreadsheet.importer import ImportResult, RowError, import_csv, import_workbook

PAYLOADS = ["=1+2", "+SUM(A1:A2)", "-2+3", "@SUM(A1)", "\t=cmd", "\r=cmd", "=HYPERLINK(\"http://x\",\"y\")",
            "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("value", PAYLOADS)
def test_neutralise_prefixes_an_apostrophe_and_restore_undoes_it(value: str) -> None:
    assert neutralise(value) == "'" + value
    assert restore(neutralise(value)) == value


@pytest.mark.parametrize("value", ["a=b", "帐篷", "", " =x", 5, -3.5, None, "'quoted", "-1", "-3.25"])
def test_harmless_values_pass_unchanged(value: object) -> None:
    assert neutralise(value) == value


def test_csv_writer_neutralises_every_cell() -> None:
    buf = io.StringIO()
    w = csv_writer(buf)
    w.writerow(PAYLOADS + [7, None])
    cells = next(csv.reader(io.StringIO(buf.getvalue())))
    assert cells[: len(PAYLOADS)] == ["'" + p for p in PAYLOADS]
    assert cells[-2:] == ["7", ""]


def test_exported_csv_is_safe_and_imports_back_unchanged(tmp_path: Path) -> None:
    recs = [{"material_id": "=1+2", "material_name": "@SUM(A1)", "category_code": "1010100", "unit": "个",
             "reserve_mode": "1", "spec_model": "-40℃", "usage_desc": "+86 热线"}]
    p = tmp_path / "m.csv"
    export_csv(recs, "material", p)
    row = list(csv.reader(p.read_text(encoding="utf-8-sig").splitlines()))[1]
    assert row[0] == "'=1+2" and row[1] == "'@SUM(A1)" and row[3] == "'-40℃"
    assert not any(c.startswith(("=", "+", "-", "@")) for c in row)
    (rec,) = import_csv(p, "material").records
    assert rec.data == recs[0]


def _formulas_in(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return [n for n in z.namelist() if n.startswith("xl/worksheets/") and b"<f>" in z.read(n)]


def test_xlsx_cells_are_strings_never_formulas(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    append_row(wb.active, PAYLOADS)
    wb.save(tmp_path / "a.xlsx")
    wo = openpyxl.Workbook(write_only=True)
    write_only_row(wo.create_sheet("s"), PAYLOADS)
    wo.save(tmp_path / "b.xlsx")
    for name in ("a.xlsx", "b.xlsx"):
        assert _formulas_in(tmp_path / name) == []
        ws = openpyxl.load_workbook(tmp_path / name).worksheets[0]
        cells = next(ws.iter_rows())
        assert [c.value for c in cells] == ["'" + p for p in PAYLOADS]
        assert {c.data_type for c in cells} == {"s"}


def test_error_reports_neutralise_values_from_the_source(tmp_path: Path) -> None:
    src = tmp_path / "src.xlsx"
    wb = openpyxl.Workbook()
    wb.active.title = "应急物资管理信息"
    wb.active.append(["物资编码", "储备数量", "计量单位", "核查日期"])
    wb.active.append(["M1", None, "箱", "2025-01-01"])
    wb.active["B2"].value = "=cmd|' /C calc'!A0"
    wb.active["B2"].data_type = "s"  # typed as text in Excel ('=...), not a formula
    wb.save(src)
    result = import_workbook(src)
    (err,) = result.errors
    assert err.rule == "type.decimal"
    write_error_workbook(src, result, tmp_path / "report.xlsx")
    assert _formulas_in(tmp_path / "report.xlsx") == []
    forged = ImportResult("x", errors=[RowError("s", 2, "f", "标签", "=1+2", "r", "=HYPERLINK(\"x\")")])
    write_error_list_xlsx(forged, tmp_path / "list.xlsx")
    assert _formulas_in(tmp_path / "list.xlsx") == []
    ws = openpyxl.load_workbook(tmp_path / "list.xlsx").active
    assert ws["E2"].value == "'=1+2" and ws["G2"].value == "'=HYPERLINK(\"x\")"

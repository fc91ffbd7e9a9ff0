"""CLI: `gateway standard schema|fields`, `gateway template`, `gateway import` (no --config needed)."""

from __future__ import annotations

import json
from pathlib import Path

import openpyxl
from click.testing import CliRunner

from gateway.cli import cli
from gateway.standard.schema import RECORD_TYPES


def run(*args: str) -> object:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_schema_to_stdout_and_file(tmp_path: Path) -> None:
    r = run("standard", "schema")
    assert r.exit_code == 0
    assert set(json.loads(r.stdout)["$defs"]) == set(RECORD_TYPES)
    out = tmp_path / "stock.json"
    r = run("standard", "schema", "--type", "stock", "--out", str(out))
    assert r.exit_code == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert doc["title"] == "应急物资管理信息" and "checked_date" in doc["required"]
    assert run("standard", "schema", "--type", "vehicle").exit_code == 2


def _filled_template(tmp_path: Path) -> Path:
    tpl = tmp_path / "t.xlsx"
    r = run("template", "--out", str(tpl))
    assert r.exit_code == 0 and tpl.exists()
    wb = openpyxl.load_workbook(tpl)
    ws = wb["应急物资管理信息"]
    col = {c.value: c.column for c in ws[2] if c.value}
    rows = [("M1", 10, "箱", "2025-01-01"), ("M2", -1, "箱", "2025-01-01"), ("M3", 3, "箱", "2025-02-30")]
    for r_no, (mid, qty, unit, checked) in enumerate(rows, start=3):
        ws.cell(r_no, col["material_id"], mid)
        ws.cell(r_no, col["quantity"], qty)
        ws.cell(r_no, col["unit"], unit)
        ws.cell(r_no, col["checked_date"], checked)
    filled = tmp_path / "filled.xlsx"
    wb.save(filled)
    return filled


def test_import_workbook_prints_summary_and_writes_reports(tmp_path: Path) -> None:
    filled = _filled_template(tmp_path)
    report = tmp_path / "report.xlsx"
    r = run("import", str(filled), "--errors-out", str(report))
    assert r.exit_code == 1
    assert "应急物资管理信息 (stock): 1 条记录" in r.output
    assert "应急物资管理信息 第 4 行 储备数量 [min]" in r.output
    assert "应急物资管理信息 第 5 行 核查日期 [date.invalid]" in r.output
    ws = openpyxl.load_workbook(report)["应急物资管理信息"]
    err_col = next(c.column for c in ws[1] if c.value == "错误说明")
    assert [bool(ws.cell(r, err_col).value) for r in (3, 4, 5)] == [False, True, True]

    r = run("import", str(filled), "--json", "--errors-out", str(tmp_path / "report.csv"))
    summary = json.loads(r.stdout)
    assert summary["records"] == {"stock": 1} and summary["error_count"] == 2
    assert {(e["row"], e["label"], e["rule"]) for e in summary["errors"]} == {(4, "储备数量", "min"), (5, "核查日期", "date.invalid")}
    assert (tmp_path / "report.csv").read_text(encoding="utf-8-sig").count("\n") == 3


def test_import_csv_needs_type_and_works_without_config(tmp_path: Path) -> None:
    p = tmp_path / "stock.csv"
    p.write_text("物资编码,储备数量,计量单位,核查日期\nM1,1,箱,2025-01-01\n", encoding="utf-8")
    r = CliRunner().invoke(cli, ["import", str(p)])
    assert r.exit_code == 2 and "--type" in r.output
    r = run("import", str(p), "--type", "stock")
    assert r.exit_code == 0 and "(stock): 1 条记录" in r.output and "错误 0 条" in r.output


def test_fields_table_command() -> None:
    r = run("standard", "fields")
    assert r.exit_code == 0
    for rt in RECORD_TYPES.values():
        assert rt.label in r.output


def test_import_enqueue_queues_valid_records_once(tmp_path: Path, monkeypatch) -> None:
    import sqlalchemy as sa

    from gateway.store import open_store, tables

    monkeypatch.setenv("GATEWAY_WEB_SECRET", "s")
    monkeypatch.setenv("GATEWAY_API_TOKEN", "t")
    assert run("init", str(tmp_path / "gw")).exit_code == 0
    cfg = str(tmp_path / "gw" / "gateway.toml")
    filled = _filled_template(tmp_path)
    assert CliRunner().invoke(cli, ["import", str(filled), "--enqueue"]).exit_code == 2  # needs --config
    r = run("-c", cfg, "import", str(filled), "--enqueue", "--operator", "张三")
    assert r.exit_code == 1 and "已入队：应急物资管理信息 新增 1" in r.output
    r = run("-c", cfg, "import", str(filled), "--enqueue", "--json")
    assert json.loads(r.stdout)["enqueued"] == {"stock": {"new": 0, "changed": 0, "unchanged": 1}}
    engine = open_store(tmp_path / "gw" / "state" / "gateway.db")
    with engine.connect() as c:
        rows = c.execute(sa.select(tables.outbox)).all()
    engine.dispose()
    assert len(rows) == 1
    assert rows[0].source == "spreadsheet" and json.loads(rows[0].provenance)["operator"] == "张三"


def test_import_csv_with_xlsx_error_report_and_encoding_option(tmp_path: Path) -> None:
    p = tmp_path / "stock.csv"
    p.write_bytes("物资编码,储备数量,计量单位,核查日期\r\nM1,1,箱,2025-01-01\r\nM2,-1,箱,2025-01-01\r\n".encode("gbk"))
    report = tmp_path / "errors.xlsx"
    r = run("import", str(p), "--type", "stock", "--encoding", "gbk", "--errors-out", str(report))
    assert r.exit_code == 1 and "stock.csv 第 3 行 储备数量 [min]" in r.output
    ws = openpyxl.load_workbook(report).active
    assert ws.title == "错误说明"
    assert [c.value for c in ws[2]][:6] == ["stock.csv", 3, "储备数量", "quantity", "-1", "min"]
    r = CliRunner().invoke(cli, ["import", str(p), "--type", "stock", "--encoding", "nope"])
    assert r.exit_code == 2 and "未知的文件编码" in r.output

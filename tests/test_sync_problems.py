"""current_problems upkeep by the sync pipeline: a refused row stays until read valid or gone (issue 16)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from gateway.store import open_store
from gateway.sync import problems as cp
from gateway.sync import sync_one, sync_source
from tests.test_files_sync import MAPPING, drop, source, utf8_export
from tests.test_sync_pipeline import write_config


def _listed(engine: sa.Engine) -> list[tuple[str, str | None, str | None, str]]:
    return [(r["locator"], r["record_key"], r["field"], r["rule"]) for r in cp.current(engine)]


def test_unreadable_line_stays_until_the_corrected_file_is_read(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    cfg = write_config(tmp_path, [source(folder, "append", error_dir=str(tmp_path / "bad"))], MAPPING)
    engine = open_store(cfg.state_path)
    bad = utf8_export("折叠".encode() + b"\xff" + "床".encode())
    drop(folder, "库存.csv", bad)
    sync_source(cfg, "files", engine)
    assert _listed(engine) == [("库存.csv:line 4 key=A3", None, "物资名称", "csv.undecodable")]
    sync_source(cfg, "files", engine)  # a poll with nothing new: still listed
    drop(folder, "库存.csv", bad)
    sync_source(cfg, "files", engine)  # the same bad file again: listed once
    assert len(_listed(engine)) == 1
    drop(folder, "库存.csv", utf8_export("折叠床".encode() + b" "))
    sync_source(cfg, "files", engine)
    assert _listed(engine) == []


def _csv(rows: list[tuple[str, str, str]]) -> bytes:
    body = "".join(f"{code},{name},{cat},顶\r\n" for code, name, cat in rows)
    return ("物资编码,物资名称,分类代码,单位\r\n" + body).encode()


def test_snapshot_clears_rows_no_longer_in_the_source(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    cfg = write_config(tmp_path, [source(folder, "snapshot")], MAPPING)
    engine = open_store(cfg.state_path)
    drop(folder, "a.csv", _csv([("A1", "帐篷", "1010100"), ("A2", "棉被", "99")]))
    sync_source(cfg, "files", engine)
    [(locator, key, field, rule)] = _listed(engine)
    assert (key, field) == ("A2", "category_code") and locator.startswith("a.csv")
    [row] = cp.current(engine)
    assert (
        row["label"] == "物资分类代码"
        and row["value"] == "99"
        and '"material_name": "棉被"' in row["mapped"].replace('":"', '": "')
    )
    drop(folder, "b.csv", _csv([("A1", "帐篷", "1010100")]))  # the next full set: A2 is gone
    sync_source(cfg, "files", engine)
    assert _listed(engine) == []


def test_per_record_reread_records_and_clears(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "dept.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE wz (物资编码 TEXT PRIMARY KEY, 物资名称 TEXT, 分类代码 TEXT, 单位 TEXT)")
    con.executemany("INSERT INTO wz VALUES (?,?,?,?)", [("A1", "帐篷", "1010100", "顶"), ("A2", "棉被", "99", "床")])
    con.commit()
    src = {
        "name": "db",
        "type": "sql",
        "record_type": "material",
        "mapping": "stock.toml",
        "strategy": "fingerprint",
        "settings": {"url": f"sqlite:///{db}", "table": "wz", "key_columns": ["物资编码"]},
    }
    cfg = write_config(tmp_path, [src], MAPPING)
    engine = open_store(cfg.state_path)
    sync_source(cfg, "db", engine)
    assert [k for _, k, _, _ in _listed(engine)] == ["A2"]
    con.execute("UPDATE wz SET 分类代码 = '1010100' WHERE 物资编码 = 'A2'")
    con.commit()
    assert sync_one(cfg, "db", "A2", engine).op == "upsert"
    assert _listed(engine) == []
    con.execute("UPDATE wz SET 单位 = '' WHERE 物资编码 = 'A1'")
    con.commit()
    assert sync_one(cfg, "db", "A1", engine).op is None
    assert [(k, f) for _, k, f, _ in _listed(engine)] == [("A1", "unit")]
    con.execute("DELETE FROM wz WHERE 物资编码 = 'A1'")
    con.commit()
    sync_one(cfg, "db", "A1", engine)  # gone at the source: its problems go too
    assert _listed(engine) == []
    con.close()


def test_cli_import_lists_refused_rows_until_the_file_is_imported_fixed(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import openpyxl

    from tests.test_standard_cli import _filled_template, run

    monkeypatch.setenv("GATEWAY_WEB_SECRET", "s")
    monkeypatch.setenv("GATEWAY_API_TOKEN", "t")
    assert run("init", str(tmp_path / "gw")).exit_code == 0
    cfg = str(tmp_path / "gw" / "gateway.toml")
    filled = _filled_template(tmp_path)
    assert run("-c", cfg, "import", str(filled), "--enqueue").exit_code == 1
    engine = open_store(tmp_path / "gw" / "state" / "gateway.db")
    listed = {(r["record_key"], r["label"]) for r in cp.current(engine)}
    assert listed == {("M2||", "储备数量"), ("M3||", "核查日期")}, listed
    assert all(r["locator"].startswith(f"{filled.name} · 应急物资管理信息 第 ") for r in cp.current(engine))
    wb = openpyxl.load_workbook(filled)  # the clerk corrects both rows and imports the same file again
    ws = wb["应急物资管理信息"]
    col = {c.value: c.column for c in ws[2] if c.value}
    ws.cell(4, col["quantity"], 1)
    ws.cell(5, col["checked_date"], "2025-02-28")
    wb.save(filled)
    assert run("-c", cfg, "import", str(filled), "--enqueue").exit_code == 0
    assert cp.current(engine) == []
    engine.dispose()


def test_cursor_source_with_reconcile_clears_a_refused_row_deleted_at_the_source(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "dept.db"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE wz (物资编码 TEXT PRIMARY KEY, 物资名称 TEXT, 分类代码 TEXT, 单位 TEXT, gxsj TEXT)")
    con.executemany("INSERT INTO wz VALUES (?,?,?,?,?)", [
        ("A1", "帐篷", "1010100", "顶", "2026-01-01 08:00:00"), ("A2", "棉被", "99", "床", "2026-01-01 08:00:00"),
        ("A3", "雨衣", "98", "件", "2026-01-01 08:00:00"),
    ])
    con.commit()
    src = {
        "name": "db", "type": "sql", "record_type": "material", "mapping": "stock.toml", "strategy": "cursor",
        "reconcile_deletes": True,
        "settings": {"url": f"sqlite:///{db}", "table": "wz", "key_columns": ["物资编码"], "cursor_column": "gxsj"},
    }
    cfg = write_config(tmp_path, [src], MAPPING)
    engine = open_store(cfg.state_path)
    sync_source(cfg, "db", engine)
    assert sorted(k for _, k, _, _ in _listed(engine)) == ["A2", "A3"]
    con.execute("DELETE FROM wz WHERE 物资编码 = 'A2'")  # the refused row is deleted at the source
    con.commit()
    sync_source(cfg, "db", engine)
    assert [k for _, k, _, _ in _listed(engine)] == ["A3"]  # A3 still there, still refused
    con.close()

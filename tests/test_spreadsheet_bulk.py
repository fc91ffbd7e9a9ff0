"""The bulk import (chunks validated as Arrow batches, queued chunk by chunk) stores what the row import stores.

Generated, seeded workbooks and CSV files of every record type, thousands of rows, every rule a sheet
can carry broken at least once, some rows valid, duplicates, blank rows, unknown columns and sheets,
bad and orphan agreement items. Each file is imported twice into fresh SQLite stores: by the reference
path (`check_by_row`, then `enqueue_records` per type as the web import did) and by the bulk path
(`check_by_batch` streamed into `enqueue_import`). Both must give the same outbox rows, fingerprints,
error report rows and counts; a second import of the same file queues nothing in either.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from sqlalchemy import Engine, select

from gateway.spreadsheet.enqueue import enqueue_import
from gateway.spreadsheet.importer import (
    PROGRESS_EVERY,
    ImportResult,
    check_by_row,
    import_csv,
    import_workbook,
    iter_csv,
    iter_workbook,
)
from gateway.standard.schema import RECORD_TYPES, record_key
from gateway.store import open_store
from gateway.store.tables import fingerprints, outbox
from gateway.sync import enqueue_records
from gateway.workbook.layout import ITEMS_SHEET, header, sheet_fields
from tests.test_standard_vectorised import CTX, corpus

OPERATOR = "张三"
# Rules a sheet cannot carry: a column outside the standard is a header error, attachments go by the form.
NOT_IN_SHEETS = {"unknown_field", "file_ref.format", "file_ref.type", "type.items", "items.unknown_field"}
SHEET_RULES = {"duplicate_key", "unknown_column"}


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 700 rows, so every sheet here spans several chunks (the web test keeps the default)."""
    import gateway.spreadsheet.enqueue
    import gateway.workbook.read

    monkeypatch.setattr(gateway.workbook.read, "CHUNK_ROWS", 700)
    monkeypatch.setattr(gateway.spreadsheet.enqueue, "CHUNK_ROWS", 700)


def _cell(v: Any) -> Any:
    """A value as a clerk's cell can hold it (what the corpus has beyond that, spelled as text)."""
    if isinstance(v, (int, float, Decimal)) and not isinstance(v, bool) and math.isfinite(v) and abs(v) >= 2**62:
        # Kept out: the row validator takes an integer field beyond 64 bits (shelf_life_months = 1e21), which
        # the outbox's canonical JSON cannot encode, on both paths alike (gateway.standard's to fix).
        return "过大"
    if v is None or isinstance(v, (bool, int, date, datetime)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, Decimal):
        return float(v) if v.is_finite() else str(v)
    if isinstance(v, str):
        return ILLEGAL_CHARACTERS_RE.sub("", v)
    return str(v)


def _text(v: Any) -> str:
    v = _cell(v)
    return "" if v is None else v.isoformat() if isinstance(v, (date, datetime)) else str(v)


def _items_text(v: Any) -> Any:
    if isinstance(v, list) and all(isinstance(i, dict) for i in v):
        return ";".join(f"{i.get('material_id')}:{i.get('quantity')}:{i.get('unit')}" for i in v)
    return v


def _rows(seed: int, per_type: int) -> dict[str, list[dict[str, Any]]]:
    """The corpus with duplicates of earlier rows and blank rows mixed in."""
    rng = random.Random(seed)
    out = {}
    for t, records in corpus(seed, per_type).items():
        rows: list[dict[str, Any]] = []
        for r in records:
            rows.append(r)
            if rng.random() < 0.02:
                rows.append(dict(rng.choice(rows)))  # the same record again: duplicate_key when valid
            if rng.random() < 0.01:
                rows.append({})  # a blank row is skipped
        out[t] = rows
    return out


def write_workbook(path: Path, seed: int, per_type: int) -> Path:
    rng = random.Random(seed)
    wb = Workbook(write_only=True)
    item_rows: list[list[Any]] = []
    for t, rows in _rows(seed, per_type).items():
        rt = RECORD_TYPES[t]
        fields = sheet_fields(rt)
        ws = wb.create_sheet(rt.label)
        extra = ["备注"] if t == "material" else []  # a column outside the standard: reported, not imported
        ws.append([header(f) for f in fields] + extra)
        ws.append([f.name for f in fields] + ["" for _ in extra])
        for r in rows:
            ws.append([_cell(r.get(f.name)) for f in fields] + ["随便写" for _ in extra])
            if t == "agreement" and r:
                no = _cell(r.get("agreement_no"))
                items = r.get("items")
                for i in items if isinstance(items, list) else [{"material_id": items, "quantity": 1, "unit": "箱"}]:
                    i = i if isinstance(i, dict) else {"material_id": i}
                    quantity = 0 if rng.random() < 0.03 else i.get("quantity")  # a bad item refuses its agreement
                    item_rows.append([no, _cell(i.get("material_id")), _cell(quantity), _cell(i.get("unit"))])
    item_rows += [[f"无此协议{i}", "WZ-1", 1, "箱"] for i in range(3)]  # orphans
    items = wb.create_sheet(ITEMS_SHEET)
    items.append(["协议编号*", "物资编码*", "数量*", "计量单位*"])
    items.append(["agreement_no", "material_id", "quantity", "unit"])
    for row in item_rows:
        items.append(row)
    wb.create_sheet("草稿").append(["随手记的一行"])  # not a sheet of the template
    wb.save(path)
    return path


def write_csv(path: Path, record_type: str, seed: int, per_type: int) -> Path:
    rows = _rows(seed, per_type)[record_type]
    rt = RECORD_TYPES[record_type]
    fields = [f for f in rt.fields if f.kind != "file_ref"]
    with open(path, "w", encoding="utf-8-sig", newline="") as f:
        w = csv.writer(f)
        w.writerow([f.label for f in fields] + ["备注"])
        for r in rows:
            w.writerow([_text(_items_text(r.get(f.name)) if f.kind == "items" else r.get(f.name)) for f in fields] + [""])
    return path


def _stored(engine: Engine) -> tuple[list[tuple], list[tuple]]:
    with engine.connect() as conn:
        ob = conn.execute(select(outbox.c.source, outbox.c.record_type, outbox.c.record_key, outbox.c.op, outbox.c.seq,
                                 outbox.c.version, outbox.c.data, outbox.c.provenance, outbox.c.state)
                          .order_by(outbox.c.id)).all()
        fp = conn.execute(select(fingerprints.c.record_type, fingerprints.c.record_key, fingerprints.c.source_key,
                                 fingerprints.c.version, fingerprints.c.seq, fingerprints.c.deleted)
                          .order_by(fingerprints.c.record_type, fingerprints.c.record_key)).all()
    return [tuple(r) for r in ob], [tuple(r) for r in fp]


def _row_import(engine: Engine, result: ImportResult) -> dict[str, dict[str, int]]:
    """The reference: every record read first, then queued per type (as the web import did)."""
    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for r in result.records:
        by_type.setdefault(r.record_type, []).append((record_key(r.record_type, r.data), r.data))
    out = {}
    for t, pairs in by_type.items():
        s = enqueue_records(engine, "spreadsheet", t, pairs, OPERATOR)
        out[t] = {"new": s.new, "changed": s.changed, "unchanged": s.unchanged}
    return out


def _same_stored_result(tmp_path: Path, src: Path, read_rows: Any, read_bulk: Any) -> tuple[ImportResult, set[str]]:
    row_engine, bulk_engine = open_store(tmp_path / "row.db"), open_store(tmp_path / "bulk.db")
    try:
        expected = read_rows()
        expected_counts = _row_import(row_engine, expected)
        got = ImportResult(str(src))
        calls: list[int] = []
        queued = enqueue_import(bulk_engine, got, read_bulk(got), OPERATOR, progress=calls.append)

        assert [repr(r) for r in got.records] == [repr(r) for r in expected.records]
        assert [e.report_row() for e in got.errors] == [e.report_row() for e in expected.errors]
        assert [e.data for e in got.errors] == [e.data for e in expected.errors]  # what the record form prefills
        assert got.counts() == expected.counts() and queued.counts == expected_counts
        assert calls == list(range(PROGRESS_EVERY, len(got.records) + len(got.errors) + 1, PROGRESS_EVERY))
        ob, fp = _stored(bulk_engine)
        assert (ob, fp) == _stored(row_engine)
        assert len(ob) == len(got.records) == sum(c["new"] for c in queued.counts.values())
        assert all(op == "upsert" and state == "pending" for *_, op, _, _, _, _, state in ob)

        # Importing the same file again queues nothing: the fingerprints say every record is unchanged.
        again = enqueue_import(bulk_engine, ImportResult(str(src)), read_bulk(ImportResult(str(src))), OPERATOR)
        assert again.outbox_ids == [] and sum(c["unchanged"] for c in again.counts.values()) == len(got.records)
        assert _stored(bulk_engine)[0] == ob
    finally:
        row_engine.dispose()
        bulk_engine.dispose()
    return got, {e.rule for e in got.errors}


@pytest.mark.parametrize("seed", [3])
def test_bulk_workbook_import_stores_what_the_row_import_stores(tmp_path: Path, seed: int) -> None:
    book = write_workbook(tmp_path / "填报.xlsx", seed, 1200)
    got, rules = _same_stored_result(
        tmp_path, book,
        lambda: import_workbook(book, context=CTX, checks=check_by_row),
        lambda result: iter_workbook(book, context=CTX),
    )
    counts = got.counts()
    assert set(counts) == set(RECORD_TYPES) and all(n >= 100 for n in counts.values()), counts
    assert len(got.errors) > 2000
    every = {"items.invalid", "items.orphan", "unknown_sheet", *SHEET_RULES}
    assert every <= rules, every - rules
    assert {"required", "max_len", "unit", "min", "max", "type.int", "type.decimal", "date.format", "date.invalid",
            "not_future", "date.order", "enum", "category.structure", "division.format", "division.province",
            "uscc.length", "uscc.charset", "uscc.division", "uscc.check", "phone.format",
            "coords_need_system"} <= rules


@pytest.mark.parametrize("record_type", list(RECORD_TYPES))
def test_bulk_csv_import_stores_what_the_row_import_stores(tmp_path: Path, record_type: str) -> None:
    src = write_csv(tmp_path / f"{record_type}.csv", record_type, 11, 2500)
    got, rules = _same_stored_result(
        tmp_path, src,
        lambda: import_csv(src, record_type, context=CTX, checks=check_by_row),
        lambda result: iter_csv(src, record_type, context=CTX, result=result),
    )
    assert got.encoding == "utf-8-sig"
    assert len(got.records) >= 300 and len(got.errors) >= 500
    assert {"required", "unknown_column", "duplicate_key"} <= rules
    if record_type == "agreement":
        assert {"items.format", "items.required", "items.min", "items.unit", "items.max_len",
                "items.type.decimal", "date.order"} <= rules


def test_web_import_queues_by_chunk_and_reports_progress(gw_site, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A clerk uploads a CSV of thousands of rows: the job counts rows as it goes, the result page gives the
    counts, the outbox holds exactly the row import's records; an unreadable file is refused, not a crash."""
    import io
    import time

    import gateway.spreadsheet.enqueue
    import gateway.workbook.read
    from tests.fixtures.web import client_as, csrf_of, job_outcome

    monkeypatch.undo()  # the default chunk size: 6,000 rows are two chunks of it
    assert gateway.workbook.read.CHUNK_ROWS == gateway.spreadsheet.enqueue.CHUNK_ROWS == 5000
    src = write_csv(tmp_path / "material.csv", "material", 5, 6000)
    from gateway.standard.validate import ValidationContext

    site_ctx = ValidationContext.from_config(gw_site.extensions["gateway"].config)  # what the web import judges by
    expected = import_csv(src, "material", context=site_ctx, checks=check_by_row)
    c = client_as(gw_site, "clerk")
    started = c.post("/spreadsheet/import", data={"file": (io.BytesIO(src.read_bytes()), "物资.csv"),
                                                  "record_type": "material", "csrf_token": csrf_of(c, "/spreadsheet/")},
                     content_type="multipart/form-data")
    seen: list[int] = []
    job_api = started.headers["Location"].rstrip("/") + "/api"
    while (job := c.get(job_api).get_json())["state"] == "running":
        seen.append(job["done"])
        time.sleep(0.02)
    assert job["state"] == "done", job
    assert seen == sorted(seen) and all(n <= job["total"] for n in seen)
    assert f"有效记录 {len(expected.records)} 条，已入推送队列 {len(expected.records)} 条，错误 {len(expected.errors)} 条" \
        in job["message"]
    engine = gw_site.extensions["gateway"].engine
    with engine.connect() as conn:
        keys = [r.record_key for r in conn.execute(select(outbox.c.record_key).order_by(outbox.c.id))]
    assert keys == [record_key("material", r.data) for r in expected.records]

    bad = c.post("/spreadsheet/import", data={"file": (io.BytesIO(b"PK\x03\x04 not a workbook"), "坏.xlsx"),
                                              "csrf_token": csrf_of(c, "/spreadsheet/")},
                 content_type="multipart/form-data")
    assert "无法读取文件" in job_outcome(c, bad)

"""Import a generated standard workbook and CSV of stock rows: `python bench/bench_import.py [ROWS] [--enqueue]`.

Prints CPU µs per row for: reading the sheet alone (openpyxl read-only, values_only: the floor of any
XLSX import here), the workbook import, the CSV import, and with --enqueue the import queued into a
fresh SQLite store. Runs against whichever `gateway` is on the path, so an exported old tree
(`PYTHONPATH=/tmp/old python bench/bench_import.py`) gives the before figures in the same invocation.
Default 20,000 rows; one row in ten is refused (bad quantity or date).
"""

from __future__ import annotations

import csv
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook

from gateway.spreadsheet import import_csv, import_workbook
from gateway.standard.schema import RECORD_TYPES
from gateway.workbook.layout import header, sheet_fields


def _row(i: int) -> dict[str, Any]:
    bad = i % 10 == 9
    return {"material_id": f"M{i:06d}", "depot_id": "D01", "quantity": -1 if bad and i % 20 == 9 else i % 500,
            "unit": "箱", "condition": "1 完好", "checked_date": "2025-13-01" if bad and i % 20 == 19 else "2025-01-01"}


def write_inputs(d: Path, n: int) -> tuple[Path, Path]:
    rt = RECORD_TYPES["stock"]
    fields = sheet_fields(rt)
    wb = Workbook(write_only=True)
    ws = wb.create_sheet(rt.label)
    ws.append([header(f) for f in fields])
    ws.append([f.name for f in fields])
    with open(d / "stock.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow([x.label for x in fields])
        for i in range(n):
            r = _row(i)
            values = [r.get(x.name) for x in fields]
            ws.append(values)
            w.writerow(["" if v is None else v for v in values])
    wb.save(d / "stock.xlsx")
    return d / "stock.xlsx", d / "stock.csv"


def _cpu(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.process_time()
    out = fn()
    return time.process_time() - t, out


def _read_only(path: Path) -> int:
    wb = load_workbook(path, read_only=True, data_only=True)
    try:
        return sum(1 for ws in wb.worksheets for _ in ws.iter_rows(values_only=True))
    finally:
        wb.close()


def _enqueued(d: Path, read: Callable[[], Any]) -> Any:
    from gateway.standard.schema import record_key
    from gateway.store import open_store
    from gateway.sync import enqueue_records

    engine = open_store(d / f"gw{time.monotonic_ns()}.db")
    try:
        try:
            from gateway.spreadsheet.enqueue import enqueue_import
            from gateway.spreadsheet.importer import ImportResult, iter_workbook
        except ImportError:  # a tree before the bulk import: read it all, then queue it (as the web import did)
            result = read()
            pairs = [(record_key("stock", r.data), r.data) for r in result.records]
            return enqueue_records(engine, "spreadsheet", "stock", pairs, "bench").new
        result = ImportResult("bench")
        return sum(c["new"] for c in enqueue_import(engine, result, iter_workbook(d / "stock.xlsx"), "bench").counts.values())
    finally:
        engine.dispose()


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(args[0]) if args else 20_000
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        book, text = write_inputs(d, n)
        import gateway

        print(f"{n} stock rows, gateway from {Path(gateway.__file__).parent.parent}")
        dt, rows = _cpu(lambda: _read_only(book))
        print(f"  openpyxl read-only values_only, rows only: {dt * 1e6 / n:7.1f} µs/row ({rows} rows)")
        dt, result = _cpu(lambda: import_workbook(book))
        print(f"  import_workbook:                           {dt * 1e6 / n:7.1f} µs/row "
              f"({len(result.records)} records, {len(result.errors)} errors)")
        dt, result = _cpu(lambda: import_csv(text, "stock"))
        print(f"  import_csv:                                {dt * 1e6 / n:7.1f} µs/row "
              f"({len(result.records)} records, {len(result.errors)} errors)")
        if "--enqueue" in sys.argv:
            dt, new = _cpu(lambda: _enqueued(d, lambda: import_workbook(book)))
            print(f"  import_workbook + enqueue:                 {dt * 1e6 / n:7.1f} µs/row ({new} queued)")


if __name__ == "__main__":
    main()

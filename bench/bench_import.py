"""Import a generated standard workbook and CSV of stock rows: `python bench/bench_import.py [ROWS] [--enqueue]`.

Prints CPU µs per row for: reading the sheet alone (openpyxl read-only, values_only: the floor of any
XLSX import here), the workbook import, the CSV import, and with --enqueue the import queued into a
fresh SQLite store. Runs against whichever `gateway` is on the path, so an exported old tree
(`PYTHONPATH=/tmp/old python bench/bench_import.py`) gives the before figures in the same invocation.
Default 20,000 rows; one row in ten is refused (bad quantity or date).
"""

from __future__ import annotations

import csv
import re
import sys
import tempfile
import time
import zipfile
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


_INLINE = re.compile(rb'<c r="([A-Z]+[0-9]+)"( s="[0-9]+")? t="inlineStr"><is><t>([^<]*)</t></is></c>')


def shared_strings(book: Path, out: Path) -> Path:
    """The workbook with its text in a shared-string table, as Excel and WPS save it (openpyxl writes
    inline strings, which its reader parses far more slowly)."""
    table: dict[bytes, int] = {}

    def cell(m: re.Match[bytes]) -> bytes:
        i = table.setdefault(m.group(3), len(table))
        return b'<c r="%s"%s t="s"><v>%d</v></c>' % (m.group(1), m.group(2) or b"", i)

    with zipfile.ZipFile(book) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            data = zin.read(info)
            if info.filename.startswith("xl/worksheets/"):
                data = _INLINE.sub(cell, data)
            elif info.filename == "[Content_Types].xml":
                data = data.replace(b"</Types>", b'<Override PartName="/xl/sharedStrings.xml" ContentType='
                                    b'"application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/></Types>')
            elif info.filename == "xl/_rels/workbook.xml.rels":
                data = data.replace(b"</Relationships>", b'<Relationship Type="http://schemas.openxmlformats.org/'
                                    b'officeDocument/2006/relationships/sharedStrings" Target="sharedStrings.xml" '
                                    b'Id="rIdShared"/></Relationships>')
            zout.writestr(info, data)
        sst = b"".join(b"<si><t>%s</t></si>" % t for t in table)
        zout.writestr("xl/sharedStrings.xml", b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
                      b'count="%d" uniqueCount="%d">%s</sst>' % (len(table), len(table), sst))
    return out


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
        shared = shared_strings(book, d / "shared.xlsx")
        dt, rows = _cpu(lambda: _read_only(shared))
        print(f"  same, shared strings (as Excel saves it):  {dt * 1e6 / n:7.1f} µs/row ({rows} rows)")
        dt, result = _cpu(lambda: import_workbook(shared))
        print(f"  import_workbook, shared strings:           {dt * 1e6 / n:7.1f} µs/row "
              f"({len(result.records)} records, {len(result.errors)} errors)")
        dt, result = _cpu(lambda: import_csv(text, "stock"))
        print(f"  import_csv:                                {dt * 1e6 / n:7.1f} µs/row "
              f"({len(result.records)} records, {len(result.errors)} errors)")
        if "--enqueue" in sys.argv:
            dt, new = _cpu(lambda: _enqueued(d, lambda: import_workbook(book)))
            print(f"  import_workbook + enqueue:                 {dt * 1e6 / n:7.1f} µs/row ({new} queued)")


if __name__ == "__main__":
    main()

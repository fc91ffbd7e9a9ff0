"""Import a generated standard workbook: `python bench/bench_import.py [ROWS]` (default 20,000 stock rows)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import openpyxl

from gateway.spreadsheet import import_workbook, write_template


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    with tempfile.TemporaryDirectory() as d:
        wb = openpyxl.load_workbook(write_template(Path(d) / "t.xlsx", ("stock",)))
        ws = wb["应急物资管理信息"]
        col = {c.value: c.column for c in ws[2] if c.value}
        for i in range(n):
            r = 3 + i
            ws.cell(r, col["material_id"], f"M{i:06d}")
            ws.cell(r, col["depot_id"], "D01")
            ws.cell(r, col["quantity"], i % 500)
            ws.cell(r, col["unit"], "箱")
            ws.cell(r, col["condition"], "1 完好")
            ws.cell(r, col["checked_date"], "2025-01-01")
        path = Path(d) / "filled.xlsx"
        wb.save(path)
        t, cpu = time.perf_counter(), time.process_time()
        result = import_workbook(path)
        dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
        print(f"{n} rows: {result.counts()} {len(result.errors)} errors in {dcpu:.2f} s CPU ({n / dcpu:,.0f} rows/s), {dt:.2f} s wall")


if __name__ == "__main__":
    main()

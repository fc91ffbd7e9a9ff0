"""Throughput of the file-drop path: rows per CPU-second through the folder/xml adapters.

    .venv/bin/python bench/bench_files.py [--rows 200000]

Writes one CSV (GB18030), one XLSX and one XML export of N rows into a temp
folder, then times a full adapter read of each (spool copy + sha256 + parse +
key), printing wall and CPU time (CPU is the fairer figure on a shared machine) and the peak RSS growth (Linux). Informational, not a test.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path
from xml.sax.saxutils import escape

import openpyxl

from gateway.adapters.base import SourceRow
from gateway.adapters.files.adapters import FolderAdapter, XmlAdapter


def rows(n: int) -> list[list[str]]:
    return [[f"W{i:07d}", f"帐篷{i}号(𠀀),加厚", str(i % 997), f"2024-{i % 12 + 1:02d}-01"] for i in range(n)]


def write_all(folder: Path, n: int) -> None:
    header = ["物资编码", "物资名称", "数量", "日期"]
    data = rows(n)
    with open(folder / "stock.csv", "w", encoding="gb18030", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(header)
        w.writerows(data)
    book = openpyxl.Workbook(write_only=True)
    ws = book.create_sheet("物资")
    ws.append(header)
    for r in data:
        ws.append(r)
    book.save(folder / "stock.xlsx")
    with open(folder / "stock.xml", "w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<导出>\n')
        for r in data:
            f.write(f'<物资 编码="{r[0]}"><名称>{escape(r[1])}</名称><数量>{r[2]}</数量><日期>{r[3]}</日期></物资>\n')
        f.write("</导出>\n")


def _rss_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def timed(label: str, adapter: FolderAdapter | XmlAdapter, n: int) -> None:
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
    before = _rss_kb("VmRSS")
    t0, c0 = time.perf_counter(), time.process_time()
    got = sum(1 for e in adapter.fetch(None) if isinstance(e, SourceRow))
    secs, cpu = time.perf_counter() - t0, time.process_time() - c0
    grown = (_rss_kb("VmHWM") - before) / 1024
    assert got == n, (label, got)
    print(f"{label:5s} {n:>8d} rows  wall {secs:6.2f} s  cpu {cpu:6.2f} s  {n / cpu:>9,.0f} rows/cpu-s  peak RSS +{grown:.0f} MB")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    n = ap.parse_args().rows
    with tempfile.TemporaryDirectory() as d:
        folder = Path(d)
        write_all(folder, n)
        base = {"path": str(folder), "key_columns": ["物资编码"], "completion": "atomic"}
        timed("csv", FolderAdapter("bench", {**base, "pattern": "*.csv"}), n)
        timed("xml", XmlAdapter("bench", {"path": str(folder / "stock.xml"), "key_columns": ["@编码"], "record_path": "物资", "completion": "atomic"}), n)
        timed("xlsx", FolderAdapter("bench", {**base, "pattern": "*.xlsx"}), n)


if __name__ == "__main__":
    main()

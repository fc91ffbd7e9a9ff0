"""Import the standard workbook (or a CSV of one record type) with a row-level error report.

The workbook reader lives in gateway.workbook.read (the hub reads signed workbooks from below with it);
this module adds CSV files, decoded line by line with the source adapters' text decoding, through the
same row checks, and re-exports the reader's names for the gateway's callers.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from datetime import date
from pathlib import Path

from gateway.adapters.formats.text import LineDecoder, detect_encoding
from gateway.errors import SourceError
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.validate import DEFAULT_CONTEXT, ValidationContext
from gateway.workbook.read import (
    MAX_UNPACKED_BYTES,
    OLE2_MAGIC,
    PROGRESS_EVERY,
    ImportedRecord,
    ImportResult,
    Progress,
    RowChecks,
    RowError,
    check_by_batch,
    check_by_row,
    collect,
    import_workbook,
    iter_workbook,
    sheet_records,
)

__all__ = [
    "MAX_UNPACKED_BYTES", "OLE2_MAGIC", "PROGRESS_EVERY", "ImportResult", "ImportedRecord", "Progress", "RowChecks",
    "RowError", "check_by_batch", "check_by_row", "import_csv", "import_workbook", "iter_csv", "iter_workbook",
]

# A CSV line longer than this is one bad row, not a memory spike.
MAX_LINE_BYTES = 1_000_000


def iter_csv(path: str | Path, record_type: str, encoding: str | None = None, *,
             context: ValidationContext | None = None, today: date | None = None,
             result: ImportResult | None = None, checks: RowChecks = check_by_batch) -> Iterator[ImportedRecord | RowError]:
    """Stream one CSV file of `record_type` (header: Chinese labels or field names)."""
    if record_type not in RECORD_TYPES:
        raise KeyError(f"unknown record type {record_type!r}; expected one of {', '.join(RECORD_TYPES)}")
    ctx = context or DEFAULT_CONTEXT
    sheet = Path(path).name
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise SourceError(f"{path}: 未知的文件编码 {encoding!r}（可用 utf-8、gb18030、gbk）") from None
    with open(path, "rb") as f:
        codec, bom = detect_encoding(f, encoding.lower() if encoding else "auto")
        if result is not None:
            result.encoding = "utf-8-sig" if bom else codec
        lines = LineDecoder(f, codec, bom, MAX_LINE_BYTES)
        reader = csv.reader(lines)

        def numbered() -> Iterator[tuple[int, tuple]]:
            last_line = 0
            for n, row in enumerate(reader, start=1):
                span = range(last_line + 1, reader.line_num + 1)
                last_line = reader.line_num
                bad = [lines.bad[i] for i in span if i in lines.bad]
                if bad:
                    bad_rows[n] = bad[0]
                    yield n, ()
                else:
                    yield n, tuple(row)

        bad_rows: dict[int, str] = {}
        yield from sheet_records(sheet, record_type, numbered(), ctx, today, checks=checks)
        # rows that could not be decoded were yielded empty (skipped); report them now
        for n, reason in sorted(bad_rows.items()):
            yield RowError(sheet, n, "", "", None, "encoding", f"第 {n} 行{reason}，该行未导入")


def import_csv(path: str | Path, record_type: str, encoding: str | None = None, *,
               context: ValidationContext | None = None, today: date | None = None,
               progress: Progress | None = None, checks: RowChecks = check_by_batch) -> ImportResult:
    """Every valid record of a CSV file of one record type plus every row error (`checks=check_by_row`: the
    reference path)."""
    result = ImportResult(str(path))
    stream = iter_csv(path, record_type, encoding, context=context, today=today, result=result, checks=checks)
    return collect(result, stream, progress)

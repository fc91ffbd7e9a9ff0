"""Write records and import error reports as CSV/XLSX, always formula-injection safe."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Font, PatternFill

from gateway.safe_cells import csv_writer, set_cell
from gateway.spreadsheet.importer import ImportResult
from gateway.standard.schema import FILE_REF, ITEMS, RECORD_TYPES, Field
from gateway.workbook.layout import ERROR_HEADER, HEADER_ROW, header
from gateway.workbook.read import ERROR_COLUMNS

ERROR_FILL = PatternFill("solid", fgColor="FFC7CE")


def csv_fields(record_type: str) -> tuple[Field, ...]:
    """Columns of a record type's CSV: every field but file references; items as text."""
    return tuple(f for f in RECORD_TYPES[record_type].fields if f.kind != FILE_REF)


def _text(v: Any) -> str:
    if v is None:
        return ""
    return repr(v) if isinstance(v, float) else str(v)


def _cell_text(f: Field, v: Any) -> str:
    if f.kind == ITEMS and v is not None:
        return ";".join(f"{i['material_id']}:{_text(i['quantity'])}:{i['unit']}" for i in v)
    return _text(v)


def export_csv(records: Iterable[Mapping[str, Any]], record_type: str, out: str | Path, *,
               encoding: str = "utf-8-sig") -> int:
    """Write canonical records of one type as CSV (header: labels, '*' when required). Returns rows written.

    The default UTF-8 with BOM opens cleanly in Excel; pass 'gb18030' for older software.
    The output imports back with import_csv unchanged.
    """
    fields = csv_fields(record_type)
    n = 0
    with open(out, "w", encoding=encoding, newline="") as f:
        w = csv_writer(f)
        w.writerow(header(fd) for fd in fields)
        for rec in records:
            w.writerow(_cell_text(fd, rec.get(fd.name)) for fd in fields)
            n += 1
    return n


def _error_rows(result: ImportResult) -> Iterable[tuple]:
    return (e.report_row() for e in result.errors)


def write_error_csv(result: ImportResult, out: str | Path, *, encoding: str = "utf-8-sig") -> int:
    """One line per error: sheet, row, field label, field name, value, rule, message."""
    with open(out, "w", encoding=encoding, newline="") as f:
        w = csv_writer(f)
        w.writerow(ERROR_COLUMNS)
        n = 0
        for row in _error_rows(result):
            w.writerow(row)
            n += 1
    return n


def write_error_list_xlsx(result: ImportResult, out: str | Path) -> None:
    """The error list as a one-sheet workbook (for CSV sources, which have no workbook to annotate)."""
    wb = Workbook()
    ws = wb.active
    ws.title = ERROR_HEADER
    for col, h in enumerate(ERROR_COLUMNS, start=1):
        set_cell(ws, 1, col, h).font = Font(bold=True)
    for r, row in enumerate(_error_rows(result), start=2):
        for col, v in enumerate(row, start=1):
            set_cell(ws, r, col, v)
    ws.column_dimensions["G"].width = 80
    wb.save(out)


def _error_column(ws: Any) -> int:
    """The 错误说明 column: reuse it when re-annotating an error report, else append one."""
    last = 0
    for cell in ws[HEADER_ROW]:
        if cell.value is not None:
            last = cell.column
            if str(cell.value).strip() == ERROR_HEADER:
                return cell.column
    return last + 1


def write_error_workbook(src: str | Path, result: ImportResult, out: str | Path) -> int:
    """Copy the source workbook with a 错误说明 column filled on every bad row. Returns rows marked.

    Clerks fix the rows in this copy and import it again: the importer ignores
    the 错误说明 column, and stale messages from an earlier run are cleared.
    """
    wb = load_workbook(src)
    bad = result.bad_rows()
    marked = 0
    for ws in wb.worksheets:
        rows = {r: errs for r, errs in bad.get(ws.title, {}).items() if r > HEADER_ROW}
        col = _error_column(ws)
        had_column = ws.cell(HEADER_ROW, col).value is not None
        if not rows and not had_column:
            continue
        head = set_cell(ws, HEADER_ROW, col, ERROR_HEADER)
        head.font = Font(bold=True, color="C00000")
        if had_column:
            for r in range(HEADER_ROW + 1, ws.max_row + 1):
                ws.cell(r, col).value = None
                ws.cell(r, col).fill = PatternFill()
        for r, errs in sorted(rows.items()):
            cell = set_cell(ws, r, col, "；".join(e.message for e in errs))
            cell.fill = ERROR_FILL
            cell.alignment = Alignment(wrap_text=True)
            marked += 1
        ws.column_dimensions[cell.column_letter if rows else head.column_letter].width = 60
    wb.save(out)
    return marked

"""Standard records written into the template's own layout, so the workbook a hub sends upward
is one the template's importer reads back (update path 1: 提交上级更新)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from openpyxl.styles import Font

from gateway.safe_cells import set_cell
from gateway.standard.schema import DATE, DECIMAL, INT, ITEMS, RECORD_TYPES, Field
from gateway.workbook.layout import FIRST_DATA_ROW, INSTRUCTIONS_SHEET, ITEM_COLUMNS, ITEMS_SHEET, sheet_fields
from gateway.workbook.template import build_template

INFO_COLUMN = 9  # the 说明 sheet's column I: who exported what, beside the instructions


def _cell_value(f: Field, v: Any) -> Any:
    """Numbers as numbers and dates as date cells, as a clerk would type them; the rest as text."""
    if v is None:
        return None
    if f.kind == DATE and isinstance(v, str):
        try:
            return dt.date.fromisoformat(v)
        except ValueError:
            return v
    if f.kind == INT and isinstance(v, str) and v.lstrip("-").isdigit():
        return int(v)
    if f.kind == DECIMAL and isinstance(v, str):
        try:
            d = Decimal(v)
        except ArithmeticError:
            return v
        return int(d) if d == d.to_integral_value() else float(d)
    return v


def write_records(
    records: Mapping[str, Iterable[Mapping[str, Any]]], out: str | Path, info: Sequence[tuple[str, str]] = (),
) -> dict[str, int]:
    """Write canonical records by type into the template; `info` lines (label, value) go on the 说明
    sheet. Returns the rows written per record type."""
    wb = build_template()
    counts: dict[str, int] = {}
    items_ws = wb[ITEMS_SHEET]
    item_row = FIRST_DATA_ROW
    for rtype, rows in records.items():
        rt = RECORD_TYPES[rtype]
        ws = wb[rt.label]
        fields = sheet_fields(rt)
        items_field = next((f for f in rt.fields if f.kind == ITEMS), None)
        row = FIRST_DATA_ROW
        for rec in rows:
            for col, f in enumerate(fields, start=1):
                cell = set_cell(ws, row, col, _cell_value(f, rec.get(f.name)))
                if f.kind == DATE and isinstance(cell.value, dt.date):
                    cell.number_format = "yyyy-mm-dd"
            if items_field is not None:
                for item in rec.get(items_field.name) or ():
                    values = {"agreement_no": rec.get("agreement_no"), **item}
                    for col, f in enumerate(ITEM_COLUMNS, start=1):
                        set_cell(items_ws, item_row, col, _cell_value(f, values.get(f.name)))
                    item_row += 1
            row += 1
        counts[rtype] = row - FIRST_DATA_ROW
    ws = wb[INSTRUCTIONS_SHEET]
    for i, (label, value) in enumerate(info, start=1):
        ws.cell(i, INFO_COLUMN, label).font = Font(bold=True)
        set_cell(ws, i, INFO_COLUMN + 1, value)
    ws.column_dimensions["I"].width, ws.column_dimensions["J"].width = 14, 60
    wb.save(out)
    return counts

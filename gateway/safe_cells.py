"""Formula-injection-safe CSV and XLSX export (CSV injection / DDE).

Every CSV or XLSX the project writes goes through here: a text cell that
starts with = + - @ TAB or CR (other than a plain negative number such as
-1.5) gets a leading apostrophe, so a spreadsheet program shows it as text
instead of evaluating it; in XLSX such a cell is also stored as a string,
never as a formula. Numbers, dates and None pass
through unchanged. `restore` undoes it on import, so export → import round-trips.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from typing import IO, Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
# A plain negative number evaluates to itself: no need to disfigure "-1" in a report.
_NEGATIVE_NUMBER = re.compile(r"-\d+(?:\.\d+)?", re.ASCII)


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _NEGATIVE_NUMBER.fullmatch(value):
        return "'" + value
    return value


def restore(value: Any) -> Any:
    """Inverse of neutralise for text read back from our own exports."""
    if isinstance(value, str) and len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


class SafeCsvWriter:
    """csv.writer look-alike whose rows are neutralised cell by cell."""

    def __init__(self, f: IO[str], **kw: Any) -> None:
        self._w = csv.writer(f, **kw)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._w.writerow([neutralise(v) for v in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def csv_writer(f: IO[str], **kw: Any) -> SafeCsvWriter:
    """`csv.writer(f, **kw)` with formula neutralisation. Open `f` with newline=''."""
    return SafeCsvWriter(f, **kw)


def set_cell(ws: Any, row: int, column: int, value: Any) -> Any:
    """Write one openpyxl cell safely: neutralised text is stored as a string, never a formula."""
    cell = ws.cell(row=row, column=column)
    value = neutralise(value)
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"
    return cell


def append_row(ws: Any, values: Iterable[Any]) -> int:
    """ws.append() with neutralisation; returns the row number written."""
    row = ws.max_row + 1 if ws.max_row > 1 or ws.cell(1, 1).value is not None else 1
    for col, v in enumerate(values, start=1):
        set_cell(ws, row, col, v)
    return row


def write_only_row(ws: Any, values: Iterable[Any]) -> None:
    """Append to a write-only worksheet (openpyxl write_only=True) safely."""
    from openpyxl.cell import WriteOnlyCell

    cells = []
    for v in values:
        v = neutralise(v)
        cell = WriteOnlyCell(ws, value=v)
        if isinstance(v, str):
            cell.data_type = "s"
        cells.append(cell)
    ws.append(cells)

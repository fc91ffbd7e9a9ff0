"""CSV and XLSX files of the operators' UI; every text cell goes through safe_cells (no formula injection)."""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterable, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.styles import Font

from gateway.safe_cells import csv_writer, write_only_row


def csv_bytes(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterable[bytes]:
    """Stream CSV in chunks of 1000 rows."""
    buf = io.StringIO()
    buf.write("\ufeff")
    w = csv_writer(buf)
    w.writerow(headers)
    for i, row in enumerate(rows, 1):
        w.writerow(row)
        if i % 1000 == 0:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue().encode("utf-8")


def attachment(name: str) -> str:
    """A Content-Disposition naming the download in Chinese (RFC 6266 filename*), with an ASCII fallback."""
    from urllib.parse import quote

    ext = name.rsplit(".", 1)[-1] if "." in name else ""
    ascii_name = "".join(ch if ch.isascii() and (ch.isalnum() or ch in "-_.") else "_" for ch in name).strip("_")
    fallback = ascii_name if ascii_name and not ascii_name.startswith(".") else f"download.{ext}"
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}"


def xlsx_file(sheets: Sequence[tuple[str, Sequence[str], Iterable[Sequence[Any]]]]) -> Any:
    """A temporary file holding an XLSX workbook (write-only mode: memory stays flat)."""
    wb = Workbook(write_only=True)
    for title, headers, rows in sheets:
        ws = wb.create_sheet(title=title[:31])
        ws.append([_bold(ws, h) for h in headers])
        for row in rows:
            write_only_row(ws, row)
    f = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    wb.save(f)
    f.seek(0)
    return f


def _bold(ws: Any, text: str) -> Any:
    from openpyxl.cell import WriteOnlyCell

    c = WriteOnlyCell(ws, value=text)
    c.font = Font(bold=True)
    return c

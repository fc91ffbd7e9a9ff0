"""XLSX (openpyxl, read-only streaming) and XLS (xlrd) rows.

Cells keep their native types (str, int, float, datetime, bool); integral
floats from XLS become int so a code like 1001 does not turn into "1001.0".
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.adapters.formats import FileUnreadable, FormatOptions, ParsedRow
from gateway.adapters.formats.table import BadCell, rows_from_cells
from gateway.errors import RowProblem


def read_xlsx(path: Path, name: str, opts: FormatOptions, source: str) -> Iterator[ParsedRow | RowProblem]:
    import openpyxl

    from gateway.adapters.formats.xlsx_guard import check_xlsx

    check_xlsx(path, opts.max_unpacked_bytes)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError, TypeError) as e:
        raise FileUnreadable("xlsx.unreadable", f"不是有效的 XLSX 文件：{e}") from e
    except Exception as e:  # openpyxl raises many kinds for damaged packages
        raise FileUnreadable("xlsx.unreadable", f"不是有效的 XLSX 文件：{type(e).__name__}: {e}") from e
    try:
        if opts.sheet:
            if opts.sheet not in book.sheetnames:
                raise FileUnreadable("xlsx.no_sheet", f"工作表 {opts.sheet!r} 不存在（有：{', '.join(book.sheetnames)}）")
            sheet = book[opts.sheet]
        else:
            sheet = book.worksheets[0]
        title = sheet.title

        def cells() -> Iterator[tuple[int, list[Any]]]:
            try:
                for n, row in enumerate(sheet.iter_rows(values_only=True), 1):
                    yield n, list(row)
            except FileUnreadable:
                raise
            except Exception as e:
                raise FileUnreadable("xlsx.unreadable", f"工作表 {title} 读取失败：{type(e).__name__}: {e}") from e

        yield from rows_from_cells(cells(), opts.header_row, lambda n: f"{name}:{title}!row {n}", source, opts.key_of)
    finally:
        book.close()


def read_xls(path: Path, name: str, opts: FormatOptions, source: str) -> Iterator[ParsedRow | RowProblem]:
    import xlrd

    try:
        book = xlrd.open_workbook(str(path), on_demand=True)
    except Exception as e:  # xlrd.XLRDError, struct errors, ... on damaged files
        raise FileUnreadable("xls.unreadable", f"不是有效的 XLS 文件：{type(e).__name__}: {e}") from e
    try:
        try:
            sheet = book.sheet_by_name(opts.sheet) if opts.sheet else book.sheet_by_index(0)
        except xlrd.XLRDError as e:
            raise FileUnreadable("xls.no_sheet", f"工作表 {opts.sheet!r} 不存在（有：{', '.join(book.sheet_names())}）") from e
        title = sheet.name

        def cells() -> Iterator[tuple[int, list[Any]] | BadCell]:
            for r in range(sheet.nrows):
                values: list[Any] = []
                bad: BadCell | None = None
                for c, cell in enumerate(sheet.row(r)):
                    v, problem = _xls_value(cell, book.datemode)
                    if problem and bad is None:
                        bad = BadCell(r + 1, values, c, "xls.cell_error", problem)
                    values.append(v if not problem else _xls_error_text(cell))
                yield bad if bad else (r + 1, values)

        yield from rows_from_cells(cells(), opts.header_row, lambda n: f"{name}:{title}!row {n}", source, opts.key_of)
    finally:
        book.release_resources()


def _xls_value(cell: Any, datemode: int) -> tuple[Any, str | None]:
    import xlrd

    t, v = cell.ctype, cell.value
    if t in (xlrd.XL_CELL_EMPTY, xlrd.XL_CELL_BLANK):
        return None, None
    if t == xlrd.XL_CELL_NUMBER:
        return (int(v) if float(v).is_integer() else v), None
    if t == xlrd.XL_CELL_DATE:
        try:
            return xlrd.xldate_as_datetime(v, datemode), None
        except Exception as e:
            return None, f"日期单元格无法解析：{e}"
    if t == xlrd.XL_CELL_BOOLEAN:
        return bool(v), None
    if t == xlrd.XL_CELL_ERROR:
        return None, f"单元格含 Excel 错误值 {xlrd.error_text_from_code.get(v, v)}"
    return v, None


def _xls_error_text(cell: Any) -> str:
    import xlrd

    return str(xlrd.error_text_from_code.get(cell.value, cell.value))

"""Streaming readers for the file formats departments drop: CSV, XLSX, XLS, XML.

Every reader takes a local, seekable file and yields, one at a time,
``ParsedRow`` (where it is + column/path -> raw value) or ``RowProblem`` for a
row it cannot read, then carries on. A file it cannot read at all raises
``FileUnreadable`` with a named rule; rows already yielded stay valid.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.errors import RowProblem

FORMATS = ("csv", "xlsx", "xls", "xml")
_BY_EXTENSION = {".csv": "csv", ".txt": "csv", ".tsv": "csv", ".xlsx": "xlsx", ".xlsm": "xlsx", ".xls": "xls", ".xml": "xml"}


class FileUnreadable(Exception):
    """The whole file (or the rest of it) cannot be read; `rule` names why."""

    def __init__(self, rule: str, message: str, where: str = "", field: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.where = where  # "line 40" when known
        self.field = field  # the element/column being read when it failed, when known
        self.value = value  # the offending text, when known


@dataclass(slots=True)
class ParsedRow:
    locator: str  # "stock.csv:line 12", "book.xlsx:Sheet1!row 5", "export.xml:/导出/物资[3] line 40"
    data: dict[str, Any]


@dataclass
class FormatOptions:
    encoding: str = "auto"  # auto | utf-8 | gb18030 | gbk
    delimiter: str = ","
    quotechar: str = '"'
    header_row: int = 1  # 1-based; 0 = no header, columns are named column_1, column_2, ...
    sheet: str | None = None  # XLSX/XLS sheet name; None = the first sheet
    record_path: str | None = None  # XML record element path
    namespaces: dict[str, str] = field(default_factory=dict)
    max_depth: int = 256
    max_text_bytes: int = 10_000_000
    max_line_bytes: int = 1_000_000
    max_unpacked_bytes: int = 4_000_000_000  # XLSX: total size of the unzipped parts
    # The source key of a row's data (None when a key column is empty); lets a problem with a
    # row that was read but refused (extra columns, a bad byte) name the record as well as the line.
    key_of: Callable[[dict[str, Any]], str | None] | None = field(default=None, repr=False, compare=False)


def format_for(name: str, configured: str | None) -> str | None:
    """The configured format, or the one the extension implies; None when unknown."""
    if configured and configured != "auto":
        return configured
    suffix = Path(name).suffix.lower()
    return _BY_EXTENSION.get(suffix)


def read_rows(path: Path, name: str, fmt: str, opts: FormatOptions, source: str) -> Iterator[ParsedRow | RowProblem]:
    """Stream the rows of a local file `path`, naming it `name` in locators."""
    if fmt == "csv":
        from gateway.adapters.formats.csv_rows import read_csv

        return read_csv(path, name, opts, source)
    if fmt == "xlsx":
        from gateway.adapters.formats.excel_rows import read_xlsx

        return read_xlsx(path, name, opts, source)
    if fmt == "xls":
        from gateway.adapters.formats.excel_rows import read_xls

        return read_xls(path, name, opts, source)
    if fmt == "xml":
        from gateway.adapters.formats.xml_rows import read_xml

        return read_xml(path, name, opts, source)
    raise FileUnreadable("file.unknown_format", f"无法识别文件格式 {fmt!r}（支持 {', '.join(FORMATS)}）")

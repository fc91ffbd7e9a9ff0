"""CSV into Arrow string columns with pyarrow's parser, for files where it reads exactly what csv_rows reads.

``csv_columns`` answers with the file's (line numbers, string table) blocks
only when it is sure that the row reader (csv_rows.read_csv) would give the
same rows with the same values and no problem at all; otherwise it answers
None and the caller reads the file with the row reader, which then reports
every bad byte or line as it does today. Sure means, for the whole file
(checked in a first pass that keeps nothing, block by block, so memory stays
bounded): the same encoding detection, every line decodes strictly and fits
max_line_bytes, the header is the first line (header_row 1) and names every
column, no NUL and no CR outside a CRLF, every quote opens and closes a field
on one line (so a record is one line and its line number is known), and every
data line has the header's number of fields (pyarrow refuses the others). Fully
blank rows (every cell whitespace as str.strip() sees it) are dropped, as the
row reader drops them. Values are str, as the row reader gives.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from gateway.adapters.formats import FileUnreadable, FormatOptions
from gateway.adapters.formats.table import header_names
from gateway.adapters.formats.text import detect_encoding

BLOCK_BYTES = 4 << 20
# Exactly the characters str.strip() removes (str.isspace), for the blank-row rule.
_SPACE = "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_BLANK = f"^[{_SPACE}]*$"


@dataclass(slots=True)
class CsvBlock:
    lines: list[int]  # the 1-based line number of each row
    table: pa.Table  # one string column per header name


def csv_columns(path: Path, opts: FormatOptions) -> Iterator[CsvBlock] | None:
    """The file's rows in blocks, or None when the row reader must read it (see the module doc)."""
    if opts.header_row != 1 or len(opts.delimiter) != 1 or len(opts.quotechar or "") != 1:
        return None
    try:
        with open(path, "rb") as f:
            encoding, skip = detect_encoding(f, opts.encoding)
            "".encode(encoding)
            for _ in _blocks(f, encoding, skip, opts, keep=False):
                pass
    except (_NotSure, LookupError):
        return None
    return _read(path, encoding, skip, opts)


class _NotSure(Exception):
    pass


def _read(path: Path, encoding: str, skip: int, opts: FormatOptions) -> Iterator[CsvBlock]:
    with open(path, "rb") as f:
        try:
            yield from _blocks(f, encoding, skip, opts, keep=True)
        except _NotSure as e:  # the first pass read the same bytes without complaint
            raise FileUnreadable("file.unreadable", "文件在读取过程中发生变化") from e


def _blocks(f: BinaryIO, encoding: str, skip: int, opts: FormatOptions, keep: bool) -> Iterator[CsvBlock]:
    well_formed = _well_formed(opts.quotechar, opts.delimiter)
    f.seek(skip)
    head = f.readline(opts.max_line_bytes + 1)
    if not head.strip() or len(head) > opts.max_line_bytes:
        raise _NotSure
    text = _decode(head, encoding)
    _check([text.rstrip("\n")], well_formed)
    cells = next(csv.reader([text], delimiter=opts.delimiter, quotechar=opts.quotechar or None, doublequote=True, strict=False))
    try:
        names = header_names(cells)
    except FileUnreadable:
        raise _NotSure from None
    if len(names) != len(cells):
        raise _NotSure  # trailing empty header cells: rows may carry blank cells beyond the header
    q = opts.quotechar or None
    parse = pacsv.ParseOptions(
        delimiter=opts.delimiter, quote_char=q or False, double_quote=True, escape_char=False,
        newlines_in_values=False, ignore_empty_lines=True,
    )
    read = pacsv.ReadOptions(column_names=names, use_threads=False, block_size=BLOCK_BYTES * 2)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names}, strings_can_be_null=False, quoted_strings_can_be_null=False,
    )
    line = 1
    while True:
        block = f.read(BLOCK_BYTES)
        if not block:
            return
        if not block.endswith(b"\n"):
            block += f.readline()  # up to the end of the line (in UTF-8/GBK/GB18030 0x0A is only a line feed)
        if len(block) > opts.max_line_bytes and max(map(len, block.split(b"\n"))) > opts.max_line_bytes:
            raise _NotSure
        text = _decode(block, encoding)
        physical = text.split("\n")
        if physical[-1] == "":
            physical.pop()
        if not keep:
            _check(physical, well_formed)
        numbers = [line + 1 + i for i, s in enumerate(physical) if s and s != "\r"]
        line += len(physical)
        data = block if encoding == "utf-8" else text.encode("utf-8")
        try:
            table = pacsv.read_csv(pa.py_buffer(data), read_options=read, parse_options=parse, convert_options=convert)
        except (pa.ArrowInvalid, pa.ArrowException):
            raise _NotSure from None  # a line with another number of fields, say
        if table.num_rows != len(numbers):
            raise _NotSure
        if not keep:
            continue
        blank = None
        for col in table.columns:
            b = pc.match_substring_regex(col, _BLANK)
            blank = b if blank is None else pc.and_(blank, b)
        if blank is not None and pc.any(blank).as_py():
            keep_mask = pc.invert(blank)
            table = table.filter(keep_mask)
            numbers = [n for n, k in zip(numbers, keep_mask.to_pylist(), strict=True) if k]
        yield CsvBlock(numbers, table)


def _decode(raw: bytes, encoding: str) -> str:
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        raise _NotSure from None


def _well_formed(q: str, d: str) -> str:
    """An RE2 pattern a line matches when it is fields that are either unquoted (no quote, no CR/NUL)
    or quoted from their first to their last character (doubled quotes inside), then an optional CR."""
    qe, de = re.escape(q), re.escape(d)
    field = f"(?:{qe}(?:[^{qe}\r\x00]|{qe}{qe})*{qe}|[^{qe}{de}\r\x00]*)"
    return f"^{field}(?:{de}{field})*\r?$"


def _check(lines: list[str], well_formed: str) -> None:
    if lines and not pc.all(pc.match_substring_regex(pa.array(lines, pa.string()), well_formed)).as_py():
        raise _NotSure  # a quote inside a field, a field whose quotes span lines, a lone CR or a NUL

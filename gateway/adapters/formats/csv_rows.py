"""CSV rows, streamed: configurable delimiter/quote/header, CRLF, quoted commas and newlines."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path

from gateway.adapters.formats import FileUnreadable, FormatOptions, ParsedRow
from gateway.adapters.formats.table import BadCell, rows_from_cells
from gateway.adapters.formats.text import LineDecoder, detect_encoding
from gateway.errors import RowProblem

# A field longer than this is almost always an unbalanced quote swallowing the file.
csv.field_size_limit(1_000_000)


def read_csv(path: Path, name: str, opts: FormatOptions, source: str) -> Iterator[ParsedRow | RowProblem]:
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed in finally of the generator)
    except OSError as e:
        raise FileUnreadable("file.unreadable", f"无法打开文件：{e}") from e
    try:
        try:
            encoding, skip = detect_encoding(f, opts.encoding)
            lines = LineDecoder(f, encoding, skip, opts.max_line_bytes)
        except LookupError as e:
            raise FileUnreadable("csv.unknown_encoding", f"不支持的编码 {opts.encoding!r}") from e
        cells = _records(lines, name, opts, source)
        yield from rows_from_cells(cells, opts.header_row, lambda n: f"{name}:line {n}", source, opts.key_of)
    finally:
        f.close()


def _records(lines: LineDecoder, name: str, opts: FormatOptions, source: str) -> Iterator[tuple[int, list[str]] | BadCell | RowProblem]:
    try:
        reader = csv.reader(iter(lines), delimiter=opts.delimiter, quotechar=opts.quotechar or None, doublequote=True, strict=False)
    except (TypeError, csv.Error) as e:
        raise FileUnreadable("csv.bad_dialect", f"分隔符或引号设置无效：{e}") from e
    start = 1
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            span = f"第 {start} 行" if lines.line <= start else f"第 {start}–{lines.line} 行"
            yield RowProblem(
                source, f"{name}:line {start}", None, None, "csv.malformed",
                f"CSV 格式错误（常见原因：引号未闭合）：{e}；{span}未读取",
            )
            start = lines.line + 1
            continue
        end = lines.line
        bad = [(n, lines.bad.pop(n)) for n in range(start, end + 1) if n in lines.bad]
        if bad:
            col = next((i for i, v in enumerate(record) if "\ufffd" in v), None)
            line, reason = bad[0]
            where = f"第 {col + 1} 列" if col is not None else ""
            yield BadCell(line, record, col, "csv.undecodable", f"第 {line} 行{where}：{reason}")
        else:
            yield start, record
        start = end + 1

"""Turn a stream of (line number, cells) into header-keyed rows.

Shared by CSV, XLSX and XLS: the header row names the columns, fully blank
rows are skipped, a row with more filled cells than headers is a problem
(usually an unquoted delimiter) while short rows are padded with None.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from gateway.adapters.formats import FileUnreadable, ParsedRow
from gateway.errors import RowProblem


@dataclass(slots=True)
class BadCell:
    """A row whose cell `col` (0-based) could not be read; reported once the header names it."""

    line: int
    values: list[Any]
    col: int | None
    rule: str
    reason: str


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


def header_names(cells: list[Any]) -> list[str]:
    names: list[str] = []
    for i, c in enumerate(cells, 1):
        n = "" if c is None else str(c).strip().lstrip("\ufeff")
        names.append(n or f"column_{i}")
    while names and names[-1].startswith("column_") and _blank(cells[len(names) - 1]):
        names.pop()  # trailing empty header cells are formatting, not columns
    seen: set[str] = set()
    for n in names:
        if n in seen:
            raise FileUnreadable("file.duplicate_header", f"表头列名 {n!r} 重复，无法确定各列含义")
        seen.add(n)
    return names


def _keyed(locator: str, header: list[str], values: list[Any], key_of: Callable[[dict[str, Any]], str | None] | None) -> str:
    """`locator` plus the row's key, when its key cells were read intact."""
    if key_of is None or not header:
        return locator
    data = dict(zip(header, values, strict=False))
    try:
        key = key_of(data)
    except Exception:  # noqa: BLE001 - naming the key is a courtesy; the problem is reported anyway
        return locator
    if key is None or "\ufffd" in key:  # a key cell holding the undecodable byte is not the key
        return locator
    return f"{locator} key={key}"


def rows_from_cells(
    cells: Iterable[tuple[int, list[Any]] | BadCell | RowProblem],
    header_row: int,
    where: Callable[[int], str],
    source: str,
    key_of: Callable[[dict[str, Any]], str | None] | None = None,
) -> Iterator[ParsedRow | RowProblem]:
    """`cells` yields (1-based row/line number, cell values) or a ready RowProblem; `key_of` (the
    source key of a row's data) adds the key to the problem of a row that was read but refused."""
    header: list[str] | None = None
    index = 0
    for item in cells:
        if isinstance(item, RowProblem):
            yield item
            continue
        if isinstance(item, BadCell):
            index += 1
            names = header or []
            col = item.col
            field = (names[col] if col is not None and col < len(names) else f"column_{col + 1}") if col is not None else None
            value = item.values[col] if col is not None and col < len(item.values) else None
            yield RowProblem(source, _keyed(where(item.line), names, item.values, key_of), field, value, item.rule, item.reason)
            continue
        line, values = item
        index += 1
        if header_row and index < header_row:
            continue
        if header is None:
            if header_row:
                header = header_names(values)
                continue
            header = [f"column_{i}" for i in range(1, len(values) + 1)]
        for v in values:  # a plain loop: this runs once per row of every file
            if v is not None and (type(v) is not str or v.strip()):
                break
        else:
            continue  # a fully blank row
        if len(values) > len(header):
            extra = [v for v in values[len(header):] if not _blank(v)]
            if extra:
                yield RowProblem(
                    source, _keyed(where(line), header, values, key_of), None, extra[0], "file.extra_columns",
                    f"该行有 {len(values)} 列，表头只有 {len(header)} 列（可能含未加引号的分隔符）",
                )
                continue
        data = dict(zip(header, values, strict=False))
        for h in header[len(values):]:
            data[h] = None
        yield ParsedRow(where(line), data)

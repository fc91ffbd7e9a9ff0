"""Read the standard workbook with a row-level error report; shared by the gateway (gateway.spreadsheet,
which adds CSV files) and the hub (a signed workbook from a lower level, gateway.hub.workbook_import).

Rows are streamed (openpyxl read-only) and each is normalised by gateway.standard.validate; a bad row
yields RowErrors naming sheet, row, field label, value and rule, and never stops the others.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from openpyxl import load_workbook

from gateway import localtime
from gateway.errors import RowProblem, SourceError
from gateway.safe_cells import restore
from gateway.standard.converters import normalize_item
from gateway.standard.schema import RECORD_TYPES, Field, record_key
from gateway.standard.validate import DEFAULT_CONTEXT, FieldError, ValidationContext, normalize
from gateway.standard.vectorised import validate_rows_via_batch
from gateway.workbook.guard import PackageRefused, check_package
from gateway.workbook.layout import (
    ERROR_HEADER,
    INSTRUCTIONS_SHEET,
    ITEM_COLUMNS,
    ITEMS_SHEET,
    LISTS_SHEET,
    sheet_to_type,
)

ERROR_COLUMNS = ("工作表", "行号", "字段", "字段名", "值", "规则", "错误说明")  # an error report's columns
MAX_UNPACKED_BYTES = 1 << 30  # a clerk's workbook unzips to far less; more is a zip bomb


@dataclass(frozen=True)
class RowError:
    sheet: str
    row: int  # spreadsheet row number (1 = header); for CSV the record number counting the header
    field: str
    label: str
    value: object
    rule: str
    message: str  # Chinese
    # The row's values as read (a refused record row), to prefill the record form.
    data: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    def as_dict(self) -> dict[str, object]:
        return {"sheet": self.sheet, "row": self.row, "field": self.field, "label": self.label,
                "value": _jsonable(self.value), "rule": self.rule, "message": self.message}

    def to_row_problem(self, source: str) -> RowProblem:
        return RowProblem(source, f"{self.sheet} 第 {self.row} 行", self.field or None, self.value, self.rule, self.message)

    def report_row(self) -> tuple:
        """The error as one line of an error report (ERROR_COLUMNS)."""
        v = self.value if self.value is None or isinstance(self.value, (int, float)) else str(self.value)
        return (self.sheet, self.row, self.label, self.field, "" if v is None else v, self.rule, self.message)

    def __str__(self) -> str:
        return f"{self.sheet} 第 {self.row} 行 {self.label or self.field}：{self.message} [{self.rule}]"


@dataclass(frozen=True)
class ImportedRecord:
    record_type: str
    sheet: str
    row: int
    data: dict[str, Any]


@dataclass
class ImportResult:
    source: str
    records: list[ImportedRecord] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    encoding: str | None = None  # CSV only: the detected or given encoding

    def counts(self) -> dict[str, int]:
        return dict(Counter(r.record_type for r in self.records))

    def bad_rows(self) -> dict[str, dict[int, list[RowError]]]:
        out: dict[str, dict[int, list[RowError]]] = {}
        for e in self.errors:
            out.setdefault(e.sheet, {}).setdefault(e.row, []).append(e)
        return out

    def summary(self) -> dict[str, object]:
        return {"source": self.source, "records": self.counts(), "error_count": len(self.errors),
                "errors": [e.as_dict() for e in self.errors]}


def _jsonable(v: object) -> object:
    return v if v is None or isinstance(v, (str, int, float, bool)) else str(v)


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, str) and not v.strip())


class _Columns:
    """Which column holds which field, read from the header row(s)."""

    def __init__(self, fields: Mapping[str, Field], first: tuple, second: tuple | None) -> None:
        self.problems: list[tuple[int, str]] = []  # (column index, header text)
        names = [str(v).strip() if v is not None else "" for v in (second or ())]
        # The template's hidden row 2 holds field names; without it, row 1 labels decide.
        two_rows = second is not None and any(names) and all(n in fields or not n for n in names)
        self.header_rows = 2 if two_rows else 1
        if not two_rows:
            names = []
        by_label = {f.label: f.name for f in fields.values()} | {n: n for n in fields}
        self.by_index: dict[int, str] = {}
        for i in range(max(len(first), len(names))):
            raw = first[i] if i < len(first) else None
            text = str(raw).strip().rstrip("*＊").strip() if raw is not None else ""
            name = names[i] if i < len(names) and names[i] else by_label.get(text, "")
            if not name and (not text or text == ERROR_HEADER):
                continue  # empty column, or the 错误说明 column of an earlier error report
            if name and name not in self.by_index.values():
                self.by_index[i] = name
            else:
                self.problems.append((i, str(raw if raw is not None else name)))

    def row_dict(self, values: tuple) -> dict[str, Any] | None:
        """Field -> value for one row; None when the row is blank."""
        out: dict[str, Any] = {}
        n = len(values)
        for i, name in self.by_index.items():
            v = values[i] if i < n else None
            if not _blank(v):
                out[name] = restore(v)
        return out or None


def _header_errors(sheet: str, cols: _Columns) -> Iterator[RowError]:
    for _, text in cols.problems:
        yield RowError(sheet, 1, "", text, text, "unknown_column", f"表头“{text}”不是本表的字段（或重复），该列未导入")


RowChecks = Callable[[str, Sequence[Mapping[str, Any]], date | None, ValidationContext],
                     list[tuple[dict, list[FieldError]]]]
CHUNK_ROWS = 5000  # rows validated together: bounds a big sheet's memory; below ~2000 the per-batch cost shows


def check_by_row(record_type: str, rows: Sequence[Mapping[str, Any]], today: date | None,
                 ctx: ValidationContext) -> list[tuple[dict, list[FieldError]]]:
    """The reference path: the row validator on every row."""
    return [normalize(record_type, r, today=today, context=ctx) for r in rows]


def check_by_batch(record_type: str, rows: Sequence[Mapping[str, Any]], today: date | None,
                   ctx: ValidationContext) -> list[tuple[dict, list[FieldError]]]:
    """The bulk path: one Arrow batch per chunk through the vectorised validator; only the rows it cannot
    prove valid go to the row validator, so every refusal keeps the row validator's reasons."""
    return validate_rows_via_batch(record_type, rows, today=today, context=ctx)


def sheet_records(sheet: str, record_type: str, rows: Iterator[tuple[int, tuple]], ctx: ValidationContext,
          today: date | None, items: _Items | None = None,
          keys: dict[str, tuple[str, int]] | None = None,
          checks: RowChecks = check_by_batch) -> Iterator[ImportedRecord | RowError]:
    rt = RECORD_TYPES[record_type]
    fields = rt.field_map
    keys = {} if keys is None else keys  # record key -> (sheet, row) where first seen
    key_label = "、".join(fields[k].label for k in rt.key)
    head = _read_header(fields, rows)
    if head is None:
        return
    cols, body = head
    yield from _header_errors(sheet, cols)
    # A chunk keeps the sheet's order: an items error stands in its row's place among the rows to check.
    chunk: list[RowError | tuple[int, dict[str, Any]]] = []

    def settle() -> Iterator[ImportedRecord | RowError]:
        pending = [x for x in chunk if not isinstance(x, RowError)]
        verdicts = iter(checks(record_type, [d for _, d in pending], today, ctx)) if pending else iter(())
        for x in chunk:
            if isinstance(x, RowError):
                yield x
                continue
            row_no, data = x
            out, errors = next(verdicts)
            if errors:
                for e in errors:
                    yield RowError(sheet, row_no, e.field, e.label, _jsonable(e.value), e.rule, e.message, data)
                continue
            key = record_key(record_type, out)
            first_seen = keys.setdefault(key, (sheet, row_no))
            if first_seen != (sheet, row_no):
                where = f"第 {first_seen[1]} 行" if first_seen[0] == sheet else f"“{first_seen[0]}”表第 {first_seen[1]} 行"
                yield RowError(sheet, row_no, rt.key[0], fields[rt.key[0]].label, key, "duplicate_key",
                               f"{key_label}与{where}重复（{key}），同一记录只能出现一次")
                continue
            yield ImportedRecord(record_type, sheet, row_no, out)
        chunk.clear()

    for row_no, values in body:
        data = cols.row_dict(values)
        if data is None:
            continue
        if items is not None:
            no = str(data.get("agreement_no", "")).strip()
            items.seen.add(no)
            if "items" not in data:
                bad = items.bad.get(no)
                if bad:
                    chunk.append(RowError(sheet, row_no, "items", "协议物资", no, "items.invalid",
                                          f"协议物资有误（见“{ITEMS_SHEET}”表第 {'、'.join(map(str, bad))} 行），本协议未导入"))
                    continue
                data["items"] = items.good.get(no, [])
        chunk.append((row_no, data))
        if len(chunk) >= CHUNK_ROWS:
            yield from settle()
    yield from settle()


def _read_header(fields: Mapping[str, Field], rows: Iterator[tuple[int, tuple]]
                 ) -> tuple[_Columns, Iterator[tuple[int, tuple]]] | None:
    """The header (one row of labels, optionally a second of field names) and the data rows after it."""
    try:
        _, first = next(rows)
    except StopIteration:
        return None
    second_row = next(rows, None)
    cols = _Columns(fields, first, second_row[1] if second_row else None)
    pending = [] if cols.header_rows == 2 or second_row is None else [second_row]
    return cols, itertools.chain(pending, rows)


@dataclass
class _Items:
    good: dict[str, list[dict]] = field(default_factory=dict)
    bad: dict[str, list[int]] = field(default_factory=dict)
    rows: dict[str, list[int]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)


_ITEM_FIELDS = {f.name: f for f in ITEM_COLUMNS}


def _item_rows(rows: Iterator[tuple[int, tuple]], ctx: ValidationContext, today: date,
               items: _Items) -> Iterator[RowError]:
    head = _read_header(_ITEM_FIELDS, rows)
    if head is None:
        return
    cols, body = head
    yield from _header_errors(ITEMS_SHEET, cols)
    for row_no, values in body:
        data = cols.row_dict(values)
        if data is None:
            continue
        no = data.pop("agreement_no", None)
        no = str(no).strip() if no is not None else ""
        item, problems = normalize_item(data, today, ctx)
        if not no:
            problems.insert(0, ("agreement_no", "required", "协议编号必填"))
        items.rows.setdefault(no, []).append(row_no)
        if problems:
            items.bad.setdefault(no, []).append(row_no)
            for fname, rule, message in problems:
                label = _ITEM_FIELDS[fname].label if fname else ""
                yield RowError(ITEMS_SHEET, row_no, fname, label, _jsonable(data.get(fname)) if fname else None, rule, message)
        else:
            items.good.setdefault(no, []).append(item)


def _has_cells(ws: Any) -> bool:
    ws.reset_dimensions()
    return any(not _blank(v) for row in ws.iter_rows(max_row=5, values_only=True) for v in row)


def _sheet_rows(ws: Any) -> Iterator[tuple[int, tuple]]:
    ws.reset_dimensions()  # trust the cells, not a dimension tag other tools may get wrong
    return enumerate(ws.iter_rows(values_only=True), start=1)


OLE2_MAGIC = bytes.fromhex("d0cf11e0a1b11ae1")  # the compound-file header of .xls (and .doc)


def iter_workbook(path: str | Path, *, context: ValidationContext | None = None,
                  today: date | None = None, checks: RowChecks = check_by_batch) -> Iterator[ImportedRecord | RowError]:
    """Stream records and row errors of a standard workbook, sheet by sheet (`checks=check_by_row`: the
    reference path, the row validator on every row)."""
    ctx = context or DEFAULT_CONTEXT
    ref = today or ctx.today or localtime.today()
    with open(path, "rb") as f:
        if f.read(8) == OLE2_MAGIC:  # Excel 97-2003: the template's lists and checks exist only in .xlsx
            raise SourceError(f"{path}: 这是 Excel 97-2003 格式（.xls）的文件，请在 Excel 或 WPS 中“另存为”"
                              f"Excel 工作簿（.xlsx）后再导入 / an .xls file: save it as .xlsx, then import it")
    try:
        check_package(Path(path), MAX_UNPACKED_BYTES)  # zip bombs and DOCTYPE parts, before openpyxl sees it
    except PackageRefused as e:
        raise SourceError(f"{path}: {e.message}") from e
    try:
        wb = load_workbook(path, read_only=True, data_only=True)
    except Exception as e:  # openpyxl raises several types for a file that is not XLSX
        raise SourceError(f"{path}: 无法作为 XLSX 工作簿读取：{e}") from e
    try:
        names = sheet_to_type()
        items = _Items()
        if ITEMS_SHEET in wb.sheetnames:  # items first: agreements need them
            yield from _item_rows(_sheet_rows(wb[ITEMS_SHEET]), ctx, ref, items)
        keys: dict[str, dict[str, tuple[str, int]]] = {}
        for title in wb.sheetnames:
            rtype = names.get(title)
            if rtype is None:
                if title not in (ITEMS_SHEET, INSTRUCTIONS_SHEET, LISTS_SHEET) and _has_cells(wb[title]):
                    yield RowError(title, 1, "", "", title, "unknown_sheet",
                                   f"工作表“{title}”不是标准模板的工作表（应为 {'、'.join(rt.label for rt in RECORD_TYPES.values())} 或 {ITEMS_SHEET}），未导入")
                continue
            yield from sheet_records(title, rtype, _sheet_rows(wb[title]), ctx, ref,
                             items if rtype == "agreement" else None, keys.setdefault(rtype, {}), checks)
        for no, rows in items.rows.items():
            if no and no not in items.seen:
                for r in rows:
                    yield RowError(ITEMS_SHEET, r, "agreement_no", "协议编号", no, "items.orphan",
                                   f"协议编号“{no}”在“协议信息”表中不存在")
    finally:
        wb.close()


Progress = Callable[[int], None]  # rows read so far
PROGRESS_EVERY = 200  # rows between progress calls


def collect(result: ImportResult, stream: Iterable[ImportedRecord | RowError],
             progress: Progress | None = None) -> ImportResult:
    for n, x in enumerate(stream, start=1):
        (result.records if isinstance(x, ImportedRecord) else result.errors).append(x)  # type: ignore[arg-type]
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n)
    return result


def import_workbook(path: str | Path, *, context: ValidationContext | None = None,
                    today: date | None = None, progress: Progress | None = None,
                    checks: RowChecks = check_by_batch) -> ImportResult:
    """Every valid record of the workbook plus every row error; `progress(rows)` every PROGRESS_EVERY rows."""
    return collect(ImportResult(str(path)), iter_workbook(path, context=context, today=today, checks=checks), progress)



"""Write the standard's XLSX collection template (模板) from the schema."""

from __future__ import annotations

from pathlib import Path

from openpyxl import Workbook
from openpyxl.comments import Comment
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter, quote_sheetname
from openpyxl.worksheet.datavalidation import DataValidation
from openpyxl.worksheet.worksheet import Worksheet

from gateway.standard.doc import REQUIRED_TEXT, kind_text, rule_text
from gateway.standard.schema import DATE, DECIMAL, INT, ITEMS, RECORD_TYPES, SCHEMA_VERSION, UNITS, Field, RecordType
from gateway.workbook.layout import (
    FIRST_DATA_ROW,
    HEADER_ROW,
    INSTRUCTIONS_SHEET,
    ITEM_COLUMNS,
    ITEMS_SHEET,
    LISTS_SHEET,
    NAMES_ROW,
    TEMPLATE_ROWS,
    header,
    sheet_fields,
)

HEAD_FILL = PatternFill("solid", fgColor="DDEBF7")
REQ_FONT = Font(bold=True, color="C00000")
BOLD = Font(bold=True)


def _lists(wb: Workbook) -> dict[tuple, str]:
    """Hidden sheet of drop-down lists; returns code-list identity -> range formula."""
    ws = wb.create_sheet(LISTS_SHEET)
    ranges: dict[tuple, str] = {}
    col = 0
    seen: list[tuple[str, tuple]] = []
    for rt in RECORD_TYPES.values():
        for f in rt.fields:
            if f.codes and tuple(f.codes.items()) not in ranges:
                seen.append((f.label, tuple(f.codes.items())))
                ranges[tuple(f.codes.items())] = ""
    seen.append(("计量单位", tuple((u, u) for u in UNITS)))
    for title, pairs in seen:
        col += 1
        letter = get_column_letter(col)
        ws.cell(1, col, title).font = BOLD
        for i, (code, text) in enumerate(pairs, start=2):
            ws.cell(i, col, code if code == text else f"{code} {text}").data_type = "s"
        ranges[pairs] = f"{quote_sheetname(LISTS_SHEET)}!${letter}$2:${letter}${len(pairs) + 1}"
    ws.sheet_state = "hidden"
    return ranges


def _column_format(f: Field) -> str | None:
    if f.kind == DATE:
        return "yyyy-mm-dd"
    if f.kind in (INT, DECIMAL):
        return None
    return "@"  # text: keeps 12-digit division codes, phones and leading zeros intact


def _data_sheet(wb: Workbook, title: str, fields: tuple[Field, ...], lists: dict[tuple, str]) -> Worksheet:
    ws = wb.create_sheet(title)
    last = FIRST_DATA_ROW + TEMPLATE_ROWS - 1
    for col, f in enumerate(fields, start=1):
        letter = get_column_letter(col)
        head = ws.cell(HEADER_ROW, col, header(f))
        head.fill = HEAD_FILL
        head.font = REQ_FONT if f.is_required else BOLD
        head.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        note = "；".join(x for x in (kind_text(f), REQUIRED_TEXT[f.required], rule_text(f)) if x)
        head.comment = Comment(note, "模板")
        ws.cell(NAMES_ROW, col, f.name).font = Font(color="808080", size=8)
        width = max(10, min(40, 2 * len(f.label) + 6, (f.max_len or 12) + 4))
        ws.column_dimensions[letter].width = width
        fmt = _column_format(f)
        if fmt:
            ws.column_dimensions[letter].number_format = fmt
        if f.codes or f.units:
            pairs = tuple(f.codes.items()) if f.codes else tuple((u, u) for u in UNITS)
            dv = DataValidation(type="list", formula1=lists[pairs], allow_blank=True)
            if f.units:
                dv.errorStyle = "warning"  # the unit list is extendable per deployment
                dv.error = f"{f.label}不在默认列表中；如已在配置中扩展可继续"
            else:
                dv.error = f"{f.label}请从下拉列表选择"
            dv.errorTitle = "取值无效"
            dv.showErrorMessage = True
            dv.add(f"{letter}{FIRST_DATA_ROW}:{letter}{last}")
            ws.add_data_validation(dv)
    ws.row_dimensions[NAMES_ROW].hidden = True
    ws.row_dimensions[HEADER_ROW].height = 30
    ws.freeze_panes = ws.cell(FIRST_DATA_ROW, 1)
    return ws


def _instructions(ws: Worksheet) -> None:
    ws.title = INSTRUCTIONS_SHEET
    lines = [
        f"应急物资信息采集模板（数据标准版本 {SCHEMA_VERSION}）",
        "1. 每类信息一个工作表；第 1 行为表头，带 * 的列必填；隐藏的第 2 行是字段名，请勿修改或删除。",
        "2. 从第 3 行起每行填写一条记录；代码类字段可从下拉列表选择，也可填写代码或中文名称。",
        "3. 日期格式 YYYY-MM-DD（如 2025-03-01）；不存在的日期（如 2023-02-30）会被拒绝。",
        f"4. 协议物资在“{ITEMS_SHEET}”表中逐行填写，用协议编号与“协议信息”表关联，每份协议至少一项。",
        "5. 协议附件、生产保障方案附件请在前置机网页中上传。",
        "6. 导入时逐行校验，出错的行不会影响其他行；错误报告会在原表中增加“错误说明”列。",
    ]
    for i, text in enumerate(lines, start=1):
        ws.cell(i, 1, text).font = BOLD if i == 1 else Font()
    row = len(lines) + 2
    heads = ("工作表", "字段名", "中文名称", "类型", "长度", "是否必填", "规则与代码")
    for col, h in enumerate(heads, start=1):
        c = ws.cell(row, col, h)
        c.font, c.fill = BOLD, HEAD_FILL
    for rt in RECORD_TYPES.values():
        for f in rt.fields:
            row += 1
            sheet = ITEMS_SHEET if f.kind == ITEMS else rt.label
            values = (sheet, f.name, f.label, kind_text(f), f.max_len or "", REQUIRED_TEXT[f.required], rule_text(f))
            for col, v in enumerate(values, start=1):
                ws.cell(row, col, v).data_type = "s" if isinstance(v, str) else "n"
    for f in ITEM_COLUMNS:
        row += 1
        values = (ITEMS_SHEET, f.name, f.label, kind_text(f), f.max_len or "", "必填", rule_text(f))
        for col, v in enumerate(values, start=1):
            ws.cell(row, col, v)
    for letter, width in zip("ABCDEFG", (18, 20, 18, 18, 8, 10, 80), strict=False):
        ws.column_dimensions[letter].width = width


def build_template(record_types: tuple[str, ...] | None = None) -> Workbook:
    wb = Workbook()
    _instructions(wb.active)
    selected: list[RecordType] = [RECORD_TYPES[t] for t in (record_types or tuple(RECORD_TYPES))]
    lists = _lists(wb)
    for rt in selected:
        _data_sheet(wb, rt.label, sheet_fields(rt), lists)
        if any(f.kind == ITEMS for f in rt.fields):
            _data_sheet(wb, ITEMS_SHEET, ITEM_COLUMNS, lists)
    wb.move_sheet(LISTS_SHEET, offset=len(wb.sheetnames))  # hidden lists last
    wb.active = 0
    return wb


def write_template(path: str | Path, record_types: tuple[str, ...] | None = None) -> Path:
    """Write the template to `path` (all five record types unless `record_types` is given)."""
    p = Path(path)
    build_template(record_types).save(p)
    return p

"""The 通报 as a formatted XLSX that prints on one A4 landscape page width.

Title row with office and period, a frozen header, column widths that show the Chinese names whole,
numbers as numbers, rates as percentage cells, times as date cells in the configured zone (Beijing
time), print titles. Text cells go through safe_cells (no formula injection).
"""

from __future__ import annotations

import tempfile
import unicodedata
from typing import IO, Any

from openpyxl import Workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
from openpyxl.utils import get_column_letter
from openpyxl.worksheet.worksheet import Worksheet

from gateway.hub.ui.bulletin import Bulletin
from gateway.localtime import to_local, zone_label
from gateway.safe_cells import set_cell
from gateway.standard.schema import RECORD_TYPES

HEADER_ROW = 4  # rows 1-3: title, office and period, the summary
PERCENT = "0.0%"
DATETIME = "yyyy-mm-dd hh:mm"
THIN = Side(style="thin", color="999999")


def display_width(text: object) -> int:
    """Columns a text takes in a spreadsheet: East Asian wide characters count two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in str(text))


def columns(b: Bulletin) -> list[tuple[str, str]]:
    """(header, kind) per column; kind: text, int, pct or time."""
    soon, late = b.warn_days[0], b.warn_days[-1]
    return [
        ("排名", "int"),
        ("部门编码", "text"),
        ("部门名称", "text"),
        *([("所属辖区", "text")] if b.areas else []),  # at a county or city, as the page names each row's area
        *[(t.label, "int") for t in RECORD_TYPES.values()],
        ("记录合计", "int"),
        ("期内更新", "int"),
        ("超期未更新", "int"),
        ("超期占比", "pct"),
        ("已过期库存", "int"),
        (f"{soon}天内到期", "int"),
        (f"{late}天内到期", "int"),
        ("期内回执", "int"),
        ("被拒绝", "int"),
        ("拒收率", "pct"),
        ("期内报送批次", "int"),
        (f"最近报送（{zone_label(b.timezone)}）", "time"),
        ("评价", "text"),
    ]


def values(b: Bulletin) -> list[list[Any]]:
    soon, late = b.warn_days[0], b.warn_days[-1]
    out = []
    for i, d in enumerate(b.rows, 1):
        last = to_local(d.last_push, b.timezone)
        out.append(
            [
                i,
                d.code,
                d.name,
                *([b.areas.get(d.code, "本级直报")] if b.areas else []),
                *[d.by_type.get(t, 0) for t in RECORD_TYPES],
                d.records,
                d.updated,
                d.stale,
                d.stale_share,
                d.expired,
                d.expiring_within(soon),
                d.expiring_within(late),
                d.receipts,
                d.rejected,
                d.reject_rate,
                d.pushes,
                last.replace(tzinfo=None) if last else "从未报送",  # a date cell holds local wall time, no zone
                d.verdict,
            ]
        )
    return out


def write_bulletin(b: Bulletin) -> IO[bytes]:
    wb = Workbook()
    ws: Worksheet = wb.active
    ws.title = f"通报{b.period[0]}至{b.period[1]}"[:31]
    cols = columns(b)
    last_col = get_column_letter(len(cols))
    set_cell(ws, 1, 1, f"{b.office}  {b.title}").font = Font(bold=True, size=16)
    set_cell(ws, 2, 1, f"统计期间：{b.period[0]} 至 {b.period[1]}    印发时间：{b.issued}（{zone_label(b.timezone)}）")
    summary = set_cell(ws, 3, 1, b.summary())
    summary.alignment = Alignment(wrap_text=True, vertical="top")
    for r in (1, 2, 3):
        ws.merge_cells(f"A{r}:{last_col}{r}")
    ws.row_dimensions[1].height = 28
    ws.row_dimensions[3].height = 48
    fill = PatternFill("solid", fgColor="DDE4EE")
    for c, (head, _kind) in enumerate(cols, 1):
        cell = set_cell(ws, HEADER_ROW, c, head)
        cell.font = Font(bold=True)
        cell.fill = fill
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=False)
        cell.border = Border(top=THIN, bottom=THIN, left=THIN, right=THIN)
    widths = [display_width(h) for h, _ in cols]
    for r, row in enumerate(values(b), HEADER_ROW + 1):
        for c, (value, (_head, kind)) in enumerate(zip(row, cols, strict=True), 1):
            cell = set_cell(ws, r, c, value)
            cell.border = Border(top=THIN, bottom=THIN, left=THIN, right=THIN)
            if kind == "pct":
                cell.number_format = PERCENT
                shown = f"{value:.1%}"
            elif kind == "time" and not isinstance(value, str):
                cell.number_format = DATETIME
                shown = "2026-01-01 00:00"
            else:
                shown = str(value)
            widths[c - 1] = max(widths[c - 1], display_width(shown))
    for c, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(c)].width = w + 3  # room for the filter arrow and padding
    ws.freeze_panes = ws.cell(HEADER_ROW + 1, 4)  # the header and rank, code, name stay in view
    ws.print_title_rows = f"{HEADER_ROW}:{HEADER_ROW}"
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0  # as many pages down as the departments need
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_options.horizontalCentered = True
    ws.page_margins.left = ws.page_margins.right = 0.4
    _area_sheet(wb, b)
    _action_sheet(wb, b)
    f = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
    wb.save(f)
    f.seek(0)
    return f  # type: ignore[return-value]


# 分辖区汇总: the page's area table (gateway/hub/ui/templates/hub_ui/report.html), column for column.
AREA_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("辖区（下级中心）", "area", "text"),
    ("部门数", "departments", "int"),
    ("现存记录", "records", "int"),
    ("期内更新", "updated", "int"),
    ("超期未更新", "stale", "int"),
    ("超期占比", "stale_share", "pct"),
    ("被拒绝", "rejected", "int"),
    ("拒收率", "reject_rate", "pct"),
    ("需整改的部门", "acting", "names"),
)


def _area_sheet(wb: Workbook, b: Bulletin) -> None:
    """分辖区汇总: per lower hub (relay) at a county or city; no sheet at a township (no areas below)."""
    areas = b.by_area()
    if not areas:
        return
    ws = wb.create_sheet("分辖区汇总", 1)  # right after the 通报, as on the page
    for c, (head, _key, _kind) in enumerate(AREA_COLUMNS, 1):
        cell = set_cell(ws, 1, c, head)
        cell.font = Font(bold=True)
        cell.border = Border(top=THIN, bottom=THIN, left=THIN, right=THIN)
    widths = [display_width(h) for h, _, _ in AREA_COLUMNS]
    for r, a in enumerate(areas, 2):
        for c, (_head, key, kind) in enumerate(AREA_COLUMNS, 1):
            value = a[key]
            if kind == "names":
                value = "、".join(value) if value else "无"  # type: ignore[arg-type]
            cell = set_cell(ws, r, c, value)
            cell.border = Border(top=THIN, bottom=THIN, left=THIN, right=THIN)
            if kind == "pct":
                cell.number_format = PERCENT
                shown = f"{value:.1%}"
            else:
                shown = str(value)
            widths[c - 1] = max(widths[c - 1], display_width(shown))
    for c, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(c)].width = w + 3
    ws.freeze_panes = "B2"
    _print_landscape(ws)


def _print_landscape(ws: Worksheet) -> None:
    """A4 landscape, one page wide, the header row repeated on every page."""
    ws.page_setup.orientation = ws.ORIENTATION_LANDSCAPE
    ws.page_setup.paperSize = ws.PAPERSIZE_A4
    ws.page_setup.fitToWidth = 1
    ws.page_setup.fitToHeight = 0
    ws.sheet_properties.pageSetUpPr.fitToPage = True
    ws.print_title_rows = "1:1"


def _action_sheet(wb: Workbook, b: Bulletin) -> None:
    """需整改部门: who must act and why, as the page lists them."""
    ws = wb.create_sheet("需整改部门")
    for c, head in enumerate(("部门编码", "部门名称", "评价", "问题"), 1):
        set_cell(ws, 1, c, head).font = Font(bold=True)
    widths = [8, 8, 8, 8]
    for r, (d, why) in enumerate(b.needing_action(), 2):
        for c, v in enumerate((d.code, d.name, d.verdict, "；".join(why)), 1):
            set_cell(ws, r, c, v)
            widths[c - 1] = max(widths[c - 1], display_width(v))
    for c, w in enumerate(widths, 1):
        ws.column_dimensions[get_column_letter(c)].width = w + 3
    ws.freeze_panes = "A2"
    _print_landscape(ws)

"""问题数据: every row refused now by any source or import, filtered, exported, opened in the form."""

from __future__ import annotations

import io
from typing import Any

from flask import Blueprint, render_template, request

from gateway.accounts.web import require
from gateway.standard.schema import RECORD_TYPES
from gateway.sync import problems as cp
from gateway.web.app import gw
from gateway.web.downloads import attachment

bp = Blueprint("problems", __name__, url_prefix="/problems")
PAGE_ROWS = 1000
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
COLUMNS = ("数据源", "位置", "记录类型", "记录键", "字段", "值", "原因", "规则", "首次发现(UTC)", "最近发现(UTC)")


def _args() -> tuple[str | None, str | None]:
    return request.args.get("source") or None, request.args.get("field") or None


@bp.get("/")
@require("view")
def index() -> Any:
    source, field = _args()
    engine = gw().engine
    rows = cp.current(engine, source=source, field=field, limit=PAGE_ROWS)
    sources, fields = cp.filters(engine)
    return render_template(
        "problems.html",
        rows=rows,
        counts=cp.counts(engine),
        sources=sources,
        fields=fields,
        source=source or "",
        field=field or "",
        types=RECORD_TYPES,
        limit=PAGE_ROWS,
    )


@bp.get("/export.xlsx")
@require("view")
def export() -> Any:
    from openpyxl import Workbook

    from gateway.spreadsheet.safe_cells import append_row

    source, field = _args()
    rows = cp.current(gw().engine, source=source, field=field, limit=None)
    wb = Workbook()
    ws = wb.active
    ws.title = "问题数据"
    append_row(ws, COLUMNS)
    for r in rows:
        rt = RECORD_TYPES.get(r["record_type"])
        append_row(
            ws,
            (
                r["source"],
                r["locator"],
                rt.label if rt else r["record_type"],
                r["record_key"] or "",
                r["label"],
                r["value"] if r["value"] is not None else "",
                r["message"],
                r["rule"],
                r["first_seen"][:19],
                r["last_seen"][:19],
            ),
        )
    for col, width in zip("ABCDEFGHIJ", (14, 34, 18, 24, 16, 20, 50, 16, 20, 20), strict=True):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    name = "问题数据" + (f"_{source}" if source else "") + ".xlsx"
    return attachment(buf.getvalue(), name, "problems.xlsx", XLSX_MIME)

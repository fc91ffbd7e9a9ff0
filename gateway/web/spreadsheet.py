"""表格导入: the standard's XLSX template, workbook/CSV import with a per-row error report."""

from __future__ import annotations

import re
import secrets
import tempfile
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, send_file, url_for

from gateway.accounts.web import actor, audit, require
from gateway.standard.schema import RECORD_TYPES, record_key
from gateway.web.app import gw, wake_push_worker
from gateway.web.downloads import content_disposition

bp = Blueprint("spreadsheet", __name__, url_prefix="/spreadsheet")
SOURCE = "spreadsheet"
_IMPORT_ID = re.compile(r"^[0-9a-f]{16}$")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _imports_dir() -> Path:
    cfg = gw().config
    base = Path(cfg.state_path).parent if cfg is not None else Path(tempfile.gettempdir()) / "gateway-web"
    d = base / "imports"
    d.mkdir(parents=True, exist_ok=True)
    return d


@bp.get("/")
@require("view")
def index() -> Any:
    return render_template("spreadsheet.html", types=RECORD_TYPES)


@bp.get("/template.xlsx")
@require("view")
def template() -> Any:
    from gateway.spreadsheet import write_template

    tmp = Path(tempfile.mkdtemp()) / "template.xlsx"
    write_template(tmp)
    return send_file(tmp, as_attachment=True, download_name="应急物资信息采集模板.xlsx", mimetype=XLSX_MIME)


@bp.post("/import")
@require("edit_records")
def do_import() -> Any:
    from gateway.spreadsheet import import_csv, import_workbook, write_error_csv, write_error_workbook
    from gateway.standard.validate import ValidationContext
    from gateway.sync import enqueue_records

    up = request.files.get("file")
    if up is None or not up.filename:
        flash("请选择要导入的文件", "error")
        return redirect(url_for("spreadsheet.index"))
    suffix = Path(up.filename).suffix.lower()
    csv_type = request.form.get("record_type", "")
    if suffix not in (".xlsx", ".csv"):
        flash("只支持 .xlsx（标准模板）或 .csv 文件", "error")
        return redirect(url_for("spreadsheet.index"))
    if suffix == ".csv" and csv_type not in RECORD_TYPES:
        flash("导入 CSV 文件时请选择记录类型", "error")
        return redirect(url_for("spreadsheet.index"))
    import_id = secrets.token_hex(8)
    folder = _imports_dir() / import_id
    folder.mkdir()
    src = folder / ("upload" + suffix)
    up.save(src)
    ctx = ValidationContext.from_config(gw().config) if gw().config is not None else None
    try:
        result = import_workbook(src, context=ctx) if suffix == ".xlsx" else import_csv(src, csv_type, context=ctx)
    except Exception as e:  # an unreadable file is the user's to fix, not a crash
        flash(f"无法读取文件：{e}", "error")
        return redirect(url_for("spreadsheet.index"))
    counts: dict[str, dict[str, int]] = {}
    by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for r in result.records:
        by_type.setdefault(r.record_type, []).append((record_key(r.record_type, r.data), r.data))
    ids: list[int] = []
    for rtype, pairs in by_type.items():
        s = enqueue_records(gw().engine, SOURCE, rtype, pairs, operator=actor())
        counts[rtype] = {"new": s.new, "changed": s.changed, "unchanged": s.unchanged}
        ids += s.outbox_ids
    from gateway.sync.problems import record_import

    record_import(gw().engine, up.filename, result, csv_type if suffix == ".csv" else None)
    report = None
    if result.errors:
        if suffix == ".xlsx":
            report = "错误说明.xlsx"
            write_error_workbook(src, result, folder / report)
        else:
            report = "错误说明.csv"
            write_error_csv(result, folder / report)
    audit("spreadsheet.import", up.filename, None,
          {"import_id": import_id, "records": result.counts(), "errors": len(result.errors), "enqueued": len(ids)})
    if ids:
        wake_push_worker()
    return render_template(
        "spreadsheet_result.html", filename=up.filename, result=result, counts=counts, types=RECORD_TYPES,
        enqueued=len(ids), report=report, import_id=import_id,
    )


@bp.get("/report/<import_id>/<name>")
@require("view")
def report(import_id: str, name: str) -> Any:
    if not _IMPORT_ID.match(import_id) or name not in ("错误说明.xlsx", "错误说明.csv"):
        abort(404)
    path = _imports_dir() / import_id / name
    if not path.is_file():
        abort(404)
    mime = XLSX_MIME if name.endswith(".xlsx") else "text/csv"
    resp = send_file(path, mimetype=mime)
    # secure_filename() of an all-Chinese name is just "xlsx": a file saved without its extension.
    resp.headers["Content-Disposition"] = content_disposition(name, "errors" + Path(name).suffix)
    return resp

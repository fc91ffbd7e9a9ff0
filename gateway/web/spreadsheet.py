"""表格导入: the standard's XLSX template, workbook/CSV import with a per-row error report."""

from __future__ import annotations

import re
import secrets
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_file, url_for

from gateway.accounts.web import actor, audit_later, require
from gateway.standard.schema import RECORD_TYPES
from gateway.web.app import gw, wake_push_worker
from gateway.web.downloads import content_disposition
from gateway.web.jobs import Job, board

bp = Blueprint("spreadsheet", __name__, url_prefix="/spreadsheet")
SOURCE = "spreadsheet"
_IMPORT_ID = re.compile(r"^[0-9a-f]{16}$")
XLSX_MIME = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class ImportRefused(Exception):
    """The file could not be read at all; the message (Chinese) is the job's outcome."""


def rows_in(path: Path) -> int | None:
    """Data rows the import will read, for its progress bar (None when it cannot be told cheaply)."""
    try:
        if path.suffix == ".csv":
            with open(path, "rb") as f:
                return max(sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1, 0)
        from openpyxl import load_workbook

        wb = load_workbook(path, read_only=True)
        try:
            return sum(max((ws.max_row or 0) - 1, 0) for ws in wb.worksheets)
        finally:
            wb.close()
    except Exception:  # the import itself reports an unreadable file, with its reason
        return None


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


class _Unreadable(Exception):
    """The reader failed (the cause says why); a failure of the store is not the file's fault."""


def _readable(stream: Iterator[Any]) -> Iterator[Any]:
    while True:
        try:
            x = next(stream)
        except StopIteration:
            return
        except Exception as e:
            raise _Unreadable() from e
        yield x


@bp.post("/import")
@require("edit_records")
def do_import() -> Any:
    from gateway.spreadsheet import ImportResult, iter_csv, iter_workbook, write_error_csv, write_error_workbook
    from gateway.spreadsheet.enqueue import enqueue_import
    from gateway.standard.validate import ValidationContext
    from gateway.sync.problems import record_import

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
    filename, g, who, audit_done = up.filename, gw(), actor(), audit_later()
    ctx = ValidationContext.from_config(g.config) if g.config is not None else None
    result_url = url_for("spreadsheet.result", job_id="JOB")  # built here: the job's thread has no request

    def work(job: Job) -> None:
        result = ImportResult(str(src))
        stream = (iter_workbook(src, context=ctx) if suffix == ".xlsx"
                  else iter_csv(src, csv_type, context=ctx, result=result))
        try:  # the valid records are queued chunk by chunk as the file is read
            queued = enqueue_import(g.engine, result, _readable(stream), who, progress=job.advance, source=SOURCE)
        except _Unreadable as e:  # an unreadable file is the user's to fix, not a crash
            raise ImportRefused(f"无法读取文件：{e.__cause__}") from e.__cause__
        counts, ids = queued.counts, queued.outbox_ids
        record_import(g.engine, filename, result, csv_type if suffix == ".csv" else None)
        report = None
        if result.errors:
            report = "错误说明.xlsx" if suffix == ".xlsx" else "错误说明.csv"
            if suffix == ".xlsx":
                write_error_workbook(src, result, folder / report)
            else:
                write_error_csv(result, folder / report)
        audit_done("spreadsheet.import", filename, None,
                   {"import_id": import_id, "records": result.counts(), "errors": len(result.errors), "enqueued": len(ids)})
        if ids:
            wake_push_worker()
        job.ok = not result.errors
        job.message = f"导入完成：有效记录 {len(result.records)} 条，已入推送队列 {len(ids)} 条，错误 {len(result.errors)} 条"
        job.result_url = result_url.replace("JOB", job.id)
        job.payload = {"filename": filename, "result": result, "counts": counts, "enqueued": len(ids),
                       "report": report, "import_id": import_id}

    job = board().start(current_app._get_current_object(), "import", filename, f"导入 {filename}", who, work,  # type: ignore[attr-defined]
                        total=rows_in(src))
    return redirect(url_for("jobs.show", job_id=job.id))


@bp.get("/result/<job_id>")
@require("view")
def result(job_id: str) -> Any:
    job = board().get(job_id)
    if job is None or job.kind != "import":
        abort(404, description="导入结果不存在或已过期（服务重启后不再保留），错误说明仍可在问题数据中查看")
    if job.payload is None:  # still running, or failed: the job page says which
        return redirect(url_for("jobs.show", job_id=job.id))
    return render_template("spreadsheet_result.html", types=RECORD_TYPES, **job.payload)


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

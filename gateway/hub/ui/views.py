"""Views of the operators' UI (blueprint hub_ui, mounted at /ui on the hub app)."""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
from typing import Any

from flask import Blueprint, Response, abort, current_app, redirect, render_template, request, send_file, url_for
from sqlalchemy import select

from gateway.accounts import csrf, errors
from gateway.accounts.forwarded import TrustedProxies
from gateway.accounts.roles import HUB_PERMISSIONS
from gateway.accounts.web import AccountsUI, NavItem, attach, audit, require
from gateway.at_rest.stored import read_stored
from gateway.hub.forward.chain import chain_of
from gateway.hub.tables import batches, record_history, records
from gateway.hub.ui import exports, stats
from gateway.hub.ui_tables import hub_account_store
from gateway.localtime import local_text, zone_label
from gateway.protocol.keys import public_key_of
from gateway.protocol.reasons import reason_texts
from gateway.standard.schema import RECORD_TYPES

bp = Blueprint("hub_ui", __name__, url_prefix="/ui", template_folder="templates",
               static_folder="static", static_url_path="/static")
csrf.protect(bp)
errors.install(bp)

NAV = [
    NavItem("hub_ui.receipts", "回执查询"),
    NavItem("hub_ui.log", "回执日志"),
    NavItem("hub_ui.departments", "部门状态"),
    NavItem("hub_ui.report", "更新通报"),
    NavItem("hub_ui.records_page", "数据浏览"),
    NavItem("hub_ui.forwarding", "上级转发"),
    NavItem("hub_ui.workbook_import", "报表导入", "import_records"),
    NavItem("accounts.users", "用户", "manage_users"),
    NavItem("accounts.audit_log", "审计日志", "manage_users"),
]
VERIFY_CACHE_SECONDS = 300


def _hub() -> Any:
    return current_app.extensions["hub"]


def _engine() -> Any:
    return _hub().engine


def _secret_key(hub: Any) -> str:
    """A session key kept beside the hub's attachments folder, generated once (never a default), sealed at rest."""
    path = hub.config.ui_secret_file
    ring = hub.config.at_rest
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Workers starting together: the key is written whole under a private name and linked into place,
        # so exactly one key wins and no worker reads a half-written file; a session signed by one holds at all.
        tmp = path.with_name(f".ui_secret.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(ring.seal(secrets.token_urlsafe(48).encode("ascii")))
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another worker's key is in place: use that one
        finally:
            tmp.unlink()
    return read_stored(path, ring, "界面会话密钥 / UI session key").decode("ascii").strip()


@bp.record_once
def _setup(state: Any) -> None:
    app = state.app
    hub = app.extensions["hub"]
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(hub)
    app.config.setdefault("FRESHNESS_DAYS", {})
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    store = hub_account_store(hub.engine, int(app.config.get("LOCKOUT_AFTER", 5)),
                              float(app.config.get("LOCKOUT_MINUTES", 15)))
    proxies = TrustedProxies.parse(app.config.get("TRUSTED_PROXIES", hub.config.trusted_proxies))
    ui = AccountsUI(store, HUB_PERMISSIONS, "hub_ui.receipts", "乡镇应急资源汇聚中心", NAV, proxies)
    attach(app, ui, url_prefix="/ui", tls=bool(app.config.get("UI_TLS")), whole_app=False)
    # The shared accounts pages head their time columns with it, as the gateway's app does.
    app.jinja_env.globals["zone_label"] = zone_label(hub.config.timezone)


@bp.app_template_filter("status_label")
def status_label(s: str) -> str:
    return stats.STATUS_LABELS.get(s, s)


@bp.app_template_filter("local_time")
def local_time(value: Any, seconds: bool = True) -> str:
    """A stored UTC time as the operator reads it, in the hub's zone (hub.timezone)."""
    return local_text(value, _hub().config.timezone, seconds)


@bp.app_template_filter("reason_list")
def reason_list(text: str | None) -> list[str]:
    return reason_texts(text)


def _common() -> dict[str, Any]:
    return {"departments": stats.department_names(_engine()), "types": RECORD_TYPES,
            "zone_label": zone_label(_hub().config.timezone),
            "status_labels": stats.STATUS_LABELS, "kind_labels": stats.KIND_LABELS,
            "refusal_labels": stats.REFUSAL_LABELS}


@bp.get("/")
@require("view")
def index() -> Any:
    return redirect(url_for("hub_ui.receipts"))


@bp.get("/receipts")
@require("view")
def receipts() -> Any:
    f = stats.Filters.from_args(request.args, _hub().config.timezone)
    before = request.args.get("before", type=int)
    rows = stats.receipt_page(_engine(), f, before)
    nxt = rows[-1]["id"] if len(rows) == stats.PAGE else None
    return render_template("hub_ui/receipts.html", rows=rows, f=f, next_before=nxt, before=before,
                           forwarding=_hub().forwarding, **_common())


@bp.post("/receipts/export.<fmt>")
@require("export")
def export_receipts(fmt: str) -> Any:
    """A POST (with CSRF) because the export is audited: no GET writes anything."""
    if fmt not in ("csv", "xlsx"):
        abort(404)
    f = stats.Filters.from_args(request.form, _hub().config.timezone)
    audit("receipts.export", fmt, after=f.as_args())
    engine = _engine()  # the CSV is streamed after this view returns, outside the app context
    names = stats.department_names(engine)
    tz = _hub().config.timezone
    headers = ["回执编号", "日志序号", "批次号", "部门编码", "部门名称", "记录类型", "记录键", "序号", "操作", "结果", "原因",
               f"中心时间（{zone_label(tz)}）"]

    def rows() -> Any:
        for r in stats.receipts_for_export(engine, f):
            yield [r["id"], r["log_seq"], r["batch_id"], r["department"], names.get(r["department"], ""),
                   RECORD_TYPES[r["type"]].label if r["type"] in RECORD_TYPES else r["type"], r["key"], r["seq"],
                   {"delete": "删除", "upsert": "新增/更新"}.get(r["op"] or "", ""), stats.STATUS_LABELS.get(r["status"], r["status"]), "；".join(reason_list(r["reasons"])),
                   local_text(r["hub_time"], tz)]

    stamp = local_text(dt.datetime.now(dt.UTC), _hub().config.timezone, seconds=False)
    stamp = stamp.replace("-", "").replace(" ", "-").replace(":", "")
    if fmt == "csv":
        resp = Response(exports.csv_bytes(headers, rows()), mimetype="text/csv; charset=utf-8")
        resp.headers["Content-Disposition"] = exports.attachment(f"回执_{stamp}.csv")
        return resp
    return send_file(exports.xlsx_file([("回执", headers, rows())]), as_attachment=True,
                     download_name=f"回执_{stamp}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.get("/log")
@require("view")
def log() -> Any:
    f = stats.Filters.from_args(request.args, _hub().config.timezone)
    before = request.args.get("before", type=int)
    rows = stats.log_page(_engine(), f, before)
    for r in rows:
        r["counts_d"] = json.loads(r["counts"] or "{}")
        r["summary_d"] = json.loads(r["summary"] or "{}")
    nxt = rows[-1]["seq"] if len(rows) == stats.PAGE else None
    cache = current_app.extensions.get("hub_ui_verify")
    return render_template("hub_ui/log.html", rows=rows, f=f, next_before=nxt, verdict=cache, **_common())


@bp.get("/log/verify")
@require("view")
def verify() -> Any:
    """Recompute the hash chain (read-only; cached for a few minutes since it reads the whole log)."""
    cache = current_app.extensions.get("hub_ui_verify")
    if not cache or cache["at"] < time.monotonic() - VERIFY_CACHE_SECONDS or request.args.get("fresh"):
        from gateway.hub.receipt_log import verify_log

        t0 = time.monotonic()
        verdict = verify_log(_engine(), hub_public_key=public_key_of(_hub().key))
        cache = {"at": time.monotonic(), "verdict": verdict, "seconds": round(time.monotonic() - t0, 2),
                 "when": local_text(dt.datetime.now(dt.UTC), _hub().config.timezone)}
        current_app.extensions["hub_ui_verify"] = cache
    return render_template("hub_ui/verify.html", v=cache["verdict"], cache=cache)


def _period() -> tuple[str, str]:
    first, last = stats.default_period(dt.datetime.now(dt.UTC), _hub().config.timezone)  # the operator's days
    args = request.form if request.method == "POST" else request.args
    p_from = args.get("from") or first
    p_to = args.get("to") or last
    try:
        a, b = dt.date.fromisoformat(p_from), dt.date.fromisoformat(p_to)
    except ValueError:
        abort(400, description="日期格式应为 YYYY-MM-DD")
    if a > b:
        abort(400, description="开始日期不能晚于结束日期")
    return a.isoformat(), b.isoformat()


@bp.get("/departments")
@require("view")
def departments() -> Any:
    cfg = _hub().config
    rows = stats.department_status(_engine(), current_app.config["FRESHNESS_DAYS"],
                                   warn_days=cfg.expiry_warn_days, tz=cfg.timezone)
    return render_template("hub_ui/departments.html", rows=rows, **_common())


def _bulletin() -> Any:
    from gateway.hub.ui.bulletin import build_bulletin

    cfg = _hub().config
    areas = {code: r.name for r in cfg.relays if not r.revoked for code in r.departments}  # a county's townships
    return build_bulletin(_engine(), _period(), current_app.config["FRESHNESS_DAYS"], office=cfg.office,
                          timezone=cfg.timezone, warn_days=cfg.expiry_warn_days, areas=areas)


@bp.get("/report")
@require("view")
def report() -> Any:
    """The 通报 as a print-ready page (A4 landscape; the browser's print makes the PDF)."""
    b = _bulletin()
    days = current_app.config["FRESHNESS_DAYS"]
    periods = sorted({int(days.get(t, stats.DEFAULT_FRESHNESS_DAYS)) for t in RECORD_TYPES})
    return render_template("hub_ui/report.html", b=b, period=b.period,
                           freshness_days_text="、".join(f"{p} 天" for p in periods), **_common())


@bp.post("/report.xlsx")
@require("export")
def report_xlsx() -> Any:
    from gateway.hub.ui.bulletin_xlsx import write_bulletin

    b = _bulletin()
    audit("report.export", f"{b.period[0]}~{b.period[1]}")
    return send_file(write_bulletin(b), as_attachment=True, download_name=f"{b.title}_{b.period[0]}至{b.period[1]}.xlsx",
                     mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")


@bp.get("/records")
@require("view")
def records_page() -> Any:
    r = records.c
    dep, typ, key = (request.args.get(k, "").strip() for k in ("department", "record_type", "key"))
    before = request.args.get("before", type=int)
    q = select(r.id, r.department, r.type, r.key, r.seq, r.version, r.deleted, r.received_at, r.updated_at,
               r.provenance).order_by(r.id.desc()).limit(stats.PAGE)
    if dep:
        q = q.where(r.department == dep)
    if typ:
        q = q.where(r.type == typ)
    if key:
        q = q.where(r.key.startswith(key, autoescape=True))
    if before:
        q = q.where(r.id < before)
    with _engine().connect() as c:
        rows = [{**x, "chain": chain_of(x["provenance"])} for x in c.execute(q).mappings()]
    nxt = rows[-1]["id"] if len(rows) == stats.PAGE else None
    return render_template("hub_ui/records.html", rows=rows, next_before=nxt,
                           args={"department": dep, "record_type": typ, "key": key}, **_common())


@bp.get("/records/<int:record_id>")
@require("view")
def record_detail(record_id: int) -> Any:
    r, h = records.c, record_history.c
    with _engine().connect() as c:
        row = c.execute(select(records).where(r.id == record_id)).mappings().first()
        if row is None:
            abort(404)
        hist = [dict(x) for x in c.execute(
            select(record_history, batches.c.log_seq).join(batches, batches.c.batch_id == h.batch_id)
            .where(h.department == row["department"], h.type == row["type"], h.key == row["key"])
            .order_by(h.id.desc()).limit(100)
        ).mappings()]
    return render_template("hub_ui/record.html", rec=dict(row), rt=RECORD_TYPES.get(row["type"]), hist=hist,
                           chain=chain_of(row["provenance"]), own_key_id=_hub().key_id, **_common())


@bp.route("/<path:rest>", methods=["GET", "POST"])
def not_found(rest: str) -> Any:
    """Unknown pages under /ui get the UI's Chinese 404, not the API's JSON one."""
    abort(404)

"""记录录入: create or edit one standard record, checked as you type, enqueued and pushed at once."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, abort, current_app, jsonify, render_template, request
from sqlalchemy import select

from gateway.accounts.web import actor, audit, require
from gateway.errors import GatewayError
from gateway.standard import schema as sch
from gateway.standard.schema import RECORD_TYPES, RecordType, record_key
from gateway.store import outbox as outbox_store
from gateway.store import tables as t
from gateway.web import status
from gateway.web.app import gw, wake_push_worker

bp = Blueprint("records", __name__, url_prefix="/records")
LOCAL_SOURCE = "local"


def _type(name: str) -> RecordType:
    if name not in RECORD_TYPES:
        abort(404)
    return RECORD_TYPES[name]


def _context() -> Any:
    from gateway.standard.validate import ValidationContext

    cfg = gw().config
    return ValidationContext.from_config(cfg) if cfg is not None else None


def form_to_data(rt: RecordType, form: Mapping[str, str]) -> dict[str, Any]:
    """The form's values as a raw record: empty inputs left out, agreement items parsed from lines."""
    data: dict[str, Any] = {}
    for f in rt.fields:
        if f.kind == sch.FILE_REF:
            continue
        raw = (form.get(f.name) or "").strip()
        if not raw:
            continue
        if f.kind == sch.ITEMS:
            items = []
            for line in raw.splitlines():
                parts = [p.strip() for p in line.replace("，", ",").split(",")]
                if any(parts):
                    items.append({"material_id": parts[0], "quantity": parts[1] if len(parts) > 1 else "",
                                  "unit": parts[2] if len(parts) > 2 else ""})
            data[f.name] = items
        else:
            data[f.name] = raw
    return data


def data_to_form(rt: RecordType, data: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for f in rt.fields:
        v = data.get(f.name)
        if v is None:
            continue
        if f.kind == sch.ITEMS and isinstance(v, list):
            out[f.name] = "\n".join(f"{i.get('material_id', '')},{i.get('quantity', '')},{i.get('unit', '')}" for i in v)
        else:
            out[f.name] = str(v)
    return out


def check(rt: RecordType, data: Mapping[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from gateway.standard.validate import normalize

    clean, errors = normalize(rt.name, data, context=_context())
    return clean, [{"field": e.field, "label": e.label, "value": None if e.value is None else str(e.value),
                    "rule": e.rule, "message": e.message} for e in errors]


def latest_data(record_type: str, key: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(data, provenance) of the newest enqueued version of a record."""
    o = t.outbox
    with gw().engine.connect() as c:
        row = outbox_store.latest_row(c, record_type, key, (o.c.data, o.c.provenance))
    if row is None:
        return None, None
    return (json.loads(row.data) if row.data else None), json.loads(row.provenance or "{}")


@bp.get("/")
@require("view")
def index() -> Any:
    fp = t.fingerprints
    with gw().engine.connect() as c:
        rows = [dict(x) for x in c.execute(
            select(fp).where(fp.c.source == LOCAL_SOURCE).order_by(fp.c.checked_at.desc()).limit(100)
        ).mappings()]
    return render_template("records.html", rows=rows, types=RECORD_TYPES)


def _render_form(rt: RecordType, values: Mapping[str, str], errors: list[dict[str, Any]], key: str | None,
                 code: int = 200, source: str | None = None, problem: dict[str, Any] | None = None) -> Any:
    by_field: dict[str, list[str]] = {}
    for e in errors:
        by_field.setdefault(e["field"] or "", []).append(e["message"])
    units = list(sch.UNITS) + list(gw().config.extra_units if gw().config else ())
    synced = source if source and source not in (LOCAL_SOURCE, "spreadsheet") else None
    return render_template("record_form.html", rt=rt, values=values, errors=by_field, key=key, units=units,
                           sch=sch, synced_from=synced, problem=problem), code


@bp.get("/<record_type>/new")
@require("edit_records")
def new(record_type: str) -> Any:
    return _render_form(_type(record_type), {}, [], None)


@bp.get("/<record_type>/edit/<path:key>")
@require("edit_records")
def edit(record_type: str, key: str) -> Any:
    rt = _type(record_type)
    data, prov = latest_data(record_type, key)
    if data is None:
        abort(404)
    return _render_form(rt, data_to_form(rt, data), [], key, source=(prov or {}).get("source"))


@bp.get("/<record_type>/from-problem/<int:problem_id>")
@require("edit_records")
def from_problem(record_type: str, problem_id: int) -> Any:
    """A refused row in the form, prefilled with what its mapping gave, its problems shown by field."""
    from gateway.sync import problems as cp

    rt = _type(record_type)
    p = cp.get(gw().engine, problem_id)
    if p is None or p["record_type"] != rt.name:
        abort(404)
    mapped = json.loads(p["mapped"]) if p["mapped"] else {}
    values = data_to_form(rt, mapped)
    _, errors = check(rt, form_to_data(rt, values))
    return _render_form(rt, values, errors, None, source=p["source"], problem=p)


@bp.post("/api/validate/<record_type>")
@require("view")
def api_validate(record_type: str) -> Any:
    """The standard's checks on a form as typed (JSON {"data": {...}} or form fields)."""
    rt = _type(record_type)
    body = request.get_json(silent=True)
    raw = body.get("data") if isinstance(body, dict) and isinstance(body.get("data"), dict) else None
    data = form_to_data(rt, raw if raw is not None else request.form)
    clean, errors = check(rt, data)
    return jsonify({"ok": not errors, "errors": errors, "key": record_key(rt.name, clean) if not errors else None})


@bp.post("/<record_type>")
@require("edit_records")
def save(record_type: str) -> Any:
    rt = _type(record_type)
    data = form_to_data(rt, request.form)
    clean, errors = check(rt, data)
    if errors:
        pid = request.form.get("_problem") or ""
        from gateway.sync import problems as cp

        problem = cp.get(gw().engine, int(pid)) if pid.isdigit() else None
        return _render_form(rt, request.form, errors, request.form.get("_key") or None, 422, problem=problem)
    key = record_key(rt.name, clean)
    before, _ = latest_data(rt.name, key)
    from gateway.sync import enqueue_records

    summary = enqueue_records(gw().engine, LOCAL_SOURCE, rt.name, [(key, clean)], operator=actor())
    _corrected(rt.name, key, request.form.get("_problem"))
    audit("record.save", f"{rt.name}:{key}", before, clean)
    ids = list(summary.outbox_ids)
    outcome = push_now(ids) if ids else {"status": "unchanged", "message": "内容与上次相同，无需重新推送", "results": []}
    return render_template("record_result.html", rt=rt, key=key, outcome=outcome, record=clean,
                           receipt_labels=status.RECEIPT_LABELS)


def _corrected(record_type: str, key: str, problem: str | None) -> None:
    """Refused rows of this record (and the one the form was opened from) leave the 问题数据 list."""
    from gateway.sync import problems as cp

    pid = int(problem) if problem and problem.isdigit() else None
    with gw().engine.begin() as conn:
        cp.mark_corrected(conn, record_type, key, actor(), pid)


def push_now(ids: list[int]) -> dict[str, Any]:
    """Push these outbox rows at once and return the verified receipt results (or why they wait)."""
    cfg = gw().config
    if cfg is None:
        return {"status": "queued", "message": "未加载配置，记录已入队", "results": []}
    from gateway.push import PushClient

    try:
        with PushClient(cfg, gw().engine) as client:
            results = client.push_ids(ids, attempts=2)
    except GatewayError as e:
        current_app.logger.warning("immediate push of %s failed: %s", ids, e)
        wake_push_worker()
        return {"status": "queued", "message": "已保存并入队，暂时无法送达汇聚平台，将自动重试", "results": []}
    res = [r._asdict() for r in results]  # ReceiptResult is a NamedTuple
    if not res:
        return {"status": "queued", "message": "已入队，尚未收到回执，将自动重试", "results": []}
    if all(r["status"] in ("accepted", "duplicate") for r in res):
        return {"status": "delivered", "message": "汇聚平台已签收（回执已验签）", "results": res}
    if all(r["status"] in ("accepted", "duplicate", "stale") for r in res):
        # Never 已送达: the hub kept a newer version of the record and did not take this one.
        return {"status": "stale", "message": "汇聚平台已有该记录更新的版本，本次保存的版本未被采用（过期版本）",
                "results": res}
    return {"status": "rejected", "message": "汇聚平台拒收，原因见下", "results": res}

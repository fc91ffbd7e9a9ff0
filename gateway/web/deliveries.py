"""推送与回执: batches, per-record receipts, returned records (被退回记录: retry/resolve) and each record's history."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import and_, or_, select

from gateway.accounts.web import actor, require
from gateway.protocol.reasons import reason_texts
from gateway.push import record_receipts
from gateway.push.deadletters import (
    DeadLetterNotOpen,
    DeadLetterSuperseded,
    newer_seq,
    resolve_dead_letter,
    retry_dead_letter,
)
from gateway.standard.schema import RECORD_TYPES
from gateway.store import outbox as outbox_store
from gateway.store import tables as t
from gateway.web import status
from gateway.web.app import gw, wake_push_worker

bp = Blueprint("deliveries", __name__, url_prefix="/deliveries")
PAGE = 50


def _reasons(text: str | None) -> list[str]:
    return reason_texts(text)


@bp.app_template_filter("reasons")
def reasons_filter(text: str | None) -> list[str]:
    return _reasons(text)


@bp.get("/")
@require("view")
def index() -> Any:
    b = t.outbox_batches
    # Keyset on (created, batch_id): batches created in the same instant are not skipped.
    before_created, _, before_id = (request.args.get("before") or "").partition("|")
    q = select(b).order_by(b.c.created.desc(), b.c.batch_id.desc()).limit(PAGE)
    if before_created:
        q = q.where(or_(b.c.created < before_created, and_(b.c.created == before_created, b.c.batch_id < before_id)))
    with gw().engine.connect() as c:
        batches = [dict(x) for x in c.execute(q).mappings()]
        counts = record_receipts.counts_by_batch(c, [x["batch_id"] for x in batches])
    return render_template(
        "deliveries.html", batches=batches, counts=counts, backlog=status.outbox_backlog(gw().engine),
        open_returns=status.open_dead_letters(gw().engine),
        state_labels=status.STATE_LABELS, receipt_labels=status.RECEIPT_LABELS,
        next_before=f"{batches[-1]['created']}|{batches[-1]['batch_id']}" if len(batches) == PAGE else None,
    )


@bp.get("/batch/<batch_id>")
@require("view")
def batch(batch_id: str) -> Any:
    br, b = t.batch_receipts, t.outbox_batches
    with gw().engine.connect() as c:
        info = c.execute(select(b).where(b.c.batch_id == batch_id)).mappings().first()
        signed = c.execute(select(br).where(br.c.batch_id == batch_id)).mappings().first()
        rows = [record_receipts.as_row(r) for r in record_receipts.of_batch(c, batch_id)]
    if info is None and signed is None and not rows:
        abort(404)
    return render_template(
        "batch.html", batch_id=batch_id, info=info, signed=signed, rows=rows,
        receipt_labels=status.RECEIPT_LABELS, types=RECORD_TYPES,
    )


@bp.get("/dead-letters")
@require("view")
def dead_letters() -> Any:
    d, o = t.dead_letters, t.outbox
    show_all = request.args.get("all") == "1"
    q = (
        select(d, o.c.source, o.c.provenance)
        .join(o, o.c.id == d.c.outbox_id)
        .order_by(d.c.id.desc())
        .limit(200)
    )
    if not show_all:
        q = q.where(d.c.resolved_at.is_(None))
    with gw().engine.connect() as c:
        rows = [dict(x) for x in c.execute(q).mappings()]
        keys = {(r["record_type"], r["record_key"]) for r in rows if r["resolved_at"] is None}
        latest = {k: newer_seq(c, *k) for k in keys}
    for r in rows:
        r["operator"] = json.loads(r["provenance"] or "{}").get("operator") or ""
        top = latest.get((r["record_type"], r["record_key"]))
        r["newer"] = top if top is not None and top > r["seq"] else None  # no retry: the hub would answer stale
    return render_template("dead_letters.html", rows=rows, show_all=show_all, types=RECORD_TYPES,
                           resolutions=RESOLUTIONS)


RESOLUTIONS = {"retried": "已重推", "resolved": "已处理", "superseded": "已被后续版本取代"}


def _dead_letter(dl_id: int) -> dict[str, Any]:
    d = t.dead_letters
    with gw().engine.connect() as c:
        row = c.execute(select(d).where(d.c.id == dl_id)).mappings().first()
    if row is None:
        abort(404)
    return dict(row)


@bp.post("/dead-letters/<int:dl_id>/retry")
@require("manage_deliveries")
def retry(dl_id: int) -> Any:
    """Put the record back in the outbox queue (after the cause was fixed, e.g. at the hub)."""
    dl = _dead_letter(dl_id)
    try:
        retry_dead_letter(gw().engine, dl_id, actor(), request.form.get("note", "").strip()[:500] or None)
    except DeadLetterNotOpen:
        flash("该被退回记录不存在或已处理过", "error")
        return redirect(url_for("deliveries.dead_letters"))
    except DeadLetterSuperseded:
        flash(f"{dl['record_key']} 已有更新的版本，不再重推旧版本；请标记已处理", "error")
        return redirect(url_for("deliveries.dead_letters"))
    wake_push_worker()
    flash(f"已将 {dl['record_key']} 重新加入推送队列", "ok")
    return redirect(url_for("deliveries.dead_letters"))


@bp.post("/dead-letters/<int:dl_id>/resolve")
@require("manage_deliveries")
def resolve(dl_id: int) -> Any:
    dl = _dead_letter(dl_id)
    try:
        resolve_dead_letter(gw().engine, dl_id, actor(), request.form.get("note", "").strip()[:500] or None)
    except DeadLetterNotOpen:
        flash("该被退回记录不存在或已处理过", "error")
        return redirect(url_for("deliveries.dead_letters"))
    flash(f"已将 {dl['record_key']} 标记为已处理", "ok")
    return redirect(url_for("deliveries.dead_letters"))


@bp.get("/history/<record_type>/<path:key>")
@require("view")
def history(record_type: str, key: str) -> Any:
    if record_type not in RECORD_TYPES:
        abort(404)
    d, fp = t.dead_letters, t.fingerprints
    with gw().engine.connect() as c:
        versions = [dict(x._mapping) for x in outbox_store.record_rows(c, record_type, key, 100)]
        receipts = [record_receipts.as_row(r) for r in record_receipts.of_record(c, record_type, key, 100)]
        dead = [dict(x) for x in c.execute(
            select(d).where(d.c.record_type == record_type, d.c.record_key == key).order_by(d.c.id.desc())
        ).mappings()]
        finger = c.execute(select(fp).where(fp.c.record_type == record_type, fp.c.record_key == key)).mappings().first()
    if not versions and finger is None:
        abort(404)
    stale_ids = {r["outbox_id"] for r in receipts if r["status"] == "stale"}
    for v in versions:
        v["prov"] = json.loads(v["provenance"] or "{}")
        if v["id"] in stale_ids:  # `delivered` in the outbox, but the hub kept its newer version
            v["state"] = "stale"
        v["record"] = json.loads(v["data"]) if v["data"] else None
    return render_template(
        "history.html", rt=RECORD_TYPES[record_type], key=key, versions=versions, receipts=receipts, dead=dead,
        finger=finger, state_labels=status.STATE_LABELS, receipt_labels=status.RECEIPT_LABELS, resolutions=RESOLUTIONS,
    )

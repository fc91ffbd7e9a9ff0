"""The operators' page of forwarding to the upper hub (上级转发): the queue, upward batches and their receipts."""

from __future__ import annotations

import json
from typing import Any

from flask import abort, render_template, request
from sqlalchemy import select

from gateway.accounts.web import require
from gateway.hub import tables
from gateway.hub.forward import outbox
from gateway.hub.forward.upstream import batch_records
from gateway.hub.ui.views import _common, _engine, _hub, bp
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.receipts import ReceiptInvalid, expanded, is_compact, verify_receipt
from gateway.protocol.suites import suite_of

STATE_LABELS = {"sent": "待回执", "delivered": "已送达", "refused": "被上级拒收"}
PAGE = 50


@bp.get("/forwarding")
@require("view")
def forwarding() -> Any:
    f, o = tables.forward_batches.c, tables.forward_outbox.c
    state, batch_id = request.args.get("state", ""), request.args.get("batch_id", "").strip()
    q = select(f.forward_id, f.department, f.records, f.state, f.attempts, f.last_error, f.claimed_at,
               f.delivered_at, f.log_seq).order_by(f.claimed_at.desc()).limit(PAGE)
    if state in STATE_LABELS:
        q = q.where(f.state == state)
    if batch_id:  # the upward batches that carried this batch's records (from the receipts view)
        q = q.where(f.forward_id.in_(select(o.forward_id).where(o.batch_id == batch_id)))
    with _engine().connect() as c:
        rows = [dict(r) for r in c.execute(q).mappings()]
    up = _hub().config.upstream
    return render_template("hub_ui/forwarding.html", rows=rows, counts=outbox.counts(_engine()), upstream=up,
                           state=state, batch_id=batch_id, state_labels=STATE_LABELS, **_common())


@bp.get("/forwarding/<forward_id>")
@require("view")
def forward_batch(forward_id: str) -> Any:
    f, o = tables.forward_batches.c, tables.forward_outbox.c
    with _engine().connect() as c:
        row = c.execute(select(tables.forward_batches).where(f.forward_id == forward_id)).mappings().first()
        if row is None:
            abort(404)
        carried = list(c.execute(select(o.batch_id).where(o.forward_id == forward_id).order_by(o.queued_at)).scalars())
        body = c.execute(select(tables.forward_bodies.c.body)
                         .where(tables.forward_bodies.c.forward_id == forward_id)).scalar_one()
    doc, problem = None, None
    up = _hub().config.upstream
    if row["receipt"] is not None:
        try:
            key = public_key_from_text(up.hub_key) if up else None
            doc = verify_receipt(bytes(row["receipt"]), row["signature"], key) if key else json.loads(row["receipt"])
            if key and is_compact(doc):  # the per-record results of a compact receipt, its root checked
                doc = expanded(doc, batch_records(bytes(body)), suite_of(key).digest)
        except ReceiptInvalid as e:
            problem = str(e)
    return render_template("hub_ui/forward_batch.html", fb=dict(row), doc=doc, problem=problem, carried=carried,
                           verified=doc is not None and up is not None, state_labels=STATE_LABELS, **_common())

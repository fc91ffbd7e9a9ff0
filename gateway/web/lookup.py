"""查找记录: find a record by key or name, whatever source it came from, with its versions and receipts."""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, render_template, request
from sqlalchemy import Engine, select

from gateway.accounts.web import require
from gateway.push import record_receipts
from gateway.standard.schema import RECORD_TYPES
from gateway.store import outbox as outbox_store
from gateway.store import tables as t
from gateway.sync import problems as cp
from gateway.web import status
from gateway.web.app import gw

bp = Blueprint("lookup", __name__, url_prefix="/find")
LIMIT = 100
# The field a person calls a record by, per type (stock has none: it is found through its material).
NAME_FIELD = {
    name: next((f.name for f in rt.fields if f.name.endswith("_name")), None) for name, rt in RECORD_TYPES.items()
}


# Versions counted per found record (read back through the record's chain of outbox rows).
MAX_VERSIONS = 1000


def _like(q: str) -> str:
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _name(record_type: str, data: dict[str, Any] | None) -> str:
    field = NAME_FIELD.get(record_type)
    return str((data or {}).get(field) or "") if field else ""


def find(engine: Engine, q: str, limit: int = LIMIT) -> list[dict[str, Any]]:
    """Records whose key contains `q`, or whose name does (and the stock of a material found by name)."""
    fp, o = t.fingerprints, t.outbox
    like, low = _like(q), q.lower()
    found: dict[tuple[str, str], None] = {}
    with engine.connect() as c:
        for rt, key in c.execute(
            select(fp.c.record_type, fp.c.record_key)
            .where(fp.c.record_key.like(like, escape="\\"))
            .order_by(fp.c.record_type, fp.c.record_key)
            .limit(limit)
        ):
            found.setdefault((rt, key), None)
        # Names live in the records' JSON: a LIKE narrows, the name field decides.
        materials: list[str] = []
        for rt, key, data in c.execute(
            select(o.c.record_type, o.c.record_key, o.c.data)
            .where(o.c.data.like(like, escape="\\"))
            .order_by(o.c.id.desc())
            .limit(limit * 5)
        ):
            if low in _name(rt, json.loads(data) if data else None).lower():
                found.setdefault((rt, key), None)
                if rt == "material":
                    materials.append(key)
        for m in dict.fromkeys(materials):
            for rt, key in c.execute(
                select(fp.c.record_type, fp.c.record_key)
                .where(fp.c.record_type == "stock", fp.c.record_key.like(_like(m)[:-1] + "|%", escape="\\"))
                .limit(limit)
            ):
                found.setdefault((rt, key), None)
        out = []
        for rt, key in list(found)[:limit]:
            finger = c.execute(select(fp).where(fp.c.record_type == rt, fp.c.record_key == key)).mappings().first()
            versions = len(outbox_store.record_rows(c, rt, key, MAX_VERSIONS, (o.c.id,)))
            newest = outbox_store.latest_row(c, rt, key, (o.c.id, o.c.state, o.c.data, o.c.source))
            last = newest._mapping if newest is not None else None
            got = record_receipts.of_record(c, rt, key, 1)
            receipt = {"status": got[0].status, "seq": got[0].seq, "received_at": got[0].received_at} if got else None
            data = json.loads(last["data"]) if last and last["data"] else None
            out.append(
                {
                    "record_type": rt,
                    "record_key": key,
                    "name": _name(rt, data),
                    "source": finger["source"] if finger else (last["source"] if last else ""),
                    "seq": finger["seq"] if finger else None,
                    "deleted": bool(finger and finger["deleted"]),
                    "state": last["state"] if last else None,
                    "versions": versions,
                    "receipt": dict(receipt) if receipt else None,
                }
            )
    return out


def refused(engine: Engine, q: str, limit: int = LIMIT) -> list[dict[str, Any]]:
    """Refused rows (问题数据) whose record key contains `q`: records that never reached the outbox."""
    c_ = t.current_problems
    with engine.connect() as c:
        rows = [
            dict(r)
            for r in c.execute(
                select(c_)
                .where(cp.open_filter(), c_.c.record_key.like(_like(q), escape="\\"))
                .order_by(c_.c.id)
                .limit(limit)
            ).mappings()
        ]
    for r in rows:
        r["label"] = cp.label_of(r["record_type"], r["field"])
    return rows


@bp.get("/")
@require("view")
def index() -> Any:
    q = (request.args.get("q") or "").strip()[:100]
    engine = gw().engine
    results = find(engine, q) if q else []
    return render_template(
        "find.html",
        q=q,
        results=results,
        problems=refused(engine, q) if q else [],
        types=RECORD_TYPES,
        state_labels=status.STATE_LABELS,
        receipt_labels=status.RECEIPT_LABELS,
        limit=LIMIT,
    )

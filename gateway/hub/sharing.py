"""Reading records by permission: keyset pages in hub_seq order, confidential fields withheld."""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, select
from sqlalchemy.engine import Connection

from gateway.hub import tables
from gateway.standard.schema import RECORD_TYPES

DEFAULT_LIMIT = 500
MAX_LIMIT = 5000
CONFIDENTIAL = {t: tuple(f.name for f in rt.fields if f.confidential) for t, rt in RECORD_TYPES.items()}


def read_page(
    conn: Connection, owner: str, record_type: str, after: int, limit: int, confidential: bool
) -> dict[str, Any]:
    """One page of `owner`'s `record_type` records with hub_seq > after."""
    r = tables.records.c
    q = (
        select(r.department, r.type, r.key, r.seq, r.version, r.updated_at, r.deleted, r.hub_seq, r.data)
        .where(and_(r.department == owner, r.type == record_type, r.hub_seq > after))
        .order_by(r.hub_seq)
        .limit(limit)
    )
    hidden = () if confidential else CONFIDENTIAL[record_type]
    out = []
    for row in conn.execute(q).mappings():
        data = row["data"]
        if data is not None and hidden:
            data = {k: v for k, v in data.items() if k not in hidden}
        out.append({
            "department": row["department"], "type": row["type"], "key": row["key"], "seq": int(row["seq"]),
            "version": row["version"], "updated_at": row["updated_at"], "deleted": bool(row["deleted"]),
            "hub_seq": int(row["hub_seq"]), "data": data,
        })
    nxt = str(out[-1]["hub_seq"]) if len(out) == limit else None
    return {"records": out, "next": nxt, "withheld": list(hidden)}

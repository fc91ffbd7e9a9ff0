"""Bulk record writes, for callers outside a batch's transaction: through the store of the connection.

The batch path writes through `gateway.hub.store.HubStore.write`; this is the same write of record rows
and their history on an open transaction (`stored`: the (type, key) pairs the hub already holds; every
other row is a new key, which PostgreSQL COPYs straight into `records`).
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

from sqlalchemy.engine import Connection

from gateway.hub.store import store_for


def write_records(conn: Connection, rows: list[dict[str, Any]], stored: Container[tuple[str, str]]) -> None:
    """Upsert the accepted records (one row per key) and add their history rows."""
    store_for(conn).write_records(rows, {(r["type"], r["key"]) for r in rows if (r["type"], r["key"]) not in stored})

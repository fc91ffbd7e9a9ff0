"""Bulk writes of a batch: COPY on PostgreSQL, executemany on SQLite.

On PostgreSQL the accepted records of keys the hub does not hold yet (the
caller read the stored state under the department's lock, and only a batch of
that department writes its records) are COPY'd straight into `records`: a
plain insert, without the staging copy and the speculative insertion of
INSERT ... ON CONFLICT, which cost about twice as much per row. Records of keys
already stored go through a per-connection temporary table and one
INSERT ... SELECT ... ON CONFLICT DO UPDATE. History rows and per-record
receipts are COPY'd straight in. That keeps a batch to a handful of round
trips whatever its size.
None of these rows carries the batch's log_seq (only known under the hub's
write lock): they name their batch (batch_id), so they are written before it,
under the department's lock only.
"""

from __future__ import annotations

from collections.abc import Container
from typing import Any

import orjson
from psycopg.types.json import set_json_dumps
from sqlalchemy import insert
from sqlalchemy.engine import Connection

from gateway.hub import tables

RECORD_COLS = ("department", "type", "key", "seq", "version", "data", "updated_at", "deleted", "provenance",
               "hub_seq", "batch_id", "received_at")
RECEIPT_COLS = ("batch_id", "department", "type", "key", "seq", "status", "reasons", "hub_time")
_UPDATE_COLS = RECORD_COLS[3:]

_PG_TEMP = """CREATE TEMP TABLE IF NOT EXISTS hub_records_in (
  department text, type text, key text, seq bigint, version text, data jsonb, updated_at text,
  deleted boolean, provenance jsonb, hub_seq bigint, batch_id text, received_at text) ON COMMIT DELETE ROWS"""
_PG_MERGE = (
    f"INSERT INTO records ({', '.join(RECORD_COLS)}) SELECT {', '.join(RECORD_COLS)} FROM hub_records_in "
    f"ON CONFLICT (department, type, key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _UPDATE_COLS)}"
)
_PG_COPY_NEW = f"COPY records ({', '.join(RECORD_COLS)}) FROM STDIN"
_PG_COPY_STAGED = f"COPY hub_records_in ({', '.join(RECORD_COLS)}) FROM STDIN"
HISTORY_COLS = ("department", "type", "key", "seq", "version", "op", "hub_seq", "batch_id", "received_at")
_PG_COPY_HISTORY = f"COPY record_history ({', '.join(HISTORY_COLS)}) FROM STDIN"


# The COPY's column types, so that psycopg dumps data/provenance as jsonb itself, with orjson: its bytes
# go straight into the COPY buffer (no decode to str and re-encode to UTF-8 per value; about half the
# client CPU of writing a record row).
_RECORD_PG_TYPES = ("text", "text", "text", "int8", "text", "jsonb", "text", "bool", "jsonb", "int8", "text", "text")


# SQLite: plain SQL, as the JSON columns' type would write them (orjson text; None as NULL). The SQLAlchemy
# upsert construct was compiled anew for every batch (its ON CONFLICT clause is not cached), ~20% of a
# one-record batch's CPU at a SQLite hub.
_SQLITE_UPSERT = (
    f"INSERT INTO records ({', '.join(RECORD_COLS)}) VALUES ({', '.join('?' * len(RECORD_COLS))}) "
    f"ON CONFLICT (department, type, key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _UPDATE_COLS)}"
)


def _json_text(v: object) -> str | None:
    return None if v is None else orjson.dumps(v).decode("utf-8")


def _record_row(r: dict[str, Any]) -> tuple:
    return (r["department"], r["type"], r["key"], r["seq"], r["version"], r["data"], r["updated_at"],
            r["deleted"], r["provenance"], r["hub_seq"], r["batch_id"], r["received_at"])


def write_records(conn: Connection, rows: list[dict[str, Any]], stored: Container[tuple[str, str]]) -> None:
    """Upsert the accepted records (one row per key) and add their history rows.

    `stored`: the (type, key) pairs of this department the hub already holds, read under the
    department's lock; every other row is a new key and is inserted without a conflict check.
    """
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        set_json_dumps(orjson.dumps, context=cur)
        new = [r for r in rows if (r["type"], r["key"]) not in stored]
        if new:
            with cur.copy(_PG_COPY_NEW) as copy:
                copy.set_types(_RECORD_PG_TYPES)
                for r in new:
                    copy.write_row(_record_row(r))
        if len(new) < len(rows):
            cur.execute(_PG_TEMP)
            with cur.copy(_PG_COPY_STAGED) as copy:
                copy.set_types(_RECORD_PG_TYPES)
                for r in rows:
                    if (r["type"], r["key"]) in stored:
                        copy.write_row(_record_row(r))
            cur.execute(_PG_MERGE)
        with cur.copy(_PG_COPY_HISTORY) as copy:
            for r in rows:
                copy.write_row((r["department"], r["type"], r["key"], r["seq"], r["version"],
                                "delete" if r["deleted"] else "upsert", r["hub_seq"], r["batch_id"], r["received_at"]))
        return
    conn.exec_driver_sql(_SQLITE_UPSERT, [
        (r["department"], r["type"], r["key"], r["seq"], r["version"], _json_text(r["data"]), r["updated_at"],
         r["deleted"], _json_text(r["provenance"]), r["hub_seq"], r["batch_id"], r["received_at"])
        for r in rows
    ])
    conn.execute(insert(tables.record_history), [
        {"department": r["department"], "type": r["type"], "key": r["key"], "seq": r["seq"], "version": r["version"],
         "op": "delete" if r["deleted"] else "upsert", "hub_seq": r["hub_seq"], "batch_id": r["batch_id"],
         "received_at": r["received_at"]}
        for r in rows
    ])


def write_receipts(conn: Connection, rows: list[tuple]) -> None:
    """Per-record receipt rows, each a tuple in RECEIPT_COLS order."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        cur = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
        with cur.copy(f"COPY receipts ({', '.join(RECEIPT_COLS)}) FROM STDIN") as copy:
            for r in rows:
                copy.write_row(r)
        return
    conn.execute(insert(tables.receipts), [dict(zip(RECEIPT_COLS, r, strict=True)) for r in rows])

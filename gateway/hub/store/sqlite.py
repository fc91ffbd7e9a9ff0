"""SQLite: the batch's transaction under BEGIN IMMEDIATE (the write lock covers the department's too).

Statements are SQLAlchemy Core on `gateway.hub.tables`, built and compiled once at import: the upsert as
SQLite text (its ON CONFLICT clause is not cached by SQLAlchemy, ~20% of a one-record batch's CPU when
compiled per batch), the state read with an expanding IN that SQLAlchemy caches.
"""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import and_, bindparam, func, insert, literal_column, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, RootTransaction

from gateway.hub import tables
from gateway.hub.db import lock_head
from gateway.hub.decide import Candidate, Outcome, Stored, Wanted
from gateway.hub.receipt_log import INSERT_ENTRY, MOVE_HEAD
from gateway.hub.registry import read_version
from gateway.hub.store import (
    KEY_COLS,
    RECEIPT_COLS,
    RECORD_COLS,
    SMALL_BATCH,
    UPDATE_COLS,
    Begun,
    history_args,
    history_of_batch,
    history_row,
    receipt_tuple,
    record_tuple,
)

_r = tables.records.c


def _in_json(name: str) -> Any:
    """The values of one JSON array parameter, for `x IN (...)`: one bound value however many keys (an
    expanding IN rendered a parameter per key, and SQLAlchemy processed each, for every batch)."""
    return select(literal_column("value")).select_from(func.json_each(bindparam(name))).scalar_subquery()


_STATE = select(_r.key, _r.seq, _r.version, _r.deleted).where(
    and_(_r.department == bindparam("d"), _r.type == bindparam("t"), _r.key.in_(_in_json("keys")))
)
_MODES = select(_r.key, _r.data).where(
    and_(
        _r.department == bindparam("d"),
        _r.type == "material",
        _r.key.in_(_in_json("keys")),
        _r.deleted.is_(False),
    )
)
_HELD = select(tables.attachments.c.sha256).where(tables.attachments.c.sha256.in_(_in_json("h")))
# A batch's history rows from the records it wrote, in one statement.
_HISTORY_OF_BATCH = history_of_batch(_r.type.in_(_in_json("types")))
_BATCH_BY_ID = select(
    tables.batches.c.department, tables.batches.c.request_digest, tables.batches.c.receipt, tables.batches.c.signature
).where(tables.batches.c.batch_id == bindparam("b_id"))
_HEAD_HUB_SEQ = select(tables.log_head.c.hub_seq).where(tables.log_head.c.id == 1)
_BUMP = (
    update(tables.records)
    .where(and_(_r.department == bindparam("b_dept"), _r.type == bindparam("b_type"), _r.key == bindparam("b_key")))
    .values(seq=bindparam("b_seq"))
)
_INSERT_HISTORY = insert(tables.record_history)
_INSERT_BATCH = insert(tables.batches)
_QUEUE_FORWARD = insert(tables.forward_outbox)


def _upsert_text() -> str:
    stmt = sqlite.insert(tables.records).values({c: bindparam(c) for c in RECORD_COLS})
    stmt = stmt.on_conflict_do_update(index_elements=list(KEY_COLS), set_={c: stmt.excluded[c] for c in UPDATE_COLS})
    compiled = stmt.compile(dialect=sqlite.dialect())
    assert tuple(compiled.positiontup or ()) == RECORD_COLS  # the rows below are tuples in this order
    return str(compiled)


def _nonce_text() -> str:
    compiled = sqlite.insert(tables.nonces).on_conflict_do_nothing().compile(dialect=sqlite.dialect())
    assert tuple(compiled.positiontup or ()) == NONCE_COLS
    return str(compiled)


def _receipts_text() -> str:
    compiled = insert(tables.receipts).values({c: bindparam(c) for c in RECEIPT_COLS}).compile(dialect=sqlite.dialect())
    assert tuple(compiled.positiontup or ()) == RECEIPT_COLS
    return str(compiled)


# Text, with row tuples: SQLAlchemy's executemany processed every receipt's parameters in Python.
_INSERT_RECEIPTS = _receipts_text()
NONCE_COLS = ("key_id", "nonce", "expires_at")  # the order of `nonce` as HubStore.begin takes it
_NONCE_IF_NEW = _nonce_text()  # text, as the upsert: SQLAlchemy would compile its ON CONFLICT per batch
# Plain text with the JSON columns as their type would write them (orjson text; None as NULL).
_UPSERT = _upsert_text()
_JSON_COLS = frozenset(
    c.name for c in tables.records.columns if isinstance(c.type.dialect_impl(sqlite.dialect()), tables.JSON)
)


def _json_text(v: object) -> str | None:
    return None if v is None else orjson.dumps(v).decode("utf-8")


_JSON_AT = tuple(i for i, c in enumerate(RECORD_COLS) if c in _JSON_COLS)


def _row(r: dict[str, Any]) -> tuple:
    """A record row in RECORD_COLS order, its JSON columns as text (as their column type would write them)."""
    row = list(record_tuple(r))
    for i in _JSON_AT:
        row[i] = _json_text(row[i])
    return tuple(row)


def _json_list(items: set[str] | list[str]) -> str:
    return orjson.dumps(sorted(items)).decode("utf-8")


class SqliteHubStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._tx: RootTransaction | None = None
        self._small = True

    def begin(
        self,
        department: str,
        batch_id: str,
        *,
        nonce: tuple[str, str, int] | None,
        registry_version: int | None,
        wanted: Wanted | None,
        candidates: list[Candidate],
    ) -> Begun:
        conn = self.conn
        self._small = len(candidates) <= SMALL_BATCH
        self._tx = conn.execution_options(hub_immediate=True).begin()  # BEGIN IMMEDIATE: the write lock
        if registry_version is not None and read_version(conn) != registry_version:
            return Begun(registry_ok=False)
        if nonce is not None:
            if conn.exec_driver_sql(_NONCE_IF_NEW, nonce).rowcount != 1:
                return Begun(nonce_new=False)
        row = conn.execute(_BATCH_BY_ID, {"b_id": batch_id}).first()
        if row is not None:
            return Begun(seen=tuple(row))
        return Begun(stored=self._stored(department, wanted) if wanted is not None else None)

    def _stored(self, department: str, wanted: Wanted) -> Stored:
        conn, out = self.conn, Stored()
        for typ, keys in wanted.keys_by_type.items():
            for key, seq, version, deleted in conn.execute(_STATE, {"d": department, "t": typ, "keys": _json_list(keys)}):
                out.state[(typ, key)] = (int(seq), version, bool(deleted))
        if wanted.hashes:
            out.held.update(h for (h,) in conn.execute(_HELD, {"h": _json_list(wanted.hashes)}))
        if wanted.no_depot:
            for key, data in conn.execute(_MODES, {"d": department, "keys": _json_list(wanted.no_depot)}):
                if isinstance(data, dict) and data.get("reserve_mode"):
                    out.modes[key] = str(data["reserve_mode"])
        return out

    def end_early(self, *, keep_nonce: bool) -> None:
        # A replay wrote nothing; committing it is as good as undoing it.
        self._finish(commit=True)

    def hub_seqs(self, n: int) -> list[int]:
        # On from log_head.hub_seq, under the write lock held since BEGIN.
        if n == 0:
            return []
        base = int(self.conn.execute(_HEAD_HUB_SEQ).scalar_one())
        return list(range(base + 1, base + n + 1))

    def write(self, department: str, out: Outcome, receipts: list[dict[str, Any]]) -> dict[str, Any]:
        conn = self.conn
        rows = list(out.rows.values())
        if rows and not self._small:  # as on PostgreSQL: the history of what was written, set-based
            conn.exec_driver_sql(_UPSERT, [_row(r) for r in rows])
            args = history_args(department, rows)
            conn.execute(_HISTORY_OF_BATCH, {**args, "types": _json_list(args["types"])})
        else:
            self.write_records(rows, out.new_keys)
        if out.bumps:
            conn.execute(
                _BUMP, [{"b_dept": department, "b_type": t, "b_key": k, "b_seq": s} for (t, k), s in out.bumps.items()]
            )
        if receipts:
            conn.exec_driver_sql(_INSERT_RECEIPTS, [receipt_tuple(r) for r in receipts])
        return lock_head(conn)

    def write_records(self, rows: list[dict[str, Any]], new_keys: set[tuple[str, str]] | None = None) -> None:
        if not rows:
            return
        self.conn.exec_driver_sql(_UPSERT, [_row(r) for r in rows])
        self.conn.execute(_INSERT_HISTORY, [history_row(r) for r in rows])

    def append(
        self, entry: dict[str, Any], move: dict[str, Any], batch_row: dict[str, Any], forward: dict[str, Any] | None = None
    ) -> None:
        conn = self.conn
        conn.execute(INSERT_ENTRY, entry)
        conn.execute(MOVE_HEAD, move)
        conn.execute(_INSERT_BATCH, batch_row)
        if forward is not None:
            conn.execute(_QUEUE_FORWARD, forward)
        self._finish(commit=True)

    def rollback(self) -> None:
        self._finish(commit=False)

    def _finish(self, *, commit: bool) -> None:
        tx, self._tx = self._tx, None
        if tx is None or not tx.is_active:
            return
        if commit:
            tx.commit()
        else:
            try:
                tx.rollback()
            except Exception:  # noqa: BLE001 - the original error is re-raised by the caller
                pass

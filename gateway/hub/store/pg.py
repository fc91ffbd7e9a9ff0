"""PostgreSQL: the batch's transaction on the request's psycopg connection, a round trip per step.

Steps, each one pipeline: reads under the department's lock (advisory lock, registry version, nonce,
batch id, the stored state, attachments, 储备方式, and for a small batch its hub_seq values); the record
writes and the log_head lock; the log append, the batch and the commit. Building SQLAlchemy statements
and a round trip per statement was most of the hub's and PostgreSQL's time for a small batch, so the
statements are compiled once at import from `gateway.hub.tables` (SQLAlchemy Core) and sent as text,
prepared by psycopg after a few uses.

Record rows: up to `SMALL_BATCH` records, one pipelined upsert-with-history statement per row. Larger
batches: the rows of keys the hub does not hold yet (read under the department's lock, and only a batch
of that department writes its records) are COPY'd straight into `records` (no speculative insertion);
the rows of stored keys are COPY'd into a temporary staging table and merged with one set-based
INSERT ... SELECT ... ON CONFLICT DO UPDATE; history rows and receipts are COPY'd; the seq advances of
duplicates are one UPDATE ... FROM over a JSON array. A handful of round trips whatever the batch's size.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg
from psycopg.types.json import set_json_dumps
from sqlalchemy import Column, MetaData, Table, any_, bindparam, case, insert, literal_column, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateTable

from gateway.hub import tables
from gateway.hub.db import DEPARTMENT_LOCK
from gateway.hub.decide import Candidate, Outcome, Stored, Wanted
from gateway.hub.receipt_log import ENTRY_FIELDS
from gateway.hub.registry import PG_VERSION
from gateway.hub.store import (
    HISTORY_COLS,
    KEY_COLS,
    RECEIPT_COLS,
    RECORD_COLS,
    SMALL_BATCH,
    UPDATE_COLS,
    BatchIdTaken,
    Begun,
    columns,
    history_args,
    history_of_batch,
    history_tuple,
    receipt_tuple,
    record_tuple,
)

_DIALECT = postgresql.psycopg.dialect()  # type: ignore[attr-defined]


def _sql(stmt: Any) -> str:
    """Core statement as psycopg text with %(name)s parameters."""
    return str(stmt.compile(dialect=_DIALECT))


def _copy(table: Table, cols: tuple[str, ...]) -> str:
    return f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"


def _pg_type(table: Table, col: str) -> str:
    return table.c[col].type.dialect_impl(_DIALECT).compile(dialect=_DIALECT).split("(")[0].lower()


_records, _history = tables.records, tables.record_history
_r = _records.c

# The staging table: the records' written columns, per connection, emptied by each commit.
_staging = Table(
    "hub_records_in",
    MetaData(),
    *(Column(c, _records.c[c].type) for c in RECORD_COLS),
    prefixes=["TEMPORARY"],
    postgresql_on_commit="DELETE ROWS",
)
_CREATE_STAGING = str(CreateTable(_staging, if_not_exists=True).compile(dialect=_DIALECT))


def _merge() -> str:
    stmt = pg_insert(_records).from_select(list(RECORD_COLS), select(*(_staging.c[c] for c in RECORD_COLS)))
    return _sql(
        stmt.on_conflict_do_update(index_elements=list(KEY_COLS), set_={c: stmt.excluded[c] for c in UPDATE_COLS})
    )


def _upsert_with_history() -> str:
    """One record's upsert and, from what it wrote, its history row: one statement."""
    ins = pg_insert(_records).values({c: bindparam(c) for c in RECORD_COLS})
    ins = ins.on_conflict_do_update(index_elements=list(KEY_COLS), set_={c: ins.excluded[c] for c in UPDATE_COLS})
    r = ins.returning(*(_r[c] for c in RECORD_COLS)).cte("r")
    op = case((r.c.deleted, literal_column("'delete'")), else_=literal_column("'upsert'"))
    cols = [op.label("op") if c == "op" else r.c[c] for c in HISTORY_COLS]
    return _sql(insert(_history).from_select(list(HISTORY_COLS), select(*cols)))


_MERGE = _merge()
# A large batch's history rows from the records it wrote, in one statement (they were a third of its COPY rows).
_HISTORY_OF_BATCH = _sql(history_of_batch(_r.type == any_(bindparam("types"))))
_UPSERT_WITH_HISTORY = _upsert_with_history()
_COPY_NEW = _copy(_records, RECORD_COLS)
_COPY_STAGED = _copy(_staging, RECORD_COLS)
_COPY_HISTORY = _copy(_history, HISTORY_COLS)
_COPY_RECEIPTS = _copy(tables.receipts, RECEIPT_COLS)
# The COPY's column types, so that psycopg dumps data/provenance as jsonb itself, with orjson: its bytes go
# straight into the COPY buffer (no decode to str and re-encode per value; about half the client CPU of a row).
_RECORD_TYPES = tuple(_pg_type(_records, c) for c in RECORD_COLS)
_JSON_COLS = frozenset(c for c, t in zip(RECORD_COLS, _RECORD_TYPES, strict=True) if t == "jsonb")
_INSERT_RECEIPT = _sql(insert(tables.receipts).values({c: bindparam(c) for c in RECEIPT_COLS}).inline())
_BATCH_COLS = columns(tables.batches)
_ONE = literal_column("1")  # the one log_head row: a constant in the text, not a parameter
_LOCK_HEAD = _sql(
    select(
        tables.log_head.c.log_seq, tables.log_head.c.log_head, tables.log_head.c.hub_seq, tables.log_head.c.signature
    )
    .where(tables.log_head.c.id == _ONE)
    .with_for_update()
)
# Under the log_head lock, one statement: the log entry, the head's move and the batch with its signed receipt.
_ENTRY = insert(tables.receipt_log).values({c: bindparam(c) for c in (*ENTRY_FIELDS, "entry_hash", "hash_alg")}).cte("entry")
_MOVE = (
    update(tables.log_head)
    .where(tables.log_head.c.id == _ONE)
    .values(
        log_seq=bindparam("h_seq"),
        log_head=bindparam("h_head"),
        hub_seq=bindparam("h_hub_seq"),
        signature=bindparam("h_sig"),
        signed_at=bindparam("h_at"),
    )
    .cte("head")
)
_STORE_BATCH = insert(tables.batches).values({c: bindparam(f"b_{c}") for c in _BATCH_COLS}).inline()
_APPEND_AND_STORE = _sql(_STORE_BATCH.add_cte(_ENTRY).add_cte(_MOVE))
# The same, and the batch queued for the upper hub in the same statement (a hub with [upstream]).
_FORWARD_COLS = columns(tables.forward_outbox)
_QUEUE = insert(tables.forward_outbox).values({c: bindparam(f"f_{c}") for c in _FORWARD_COLS}).cte("queued")
_APPEND_STORE_AND_QUEUE = _sql(_STORE_BATCH.add_cte(_ENTRY).add_cte(_MOVE).add_cte(_QUEUE))

# Reads: the keys as one JSON array parameter (orjson, C) instead of a text[] that psycopg dumps element by
# element in Python (~4% of the hub's CPU); ARRAY(...) keeps `key = ANY` an index condition.
_DEPT_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_NONCE_IF_NEW = _sql(
    pg_insert(tables.nonces).values({c: bindparam(c) for c in columns(tables.nonces)}).inline().on_conflict_do_nothing()
)
_BATCH_BY_ID = _sql(
    select(
        tables.batches.c.department,
        tables.batches.c.request_digest,
        tables.batches.c.receipt,
        tables.batches.c.signature,
    ).where(tables.batches.c.batch_id == bindparam("b_id"))
)
# All (type, key) pairs in one query; the lateral join keeps each pair an index lookup on uq_records_key.
_STATE_PAIRS = (
    "SELECT r.type, r.key, r.seq, r.version, r.deleted FROM jsonb_array_elements(%s::jsonb) AS p(tk) "
    "CROSS JOIN LATERAL (SELECT type, key, seq, version, deleted FROM records "
    "WHERE department = %s AND type = p.tk->>0 AND key = p.tk->>1) r"
)
_STATE_BY_TYPE = (
    "SELECT type, key, seq, version, deleted FROM records WHERE department = %s AND type = %s "
    "AND key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
)
_HELD = "SELECT sha256 FROM attachments WHERE sha256 = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
_MODES = (
    "SELECT key, data->'reserve_mode' FROM records WHERE department = %s AND type = 'material' AND NOT deleted "
    "AND key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
)
_SEQS = "SELECT array(SELECT nextval('hub_seq_counter') FROM generate_series(1, %s))"
# The seq advances of a batch's duplicates: one statement, set-based.
_BUMPS = (
    "UPDATE records SET seq = v.seq FROM jsonb_to_recordset(%s::jsonb) AS v(type text, key text, seq bigint) "
    "WHERE records.department = %s AND records.type = v.type AND records.key = v.key"
)


def _json_text(v: object) -> str | None:
    return None if v is None else orjson.dumps(v).decode("utf-8")


class PgHubStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # psycopg; its transaction is this batch's (BEGIN goes with the first step)
        self.pg: psycopg.Connection = conn.connection.driver_connection  # type: ignore[assignment]
        self._small = True
        self._seqs: list[int] | None = None

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
        pg, dept = self.pg, department
        self._small = small = len(candidates) <= SMALL_BATCH
        c_nonce = c_held = c_modes = c_seqs = c_registry = None
        state_cursors = []
        with pg.pipeline():
            # Under the department's lock, held to the commit: nothing else writes this department's records
            # (nor draws its hub_seq) meanwhile, and batches of other departments run alongside.
            pg.execute(_DEPT_LOCK, (DEPARTMENT_LOCK, dept))
            if registry_version is not None:
                c_registry = pg.execute(PG_VERSION)
            if nonce is not None:
                c_nonce = pg.execute(_NONCE_IF_NEW, dict(zip(("key_id", "nonce", "expires_at"), nonce, strict=True)))
            c_seen = pg.execute(_BATCH_BY_ID, {"b_id": batch_id})
            if wanted is not None:
                if small:
                    pairs = [(t, k) for t, keys in wanted.keys_by_type.items() for k in keys]
                    if pairs:
                        state_cursors.append(pg.execute(_STATE_PAIRS, (_json_text(pairs), dept)))
                else:
                    for typ, keys in wanted.keys_by_type.items():
                        state_cursors.append(pg.execute(_STATE_BY_TYPE, (dept, typ, _json_text(list(keys)))))
                if wanted.hashes:
                    c_held = pg.execute(_HELD, (_json_text(sorted(wanted.hashes)),))
                if wanted.no_depot:
                    c_modes = pg.execute(_MODES, (dept, _json_text(sorted(wanted.no_depot))))
                if small and wanted.may_accept:
                    # As many as could be accepted, drawn in this round trip; unused ones are a gap in hub_seq.
                    c_seqs = pg.execute(_SEQS, (wanted.may_accept,))
        if c_registry is not None and (c_registry.fetchone() or (None,))[0] != registry_version:
            return Begun(registry_ok=False)
        if c_nonce is not None and c_nonce.rowcount != 1:
            return Begun(nonce_new=False)
        row = c_seen.fetchone()
        if row is not None:
            return Begun(seen=tuple(row))
        if wanted is None:
            return Begun()
        stored = Stored()
        stored.state = {(t, k): (int(s), v, bool(d)) for c in state_cursors for t, k, s, v, d in c}
        if c_held is not None:
            stored.held = {h for (h,) in c_held}
        if c_modes is not None:
            stored.modes = {k: str(m) for k, m in c_modes if m}
        if c_seqs is not None:
            self._seqs = sorted(int(v) for v in c_seqs.fetchone()[0])
        return Begun(stored=stored)

    def end_early(self, *, keep_nonce: bool) -> None:
        if not keep_nonce:
            self.pg.rollback()
            return
        with self.pg.pipeline():  # only the nonce was written: no need to wait for the disk
            self.pg.execute("SET LOCAL synchronous_commit TO off")
            self.pg.commit()

    def hub_seqs(self, n: int) -> list[int]:
        # From a sequence, under the department's lock held to the commit: within a department hub_seq grows
        # in commit order, what the read API's keyset pages need.
        if n == 0:
            return []
        if self._seqs is not None:
            return self._seqs[:n]
        return sorted(int(v) for v in self.pg.execute(_SEQS, (n,)).fetchone()[0])

    def write(self, department: str, out: Outcome, receipts: list[dict[str, Any]]) -> dict[str, Any]:
        pg = self.pg
        rows = list(out.rows.values())
        c_head = pg.cursor()
        if self._small:
            with pg.pipeline():
                cur = pg.cursor()
                if rows:
                    cur.executemany(
                        _UPSERT_WITH_HISTORY,
                        [{c: _json_text(r[c]) if c in _JSON_COLS else r[c] for c in RECORD_COLS} for r in rows],
                    )
                if out.bumps:
                    cur.execute(_BUMPS, self._bump_args(department, out))
                if receipts:
                    cur.executemany(_INSERT_RECEIPT, receipts)
                # The hub's write lock, to the commit: only the log append and the signed receipt.
                c_head.execute(_LOCK_HEAD)
        else:
            if rows:
                self._upsert(rows, out.new_keys)
                pg.execute(_HISTORY_OF_BATCH, history_args(department, rows))
            if out.bumps:
                pg.execute(_BUMPS, self._bump_args(department, out))
            if receipts:
                with pg.cursor().copy(_COPY_RECEIPTS) as copy:
                    for r in receipts:
                        copy.write_row(receipt_tuple(r))
            c_head.execute(_LOCK_HEAD)
        log_seq, log_head, hub_seq, signature = c_head.fetchone()  # type: ignore[misc]
        return {"id": 1, "log_seq": log_seq, "log_head": log_head, "hub_seq": hub_seq, "signature": signature}

    @staticmethod
    def _bump_args(department: str, out: Outcome) -> tuple[str, str]:
        return _json_text([{"type": t, "key": k, "seq": s} for (t, k), s in out.bumps.items()]), department  # type: ignore[return-value]

    def write_records(self, rows: list[dict[str, Any]], new_keys: set[tuple[str, str]] | None = None) -> None:
        """COPY the rows of new keys into `records`, stage and merge the others; COPY their history rows."""
        if not rows:
            return
        cur = self._upsert(rows, new_keys or set())
        with cur.copy(_COPY_HISTORY) as copy:
            for r in rows:
                copy.write_row(history_tuple(r))

    def _upsert(self, rows: list[dict[str, Any]], new_keys: set[tuple[str, str]]) -> psycopg.Cursor:
        """COPY the rows of new keys into `records`, stage and merge the others."""
        cur = self.pg.cursor()
        set_json_dumps(orjson.dumps, context=cur)
        new = [r for r in rows if (r["type"], r["key"]) in new_keys]
        if new:
            with cur.copy(_COPY_NEW) as copy:
                copy.set_types(_RECORD_TYPES)
                for r in new:
                    copy.write_row(record_tuple(r))
        if len(new) < len(rows):
            cur.execute(_CREATE_STAGING)
            with cur.copy(_COPY_STAGED) as copy:
                copy.set_types(_RECORD_TYPES)
                for r in rows:
                    if (r["type"], r["key"]) not in new_keys:
                        copy.write_row(record_tuple(r))
            cur.execute(_MERGE)
        return cur

    def append(
        self, entry: dict[str, Any], move: dict[str, Any], batch_row: dict[str, Any], forward: dict[str, Any] | None = None
    ) -> None:
        pg = self.pg
        args = {**entry, **move, **{f"b_{c}": v for c, v in batch_row.items()}}
        if forward is not None:
            args.update({f"f_{c}": v for c, v in forward.items()})
        try:
            with pg.pipeline():
                pg.execute(_APPEND_AND_STORE if forward is None else _APPEND_STORE_AND_QUEUE, args)
                pg.commit()  # synchronous_commit on: durable before the receipt is answered
        except psycopg.errors.UniqueViolation as e:
            if e.diag.constraint_name != "batches_pkey":
                raise
            pg.rollback()
            raise BatchIdTaken from e

    def rollback(self) -> None:
        try:
            if not self.pg.closed:
                self.pg.rollback()
        except Exception:  # noqa: BLE001 - the original error is re-raised by the caller
            pass

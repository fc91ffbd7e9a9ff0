"""The hub's store of batches: one `HubStore` interface, a SQLite and a PostgreSQL implementation.

A batch's transaction, the same on both (driven by `gateway.hub.ingest.store_batch`):
`begin` (under the department's lock: the registry version, the nonce, a batch id seen before, and the
stored state of what the batch names), the decision (`gateway.hub.decide`, pure), `hub_seqs`, `write`
(records, history, seq advances, per-record receipts; then the hub's write lock, the head row), and
`append` (receipt-log entry, head, batch row with its signed receipt; commit). The stores differ only in
how they move rows: SQLite with executemany under BEGIN IMMEDIATE, PostgreSQL with pipelines, COPY into
a staging table and one set-based upsert per batch (`gateway.hub.store.pg`). Their SQL is built from
the tables `gateway.hub.tables` declares, so no column list is kept by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol

from sqlalchemy import ColumnElement, Insert, Table, bindparam, case, insert, literal_column, select
from sqlalchemy.engine import Connection

from gateway.hub import tables
from gateway.hub.decide import Candidate, Outcome, Stored, Wanted


def columns(table: Table) -> tuple[str, ...]:
    """The columns a row of `table` is written with: all but an auto-increment id."""
    return tuple(c.name for c in table.columns if not (c.primary_key and c.autoincrement is True))


SMALL_BATCH = 32  # records; up to this many, rows go one statement each (PostgreSQL: pipelined), not set-based
RECORD_COLS = columns(tables.records)
HISTORY_COLS = columns(tables.record_history)
RECEIPT_COLS = columns(tables.receipts)
KEY_COLS = ("department", "type", "key")  # uq_records_key
UPDATE_COLS = tuple(c for c in RECORD_COLS if c not in KEY_COLS)


def history_row(r: dict[str, Any]) -> dict[str, Any]:
    """The record_history row of an accepted record row."""
    return {**{c: r[c] for c in HISTORY_COLS if c != "op"}, "op": "delete" if r["deleted"] else "upsert"}


def history_of_batch(type_in: ColumnElement[bool]) -> Insert:
    """The record_history rows of what a batch wrote, from `records` in one statement (no row leaves Python).

    Parameters: d (department), lo/hi (the batch's hub_seq range), b (its batch_id), and those of `type_in`
    (the record types it wrote; with the department and the range, an index range on ix_records_read)."""
    r = tables.records.c
    op = case((r.deleted, literal_column("'delete'")), else_=literal_column("'upsert'"))
    cols = [op.label("op") if c == "op" else r[c] for c in HISTORY_COLS]
    written = select(*cols).where(
        r.department == bindparam("d"), type_in, r.hub_seq.between(bindparam("lo"), bindparam("hi")),
        r.batch_id == bindparam("b"),
    ).order_by(r.hub_seq)
    return insert(tables.record_history).from_select(list(HISTORY_COLS), written)


def history_args(department: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The parameters of `history_of_batch` for a batch's written rows (one batch_id, hub_seq set)."""
    seqs = [r["hub_seq"] for r in rows]
    return {"d": department, "types": sorted({r["type"] for r in rows}), "lo": min(seqs), "hi": max(seqs),
            "b": rows[0]["batch_id"]}


# Row tuples in column order, by itemgetter (C): building them was a few µs per record in Python loops.
record_tuple = itemgetter(*RECORD_COLS)
receipt_tuple = itemgetter(*RECEIPT_COLS)
_OP = HISTORY_COLS.index("op")
_before_op, _after_op = itemgetter(*HISTORY_COLS[:_OP]), itemgetter(*HISTORY_COLS[_OP + 1 :])


def history_tuple(r: dict[str, Any]) -> tuple:
    """The record_history row of an accepted record row, in HISTORY_COLS order."""
    return (*_before_op(r), "delete" if r["deleted"] else "upsert", *_after_op(r))


@dataclass
class Begun:
    """What `HubStore.begin` found under the department's lock."""

    registry_ok: bool = True  # False: the registry moved on since the request was verified
    nonce_new: bool = True  # False: a replay
    seen: tuple | None = None  # (department, request_digest, receipt, signature) of this batch id, if stored
    stored: Stored | None = None  # None when an earlier step answers (or nothing was wanted)


class BatchIdTaken(Exception):
    """PostgreSQL: another department's batch committed this batch id after our check; nothing of ours stays."""


class HubStore(Protocol):
    """One batch's transaction on a request's connection (no SQLAlchemy transaction open on it)."""

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
        """Open the transaction, take the department's lock, record the nonce, look the batch id up and
        (when it is new and `wanted` is given) read the stored state of what the batch names."""
        ...

    def end_early(self, *, keep_nonce: bool) -> None:
        """Finish a batch answered before its records: commit the nonce alone, or undo everything."""
        ...

    def hub_seqs(self, n: int) -> list[int]:
        """`n` increasing hub_seq values for the accepted records, in batch order."""
        ...

    def write(self, department: str, out: Outcome, receipts: list[dict[str, Any]]) -> dict[str, Any]:
        """Write the decided rows, their history, the seq advances and the receipts; then take the hub's
        write lock and return the log head row."""
        ...

    def append(
        self, entry: dict[str, Any], move: dict[str, Any], batch_row: dict[str, Any], forward: dict[str, Any] | None = None
    ) -> None:
        """Append the receipt-log entry, move the head, store the batch with its receipt, queue it for the
        upper hub when `forward` (its forward_outbox row) is given, and commit (durably). Raises
        `BatchIdTaken` (after undoing the batch) when the batch id went to another."""
        ...

    def rollback(self) -> None:
        """Undo the batch after a failure, quietly (the failure is what the caller re-raises)."""
        ...

    def write_records(self, rows: list[dict[str, Any]], new_keys: set[tuple[str, str]] | None = None) -> None:
        """Upsert accepted record rows (one per key) and add their history rows, in the open transaction."""
        ...


def store_for(conn: Connection) -> HubStore:
    if conn.dialect.name == "postgresql":
        from gateway.hub.store.pg import PgHubStore

        return PgHubStore(conn)
    from gateway.hub.store.sqlite import SqliteHubStore

    return SqliteHubStore(conn)

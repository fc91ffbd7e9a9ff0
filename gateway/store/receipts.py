"""Statements of a receipt's one transaction: the signed document, its per-record entries,
dead letters for rejections, and closing returns a later version superseded.

They run on the DB-API cursor of that transaction (gateway/push/receipts.py opens it),
prepared once from the declared tables (gateway/store/prepared.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.engine import Connection

from gateway.store import outbox as outbox_store
from gateway.store.prepared import prepare
from gateway.store.tables import batch_receipts, dead_letters, outbox, receipts


class ReceiptRow(NamedTuple):
    """One receipts row as stored from a verified receipt."""

    outbox_id: int | None
    batch_id: str
    record_type: str
    record_key: str
    seq: int
    status: str
    reasons: str | None  # JSON list
    hub_seq: int | None
    hub_time: str | None
    log_head: str | None
    received_at: str


class DeadLetterRow(NamedTuple):
    outbox_id: int
    record_type: str
    record_key: str
    seq: int
    reasons: str  # JSON list from the hub
    created_at: str


class BatchReceiptRow(NamedTuple):
    batch_id: str
    body: bytes
    signature: str
    hub_key_id: str
    log_seq: int | None
    log_head: str | None
    received_at: str


def _insert(table: Any, row: type[Any], prefix: str = "") -> str:
    stmt = insert(table).values({n: bindparam(n) for n in row._fields})
    prepared = prepare(stmt.prefix_with(prefix) if prefix else stmt)
    if prepared.params != row._fields:
        raise AssertionError(f"{row.__name__} fields {row._fields} != statement parameters {prepared.params}")
    return prepared.sql


_RECEIPT = _insert(receipts, ReceiptRow)
_DEAD_LETTER = _insert(dead_letters, DeadLetterRow)
# OR IGNORE: a second pusher storing the same receipt finds the row and stores nothing twice.
_BATCH_RECEIPT = _insert(batch_receipts, BatchReceiptRow, "OR IGNORE")
# Open returns, read once per receipt that accepted something (the table is small: open ones are few).
_OPEN = prepare(
    select(dead_letters.c.id, dead_letters.c.record_type, dead_letters.c.record_key, dead_letters.c.seq).where(
        dead_letters.c.resolved_at.is_(None)
    )
).sql
_SUPERSEDE = prepare(
    update(dead_letters)
    .where(dead_letters.c.id == bindparam("dead_letter_id"), dead_letters.c.resolved_at.is_(None))
    .values(resolved_at=bindparam("now"), resolved_by="system", resolution="superseded")
)
if _SUPERSEDE.params != ("now", "dead_letter_id"):
    raise AssertionError(f"supersede parameters {_SUPERSEDE.params}")


def store_batch_receipt(cursor: Any, row: BatchReceiptRow) -> bool:
    """The signed document as received; False when it was stored already (by an earlier attempt)."""
    cursor.execute(_BATCH_RECEIPT, row)
    return bool(cursor.rowcount != 0)


def store_results(cursor: Any, rows: Sequence[tuple[Any, ...]]) -> None:
    """Receipt rows in ReceiptRow's field order (plain tuples from the push: faster to bind)."""
    if rows:
        cursor.executemany(_RECEIPT, rows)


def store_dead_letters(cursor: Any, rows: Sequence[DeadLetterRow]) -> None:
    if rows:
        cursor.executemany(_DEAD_LETTER, rows)


def open_returns(cursor: Any) -> list[tuple[int, str, str, int]]:
    """(id, record_type, record_key, seq) of the unresolved dead letters."""
    cursor.execute(_OPEN)
    return list(cursor.fetchall())


def supersede(cursor: Any, dead_letter_ids: Sequence[int], now: str) -> None:
    """Close these returns as superseded by a later version the hub took."""
    if dead_letter_ids:
        cursor.executemany(_SUPERSEDE.sql, [(now, i) for i in dead_letter_ids])


# Reading receipts per record (gateway/push/record_receipts.py): the receipts rows a record has on its own,
# a batch's outbox rows by their claimed id range, and the signed documents.


class Member(NamedTuple):
    """An outbox row of a batch, as a receipt covers it."""

    id: int
    batch_id: str
    record_type: str
    record_key: str
    seq: int
    version: str
    state: str


_MEMBER_COLUMNS = (outbox.c.id, outbox.c.batch_id, outbox.c.record_type, outbox.c.record_key, outbox.c.seq,
                   outbox.c.version, outbox.c.state)


def listed_rows(conn: Connection, *, outbox_ids: Sequence[int] | None = None, batch_ids: Sequence[str] | None = None,
                record: tuple[str, str] | None = None, limit: int | None = None) -> list[Any]:
    """receipts rows (oldest first; with `limit`, the newest `limit` of them, still oldest first)."""
    q = select(receipts)
    if outbox_ids is not None:
        q = q.where(receipts.c.outbox_id.in_(list(outbox_ids)))
    if batch_ids is not None:
        q = q.where(receipts.c.batch_id.in_(list(batch_ids)))
    if record is not None:
        q = q.where(receipts.c.record_type == record[0], receipts.c.record_key == record[1])
    if limit is None:
        return list(conn.execute(q.order_by(receipts.c.id)).all())
    return list(reversed(conn.execute(q.order_by(receipts.c.id.desc()).limit(limit)).all()))


def members(conn: Connection, batch_id: str) -> list[Member]:
    """The batch's outbox rows in outbox order (its records' order in the batch body)."""
    q = select(*_MEMBER_COLUMNS).where(*outbox_store.rows_of_batch(batch_id))
    return [Member(*r) for r in conn.execute(q.order_by(outbox.c.id))]


def place(conn: Connection, m: Member) -> tuple[int, int]:
    """(the 0-based place of `m` among its batch's rows, the batch's rows): counted by primary-key range."""
    q = select(func.count()).select_from(outbox).where(*outbox_store.rows_of_batch(m.batch_id))
    return int(conn.execute(q.where(outbox.c.id < m.id)).scalar_one()), int(conn.execute(q).scalar_one())


def outbox_members(conn: Connection, outbox_ids: Sequence[int]) -> list[Member]:
    """These outbox rows as batch members (batch_id None: not in a batch now)."""
    q = select(*_MEMBER_COLUMNS).where(outbox.c.id.in_(list(outbox_ids))).order_by(outbox.c.id)
    return [Member(*r) for r in conn.execute(q)]


def record_members(conn: Connection, record_type: str, record_key: str, limit: int) -> list[Member]:
    """The record's newest `limit` outbox rows that are in a batch, newest first."""
    rows = outbox_store.record_rows(conn, record_type, record_key, limit, _MEMBER_COLUMNS)
    return [Member(*r) for r in rows if r.batch_id is not None]


def signed_documents(conn: Connection, batch_ids: Sequence[str]) -> dict[str, tuple[bytes, str]]:
    """batch id -> (signed receipt document, received_at) of those with a stored receipt."""
    if not batch_ids:
        return {}
    c = batch_receipts.c
    q = select(c.batch_id, c.body, c.received_at).where(c.batch_id.in_(list(dict.fromkeys(batch_ids))))
    return {bid: (bytes(body), at) for bid, body, at in conn.execute(q)}


def delivered_counts(conn: Connection, batch_ids: Sequence[str]) -> dict[str, int]:
    """batch id -> its outbox rows `delivered`, counted by primary-key range (no row read into Python)."""
    q = select(func.count()).select_from(outbox).where(outbox.c.state == "delivered")
    return {bid: int(conn.execute(q.where(*outbox_store.rows_of_batch(bid))).scalar_one()) for bid in batch_ids}


def listed_counts(conn: Connection, batch_ids: Sequence[str]) -> list[tuple[str, str, int]]:
    """(batch id, status, receipts rows) of these batches."""
    c = receipts.c
    q = select(c.batch_id, c.status, func.count()).where(c.batch_id.in_(list(batch_ids))).group_by(c.batch_id, c.status)
    return [(b, s, int(n)) for b, s, n in conn.execute(q)]


def receipted(conn: Connection, batch_ids: Sequence[str]) -> set[str]:
    """Those of these batches with a stored signed receipt."""
    c = batch_receipts.c
    return set(conn.execute(select(c.batch_id).where(c.batch_id.in_(list(batch_ids)))).scalars())

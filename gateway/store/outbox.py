"""The outbox's hot statements: enqueue, claim a batch, settle a receipted batch.

Each runs on a DB-API cursor inside the caller's transaction (sync's chunk, the
push's claim, the receipt's one transaction), prepared once from tables.outbox and
tables.outbox_batches (gateway/store/prepared.py). The rest of the outbox's
statements are plain Core in gateway/push/batching.py, built from the same tables.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from sqlalchemy import bindparam, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from gateway.store.prepared import prepare
from gateway.store.tables import fingerprints, outbox, outbox_batches


class Enqueued(NamedTuple):
    """One outbox row as sync and the per-record push enqueue it."""

    id: int  # assigned by the writer (next_id): the record's fingerprint names it in the same transaction
    source: str
    record_type: str
    record_key: str
    op: str  # upsert | delete
    seq: int
    version: str
    data: str | None  # canonical JSON; None for a delete
    updated_at: str | None
    provenance: str  # JSON
    enqueued_at: str
    state: str
    attempts: int
    prev_id: int | None  # the record's previous outbox row (fingerprints.outbox_id before this one)


# What a batch carries of an outbox row, in this order (gateway/push/batching.py reads tuples).
BATCH_COLUMNS = (
    outbox.c.id, outbox.c.source, outbox.c.record_type, outbox.c.record_key, outbox.c.op, outbox.c.seq,
    outbox.c.version, outbox.c.data, outbox.c.updated_at, outbox.c.provenance,
)

_ENQUEUE = prepare(insert(outbox).values({n: bindparam(n) for n in Enqueued._fields}))
if _ENQUEUE.params != Enqueued._fields:
    raise AssertionError(f"Enqueued fields {Enqueued._fields} != statement parameters {_ENQUEUE.params}")

_pending = outbox.c.state == "pending"
_FIRST_PENDING_SOURCE = prepare(select(outbox.c.source).where(_pending).order_by(outbox.c.id).limit(1))
_FIRST_PENDING_SOURCE_OF = prepare(
    select(outbox.c.source).where(_pending, outbox.c.id.in_(bindparam("ids", expanding=True))).order_by(outbox.c.id).limit(1)
)
_limit = bindparam("limit", type_=outbox.c.id.type)
_PENDING = prepare(
    select(*BATCH_COLUMNS).where(_pending, outbox.c.source == bindparam("source")).order_by(outbox.c.id).limit(_limit)
)
_PENDING_OF = prepare(
    select(*BATCH_COLUMNS)
    .where(_pending, outbox.c.source == bindparam("source"), outbox.c.id.in_(bindparam("ids", expanding=True)))
    .order_by(outbox.c.id)
    .limit(_limit)
)
# The claim counts as the first attempt (saves a commit per batch on the common path).
_NEW_BATCH = prepare(
    insert(outbox_batches).values(
        batch_id=bindparam("batch_id"), source=bindparam("source"), created=bindparam("created"),
        records=bindparam("records"), first_id=bindparam("first_id"), last_id=bindparam("last_id"), state="sent",
        attempts=1, last_attempt_at=bindparam("created_again"),
    )
)
_claim = update(outbox).values(state="sent", batch_id=bindparam("batch_id"), attempts=outbox.c.attempts + 1)
_claimable = (_pending, outbox.c.source == bindparam("source"), outbox.c.id.between(bindparam("lo"), bindparam("hi")))
_CLAIM = prepare(_claim.where(*_claimable))
_CLAIM_OF = prepare(_claim.where(*_claimable, outbox.c.id.in_(bindparam("ids", expanding=True))))


def first_pending_source(cursor: Any, only_ids: Sequence[int] | None) -> str | None:
    """The source of the oldest pending row (among `only_ids` when given)."""
    if only_ids is None:
        cursor.execute(_FIRST_PENDING_SOURCE.sql)
    else:
        cursor.execute(_FIRST_PENDING_SOURCE_OF.sql_for(len(only_ids)), only_ids)
    row = cursor.fetchone()
    return None if row is None else str(row[0])


def read_pending(cursor: Any, source: str, only_ids: Sequence[int] | None, limit: int) -> None:
    """Run the read of the oldest pending rows of `source` (BATCH_COLUMNS tuples) on `cursor`."""
    if only_ids is None:
        cursor.execute(_PENDING.sql, (source, limit))
    else:
        cursor.execute(_PENDING_OF.sql_for(len(only_ids)), (source, *only_ids, limit))


def claim(cursor: Any, batch_id: str, source: str, created: str, ids: Sequence[int], only: bool) -> None:
    """Record the batch and mark its rows `sent`: the pending rows of `source` from the first to the
    last of `ids` (read in id order, cut at count or bytes); `only`: just those ids (the per-record push)."""
    cursor.execute(_NEW_BATCH.sql, (batch_id, source, created, len(ids), ids[0], ids[-1], created))
    if only:
        cursor.execute(_CLAIM_OF.sql_for(len(ids)), (batch_id, source, ids[0], ids[-1], *ids))
    else:
        cursor.execute(_CLAIM.sql, (batch_id, source, ids[0], ids[-1]))


_NEXT_ID = prepare(select(func.coalesce(func.max(outbox.c.id), 0) + 1))


def next_id(conn: Connection) -> int:
    """The id the next outbox row takes (the primary key's next rowid). Read in the write transaction that
    inserts it: the writer numbers its rows itself, so the records' fingerprints can name them."""
    cur = conn.connection.cursor()
    try:
        cur.execute(_NEXT_ID.sql)
        return int(cur.fetchone()[0])
    finally:
        cur.close()


def enqueue(conn: Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    """Insert outbox rows (in Enqueued's field order, ids from next_id) in the caller's write transaction."""
    if not rows:
        return
    cur = conn.connection.cursor()
    try:
        cur.executemany(_ENQUEUE.sql, rows)
    finally:
        cur.close()


# Settling a receipted batch: rows of the batch still `sent`, found by the id range, which keeps the
# lookup to this batch's stretch of the (state, id) index when another batch is in flight too.
_of_batch = (
    outbox.c.state == "sent", outbox.c.id.between(bindparam("lo"), bindparam("hi")), outbox.c.batch_id == bindparam("of_batch"),
)
_DELIVERED = prepare(update(outbox).where(*_of_batch).values(state="delivered"))
_DEAD = prepare(update(outbox).where(*_of_batch, outbox.c.id.in_(bindparam("ids", expanding=True))).values(state="dead"))
_BACK_TO_PENDING = prepare(
    update(outbox).where(*_of_batch, outbox.c.id.in_(bindparam("ids", expanding=True))).values(state="pending", batch_id=None)
)
_RECEIPTED = prepare(
    update(outbox_batches)
    .where(outbox_batches.c.batch_id == bindparam("batch_id"))
    .values(state="receipted", receipted_at=bindparam("now"), last_status="200", last_error=None, next_attempt_at=None)
)


def settle_batch(cursor: Any, batch_id: str, ids: Sequence[int], dead: Sequence[int], back: Sequence[int], now: str) -> None:
    """After a verified receipt: `dead` rows dead, `back` rows pending again, the rest of the batch delivered."""
    of_batch = (min(ids), max(ids), batch_id)
    if dead:
        cursor.execute(_DEAD.sql_for(len(dead)), (*of_batch, *dead))
    if back:
        cursor.execute(_BACK_TO_PENDING.sql_for(len(back)), (*of_batch, *back))
    # What is left `sent` in this batch is what the receipt says was delivered.
    cursor.execute(_DELIVERED.sql, of_batch)
    cursor.execute(_RECEIPTED.sql, (now, batch_id))


# Batches in flight and their resends: not per record, plain Core.


def rows_of_batch(batch_id: str) -> tuple[Any, Any]:
    """The WHERE of a batch's outbox rows: its id, within the id range it was claimed from
    (outbox_batches.first_id/last_id), so the primary key finds them with no index on outbox.batch_id. A batch
    claimed before schema version 7 has no range: then the whole table is looked through, as before."""
    b = outbox_batches.c

    def bound(col: Any, otherwise: int) -> Any:
        return func.coalesce(select(col).where(b.batch_id == batch_id).scalar_subquery(), otherwise)

    return outbox.c.batch_id == batch_id, outbox.c.id.between(bound(b.first_id, 0), bound(b.last_id, 2**63 - 1))


def sent_batch_ids(conn: Connection, only_ids: Sequence[int] | None = None) -> list[str]:
    """Batches sent but not yet receipted, oldest first; with `only_ids`, those holding one of these rows."""
    wanted: set[str] | None = None
    if only_ids is not None:
        q = select(outbox.c.batch_id).where(outbox.c.id.in_(list(only_ids)), outbox.c.state == "sent").distinct()
        wanted = {r[0] for r in conn.execute(q)}
        if not wanted:
            return []
    q2 = (
        select(outbox_batches.c.batch_id)
        .where(outbox_batches.c.state == "sent")
        .order_by(outbox_batches.c.created, outbox_batches.c.batch_id)
    )
    return [b for (b,) in conn.execute(q2) if wanted is None or b in wanted]


def batch_head(conn: Connection, batch_id: str) -> tuple[str, str] | None:
    """(source, created) of a batch; None when there is no such batch."""
    row = conn.execute(
        select(outbox_batches.c.source, outbox_batches.c.created).where(outbox_batches.c.batch_id == batch_id)
    ).first()
    return None if row is None else (row.source, row.created)


def sent_rows(conn: Connection, batch_id: str) -> list[Any]:
    """The batch's rows still `sent`, as BATCH_COLUMNS rows in outbox order."""
    q = select(*BATCH_COLUMNS).where(*rows_of_batch(batch_id), outbox.c.state == "sent").order_by(outbox.c.id)
    return list(conn.execute(q).all())


def count_attempt(conn: Connection, batch_id: str, now: str) -> None:
    """One more attempt of the batch and of each of its rows still `sent`."""
    conn.execute(
        update(outbox_batches)
        .where(outbox_batches.c.batch_id == batch_id)
        .values(attempts=outbox_batches.c.attempts + 1, last_attempt_at=now)
    )
    conn.execute(
        update(outbox).where(*rows_of_batch(batch_id), outbox.c.state == "sent").values(attempts=outbox.c.attempts + 1)
    )


def note_failure(conn: Connection, batch_id: str, status: str, error: str, next_attempt_at: str | None) -> None:
    conn.execute(
        update(outbox_batches)
        .where(outbox_batches.c.batch_id == batch_id)
        .values(last_status=status, last_error=error[:2000], next_attempt_at=next_attempt_at)
    )


def release(conn: Connection, batch_id: str, reason: str, *, rows_too: bool = True) -> None:
    """The batch `released` with `reason`; its rows still `sent` back to pending, unsent (unless not `rows_too`)."""
    if rows_too:
        conn.execute(
            update(outbox).where(*rows_of_batch(batch_id), outbox.c.state == "sent").values(state="pending", batch_id=None)
        )
    batches = update(outbox_batches).where(outbox_batches.c.batch_id == batch_id)
    if not rows_too:  # an empty batch: only one still `sent` is released
        batches = batches.where(outbox_batches.c.state == "sent")
    conn.execute(batches.values(state="released", last_error=reason[:2000]))


# A record's outbox rows, newest first: from its fingerprint's latest row back through prev_id, by primary key
# (the outbox has no index on the record; tables.fingerprints.outbox_id says why).


def record_rows(conn: Connection, record_type: str, record_key: str, limit: int = 100, columns: Sequence[Any] = ()) -> list[Any]:
    """The record's newest `limit` outbox rows (all columns, or `columns`), newest first. A record without a
    fingerprint (none in the gateway's own writes) is looked for by a scan."""
    cols = list(columns) or list(outbox.c)
    f = fingerprints.c
    head = conn.execute(select(f.outbox_id).where(f.record_type == record_type, f.record_key == record_key)).scalar()
    if head is None:
        scan = select(*cols).where(outbox.c.record_type == record_type, outbox.c.record_key == record_key)
        return list(conn.execute(scan.order_by(outbox.c.id.desc()).limit(limit)))
    chain = select(literal(head).label("id"), literal(1).label("n")).cte("chain", recursive=True)
    step = select(outbox.c.prev_id, chain.c.n + 1).where(
        outbox.c.id == chain.c.id, outbox.c.prev_id.is_not(None), chain.c.n < limit
    )
    chain = chain.union_all(step)
    q = select(*cols).join_from(outbox, chain, outbox.c.id == chain.c.id).order_by(outbox.c.id.desc())
    return list(conn.execute(q))


def latest_row(conn: Connection, record_type: str, record_key: str, columns: Sequence[Any] = ()) -> Any | None:
    """The record's latest outbox row, or None."""
    rows = record_rows(conn, record_type, record_key, 1, columns)
    return rows[0] if rows else None

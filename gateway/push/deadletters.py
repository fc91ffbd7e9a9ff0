"""Dead letters: records the hub rejected, kept with its reasons until a person handles them.

A rejected record is never retried on its own and never dropped. Two ways out:
- retry: the same record (same seq, same data) is queued again, behind what is
  already queued, and sent in a later batch. For rejections whose cause lay
  outside the record (a material the hub did not know yet, a department
  permission since granted). If a newer edit of the key was delivered
  meanwhile, the hub answers `stale`.
- resolve: the row stays `dead`; who and when are recorded. For rejections
  fixed at the source: the corrected record is a new edit with a higher seq
  that sync enqueues as usual.
Both are written to the audit log.

Shown to people as 被退回记录 (returned records). A later version of the same key
that the hub accepts closes the earlier returns (resolution `superseded`, by
`system`, in the receipt's transaction); a return with a newer version of its key
in the outbox cannot be retried (the hub would answer stale), only resolved.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, bindparam, select, update

from gateway.errors import GatewayError
from gateway.push.batching import Batch
from gateway.store import fingerprints
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store.db import utcnow
from gateway.store.tables import audit, dead_letters, outbox, outbox_batches

# What a retry copies from the rejected outbox row: the record exactly as first enqueued.
_COPIED = ("source", "record_type", "record_key", "op", "seq", "version", "data", "updated_at", "provenance")


class DeadLetterNotOpen(GatewayError):
    """No unresolved dead letter with that id."""


class DeadLetterSuperseded(GatewayError):
    """A newer version of the record is already queued or delivered: retrying this one is pointless."""


def close_superseded(cursor: Any, accepted: list[tuple[str, str, int]], now: str) -> int:
    """Close the open returns of keys a later version of which the hub just accepted.

    `accepted` holds (record_type, record_key, seq); `cursor` is the receipt transaction's DBAPI cursor."""
    if not accepted:
        return 0
    best: dict[tuple[str, str], int] = {}
    for rt, key, seq in accepted:
        if seq > best.get((rt, key), -1):
            best[(rt, key)] = seq
    ids = [i for i, rt, key, seq in receipt_store.open_returns(cursor) if best.get((rt, key), -1) > seq]
    receipt_store.supersede(cursor, ids, now)
    return len(ids)


def newer_seq(conn: Any, record_type: str, record_key: str) -> int | None:
    """The highest seq of the record in the outbox (any state): its latest row's (seqs only grow along a
    record's rows; a returned record queued again keeps its seq)."""
    latest = outbox_store.latest_row(conn, record_type, record_key, (outbox.c.seq,))
    return None if latest is None else int(latest.seq)


@dataclass(frozen=True)
class DeadLetter:
    id: int
    outbox_id: int
    source: str
    record_type: str
    record_key: str
    seq: int
    reasons: list[Any]
    created_at: str
    resolved_at: str | None
    resolved_by: str | None
    resolution: str | None


def list_dead_letters(engine: Engine, *, include_handled: bool = False, limit: int = 1000) -> list[DeadLetter]:
    q = (
        select(dead_letters, outbox.c.source)
        .join(outbox, outbox.c.id == dead_letters.c.outbox_id)
        .order_by(dead_letters.c.id)
        .limit(limit)
    )
    if not include_handled:
        q = q.where(dead_letters.c.resolved_at.is_(None))
    with engine.connect() as conn:
        return [
            DeadLetter(
                r.id, r.outbox_id, r.source, r.record_type, r.record_key, r.seq, orjson.loads(r.reasons),
                r.created_at, r.resolved_at, r.resolved_by, r.resolution,
            )
            for r in conn.execute(q)
        ]


def _close(conn: Any, dead_letter_id: int, actor: str, resolution: str, now: str) -> int:
    """Mark the dead letter handled; returns its outbox id. The first statement writes, taking the lock."""
    done = conn.execute(
        update(dead_letters)
        .where(dead_letters.c.id == dead_letter_id, dead_letters.c.resolved_at.is_(None))
        .values(resolved_at=now, resolved_by=actor, resolution=resolution)
    )
    if done.rowcount == 0:
        raise DeadLetterNotOpen(f"死信 {dead_letter_id} 不存在或已处理 / dead letter {dead_letter_id} does not exist or was handled already")
    return int(conn.execute(select(dead_letters.c.outbox_id).where(dead_letters.c.id == dead_letter_id)).scalar_one())


def _audit(
    conn: Any, actor: str, action: str, dead_letter_id: int, outbox_id: int, now: str, note: str | None, **after: Any
) -> None:
    conn.execute(
        audit.insert().values(
            at=now, actor=actor, action=action, target=f"dead_letter:{dead_letter_id}",
            before=orjson.dumps({"outbox_id": outbox_id, "state": "dead"}).decode(),
            after=orjson.dumps({"outbox_id": outbox_id, "note": note, **after}).decode(),
        )
    )


def retry_dead_letter(engine: Engine, dead_letter_id: int, actor: str, note: str | None = None) -> int:
    """Queue the rejected record again, as it was, behind everything already queued; returns the new outbox id.

    The copy goes to the back of the outbox (a new row, same seq, version and
    data) so that whatever was enqueued before the retry -- typically the very
    record whose absence caused the rejection -- reaches the hub first. The
    rejected row itself stays `dead`, with its receipt, as history.
    """
    now = utcnow()
    with engine.begin() as conn:
        oid = _close(conn, dead_letter_id, actor, "retried", now)
        row = conn.execute(select(outbox).where(outbox.c.id == oid)).one()
        head = outbox_store.latest_row(conn, row.record_type, row.record_key, (outbox.c.id, outbox.c.seq))
        if head is not None and head.seq > row.seq:  # as newer_seq says
            raise DeadLetterSuperseded(
                f"{row.record_key} 已有更新的版本（序号 {head.seq}），不再重推序号 {row.seq} / a newer version exists"
            )
        copy = {c: getattr(row, c) for c in _COPIED}
        new_id = conn.execute(
            outbox.insert().values(**copy, enqueued_at=now, state="pending", batch_id=None, attempts=0,
                                   prev_id=None if head is None else head.id)
        ).inserted_primary_key[0]
        fingerprints.set_head(conn, row.record_type, row.record_key, int(new_id))
        _audit(conn, actor, "dead_letter.retry", dead_letter_id, oid, now, note, requeued_as=new_id)
    return int(new_id)


def resolve_dead_letter(engine: Engine, dead_letter_id: int, actor: str, note: str | None = None) -> int:
    """Mark the dead letter handled (the row stays `dead`); returns its outbox id."""
    now = utcnow()
    with engine.begin() as conn:
        oid = _close(conn, dead_letter_id, actor, "resolved", now)
        _audit(conn, actor, "dead_letter.resolve", dead_letter_id, oid, now, note)
    return oid


def bury_locally(engine: Engine, batch: Batch, rule: str, message: str) -> None:
    """Dead-letter a batch's rows without a receipt (the hub cannot take them, e.g. one record over its size limit)."""
    now = utcnow()
    reasons = orjson.dumps([{"field": None, "label": None, "value": None, "rule": rule, "message": message}]).decode()
    with engine.begin() as conn:
        conn.execute(
            update(outbox)
            .where(outbox.c.id == bindparam("oid"), outbox.c.state == "sent")
            .values(state="dead"),
            [{"oid": r.outbox_id} for r in batch.rows],
        )
        conn.execute(
            dead_letters.insert(),
            [
                {"outbox_id": r.outbox_id, "record_type": r.record_type, "record_key": r.record_key,
                 "seq": r.seq, "reasons": reasons, "created_at": now}
                for r in batch.rows
            ],
        )
        conn.execute(
            update(outbox_batches)
            .where(outbox_batches.c.batch_id == batch.batch_id)
            .values(state="released", last_error=message)
        )

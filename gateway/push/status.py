"""Where delivery stands: outbox counts by state, the batch in flight and its last error, open dead letters."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select

from gateway.store.tables import batch_receipts, dead_letters, outbox, outbox_batches, receipts

OUTBOX_STATES = ("pending", "sent", "delivered", "dead")


@dataclass
class InflightBatch:
    batch_id: str
    source: str
    records: int
    created: str
    attempts: int
    last_attempt_at: str | None
    last_status: str | None
    last_error: str | None
    next_attempt_at: str | None

    @property
    def refused(self) -> bool:
        """The hub refused it outright (4xx other than 408/413/425/429): a person must act."""
        s = self.last_status or ""
        return s.isdigit() and 400 <= int(s) < 500 and int(s) not in (408, 413, 425, 429)


@dataclass
class DeliveryStatus:
    counts: dict[str, int]
    oldest_pending_at: str | None
    open_dead_letters: int
    last_receipt_at: str | None
    inflight: list[InflightBatch] = field(default_factory=list)

    @property
    def refused(self) -> InflightBatch | None:
        return next((b for b in self.inflight if b.refused), None)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["refused"] = self.refused.batch_id if self.refused else None
        return d


def outbox_counts(conn: Any) -> dict[str, int]:
    """Outbox rows by state, with `stale` apart: a version the hub answered 过期版本 (it holds a newer
    one) is `delivered` in the outbox but was not taken, so it is not counted as delivered."""
    counts = {s: 0 for s in OUTBOX_STATES}
    for state, n in conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)):
        counts[state] = n
    stale = conn.execute(select(func.count(func.distinct(receipts.c.outbox_id))).where(receipts.c.status == "stale")).scalar_one()
    counts["delivered"] -= stale
    counts["stale"] = stale
    return counts


def delivery_status(engine: Engine) -> DeliveryStatus:
    with engine.connect() as conn:
        counts = outbox_counts(conn)
        oldest = conn.execute(
            select(outbox.c.enqueued_at).where(outbox.c.state.in_(("pending", "sent"))).order_by(outbox.c.id).limit(1)
        ).scalar()
        open_dl = conn.execute(select(func.count()).select_from(dead_letters).where(dead_letters.c.resolved_at.is_(None))).scalar_one()
        last = conn.execute(select(func.max(batch_receipts.c.received_at))).scalar()
        inflight = [
            InflightBatch(
                r.batch_id, r.source, r.records, r.created, r.attempts, r.last_attempt_at, r.last_status,
                r.last_error, r.next_attempt_at,
            )
            for r in conn.execute(
                select(outbox_batches).where(outbox_batches.c.state == "sent").order_by(outbox_batches.c.created)
            )
        ]
    return DeliveryStatus(counts, oldest, int(open_dl), last, inflight)

"""Enqueue records that are already normalised: spreadsheet imports and the web record form."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from gateway.standard.schema import record_key
from gateway.store.db import begin_immediate
from gateway.sync import held
from gateway.sync.changes import ChangeWriter, Mapped

CHUNK = 1000


@dataclass
class EnqueueSummary:
    new: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    outbox_ids: list[int] = field(default_factory=list)


def enqueue_records(
    engine: Engine,
    source: str,
    record_type: str,
    records: Iterable[tuple[str, dict[str, Any] | None]],
    operator: str,
    *,
    want_ids: bool = True,
) -> EnqueueSummary:
    """Enqueue (source_key, normalised data) pairs; data None deletes the record of that source key.

    Uses the same fingerprints and per-key seq as synced sources, so an unchanged
    record is not sent twice. `source` is "local" or "spreadsheet" (or a source name).
    """
    writer = ChangeWriter(source, record_type, None, operator)
    out = EnqueueSummary()
    chunk: list[Mapped] = []
    deletes: list[str] = []

    def flush() -> None:
        with engine.begin() as conn:
            begin_immediate(conn)
            c = writer.write(conn, chunk, want_ids=want_ids)
            # A material entered here is no longer refused: what was held for it goes after it.
            held.release(conn, record_type, [m.record_key for m in chunk], operator)
            for k in deletes:
                d = writer.delete_source_key(conn, k, want_ids=want_ids)
                c.add(d)
        out.new += c.new
        out.changed += c.changed
        out.deleted += c.deleted
        out.unchanged += c.unchanged
        out.outbox_ids += c.outbox_ids
        chunk.clear()
        deletes.clear()

    for source_key, data in records:
        if data is None:
            deletes.append(source_key)
        else:
            chunk.append(Mapped(source_key, record_key(record_type, data), data))
        if len(chunk) + len(deletes) >= CHUNK:
            flush()
    if chunk or deletes:
        flush()
    return out

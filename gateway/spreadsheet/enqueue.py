"""Queue an import's valid records for the hub as the import reads them, chunk by chunk.

The reader (gateway.workbook.read) validates a sheet in chunks; this module hands each run of valid
records of one type to the sync layer's writer (`gateway.sync.enqueue_records`: fingerprints, per-key
seq, one set-based write per chunk), so no second copy of the outbox SQL exists and a re-import of an
unchanged record sends nothing twice. The row errors are kept in the ImportResult, as `collect` does.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from gateway.standard.schema import record_key
from gateway.sync import enqueue_records
from gateway.workbook.read import CHUNK_ROWS, PROGRESS_EVERY, ImportedRecord, ImportResult, Progress, RowError

SOURCE = "spreadsheet"


@dataclass
class Queued:
    """What one import queued, per record type."""

    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # type -> new / changed / unchanged
    outbox_ids: list[int] = field(default_factory=list)

    def add(self, record_type: str, new: int, changed: int, unchanged: int) -> None:
        c = self.counts.setdefault(record_type, {"new": 0, "changed": 0, "unchanged": 0})
        c["new"] += new
        c["changed"] += changed
        c["unchanged"] += unchanged


def enqueue_import(engine: Engine, result: ImportResult, stream: Iterable[ImportedRecord | RowError],
                   operator: str, *, progress: Progress | None = None, source: str = SOURCE,
                   want_ids: bool = True) -> Queued:
    """Consume an import stream into `result` and queue its valid records every CHUNK_ROWS records (and
    when the record type changes); `progress(rows)` every PROGRESS_EVERY rows, as `collect` calls it.

    A file that turns out unreadable half-way leaves the chunks before it queued: they are valid records,
    and importing the fixed file again sends only what changed."""
    queued = Queued()
    run: list[ImportedRecord] = []

    def flush() -> None:
        rtype = run[0].record_type
        s = enqueue_records(engine, source, rtype, [(record_key(rtype, r.data), r.data) for r in run], operator,
                            want_ids=want_ids)
        queued.add(rtype, s.new, s.changed, s.unchanged)
        queued.outbox_ids += s.outbox_ids
        run.clear()

    for n, x in enumerate(stream, start=1):
        if isinstance(x, ImportedRecord):
            if run and run[0].record_type != x.record_type:
                flush()
            result.records.append(x)
            run.append(x)
            if len(run) >= CHUNK_ROWS:
                flush()
        else:
            result.errors.append(x)
        if progress is not None and n % PROGRESS_EVERY == 0:
            progress(n)
    if run:
        flush()
    return queued

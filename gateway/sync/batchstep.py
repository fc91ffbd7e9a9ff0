"""How the sync reads, digests and maps a chunk's rows: on RowBatches (the bulk path) or row by row.

Both paths hand the pipeline the same events (RowBatch, RowProblem, FileRefused,
Checkpoint, in the adapter's order) and must give the same stored result; the
row path is kept as the reference the equivalence test (tests/test_sync_batches.py)
compares the batch path with, and as what a batch falls back to piece by piece:

- read: ``adapter.fetch_batches`` (a columnar adapter's Arrow batches) or
  ``fetch()`` grouped into batches of dicts;
- digests: one hash column per batch over the canonical bytes of its Arrow form
  (arrowhash.py) when the adapter gave Arrow, else rowhash.row_hash of each row;
- map: ``mapping.map_batch`` of the rows whose digest changed, or map_row per row.

A batch is digested by its Arrow form whenever it has one: RowBatch.arrow() is
exact (gateway.adapters.arrow_exact: it answers None rather than widen an int
beside a float, re-scale a decimal or move a time to another zone), so two
different rows never share one Arrow row. A batch without an exact Arrow form is
digested row by row. A row's digest may differ between the two forms (or between
two batches typing a column differently): that costs one re-mapping, which finds
the stored version, never a missed change.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pyarrow as pa
from sqlalchemy.engine import Connection

from gateway.adapters.base import Adapter, Position
from gateway.adapters.batches import BatchEvent, RowBatch, batched
from gateway.errors import RowProblem
from gateway.mappings import CompiledMapping
from gateway.sync.arrowhash import batch_digests
from gateway.sync.passdigests import PassDigests
from gateway.sync.rowhash import row_hashes

Mapped = tuple[dict[str, Any] | None, list[RowProblem]]
ROW_MAP_BELOW = 64  # rows: smaller batches are mapped by map_row (see BatchPath.map)


def adapter_arrow(batch: RowBatch) -> pa.RecordBatch | None:
    """The batch's exact Arrow form (built from its columns or dicts on first use); None when it has none."""
    return batch.arrow()


class RowPath:
    """Row by row, as the sync ran before the bulk path: the reference."""

    name = "rows"

    def read(self, adapter: Adapter, position: Position | None, size: int) -> Iterator[BatchEvent]:
        return batched(adapter.fetch(position), size)

    def digests(self, batch: RowBatch, inputs: bytes) -> list[bytes]:
        return row_hashes(batch.dicts(), inputs)

    def map(self, mapping: CompiledMapping, batch: RowBatch) -> list[Mapped]:
        return [mapping.map_row(r) for r in batch.source_rows()]

    def chunk_digests(self, batches: Sequence[RowBatch], inputs: bytes) -> list[list[bytes]]:
        """digests() of each batch of a chunk."""
        return [self.digests(b, inputs) for b in batches]

    def pass_digests(self, conn: Connection, source: str, record_type: str) -> PassDigests | None:
        """A fingerprint pass's comparison: None = each chunk's stored digests looked up, unchanged rows
        marked seen one by one and deletes found by checked_at (the reference)."""
        return None


class BatchPath(RowPath):
    """On the adapter's batches: one digest column per Arrow batch, the mapping's map_batch."""

    name = "batches"

    def read(self, adapter: Adapter, position: Position | None, size: int) -> Iterator[BatchEvent]:
        return adapter.fetch_batches(position, size)

    def digests(self, batch: RowBatch, inputs: bytes) -> list[bytes]:
        data = adapter_arrow(batch)
        got = None if data is None else batch_digests(data, inputs)
        return super().digests(batch, inputs) if got is None else got

    def chunk_digests(self, batches: Sequence[RowBatch], inputs: bytes) -> list[list[bytes]]:
        # One digest column for the whole chunk when its batches share a schema: the kernels' fixed cost
        # per batch is then paid once (a row's digest depends on its bytes and the schema only).
        arrows = [adapter_arrow(b) for b in batches]
        first = arrows[0] if arrows else None
        if len(arrows) > 1 and first is not None and all(a is not None and a.schema.equals(first.schema) for a in arrows):
            got = batch_digests(pa.concat_batches(arrows), inputs)  # type: ignore[arg-type]
            if got is not None:
                out, at = [], 0
                for b in batches:
                    out.append(got[at : at + len(b)])
                    at += len(b)
                return out
        return super().chunk_digests(batches, inputs)

    def map(self, mapping: CompiledMapping, batch: RowBatch) -> list[Mapped]:
        # A few changed rows of a chunk (an incremental fingerprint pass: ~20 in 2,000) map faster row by
        # row than through map_batch's fixed cost per batch (~7 ms); both give the same results.
        if len(batch) < ROW_MAP_BELOW:
            return super().map(mapping, batch)
        return mapping.map_batch(batch)

    def pass_digests(self, conn: Connection, source: str, record_type: str) -> PassDigests | None:
        """The stored digests read once, compared and covered in memory (passdigests.py)."""
        return PassDigests.read(conn, source, record_type)


ROWS, BATCHES = RowPath(), BatchPath()
#: The path sync_source takes; tests set it to ROWS to compare the two.
PATH: RowPath = BATCHES


def changed_rows(
    batch: RowBatch, digests: Sequence[bytes], stored: dict[str, tuple[str, bytes]],
) -> tuple[list[int], list[tuple[int, str]]]:
    """(indices of the rows whose digest differs from their record's stored one, or that have none;
    (index, record key) of the others). `stored`: source key -> (record key, row hash), as
    ChangeWriter.row_hashes gives it for the batch's keys."""
    changed: list[int] = []
    same: list[tuple[int, str]] = []
    get = stored.get
    for i, (key, h) in enumerate(zip(batch.keys, digests, strict=True)):
        old = get(key)
        if old is not None and old[1] == h:
            same.append((i, old[0]))
        else:
            changed.append(i)
    return changed, same


def split(batch: RowBatch, at: int) -> tuple[RowBatch, RowBatch]:
    """The first `at` rows of the batch and the rest."""
    n = len(batch)
    return batch.take(list(range(at))), batch.take(list(range(at, n)))

"""Rows in batches: the bulk path's shape of what an adapter reads.

``Adapter.fetch_batches`` yields the same stream as ``fetch`` with runs of rows
grouped into a ``RowBatch`` (at most `size` rows, never across a Checkpoint or
a RowProblem, so the order of events is kept). The default groups ``fetch()``'s
``SourceRow``s (``batched``); an adapter with a columnar reader overrides it and
builds the batch from Arrow arrays directly (``RowBatch.from_arrow``).

The contract every implementation keeps, checked by the adapter conformance
suite: ``batch.dicts()`` are the ``SourceRow.data`` that ``fetch()`` yields for
the same rows, value for value and type for type (``==`` and ``type()``), with the
same keys, locators and versions, and the same checkpoints in between.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from gateway.adapters.base import Checkpoint, SourceRow
from gateway.errors import RowProblem

DEFAULT_SIZE = 2000  # rows per batch; the sync commits at most once per batch


@dataclass(slots=True, eq=False)
class RowBatch:
    """Consecutive rows of one read: keys, locators and versions per row, the values either as the
    adapter's dicts or as an Arrow record batch (a column per source column), converted on demand."""

    keys: list[str]
    locators: list[str]
    versions: list[Any]
    _rows: list[dict[str, Any]] | None = None
    _arrow: pa.RecordBatch | None = None
    _arrow_failed: bool = False

    @classmethod
    def from_rows(cls, rows: Sequence[SourceRow]) -> RowBatch:
        return cls([r.key for r in rows], [r.locator for r in rows], [r.version for r in rows], [r.data for r in rows])

    @classmethod
    def from_arrow(cls, data: pa.RecordBatch, keys: list[str], locators: list[str], versions: list[Any]) -> RowBatch:
        if not (data.num_rows == len(keys) == len(locators) == len(versions)):
            raise ValueError("a RowBatch needs one key, locator and version per row")
        return cls(keys, locators, versions, None, data)

    def __len__(self) -> int:
        return len(self.keys)

    def dicts(self) -> list[dict[str, Any]]:
        """Each row's values as fetch() gives them (column -> value)."""
        if self._rows is None:
            assert self._arrow is not None
            self._rows = self._arrow.to_pylist()
        return self._rows

    def arrow(self) -> pa.RecordBatch | None:
        """The values as an Arrow record batch; None when Arrow cannot hold them as they are (a column
        mixing types, say): callers then take the row path for this batch."""
        if self._arrow is None and not self._arrow_failed:
            rows = self.dicts()
            try:
                self._arrow = pa.RecordBatch.from_pylist(rows) if rows else None
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                self._arrow_failed = True
        return self._arrow

    def take(self, indices: Sequence[int]) -> RowBatch:
        """The rows at `indices` (ascending), as a batch of the same shape."""
        if len(indices) == len(self.keys):
            return self
        keys, locators, versions = self.keys, self.locators, self.versions
        part = RowBatch([keys[i] for i in indices], [locators[i] for i in indices], [versions[i] for i in indices])
        if self._arrow is not None:
            part._arrow = self._arrow.take(pa.array(indices, pa.int64()))
        if self._rows is not None:
            rows = self._rows
            part._rows = [rows[i] for i in indices]
        part._arrow_failed = self._arrow_failed
        return part

    def source_rows(self) -> Iterator[SourceRow]:
        for key, data, locator, version in zip(self.keys, self.dicts(), self.locators, self.versions, strict=True):
            yield SourceRow(key, data, locator, version)


BatchEvent = RowBatch | RowProblem | Checkpoint


def batched(events: Iterable[Any], size: int = DEFAULT_SIZE) -> Iterator[BatchEvent]:
    """Group the SourceRows of an event stream into RowBatches of at most `size`, flushing before every
    other event so that a Checkpoint still covers exactly the rows before it."""
    run: list[SourceRow] = []
    for e in events:
        if isinstance(e, SourceRow):
            run.append(e)
            if len(run) >= size:
                yield RowBatch.from_rows(run)
                run = []
            continue
        if run:
            yield RowBatch.from_rows(run)
            run = []
        yield e
    if run:
        yield RowBatch.from_rows(run)

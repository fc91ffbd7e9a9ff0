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

Arrow holds a batch's values only where it gives them back exactly
(gateway.adapters.arrow_exact): a batch whose rows do not all have the same
columns, or a column Arrow would change (decimals of mixed scale, mixed types,
UUIDs ...), keeps its dicts and answers None from arrow(), and its consumers
take the row path for it. A columnar reader builds ``RowBatch.from_arrow``
only from such exact arrays, and falls back to ``from_rows`` otherwise.

Locators may be a ``Locators`` sequence: "{where} key={key}" made when read,
not once per row read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, overload

import pyarrow as pa

from gateway.adapters.arrow_exact import exact_batch, python_rows
from gateway.adapters.base import Checkpoint, SourceRow
from gateway.errors import RowProblem

DEFAULT_SIZE = 2000  # rows per batch; the sync commits at most once per batch


class Locators(Sequence[str]):
    """The locators "{where} key={key}" of a run of rows, formatted when read (most never are)."""

    __slots__ = ("_where", "_keys")

    def __init__(self, where: str, keys: Sequence[str]) -> None:
        self._where = where
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [f"{self._where} key={k}" for k in self._keys[i]]
        return f"{self._where} key={self._keys[i]}"

    def __iter__(self) -> Iterator[str]:
        where = self._where
        return (f"{where} key={k}" for k in self._keys)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return len(other) == len(self) and all(a == b for a, b in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Locators({list(self)!r})"


@dataclass(slots=True, eq=False)
class RowBatch:
    """Consecutive rows of one read: keys, locators and versions per row, the values either as the
    adapter's dicts or as an Arrow record batch (a column per source column), converted on demand."""

    keys: list[str]
    locators: Sequence[str]  # a list, or a Locators
    versions: list[Any]
    _rows: list[dict[str, Any]] | None = None
    _arrow: pa.RecordBatch | None = None
    _arrow_failed: bool = False
    # (names, one list of values per column) as a reader transposed them: dicts and Arrow are built from these
    _columns: tuple[list[str], list[Sequence[Any]]] | None = None

    @classmethod
    def from_rows(cls, rows: Sequence[SourceRow]) -> RowBatch:
        return cls([r.key for r in rows], [r.locator for r in rows], [r.version for r in rows], [r.data for r in rows])

    @classmethod
    def from_arrow(cls, data: pa.RecordBatch, keys: list[str], locators: Sequence[str], versions: list[Any]) -> RowBatch:
        if not (data.num_rows == len(keys) == len(locators) == len(versions)):
            raise ValueError("a RowBatch needs one key, locator and version per row")
        return cls(keys, locators, versions, None, data)

    @classmethod
    def from_columns(
        cls, names: list[str], columns: list[Sequence[Any]], keys: list[str], locators: Sequence[str], versions: list[Any]
    ) -> RowBatch:
        """A batch over a reader's value columns (Python objects, one sequence per column)."""
        if not all(len(c) == len(keys) for c in columns) or not (len(keys) == len(locators) == len(versions)):
            raise ValueError("a RowBatch needs one key, locator and version per row")
        return cls(keys, locators, versions, _columns=(names, columns))

    def __len__(self) -> int:
        return len(self.keys)

    def dicts(self) -> list[dict[str, Any]]:
        """Each row's values as fetch() gives them (column -> value)."""
        if self._rows is None:
            if self._columns is not None:
                names, columns = self._columns
                self._rows = [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]
            else:
                assert self._arrow is not None
                self._rows = python_rows(self._arrow)
        return self._rows

    def arrow(self) -> pa.RecordBatch | None:
        """The values as an Arrow record batch; None when Arrow cannot hold them as they are (a column
        mixing types, say): callers then take the row path for this batch."""
        if self._arrow is None and not self._arrow_failed:
            if self._columns is not None:
                self._arrow = exact_batch(*self._columns) if self.keys else None
            else:
                self._arrow = _exact_from_rows(self.dicts())
            self._arrow_failed = self._arrow is None
        return self._arrow

    def take(self, indices: Sequence[int]) -> RowBatch:
        """The rows at `indices` (ascending), as a batch of the same shape."""
        if len(indices) == len(self.keys):
            return self
        keys, locators, versions = self.keys, self.locators, self.versions
        part_keys = [keys[i] for i in indices]
        part_locators = (
            Locators(locators._where, part_keys) if isinstance(locators, Locators) else [locators[i] for i in indices]
        )
        part = RowBatch(part_keys, part_locators, [versions[i] for i in indices])
        if self._arrow is not None:
            part._arrow = self._arrow.take(pa.array(indices, pa.int64()))
        if self._rows is not None:
            rows = self._rows
            part._rows = [rows[i] for i in indices]
        elif self._columns is not None:
            names, columns = self._columns
            part._columns = (names, [[c[i] for i in indices] for c in columns])
        part._arrow_failed = self._arrow_failed
        return part

    def source_rows(self) -> Iterator[SourceRow]:
        for key, data, locator, version in zip(self.keys, self.dicts(), self.locators, self.versions, strict=True):
            yield SourceRow(key, data, locator, version)


def _exact_from_rows(rows: list[dict[str, Any]]) -> pa.RecordBatch | None:
    """Rows that all have the same columns, as exact Arrow columns; None otherwise (an XML record
    missing an element would come back with that key present as None)."""
    if not rows:
        return None
    names = list(rows[0])
    width = len(names)
    for r in rows:
        if len(r) != width or (r.keys() != rows[0].keys()):
            return None
    return exact_batch(names, [[r[n] for r in rows] for n in names])


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

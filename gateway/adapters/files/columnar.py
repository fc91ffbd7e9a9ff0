"""A CSV file's columnar blocks (formats.csv_columns) as the file-drop events fetch() gives for it.

The rows of a file become RowBatches of Arrow string columns; a row whose key
cells are empty is the same ``file.key_missing`` RowProblem at the same place,
and in append mode a checkpoint falls after every `checkpoint_rows` rows, as
FileDropAdapter._rows does. Proven equal by the adapter conformance suite.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gateway.adapters.batches import RowBatch
from gateway.adapters.formats.csv_columns import CsvBlock
from gateway.errors import RowProblem


class CsvBatches:
    """Events of one file: RowBatch, RowProblem, or Due (the caller commits a checkpoint)."""

    @dataclass(slots=True)
    class Due:
        count: int  # rows read so far in the file

    def __init__(self, source: str, name: str, key_columns: list[str], version: datetime, size: int, every: int) -> None:
        self.source, self.name, self.key_columns = source, name, key_columns
        self.version, self.size, self.every = version, size, every
        self.count = 0  # rows (and key problems) so far, as the row path counts them
        self.problems = 0
        self.missing_key_columns = False

    def events(self, blocks: Iterator[CsvBlock]) -> Iterator[RowBatch | RowProblem | CsvBatches.Due]:
        try:
            for block in blocks:
                if self.count == 0 and any(k not in block.table.column_names for k in self.key_columns):
                    self.missing_key_columns = True  # nothing yielded: the caller lets the row reader refuse the file
                    return
                yield from self._block(block)
        finally:
            close = getattr(blocks, "close", None)
            if close is not None:
                close()

    def _block(self, block: CsvBlock) -> Iterator[RowBatch | RowProblem | CsvBatches.Due]:
        table = block.table.combine_chunks()
        batch = table.to_batches()[0] if table.num_rows else None
        if batch is None:
            return
        keys = self._keys(batch)
        name, n = self.name, len(keys)
        locators = [f"{name}:line {line}" for line in block.lines]
        start = 0  # first row of the run not yielded yet
        for j in range(n):
            self.count += 1
            if keys[j] is None:
                yield from self._run(batch, keys, locators, start, j)
                start = j + 1
                self.problems += 1
                yield RowProblem(self.source, locators[j], ",".join(self.key_columns), None, "file.key_missing", "主键列为空，该行无法识别")
            if self.every and self.count % self.every == 0:
                yield from self._run(batch, keys, locators, start, j + 1)
                start = j + 1
                yield CsvBatches.Due(self.count)
        yield from self._run(batch, keys, locators, start, n)

    def _run(self, batch: Any, keys: list[str | None], locators: list[str], lo: int, hi: int) -> Iterator[RowBatch]:
        for a in range(lo, hi, self.size):
            b = min(hi, a + self.size)
            ks: list[str] = keys[a:b]  # type: ignore[assignment] (no None in a run)
            yield RowBatch.from_arrow(batch.slice(a, b - a), ks, locators[a:b], [self.version] * (b - a))

    def _keys(self, batch: Any) -> list[str | None]:
        """The source key of each row, as FileDropAdapter._key gives it (cells stripped; None when one is empty)."""
        parts = [batch.column(k).to_pylist() for k in self.key_columns]
        if len(parts) == 1:
            return [v.strip() or None for v in parts[0]]
        out: list[str | None] = []
        for cells in zip(*parts, strict=True):
            stripped = [c.strip() for c in cells]
            out.append(None if not all(stripped) else "|".join(stripped))
        return out

"""Run a mapping over sample rows and show, per row, the record or each field's error."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from gateway.adapters.base import Checkpoint, SourceRow
from gateway.errors import RowProblem
from gateway.mappings.compile import CompiledMapping, FieldProblem


@dataclass
class PreviewRow:
    source: dict[str, Any]  # the raw row as read
    key: str
    locator: str
    record: dict[str, Any] | None  # the normalised standard record, None when a field failed
    errors: list[FieldProblem] = field(default_factory=list)  # field, label, value, rule, Chinese message

    @property
    def ok(self) -> bool:
        return self.record is not None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "locator": self.locator,
            "source": self.source,
            "record": self.record,
            "errors": [vars(e) for e in self.errors],
        }


def preview(mapping: CompiledMapping, rows: Iterable[Any], limit: int = 20) -> list[PreviewRow]:
    """Map up to `limit` rows. `rows` may be SourceRows, plain dicts, or an adapter's raw event
    stream: checkpoints are skipped and unreadable rows (RowProblem) are shown as such."""
    out: list[PreviewRow] = []
    events = (e for e in rows if not isinstance(e, Checkpoint))
    for i, row in enumerate(islice(events, limit), start=1):
        if isinstance(row, RowProblem):
            label = row.field or ""
            out.append(PreviewRow({}, "", row.locator, None, [FieldProblem(label, label, row.value, row.rule, row.message)]))
            continue
        if isinstance(row, SourceRow):
            data, key, locator = row.data, row.key, row.locator
        else:
            data, key, locator = dict(row), str(i), f"row {i}"
        record, errors = mapping.map_fields(data)
        out.append(PreviewRow(dict(data), key, locator, record, errors))
    return out

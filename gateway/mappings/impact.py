"""What saving a mapping would change at the hub: both mappings run over the same source rows and
their records compared by meaning (the mapped values), not by the text of the mapping files.

A record whose key changes is deleted at the hub and re-created under the new key; that is the
costly case the editor asks the admin to confirm by its count.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateway.adapters.base import SourceRow
from gateway.mappings.compile import CompiledMapping
from gateway.standard.schema import record_key

EXAMPLES = 5  # (old key → new key) pairs shown to the admin


@dataclass
class MappingImpact:
    rows: int = 0  # source rows compared
    unchanged: int = 0
    changed: int = 0  # same record key, other values: an update at the hub
    rekeyed: int = 0  # key changes: deleted and re-created at the hub
    newly_failing: int = 0  # valid under the current mapping, refused under the new one
    newly_passing: int = 0  # refused now, valid under the new one
    truncated: bool = False  # only the first `rows` rows of a larger source were compared
    rekey_examples: list[tuple[str, str]] = field(default_factory=list)

    @property
    def changes_anything(self) -> bool:
        return bool(self.changed or self.rekeyed or self.newly_failing or self.newly_passing)

    def summary(self) -> str:
        """One Chinese sentence for the editor and the save confirmation."""
        scope = f"前 {self.rows} 行（数据源更大，仅估算）" if self.truncated else f"全部 {self.rows} 行"
        if not self.changes_anything:
            return f"与当前映射相比（{scope}）：记录没有变化"
        parts = [f"{self.changed} 条记录内容变化"] if self.changed else []
        if self.rekeyed:
            parts.append(f"{self.rekeyed} 条记录的主键字段变化，将在中心删除并重建")
        if self.newly_failing:
            parts.append(f"{self.newly_failing} 行将变为错误行")
        if self.newly_passing:
            parts.append(f"{self.newly_passing} 行错误将消除")
        return f"与当前映射相比（{scope}）：" + "，".join(parts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows, "unchanged": self.unchanged, "changed": self.changed, "rekeyed": self.rekeyed,
            "newly_failing": self.newly_failing, "newly_passing": self.newly_passing, "truncated": self.truncated,
            "rekey_examples": [list(p) for p in self.rekey_examples], "summary": self.summary(),
        }


def compare(current: CompiledMapping | None, new: CompiledMapping, rows: Iterable[SourceRow], *, truncated: bool = False) -> MappingImpact:
    """Map every row with both mappings. With no current mapping every valid record is new (changed)."""
    impact = MappingImpact(truncated=truncated)
    rt = new.record_type
    for row in rows:
        impact.rows += 1
        after, _ = new.map_fields(row.data)
        before = current.map_fields(row.data)[0] if current is not None else None
        if before is None and after is None:
            impact.unchanged += 1
        elif before is None:
            if current is None:
                impact.changed += 1
            else:
                impact.newly_passing += 1
        elif after is None:
            impact.newly_failing += 1
        else:
            old_key, new_key = record_key(rt, before), record_key(rt, after)
            if old_key != new_key:
                impact.rekeyed += 1
                if len(impact.rekey_examples) < EXAMPLES:
                    impact.rekey_examples.append((old_key, new_key))
            elif before != after:
                impact.changed += 1
            else:
                impact.unchanged += 1
    return impact

"""The conformance suite every source adapter must pass.

A test module subclasses ``AdapterConformance`` and provides a fixture named
``source`` returning an object with:

- ``adapter(position=None) -> Adapter``: a fresh adapter over the current data;
- ``write(rows)``: make these rows present (insert rows / drop a new file); each
  row has "id" (str or int), "name" (Chinese text), "qty" (int or str) and
  "day" (ISO date string);
- ``write_bad_row()``: add one row that cannot be read (a value the adapter's
  declared type conversion rejects, a zero date, a broken XML element ...);
- ``bulk_rows: int``: how many rows the memory test writes (20_000 or more, so
  that keeping rows would show as growth).

The same tests then run against every adapter: every row comes with a
locator and a stable key, a saved position resumes, a bad row is reported and
the rest still come, memory stays bounded, positions are JSON, and the adapter
is found through the entry-point registry.
"""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from gateway.adapters import registry
from gateway.adapters.base import Adapter, Checkpoint, SourceRow
from gateway.errors import RowProblem

MEMORY_BOUND = 30 * 1024 * 1024  # bytes traced by tracemalloc while streaming bulk_rows rows
GROWTH_BOUND = 4 * 1024 * 1024  # allowed growth between row bulk_rows/4 and the last row (use bulk_rows >= 20_000)


class ConformanceSource(Protocol):
    bulk_rows: int

    def adapter(self, position: Any = None) -> Adapter: ...

    def write(self, rows: list[dict[str, Any]]) -> None: ...

    def write_bad_row(self) -> None: ...


def make_rows(start: int, count: int, tag: str = "物资") -> list[dict[str, Any]]:
    """Rows with distinct Chinese names, so each can be recognised wherever it lands."""
    day0 = dt.date(2024, 1, 1)
    return [
        {
            "id": i,
            "name": f"{tag}{i}号帐篷",
            "qty": i * 3 % 1000,
            "day": (day0 + dt.timedelta(days=i % 365)).isoformat(),
        }
        for i in range(start, start + count)
    ]


def _events(adapter: Adapter, position: Any = None) -> list[Any]:
    with adapter:
        return list(adapter.fetch(position))


def _name_of(row: SourceRow, names: set[str]) -> str | None:
    """The row's "name" value, whether it is keyed by column name or by an XML path."""
    v = row.data.get("name")
    if isinstance(v, str) and v in names:
        return v
    for v in row.data.values():
        if isinstance(v, str) and v.strip() in names:
            return v.strip()
    return None


def _rows(events: Iterable[Any]) -> list[SourceRow]:
    return [e for e in events if isinstance(e, SourceRow)]


class AdapterConformance:
    """Subclass in a test module and provide the ``source`` fixture."""

    def test_yields_every_row_with_locator_and_stable_key(self, source: ConformanceSource) -> None:
        written = make_rows(1, 25)
        source.write(written)
        names = {r["name"] for r in written}

        first = _rows(_events(source.adapter()))
        seen = {_name_of(r, names): r for r in first}
        assert set(seen) - {None} == names, "every written row is yielded"
        for r in first:
            assert r.locator.strip(), f"row {r.key!r} has no locator"
            assert isinstance(r.key, str) and r.key, "every row has a non-empty string key"
        keys = [r.key for r in first]
        assert len(set(keys)) == len(keys), "keys are unique"

        again = {_name_of(r, names): r.key for r in _rows(_events(source.adapter()))}
        assert again == {n: r.key for n, r in seen.items()}, "keys are stable across reads"

    def test_resumes_from_last_checkpoint(self, source: ConformanceSource) -> None:
        old = make_rows(1, 30, "旧")
        source.write(old)
        events = _events(source.adapter())
        checkpoints = [e for e in events if isinstance(e, Checkpoint)]
        assert checkpoints, "a full read ends with a checkpoint"
        assert isinstance(events[-1], Checkpoint), "nothing is yielded after the last checkpoint"
        position = checkpoints[-1].position

        new = make_rows(100, 7, "新")
        source.write(new)
        all_names = {r["name"] for r in old + new}
        resumed = _rows(_events(source.adapter(position), position))
        got = [_name_of(r, all_names) for r in resumed]
        assert sorted(n for n in got if n) == sorted(r["name"] for r in new)
        assert None not in got

    def test_bad_row_is_reported_and_the_rest_still_come(self, source: ConformanceSource) -> None:
        before = make_rows(1, 5, "前")
        after = make_rows(200, 5, "后")
        source.write(before)
        source.write_bad_row()
        source.write(after)
        events = _events(source.adapter())
        problems = [e for e in events if isinstance(e, RowProblem)]
        assert len(problems) == 1, f"exactly one bad row is reported, got {problems}"
        p = problems[0]
        assert p.source, "the problem names its source"
        assert p.locator.strip(), "the problem says where the row is"
        assert p.field, "the problem names the column"
        assert p.value is not None and str(p.value) != "", "the problem shows the bad value"
        assert p.rule and p.message, "the problem gives a rule and a reason"
        names = {r["name"] for r in before + after}
        got = {_name_of(r, names) for r in _rows(events)} - {None}
        assert got == names, "rows before and after the bad one are all yielded"

    def test_streams_in_bounded_memory(self, source: ConformanceSource) -> None:
        n = source.bulk_rows
        source.write(make_rows(1, n, "批量"))
        adapter = source.adapter()
        count = 0
        at_quarter = at_end = 0
        tracemalloc.start()
        try:
            with adapter:
                for e in adapter.fetch(None):
                    if isinstance(e, SourceRow):
                        count += 1
                        if count == n // 4:
                            at_quarter = tracemalloc.get_traced_memory()[0]
                        elif count == n:
                            at_end = tracemalloc.get_traced_memory()[0]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == n
        assert peak < MEMORY_BOUND, f"peak {peak / 1e6:.1f} MB while streaming {n} rows"
        # Kept rows would make memory grow with every row read (~0.5 KB each); streaming stays level.
        growth = at_end - at_quarter
        assert growth < GROWTH_BOUND, f"memory grew {growth / 1e6:.1f} MB over the last {n - n // 4} rows"

    def test_checkpoint_positions_are_json(self, source: ConformanceSource) -> None:
        source.write(make_rows(1, 12))
        positions = [e.position for e in _events(source.adapter()) if isinstance(e, Checkpoint)]
        assert positions
        for pos in positions:
            assert json.loads(json.dumps(pos)) == pos

    def test_registered_as_entry_point(self, source: ConformanceSource) -> None:
        adapter = source.adapter()
        try:
            cls = type(adapter)
            assert cls.name in registry.names()
            assert registry.adapter_class(cls.name) is cls
        finally:
            adapter.close()


def iter_rows(events: Iterable[Any]) -> Iterator[SourceRow]:
    """Only the rows of an event stream (for tests of one adapter)."""
    return (e for e in events if isinstance(e, SourceRow))

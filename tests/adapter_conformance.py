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
  that keeping rows would show as growth);
- optionally ``comparable_position(position)``: the position without what
  records the time of the read (a file ledger's done_at), for comparing two reads.

The same tests then run against every adapter: every row comes with a
locator and a stable key, a saved position resumes, a bad row is reported and
the rest still come, memory stays bounded, positions are JSON, and the adapter
is found through the entry-point registry, and ``fetch_batches`` gives
``fetch``'s events exactly (rows grouped into RowBatches whose keys, values and
their types, locators and versions are fetch()'s; the same problems and
checkpoints at the same places) on a first read, a resumed read and a read
with a bad row in the middle.
"""

from __future__ import annotations

import datetime as dt
import json
import tracemalloc
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

from gateway.adapters import registry
from gateway.adapters.base import Adapter, Checkpoint, SourceRow
from gateway.adapters.batches import RowBatch
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


BATCH_SIZE = 64  # small, so that every read in the suite makes several batches


def _typed(v: Any) -> Any:
    """A value with its type and repr, so that 2 == 2.0 or Decimal('2') == Decimal('2.00') do not pass."""
    if isinstance(v, dict):
        return {k: _typed(x) for k, x in v.items()}
    return (type(v).__name__, repr(v), v)


def _flat(source: Any, events: Iterable[Any], size: int | None = None) -> list[Any]:
    """An event stream as comparable tuples, a RowBatch spread into its rows; checks the batch shape."""
    same = getattr(source, "comparable_position", lambda p: p)
    out: list[Any] = []
    for e in events:
        if isinstance(e, RowBatch):
            assert size is not None, "fetch() yields no batches"
            assert 0 < len(e) <= size, f"a batch of {len(e)} rows (size {size})"
            rows = list(e.source_rows())
            assert len(rows) == len(e) == len(e.keys) == len(e.locators) == len(e.versions)
            data = e.arrow()
            if data is not None:  # where Arrow holds the values, it gives back exactly the dicts
                assert _typed(data.to_pylist()) == _typed([r.data for r in rows]), "arrow() differs from dicts()"
            out += [("row", r.key, _typed(r.data), r.locator, _typed(r.version)) for r in rows]
        elif isinstance(e, SourceRow):
            assert size is None, "fetch_batches() yields rows only in batches"
            out.append(("row", e.key, _typed(e.data), e.locator, _typed(e.version)))
        elif isinstance(e, Checkpoint):
            out.append(("checkpoint", same(e.position), e.snapshot, e.note))
        else:
            assert isinstance(e, RowProblem), f"unexpected event {e!r}"
            out.append(("problem", type(e).__name__, e))
    return out


def assert_batches_equal_fetch(source: Any, position: Any = None, size: int = BATCH_SIZE) -> list[Any]:
    """fetch_batches(position, size) gives fetch(position)'s events; returns fetch()'s."""
    with source.adapter(position) as a:
        rows = list(a.fetch(position))
    with source.adapter(position) as a:
        batches = list(a.fetch_batches(position, size))
    assert any(isinstance(e, RowBatch) for e in batches) == any(isinstance(e, SourceRow) for e in rows)
    expected, got = _flat(source, rows), _flat(source, batches, size)
    for i, (x, y) in enumerate(zip(expected, got, strict=False)):
        assert x == y, f"event {i}: fetch() gave {x!r}, fetch_batches() gave {y!r}"
    assert len(got) == len(expected), f"fetch() gave {len(expected)} events, fetch_batches() {len(got)}"
    return rows


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

    def test_fetch_batches_streams_in_bounded_memory(self, source: ConformanceSource) -> None:
        import pyarrow as pa

        n = source.bulk_rows
        source.write(make_rows(1, n, "批量"))
        adapter = source.adapter()
        count = 0
        at_quarter = at_end = arrow_peak = 0
        tracemalloc.start()
        try:
            with adapter:
                for e in adapter.fetch_batches(None, 2000):
                    if isinstance(e, RowBatch):
                        e.arrow()  # as the bulk path consumes them
                        arrow_peak = max(arrow_peak, pa.total_allocated_bytes())
                        before = count
                        count += len(e)
                        if before < n // 4 <= count:
                            at_quarter = tracemalloc.get_traced_memory()[0]
                        elif count == n:
                            at_end = tracemalloc.get_traced_memory()[0]
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert count == n
        assert peak < MEMORY_BOUND, f"peak {peak / 1e6:.1f} MB while streaming {n} rows in batches"
        assert arrow_peak < MEMORY_BOUND, f"Arrow held {arrow_peak / 1e6:.1f} MB while streaming {n} rows"
        growth = at_end - at_quarter
        assert growth < GROWTH_BOUND, f"memory grew {growth / 1e6:.1f} MB over the last {n - n // 4} rows"

    def test_checkpoint_positions_are_json(self, source: ConformanceSource) -> None:
        source.write(make_rows(1, 12))
        positions = [e.position for e in _events(source.adapter()) if isinstance(e, Checkpoint)]
        assert positions
        for pos in positions:
            assert json.loads(json.dumps(pos)) == pos

    def test_fetch_batches_equals_fetch_on_a_first_and_a_resumed_read(self, source: ConformanceSource) -> None:
        source.write(make_rows(1, 1200, "首"))  # more than one checkpoint chunk of the SQL sources (500)
        events = assert_batches_equal_fetch(source)
        checkpoints = [e.position for e in events if isinstance(e, Checkpoint)]
        source.write(make_rows(2000, 150, "续"))
        # From a checkpoint in the middle (SQL: after 500 rows) and from the end of the first read.
        for position in (checkpoints[(len(checkpoints) - 1) // 2], checkpoints[-1]):
            resumed = assert_batches_equal_fetch(source, position)
            assert any(isinstance(e, SourceRow) for e in resumed), "the resumed read has rows"

    def test_fetch_batches_equals_fetch_around_a_bad_row(self, source: ConformanceSource) -> None:
        source.write(make_rows(1, 50, "前"))
        source.write_bad_row()
        source.write(make_rows(200, 1100, "后"))
        events = assert_batches_equal_fetch(source)
        assert sum(isinstance(e, RowProblem) for e in events) == 1
        # A batch size that does not divide the runs, and one larger than a checkpoint chunk.
        assert_batches_equal_fetch(source, size=37)
        assert_batches_equal_fetch(source, size=5000)

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

"""The columnar counterpart of sqlrows.stream_events: DB-API result chunks straight into RowBatches.

``stream_batches`` gives what ``batched(stream_events(...))`` gives, event for
event, for the sql and odbc adapters' ``fetch_batches``: it reads the result a
checkpoint chunk (`chunk_size` rows) at a time, transposes the chunk's tuples
into columns once, runs the declared-type converters a column at a time (and
only on columns holding a type that the converter changes), and builds each
batch's Arrow columns from those lists (gateway.adapters.arrow_exact) instead
of a dict and a SourceRow per row. A row a converter refuses becomes the same
RowProblem at the same place; the batch splits around it. Where a column
cannot be held exactly in Arrow the chunk's batches keep dicts instead.

Proven equal to the row loop by the adapter conformance suite
(tests/adapter_conformance.py, ``test_fetch_batches_equals_fetch``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from gateway.adapters.arrow_exact import exact_batch
from gateway.adapters.base import Checkpoint
from gateway.adapters.batches import BatchEvent, Locators, RowBatch
from gateway.adapters.sqlrows import CONVERTERS, ValueRejected, encode_value
from gateway.errors import RowProblem

# The value types each converter changes or refuses; a column holding none of them is left as it is.
_CONVERTED: dict[str, tuple[type, ...]] = {
    "int": (str, float),
    "decimal": (str,),
    "date": (dt.datetime, str, bytes),
    "datetime": (str, bytes),
}


def _needs(kind: str, types: set[type]) -> bool:
    wanted = _CONVERTED[kind]
    return any(issubclass(t, wanted) for t in types)


def chunks_of(fetchmany: Callable[[int], Sequence[Sequence[Any]]], size: int) -> Iterator[list[Sequence[Any]]]:
    """Lists of exactly `size` rows (the last may be shorter), whatever fetchmany hands back at a time."""
    buf: list[Sequence[Any]] = []
    while True:
        got = fetchmany(size - len(buf))
        if not got:
            break
        buf.extend(got)
        if len(buf) >= size:
            yield buf
            buf = []
    if buf:
        yield buf


def stream_batches(
    *,
    source: str,
    where: str,
    names: Sequence[str],
    chunks: Iterator[list[Sequence[Any]]],
    key_columns: Sequence[str],
    cursor_column: str | None,
    checks: dict[str, str],
    chunk_size: int,
    start: Any,
    size: int,
) -> Iterator[BatchEvent]:
    """`chunks` are the result's rows in lists of `chunk_size` (chunks_of); see stream_events for positions."""
    names = list(names)
    key_idx = [names.index(k) for k in key_columns]
    cur_idx = names.index(cursor_column) if cursor_column else None
    conv = [(names.index(c), c, k, CONVERTERS[k]) for c, k in checks.items() if k in CONVERTERS]
    position = start
    for rows in chunks:
        cols: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else []
        if not cols:
            break
        keys = _keys(cols, key_idx)
        bad: dict[int, RowProblem] = {}
        for i, col, kind, fn in conv:
            cols[i] = _convert(cols[i], kind, fn, bad, _Refusal(source, where, col, keys))
        # The position is that of the chunk's last row with a cursor value (all rows without a cursor).
        last = _last_row(cols, cur_idx, len(rows))
        if last is not None:
            if cur_idx is not None:
                position = {"cursor": encode_value(cols[cur_idx][last]), "key": [encode_value(cols[i][last]) for i in key_idx]}
            else:
                position = {"after": [encode_value(cols[i][last]) for i in key_idx]}
        yield from _runs(names, cols, keys, bad, cur_idx, where, size)
        if len(rows) == chunk_size:
            yield Checkpoint(position)
    if cur_idx is not None:
        yield Checkpoint(position)
    else:
        yield Checkpoint(None, snapshot=True)


def _keys(cols: list[Sequence[Any]], key_idx: list[int]) -> list[str]:
    """Key columns joined by '|', None as '' (from the values as read, before any conversion)."""
    parts = []
    for i in key_idx:
        col = cols[i]
        parts.append(list(map(str, col)) if None not in col else ["" if v is None else str(v) for v in col])
    if len(parts) == 1:
        return parts[0]
    return ["|".join(p) for p in zip(*parts, strict=True)]


class _Refusal:
    """The RowProblem of row j's refused value in one column, worded as the row loop words it."""

    def __init__(self, source: str, where: str, col: str, keys: list[str]) -> None:
        self.source, self.where, self.col, self.keys = source, where, col, keys

    def __call__(self, j: int, v: Any, e: ValueRejected) -> RowProblem:
        col = self.col
        return RowProblem(self.source, f"{self.where} key={self.keys[j]}", col, v, e.rule, f"列 {col} 的值 {v!r} {e.message}")


def _convert(
    col: Sequence[Any],
    kind: str,
    fn: Callable[[Any], Any],
    bad: dict[int, RowProblem],
    problem: _Refusal,
) -> Sequence[Any]:
    """The column with `fn` applied to its non-null values; a refused value marks its row bad. A row
    already bad keeps its later columns as read, as the row loop stops at the first refusal."""
    if not _needs(kind, set(map(type, col))):
        return col
    out = list(col)
    for j, v in enumerate(out):
        if v is None or j in bad:
            continue
        try:
            out[j] = fn(v)
        except ValueRejected as e:
            bad[j] = problem(j, v, e)
    return out


def _last_row(cols: list[Sequence[Any]], cur_idx: int | None, n: int) -> int | None:
    if cur_idx is None:
        return n - 1
    cur = cols[cur_idx]
    for j in range(n - 1, -1, -1):
        if cur[j] is not None:  # rows with a NULL cursor are only read by full reads
            return j
    return None


def _runs(
    names: list[str], cols: list[Sequence[Any]], keys: list[str], bad: dict[int, RowProblem],
    cur_idx: int | None, where: str, size: int,
) -> Iterator[BatchEvent]:
    """The chunk's good rows in batches of at most `size`, with each bad row's problem in its place."""
    n = len(keys)
    good = [j for j in range(n) if j not in bad] if bad else None
    if good is not None:
        cols = [[c[j] for j in good] for c in cols]
        keys_good = [keys[j] for j in good]
    else:
        keys_good = keys
    versions: Sequence[Any] = cols[cur_idx] if cur_idx is not None else [None] * len(keys_good)
    data = exact_batch(names, cols)
    rows = None if data is not None else [dict(zip(names, vals, strict=True)) for vals in zip(*cols, strict=True)]
    # Runs of good rows lie between the bad ones (positions in the good-only columns).
    cuts = [(j - before, j) for before, j in enumerate(sorted(bad))]
    at = 0
    for end, j in [*cuts, (len(keys_good), None)]:
        for lo in range(at, end, size):
            hi = min(end, lo + size)
            ks = keys_good[lo:hi]
            locs = Locators(where, ks)
            vs = list(versions[lo:hi])
            if data is not None:
                yield RowBatch.from_arrow(data.slice(lo, hi - lo), ks, locs, vs)
            else:
                assert rows is not None
                yield RowBatch(ks, locs, vs, rows[lo:hi])
        at = end
        if j is not None:
            yield bad[j]

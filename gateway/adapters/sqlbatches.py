"""The columnar counterpart of sqlrows.stream_events: DB-API result chunks straight into RowBatches.

``stream_batches`` gives what ``batched(stream_events(...))`` gives, event for
event, for the sql and odbc adapters' ``fetch_batches``: it reads the result a
checkpoint chunk (`chunk_size` rows) at a time, transposes the chunk's tuples
into columns once, runs the declared-type converters a column at a time (and
only on columns holding a type that the converter changes), and builds each
batch's Arrow columns from those lists (gateway.adapters.arrow_exact) instead
of a dict and a SourceRow per row, when the batch is first asked for them. A
row a converter refuses becomes the same RowProblem at the same place; the
batch splits around it. Where a column cannot be held exactly in Arrow the
batch's arrow() is None and its consumers take the row path.

Proven equal to the row loop by the adapter conformance suite
(tests/adapter_conformance.py, ``assert_batches_equal_fetch``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gateway.adapters.arrow_exact import python_values
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
    chunks: Iterator[list[Sequence[Any]] | pa.RecordBatch],
    key_columns: Sequence[str],
    cursor_column: str | None,
    checks: dict[str, str],
    chunk_size: int,
    start: Any,
    size: int,
) -> Iterator[BatchEvent]:
    """`chunks` are the result's rows in lists of `chunk_size` (chunks_of) or Arrow record batches of
    `chunk_size` rows (pg_arrow); see stream_events for positions. An Arrow chunk with a column to
    convert is turned into Python columns first, so that conversions and problems have one code."""
    names = list(names)
    key_idx = [names.index(k) for k in key_columns]
    cur_idx = names.index(cursor_column) if cursor_column else None
    conv = [(names.index(c), c, k, CONVERTERS[k]) for c, k in checks.items() if k in CONVERTERS]
    position = start
    for chunk in chunks:
        n = chunk.num_rows if isinstance(chunk, pa.RecordBatch) else len(chunk)
        if not n:
            break
        if isinstance(chunk, pa.RecordBatch) and not any(_needs_arrow(k, chunk.column(i).type) for i, _, k, _ in conv):
            # Nothing to convert: the chunk stays Arrow (keys, versions and the position from its columns).
            keys = _arrow_keys(chunk, key_idx)
            versions = python_values(chunk.column(cur_idx)) if cur_idx is not None else [None] * n
            last = _last_row([versions], 0 if cur_idx is not None else None, n)
            if last is not None:
                position = _position(versions[last] if cur_idx is not None else None,
                                     [chunk.column(i)[last].as_py() for i in key_idx], cur_idx is not None)
            for lo in range(0, n, size):
                ks = keys[lo:lo + size]
                yield RowBatch.from_arrow(chunk.slice(lo, len(ks)), ks, Locators(where, ks), versions[lo:lo + size])
        else:
            cols: list[Sequence[Any]] = (
                [python_values(c) for c in chunk.columns] if isinstance(chunk, pa.RecordBatch) else list(zip(*chunk, strict=True))
            )
            keys = _keys(cols, key_idx)
            bad: dict[int, RowProblem] = {}
            for i, col, kind, fn in conv:
                cols[i] = _convert(cols[i], kind, fn, bad, _Refusal(source, where, col, keys))
            # The position is that of the chunk's last row with a cursor value (all rows without a cursor).
            last = _last_row(cols, cur_idx, n)
            if last is not None:
                position = _position(cols[cur_idx][last] if cur_idx is not None else None,
                                     [cols[i][last] for i in key_idx], cur_idx is not None)
            yield from _runs(names, cols, keys, bad, cur_idx, where, size)
        if n == chunk_size:
            yield Checkpoint(position)
    if cur_idx is not None:
        yield Checkpoint(position)
    else:
        yield Checkpoint(None, snapshot=True)


def _position(cursor: Any, key: list[Any], by_cursor: bool) -> dict[str, Any]:
    if by_cursor:
        return {"cursor": encode_value(cursor), "key": [encode_value(v) for v in key]}
    return {"after": [encode_value(v) for v in key]}


# Arrow types a converter changes or refuses (as _CONVERTED, for a column that is still Arrow).
def _needs_arrow(kind: str, t: pa.DataType) -> bool:
    text = pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)
    if kind == "int":
        return text or pa.types.is_floating(t)
    if kind == "date":
        return text or pa.types.is_timestamp(t)
    return text  # (over-inclusive is safe: the Python columns are then checked value by value)


def _arrow_keys(chunk: pa.RecordBatch, key_idx: list[int]) -> list[str]:
    """As _keys, from Arrow columns (arrow_key_array's values)."""
    return arrow_key_array(chunk, key_idx).to_pylist()  # type: ignore[no-any-return]


def arrow_key_array(chunk: pa.RecordBatch, key_idx: list[int]) -> pa.Array:
    """The chunk's source keys as one Arrow string array, the text _keys gives: integers and text are
    formatted by Arrow as str() formats them, other types through their Python values; NULL as '',
    several key columns joined by '|'. The key-set reconciliation reads whole key sets this way."""
    parts = []
    for i in key_idx:
        arr = chunk.column(i)
        if pa.types.is_integer(arr.type) or pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            parts.append(pc.fill_null(pc.cast(arr, pa.string()), ""))
        else:
            parts.append(pa.array(["" if v is None else str(v) for v in python_values(arr)], pa.string()))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, "|")


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
    # Runs of good rows lie between the bad ones (positions in the good-only columns).
    cuts = [(j - before, j) for before, j in enumerate(sorted(bad))]
    at = 0
    for end, j in [*cuts, (len(keys_good), None)]:
        for lo in range(at, end, size):
            hi = min(end, lo + size)
            ks = keys_good[lo:hi]
            # Arrow (and dicts) are built from these columns only when the batch is asked for them.
            yield RowBatch.from_columns(names, [c[lo:hi] for c in cols], ks, Locators(where, ks), list(versions[lo:hi]))
        at = end
        if j is not None:
            yield bad[j]

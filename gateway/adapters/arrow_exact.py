"""Arrow columns that give back exactly the Python values they were built from.

The bulk path's promise (gateway.adapters.batches) is that ``to_pylist()`` of a
batch equals what ``fetch()`` yields, value for value and type for type. Arrow
holds most driver values that way; a few it would silently change, so a column
is built only when its non-null values are all of one Python type below and
meet its rule, otherwise ``exact_array`` answers None and the caller keeps the
rows as dicts (the batch's arrow() is then None and its consumers take the row
path):

- int -> int64 (a value outside int64 -> None); bool -> bool; float -> float64;
  str -> string; bytes -> binary; date -> date32;
- datetime without tz -> timestamp[us]; with tz -> timestamp[us, tz] only when
  every value has the same tzinfo (Arrow keeps one zone per column and would
  move the others into it);
- Decimal -> decimal128(38, s) only when every value's text comes back the
  same from Arrow's (one scale s, at most 38 digits, no exponent notation, NaN
  or negative zero): Arrow re-scales ``Decimal('2')`` in a scale-2 column to
  ``Decimal('2.00')``, turns ``1E+3`` into ``1000`` and ``-0.0`` into ``0.0``;
- a column of only None -> null;
- anything else (time, timedelta, UUID, JSON dicts, mixed types) -> None.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

_NONE = type(None)
_SIMPLE: dict[type, pa.DataType] = {
    int: pa.int64(),
    bool: pa.bool_(),
    float: pa.float64(),
    str: pa.string(),
    bytes: pa.binary(),
    dt.date: pa.date32(),
}


def exact_array(values: Sequence[Any]) -> pa.Array | None:
    """`values` as an Arrow array whose to_pylist() equals them in value and type; None when none can."""
    kinds = set(map(type, values))
    kinds.discard(_NONE)
    if not kinds:
        return pa.nulls(len(values))
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    if kind is Decimal:
        return _decimal_array(values)
    if kind in _SIMPLE:
        arrow_type = _SIMPLE[kind]
    elif kind is dt.datetime:
        arrow_type = _datetime_type(values)
    else:
        return None
    if arrow_type is None:
        return None
    try:
        return pa.array(values, type=arrow_type)
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        return None


def _datetime_type(values: Sequence[Any]) -> pa.DataType | None:
    zones = {v.tzinfo for v in values if v is not None}
    if len(zones) != 1:
        return None
    (zone,) = zones
    if zone is None:
        return pa.timestamp("us")
    # Arrow names the zone; a tzinfo it cannot name (a custom class) is not kept.
    name = _zone_name(zone, next(v for v in values if v is not None))
    return pa.timestamp("us", tz=name) if name else None


def _zone_name(zone: dt.tzinfo, sample: dt.datetime) -> str | None:
    key = getattr(zone, "key", None)  # zoneinfo.ZoneInfo
    if isinstance(key, str):
        return key
    if isinstance(zone, dt.timezone):
        offset = zone.utcoffset(sample)
        if offset == dt.timedelta(0):
            return "UTC"
        total = int(offset.total_seconds())
        if total % 60:
            return None
        sign = "-" if total < 0 else "+"
        h, m = divmod(abs(total) // 60, 60)
        return f"{sign}{h:02d}:{m:02d}"
    return None


def _decimal_array(values: Sequence[Any]) -> pa.Array | None:
    """Decimals through their text: cast to decimal128(38, s) and back, exact iff the text comes back
    the same (one scale, no exponent notation, no NaN or negative zero). Several times cheaper than
    pyarrow's own conversion of Decimal objects."""
    text = [None if v is None else str(v) for v in values]
    first = next(t for t in text if t is not None)
    scale = len(first) - first.index(".") - 1 if "." in first else 0
    strings = pa.array(text, pa.string())
    try:
        arr = pc.cast(strings, pa.decimal128(38, scale))
    except (pa.ArrowException, ValueError):
        return None
    same = pc.all(pc.equal(pc.cast(arr, pa.string()), strings)).as_py()
    return arr if same is not False else None


def exact_batch(names: Sequence[str], columns: Sequence[Sequence[Any]]) -> pa.RecordBatch | None:
    """A record batch of one exact array per column; None when any column has none."""
    arrays = []
    for col in columns:
        arr = exact_array(col)
        if arr is None:
            return None
        arrays.append(arr)
    return pa.RecordBatch.from_arrays(arrays, names=list(names))


# ---- and back: Python values from Arrow columns -------------------------------------------

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_UNITS = {"s": 1_000_000, "ms": 1_000, "us": 1}


def python_values(arr: pa.Array) -> list[Any]:
    """``arr.to_pylist()``, equal value for value and type for type, several times faster for the
    columns a database gives most (pyarrow builds dates, timestamps and decimals one scalar at a time;
    here they are made from their integers or text in one pass)."""
    t = arr.type
    if pa.types.is_date32(t):
        days = pc.cast(arr, pa.int32()).to_pylist()
        fromordinal, epoch = dt.date.fromordinal, _EPOCH_DAY
        # A column of dates repeats a few hundred days: make each once (dates are immutable).
        made = {d: None if d is None else fromordinal(epoch + d) for d in set(days)}
        return list(map(made.__getitem__, days))
    if pa.types.is_timestamp(t) and t.tz is None and t.unit in _UNITS:
        ticks = pc.cast(arr, pa.int64()).to_pylist()
        td, epoch, per = dt.timedelta, _EPOCH, _UNITS[t.unit]
        return [None if x is None else epoch + td(microseconds=x * per) for x in ticks]
    if pa.types.is_decimal(t):
        return [None if s is None else Decimal(s) for s in pc.cast(arr, pa.string()).to_pylist()]
    return arr.to_pylist()


def python_rows(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """``batch.to_pylist()`` through python_values, a column at a time."""
    names = batch.schema.names
    columns = [python_values(c) for c in batch.columns]
    return [dict(zip(names, vals, strict=True)) for vals in zip(*columns, strict=True)]

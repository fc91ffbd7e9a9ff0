"""RowBatch and its exact Arrow columns: what Arrow holds comes back equal in value and type, what it would
change it does not hold (the batch keeps its dicts), and the Python values read back match to_pylist."""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pytest

from gateway.adapters.arrow_exact import exact_array, python_values
from gateway.adapters.base import SourceRow
from gateway.adapters.batches import Locators, RowBatch

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
PLUS8 = dt.timezone(dt.timedelta(hours=8))


def _typed(values: list[Any]) -> list[tuple[str, str]]:
    return [(type(v).__name__, repr(v)) for v in values]


HELD = {
    "int": [1, None, -(2**63), 2**63 - 1],
    "bool": [True, False, None],
    "float": [0.1, None, -1e300],
    "str": ["帐篷", "", None, "𠀀"],
    "bytes": [b"\x00\xff", b"", None],
    "date": [dt.date(1, 1, 1), None, dt.date(9999, 12, 31)],
    "naive datetime": [dt.datetime(1969, 12, 31, 23, 59, 59, 999999), None, dt.datetime(2026, 1, 1)],
    "zoned datetime": [dt.datetime(2026, 1, 1, 8, tzinfo=SHANGHAI), None, dt.datetime(2026, 7, 1, tzinfo=SHANGHAI)],
    "fixed-offset datetime": [dt.datetime(2026, 1, 1, 8, tzinfo=PLUS8), dt.datetime(2026, 1, 2, tzinfo=PLUS8)],
    "decimal of one scale": [Decimal("1.500"), None, Decimal("-2840.347"), Decimal("0.000")],
    "integral decimal": [Decimal("5"), Decimal("-7")],
    "all None": [None, None],
}
REFUSED = {
    "decimals of two scales": [Decimal("2"), Decimal("2.50")],
    "a decimal exponent": [Decimal("1E+3")],
    "a negative zero": [Decimal("-0.00")],
    "NaN": [Decimal("NaN")],
    "int beyond int64": [2**64],
    "int and str": [1, "1"],
    "int and bool": [1, True],
    "two zones": [dt.datetime(2026, 1, 1, tzinfo=SHANGHAI), dt.datetime(2026, 1, 1, tzinfo=PLUS8)],
    "naive and zoned": [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 1, tzinfo=PLUS8)],
    "UUID": [uuid.UUID(int=1)],
    "time": [dt.time(8, 0)],
    "JSON": [{"a": 1}],
}


@pytest.mark.parametrize("values", HELD.values(), ids=HELD.keys())
def test_arrow_holds_these_exactly(values: list[Any]) -> None:
    arr = exact_array(values)
    assert arr is not None
    assert _typed(arr.to_pylist()) == _typed(values)
    assert arr.to_pylist() == values
    assert _typed(python_values(arr)) == _typed(arr.to_pylist()), "python_values reads what to_pylist reads"


@pytest.mark.parametrize("values", REFUSED.values(), ids=REFUSED.keys())
def test_arrow_does_not_hold_what_it_would_change(values: list[Any]) -> None:
    assert exact_array(values) is None


def test_python_values_of_other_units_and_nulls() -> None:
    for arr in (
        pa.array([dt.datetime(2020, 1, 1, 1, 2, 3), None], pa.timestamp("s")),
        pa.array([dt.datetime(2020, 1, 1, 1, 2, 3, 4000), None], pa.timestamp("ms")),
        pa.array([None, None], pa.date32()),
        pa.array([Decimal("1.25"), None], pa.decimal128(5, 2)),
    ):
        assert _typed(python_values(arr)) == _typed(arr.to_pylist())


def _rows(n: int) -> list[SourceRow]:
    return [SourceRow(str(i), {"id": i, "qty": Decimal(f"{i}.50"), "day": dt.date(2024, 1, i)}, f"t key={i}", i) for i in range(1, n + 1)]


def test_a_batch_of_rows_and_one_of_columns_give_the_same_dicts_arrow_and_parts() -> None:
    rows = _rows(6)
    by_rows = RowBatch.from_rows(rows)
    cols = [[r.data[c] for r in rows] for c in ("id", "qty", "day")]
    keys = [r.key for r in rows]
    by_cols = RowBatch.from_columns(["id", "qty", "day"], cols, keys, Locators("t", keys), [r.version for r in rows])
    for b in (by_rows, by_cols):
        assert b.dicts() == [r.data for r in rows]
        data = b.arrow()
        assert data is not None and str(data.schema.field("qty").type) == "decimal128(38, 2)"
        assert _typed(data.column("qty").to_pylist()) == _typed([r.data["qty"] for r in rows])
        part = b.take([1, 4])
        assert part.keys == ["2", "5"] and list(part.locators) == ["t key=2", "t key=5"] and part.versions == [2, 5]
        assert part.dicts() == [rows[1].data, rows[4].data]
        assert [(r.key, r.locator) for r in b.source_rows()] == [(r.key, r.locator) for r in rows]
    assert by_cols.locators == [r.locator for r in rows]
    assert by_cols.locators[1:3] == ["t key=2", "t key=3"]


def test_rows_that_differ_in_columns_keep_their_dicts() -> None:
    """XML records may miss an optional element: Arrow would give the missing key back as None."""
    rows = [SourceRow("1", {"a": "x", "b": "y"}, "f:1"), SourceRow("2", {"a": "z"}, "f:2")]
    b = RowBatch.from_rows(rows)
    assert b.arrow() is None
    assert b.dicts() == [{"a": "x", "b": "y"}, {"a": "z"}]


def test_a_batch_needs_one_key_locator_and_version_per_row() -> None:
    with pytest.raises(ValueError):
        RowBatch.from_columns(["id"], [[1, 2]], ["1"], ["t key=1"], [None])

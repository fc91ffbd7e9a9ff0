"""Date columns for `gateway.standard.columns`: what converters.date_field and dates.parse_date accept, vectorised.

Text in the forms parse_date reads (`YYYY-MM-DD`, `YYYY/M/D`, `YYYY.M.D`,
`YYYY年M月D日`, an optional time of day) becomes `YYYY-MM-DD` where the day exists
(leap years included); date32/date64 and naive timestamps as their ISO date.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from gateway.standard.schema import Field

if TYPE_CHECKING:
    from gateway.standard.validate import ValidationContext

_RE_ASCII_WS = r"[ \t\n\r\f\x0B]"  # Python's \s under re.ASCII (RE2's \s lacks \v)


def _match(col: pa.Array, pattern: str) -> pa.Array:
    return pc.match_substring_regex(col, pattern)


def _false(n: int) -> pa.Array:
    return pa.array([False] * n, pa.bool_())


_D = "[0-9]"
# dates.parse_date's _FORM (re.ASCII, fullmatch), with the year, month and day captured.
_DATE_FORM = (
    rf"^(?P<y>{_D}{{4}}){_RE_ASCII_WS}*[-/.年]{_RE_ASCII_WS}*(?P<m>{_D}{{1,2}}){_RE_ASCII_WS}*[-/.月]"
    rf"{_RE_ASCII_WS}*(?P<d>{_D}{{1,2}}){_RE_ASCII_WS}*日?"
    rf"(?:[ T]+{_D}{{1,2}}:{_D}{{2}}(?::{_D}{{2}}(?:\.{_D}+)?)?(?:Z|[+-]{_D}{{2}}:?{_D}{{2}})?)?$"
)
_ISO = rf"^{_D}{{4}}-{_D}{{2}}-{_D}{{2}}$"
_SLICED = r"(?s)^....-..-..$"  # parse_date reads such text by position, not by _FORM
_DAYS = pa.array([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], pa.int64())


def _divisible(y: pa.Array, k: int) -> pa.Array:
    return pc.equal(pc.multiply(pc.divide(y, k), k), y)


def _date_text(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Text dates in the forms dates.parse_date accepts -> (ok, 'YYYY-MM-DD'); the day must exist."""
    form = pc.and_(_match(col, _DATE_FORM), pc.or_(_match(col, _ISO), pc.invert(_match(col, _SLICED))))
    parts = pc.extract_regex(pc.if_else(form, col, "0001-01-01"), _DATE_FORM)
    y, m, d = (pc.struct_field(parts, [i]).cast(pa.int64()) for i in range(3))
    leap = pc.and_(_divisible(y, 4), pc.or_(pc.invert(_divisible(y, 100)), _divisible(y, 400)))
    good_m = pc.and_(pc.greater_equal(m, 1), pc.less_equal(m, 12))
    dim = pc.add(pc.take(_DAYS, pc.if_else(good_m, m, 0)), pc.and_(leap, pc.equal(m, 2)).cast(pa.int64()))
    ok = pc.and_(pc.and_(form, good_m), pc.and_(pc.greater_equal(y, 1), pc.greater_equal(d, 1)))
    ok = pc.and_(ok, pc.less_equal(d, dim))
    pad = [pc.utf8_lpad(v.cast(pa.string()), w, "0") for v, w in ((y, 4), (m, 2), (d, 2))]
    return ok, pc.binary_join_element_wise(*pad, "-")


def date_column(f: Field, col: pa.Array, ref: date, ctx: ValidationContext) -> tuple[pa.Array, pa.Array, str]:
    """converters.date_field: (ok, ISO text, why); an event date may not be after `ref`."""
    t = col.type
    if pa.types.is_timestamp(t) and t.tz is None:  # datetime.date()
        col, t = col.cast(pa.date32()), pa.date32()
    if pa.types.is_string(t):
        ok, iso = _by_distinct(col, _date_text)
    elif t == pa.date32():
        ok = pc.and_(pc.greater_equal(col, pa.scalar(date(1, 1, 1))), pc.less_equal(col, pa.scalar(date(9999, 12, 31))))
        iso = col.cast(pa.string())
    else:
        return _false(len(col)), pa.nulls(len(col), pa.string()), f"{t} input"
    if f.not_future:
        ok = pc.and_(ok, pc.less_equal(iso, ref.isoformat()))  # ISO dates compare as text
    return ok, iso, ""


def _by_distinct(col: pa.Array, fn: Callable[[pa.Array], tuple[pa.Array, pa.Array]]) -> tuple[pa.Array, pa.Array]:
    """fn on the distinct values only: dates and codes repeat across rows."""
    enc = pc.dictionary_encode(col)
    ok, value = fn(enc.dictionary)
    return pc.take(ok, enc.indices), pc.take(value, enc.indices)

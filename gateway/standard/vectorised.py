"""Vectorised validation of standard records held in Arrow record batches (the bulk path's validator).

    verdict = validate_batch("stock", batch)     # batch: pyarrow RecordBatch/Table, columns named as the standard's fields
    verdict.valid_mask                           # BooleanArray: True = certainly valid, False = "not sure"
    verdict.canonical                            # the valid rows' canonical columns (as normalize() gives them)
    results = validate_rows_via_batch("stock", records)   # exactly [normalize("stock", r) for r in records]

The seam follows `gateway.standard.compiled`: the fast path answers only
"valid, and here is the canonical record" or "not sure". Every rule that
pyarrow.compute can check exactly is checked column by column; a value it
cannot judge exactly (an input type or spelling only the row validator
understands) makes its row "not sure", never "valid". Rows the mask leaves
False go to `normalize`, which gives the Chinese, field-level reasons, so the
reasons always come from the row validator. tests/test_standard_vectorised.py
proves on a generated corpus that a True row has no error under `normalize`
and the same canonical record, type for type.

A batch row means what ``batch.to_pylist()`` gives for it: Arrow null is an
absent field; a column outside the standard makes every row "not sure"
(normalize reports `unknown_field` even for a null value).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from gateway import localtime
from gateway.standard import columns
from gateway.standard.schema import DECIMAL, ITEMS, record_type
from gateway.standard.validate import DEFAULT_CONTEXT, FieldError, ValidationContext, normalize

_INT64 = (-(2**63), 2**63 - 1)


def _false(n: int) -> pa.Array:
    return pa.array([False] * n, pa.bool_())


@dataclass(frozen=True)
class BatchVerdict:
    """What the vectorised pass could prove about a batch."""

    record_type: str
    valid_mask: pa.BooleanArray  # one per input row, never null
    canonical: pa.Table  # the rows where valid_mask is True, in batch order; a column per field the batch carries
    fallbacks: Mapping[str, str]  # field -> why its values always go to the row validator (empty: none did)

    @property
    def valid_indices(self) -> pa.Int64Array:
        """Row numbers (in the input batch) of the canonical rows."""
        return pc.indices_nonzero(self.valid_mask).cast(pa.int64())

    def records(self) -> list[dict[str, Any]]:
        """The canonical rows as the dicts `normalize` returns (absent fields left out, its types: a whole
        decimal is an int)."""
        rt = record_type(self.record_type)
        names = self.canonical.column_names
        lists = []
        for name in names:
            column = self.canonical.column(name)
            kind = rt[name].kind
            if kind == DECIMAL and _all_whole(column):
                values = column.cast(pa.int64()).to_pylist()  # int(v) of each, without a Python loop
            elif kind == DECIMAL:
                values = [v if v.__class__ is not float or not v.is_integer() else int(v) for v in column.to_pylist()]
            else:
                values = column.to_pylist()
            if kind == ITEMS:
                values = [None if v is None else [_item_record(i) for i in v] for v in values]
            lists.append(values)
        if not lists:
            return [{} for _ in range(self.canonical.num_rows)]
        out = [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]
        # An absent field is no key: drop the nulls afterwards, column by column (the keys keep their order).
        for name in names:
            if self.canonical.column(name).null_count:
                for record in out:
                    if record[name] is None:
                        del record[name]
        return out


def _all_whole(column: pa.ChunkedArray) -> bool:
    """A float column whose every value is a whole number int64 holds exactly (below 2**53)."""
    if not pa.types.is_floating(column.type) or column.null_count == len(column):
        return False
    whole = pc.and_(pc.equal(pc.floor(column), column), pc.less(pc.abs(column), 2.0**53))
    return bool(pc.all(whole).as_py())


def _item_record(item: dict[str, Any]) -> dict[str, Any]:
    q = item["quantity"]
    return {"material_id": item["material_id"], "quantity": int(q) if q.is_integer() else q, "unit": item["unit"]}


def _as_batch(data: pa.RecordBatch | pa.Table) -> pa.RecordBatch:
    if isinstance(data, pa.RecordBatch):
        return data
    arrays = [c.combine_chunks() if c.num_chunks != 1 else c.chunk(0) for c in data.columns]
    return pa.RecordBatch.from_arrays(arrays, schema=data.schema) if data.num_columns else pa.record_batch({})


def validate_batch(
    record_type_name: str,
    batch: pa.RecordBatch | pa.Table,
    *,
    today: date | None = None,
    context: ValidationContext | None = None,
) -> BatchVerdict:
    """Check every row of `batch` against the standard at once; see the module docstring."""
    rt = record_type(record_type_name)
    ctx = context or DEFAULT_CONTEXT
    ref = today or ctx.today or localtime.today()
    data = _as_batch(batch)
    n = data.num_rows
    fallbacks: dict[str, str] = {}
    unknown = [c for c in data.schema.names if c not in rt.field_map]
    ok: pa.Array = pa.array([True] * n, pa.bool_()) if not unknown else _false(n)
    for name in unknown:
        fallbacks[name] = "not a field of the standard (unknown_field)"
    canon: dict[str, pa.Array] = {}
    for f in rt.fields:
        if f.name not in data.schema.names:
            if f.is_required:
                ok = pa.array([False] * n, pa.bool_())
                fallbacks[f.name] = "required column missing"
            continue
        try:
            field_ok, value, why = columns.check(f, data.column(f.name), ref, ctx)
        except (pa.ArrowException, ValueError, OverflowError) as e:  # a corner pyarrow refuses: the row path judges
            field_ok, value, why = pa.array([False] * n, pa.bool_()), pa.nulls(n), f"{type(e).__name__}: {e}"
        if why:
            fallbacks[f.name] = why
        ok = pc.and_(ok, field_ok)
        canon[f.name] = value
    for rule in rt.rules:
        ok = pc.and_(ok, record_rule(rule, canon, n))
    mask = pc.fill_null(ok, False)
    table = pa.table(canon).filter(mask) if canon else pa.table({})
    return BatchVerdict(record_type_name, mask, table, fallbacks)


# --- record rules (gateway.standard.validate.RECORD_RULES), on the canonical columns ----------------------------


def _not_after(a: pa.Array | None, b: pa.Array | None, n: int) -> pa.Array:
    if a is None or b is None:
        return pa.array([True] * n, pa.bool_())
    return pc.fill_null(pc.less_equal(a, b), True)  # either absent: no order to check


def _coords(c: Mapping[str, pa.Array], n: int) -> pa.Array:
    def present(name: str) -> pa.Array:
        return pc.is_valid(c[name]) if name in c else _false(n)

    lon, lat, system = present("longitude"), present("latitude"), present("coord_system")
    return pc.and_(pc.equal(lon, lat), pc.or_(pc.invert(lon), system))


RULES: dict[str, Callable[[Mapping[str, pa.Array], int], pa.Array]] = {
    "coords_need_system": _coords,
    "production_before_expiry": lambda c, n: _not_after(c.get("production_date"), c.get("expiry_date"), n),
    "signed_start_end_order": lambda c, n: pc.and_(
        _not_after(c.get("signed_date"), c.get("start_date"), n), _not_after(c.get("start_date"), c.get("end_date"), n)
    ),
}


def record_rule(rule: str, canonical: Mapping[str, pa.Array], n: int) -> pa.Array:
    """True where the record rule holds on the canonical columns (a rule not known here: never)."""
    fn = RULES.get(rule)
    return fn(canonical, n) if fn is not None else _false(n)


# --- row-shaped callers: dicts in, exactly normalize()'s answers out -------------------------------------------

_ARROW_TYPES: dict[type, pa.DataType] = {
    str: pa.string(),
    int: pa.int64(),
    float: pa.float64(),
    date: pa.date32(),
    datetime: pa.timestamp("us"),
}


def _column(values: list[Any]) -> tuple[pa.Array, list[bool]]:
    """An Arrow column of the commonest Python type among `values`; rows of another type (or one Arrow
    cannot hold exactly) are nulled and flagged "not sure"."""
    unsure = [False] * len(values)
    present = set(map(type, values)) - {type(None)}
    if not present:
        return pa.nulls(len(values)), unsure
    if len(present) == 1 and (only := present.pop()) in (str, int, float, date):  # one type: Arrow converts it all
        try:
            return pa.array(values, _ARROW_TYPES[only]), unsure
        except (pa.ArrowException, OverflowError):
            pass  # an int beyond int64: value by value below
    classes: dict[type, int] = {}
    for v in values:
        if v is not None:
            classes[v.__class__] = classes.get(v.__class__, 0) + 1
    cls = max(classes, key=classes.__getitem__)
    kept: list[Any] = []
    for i, v in enumerate(values):
        fits = v is None or (
            v.__class__ is cls
            and (cls is not int or _INT64[0] <= v <= _INT64[1])
            and (cls is not datetime or v.tzinfo is None)
            and (cls is not Decimal or (v.is_finite() and v.adjusted() < 30))
        )
        if not fits:
            unsure[i] = True
        kept.append(v if fits else None)
    if cls in _ARROW_TYPES:
        return pa.array(kept, _ARROW_TYPES[cls]), unsure
    if cls is Decimal:
        try:
            return pa.array(kept), unsure
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            pass
    if cls in (list, dict):  # items as list<struct>, attachments as struct: the commonest type Arrow infers per value
        types: list[pa.DataType | None] = []
        for v in kept:
            try:
                types.append(None if v is None else pa.array([v]).type)
            except (pa.ArrowException, TypeError, ValueError, OverflowError):
                types.append(None)
        counts: dict[pa.DataType, int] = {}
        for t in types:
            if t is not None:
                counts[t] = counts.get(t, 0) + 1
        if counts:
            common = max(counts, key=counts.__getitem__)
            same = [t == common for t in types]
            unsure = [u or (v is not None and not s) for u, v, s in zip(unsure, values, same, strict=True)]
            return pa.array([v if s else None for v, s in zip(kept, same, strict=True)], common), unsure
    return pa.nulls(len(values)), [v is not None for v in values]


def python_column(values: list[Any]) -> tuple[pa.Array, list[bool]]:
    """Python values as the Arrow column records_to_batch would build for them, and per value whether only
    the row validator can judge it (another type than the column's, a value Arrow cannot hold exactly)."""
    return _column(values)


def records_to_batch(record_type_name: str, records: Sequence[Mapping[str, Any]]) -> tuple[pa.RecordBatch, list[bool]]:
    """Records (dicts) as a batch of the standard's columns, and per record whether only the row validator
    can judge it (an unknown key, a value of a type its column cannot carry)."""
    rt = record_type(record_type_name)
    known = rt.field_map.keys()
    unsure = [not known >= r.keys() for r in records]
    arrays, names = [], []
    for f in rt.fields:
        values = [r.get(f.name) for r in records]
        if all(v is None for v in values):
            continue
        arr, bad = _column(values)
        unsure = [a or b for a, b in zip(unsure, bad, strict=True)]
        arrays.append(arr)
        names.append(f.name)
    batch = pa.RecordBatch.from_arrays(arrays, names=names) if arrays else pa.record_batch({})
    return batch, unsure


def validate_rows_via_batch(
    record_type_name: str,
    records: Sequence[Mapping[str, Any]],
    *,
    today: date | None = None,
    context: ValidationContext | None = None,
) -> list[tuple[dict, list[FieldError]]]:
    """Exactly ``[normalize(record_type_name, r, ...) for r in records]``; the rows the vectorised pass proves
    valid skip the row validator."""
    ctx = context or DEFAULT_CONTEXT
    ref = today or ctx.today or localtime.today()
    if not records:
        return []
    batch, unsure = records_to_batch(record_type_name, records)
    if batch.num_rows != len(records):  # no column at all: nothing to vectorise
        return [normalize(record_type_name, r, today=ref, context=ctx) for r in records]
    verdict = validate_batch(record_type_name, batch, today=ref, context=ctx)
    results: list[tuple[dict, list[FieldError]] | None] = [None] * len(records)
    for i, clean in zip(verdict.valid_indices.to_pylist(), verdict.records(), strict=True):
        if not unsure[i]:
            results[i] = (clean, [])
    return [
        r if r is not None else normalize(record_type_name, records[i], today=ref, context=ctx)
        for i, r in enumerate(results)
    ]

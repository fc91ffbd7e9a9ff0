"""The vectorised ``CompiledMapping.map_batch``: a batch of source rows mapped column by column.

    plan = vectorised_plan(mapping)      # {field: "vectorised" | why it is computed row by row}
    results = map_batch(mapping, batch)  # exactly [mapping.map_row(r) for r in batch.source_rows()]

Each field is built once per mapping (cached on it, as ``map_fields``' fast path is) as one of:

- *passthrough*: a bare column, handed to the validator as the Arrow column itself;
- *kernels*: a text column through trim, str, null_if, upper/lower (ASCII text) and a text default, as
  Arrow kernels (gateway.mappings.kernels);
- *by value*: a column (or path) through built-in transforms that read nothing but the value. The
  field's own row closure runs once per *distinct* value of the column (``pc.dictionary_encode``) and
  the results are spread back with ``take``, so code lists, maps and lookups are an index plus a take,
  never a dict get per row, and the values are exactly the closure's, type for type;
- *constant*: a constant (or an absent column) through such transforms, computed once;
- *row*: anything else (an expression, a template, a transform that reads other columns or is not
  built in) runs the row closure over ``batch.dicts()`` for this field only; `vectorised_plan` says why.

The assembled standard columns go to ``gateway.standard.vectorised.validate_batch``. Its "valid" rows
take their canonical record from the verdict; every other row (not sure, a transform failure, a value
the columns cannot carry exactly) goes through ``mapping.map_row``, so its problems are map_row's own.
tests/test_mapping_vectorised.py proves the equality on a generated corpus.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from gateway.adapters import registry
from gateway.adapters.batches import RowBatch
from gateway.errors import RowProblem
from gateway.mappings.kernels import Kernel, text_kernel
from gateway.mappings.transforms import TransformFailure
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.vectorised import python_column, validate_batch

if TYPE_CHECKING:
    from gateway.mappings.compile import CompiledMapping

Result = tuple[dict[str, Any] | None, list[RowProblem]]
FieldFn = Callable[[Mapping[str, Any]], Any]
VECTORISED = "vectorised"
# What map_fields turns into a field problem; anything else propagates from map_row as well.
FIELD_ERRORS = (TransformFailure, ValueError, TypeError, ArithmeticError)

# Built-in transforms whose result depends on the value alone (setup.cfg's gateway.transforms);
# concat and convert_unit with unit_column also read other columns of the row.
VALUE_ONLY = frozenset(
    {"trim", "upper", "lower", "str", "null_if", "regex", "int", "decimal", "number", "unit_of", "convert_unit",
     "date", "map", "code", "lookup", "constant", "default", "json"}
)
BUILTIN_MODULE = "gateway.mappings.transforms"
# Arrow types whose values dictionary_encode keeps apart exactly as Python's == and type() do
# (floats are not: 0.0 and -0.0 share a slot).
_DISTINCT_OK = (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer, pa.types.is_date32,
                pa.types.is_decimal, pa.types.is_boolean)
# Arrow types handed to the validator as they are (it reads them as to_pylist() gives them).
_PASS_OK = (*_DISTINCT_OK, pa.types.is_float64)


@dataclass(frozen=True, slots=True)
class FieldPlan:
    name: str
    fn: FieldFn
    how: str  # "passthrough" | "value" | "constant" | "row"
    columns: tuple[str, ...] = ()  # the column, or a path's spellings in the order the row getter tries them
    reason: str = ""  # why a "row" field is computed row by row (Chinese: the preview shows it)
    # transforms = ["date"] alone: a date32 column goes to the validator as the dates themselves, since
    # converters.date_field answers a date and its isoformat() text (what the transform gives) alike.
    date_only: bool = False
    kernel: Kernel | None = None  # the chain as Arrow kernels on a text column (gateway.mappings.kernels)


@dataclass(frozen=True, slots=True)
class MappingPlan:
    record_type: str
    fields: tuple[FieldPlan, ...]


def plan_mapping(mapping: CompiledMapping) -> MappingPlan:
    """How each field of `mapping` is computed over a batch, from the spec load_mapping keeps on each field's
    closure (so a caller that swaps `fields` brings the specs of the fields it brings)."""
    plans = []
    for name, fn in mapping.fields:
        spec = getattr(fn, "spec", None)  # set by load_mapping on each field's closure
        if not isinstance(spec, dict):
            plans.append(FieldPlan(name, fn, "row", reason="不是由映射文件编译的字段"))
            continue
        plans.append(_plan_field(name, fn, spec))
    return MappingPlan(mapping.record_type, tuple(plans))


def _plan_field(name: str, fn: FieldFn, spec: dict[str, Any]) -> FieldPlan:
    steps = [s if isinstance(s, str) else next(iter(s)) for s in spec.get("transforms", [])]
    for s, raw in zip(steps, spec.get("transforms", []), strict=True):
        if s == "concat":
            return FieldPlan(name, fn, "row", reason="转换 concat 读取其他列")
        if s == "convert_unit" and isinstance(raw, dict) and "unit_column" in (raw.get(s) or {}):
            return FieldPlan(name, fn, "row", reason="转换 convert_unit 读取计量单位列")
        if s not in VALUE_ONLY or not _builtin(s):
            return FieldPlan(name, fn, "row", reason=f"转换 {s} 不是内置的按值转换，可能读取整行")
    if "expr" in spec:
        return FieldPlan(name, fn, "row", reason="由表达式（expr）计算")
    if "template" in spec:
        return FieldPlan(name, fn, "row", reason="由模板（template）拼接多列")
    if "constant" in spec:
        return FieldPlan(name, fn, "constant")
    if "path" in spec:
        key = spec["path"]
        alts = tuple(dict.fromkeys((key, key.lstrip("/"), key.removeprefix("./"), "/" + key.lstrip("/"))))
        return FieldPlan(name, fn, "value", alts, date_only=_date_only(spec), kernel=_kernel(spec))
    plain = not steps and "default" not in spec
    how = "passthrough" if plain else "value"
    return FieldPlan(name, fn, how, (spec["column"],), date_only=_date_only(spec), kernel=_kernel(spec))


def _kernel(spec: dict[str, Any]) -> Kernel | None:
    steps = list(spec.get("transforms", []))
    if "default" in spec:
        steps.append({"default": spec["default"]})  # as load_mapping chains it
    return text_kernel(steps)


def _builtin(transform: str) -> bool:
    """The name resolves to gateway's own transform (an installed package could register another)."""
    try:
        return registry.load(transform, registry.TRANSFORM_GROUP).__module__ == BUILTIN_MODULE
    except KeyError:
        return False


def _date_only(spec: dict[str, Any]) -> bool:
    return spec.get("transforms") == ["date"] and "default" not in spec


def vectorised_plan(mapping: CompiledMapping) -> dict[str, str]:
    """Per mapped field: "vectorised", or why it is computed row by row."""
    return {f.name: f.reason or VECTORISED for f in mapping.vector_plan().fields}


def row_fields_note(mapping: CompiledMapping) -> str | None:
    """The preview's line naming the fields computed row by row, None when every field is vectorised."""
    fields = RECORD_TYPES[mapping.record_type].field_map
    rows = [
        f"{fields[f.name].label if f.name in fields else f.name}({f.name})（{f.reason}）"
        for f in mapping.vector_plan().fields
        if f.how == "row"
    ]
    return f"以下字段逐行计算：{'、'.join(rows)}" if rows else None


# --- one batch ---------------------------------------------------------------------------------------------------


def map_batch(mapping: CompiledMapping, batch: RowBatch) -> list[Result]:
    """Exactly ``[mapping.map_row(r) for r in batch.source_rows()]``; see the module docstring."""
    return map_batch_detail(mapping, batch)[0]


def map_batch_detail(mapping: CompiledMapping, batch: RowBatch) -> tuple[list[Result], list[int]]:
    """map_batch, and the rows (by position) that went through map_row."""
    n = len(batch)
    data = batch.arrow() if n else None
    if data is None:
        return [mapping.map_row(r) for r in batch.source_rows()], list(range(n))
    plan = mapping.vector_plan()
    source = _Source(data, batch)
    options = [_field_or_rows(fp, source) for fp in plan.fields]
    results: list[Result | None] = [None] * n
    # A field whose values are of two types (number gives 5 and "5.5") has a column per type; rows the
    # first choice leaves unsure get another pass with the other, while some field's other column helps.
    reachable = _all([_sure_somewhere(alts) for alts in options])  # None: every row
    pending: pa.Array | None = None  # None: every row
    for _ in range(MAX_PASSES):
        chosen = [_choose(alts, pending) for alts in options]
        unsure = _any([bad for _, bad in chosen])
        names = [fp.name for fp in plan.fields]
        verdict_rows = _validate(plan.record_type, names, [arr for arr, _ in chosen], mapping)
        at = pending.to_pylist() if pending is not None else range(n)
        if verdict_rows is not None:
            valid, records = verdict_rows
            not_sure = unsure.to_pylist() if unsure is not None else None
            for k, record in zip(valid, records, strict=True):
                if not_sure is None or not not_sure[k]:
                    results[at[k]] = (record, [])
        if unsure is None or all(len(alts) == 1 for alts in options):
            break
        again = unsure if reachable is None else pc.and_(unsure, reachable if pending is None else reachable.take(pending))
        left = [at[k] for k in pc.indices_nonzero(again).to_pylist() if results[at[k]] is None]
        if not left:
            break
        pending = pa.array(left, pa.int64())
    rest = [i for i, r in enumerate(results) if r is None]
    if rest:
        for i, r in zip(rest, batch.take(rest).source_rows(), strict=True):
            results[i] = mapping.map_row(r)
    return results, rest  # type: ignore[return-value]


MAX_PASSES = 3
Column = tuple[pa.Array, pa.Array | None]  # values, and where they are not sure (None: nowhere)


def _sure_somewhere(alts: list[Column]) -> pa.Array | None:
    """Where one of the field's columns is sure; None: everywhere."""
    if any(bad is None for _, bad in alts):
        return None
    return _any([pc.invert(bad) for _, bad in alts])  # type: ignore[arg-type]


def _fold(op: Any, masks: list[pa.Array | None]) -> pa.Array | None:
    """`op` (pc.or_ / pc.and_) over the masks that are not None; None when every mask is None."""
    out = None
    for m in masks:
        if m is not None:
            out = m if out is None else op(out, m)
    return out


def _any(masks: list[pa.Array | None]) -> pa.Array | None:
    """OR of the masks; None stands for all-False (and is the answer when every mask is None)."""
    return _fold(pc.or_, masks)


def _all(masks: list[pa.Array | None]) -> pa.Array | None:
    """AND of masks where None stands for all-True; None when every mask is None."""
    return _fold(pc.and_, masks)


def _choose(alts: list[Column], pending: pa.Array | None) -> Column:
    """The field's column for these rows: the first, or the one sure for the most of them."""
    if pending is None:
        return alts[0]
    best = min(alts, key=lambda a: 0 if a[1] is None else a[1].take(pending).true_count)
    arr, bad = best
    return arr.take(pending), None if bad is None else bad.take(pending)


def _validate(
    record_type: str, names: list[str], arrays: list[pa.Array], mapping: CompiledMapping
) -> tuple[list[int], list[dict[str, Any]]] | None:
    """validate_batch on the assembled standard columns: (positions of valid rows, their records)."""
    kept = [(name, arr) for name, arr in zip(names, arrays, strict=True) if arr.null_count < len(arr)]
    if not kept:  # an absent field is no column (as records_to_batch leaves it out); no column at all: no pass
        return None
    columns = pa.RecordBatch.from_arrays([a for _, a in kept], names=[nm for nm, _ in kept])
    verdict = validate_batch(record_type, columns, context=mapping.context)
    return verdict.valid_indices.to_pylist(), verdict.records()


class _Source:
    """The batch's columns as the row closures would read them; for a batch built from dicts, a column is
    used as Arrow holds it only where Arrow holds the dicts' values exactly (one type, one Decimal scale)."""

    def __init__(self, data: pa.RecordBatch, batch: RowBatch) -> None:
        self.data = data
        self.batch = batch
        self.n = data.num_rows
        self.names = set(data.schema.names)
        # The dicts are the truth when the batch was built from them; Arrow's view was inferred.
        # (RowBatch keeps them in _rows; a batch from Arrow has none until dicts() is called.)
        self.rows: list[dict[str, Any]] | None = batch._rows
        self.extra: set[str] = set()
        if self.rows is not None:
            self.extra = set().union(*(r.keys() for r in self.rows)) - self.names
        self._faithful: dict[str, bool] = {}

    def column(self, name: str) -> pa.Array | None:
        """The column when the rows' values are exactly its to_pylist(); None when they may not be."""
        if name in self.extra:
            return None
        if name not in self.names:
            return pa.nulls(self.n)
        col = self.data.column(name)
        if self.rows is not None:
            ok = self._faithful.get(name)
            if ok is None:
                ok = self._faithful[name] = _faithful(col, [r.get(name) for r in self.rows])
            if not ok:
                return None
        return col


def _faithful(col: pa.Array, values: Sequence[Any]) -> bool:
    classes = {v.__class__ for v in values} - {type(None)}
    if not classes:
        return col.null_count == len(col)
    if len(classes) != 1:
        return False
    (cls,) = classes
    t = col.type
    if cls is str:
        return pa.types.is_string(t) or pa.types.is_large_string(t)
    if cls is int:
        return pa.types.is_integer(t)
    if cls is bool:
        return pa.types.is_boolean(t)
    if cls is float:
        return pa.types.is_float64(t)
    if cls is date:
        return pa.types.is_date32(t)
    if cls is datetime:
        return pa.types.is_timestamp(t) and t.tz is None and all(v is None or v.tzinfo is None for v in values)
    if cls is Decimal:
        return pa.types.is_decimal(t) and len({v.as_tuple().exponent for v in values if v is not None}) == 1
    return False


def _field_or_rows(fp: FieldPlan, src: _Source) -> list[Column]:
    try:
        return _field(fp, src)
    except pa.ArrowException:  # a corner pyarrow refuses (a type it cannot encode, say): this field row by row
        return _by_row(fp, src)


def _field(fp: FieldPlan, src: _Source) -> list[Column]:
    """The field's column(s) over the batch: one per type its values take, each with where it is not sure."""
    if fp.how in ("passthrough", "value"):
        present = [c for c in fp.columns if c in src.names or c in src.extra]
        if len(present) > 1:  # the row getter picks a spelling per row
            return _by_row(fp, src)
        if not present:
            return _constant(fp, src.n)
        col = src.column(present[0])
        if col is None:
            return _by_row(fp, src)
        if fp.how == "passthrough" and any(ok(col.type) for ok in _PASS_OK):
            return [(col, None)]
        if fp.date_only and pa.types.is_date32(col.type):
            return [(col, None)]
        if fp.kernel is not None:
            out = fp.kernel(col)
            if out is not None:
                return [(out, None)]
        return _by_value(fp, present[0], col)
    if fp.how == "constant":
        return _constant(fp, src.n)
    return _by_row(fp, src)


def _call(fn: FieldFn, row: Mapping[str, Any]) -> tuple[Any, bool]:
    try:
        return fn(row), False
    except FIELD_ERRORS:
        return None, True


def _constant(fp: FieldPlan, n: int) -> list[Column]:
    (arr, bad), *_ = _from_values(fp.fn, [{}])
    zeros = pa.array([0] * n, pa.int32())
    return [(arr.take(zeros), None if bad is None else bad.take(zeros))]


def _by_value(fp: FieldPlan, key: str, col: pa.Array) -> list[Column]:
    """The row closure once per distinct value, spread back over the rows."""
    if not any(ok(col.type) for ok in _DISTINCT_OK):
        return _from_values(fp.fn, [{key: v} for v in col.to_pylist()])
    enc = pc.dictionary_encode(col)
    distinct = enc.dictionary.to_pylist()
    alts = _from_values(fp.fn, [{key: v} for v in (*distinct, None)])  # the last slot: null rows
    idx = pc.fill_null(enc.indices, len(distinct))
    return [(arr.take(idx), None if bad is None else bad.take(idx)) for arr, bad in alts]


def _by_row(fp: FieldPlan, src: _Source) -> list[Column]:
    return _from_values(fp.fn, src.batch.dicts())


def _from_values(fn: FieldFn, rows: Sequence[Mapping[str, Any]]) -> list[Column]:
    """fn over rows as Arrow: the column of its commonest type and, when values of another type are left
    out of it, a second column holding those."""
    out, failed = zip(*(_call(fn, r) for r in rows), strict=True) if rows else ((), ())
    arr, unsure = python_column(list(out))
    bad = [f or u for f, u in zip(failed, unsure, strict=True)]
    first: Column = (arr, pa.array(bad, pa.bool_()) if any(bad) else None)
    other = [u and not f for f, u in zip(failed, unsure, strict=True)]
    if not any(other):
        return [first]
    arr2, unsure2 = python_column([v if o else None for v, o in zip(out, other, strict=True)])
    bad2 = [not o or u for o, u in zip(other, unsure2, strict=True)]
    return [first, (arr2, pa.array(bad2, pa.bool_()))]

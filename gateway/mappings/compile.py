"""Load a mapping file and compile it once into plain closures.

A mapping (TOML, one per source under config/mappings/) says, per standard
field, where the value comes from — ``column``, ``path`` (XML rows keyed by
path), ``expr`` (safe expression), ``template`` ("{a}-{b}") or ``constant`` —
and which transforms it goes through. ``load_mapping`` reports every mistake at
once; ``CompiledMapping.map_row`` is the hot path (a million rows per sync), so
it only calls closures built here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.adapters import registry
from gateway.adapters.base import SourceRow
from gateway.adapters.batches import RowBatch
from gateway.errors import MappingError, RowProblem
from gateway.mappings import vectorised
from gateway.mappings.expr import ExprError, compile_expr, compile_template
from gateway.mappings.transforms import TransformContext, TransformFailure
from gateway.mappings.vectorised import MappingPlan
from gateway.standard.schema import RECORD_TYPES
from gateway.standard.validate import ValidationContext, fused_normalizer, normalize

FieldFn = Callable[[Mapping[str, Any]], Any]
SOURCE_KINDS = ("column", "path", "expr", "template", "constant")
FIELD_KEYS = (*SOURCE_KINDS, "transforms", "default")
TOP_KEYS = ("record_type", "description", "fields")


@dataclass
class FieldProblem:
    """A per-field failure while mapping one row (transform or standard rule)."""

    field: str
    label: str
    value: Any
    rule: str
    message: str


@dataclass
class CompiledMapping:
    record_type: str
    fields: tuple[tuple[str, FieldFn], ...]
    source_fields: frozenset[str]
    text: str = ""
    version: int | None = None
    source: str = ""
    file: str | None = None
    # Extra units and the category code table from the gateway config; None = the schema's defaults.
    context: ValidationContext | None = None
    _raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    # (fields, context) the fast path was built for, and the fast path itself
    _fast: tuple[Any, Any, Callable[[Mapping[str, Any]], dict[str, Any] | None]] | None = field(
        default=None, repr=False, compare=False
    )
    # (fields, context) the batch plan was built for, and the plan (gateway.mappings.vectorised)
    _vec: tuple[Any, Any, MappingPlan] | None = field(default=None, repr=False, compare=False)

    def map_fields(self, data: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
        """Map and normalise one row's data; the record is None when any field fails."""
        fast = self._fast
        if fast is None or fast[0] is not self.fields or fast[1] is not self.context:
            # Built lazily and rebuilt if a caller swaps fields or context after compiling.
            fn = fused_normalizer(
                self.record_type, {name: getattr(get, "column", None) or get for name, get in self.fields}, self.context
            )
            fast = self._fast = (self.fields, self.context, fn)
        record = fast[2](data)
        if record is not None:
            return record, []
        return self._map_fields_full(data)

    def _map_fields_full(self, data: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[FieldProblem]]:
        """Every problem of a row (the fast path found one, or bailed out)."""
        out: dict[str, Any] = {}
        failed: list[FieldProblem] | None = None
        for name, fn in self.fields:
            try:
                v = fn(data)
            except TransformFailure as e:
                failed = failed or []
                failed.append(_problem(self.record_type, name, _raw_value(self._raw, name, data), e.rule, e.message))
                continue
            except (ValueError, TypeError, ArithmeticError) as e:
                failed = failed or []
                failed.append(_problem(self.record_type, name, _raw_value(self._raw, name, data), "expr", f"计算出错：{e}"))
                continue
            if v is not None:
                out[name] = v
        clean, errors = normalize(self.record_type, out, context=self.context)
        if not errors and not failed:
            return clean, []
        problems = list(failed or [])
        bad = {p.field for p in problems}
        for e in errors:
            if e.field not in bad:  # a field whose transform failed also shows up as "missing"
                problems.append(FieldProblem(e.field, e.label, e.value, e.rule, e.message))
        return None, problems

    def map_row(self, row: SourceRow | Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[RowProblem]]:
        if isinstance(row, SourceRow):
            data, locator = row.data, row.locator
        else:
            data, locator = row, ""
        record, problems = self.map_fields(data)
        return record, [RowProblem(self.source, locator, p.field, p.value, p.rule, p.message) for p in problems]


    def map_batch(self, batch: RowBatch) -> list[tuple[dict[str, Any] | None, list[RowProblem]]]:
        """map_row for every row of a batch, in order: exactly ``[self.map_row(r) for r in batch.source_rows()]``
        (the bulk path's seam), computed column by column (gateway.mappings.vectorised)."""
        return vectorised.map_batch(self, batch)

    def vector_plan(self) -> MappingPlan:
        """How map_batch computes each field; built once, rebuilt if a caller swaps fields or context."""
        vec = self._vec
        if vec is None or vec[0] is not self.fields or vec[1] is not self.context:
            vec = self._vec = (self.fields, self.context, vectorised.plan_mapping(self))
        return vec[2]


def _problem(record_type: str, name: str, value: Any, rule: str, message: str) -> FieldProblem:
    f = RECORD_TYPES[record_type].field_map.get(name)
    label = f.label if f else name
    return FieldProblem(name, label, value, rule, f"{label}：{message}")


def _raw_value(raw: Mapping[str, Any], name: str, data: Mapping[str, Any]) -> Any:
    spec = raw.get(name)
    if isinstance(spec, str):
        return data.get(spec)
    if isinstance(spec, dict):
        for k in ("column", "path"):
            if k in spec:
                return data.get(spec[k])
    return None


def load_mapping(
    path_or_text: str | Path,
    record_type: str | None = None,
    columns: list[str] | None = None,
    *,
    source: str = "",
    version: int | None = None,
    base_dir: Path | None = None,
    source_rows: Callable[[str], Any] | None = None,
    context: ValidationContext | None = None,
) -> CompiledMapping:
    """Compile a mapping file (a Path, or TOML text). Raises MappingError listing every problem.

    `record_type` (from the source config) must match the file's when both are
    given; `columns` (reflected/sampled source columns) enables the unknown-column
    check; `source_rows(name)` feeds `lookup = {source = ...}`.
    """
    file: str | None = None
    if isinstance(path_or_text, Path):
        file = str(path_or_text)
        try:
            text = path_or_text.read_text(encoding="utf-8")
        except OSError as e:
            raise MappingError([f"cannot read mapping file: {e}"], file) from None
        base_dir = base_dir or path_or_text.parent
    else:
        text = path_or_text
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingError([f"TOML syntax: {e}"], file) from None

    problems: list[str] = []
    for k in doc:
        if k not in TOP_KEYS:
            problems.append(f"{k}: unknown top-level key (known: {', '.join(TOP_KEYS)})")
    rtype = doc.get("record_type", record_type)
    if record_type and doc.get("record_type") and doc["record_type"] != record_type:
        problems.append(f"record_type: mapping is for {doc['record_type']!r} but the source is {record_type!r}")
        rtype = record_type
    if rtype not in RECORD_TYPES:
        problems.append(f"record_type: {rtype!r} is not one of {', '.join(RECORD_TYPES)}")
        raise MappingError(problems, file)
    rt = RECORD_TYPES[rtype]
    raw_fields = doc.get("fields")
    if not isinstance(raw_fields, dict):
        problems.append("fields: missing [fields] table")
        raise MappingError(problems, file)

    known_cols = set(columns) if columns is not None else None
    compiled: list[tuple[str, FieldFn]] = []
    used: set[str] = set()
    for name, spec in raw_fields.items():
        where = f"fields.{name}"
        if name not in rt.field_map:
            hint = _closest(name, rt.field_names)
            problems.append(f"{where}: {rtype} has no field {name!r}" + (f"; did you mean {hint!r}?" if hint else ""))
            continue
        fn, cols = _compile_field(rtype, name, spec, where, problems, base_dir or Path.cwd(), source_rows)
        if known_cols is not None:
            for c in sorted(cols - known_cols):
                hint = _closest(c, known_cols)
                problems.append(f"{where}: source has no column {c!r}" + (f"; did you mean {hint!r}?" if hint else ""))
        used |= cols
        if fn is not None:
            compiled.append((name, fn))
    for req in rt.required_fields:
        if req not in raw_fields:
            problems.append(f"fields.{req}: required field {rt[req].label}({req}) is not mapped")
    if problems:
        raise MappingError(problems, file)
    return CompiledMapping(
        record_type=rtype,
        fields=tuple(compiled),
        source_fields=frozenset(used),
        text=text,
        version=version,
        source=source,
        file=file,
        context=context,
        _raw=raw_fields,
    )


def _compile_field(
    rtype: str,
    name: str,
    spec: Any,
    where: str,
    problems: list[str],
    base_dir: Path,
    source_rows: Callable[[str], Any] | None,
) -> tuple[FieldFn | None, set[str]]:
    cols: set[str] = set()
    if isinstance(spec, str):
        spec = {"column": spec}
    if not isinstance(spec, dict):
        problems.append(f"{where}: expected a column name or a table like {{column = \"...\"}}")
        return None, cols
    for k in spec:
        if k not in FIELD_KEYS:
            problems.append(f"{where}.{k}: unknown key (known: {', '.join(FIELD_KEYS)})")
    kinds = [k for k in SOURCE_KINDS if k in spec]
    if len(kinds) != 1:
        problems.append(f"{where}: give exactly one of {', '.join(SOURCE_KINDS)} (got {', '.join(kinds) or 'none'})")
        return None, cols
    kind = kinds[0]
    arg = spec[kind]
    get: FieldFn | None = None
    if kind in ("column", "path"):
        if not isinstance(arg, str) or not arg:
            problems.append(f"{where}.{kind}: expected a non-empty string")
        else:
            key = arg
            cols.add(key)
            get = _getter(key, kind == "path")
    elif kind in ("expr", "template"):
        if not isinstance(arg, str):
            problems.append(f"{where}.{kind}: expected a string")
        else:
            try:
                get = (compile_expr if kind == "expr" else compile_template)(arg, cols)
            except ExprError as e:
                problems.append(f"{where}.{kind}: {e}")
    else:
        value = arg
        get = lambda row: value  # noqa: E731

    chain: list[Callable[[Any, Mapping[str, Any]], Any]] = []
    steps = spec.get("transforms", [])
    if not isinstance(steps, list):
        problems.append(f"{where}.transforms: expected a list like [\"trim\", {{date = \"%Y%m%d\"}}]")
        steps = []
    if "default" in spec:
        steps = [*steps, {"default": spec["default"]}]
    for i, step in enumerate(steps):
        sw = f"{where}.transforms[{i}]"
        if isinstance(step, str):
            tname, targ = step, None
        elif isinstance(step, dict) and len(step) == 1:
            ((tname, targ),) = step.items()
        else:
            problems.append(f"{sw}: expected a transform name or a one-key table {{name = argument}}")
            continue
        try:
            factory = registry.load(tname, registry.TRANSFORM_GROUP)
        except KeyError as e:
            problems.append(f"{sw}: {e.args[0]}")
            continue
        ctx = TransformContext(rtype, name, base_dir, source_rows)
        try:
            chain.append(factory(targ, ctx))
        except (ValueError, TypeError) as e:
            problems.append(f"{sw}: bad argument for {tname}: {e}")
            continue
        cols |= ctx.columns_used
    if get is None:
        return None, cols
    fn = _compose(get, tuple(chain), key if kind == "column" else None)
    fn.spec = spec  # type: ignore[attr-defined]  # the batch plan reads it (a fresh closure per field)
    return fn, cols


def _getter(key: str, is_path: bool) -> FieldFn:
    if not is_path:
        get = lambda row: row.get(key)  # noqa: E731
        get.column = key  # type: ignore[attr-defined]  # lets the fast path read the column itself
        return get
    alts = tuple(dict.fromkeys((key, key.lstrip("/"), key.removeprefix("./"), "/" + key.lstrip("/"))))

    def get(row: Mapping[str, Any]) -> Any:
        for k in alts:
            if k in row:
                return row[k]
        return None

    return get


def _compose(get: FieldFn, chain: tuple[Callable[[Any, Mapping[str, Any]], Any], ...], column: str | None = None) -> FieldFn:
    if not chain:
        return get
    if len(chain) == 1:
        (t,) = chain
        if column is not None:  # one call less per field on the hot path
            return lambda row: t(row.get(column), row)
        return lambda row: t(get(row), row)

    def run(row: Mapping[str, Any]) -> Any:
        v = get(row)
        for t in chain:
            v = t(v, row)
        return v

    return run


def _closest(word: str, options: Any) -> str | None:
    import difflib

    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return m[0] if m else None

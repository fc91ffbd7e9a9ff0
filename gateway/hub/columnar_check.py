"""The vectorised step of the hub's batch validation (`gateway.hub.ingest.check_records`).

A batch's plain upserts are gathered by record type, their data put in one Arrow batch per type
(`gateway.standard.vectorised.records_to_batch`) and validated at once (`validate_batch`), which answers
"valid, and here is the canonical record" or "not sure" for each. Only the proven rows are taken from
here; a row it is not sure of, a record with withheld fields (its data is checked with stand-ins), a
type with few records in the batch (Arrow's fixed cost outweighs the row path there) and anything that
goes wrong in the step all go the row path, which gives the reasons. So the answers are the row
validator's, proven equal by tests/test_hub_columnar_check.py.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pyarrow as pa

from gateway.hub.decide import Candidate
from gateway.hub.forward.withheld import WITHHELD
from gateway.standard.schema import FILE_REF, ITEMS, record_type
from gateway.standard.validate import ValidationContext
from gateway.standard.vectorised import BatchVerdict, records_to_batch, validate_batch

LOG = logging.getLogger(__name__)
MIN_ROWS = 4000  # records of one type in a batch; fewer go the row path (measured: docs/hub.md, "Performance")


def proven_valid(candidates: list[Candidate], ref: date, ctx: ValidationContext,
                 min_rows: int = MIN_ROWS) -> dict[int, dict[str, Any]]:
    """{position in the batch: canonical record} for the upserts the vectorised validator proves valid, among
    the record types with at least `min_rows` of them in the batch."""
    if len(candidates) < min_rows:
        return {}
    by_type: dict[str, list[int]] = {}
    for i, c in enumerate(candidates):
        rec = c.rec
        if not c.envelope_ok or rec["op"] != "upsert" or rec["data"].__class__ is not dict:
            continue
        prov = rec.get("provenance")
        if prov.__class__ is dict and WITHHELD in prov:
            continue
        by_type.setdefault(rec["type"], []).append(i)
    proven: dict[int, dict[str, Any]] = {}
    for typ, at in by_type.items():
        if len(at) < min_rows:
            continue
        try:
            proven.update(_proven_of_type(typ, [candidates[i].rec["data"] for i in at], at, ref, ctx))
        except Exception:  # noqa: BLE001 - a surprise in the fast step: the row path judges these records
            LOG.exception("vectorised validation of %d %s records failed; validating them row by row", len(at), typ)
    return proven


def _proven_of_type(typ: str, datas: list[dict[str, Any]], at: list[int], ref: date,
                    ctx: ValidationContext) -> dict[int, dict[str, Any]]:
    got = _to_batch(typ, datas)
    if got is None:
        return {}
    batch, unsure = got
    verdict = validate_batch(typ, batch, today=ref, context=ctx)
    rows = verdict.valid_indices.to_pylist()
    canonical = verdict.canonical
    order = canonical.column_names  # the standard's field order, as normalize gives its record
    # A text or integer column that validation left exactly as it came: its values are the input's (the
    # canonical record takes them from the dicts); only the columns it changed are converted back.
    valid_in = {n: batch.column(n).filter(verdict.valid_mask) for n in order}
    changed = [n for n in order if valid_in[n].type not in _AS_IS or not valid_in[n].equals(
        canonical.column(n).combine_chunks())]
    subs = BatchVerdict(typ, verdict.valid_mask, canonical.select(changed), {}).records() if changed else None
    out: dict[int, dict[str, Any]] = {}
    if subs is None:
        for i in rows:
            if not unsure[i]:
                d = datas[i]
                out[at[i]] = {n: d[n] for n in order if d.get(n) is not None}
        return out
    kept = [n for n in order if n not in changed]
    for i, sub in zip(rows, subs, strict=True):
        if not unsure[i]:
            d = datas[i]
            row = {n: d[n] for n in kept if d.get(n) is not None}
            row.update(sub)
            out[at[i]] = {n: row[n] for n in order if n in row}
    return out


_AS_IS = (pa.string(), pa.int64())  # Arrow types whose Python values come back as they went in


def _to_batch(typ: str, datas: list[dict[str, Any]]) -> tuple[pa.RecordBatch, list[bool]] | None:
    """`records_to_batch(typ, datas)`, with the columns of one text or one integer type converted by Arrow in
    one pass over the dicts (the commonest case, and most of the cost when done column by column in
    Python); None when the records carry items or attachments (lists and objects: the row path is cheaper
    than Arrow's inference of them value by value)."""
    rt = record_type(typ)
    nested = [f.name for f in rt.fields if f.kind in (ITEMS, FILE_REF)]
    try:
        whole = pa.array(datas)  # one struct over every row; fails on a column of mixed types
    except (pa.ArrowException, OverflowError, TypeError, ValueError):
        if any(d.get(n) is not None for n in nested for d in datas):
            return None
        batch, unsure = records_to_batch(typ, datas)  # column by column, the commonest type of each
        return (batch, unsure) if batch.num_rows == len(datas) else None
    known = rt.field_map.keys()
    unsure = [not known >= d.keys() for d in datas]
    arrays: dict[str, pa.Array] = {}
    rest: list[str] = []
    for f in rt.fields:
        if whole.type.get_field_index(f.name) < 0:
            continue
        child = whole.field(f.name)
        if child.null_count == len(child):
            continue  # absent or null in every row: records_to_batch leaves it out
        if f.name in nested:
            return None
        if child.type in _AS_IS:
            arrays[f.name] = child
        else:
            rest.append(f.name)  # numbers of mixed kinds, booleans, lists: records_to_batch's rules for them
    if rest:
        sub, sub_unsure = records_to_batch(typ, [{n: d[n] for n in rest if n in d} for d in datas])
        arrays.update(zip(sub.schema.names, sub.columns, strict=True))
        unsure = [a or b for a, b in zip(unsure, sub_unsure, strict=True)]
    if not arrays:
        return None
    names = [f.name for f in rt.fields if f.name in arrays]
    return pa.RecordBatch.from_arrays([arrays[n] for n in names], names=names), unsure

"""Current problems: every row refused now, kept until it reads valid, is gone, or is corrected.

sync_runs keeps the first problems of each run and a source keeps 30 runs, so a refused
row used to vanish from sight within minutes. This table holds one row per problem of a
refused source row, keyed by (source, source key); the locator stands in for the key
where the source has none (an unreadable line). Upkeep, always inside the caller's
transaction:

- a refused row replaces that row's earlier problems (first_seen and a form correction
  are kept);
- a row read valid, or deleted at the source, clears them;
- the end of a whole-source pass clears the source's problems not seen in that pass;
- saving the record in the form marks the problems of that record key corrected
  (they leave the list; the row's problems go once the source reads it valid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine, and_, delete, func, or_, select, update
from sqlalchemy.engine import Connection

from gateway.adapters.base import SourceRow
from gateway.errors import RowProblem
from gateway.standard.schema import RECORD_TYPES
from gateway.store.db import utcnow
from gateway.store.tables import current_problems as cp

CHUNK = 500  # keys per IN (...) list


@dataclass(frozen=True)
class Refused:
    """One refused row: where it is, what its key fields gave, and every problem."""

    source_key: str
    locator: str
    record_key: str | None
    mapped: dict[str, Any] | None
    problems: Sequence[RowProblem]


def _text(v: Any) -> str | None:
    return None if v is None else v if isinstance(v, str) else str(v)


def mapped_values(mapping: Any, data: Mapping[str, Any]) -> dict[str, Any]:
    """The values a mapping gives a row's fields, before the standard's checks (failed ones left out).

    Only for refused rows (rare): the form is prefilled with what the source row says."""
    out: dict[str, Any] = {}
    for name, fn in mapping.fields:
        try:
            v = fn(data)
        except Exception:  # a failing transform: the clerk fills this field in the form
            continue
        if v is not None:
            out[name] = v if isinstance(v, (str, int, float, bool, list, dict)) else str(v)
    return out


def key_of(record_type: str, values: Mapping[str, Any]) -> str | None:
    """The record key (as record_key() joins it) when every required key field has a value, else None."""
    rt = RECORD_TYPES[record_type]
    parts = ["" if (v := values.get(k)) is None else str(v).strip() for k in rt.key]
    if any(not p and rt.field_map[k].is_required for k, p in zip(rt.key, parts, strict=True)):
        return None
    return "|".join(parts)


def refused_row(record_type: str, mapping: Any, row: SourceRow, problems: Sequence[RowProblem]) -> Refused:
    values = mapped_values(mapping, row.data)
    return Refused(row.key, row.locator or row.key, key_of(record_type, values), values, list(problems))


def unreadable(p: RowProblem) -> Refused:
    """An adapter's RowProblem (a line that could not be read): keyed by its place (`file:line N`), which is
    what the corrected line's locator is when it reads valid; the key the reader could make out is only shown."""
    place = p.locator.split(" key=", 1)[0]
    return Refused(place, p.locator, None, None, [p])


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(keys), CHUNK):
        yield keys[i : i + CHUNK]


def record(conn: Connection, source: str, record_type: str, rows: Sequence[Refused]) -> None:
    """Replace the problems of these rows with their current ones."""
    if not rows:
        return
    now = utcnow()
    keys = list(dict.fromkeys(r.source_key for r in rows))
    kept: dict[str, tuple[str, str | None, str | None]] = {}
    for part in _chunks(keys):
        for sk, first, cat, cby in conn.execute(
            select(cp.c.source_key, func.min(cp.c.first_seen), func.max(cp.c.corrected_at), func.max(cp.c.corrected_by))
            .where(cp.c.source == source, cp.c.source_key.in_(part))
            .group_by(cp.c.source_key)
        ):
            kept[sk] = (first, cat, cby)
        conn.execute(delete(cp).where(cp.c.source == source, cp.c.source_key.in_(part)))
    values = []
    for r in rows:
        first, cat, cby = kept.get(r.source_key, (now, None, None))
        mapped = orjson.dumps(r.mapped, default=str).decode() if r.mapped is not None else None
        for p in r.problems:
            values.append(
                {
                    "source": source,
                    "source_key": r.source_key,
                    "locator": r.locator or p.locator,
                    "record_type": record_type,
                    "record_key": r.record_key,
                    "field": p.field,
                    "value": _text(p.value),
                    "rule": p.rule,
                    "message": p.message,
                    "mapped": mapped,
                    "first_seen": first,
                    "last_seen": now,
                    "corrected_at": cat,
                    "corrected_by": cby,
                }
            )
    if values:
        conn.execute(cp.insert(), values)


def listed_keys(conn: Connection, source: str) -> set[str]:
    """The source keys (or locators) of the source's rows listed now."""
    return set(conn.execute(select(cp.c.source_key).where(cp.c.source == source).distinct()).scalars())


def clear(conn: Connection, source: str, source_keys: Sequence[str]) -> None:
    """These rows were read valid (or are gone at the source)."""
    keys = list(dict.fromkeys(source_keys))
    for part in _chunks(keys):
        conn.execute(delete(cp).where(cp.c.source == source, cp.c.source_key.in_(part)))


def clear_unseen(conn: Connection, source: str, since: str) -> None:
    """A whole-source pass that began at `since` ended: rows it did not refuse again are fixed or gone."""
    conn.execute(delete(cp).where(cp.c.source == source, cp.c.last_seen < since))


def clear_records(conn: Connection, source: str, record_type: str, record_keys: Sequence[str]) -> None:
    """Records of `source` read valid by record key (a spreadsheet import)."""
    keys = list(dict.fromkeys(record_keys))
    for part in _chunks(keys):
        conn.execute(
            delete(cp).where(cp.c.source == source, cp.c.record_type == record_type, cp.c.record_key.in_(part))
        )


def clear_locators(conn: Connection, source: str, prefix: str) -> None:
    """Forget the rows whose locator starts with `prefix` (the earlier import of the same file)."""
    esc = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    conn.execute(delete(cp).where(cp.c.source == source, cp.c.locator.like(esc + "%", escape="\\")))


def mark_corrected(
    conn: Connection, record_type: str, record_key: str, actor: str, problem_id: int | None = None
) -> int:
    """The record was saved in the form: its refused rows leave the list. Returns rows marked."""
    match = and_(cp.c.record_type == record_type, cp.c.record_key == record_key)
    if problem_id is not None:
        row = conn.execute(select(cp.c.source, cp.c.source_key).where(cp.c.id == problem_id)).first()
        if row is not None:
            match = or_(match, and_(cp.c.source == row.source, cp.c.source_key == row.source_key))
    return conn.execute(
        update(cp).where(match, cp.c.corrected_at.is_(None)).values(corrected_at=utcnow(), corrected_by=actor)
    ).rowcount


# ---- reading ---------------------------------------------------------------------------------


def label_of(record_type: str, field: str | None) -> str:
    if not field:
        return ""
    rt = RECORD_TYPES.get(record_type)
    f = rt.field_map.get(field) if rt else None
    return f.label if f else field


def open_filter(source: str | None = None, field: str | None = None) -> Any:
    cond = [cp.c.corrected_at.is_(None)]
    if source:
        cond.append(cp.c.source == source)
    if field:
        cond.append(cp.c.field == field)
    return and_(*cond)


def current(
    engine: Engine, *, source: str | None = None, field: str | None = None, limit: int | None = 1000
) -> list[dict[str, Any]]:
    """The open problems by source and locator, each with its field's Chinese label."""
    q = select(cp).where(open_filter(source, field)).order_by(cp.c.source, cp.c.locator, cp.c.id)
    if limit is not None:
        q = q.limit(limit)
    with engine.connect() as c:
        rows = [dict(r) for r in c.execute(q).mappings()]
    for r in rows:
        r["label"] = label_of(r["record_type"], r["field"])
    return rows


def get(engine: Engine, problem_id: int) -> dict[str, Any] | None:
    with engine.connect() as c:
        row = c.execute(select(cp).where(cp.c.id == problem_id)).mappings().first()
    return dict(row) if row else None


def of_row(engine: Engine, source: str, source_key: str) -> list[dict[str, Any]]:
    with engine.connect() as c:
        rows = [
            dict(r)
            for r in c.execute(
                select(cp).where(cp.c.source == source, cp.c.source_key == source_key).order_by(cp.c.id)
            ).mappings()
        ]
    for r in rows:
        r["label"] = label_of(r["record_type"], r["field"])
    return rows


@dataclass
class Counts:
    rows: int  # refused rows (one may have several problems)
    problems: int
    by_source: dict[str, int]  # refused rows per source


def counts(engine: Engine) -> Counts:
    with engine.connect() as c:
        per = c.execute(
            select(cp.c.source, func.count(func.distinct(cp.c.source_key)), func.count())
            .where(open_filter())
            .group_by(cp.c.source)
        ).all()
    return Counts(sum(r[1] for r in per), sum(r[2] for r in per), {r[0]: int(r[1]) for r in per})


def filters(engine: Engine) -> tuple[list[str], list[tuple[str, str]]]:
    """The sources and (field, label) pairs that have open problems, for the filter drop-downs."""
    with engine.connect() as c:
        sources = [r[0] for r in c.execute(select(cp.c.source).where(open_filter()).distinct().order_by(cp.c.source))]
        pairs = c.execute(
            select(cp.c.record_type, cp.c.field).where(open_filter(), cp.c.field.is_not(None)).distinct()
        ).all()
    seen: dict[str, str] = {}
    for rt, f in pairs:
        seen.setdefault(f, label_of(rt, f))
    return sources, sorted(seen.items(), key=lambda x: x[1])


# ---- spreadsheet imports -----------------------------------------------------------------------

IMPORT_SOURCE = "spreadsheet"


def import_locator(filename: str, sheet: str, row: int) -> str:
    return f"{filename} · {sheet} 第 {row} 行"


def record_import(engine: Engine, filename: str, result: Any, csv_type: str | None = None) -> None:
    """Upkeep after importing `filename`: its earlier import's problems go, valid records clear theirs,
    and every refused row of this import is recorded (keyed by file, sheet and row)."""
    from gateway.workbook.layout import ITEMS_SHEET, sheet_to_type

    types = sheet_to_type()
    refused: dict[str, list[Any]] = {}
    for e in result.errors:
        rt = csv_type or ("agreement" if e.sheet == ITEMS_SHEET else types.get(e.sheet, ""))
        refused.setdefault(rt, []).append(e)
    with engine.begin() as conn:
        clear_locators(conn, IMPORT_SOURCE, f"{filename} · ")
        valid: dict[str, list[str]] = {}
        for r in result.records:
            k = key_of(r.record_type, r.data)
            if k is not None:
                valid.setdefault(r.record_type, []).append(k)
        for rt, keys in valid.items():
            clear_records(conn, IMPORT_SOURCE, rt, keys)
        for rt, errors in refused.items():
            rows: dict[str, Refused] = {}
            for e in errors:
                loc = import_locator(filename, e.sheet, e.row)
                p = RowProblem(IMPORT_SOURCE, loc, e.field or None, e.value, e.rule, e.message)
                if loc in rows:
                    rows[loc].problems.append(p)  # type: ignore[attr-defined]
                    continue
                data = dict(e.data) if e.data is not None else None
                rk = key_of(rt, data) if data is not None and rt in RECORD_TYPES else None
                rows[loc] = Refused(loc, loc, rk, data, [p])
            record(conn, IMPORT_SOURCE, rt, list(rows.values()))

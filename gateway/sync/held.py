"""Hold back records that name a record this gateway refused itself.

A stock record names its material and depot, a capacity record its agreement;
the hub refuses such a record while it holds no such material, with a reason
about the missing material. When the material was refused *here* (its row
failed the mapping or the standard) that reason hides the real one and the push
is wasted. So a record naming a record refused here, which the hub does not hold
(no live fingerprint), is held instead: not enqueued, kept in `held_records`,
and reported as a problem that gives the named record's own reason. It is
enqueued as soon as that record maps cleanly, in the same transaction and after
it, so it reaches the hub after it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, select
from sqlalchemy.dialects.sqlite import insert
from sqlalchemy.engine import Connection

from gateway.mappings import CompiledMapping
from gateway.standard.schema import RECORD_TYPES
from gateway.store.db import utcnow
from gateway.store.refusals import any_of_types
from gateway.store.tables import fingerprints as fp
from gateway.store.tables import held_records as held_t
from gateway.store.tables import refused_records as refused_t
from gateway.sync.changes import ChangeWriter, Mapped

CHUNK = 500  # keys per IN (...)

# record type -> (field, the record type it names, that type's name in messages)
REFERENCES: dict[str, tuple[tuple[str, str, str], ...]] = {
    "stock": (("material_id", "material", "物资"), ("depot_id", "depot", "储备库")),
    "capacity": (("agreement_no", "agreement", "协议"),),
}
REFERENCED = frozenset(t for refs in REFERENCES.values() for _, t, _ in refs)


@dataclass(frozen=True)
class Refusal:
    record_key: str
    source_key: str
    reasons: str  # the row's problems, Chinese


@dataclass(frozen=True)
class Held:
    item: Mapped
    field: str  # the naming field (material_id)
    ref_type: str  # the record type it names (material)
    value: str  # the named record's key
    message: str

    @property
    def rule(self) -> str:
        return f"held.{self.ref_type}_refused"


def refused_key(mapping: CompiledMapping, data: dict[str, Any]) -> str | None:
    """The record key a refused row would have had, from its key fields alone; None when they
    do not map (then nothing can name it) or the record type is not one others name."""
    if mapping.record_type not in REFERENCED:
        return None
    rt = RECORD_TYPES[mapping.record_type]
    fns = dict(mapping.fields)
    parts = []
    for name in rt.key:
        fn = fns.get(name)
        try:
            v = fn(data) if fn is not None else None
        except Exception:  # noqa: BLE001 - a key that does not map leaves the row unnamed
            return None
        text = "" if v is None else str(v).strip()
        if not text and name in rt.required_fields:
            return None
        parts.append(text)
    return "|".join(parts)


def record_refusals(conn: Connection, source: str, record_type: str, refusals: Iterable[Refusal]) -> None:
    now = utcnow()
    rows = [
        {
            "record_type": record_type,
            "record_key": r.record_key,
            "source": source,
            "source_key": r.source_key,
            "reasons": r.reasons,
            "refused_at": now,
        }
        for r in {r.record_key: r for r in refusals}.values()
    ]
    if rows:
        stmt = insert(refused_t)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["record_type", "record_key"],
                set_={c: stmt.excluded[c] for c in ("source", "source_key", "reasons", "refused_at")},
            ),
            rows,
        )


def _chunks(keys: Sequence[str]) -> Iterable[list[str]]:
    keys = list(dict.fromkeys(keys))
    for i in range(0, len(keys), CHUNK):
        yield keys[i : i + CHUNK]


def hold(conn: Connection, record_type: str, items: list[Mapped]) -> tuple[list[Mapped], list[Held]]:
    """Split `items` into those to enqueue and those to hold (stored by `hold_for`)."""
    refs = REFERENCES.get(record_type)
    if not refs or not items or not any_of_types(conn, refused_t, [t for _, t, _ in refs]):
        return items, []  # the common case, one indexed probe: nothing refused that these could name
    blocking: dict[tuple[str, str], str] = {}  # (type, key) refused here and not live at the hub -> reasons
    for _, ref_type, _ in refs:
        wanted = [str(v) for m in items for f, t, _ in refs if t == ref_type and (v := m.data.get(f)) not in (None, "")]
        for part in _chunks(wanted):
            refused = dict(
                conn.execute(
                    select(refused_t.c.record_key, refused_t.c.reasons).where(
                        refused_t.c.record_type == ref_type, refused_t.c.record_key.in_(part)
                    )
                ).all()
            )
            if not refused:
                continue
            live = set(
                conn.execute(
                    select(fp.c.record_key).where(
                        fp.c.record_type == ref_type, fp.c.deleted == 0, fp.c.record_key.in_(list(refused))
                    )
                ).scalars()
            )
            blocking.update({(ref_type, k): why for k, why in refused.items() if k not in live})
    if not blocking:
        return items, []
    kept: list[Mapped] = []
    held: list[Held] = []
    for m in items:
        for f, ref_type, noun in refs:
            v = m.data.get(f)
            why = blocking.get((ref_type, str(v))) if v not in (None, "") else None
            if why is not None:
                held.append(
                    Held(
                        m,
                        f,
                        ref_type,
                        str(v),
                        f"{noun} {v} 未通过校验：{why}；本条记录暂不报送，该{noun}修正并同步后自动报送",
                    )
                )
                break
        else:
            kept.append(m)
    return kept, held


def _store(conn: Connection, record_type: str, held: list[Held], source: str, mapping_version: int | None) -> None:
    now = utcnow()
    rows = [
        {
            "record_type": record_type,
            "record_key": h.item.record_key,
            "source": source,
            "source_key": h.item.source_key,
            "data": orjson.dumps(h.item.data, default=str).decode(),
            "updated_at": h.item.updated_at,
            "mapping_version": mapping_version,
            "waits_for_type": h.ref_type,
            "waits_for_key": h.value,
            "held_at": now,
        }
        for h in held
    ]
    if not rows:
        return
    stmt = insert(held_t)
    conn.execute(
        stmt.on_conflict_do_update(
            index_elements=["record_type", "record_key"],
            set_={
                c: stmt.excluded[c]
                for c in (
                    "source",
                    "source_key",
                    "data",
                    "updated_at",
                    "mapping_version",
                    "waits_for_type",
                    "waits_for_key",
                    "held_at",
                )
            },
        ),
        rows,
    )


def hold_for(conn: Connection, writer: ChangeWriter, items: list[Mapped]) -> tuple[list[Mapped], list[Held]]:
    """`hold` for one source's writer: the held rows remember the source and mapping version."""
    kept, held = hold(conn, writer.record_type, items)
    if held:
        _store(conn, writer.record_type, held, writer.source, writer.mapping_version)
    return kept, held


def may_release(conn: Connection, record_type: str) -> bool:
    """Whether release() of records of this type could find anything held for them."""
    return record_type in REFERENCED and any_of_types(conn, refused_t, [record_type])


def release(conn: Connection, record_type: str, record_keys: Sequence[str], operator: str) -> int:
    """These records are no longer refused here (they mapped cleanly, or their row is gone): what was
    held for them is enqueued now, unless it still names another refused record. Returns how many."""
    if not record_keys or not may_release(conn, record_type):
        return 0  # nothing of this type was refused: nothing can wait for it
    waiting = []
    for part in _chunks(record_keys):
        conn.execute(delete(refused_t).where(refused_t.c.record_type == record_type, refused_t.c.record_key.in_(part)))
        waiting += conn.execute(
            select(held_t).where(held_t.c.waits_for_type == record_type, held_t.c.waits_for_key.in_(part))
        ).all()
    enqueued = 0
    for h in waiting:
        conn.execute(
            delete(held_t).where(and_(held_t.c.record_type == h.record_type, held_t.c.record_key == h.record_key))
        )
        writer = ChangeWriter(h.source, h.record_type, h.mapping_version, operator)
        kept, _ = hold_for(conn, writer, [Mapped(h.source_key, h.record_key, orjson.loads(h.data), h.updated_at)])
        if kept:
            writer.write(conn, kept)
            enqueued += 1
    return enqueued


def discard(
    conn: Connection, source: str, record_type: str, record_keys: Sequence[str] = (), source_keys: Sequence[str] = ()
) -> None:
    """Held records superseded: their row was enqueued, refused itself, or is gone."""
    if record_type not in REFERENCES or not any_of_types(conn, held_t, [record_type]):
        return
    for part in _chunks(record_keys):
        conn.execute(delete(held_t).where(held_t.c.record_type == record_type, held_t.c.record_key.in_(part)))
    for part in _chunks(source_keys):
        conn.execute(
            delete(held_t).where(
                held_t.c.source == source, held_t.c.record_type == record_type, held_t.c.source_key.in_(part)
            )
        )


def discard_unseen(conn: Connection, source: str, record_type: str, epoch: str) -> None:
    """At the end of a full read: held records of rows it did not hold back again are gone from the source."""
    if record_type in REFERENCES:
        conn.execute(
            delete(held_t).where(
                held_t.c.source == source, held_t.c.record_type == record_type, held_t.c.held_at < epoch
            )
        )


def refusals_unseen(conn: Connection, source: str, record_type: str, epoch: str, operator: str) -> int:
    """At the end of a full read: refusals of rows it did not read again left with their rows. What
    they held is enqueued (the hub then says what is missing, which is now the truth)."""
    if record_type not in REFERENCED:
        return 0
    keys = (
        conn.execute(
            select(refused_t.c.record_key).where(
                refused_t.c.source == source, refused_t.c.record_type == record_type, refused_t.c.refused_at < epoch
            )
        )
        .scalars()
        .all()
    )
    return release(conn, record_type, list(keys), operator)

"""One row re-read, mapped, validated and enqueued (the per-record push after a local edit), row-shaped.

The whole-source read is pipeline.py's; this is the same map/validate/detect/enqueue
for one source key, with the source's adapter and compiled mapping kept between
calls (reread.py), since a local edit should not reconnect and re-reflect.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from gateway.config import GatewayConfig
from gateway.errors import RowProblem, SkippableError
from gateway.standard.schema import record_key
from gateway.store.db import begin_immediate
from gateway.sync import held
from gateway.sync import problems as current_problems
from gateway.sync.changes import ChangeWriter, Mapped, iso_updated_at
from gateway.sync.pipeline import compile_for, open_adapter
from gateway.sync.reread import AdapterCache, FileAdapterCache, MappingCache, reusable, sqlite_file


@dataclass
class OneResult:
    source: str
    source_key: str
    op: str | None  # upsert | delete | None (unchanged or invalid)
    outbox_ids: list[int] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


_REREAD = AdapterCache()  # open server-database adapters kept between per-record re-reads
_REREAD_FILES = FileAdapterCache()  # open SQLite-file adapters, while the file and its schema are the same
_MAPPINGS = MappingCache()  # compiled mappings kept while the mapping text and version are the same


def sync_one(
    config: GatewayConfig, source_name: str, source_key: str, engine: Engine, *, operator: str = "system",
    then: Callable[[Connection, list[int]], None] | None = None,
) -> OneResult:
    """Re-read one row, map, validate and enqueue it (a vanished row enqueues a delete).

    `then(conn, outbox_ids)` runs inside the enqueueing transaction when rows were
    enqueued (the per-record push claims its batch there: one commit less).
    """
    sc = config.source(source_name)
    mapping = _MAPPINGS.get(config, sc, engine, lambda: compile_for(config, sc, engine, operator))
    writer = ChangeWriter(sc.name, sc.record_type, mapping.version, operator)
    keep = reusable(sc)
    kept_file = None if keep or (path := sqlite_file(sc)) is None else _REREAD_FILES.get(sc, path, lambda: open_adapter(config, sc))
    if keep:
        adapter = _REREAD.get(sc, lambda: open_adapter(config, sc))
    else:
        adapter = kept_file or open_adapter(config, sc)
    try:
        row = adapter.fetch_one(source_key)
    except SkippableError as e:
        p = getattr(e, "problem", None) or RowProblem(sc.name, source_key, None, None, "read", str(e))
        with engine.begin() as conn:
            current_problems.record(conn, sc.name, sc.record_type, [current_problems.Refused(source_key, p.locator or source_key, None, None, [p])])
        return OneResult(sc.name, source_key, None, problems=[p])
    except NotImplementedError:
        msg = f"数据源 {sc.name}（{sc.type}）不支持按键重读单条记录，请运行整个数据源的同步"
        return OneResult(sc.name, source_key, None, problems=[RowProblem(sc.name, source_key, None, None, "fetch_one", msg)])
    except BaseException:
        if keep:
            _REREAD.drop(sc.name)  # a changed or unreachable table: open and reflect afresh next time
        elif kept_file is not None:
            _REREAD_FILES.drop(sc.name)
        raise
    finally:
        if not keep and kept_file is None:
            adapter.close()
    if row is None:
        with engine.begin() as conn:
            begin_immediate(conn)
            counts = writer.delete_source_key(conn, source_key, want_ids=True)
            held.discard(conn, sc.name, sc.record_type, source_keys=[source_key])
            current_problems.clear(conn, sc.name, [source_key])
            if then is not None and counts.outbox_ids:
                then(conn, counts.outbox_ids)
        return OneResult(sc.name, source_key, "delete" if counts.outbox_ids else None, counts.outbox_ids)
    record, problems = mapping.map_row(row)
    if record is None:
        rkey = held.refused_key(mapping, row.data)
        with engine.begin() as conn:
            begin_immediate(conn)
            current_problems.record(
                conn, sc.name, sc.record_type, [current_problems.refused_row(sc.record_type, mapping, row, problems)]
            )
            if rkey is not None or sc.record_type in held.REFERENCES:  # keep held.py's tables true to this row
                held.discard(conn, sc.name, sc.record_type, source_keys=[row.key])
                if rkey is not None:
                    reasons = "；".join(p.message for p in problems)
                    held.record_refusals(conn, sc.name, sc.record_type, [held.Refusal(rkey, row.key, reasons)])
        return OneResult(sc.name, source_key, None, problems=problems)
    item = Mapped(row.key, record_key(sc.record_type, record), record, iso_updated_at(row.version))
    with engine.begin() as conn:
        begin_immediate(conn)
        kept, held_back = held.hold_for(conn, writer, [item])
        if held_back:
            writer.mark_seen(conn, [row.key])
            h = held_back[0]
            p = RowProblem(sc.name, row.locator, h.field, h.value, h.rule, h.message)
            return OneResult(sc.name, source_key, None, problems=[p])
        counts = writer.write(conn, kept, want_ids=True)
        current_problems.clear(conn, sc.name, [source_key])
        held.discard(conn, sc.name, sc.record_type, [item.record_key])
        held.release(conn, sc.record_type, [item.record_key], operator)
        if then is not None and counts.outbox_ids:
            then(conn, counts.outbox_ids)
    return OneResult(sc.name, source_key, "upsert" if counts.outbox_ids else None, counts.outbox_ids)

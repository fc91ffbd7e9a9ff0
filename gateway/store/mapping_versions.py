"""The latest saved mapping version of a source, asked on every per-record re-read."""

from __future__ import annotations

from sqlalchemy import Engine, bindparam, func, select

from gateway.store.prepared import prepare, scalar
from gateway.store.tables import mapping_versions

_LATEST = prepare(select(func.max(mapping_versions.c.version)).where(mapping_versions.c.source == bindparam("source")))


def latest_version(engine: Engine, source: str) -> int | None:
    """max(version) of `source`'s saved mappings on a SQLite store, through a pooled DBAPI connection."""
    v = scalar(engine, _LATEST.sql, (source,))
    return None if v is None else int(v)  # type: ignore[call-overload]

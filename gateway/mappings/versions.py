"""Mapping versions in the state store: who changed a mapping, when and why; diff and rollback."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, bindparam, func, select
from sqlalchemy.engine import Connection

from gateway.errors import FatalError
from gateway.store.db import utcnow
from gateway.store.tables import mapping_versions as mv


@dataclass(frozen=True)
class MappingVersion:
    source: str
    version: int
    author: str
    comment: str
    created_at: str


def _next(conn: Connection, source: str) -> int:
    return int(conn.execute(select(func.coalesce(func.max(mv.c.version), 0)).where(mv.c.source == source)).scalar_one()) + 1


def save_version(engine: Engine, source: str, text: str, author: str, comment: str = "") -> int:
    """Store `text` as the next version of `source`'s mapping; returns its number."""
    with engine.begin() as conn:
        return _save(conn, source, text, author, comment)


def _save(conn: Connection, source: str, text: str, author: str, comment: str) -> int:
    n = _next(conn, source)
    conn.execute(mv.insert().values(source=source, version=n, content=text, author=author, comment=comment, created_at=utcnow()))
    return n


# Built once: a per-record push asks this on every edit, and building the select cost more than running it.
_LATEST = select(func.max(mv.c.version)).where(mv.c.source == bindparam("source"))


def latest_version(engine: Engine, source: str) -> int | None:
    """The newest version number of `source`'s mapping; None before the first. A read, no write lock."""
    with engine.connect() as conn:
        v = conn.execute(_LATEST, {"source": source}).scalar()
    return None if v is None else int(v)


def current_version(engine: Engine, source: str, text: str, author: str = "system") -> int:
    """The version number of `text`: the latest one when unchanged, else a newly saved one."""
    with engine.begin() as conn:
        row = conn.execute(
            select(mv.c.version, mv.c.content).where(mv.c.source == source).order_by(mv.c.version.desc()).limit(1)
        ).first()
        if row is not None and row.content == text:
            return int(row.version)
        comment = "首次记录" if row is None else "映射文件已修改（同步时记录）"
        return _save(conn, source, text, author, comment)


def list_versions(engine: Engine, source: str) -> list[MappingVersion]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(mv.c.source, mv.c.version, mv.c.author, mv.c.comment, mv.c.created_at)
            .where(mv.c.source == source)
            .order_by(mv.c.version)
        ).all()
    return [MappingVersion(r.source, r.version, r.author, r.comment or "", r.created_at) for r in rows]


def get_text(engine: Engine, source: str, version: int) -> str:
    with engine.connect() as conn:
        text = conn.execute(select(mv.c.content).where(mv.c.source == source, mv.c.version == version)).scalar()
    if text is None:
        raise FatalError(f"mapping of source {source!r} has no version {version}")
    return str(text)


def diff(engine: Engine, source: str, v1: int, v2: int) -> str:
    """Unified diff from version v1 to v2."""
    a, b = get_text(engine, source, v1), get_text(engine, source, v2)
    return "".join(
        difflib.unified_diff(
            a.splitlines(keepends=True), b.splitlines(keepends=True), f"{source} v{v1}", f"{source} v{v2}"
        )
    )


def rollback(engine: Engine, source: str, version: int, author: str, mapping_path: Path | None = None) -> int:
    """Make `version` current again: save its text as a new version and write it to the mapping file."""
    text = get_text(engine, source, version)
    if mapping_path is not None:
        tmp = mapping_path.with_suffix(mapping_path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(mapping_path)
    return save_version(engine, source, text, author, f"回滚到版本 {version}")

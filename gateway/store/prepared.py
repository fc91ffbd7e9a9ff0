"""Core statements compiled once to SQLite's qmark text, for the DB-API cursor's hot paths.

The bulk sync and push write and read tens of thousands of rows a second through
``cursor.execute``/``executemany`` with plain tuples: SQLAlchemy's per-row
parameter processing cost about as much as the SQLite work itself. The SQL text is
still built from the declared tables (gateway/store/tables.py) by SQLAlchemy, once,
at import: :func:`prepare` compiles a Core statement and records the order of its
per-call parameters, so no caller types a column list.

Constants of the statement (``state == "sent"``, ``deleted=0``) are rendered into
the text, so a call passes only the ``bindparam`` values, in :attr:`Prepared.params`
order. An expanding ``bindparam(..., expanding=True)`` (an IN list) becomes as many
placeholders as :meth:`Prepared.sql_for` is told.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.dialects import sqlite
from sqlalchemy.sql import ClauseElement

_QMARK = sqlite.dialect(paramstyle="qmark")


@dataclass(frozen=True)
class Prepared:
    sql: str  # SQLite text with ? placeholders (and at most one IN-list token)
    params: tuple[str, ...]  # names of the per-call parameters, in placeholder order
    in_list: str | None = None  # the IN-list token to expand, when the statement has one

    def sql_for(self, n: int) -> str:
        """The text with the IN list made of `n` placeholders."""
        if self.in_list is None:
            raise ValueError("statement has no IN list")
        return self.sql.replace(self.in_list, ", ".join("?" * n))


def prepare(stmt: ClauseElement, prefix: str = "") -> Prepared:
    """Compile `stmt` for SQLite once; `prefix` is prepended verbatim (e.g. a WITH of a temp table)."""
    compiled = stmt.compile(dialect=_QMARK)
    # Every value is bound, so the compiled text holds no string literal: each '?' is a placeholder.
    pieces = compiled.string.split("?")
    out, names, in_list, i = [pieces[0]], [], None, 1
    for name in compiled.positiontup or ():
        bind = compiled.binds[name]
        if bind.expanding:
            if in_list is not None:
                raise ValueError("one IN list per prepared statement")
            in_list = f"__[POSTCOMPILE_{name}]"
            names.append(name)
            continue
        if bind.required:
            out.append("?")
            names.append(name)
        else:
            out.append(_literal(bind.value))
        out.append(pieces[i])
        i += 1
    if i != len(pieces):
        raise ValueError(f"placeholders and parameters differ in {compiled.string!r}")
    return Prepared(prefix + "".join(out), tuple(names), in_list)


def _literal(value: object) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"only int and str constants are rendered, not {value!r}")
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def scalar(engine: Engine, sql: str, params: tuple[object, ...] = ()) -> object:
    """One value through a pooled DBAPI connection: for small queries asked on every edit, where a
    SQLAlchemy Connection and execution context cost more than the query itself."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        try:
            cursor.execute(sql, params)
            row = cursor.fetchone()
        finally:
            cursor.close()
    finally:
        raw.close()  # back to the pool (reset as on any return)
    return row[0] if row is not None else None

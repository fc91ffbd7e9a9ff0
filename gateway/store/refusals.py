"""Probes of refused_records and held_records run on every chunk of a sync."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Table, bindparam, literal, select
from sqlalchemy.engine import Connection

from gateway.store.prepared import Prepared, prepare
from gateway.store.tables import held_records, refused_records


def _probe(table: Table) -> Prepared:
    return prepare(select(literal(1)).where(table.c.record_type.in_(bindparam("types", expanding=True))).limit(1))


# Prepared once: runs per chunk of every stock sync, where compiling a statement each time costs more.
_ANY = {refused_records.name: _probe(refused_records), held_records.name: _probe(held_records)}


def any_of_types(conn: Connection, table: Table, record_types: Sequence[str]) -> bool:
    """Whether `table` (refused_records or held_records) holds any record of these types."""
    stmt = _ANY[table.name]
    return conn.exec_driver_sql(stmt.sql_for(len(record_types)), tuple(record_types)).first() is not None

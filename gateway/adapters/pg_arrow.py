"""PostgreSQL results straight into Arrow with ADBC's libpq driver (binary COPY, no Python object per value).

The sql adapter's ``fetch_batches`` reads a PostgreSQL source through this
module when every selected column has a type whose Arrow form gives back what
psycopg gives ``fetch()`` (``_EXACT``; numeric only with a declared scale, so
that every value has that scale, as PostgreSQL pads it); for any other column
``open_arrow`` answers None before a row is read and the adapter reads with
psycopg and transposes (gateway.adapters.sqlbatches). The statement is the
adapter's own SQLAlchemy select, compiled with ``$n`` parameters; the session
is read-only from its start (``default_transaction_read_only``) as the
adapter's psycopg sessions are.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

try:
    import adbc_driver_postgresql.dbapi as adbc_pg
    from adbc_driver_manager import Error
except ImportError:  # pragma: no cover - a dependency; without it the psycopg path reads
    adbc_pg = None

    class Error(Exception):  # type: ignore[no-redef]
        pass

# PostgreSQL types (the driver's POSTGRESQL:type field metadata) whose Arrow values equal psycopg's.
_EXACT = {"int2", "int4", "int8", "text", "varchar", "bool", "date", "timestamp", "timestamptz", "bytea", "float8", "numeric"}
_DIALECT = PGDialect_psycopg(paramstyle="numeric_dollar")
# Each fallback to psycopg says why: it is correct but several times slower, so IT staff should see it.
log = logging.getLogger("gateway.adapters")


def available() -> bool:
    return adbc_pg is not None


def _uri(url: sa.engine.URL) -> str:
    base = url.set(drivername="postgresql").render_as_string(hide_password=False)
    ro = quote("-c default_transaction_read_only=on", safe="")
    return base + ("&" if "?" in base else "?") + f"options={ro}"


class ArrowResult:
    """An executed select: its record batches in chunks of `chunk_size` rows, normalised to psycopg's values."""

    def __init__(self, conn: Any, cursor: Any, reader: pa.RecordBatchReader, zone: str) -> None:
        self._conn, self._cursor, self._reader, self._zone = conn, cursor, reader, zone
        self._casts = [_cast_for(f, zone) for f in reader.schema]

    def chunks(self, chunk_size: int) -> Iterator[pa.RecordBatch]:
        for rb in _rechunk(self._reader, chunk_size):
            yield self._normalise(rb)

    def _normalise(self, rb: pa.RecordBatch) -> pa.RecordBatch:
        arrays = []
        for arr, cast in zip(rb.columns, self._casts, strict=True):
            if cast is not None:
                if isinstance(arr, pa.ExtensionArray):
                    arr = arr.storage
                arr = pc.cast(arr, cast)
            arrays.append(arr)
        return pa.RecordBatch.from_arrays(arrays, names=rb.schema.names)

    def close(self) -> None:
        try:
            self._cursor.close()
        finally:
            self._conn.close()


def _cast_for(field: pa.Field, zone: str) -> pa.DataType | None:
    meta = field.metadata or {}
    kind = meta.get(b"POSTGRESQL:type", b"").decode()
    if kind == "numeric":
        typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        return pa.decimal128(precision, scale)
    if kind == "timestamptz":
        return pa.timestamp("us", tz=zone)  # psycopg gives the session's zone
    return None


def _inexact_column(schema: pa.Schema) -> str | None:
    """The first column whose Arrow values would differ from psycopg's ("name (type)"); None when all are exact."""
    for field in schema:
        meta = field.metadata or {}
        kind = meta.get(b"POSTGRESQL:type", b"").decode()
        if kind not in _EXACT:
            return f"{field.name} ({kind or field.type})"
        if kind == "numeric":
            typmod = int(meta.get(b"POSTGRESQL:typmod", b"-1"))
            if typmod < 4 or not 0 < (typmod - 4) >> 16 <= 38:
                return f"{field.name} (numeric without a scale: each value keeps its own)"
        if kind == "timestamp" and field.type != pa.timestamp("us"):
            return f"{field.name} (timestamp as {field.type})"
    return None


def open_arrow(url: sa.engine.URL, stmt: sa.Select[Any]) -> ArrowResult | None:
    """Run `stmt` through ADBC; None (nothing read) when a column's type is not held exactly or ADBC
    cannot connect."""
    if adbc_pg is None:
        log.info("reading %s through psycopg: the ADBC PostgreSQL driver is not installed", url.database)
        return None
    compiled = stmt.compile(dialect=_DIALECT)
    params = [compiled.params[name] for name in compiled.positiontup or ()]
    try:
        conn = adbc_pg.connect(_uri(url))
    except Error as e:
        log.info("reading %s through psycopg: ADBC could not connect (%s)", url.database, e)
        return None  # libpq refuses what psycopg may accept (a driver-specific URL option): psycopg reads, or says why not
    try:
        cur = conn.cursor()
        cur.execute("SELECT current_setting('TimeZone')")
        zone = str(cur.fetchone()[0])
        cur.execute(str(compiled), params or None)
        reader = cur.fetch_record_batch()
        if (column := _inexact_column(reader.schema)) is not None:
            log.info("reading %s through psycopg: column %s has no exact Arrow form", url.database, column)
            cur.close()
            conn.close()
            return None
        return ArrowResult(conn, cur, reader, zone)
    except BaseException:
        conn.close()
        raise


def _rechunk(reader: pa.RecordBatchReader, size: int) -> Iterator[pa.RecordBatch]:
    """The reader's rows as record batches of exactly `size` rows (the last may be shorter)."""
    pending: list[pa.RecordBatch] = []
    have = 0
    for rb in reader:
        if rb.num_rows == 0:
            continue
        pending.append(rb)
        have += rb.num_rows
        while have >= size:
            table = pa.Table.from_batches(pending)
            yield table.slice(0, size).combine_chunks().to_batches()[0]
            pending = table.slice(size).to_batches()
            have -= size
    if have:
        yield pa.Table.from_batches(pending).combine_chunks().to_batches()[0]

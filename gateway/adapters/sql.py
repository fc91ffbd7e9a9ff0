"""The `sql` adapter: any database SQLAlchemy can reach, streamed with a server-side cursor.

Tables are reflected and every configured name (table, key, cursor and typed
columns) is checked against the database's own catalog and quoted by
SQLAlchemy; nothing from the config is pasted into SQL text. A `query` source
runs exactly one SELECT/WITH in a read-only transaction where the dialect has one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from gateway.adapters import pg_arrow
from gateway.adapters.base import Adapter, Event, Position, Setting, SourceRow
from gateway.adapters.batches import DEFAULT_SIZE, BatchEvent
from gateway.adapters.sqlbatches import arrow_key_array, chunks_of, stream_batches
from gateway.adapters.sqlrows import (
    COMMON_SETTINGS,
    apply_row_settings,
    check_column_types,
    decode_value,
    lagged,
    settings_problem,
    single_row,
    stream_events,
)
from gateway.errors import ConfigError, ConfigProblem, RetriableError, SourceError

# Dialects whose drivers can hand back text in a typed column (SQLite type
# affinity, MySQL zero dates), so reflected types are checked row by row there.
_LOOSE_DIALECTS = ("sqlite", "mysql", "mariadb")
KEY_CHUNK = 262144  # keys per Arrow chunk of a key-set read


def reflected_kind(t: sa.types.TypeEngine[Any]) -> str:
    if isinstance(t, sa.Integer):
        return "int"
    if isinstance(t, sa.Numeric):
        return "decimal"
    if isinstance(t, sa.DateTime):
        return "datetime"
    if isinstance(t, sa.Date):
        return "date"
    return "str"


def key_after(cols: list[sa.ColumnElement[Any]], values: list[Any]) -> sa.ColumnElement[bool]:
    """(c1, c2, ...) > (v1, v2, ...) written out, since row-value comparison is not portable."""
    ors = []
    for i, c in enumerate(cols):
        eqs = [cols[j] == values[j] for j in range(i)]
        ors.append(sa.and_(*eqs, c > values[i]))
    return sa.or_(*ors)


def _sqlite_query_only(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA query_only = ON")
    cur.close()


# Server dialects whose single-row re-reads run on their own autocommit, read-only-session pool.
_ONE_ROW_SESSION_READ_ONLY = {
    "postgresql": "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
    "mysql": "SET SESSION TRANSACTION READ ONLY",
    "mariadb": "SET SESSION TRANSACTION READ ONLY",
}


def _session_read_only(statement: str) -> Any:
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        try:
            cur.execute(statement)
        finally:
            cur.close()
        # Outside autocommit the SET opened a transaction: commit it, or (PostgreSQL) it would be undone.
        dbapi_conn.commit()

    return on_connect


class SqlAdapter(Adapter):
    name = "sql"
    supports_keys = True
    acts_after_checkpoint = False
    settings_spec: tuple[Setting, ...] = (
        Setting("url", str, required=True, secret=True, help="SQLAlchemy URL, e.g. postgresql+psycopg://user@host/db"),
        *COMMON_SETTINGS,
    )

    def __init__(self, source: str, settings: Mapping[str, Any]) -> None:
        super().__init__(source, settings)
        s = self.settings
        self.key_columns: list[str]
        self.cursor_column: str | None
        self.query: str | None
        apply_row_settings(self, source, s)
        try:
            url = sa.engine.make_url(s["url"])
            sqlite = url.get_backend_name() == "sqlite"
            # A file has no connection to lose: no ping before every re-read there.
            self.engine = sa.create_engine(url, pool_pre_ping=not sqlite)
        except (SQLAlchemyError, ValueError, ImportError) as e:
            raise settings_problem(source, "url", f"cannot use this URL: {e}") from None
        if sqlite:
            # Read-only for as long as the connection lives (a pragma per checkout cost a statement per re-read).
            sa.event.listen(self.engine, "connect", _sqlite_query_only)
        self._from: sa.FromClause | None = None
        self._names: list[str] = []
        self._checks: dict[str, str] = {}
        self._one_stmt: tuple[sa.Select[Any], list[bool]] | None = None
        self._one_engine: sa.Engine | None = None
        self._one_engine_lock = threading.Lock()

    # -- set-up: reflect and check every configured name ----------------------------

    @property
    def where(self) -> str:
        return f"table {self.settings['table']}" if self.query is None else "query"

    def _prepare(self) -> sa.FromClause:
        if self._from is not None:
            return self._from
        try:
            if self.query is None:
                try:
                    self._from = sa.Table(
                        self.settings["table"], sa.MetaData(), schema=self.settings.get("schema"), autoload_with=self.engine
                    )
                except NoSuchTableError:
                    have = sa.inspect(self.engine).get_table_names(schema=self.settings.get("schema"))
                    have += sa.inspect(self.engine).get_view_names(schema=self.settings.get("schema"))
                    raise SourceError(
                        f"source {self.source}: table {self.settings['table']!r} not found (have: {', '.join(sorted(have)) or 'none'})"
                    ) from None
            else:
                with self._connect() as conn:
                    # Column names without running the whole query: an empty result of the same shape.
                    res = conn.execute(sa.text(f"SELECT * FROM ({self.query}) q WHERE 1 = 0"))
                    names = list(res.keys())
                    res.close()
                self._from = sa.text(self.query).columns(*[sa.column(n) for n in names]).subquery("q")
        except SQLAlchemyError as e:
            raise RetriableError(f"source {self.source}: cannot read the database: {e}") from e
        self._names = [c.name for c in self._from.columns]
        problems = []
        for k in (*self.key_columns, *([self.cursor_column] if self.cursor_column else [])):
            if k not in self._names:
                problems.append(ConfigProblem(f"sources.{self.source}.settings", f"column {k!r} not found (have: {', '.join(self._names)})"))
        if problems:
            raise ConfigError(problems)
        loose = self.engine.dialect.name in _LOOSE_DIALECTS
        reflected = {c.name: reflected_kind(c.type) for c in self._from.columns} if loose else {}
        self._checks = {c: k for c, k in reflected.items() if k != "str"}
        self._checks.update(check_column_types(self.settings.get("column_types"), self._names, f"sources.{self.source}.settings"))
        return self._from

    def _connect(self) -> Connection:
        conn = self.engine.connect()
        dialect = self.engine.dialect.name
        if dialect == "postgresql":
            conn = conn.execution_options(postgresql_readonly=True)
        elif dialect in ("mysql", "mariadb"):
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        return conn

    def _select(self, cols: list[str] | None = None) -> sa.Select[Any]:
        frm = self._prepare()
        names = cols or self._names
        # Raw DBAPI values: type checks are ours, so a bad cell becomes a RowProblem, not a crash.
        return sa.select(*[sa.type_coerce(frm.c[n], sa.types.NullType()).label(n) for n in names])

    # -- the adapter interface ------------------------------------------------------

    def columns(self) -> list[str]:
        self._prepare()
        return list(self._names)

    def _changed_since(self, position: Position | None) -> sa.Select[Any]:
        """The select of rows after `position`, in cursor (or key) order."""
        frm = self._prepare()
        keys = [frm.c[k] for k in self.key_columns]
        stmt = self._select()
        if self.cursor_column:
            cur = frm.c[self.cursor_column]
            stmt = stmt.order_by(cur, *keys)
            if position and position.get("cursor"):
                value = decode_value(position["cursor"])
                if self.lag_seconds:
                    stmt = stmt.where(cur >= lagged(value, self.lag_seconds))
                else:
                    last = [decode_value(v) for v in position.get("key", [])]
                    stmt = stmt.where(sa.or_(cur > value, sa.and_(cur == value, key_after(keys, last))))
        else:
            stmt = stmt.order_by(*keys)
            if position and position.get("after"):
                stmt = stmt.where(key_after(keys, [decode_value(v) for v in position["after"]]))
        return stmt

    def fetch(self, position: Position | None) -> Iterator[Event]:
        stmt = self._changed_since(position)
        try:
            with self._connect() as conn:
                res = conn.execution_options(stream_results=True, yield_per=self.chunk_size).execute(stmt)
                yield from stream_events(
                    source=self.source,
                    where=self.where,
                    names=self._names,
                    rows=res,
                    key_columns=self.key_columns,
                    cursor_column=self.cursor_column,
                    checks=self._checks,
                    chunk_size=self.chunk_size,
                    start=position,
                )
        except SQLAlchemyError as e:
            raise RetriableError(f"source {self.source}: reading failed: {e}") from e

    def fetch_batches(self, position: Position | None, size: int = DEFAULT_SIZE) -> Iterator[BatchEvent]:
        """fetch()'s events with the rows as columnar RowBatches: on PostgreSQL read into Arrow by ADBC
        where every column's type allows (gateway.adapters.pg_arrow), else the driver's rows transposed."""
        if self.engine.dialect.name == "postgresql" and pg_arrow.available():
            stmt = self._changed_since(position)
            try:
                result = pg_arrow.open_arrow(self.engine.url, stmt)
            except pg_arrow.Error as e:
                raise RetriableError(f"source {self.source}: reading failed: {e}") from e
            if result is not None:
                try:
                    yield from self._batches(result.chunks(self.chunk_size), position, size)
                except pg_arrow.Error as e:
                    raise RetriableError(f"source {self.source}: reading failed: {e}") from e
                finally:
                    result.close()
                return
        yield from self.dbapi_batches(position, size)

    def dbapi_batches(self, position: Position | None, size: int = DEFAULT_SIZE) -> Iterator[BatchEvent]:
        """fetch_batches through the SQLAlchemy connection: the driver's rows, transposed per chunk."""
        stmt = self._changed_since(position)
        try:
            with self._connect() as conn:
                res = conn.execution_options(stream_results=True, yield_per=self.chunk_size).execute(stmt)
                yield from self._batches(chunks_of(res.fetchmany, self.chunk_size), position, size)
        except SQLAlchemyError as e:
            raise RetriableError(f"source {self.source}: reading failed: {e}") from e

    def _batches(self, chunks: Iterator[Any], position: Position | None, size: int) -> Iterator[BatchEvent]:
        return stream_batches(
            source=self.source,
            where=self.where,
            names=self._names,
            chunks=chunks,
            key_columns=self.key_columns,
            cursor_column=self.cursor_column,
            checks=self._checks,
            chunk_size=self.chunk_size,
            start=position,
            size=max(1, size),
        )

    def keys(self) -> Iterator[str]:
        self._prepare()
        stmt = self._select(self.key_columns)
        try:
            with self._connect() as conn:
                res = conn.execution_options(stream_results=True, yield_per=self.chunk_size * 10).execute(stmt)
                for row in res:
                    yield "|".join("" if v is None else str(v) for v in row)
        except SQLAlchemyError as e:
            raise RetriableError(f"source {self.source}: reading keys failed: {e}") from e

    def key_array(self) -> pa.ChunkedArray | None:
        """PostgreSQL: the key columns through ADBC's binary COPY (no Python object per key), keyed as
        fetch_batches keys its rows (sqlbatches.arrow_key_array), in the chunks read (a concatenated
        copy would double the key set's memory). None elsewhere, or when a key column's type does not
        come back exactly: keys() is then gathered instead."""
        self._prepare()
        if self.engine.dialect.name != "postgresql" or not pg_arrow.available():
            return None
        try:
            result = pg_arrow.open_arrow(self.engine.url, self._select(self.key_columns))
            if result is None:
                return None
            try:
                idx = list(range(len(self.key_columns)))
                parts = [arrow_key_array(rb, idx) for rb in result.chunks(KEY_CHUNK)]
            finally:
                result.close()
        except pg_arrow.Error as e:
            raise RetriableError(f"source {self.source}: reading keys failed: {e}") from e
        return pa.chunked_array(parts, pa.string())

    def _one(self) -> tuple[sa.Select[Any], list[bool]]:
        """The single-row select (key columns as bound parameters) and which keys are integers; built once.

        A re-read per local edit used to build, coerce and cache-key this
        statement afresh: more CPU than running it. Built once, SQLAlchemy
        reuses its compiled form (the statement's cache key is memoized).
        """
        if self._one_stmt is None:
            frm = self._prepare()
            ints = [reflected_kind(frm.c[k].type) == "int" and self.query is None for k in self.key_columns]
            conds = [frm.c[k] == sa.bindparam(f"k{i}") for i, k in enumerate(self.key_columns)]
            self._one_stmt = (self._select().where(*conds), ints)
        return self._one_stmt

    def fetch_one(self, key: str) -> SourceRow | None:
        stmt, ints = self._one()
        parts = key.split("|", len(self.key_columns) - 1)
        if len(parts) != len(self.key_columns):
            return None
        params: dict[str, Any] = {}
        for i, (part, is_int) in enumerate(zip(parts, ints, strict=True)):
            if is_int:
                try:
                    params[f"k{i}"] = int(part)
                except ValueError:
                    return None
            else:
                params[f"k{i}"] = part
        try:
            rows = self._one_rows(stmt, params)
        except SQLAlchemyError as e:  # as every other read: the caller answers "source not readable", not a crash
            raise RetriableError(f"source {self.source}: re-reading key {key!r} failed: {e}") from e
        return single_row(stream_events(
            source=self.source, where=self.where, names=self._names, rows=rows, key_columns=self.key_columns,
            cursor_column=self.cursor_column, checks=self._checks, chunk_size=self.chunk_size, start=None,
        ))

    def _one_rows(self, stmt: sa.Select[Any], params: dict[str, Any]) -> list[Any]:
        """Run the single-row select; on PostgreSQL and MySQL/MariaDB one round trip instead of four.

        The adapter's own pool pings before every checkout and reads in a
        read-only transaction (ping, BEGIN READ ONLY, SELECT, ROLLBACK: four
        round trips, each costing the clerk's edit and the database's CPU). A
        single SELECT needs no transaction around it to see one consistent
        snapshot, so these re-reads use a second small pool in autocommit mode
        whose sessions are read-only from their start (a query source still
        cannot write), without a ping: a connection the server has dropped
        fails the SELECT, is invalidated with the pool's other connections, and
        the read is made once more on a fresh one, as the ping would have.
        """
        engine = self._one_row_engine()
        if engine is None:
            with self._connect() as conn:
                return list(conn.execute(stmt, params).all())
        try:
            with engine.connect() as conn:
                return list(conn.execute(stmt, params).all())
        except sa.exc.DBAPIError as e:
            if not e.connection_invalidated:
                raise
        with engine.connect() as conn:  # the server dropped the kept connection: once more on a new one
            return list(conn.execute(stmt, params).all())

    def _one_row_engine(self) -> sa.Engine | None:
        statement = _ONE_ROW_SESSION_READ_ONLY.get(self.engine.dialect.name)
        if statement is None:
            return None
        if self._one_engine is not None:
            return self._one_engine
        with self._one_engine_lock:
            if self._one_engine is None:
                engine = sa.create_engine(
                    self.engine.url, isolation_level="AUTOCOMMIT", pool_reset_on_return=None, pool_size=2, max_overflow=8,
                )
                sa.event.listen(engine, "connect", _session_read_only(statement))
                self._one_engine = engine
            return self._one_engine

    def close(self) -> None:
        if self._one_engine is not None:
            self._one_engine.dispose()
        self.engine.dispose()

"""The `odbc` adapter: sources that only have an ODBC driver (domestic databases, Access), via pyodbc.

Same settings and behaviour as `sql`, but with an ODBC connection string
(`odbc_connect`) or a DSN. Table and column names are checked against the
driver's catalog (SQLColumns) and then quoted with the driver's own identifier
quote character; values always travel as `?` parameters. For PostgreSQL's
psqlODBC put ``UseDeclareFetch=1`` in the connection string, or the driver
buffers the whole result in memory.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import pyodbc

from gateway.adapters.base import Adapter, Event, Position, Setting, SourceRow
from gateway.adapters.batches import DEFAULT_SIZE, BatchEvent
from gateway.adapters.sqlbatches import chunks_of, stream_batches
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

# ODBC SQL type codes (sql.h) -> the kinds checked per row.
_KINDS = {4: "int", 5: "int", -5: "int", -6: "int", 2: "decimal", 3: "decimal", 6: "decimal", 7: "decimal",
          8: "decimal", 9: "date", 91: "date", 11: "datetime", 93: "datetime"}


class OdbcAdapter(Adapter):
    name = "odbc"
    supports_keys = True
    settings_spec: tuple[Setting, ...] = (
        Setting("odbc_connect", str, secret=True, help="ODBC connection string, e.g. DRIVER={PostgreSQL Unicode};SERVER=..."),
        Setting("dsn", str, help="instead of odbc_connect: a data source name from odbc.ini"),
        Setting("user", str, help="user for the DSN"),
        Setting("password", str, secret=True, help="password for the DSN"),
        *COMMON_SETTINGS,
    )

    def __init__(self, source: str, settings: Mapping[str, Any]) -> None:
        super().__init__(source, settings)
        s = self.settings
        if bool(s.get("odbc_connect")) == bool(s.get("dsn")):
            raise settings_problem(source, "odbc_connect", "give either odbc_connect or dsn")
        self.key_columns: list[str]
        self.cursor_column: str | None
        self.query: str | None
        apply_row_settings(self, source, s)
        self._from: str | None = None
        self._names: list[str] = []
        self._quoted: dict[str, str] = {}
        self._checks: dict[str, str] = {}
        self._kinds: dict[str, str] = {}
        self._one_sql: str | None = None

    @property
    def where(self) -> str:
        return f"table {self.settings['table']}" if self.query is None else "query"

    def _connect(self) -> pyodbc.Connection:
        s = self.settings
        if s.get("dsn"):
            cs = "DSN=" + _odbc_value(s["dsn"])
            if s.get("user"):
                cs += ";UID=" + _odbc_value(s["user"])
            if s.get("password"):
                cs += ";PWD=" + _odbc_value(s["password"])
        else:
            cs = s["odbc_connect"]
        try:
            # readonly sets SQL_ATTR_ACCESS_MODE; drivers that honour it refuse writes.
            return pyodbc.connect(cs, autocommit=False, readonly=True, timeout=30)
        except pyodbc.InterfaceError as e:
            raise SourceError(f"source {self.source}: ODBC driver/DSN problem: {e}") from e
        except pyodbc.Error as e:
            raise RetriableError(f"source {self.source}: cannot connect: {e}") from e

    def _prepare(self, conn: pyodbc.Connection) -> str:
        if self._from is not None:
            return self._from
        quote = conn.getinfo(pyodbc.SQL_IDENTIFIER_QUOTE_CHAR) or '"'
        cur = conn.cursor()
        if self.query is None:
            table, schema = self.settings["table"], self.settings.get("schema")
            cols = list(cur.columns(table=table, schema=schema))
            if not cols:
                have = sorted({t.table_name for t in cur.tables(schema=schema) if t.table_type in ("TABLE", "VIEW")})
                raise SourceError(f"source {self.source}: table {table!r} not found (have: {', '.join(have) or 'none'})")
            self._names = [c.column_name for c in cols]
            self._kinds = {c.column_name: _KINDS.get(c.data_type, "str") for c in cols}
            # Only names the catalog just gave us are quoted into the statement.
            frm = _quote(table, quote)
            if schema:
                frm = _quote(schema, quote) + "." + frm
        else:
            cur.execute(f"SELECT * FROM ({self.query}) q WHERE 1 = 0")  # shape only, no rows
            self._names = [d[0] for d in cur.description]
            cur.close()
            conn.rollback()
            frm = f"({self.query}) q"
        self._quoted = {n: _quote(n, quote) for n in self._names}
        problems = [
            ConfigProblem(f"sources.{self.source}.settings", f"column {k!r} not found (have: {', '.join(self._names)})")
            for k in (*self.key_columns, *([self.cursor_column] if self.cursor_column else []))
            if k not in self._names
        ]
        if problems:
            raise ConfigError(problems)
        self._checks = {c: k for c, k in self._kinds.items() if k != "str"}
        self._checks.update(check_column_types(self.settings.get("column_types"), self._names, f"sources.{self.source}.settings"))
        self._from = frm
        return frm

    def _key_after(self, values: Sequence[Any]) -> tuple[str, list[Any]]:
        ors, params = [], []
        for i, k in enumerate(self.key_columns):
            parts = [f"{self._quoted[self.key_columns[j]]} = ?" for j in range(i)] + [f"{self._quoted[k]} > ?"]
            params += [*values[:i], values[i]]
            ors.append("(" + " AND ".join(parts) + ")")
        return "(" + " OR ".join(ors) + ")", params

    def _statement(self, frm: str, position: Position | None, cols: list[str] | None = None) -> tuple[str, list[Any]]:
        select = ", ".join(self._quoted[n] for n in (cols or self._names))
        keys = ", ".join(self._quoted[k] for k in self.key_columns)
        sql, params = f"SELECT {select} FROM {frm}", []
        if self.cursor_column:
            cur = self._quoted[self.cursor_column]
            if position and position.get("cursor"):
                value = decode_value(position["cursor"])
                if self.lag_seconds:
                    sql += f" WHERE {cur} >= ?"
                    params = [lagged(value, self.lag_seconds)]
                else:
                    after, p = self._key_after([decode_value(v) for v in position.get("key", [])])
                    sql += f" WHERE ({cur} > ? OR ({cur} = ? AND {after}))"
                    params = [value, value, *p]
            sql += f" ORDER BY {cur}, {keys}"
        else:
            if position and position.get("after"):
                after, params = self._key_after([decode_value(v) for v in position["after"]])
                sql += f" WHERE {after}"
            sql += f" ORDER BY {keys}"
        return sql, params

    def _rows(self, cur: pyodbc.Cursor) -> Iterator[Sequence[Any]]:
        while True:
            chunk = cur.fetchmany(self.chunk_size)
            if not chunk:
                return
            yield from chunk

    def columns(self) -> list[str]:
        conn = self._connect()
        try:
            self._prepare(conn)
        finally:
            conn.close()
        return list(self._names)

    @contextmanager
    def _reading(self, position: Position | None) -> Iterator[Any]:
        """A cursor on the rows changed since `position`; the connection is rolled back and closed after."""
        conn = self._connect()
        try:
            frm = self._prepare(conn)
            sql, params = self._statement(frm, position)
            cur = conn.cursor()
            cur.execute(sql, params)
            yield cur
        except pyodbc.Error as e:
            raise RetriableError(f"source {self.source}: reading failed: {e}") from e
        finally:
            try:
                conn.rollback()
            finally:
                conn.close()

    def fetch(self, position: Position | None) -> Iterator[Event]:
        with self._reading(position) as cur:
            yield from stream_events(
                source=self.source, where=self.where, names=self._names, rows=self._rows(cur),
                key_columns=self.key_columns, cursor_column=self.cursor_column, checks=self._checks,
                chunk_size=self.chunk_size, start=position,
            )

    def fetch_batches(self, position: Position | None, size: int = DEFAULT_SIZE) -> Iterator[BatchEvent]:
        """fetch()'s events with the rows as columnar RowBatches (gateway.adapters.sqlbatches)."""
        with self._reading(position) as cur:
            yield from stream_batches(
                source=self.source, where=self.where, names=self._names, chunks=chunks_of(cur.fetchmany, self.chunk_size),
                key_columns=self.key_columns, cursor_column=self.cursor_column, checks=self._checks,
                chunk_size=self.chunk_size, start=position, size=max(1, size),
            )

    def keys(self) -> Iterator[str]:
        conn = self._connect()
        try:
            frm = self._prepare(conn)
            select = ", ".join(self._quoted[k] for k in self.key_columns)
            cur = conn.cursor()
            cur.execute(f"SELECT {select} FROM {frm}")
            for row in self._rows(cur):
                yield "|".join("" if v is None else str(v) for v in row)
        finally:
            conn.close()

    def fetch_one(self, key: str) -> SourceRow | None:
        conn = self._connect()
        try:
            frm = self._prepare(conn)
            parts: list[Any] = key.split("|", len(self.key_columns) - 1)
            if len(parts) != len(self.key_columns):
                return None
            for i, k in enumerate(self.key_columns):
                if self._kinds.get(k) == "int":
                    try:
                        parts[i] = int(parts[i])
                    except ValueError:
                        return None
            if self._one_sql is None:  # built once per adapter, like the sql adapter's single-row select
                select = ", ".join(self._quoted[n] for n in self._names)
                cond = " AND ".join(f"{self._quoted[k]} = ?" for k in self.key_columns)
                self._one_sql = f"SELECT {select} FROM {frm} WHERE {cond}"
            cur = conn.cursor()
            cur.execute(self._one_sql, parts)
            rows = cur.fetchall()
        except pyodbc.Error as e:  # as every other read: "source not readable" for the caller, not a crash
            raise RetriableError(f"source {self.source}: re-reading key {key!r} failed: {e}") from e
        finally:
            conn.close()
        return single_row(stream_events(
            source=self.source, where=self.where, names=self._names, rows=rows, key_columns=self.key_columns,
            cursor_column=self.cursor_column, checks=self._checks, chunk_size=self.chunk_size, start=None,
        ))


def _quote(name: str, quote: str) -> str:
    close = "]" if quote == "[" else quote
    return quote + name.replace(close, close + close) + close


def _odbc_value(v: str) -> str:
    """A connection-string value, braced so ';' or '}' inside cannot start another attribute."""
    return "{" + str(v).replace("}", "}}") + "}"

"""The sql adapter against live SQLite, PostgreSQL and MariaDB: conformance suite plus SQL specifics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.adapters.base import Checkpoint, SourceRow
from gateway.adapters.sql import SqlAdapter
from gateway.errors import ConfigError, SourceError
from tests.adapter_conformance import AdapterConformance, iter_rows, make_rows

ITEMS = sa.MetaData()


class SqlSource:
    """A conformance source over one table `conf_items` in a real database."""

    bulk_rows = 20_000

    def __init__(self, url: str, qty_type: Any, settings: dict[str, Any] | None = None) -> None:
        self.url = url
        self.engine = sa.create_engine(url)
        md = sa.MetaData()
        self.table = sa.Table(
            "conf_items",
            md,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(100)),
            sa.Column("qty", qty_type),
            sa.Column("day", sa.Date),
        )
        md.create_all(self.engine)
        self.settings = {"url": url, "table": "conf_items", "key_columns": ["id"], "cursor_column": "id", "chunk_size": 500}
        self.settings.update(settings or {})

    def adapter(self, position: Any = None) -> SqlAdapter:
        return SqlAdapter("conf", self.settings)

    def write(self, rows: list[dict[str, Any]]) -> None:
        import datetime as dt

        with self.engine.begin() as c:
            c.execute(self.table.insert(), [{**r, "day": dt.date.fromisoformat(r["day"])} for r in rows])

    def insert_raw(self, sql: str) -> None:
        with self.engine.begin() as c:
            c.exec_driver_sql(sql)

    def close(self) -> None:
        self.engine.dispose()


class SqliteSource(SqlSource):
    def write_bad_row(self) -> None:
        # SQLite keeps text that does not fit an INTEGER column: a real legacy-database hazard.
        self.insert_raw("INSERT INTO conf_items (id, name, qty, day) VALUES (100, '坏行', 'abc', '2024-01-01')")


class MariaSource(SqlSource):
    def write_bad_row(self) -> None:
        # A zero date, which MariaDB accepts outside strict mode and no calendar has.
        with self.engine.begin() as c:
            c.exec_driver_sql("SET SESSION sql_mode = ''")
            c.exec_driver_sql("INSERT INTO conf_items (id, name, qty, day) VALUES (100, '坏行', 1, '0000-00-00')")


class PgSource(SqlSource):
    def __init__(self, url: str) -> None:
        # PostgreSQL enforces column types, so the text column is declared int in the source settings.
        super().__init__(url, sa.Text, {"column_types": {"qty": "int"}})

    def write(self, rows: list[dict[str, Any]]) -> None:
        super().write([{**r, "qty": str(r["qty"])} for r in rows])

    def write_bad_row(self) -> None:
        self.insert_raw("INSERT INTO conf_items (id, name, qty, day) VALUES (100, '坏行', '二十', '2024-01-01')")


class TestSqlite(AdapterConformance):
    @pytest.fixture
    def source(self, tmp_path: Path):  # type: ignore[no-untyped-def]
        s = SqliteSource(f"sqlite:///{tmp_path / 'src.db'}", sa.Integer)
        yield s
        s.close()


class TestPostgres(AdapterConformance):
    @pytest.fixture
    def source(self, pg_url: str):  # type: ignore[no-untyped-def]
        s = PgSource(pg_url)
        yield s
        s.close()


class TestMariaDB(AdapterConformance):
    @pytest.fixture
    def source(self, mysql_url: str):  # type: ignore[no-untyped-def]
        s = MariaSource(mysql_url, sa.Integer)
        yield s
        s.close()


@pytest.fixture
def sqlite_source(tmp_path: Path):  # type: ignore[no-untyped-def]
    s = SqliteSource(f"sqlite:///{tmp_path / 'src.db'}", sa.Integer)
    yield s
    s.close()


def test_query_must_be_a_single_select(sqlite_source: SqliteSource) -> None:
    base = {"url": sqlite_source.url, "key_columns": ["id"]}
    for bad in (
        "DELETE FROM conf_items",
        "SELECT * FROM conf_items; DROP TABLE conf_items",
        "WITH x AS (DELETE FROM conf_items RETURNING *) SELECT * FROM x",
        "SELECT * INTO other FROM conf_items",
    ):
        with pytest.raises(ConfigError) as ei:
            SqlAdapter("q", {**base, "query": bad})
        assert "query" in str(ei.value)
    # Words inside string literals are data, not statements.
    sqlite_source.write(make_rows(1, 3))
    a = SqlAdapter("q", {**base, "query": "SELECT id, name || ' (delete me)' AS name FROM conf_items WHERE qty >= 0;"})
    with a:
        names = sorted(r.data["name"] for r in iter_rows(a.fetch(None)))
    assert names == [f"物资{i}号帐篷 (delete me)" for i in (1, 2, 3)]


def test_query_source_runs_read_only(pg_url: str) -> None:
    src = PgSource(pg_url)
    src.write(make_rows(1, 2))
    with src.engine.begin() as c:
        c.exec_driver_sql("CREATE FUNCTION sneaky() RETURNS int AS $$ DELETE FROM conf_items; SELECT 1 $$ LANGUAGE sql")
    a = SqlAdapter("q", {"url": pg_url, "query": "SELECT id, sneaky() AS s FROM conf_items", "key_columns": ["id"]})
    with pytest.raises(Exception, match="read-only"):
        with a:
            list(a.fetch(None))
    with src.engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM conf_items")).scalar() == 2
    src.close()


def test_names_are_checked_against_the_catalog(sqlite_source: SqliteSource) -> None:
    with pytest.raises(SourceError, match="conf_items"):
        SqlAdapter("s", {"url": sqlite_source.url, "table": "conf_itemz", "key_columns": ["id"]}).columns()
    with pytest.raises(ConfigError, match="nope"):
        SqlAdapter("s", {"url": sqlite_source.url, "table": "conf_items", "key_columns": ["nope"]}).columns()
    # A hostile table name is just a name that does not exist: it is never pasted into SQL.
    with pytest.raises(SourceError):
        SqlAdapter("s", {"url": sqlite_source.url, "table": 'conf_items"; DROP TABLE conf_items; --', "key_columns": ["id"]}).columns()


def test_full_scan_without_cursor_ends_with_snapshot_and_resumes_after_key(sqlite_source: SqliteSource) -> None:
    sqlite_source.write(make_rows(1, 10))
    settings = {**sqlite_source.settings, "chunk_size": 4}
    del settings["cursor_column"]
    with SqlAdapter("s", settings) as a:
        events = list(a.fetch(None))
    assert isinstance(events[-1], Checkpoint) and events[-1].snapshot
    mid = [e for e in events if isinstance(e, Checkpoint)][0].position
    with SqlAdapter("s", settings) as a:
        rest = [r.key for r in iter_rows(a.fetch(mid))]
    assert rest == [str(i) for i in range(5, 11)]


def test_fetch_one_and_keys(sqlite_source: SqliteSource) -> None:
    sqlite_source.write(make_rows(1, 5))
    with sqlite_source.adapter() as a:
        row = a.fetch_one("3")
        assert isinstance(row, SourceRow) and row.data["name"] == "物资3号帐篷"
        assert a.fetch_one("99") is None
        assert sorted(a.keys(), key=int) == ["1", "2", "3", "4", "5"]


class PgQuerySource(PgSource):
    def adapter(self, position: Any = None) -> SqlAdapter:
        settings = {k: v for k, v in self.settings.items() if k != "table"}
        return SqlAdapter("conf", {**settings, "query": "SELECT id, name, qty, day FROM conf_items WHERE id > 0"})


class TestPostgresQuery(AdapterConformance):
    @pytest.fixture
    def source(self, pg_url: str):  # type: ignore[no-untyped-def]
        s = PgQuerySource(pg_url)
        s.bulk_rows = 20_000
        yield s
        s.close()

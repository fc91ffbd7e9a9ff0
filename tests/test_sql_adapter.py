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
    with pytest.raises(Exception, match="read-only"):  # the bulk read (ADBC on PostgreSQL) too
        with a:
            list(a.fetch_batches(None))
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


# ---- fetch_batches on every column type the drivers give ---------------------------------------------


def _typed_table(md: sa.MetaData, exact_only: bool) -> sa.Table:
    cols = [
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("k2", sa.String(10), primary_key=True),
        sa.Column("amount", sa.Numeric(14, 3)),
        sa.Column("price", sa.Float),
        sa.Column("flag", sa.Boolean),
        sa.Column("at", sa.DateTime),
        sa.Column("at_tz", sa.DateTime(timezone=True)),
        sa.Column("day", sa.Date),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("note", sa.Text),
    ]
    if not exact_only:
        cols.append(sa.Column("ratio", sa.Numeric))  # no declared scale: each value keeps its own
    return sa.Table("typed_items", md, *cols)


def _typed_rows(n: int, exact_only: bool) -> list[dict[str, Any]]:
    import datetime as dt
    from decimal import Decimal

    tz = dt.timezone(dt.timedelta(hours=8))
    out = []
    for i in range(1, n + 1):
        blank = i % 5 == 0  # every fifth row has NULLs where NULLs may be
        row: dict[str, Any] = {
            "id": i, "k2": f"乙{i % 3}",
            "amount": None if blank else Decimal(f"{i * 37 % 5000}.{i % 1000:03d}") * (-1 if i % 7 == 0 else 1),
            "price": None if blank else i / 8, "flag": None if blank else bool(i % 2),
            "at": dt.datetime(2026, 1, 1, 8) + dt.timedelta(seconds=i * 3601, microseconds=i * 7),
            "at_tz": None if blank else dt.datetime(2026, 3, 1, 9, tzinfo=tz) + dt.timedelta(minutes=i),
            "day": None if blank else dt.date(2024, 1, 1) + dt.timedelta(days=i),
            "blob": None if blank else bytes([i % 256, 0, 255]), "note": None if blank else f"备注{i}",
        }
        if not exact_only:
            row["ratio"] = None if blank else (Decimal(i) if i % 2 else Decimal(f"{i}.25"))
        out.append(row)
    return out


class TypedSource:
    """typed_items in a real database, read by cursor `at` (chunk_size 7) or as a full scan."""

    def __init__(self, url: str, exact_only: bool = False, cursor: bool = True) -> None:
        self.engine = sa.create_engine(url)
        self.table = _typed_table(sa.MetaData(), exact_only)
        self.table.metadata.create_all(self.engine)
        with self.engine.begin() as c:
            c.execute(self.table.insert(), _typed_rows(40, exact_only))
        self.settings: dict[str, Any] = {"url": url, "table": "typed_items", "key_columns": ["id", "k2"], "chunk_size": 7}
        if cursor:
            self.settings["cursor_column"] = "at"

    def adapter(self, position: Any = None) -> SqlAdapter:
        return SqlAdapter("typed", self.settings)

    def close(self) -> None:
        self.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def any_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'typed.db'}"
    return request.getfixturevalue("pg_url" if request.param == "postgresql" else "mysql_url")


@pytest.mark.parametrize("cursor", [True, False], ids=["cursor", "full-scan"])
def test_fetch_batches_equals_fetch_for_every_column_type(any_url: str, cursor: bool) -> None:
    from tests.adapter_conformance import assert_batches_equal_fetch

    src = TypedSource(any_url, cursor=cursor)
    try:
        events = assert_batches_equal_fetch(src, size=5)
        positions = [e.position for e in events if isinstance(e, Checkpoint)]
        assert len(positions) > 5, "checkpoints every 7 rows"
        assert_batches_equal_fetch(src, positions[2], size=5)  # resumed at a timestamp (or key) position
        seen = {type(v).__name__ for r in iter_rows(events) for v in r.data.values()}
        # (SQLite stores NUMERIC as a float and hands it back as one.)
        assert {"int", "str", "datetime", "date", "bytes", "NoneType"} | ({"Decimal"} if "sqlite" not in any_url else set()) <= seen
    finally:
        src.close()


def test_postgres_batches_are_arrow_for_exact_types(pg_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """Every batch of a table of exactly-held types has an Arrow form; decimals keep their scale and
    timestamptz its session zone; an unconstrained numeric of mixed scales leaves the batches as dicts,
    and the log says which column sent the read through psycopg."""
    import logging
    from decimal import Decimal

    from gateway.adapters.batches import RowBatch
    from tests.adapter_conformance import assert_batches_equal_fetch

    caplog.set_level(logging.INFO, logger="gateway.adapters")
    src = TypedSource(pg_url, exact_only=True)
    try:
        with src.adapter() as a:
            batches = [e for e in a.fetch_batches(None, 10) if isinstance(e, RowBatch)]
        assert not [r for r in caplog.records if "through psycopg" in r.getMessage()]
        assert sum(len(b) for b in batches) == 40
        assert all(b.arrow() is not None for b in batches)
        first = batches[0].arrow()
        assert first is not None
        assert str(first.schema.field("amount").type) == "decimal128(14, 3)"
        assert first.column("amount").to_pylist()[0] == Decimal("37.001")
        assert str(first.column("amount").to_pylist()[0]) == "37.001"
        assert batches[0].keys[:2] == ["1|乙1", "2|乙2"]
        assert batches[0].locators[0] == "table typed_items key=1|乙1"
    finally:
        src.close()
    with sa.create_engine(pg_url).begin() as c:
        c.exec_driver_sql("DROP TABLE typed_items")
    mixed = TypedSource(pg_url)
    try:
        assert_batches_equal_fetch(mixed)
        with mixed.adapter() as a:
            batches = [e for e in a.fetch_batches(None, 10) if isinstance(e, RowBatch)]
        ratios = [r["ratio"] for b in batches for r in b.dicts()]
        assert [str(v) for v in ratios[:4]] == ["1", "2.25", "3", "4.25"]
        assert any(b.arrow() is None for b in batches), "mixed scales cannot be one Arrow decimal column"
        said = [r.getMessage() for r in caplog.records if "through psycopg" in r.getMessage()]
        assert said and all("column ratio (numeric without a scale" in m for m in said), said
    finally:
        mixed.close()

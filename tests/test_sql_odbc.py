"""The odbc adapter, live through unixODBC and psqlODBC against PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from gateway.adapters.base import SourceRow
from gateway.adapters.odbc import OdbcAdapter
from gateway.errors import RetriableError, SourceError
from tests.adapter_conformance import AdapterConformance, iter_rows, make_rows
from tests.test_sql_adapter import PgSource


class OdbcSource(PgSource):
    bulk_rows = 20_000

    def __init__(self, url: str, odbc: str, table: str = "conf_items") -> None:
        super().__init__(url)
        self.odbc = odbc
        self.table_name = table

    def adapter(self, position: Any = None) -> OdbcAdapter:
        return OdbcAdapter(
            "conf",
            {
                "odbc_connect": self.odbc,
                "table": self.table_name,
                "key_columns": ["id"],
                "cursor_column": "id",
                "chunk_size": 500,
                "column_types": {"qty": "int"},
            },
        )


class TestOdbcPostgres(AdapterConformance):
    @pytest.fixture
    def source(self, pg_url: str, pg_odbc: str):  # type: ignore[no-untyped-def]
        s = OdbcSource(pg_url, pg_odbc)
        yield s
        s.close()


def test_odbc_quotes_odd_names_and_refuses_unknown_tables(pg_url: str, pg_odbc: str) -> None:
    eng = sa.create_engine(pg_url)
    with eng.begin() as c:
        c.exec_driver_sql('CREATE TABLE "库存 表" ("编 号" int primary key, "名称""x" text)')
        c.exec_driver_sql('INSERT INTO "库存 表" VALUES (1, \'帐篷\'), (2, \'棉被\')')
    eng.dispose()
    a = OdbcAdapter("o", {"odbc_connect": pg_odbc, "table": "库存 表", "key_columns": ["编 号"]})
    rows = list(iter_rows(a.fetch(None)))
    assert [(r.key, r.data['名称"x']) for r in rows] == [("1", "帐篷"), ("2", "棉被")]
    assert isinstance(a.fetch_one("2"), SourceRow) and a.fetch_one("3") is None
    assert sorted(a.keys()) == ["1", "2"]
    with eng.begin() as c:
        c.exec_driver_sql('ALTER TABLE "库存 表" RENAME TO "库存 旧表"')  # gone after the adapter was prepared
    eng.dispose()
    with pytest.raises(RetriableError, match="re-reading key '2'"):
        a.fetch_one("2")
    with pytest.raises(SourceError, match="库存 表"):
        OdbcAdapter("o", {"odbc_connect": pg_odbc, "table": '库存 表"; DROP TABLE "库存 表', "key_columns": ["x"]}).columns()


def test_odbc_query_source(pg_url: str, pg_odbc: str) -> None:
    src = OdbcSource(pg_url, pg_odbc)
    src.write(make_rows(1, 4))
    a = OdbcAdapter("o", {"odbc_connect": pg_odbc, "query": "SELECT id, name FROM conf_items WHERE id > 2", "key_columns": ["id"]})
    assert [r.key for r in iter_rows(a.fetch(None))] == ["3", "4"]
    src.close()


def test_odbc_source_syncs_changes_and_deletes(pg_url: str, pg_odbc: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.store import open_store
    from gateway.sync import sync_one, sync_source
    from tests.test_sync_pipeline import kc, seed_source, write_config

    entry = {"name": "legacy", "type": "odbc", "record_type": "stock", "mapping": "stock.toml", "strategy": "cursor",
             "reconcile_deletes": True,
             "settings": {"odbc_connect": pg_odbc, "table": "kc", "key_columns": ["id"], "cursor_column": "updated_at"}}
    cfg = write_config(tmp_path, [entry])
    src = seed_source(pg_url, 40)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "legacy", store).new == 40
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 3).values(sl="77箱", updated_at=sa.func.now()))
        c.execute(kc.delete().where(kc.c.id.in_([5, 6])))
    s = sync_source(cfg, "legacy", store)
    assert (s.new, s.changed, s.deleted) == (0, 1, 2)
    assert sync_one(cfg, "legacy", "5", store).outbox_ids == []  # already deleted
    src.dispose()

"""Per-record re-reads (sync_one) keep a server database's adapter open between edits, and start afresh after a failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import open_store
from gateway.sync import one, sync_one
from tests.test_sync_pipeline import kc, kc_row, seed_source, source_entry, write_config


def test_reread_reuses_the_open_adapter_and_reopens_after_a_failure(pg_url: str, tmp_path: Path) -> None:
    src = seed_source(pg_url, 5)
    config = write_config(tmp_path, [source_entry("kc", pg_url, "cursor")])
    engine = open_store(config.state_path)

    first = sync_one(config, "kc", "1", engine)
    assert first.op == "upsert" and len(first.outbox_ids) == 1
    adapter = one._REREAD._items["kc"][2]

    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 2).values(sl="7箱"))
    second = sync_one(config, "kc", "2", engine)
    assert second.op == "upsert"
    assert one._REREAD._items["kc"][2] is adapter  # no new connection pool, no new reflection

    # The table changes under the open adapter: that re-read fails, the next one reflects afresh and works.
    with src.begin() as c:
        c.exec_driver_sql("ALTER TABLE kc RENAME COLUMN sl TO sl_old")
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, the point is what follows
        sync_one(config, "kc", "3", engine)
    assert "kc" not in one._REREAD._items
    with src.begin() as c:
        c.exec_driver_sql("ALTER TABLE kc RENAME COLUMN sl_old TO sl")
        c.exec_driver_sql("ALTER TABLE kc ADD COLUMN note text")
        c.execute(sa.text("UPDATE kc SET sl = '9箱' WHERE id = 3"))
    third = sync_one(config, "kc", "3", engine)
    assert third.op == "upsert" and one._REREAD._items["kc"][2] is not adapter
    one._REREAD.drop("kc")
    src.dispose()


def test_sqlite_sources_are_opened_every_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dept.db'}"
    src = sa.create_engine(url)
    kc.metadata.create_all(src)
    with src.begin() as c:
        c.execute(kc.insert(), [kc_row(1)])
    config = write_config(tmp_path, [source_entry("kc_file", url, "cursor")])
    assert sync_one(config, "kc_file", "1", open_store(config.state_path)).op == "upsert"
    assert "kc_file" not in one._REREAD._items  # a replaced or removed file is noticed at once


def _drop_other_sessions(src: sa.Engine) -> int:
    """End every other session on the source database, as a server restart or an idle timeout would."""
    with src.connect() as c:
        if src.dialect.name == "postgresql":
            n = c.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND datname = current_database()"
            ).scalar_one()
        else:
            ids = c.exec_driver_sql(
                "SELECT id FROM information_schema.processlist WHERE id <> connection_id() AND db = database()"
            ).scalars().all()
            for i in ids:
                c.exec_driver_sql(f"KILL {int(i)}")
            n = len(ids)
    return int(n)


@pytest.mark.parametrize("db", ["pg", "mysql"])
def test_reread_of_a_server_database_survives_a_dropped_connection_and_cannot_write(
    db: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue("pg_url" if db == "pg" else "mysql_url")
    src = seed_source(url, 5)
    config = write_config(tmp_path, [source_entry("kc", url, "cursor")])
    engine = open_store(config.state_path)
    assert sync_one(config, "kc", "1", engine).op == "upsert"
    adapter = one._REREAD._items["kc"][2]

    # The server drops the kept connection between two edits: the next edit still reads its row.
    assert _drop_other_sessions(src) >= 1
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 2).values(sl="8箱"))
    second = sync_one(config, "kc", "2", engine)
    assert second.op == "upsert" and len(second.outbox_ids) == 1
    assert one._REREAD._items["kc"][2] is adapter  # a dropped connection is no reason to reflect afresh

    # The re-read's session is read-only: nothing it runs can change the department's data.
    with adapter._one_row_engine().connect() as c, pytest.raises(sa.exc.DBAPIError):
        c.exec_driver_sql("UPDATE kc SET sl = '0箱' WHERE id = 3")
    with src.connect() as c:
        assert c.execute(sa.select(kc.c.sl).where(kc.c.id == 3)).scalar_one() == "3箱"
    one._REREAD.drop("kc")
    src.dispose()

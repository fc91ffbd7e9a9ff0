"""Per-record re-reads (sync_one) keep a server database's adapter open between edits, and start afresh after a failure."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.store import open_store
from gateway.sync import pipeline, sync_one
from tests.test_sync_pipeline import kc, kc_row, seed_source, source_entry, write_config


def test_reread_reuses_the_open_adapter_and_reopens_after_a_failure(pg_url: str, tmp_path: Path) -> None:
    src = seed_source(pg_url, 5)
    config = write_config(tmp_path, [source_entry("kc", pg_url, "cursor")])
    engine = open_store(config.state_path)

    first = sync_one(config, "kc", "1", engine)
    assert first.op == "upsert" and len(first.outbox_ids) == 1
    adapter = pipeline._REREAD._items["kc"][2]

    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 2).values(sl="7箱"))
    second = sync_one(config, "kc", "2", engine)
    assert second.op == "upsert"
    assert pipeline._REREAD._items["kc"][2] is adapter  # no new connection pool, no new reflection

    # The table changes under the open adapter: that re-read fails, the next one reflects afresh and works.
    with src.begin() as c:
        c.exec_driver_sql("ALTER TABLE kc RENAME COLUMN sl TO sl_old")
    with pytest.raises(Exception):  # noqa: B017 - whatever the driver raises, the point is what follows
        sync_one(config, "kc", "3", engine)
    assert "kc" not in pipeline._REREAD._items
    with src.begin() as c:
        c.exec_driver_sql("ALTER TABLE kc RENAME COLUMN sl_old TO sl")
        c.exec_driver_sql("ALTER TABLE kc ADD COLUMN note text")
        c.execute(sa.text("UPDATE kc SET sl = '9箱' WHERE id = 3"))
    third = sync_one(config, "kc", "3", engine)
    assert third.op == "upsert" and pipeline._REREAD._items["kc"][2] is not adapter
    pipeline._REREAD.drop("kc")
    src.dispose()


def test_sqlite_sources_are_opened_every_time(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'dept.db'}"
    src = sa.create_engine(url)
    kc.metadata.create_all(src)
    with src.begin() as c:
        c.execute(kc.insert(), [kc_row(1)])
    config = write_config(tmp_path, [source_entry("kc_file", url, "cursor")])
    assert sync_one(config, "kc_file", "1", open_store(config.state_path)).op == "upsert"
    assert "kc_file" not in pipeline._REREAD._items  # a replaced or removed file is noticed at once

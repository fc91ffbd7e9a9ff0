"""Per-record re-reads of SQLite-file sources keep the adapter and the compiled mapping, yet see every change."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest
import sqlalchemy as sa

from gateway.errors import SourceError
from gateway.mappings import save_version
from gateway.store import open_store
from gateway.sync import one, sync_one
from tests.test_sync_pipeline import STOCK_MAPPING, kc, kc_row, outbox_rows, source_entry, write_config


def _make_db(path: Path, qty: int) -> None:
    eng = sa.create_engine(f"sqlite:///{path}")
    kc.metadata.create_all(eng)
    with eng.begin() as c:
        c.execute(kc.insert(), [kc_row(1, qty=qty)])
    eng.dispose()


def _qty(engine: sa.Engine, outbox_id: int) -> object:
    row = next(r for r in outbox_rows(engine) if r.id == outbox_id)
    return orjson.loads(row.data)["quantity"]


def test_sqlite_adapter_is_kept_until_the_file_is_replaced_or_its_schema_changes(tmp_path: Path) -> None:
    db = tmp_path / "dept.db"
    _make_db(db, qty=5)
    config = write_config(tmp_path, [source_entry("kc_kept", f"sqlite:///{db}", "cursor")])
    engine = open_store(config.state_path)

    first = sync_one(config, "kc_kept", "1", engine)
    assert first.op == "upsert" and _qty(engine, first.outbox_ids[0]) == 5
    adapter = one._REREAD_FILES._items["kc_kept"][2]

    src = sa.create_engine(f"sqlite:///{db}")
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 1).values(sl="6箱"))
    second = sync_one(config, "kc_kept", "1", engine)
    assert _qty(engine, second.outbox_ids[0]) == 6  # the kept adapter sees the edit
    assert one._REREAD_FILES._items["kc_kept"][2] is adapter

    # The file is replaced by another one (as a restore or a copy from elsewhere does).
    _make_db(tmp_path / "new.db", qty=7)
    os.replace(tmp_path / "new.db", db)
    third = sync_one(config, "kc_kept", "1", engine)
    assert _qty(engine, third.outbox_ids[0]) == 7
    assert one._REREAD_FILES._items["kc_kept"][2] is not adapter
    adapter = one._REREAD_FILES._items["kc_kept"][2]

    # The schema changes in place: reflected afresh, the re-read works at once.
    src.dispose()
    src = sa.create_engine(f"sqlite:///{db}")
    with src.begin() as c:
        c.exec_driver_sql("ALTER TABLE kc ADD COLUMN note TEXT")
        c.execute(kc.update().where(kc.c.id == 1).values(sl="8箱"))
    fourth = sync_one(config, "kc_kept", "1", engine)
    assert _qty(engine, fourth.outbox_ids[0]) == 8
    assert one._REREAD_FILES._items["kc_kept"][2] is not adapter
    src.dispose()

    # A removed file is not served from the kept adapter: reported as before.
    db.unlink()
    with pytest.raises(SourceError, match="not found"):
        sync_one(config, "kc_kept", "1", engine)
    assert "kc_kept" not in one._REREAD_FILES._items


def test_kept_mapping_follows_file_edits_and_new_versions(tmp_path: Path) -> None:
    db = tmp_path / "dept.db"
    _make_db(db, qty=5)
    config = write_config(tmp_path, [source_entry("kc_map", f"sqlite:///{db}", "cursor")])
    engine = open_store(config.state_path)
    assert sync_one(config, "kc_map", "1", engine).op == "upsert"
    v1 = one._MAPPINGS._items["kc_map"][4].version

    # An edited mapping file is compiled and recorded as a new version on the next re-read.
    (tmp_path / "stock.toml").write_text(STOCK_MAPPING.replace('template = "P{id}"', 'template = "Q{id}"'), encoding="utf-8")
    res = sync_one(config, "kc_map", "1", engine)
    row = next(r for r in outbox_rows(engine) if r.id in res.outbox_ids and r.op == "upsert")
    assert orjson.loads(row.data)["batch_no"] == "Q1"
    v2 = one._MAPPINGS._items["kc_map"][4].version
    assert v2 == v1 + 1

    # A version saved in the store (same text, e.g. from the admin UI) is the one the next re-read uses.
    v3 = save_version(engine, "kc_map", (tmp_path / "stock.toml").read_text(encoding="utf-8"), "tester", "again")
    sync_one(config, "kc_map", "1", engine)
    assert one._MAPPINGS._items["kc_map"][4].version == v3

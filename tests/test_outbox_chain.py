"""A record's outbox rows are found through its fingerprint (fingerprints.outbox_id, outbox.prev_id).

The outbox keeps no index on (record_type, record_key): every enqueued record paid for one in scattered
key order. These tests hold the chain to what a scan of the outbox by record gives, across edits, deletes,
a moved source key, a returned record queued again and a store migrated from before the chain.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, select

from gateway.push.deadletters import newer_seq, retry_dead_letter
from gateway.store import open_store
from gateway.store import outbox as outbox_store
from gateway.store.db import LATEST, current_version
from gateway.store.tables import dead_letters, fingerprints, outbox
from gateway.sync.changes import ChangeWriter, Mapped


def scan(engine: Engine, key: str) -> list[int]:
    """The record's outbox ids newest first, the old way: every row of the outbox looked at."""
    with engine.connect() as c:
        return [i for i, k in c.execute(select(outbox.c.id, outbox.c.record_key).order_by(outbox.c.id.desc())) if k == key]


def chain(engine: Engine, key: str, limit: int = 100) -> list[int]:
    with engine.connect() as c:
        return [r.id for r in outbox_store.record_rows(c, "material", key, limit)]


def write(engine: Engine, writer: ChangeWriter, items: list[Mapped]) -> list[int]:
    with engine.begin() as c:
        return writer.write(c, items, want_ids=True).outbox_ids


def material(name: str) -> dict[str, str]:
    return {"material_code": "x", "material_name": name}


def history(tmp_path: Path) -> tuple[Engine, ChangeWriter]:
    engine = open_store(tmp_path / "gw.db")
    w = ChangeWriter("wz_db", "material", 1, "张三")
    write(engine, w, [Mapped(f"s{i}", f"WZ-{i}", material(f"物资{i}")) for i in range(5)])
    for round_ in range(3):  # edits of some keys, interleaved with others
        write(engine, w, [Mapped(f"s{i}", f"WZ-{i}", material(f"物资{i}-{round_}")) for i in (1, 3)])
        write(engine, w, [Mapped("s9", "WZ-9", material(f"新{round_}"))])
    with engine.begin() as c:
        w.delete_record_keys(c, ["WZ-3"])
        # Source row s4 now maps to another record key: WZ-4 is deleted, WZ-44 is new.
        w.write(c, [Mapped("s4", "WZ-44", material("物资4"))])
    write(engine, w, [Mapped("s3", "WZ-3", material("物资3 复活"))])
    return engine, w


def test_the_chain_gives_what_a_scan_of_the_outbox_gives(tmp_path: Path) -> None:
    engine, _ = history(tmp_path)
    for key in ("WZ-0", "WZ-1", "WZ-3", "WZ-4", "WZ-44", "WZ-9"):
        assert chain(engine, key) == scan(engine, key), key
    assert len(chain(engine, "WZ-3")) == 6  # first, three edits, the delete, the new life
    assert chain(engine, "WZ-1", limit=2) == scan(engine, "WZ-1")[:2]
    with engine.connect() as c:
        ops = [r.op for r in outbox_store.record_rows(c, "material", "WZ-4")]
        heads = dict(c.execute(select(fingerprints.c.record_key, fingerprints.c.outbox_id)).all())
        assert "ix_outbox_record" not in {ix["name"] for ix in inspect(c).get_indexes("outbox")}
    assert ops == ["delete", "upsert"]
    assert all(heads[k] == scan(engine, k)[0] for k in heads)


def test_a_returned_record_queued_again_joins_its_chain(tmp_path: Path) -> None:
    engine, _ = history(tmp_path)
    latest = scan(engine, "WZ-9")[0]
    with engine.begin() as c:
        c.execute(outbox.update().where(outbox.c.id == latest).values(state="dead"))
        c.execute(dead_letters.insert().values(outbox_id=latest, record_type="material", record_key="WZ-9", seq=3,
                                               reasons="[]", created_at="2026-12-04"))
        dl = c.execute(select(dead_letters.c.id)).scalar_one()
    again = retry_dead_letter(engine, dl, "李四")
    assert chain(engine, "WZ-9") == scan(engine, "WZ-9") and chain(engine, "WZ-9")[0] == again
    with engine.connect() as c:
        assert newer_seq(c, "material", "WZ-9") == 3


def test_a_store_from_before_the_chain_is_linked_when_migrated(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine, _ = history(tmp_path)
    before = {k: scan(engine, k) for k in ("WZ-1", "WZ-3", "WZ-4", "WZ-44")}
    with engine.begin() as c:  # what a version 7 store looks like
        c.exec_driver_sql("ALTER TABLE fingerprints DROP COLUMN outbox_id")
        c.exec_driver_sql("ALTER TABLE outbox DROP COLUMN prev_id")
        c.exec_driver_sql("CREATE INDEX ix_outbox_record ON outbox (record_type, record_key)")
        c.exec_driver_sql("DELETE FROM schema_version WHERE version > 7")
    engine.dispose()
    with caplog.at_level(logging.INFO, logger="gateway.store"):
        engine = open_store(tmp_path / "gw.db")
    # The service's log says what it is doing while it waits.
    assert [(r.getMessage(), r.fields["version"]) for r in caplog.records] == [  # type: ignore[attr-defined]
        ("state store migrating", 8), ("state store migrated", 8)]
    with engine.connect() as c:
        assert current_version(c) == LATEST
        assert "ix_outbox_record" not in {ix["name"] for ix in inspect(c).get_indexes("outbox")}
    assert {k: chain(engine, k) for k in before} == before
    # And it goes on from there.
    w = ChangeWriter("wz_db", "material", 1, "张三")
    [new] = write(engine, w, [Mapped("s1", "WZ-1", material("迁移后"))])
    assert chain(engine, "WZ-1") == [new, *before["WZ-1"]]


def test_a_record_enqueued_without_a_fingerprint_is_still_found(tmp_path: Path) -> None:
    engine = open_store(tmp_path / "gw.db")
    with engine.begin() as c:
        c.execute(outbox.insert().values(
            source="x", record_type="material", record_key="WZ-X", op="upsert", seq=1, version="v", data="{}",
            updated_at=None, provenance="{}", enqueued_at="t", state="pending", attempts=0,
        ))
    assert chain(engine, "WZ-X") == scan(engine, "WZ-X") == [1]
    assert chain(engine, "WZ-none") == []


def test_a_new_store_is_created_without_migration_lines(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="gateway.store"):
        open_store(tmp_path / "new.db")
    assert [r.getMessage() for r in caplog.records] == []

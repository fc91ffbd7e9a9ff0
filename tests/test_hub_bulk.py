"""The hub's bulk writes store exactly the records given, on PostgreSQL (COPY) as on SQLite.

New keys are COPY'd straight into `records`, stored keys go through the staging
table and ON CONFLICT; JSON values with characters COPY's text format escapes
(backslash, tab, newline, quotes, CJK) must come back unchanged either way.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from gateway.hub import tables
from gateway.hub.bulk import write_records
from gateway.hub.db import open_hub_db, write_tx

TRICKY = {"name": "反\\斜杠\t制表\n换行 \"引号\" 中文", "n": 12.5, "list": [1, "a\\b"], "empty": ""}


def _row(key: str, seq: int, data: dict[str, Any] | None, hub_seq: int) -> dict[str, Any]:
    return {"department": "d1", "type": "material", "key": key, "seq": seq, "version": f"v{seq}", "data": data,
            "updated_at": "2026-11-01T08:00:00+08:00", "deleted": data is None,
            "provenance": {"source": "s\tx", "source_key": key, "mapping_version": 1, "operator": "张三"},
            "hub_seq": hub_seq, "batch_id": f"b{seq}", "received_at": "2026-11-29T00:00:00+00:00"}


@pytest.fixture(params=["sqlite", "pg"])
def engine(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    url = f"sqlite:///{tmp_path / 'hub.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    e = open_hub_db(url)
    yield e
    e.dispose()


def _stored(engine) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    with engine.connect() as conn:
        return {r["key"]: dict(r) for r in conn.execute(select(tables.records)).mappings()}


def test_new_and_stored_keys_round_trip(engine) -> None:  # type: ignore[no-untyped-def]
    with write_tx(engine) as conn:
        write_records(conn, [_row("k1", 1, TRICKY, 1), _row("k2", 1, {"a": 1}, 2)], stored=set())
    with write_tx(engine) as conn:  # k1 stored: updated through the merge; k3 new; k2 deleted
        write_records(conn, [_row("k1", 2, {**TRICKY, "n": 13}, 3), _row("k3", 1, TRICKY, 4), _row("k2", 2, None, 5)],
                      stored={("material", "k1"), ("material", "k2")})
    rows = _stored(engine)
    assert rows["k1"]["data"] == {**TRICKY, "n": 13} and rows["k1"]["seq"] == 2 and rows["k1"]["hub_seq"] == 3
    assert rows["k3"]["data"] == TRICKY and rows["k3"]["provenance"]["source"] == "s\tx"
    assert rows["k2"]["data"] is None and rows["k2"]["deleted"] is True
    with engine.connect() as conn:
        history = [(r.key, r.seq, r.op) for r in conn.execute(select(tables.record_history).order_by(tables.record_history.c.id))]
    assert history == [("k1", 1, "upsert"), ("k2", 1, "upsert"), ("k1", 2, "upsert"), ("k3", 1, "upsert"), ("k2", 2, "delete")]

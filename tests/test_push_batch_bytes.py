"""A claimed batch's body is byte for byte the canonical JSON of the batch, however its records' data was stored."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from gateway.protocol.canonical import canonical_json, record_version
from gateway.push.batching import batch_body, claim_batch, load_batch, wire_record
from gateway.store import open_store
from gateway.store.tables import outbox

DEPT = "330106001"


def _row(i: int, op: str, data: Any, *, text: str | None = None, **over: Any) -> dict[str, Any]:
    body = None if data is None else (text if text is not None else canonical_json(data).decode())
    row = {
        "source": "s1", "record_type": "stock", "record_key": f"K{i}|中文", "op": op, "seq": i, "version":
        record_version(data) if data is not None else f"delete-{i}", "data": body,
        "updated_at": "2024-03-01T08:00:00+08:00", "enqueued_at": "2024-03-01T00:00:00+00:00", "state": "pending",
        "attempts": 0, "provenance": json.dumps({"source": "s1", "source_key": str(i), "mapping_version": 3}),
    }
    row.update(over)
    return row


ROWS = [
    _row(1, "upsert", {"material_id": "WZ001", "quantity": 12.5, "unit": "箱", "depot_id": "CK\"1\\", "note": "含\u2028换行\n"}),
    _row(2, "upsert", {"b": [1, 2.0, 1e-7, -0.0, 3e20, True, None], "a": {"z": 1, "y": "é"}, "n": 2**62}),
    _row(3, "delete", None, updated_at=None),
    _row(4, "upsert", {}, provenance="{}"),
    # Stored by hand in a non-canonical form (spaces, key order): the body must still be canonical.
    _row(5, "upsert", {"x": 1, "a": "中"}, text='{ "x": 1,  "a": "中" }'),
    _row(6, "upsert", {"unit": "件", "quantity": 3}, updated_at=None, provenance=""),
]


def _old_body(engine: sa.Engine, batch_id: str, source: str, created: str) -> bytes:
    with engine.connect() as c:
        rows = c.execute(sa.select(outbox).where(outbox.c.batch_id == batch_id).order_by(outbox.c.id)).all()
    return batch_body(batch_id, DEPT, source, created, [wire_record(r, DEPT) for r in rows])


def test_claimed_and_rebuilt_bodies_equal_the_canonical_encoding(tmp_path: Path) -> None:
    engine = open_store(tmp_path / "gw.db")
    with engine.begin() as c:
        c.execute(outbox.insert(), ROWS)

    batch = claim_batch(engine, DEPT, batch_size=100, max_bytes=1_000_000)
    assert batch is not None and len(batch.rows) == len(ROWS)
    assert batch.body == _old_body(engine, batch.batch_id, batch.source, batch.created)
    assert json.loads(batch.body)["records"][4]["data"] == {"x": 1, "a": "中"}

    again = load_batch(engine, batch.batch_id, DEPT)
    assert again is not None and again.body == batch.body


def test_byte_bound_cuts_at_the_same_record_as_before(tmp_path: Path) -> None:
    engine = open_store(tmp_path / "gw.db")
    with engine.begin() as c:
        c.execute(outbox.insert(), ROWS)
    sizes = [len(canonical_json(wire_record(type("R", (), r)(), DEPT))) + 1 for r in ROWS[:2]]
    bound = 1024 + sizes[0] + sizes[1]  # room for exactly two records after the envelope allowance
    batch = claim_batch(engine, DEPT, batch_size=100, max_bytes=bound)
    assert batch is not None and [r.seq for r in batch.rows] == [1, 2]
    assert batch.body == _old_body(engine, batch.batch_id, batch.source, batch.created)

"""The hub's decision rules (gateway.hub.decide) as a table, and the two stores proven equal.

The rules are pure: a record and the stored state of its key (and of what it references) give its status.
The equivalence test drives the same generated sequence of batches (inserts, updates, stale, duplicates,
deletes, rejections; small and large batches, either side of SMALL_BATCH) through `store_batch` on SQLite
and on PostgreSQL and compares what a user reads back: records, history, per-record receipts, signed
receipts and the receipt log's counts.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select

from gateway.hub import tables
from gateway.hub.db import open_hub_db
from gateway.hub.decide import Stored, decide_batch
from gateway.hub.ingest import SMALL_BATCH, Nonce, check_records, store_batch
from gateway.protocol.batch import PROTOCOL_VERSION, Batch
from gateway.protocol.canonical import record_version
from tests.fixtures.hub import DEPARTMENT, record, sample

DELETED = record_version(None)


def _mat(n: int = 1, seq: int = 1, op: str = "upsert", **overrides: Any) -> dict[str, Any]:
    data = sample("material", n, **overrides)
    return record(
        "material",
        data if op == "upsert" else None,
        seq=seq,
        op=op,
        key=data["material_id"] if op == "delete" else None,
    )


def _stock(n: int = 1, seq: int = 1, depot: bool = True, **overrides: Any) -> dict[str, Any]:
    data = sample("stock", n, **overrides)
    if not depot:
        del data["depot_id"]
    return record("stock", data, seq=seq)


def _v(n: int = 1, **overrides: Any) -> str:
    return record_version(sample("material", n, **overrides))


def _bad_unit() -> dict[str, Any]:
    rec = _mat(1)
    rec["data"]["unit"] = ""
    return rec


def _bad_seq() -> dict[str, Any]:
    rec = _mat(1)
    rec["seq"] = -1
    return rec


M1 = ("material", "WZ-0001")
DEPOT = ("depot", "KU-01")

# (case, stored state by (type, key), stored 储备方式 by material, the record, its status, the rule of its reasons)
RULES = [
    ("new key", {}, {}, _mat(), "accepted", None),
    ("same seq, same version", {M1: (1, _v(), False)}, {}, _mat(), "duplicate", None),
    ("same content under a newer seq", {M1: (1, _v(), False)}, {}, _mat(seq=2), "duplicate", None),
    ("older seq", {M1: (2, _v(), False)}, {}, _mat(seq=1), "stale", None),
    ("older seq wins over bad data", {M1: (2, _v(), False)}, {}, _bad_unit(), "stale", None),
    ("same seq, other version", {M1: (1, _v(material_name="别的"), False)}, {}, _mat(), "rejected", "seq_conflict"),
    ("newer seq, other version", {M1: (1, _v(material_name="别的"), False)}, {}, _mat(seq=2), "accepted", None),
    ("upsert after a delete, same data", {M1: (1, DELETED, True)}, {}, _mat(seq=2), "accepted", None),
    ("delete of a stored key", {M1: (1, _v(), False)}, {}, _mat(seq=2, op="delete"), "accepted", None),
    ("delete again", {M1: (1, DELETED, True)}, {}, _mat(seq=2, op="delete"), "duplicate", None),
    ("delete of an unknown key", {}, {}, _mat(op="delete"), "accepted", None),
    ("invalid data", {}, {}, _bad_unit(), "rejected", "required"),
    ("bad envelope", {}, {}, _bad_seq(), "rejected", "envelope"),
    ("stock of an unknown material", {DEPOT: (1, "v", False)}, {}, _stock(), "rejected", "material_exists"),
    (
        "stock of a deleted material",
        {M1: (2, DELETED, True), DEPOT: (1, "v", False)},
        {},
        _stock(),
        "rejected",
        "material_exists",
    ),
    ("stock of an unknown depot", {M1: (1, _v(), False)}, {}, _stock(), "rejected", "depot_exists"),
    ("stock with both held", {M1: (1, _v(), False), DEPOT: (1, "v", False)}, {}, _stock(), "accepted", None),
    (
        "stock without a depot, held physically",
        {M1: (1, _v(), False)},
        {"WZ-0001": "1"},
        _stock(depot=False),
        "rejected",
        "depot_required",
    ),
    (
        "stock without a depot, not held physically",
        {M1: (1, _v(), False)},
        {"WZ-0001": "2"},
        _stock(depot=False),
        "accepted",
        None,
    ),
]


@pytest.mark.parametrize(("state", "modes", "rec", "status", "rule"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rule(state: dict, modes: dict, rec: dict[str, Any], status: str, rule: str | None) -> None:
    out = decide_batch(check_records([rec]), Stored(state=dict(state), modes=modes), DEPARTMENT, "b1", "now")
    (result,) = out.results
    assert result["status"] == status, result["reasons"]
    assert [r["rule"] for r in result["reasons"]][:1] == ([rule] if rule else [])
    assert bool(out.rows) == (status == "accepted")


def test_rules_within_one_batch() -> None:
    """Earlier records of a batch count as stored for later ones; the last state of a key is written."""
    recs = [
        _mat(1, seq=1),
        _mat(1, seq=3, material_name="新名"),
        _mat(1, seq=2),  # accepted, accepted, stale
        _mat(1, seq=4, material_name="新名"),  # same content, newer seq: the written row takes seq 4
        _stock(1, depot=False),  # its material arrived above, 储备方式 1 (实物储备): a depot is required
        _mat(2, seq=1, reserve_mode="2"),
        _stock(2, depot=False),  # 储备方式 2 from this batch: no depot needed
        _mat(3, seq=5),  # stored at seq 1 with this content: a seq-only advance
    ]
    stored = Stored(state={("material", "WZ-0003"): (1, _v(3), False)})
    out = decide_batch(check_records(recs), stored, DEPARTMENT, "b1", "now")
    assert [r["status"] for r in out.results] == [
        "accepted",
        "accepted",
        "stale",
        "duplicate",
        "rejected",
        "accepted",
        "accepted",
        "duplicate",
    ]
    assert out.results[4]["reasons"][0]["rule"] == "depot_required"
    assert out.rows[M1]["seq"] == 4 and out.rows[M1]["data"]["material_name"] == "新名"
    assert out.bumps == {("material", "WZ-0003"): 5}
    assert out.new_keys == {M1, ("material", "WZ-0002"), ("stock", out.results[6]["key"])}
    assert len(out.accepted) == 4 and stored.state == {("material", "WZ-0003"): (1, _v(3), False)}  # not changed


# --- SQLite and PostgreSQL store the same -----------------------------------


def _batches(seed: int) -> list[list[dict[str, Any]]]:
    """A generated history: every kind of outcome, in small and large batches."""
    rnd = random.Random(seed)
    current: dict[int, tuple[int, dict[str, Any] | None]] = {}  # material n -> (seq, data or None when deleted)
    batches: list[list[dict[str, Any]]] = []
    for b in range(14):
        size = rnd.choice([3, 10, SMALL_BATCH, SMALL_BATCH + 1, 80])
        recs: list[dict[str, Any]] = []
        if b == 0:
            recs.append(record("depot", sample("depot")))
        for _ in range(size):
            n = rnd.randint(1, 60)
            seq, data = current.get(n, (0, None))
            kind = rnd.choice(
                [
                    "insert_or_update",
                    "insert_or_update",
                    "stale",
                    "duplicate",
                    "newer_duplicate",
                    "delete",
                    "bad",
                    "conflict",
                    "stock",
                    "stock_no_depot",
                ]
            )
            if kind == "insert_or_update" or (seq == 0 and kind in ("stale", "duplicate", "newer_duplicate")):
                data = sample(
                    "material", n, material_name=f"折叠床{rnd.randint(0, 3)}", reserve_mode=rnd.choice(["1", "2"])
                )
                seq += 1
                current[n] = (seq, data)
                recs.append(record("material", data, seq=seq))
            elif kind == "stale":
                recs.append(record("material", sample("material", n, material_name="旧"), seq=rnd.randint(0, seq - 1)))
            elif kind == "duplicate":
                recs.append(record("material", data, seq=seq, op="upsert" if data else "delete", key=f"WZ-{n:04d}"))
            elif kind == "newer_duplicate":
                current[n] = (seq + 1, data)
                recs.append(record("material", data, seq=seq + 1, op="upsert" if data else "delete", key=f"WZ-{n:04d}"))
            elif kind == "delete":
                current[n] = (seq + 1, None)
                recs.append(record("material", None, seq=seq + 1, op="delete", key=f"WZ-{n:04d}"))
            elif kind == "bad":
                rec = record("material", sample("material", n, unit=""), seq=seq + 1)
                recs.append(rec)
            elif kind == "conflict" and seq:
                recs.append(record("material", sample("material", n, material_name="冲突"), seq=seq))
            else:
                data_s = sample("stock", n, batch_no=f"B{rnd.randint(1, 3)}")
                if kind == "stock_no_depot":
                    del data_s["depot_id"]
                recs.append(record("stock", data_s, seq=rnd.randint(1, 3)))
        batches.append(recs)
    return batches


def _run(
    engine: Engine, batches: list[list[dict[str, Any]]], hub_key: Ed25519PrivateKey, ids: list[str]
) -> list[dict[str, Any]]:
    docs = []
    with engine.connect() as conn:
        for i, (recs, batch_id) in enumerate(zip(batches, ids, strict=True)):
            batch = Batch(PROTOCOL_VERSION, batch_id, DEPARTMENT, "test", "2026-12-01T00:00:00+08:00", recs)
            stored = store_batch(
                conn,
                hub_key,
                "hub-1",
                batch,
                check_records(recs),
                key_id=f"{DEPARTMENT}-1",
                digest=f"d{i}",
                nonce=Nonce(f"{DEPARTMENT}-1", f"n{i}", 2**40),
            )
            assert not stored.refused and not stored.replayed
            docs.append(orjson.loads(stored.receipt))
        # The first batch again, under a new nonce: its receipt, nothing stored twice.
        batch = Batch(PROTOCOL_VERSION, ids[0], DEPARTMENT, "test", "2026-12-01T00:00:00+08:00", batches[0])
        again = store_batch(
            conn,
            hub_key,
            "hub-1",
            batch,
            check_records(batches[0]),
            key_id=f"{DEPARTMENT}-1",
            digest="d0",
            nonce=Nonce(f"{DEPARTMENT}-1", "again", 2**40),
        )
        assert again.replayed and orjson.loads(again.receipt) == docs[0]
        # A nonce used before: refused, nothing stored.
        replay = store_batch(
            conn,
            hub_key,
            "hub-1",
            batch,
            check_records(batches[0]),
            key_id=f"{DEPARTMENT}-1",
            digest="d0",
            nonce=Nonce(f"{DEPARTMENT}-1", "n1", 2**40),
        )
        assert replay.refused == "replay"
    return docs


def _read_back(engine: Engine) -> dict[str, Any]:
    r, h, rc = tables.records.c, tables.record_history.c, tables.receipts.c
    with engine.connect() as conn:
        records = conn.execute(
            select(r.type, r.key, r.seq, r.version, r.data, r.updated_at, r.deleted, r.provenance, r.batch_id).order_by(
                r.hub_seq
            )
        ).all()
        history = conn.execute(select(h.type, h.key, h.seq, h.version, h.op, h.batch_id).order_by(h.id)).all()
        receipts = conn.execute(
            select(rc.batch_id, rc.type, rc.key, rc.seq, rc.status, rc.reasons).order_by(rc.id)
        ).all()
        log = conn.execute(
            select(tables.receipt_log.c.batch_id, tables.receipt_log.c.counts).order_by(tables.receipt_log.c.seq)
        ).all()
    return {
        "records": [tuple(x) for x in records],
        "history": [tuple(x) for x in history],
        "receipts": [tuple(x) for x in receipts],
        "log": [tuple(x) for x in log],
    }


def _results(docs: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    return [[{k: v for k, v in res.items() if k != "hub_seq"} for res in d["results"]] for d in docs]


@pytest.mark.parametrize("seed", [1, 2])
def test_sqlite_and_postgresql_store_the_same(tmp_path, pg_url: str, seed: int) -> None:  # type: ignore[no-untyped-def]
    batches = _batches(seed)
    statuses = {res for recs in batches for res in (r["op"] for r in recs)}
    assert statuses == {"upsert", "delete"}
    hub_key = Ed25519PrivateKey.generate()
    ids = [str(uuid.uuid4()) for _ in batches]
    seen: dict[str, Any] = {}
    for name, url in (("sqlite", f"sqlite:///{tmp_path / 'hub.db'}"), ("postgresql", pg_url)):
        engine = open_hub_db(url)
        try:
            docs = _run(engine, batches, hub_key, ids)
            seen[name] = (_results(docs), _read_back(engine))
            hub_seqs = [res["hub_seq"] for d in docs for res in d["results"] if res["status"] == "accepted"]
            assert hub_seqs == sorted(hub_seqs) and len(set(hub_seqs)) == len(hub_seqs)
        finally:
            engine.dispose()
    assert seen["sqlite"][0] == seen["postgresql"][0]  # every record's status and reasons, batch by batch
    for part in ("records", "history", "receipts", "log"):
        assert seen["sqlite"][1][part] == seen["postgresql"][1][part], part
    # The generated history has every outcome.
    kinds = {res["status"] for d in seen["sqlite"][0] for res in d}
    assert kinds == {"accepted", "duplicate", "stale", "rejected"}
    rules = {reason["rule"] for d in seen["sqlite"][0] for res in d for reason in res["reasons"]}
    assert {"seq_conflict", "material_exists", "depot_required", "required"} <= rules

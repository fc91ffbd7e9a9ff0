"""Upward envelopes stored with the accepted batch (gateway/hub/forward/envelopes.py): the forwarder sends what
the batch queued, reads no record back, and the upper hub still ends with every key's latest state."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, inspect, select, update

from gateway.hub import tables
from gateway.hub.db import open_hub_db
from gateway.hub.forward import outbox
from gateway.hub.forward.envelopes import UpwardSpec
from gateway.hub.forward.upstream import Delivered, Retry, Upstream, batch_records
from gateway.protocol.batch import parse_batch
from gateway.protocol.canonical import canonical_json
from gateway.protocol.keys import public_key_from_text, read_private_key
from gateway.protocol.merkle import leaf_data, leaf_hash
from gateway.protocol.receipts import accepts_all, expanded, verify_receipt
from gateway.protocol.suites import suite_of
from tests.fixtures.hub import batch_body, record, sample
from tests.test_hub_forward import relay_post, stored, wait_for

SPEC = {"hub_key_id": "township-hub", "relay_key": "township-relay", "batch_size": 500}


def _queued(engine: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(tables.forward_outbox).order_by(tables.forward_outbox.c.log_seq))
                .mappings()]


def _still_forwarding_off(township: Any) -> Any:
    township.app.extensions["hub"].close()  # no forwarder thread: the test claims itself
    return township.engine


def test_stored_envelopes_equal_the_records_read_back(hub_levels) -> None:
    """The envelopes made at ingest are exactly what reading the stored records back gave (the old claim):
    same data as stored, the link, confidential fields withheld, deletes as deletes, in batch order."""
    township, _county = hub_levels(("township", "county")).hubs
    engine = _still_forwarding_off(township)
    first = [record("material", sample("material", 1)), record("depot", sample("depot")),
             record("stock", sample("stock", 1)), record("material", sample("material", 2))]
    assert township.post("/api/v1/batches", batch_body(first)).status_code == 200
    later = [record("material", sample("material", 2, material_name="大帐篷"), seq=2),
             record("material", None, seq=2, op="delete", key="WZ-0001"),
             record("material", sample("material", 3, unit=""))]  # rejected: not forwarded
    r = township.post("/api/v1/batches", batch_body(later))
    assert [x["status"] for x in r.json()["results"]] == ["accepted", "accepted", "rejected"]
    rows = _queued(engine)
    assert [q["records"] for q in rows] == [4, 2] and all(q["body"] for q in rows)
    with engine.connect() as conn:  # the fallback path of the claim, on the newest batch (all still current)
        back = outbox._current_records(conn, "dept001", [rows[1]["batch_id"]], UpwardSpec("township-hub", "township-relay"))
    kept = orjson.loads(rows[1]["body"])
    assert kept == back[rows[1]["batch_id"]]
    depot = next(e for e in orjson.loads(rows[0]["body"]) if e["type"] == "depot")
    assert "contact_phone" not in depot["data"] and depot["provenance"]["withheld"] == ["contact_phone"]
    assert depot["provenance"]["hubs"][-1]["batch_id"] == rows[0]["batch_id"]
    deleted = next(e for e in kept if e["key"] == "WZ-0001")
    assert (deleted["op"], deleted["data"]) == ("delete", None)


def test_a_later_version_queued_behind_an_earlier_one_leaves_after_it_and_wins_above(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    engine = _still_forwarding_off(township)
    for seq, name in ((1, "折叠床"), (2, "折叠床（加宽）"), (3, "折叠床（加长）")):
        body = batch_body([record("material", sample("material", 1, material_name=name), seq=seq)])
        assert township.post("/api/v1/batches", body).json()["results"][0]["status"] == "accepted"
    (fb,) = outbox.claim(engine, "dept001", **SPEC)
    sent = parse_batch(fb.body).records
    assert [r["seq"] for r in sent] == [1, 2, 3]  # every version, in the order accepted
    assert canonical_json(orjson.loads(fb.body)) == fb.body
    up = Upstream(county.url, read_private_key(township.dir / "keys" / "upstream.key"), "township-relay",
                  county.hub_public_key)
    answer = up.post_batch(fb.forward_id, "dept001", fb.body)
    assert isinstance(answer, Delivered)
    assert [x["status"] for x in answer.doc["results"]] == ["accepted"] * 3
    at_county = stored(county)[("material", "WZ-0001")]
    assert (at_county["seq"], at_county["data"]["material_name"]) == (3, "折叠床（加长）")
    # Were an earlier version ever to arrive after a later one, the upper hub's rules drop it as stale.
    r = relay_post(county, township, batch_body([sent[0]]))
    assert r.json()["results"][0]["status"] == "stale"
    assert stored(county)[("material", "WZ-0001")]["seq"] == 3


def test_a_duplicate_with_a_higher_seq_moves_the_seq_up_above_too(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    data = sample("material", 1)
    assert township.post("/api/v1/batches", batch_body([record("material", data)])).status_code == 200
    r = township.post("/api/v1/batches", batch_body([record("material", data, seq=5)]))
    assert r.json()["results"][0]["status"] == "duplicate"
    wait_for(lambda: stored(county).get(("material", "WZ-0001"), {}).get("seq") == 5)
    assert stored(township)[("material", "WZ-0001")]["seq"] == 5


def test_rows_queued_before_bodies_were_stored_are_read_back(hub_levels, tmp_path) -> None:
    """An outbox row without a body (queued by an older hub, or backfilled) still leaves, with the current
    state of what its batch wrote; and a database from before the columns is brought up to them."""
    township, _county = hub_levels(("township", "county")).hubs
    engine = _still_forwarding_off(township)
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 1)),
                                                 record("material", sample("material", 2))]))
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 2, material_name="大帐篷"), seq=2)]))
    first = _queued(engine)[0]["batch_id"]
    with engine.begin() as conn:  # the first batch's row as an older hub queued it; the second keeps its body
        conn.execute(update(tables.forward_outbox).where(tables.forward_outbox.c.batch_id == first)
                     .values(body=None, records=None))
    (fb,) = outbox.claim(engine, "dept001", **SPEC)
    sent = parse_batch(fb.body).records
    # The first batch's current record read back (WZ-0002 was overwritten since), then the second's envelope.
    assert [(r["key"], r["seq"]) for r in sent] == [("WZ-0001", 1), ("WZ-0002", 2)]
    assert sent[1]["data"]["material_name"] == "大帐篷"
    assert fb.records == 2 and canonical_json(orjson.loads(fb.body)) == fb.body  # stored bytes joined, canonical

    old = create_engine(f"sqlite:///{tmp_path / 'old.db'}")
    with old.begin() as conn:  # forward_outbox as hubs before stored bodies made it
        conn.exec_driver_sql("CREATE TABLE forward_outbox (batch_id VARCHAR(36) PRIMARY KEY, department VARCHAR(40) "
                             "NOT NULL, queued_at VARCHAR NOT NULL, state VARCHAR(12) NOT NULL, forward_id VARCHAR(36))")
        conn.exec_driver_sql("INSERT INTO forward_outbox VALUES ('b1', 'dept001', '2026-01-01', 'queued', NULL)")
    old.dispose()
    migrated = open_hub_db(f"sqlite:///{tmp_path / 'old.db'}")
    cols = {c["name"] for c in inspect(migrated).get_columns("forward_outbox")}
    assert {"log_seq", "records", "body", "leaves"} <= cols
    assert "ix_forward_outbox_order" in {i["name"] for i in inspect(migrated).get_indexes("forward_outbox")}
    assert [q["state"] for q in _queued(migrated)] == ["queued"]
    migrated.dispose()


def test_a_claims_upward_batches_are_read_back_in_the_order_claimed(hub_levels) -> None:
    """The upward batches of one claim share its time; read back (after a restart or a failed attempt) they
    leave in the order of the queued batches they carry, not of their random ids: the same key's later
    version never goes up before its earlier one."""
    township, _county = hub_levels(("township", "county")).hubs
    engine = _still_forwarding_off(township)
    for seq in range(1, 9):  # eight versions of one key, one batch each
        township.post("/api/v1/batches", batch_body([record("material", sample("material", 1, material_name=f"床{seq}"),
                                                            seq=seq), record("material", sample("material", 10 + seq))]))
    made = outbox.claim(engine, "dept001", **{**SPEC, "batch_size": 2})
    assert len(made) == 8 and len({fb.forward_id for fb in made}) == 8
    assert [fb.forward_id for fb in outbox.pending(engine, limit=8)] == [fb.forward_id for fb in made]
    assert [parse_batch(fb.body).records[0]["seq"] for fb in outbox.pending(engine, limit=8)] == list(range(1, 9))


def _without_ids(body: bytes) -> dict[str, Any]:
    doc = orjson.loads(body)
    return {k: v for k, v in doc.items() if k not in ("batch_id", "created")}


def test_a_claim_from_envelopes_handed_over_sends_what_reading_them_back_sends(hub_levels, tmp_path) -> None:
    """The claim's fast path (`outbox.Handed`: the envelopes this process's ingest just stored) builds the same
    upward bodies and leaves as reading the rows back, some rows handed over and some not, in log order; the
    rows it took are gone from the hand-over, and so are rows claimed while they were being handed over."""
    import sqlite3

    township, _county = hub_levels(("township", "county")).hubs
    engine = _still_forwarding_off(township)
    for n in range(1, 6):
        township.post("/api/v1/batches", batch_body([record("material", sample("material", n)),
                                                     record("depot", sample("depot", n))]))
    rows = _queued(engine)
    copy = tmp_path / "copy.db"
    with sqlite3.connect(township.dir / "hub.db") as src, sqlite3.connect(copy) as dst:
        src.backup(dst)
    handed = outbox.Handed()
    handed.put("claimed-meanwhile", "dept001", 0, b"[]", None)  # logged before every queued row: claimed already
    for q in rows[1::2]:
        handed.put(q["batch_id"], q["department"], q["log_seq"], bytes(q["body"]), bytes(q["leaves"]))
    handed.put("other-department", "dept002", 0, b"[]", None)
    spec = {**SPEC, "batch_size": 4}
    fast = outbox.claim(engine, "dept001", **spec, handed=handed)
    other = open_hub_db(f"sqlite:///{copy}")
    read_back = outbox.claim(other, "dept001", **spec)
    other.dispose()
    assert len(fast) == len(read_back) >= 2, (len(fast), len(read_back))
    assert sum(fb.records for fb in fast) == sum(q["records"] for q in rows)
    assert [_without_ids(fb.body) for fb in fast] == [_without_ids(fb.body) for fb in read_back]
    assert [fb.leaves for fb in fast] == [fb.leaves for fb in read_back] and all(fb.leaves for fb in fast)
    assert len(handed) == 1 and handed.take("other-department") is not None


def test_the_hand_over_keeps_within_its_bytes() -> None:
    handed = outbox.Handed(max_bytes=10)
    for n in range(5):
        handed.put(f"b{n}", "dept001", n, b"x" * 4, None)
    assert len(handed) == 2 and handed.take("b0") is None and handed.take("b4") == (b"xxxx", None)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_upward_bodies_move_out_of_forward_batches(backend, tmp_path, request) -> None:
    """A database from before `forward_bodies` keeps every upward batch: the bodies and leaves move over, the
    batch rows lose them, and a batch still awaiting its receipt is sent as stored."""
    url = f"sqlite:///{tmp_path / 'before.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    open_hub_db(url).dispose()
    blob, hexed = ("BLOB", "X'{}'") if backend == "sqlite" else ("BYTEA", "'\\x{}'::bytea")
    old = create_engine(url)
    with old.begin() as conn:  # forward_batches as hubs before forward_bodies made it
        conn.exec_driver_sql("DROP TABLE forward_bodies")
        conn.exec_driver_sql("DROP TABLE forward_batches")
        conn.exec_driver_sql(
            f"CREATE TABLE forward_batches (forward_id VARCHAR(36) PRIMARY KEY, department VARCHAR(40) NOT NULL, "
            f"body {blob} NOT NULL, records INTEGER NOT NULL, state VARCHAR(12) NOT NULL, attempts INTEGER NOT NULL, "
            f"last_error TEXT, claimed_at VARCHAR NOT NULL, delivered_at VARCHAR, upstream_key_id VARCHAR(128), "
            f"log_seq BIGINT, receipt {blob}, signature VARCHAR, leaves {blob})")
        conn.exec_driver_sql("CREATE INDEX ix_forward_batches_state ON forward_batches (state, claimed_at)")
        conn.exec_driver_sql(
            "INSERT INTO forward_batches (forward_id, department, body, records, state, attempts, claimed_at, leaves) "
            f"VALUES ('f1', 'dept001', {hexed.format('7b7d')}, 1, 'delivered', 1, '2026-01-01', NULL), "
            f"('f2', 'dept001', {hexed.format('5b5d')}, 2, 'sent', 0, '2026-01-02', {hexed.format('0102')})")
    old.dispose()
    migrated = open_hub_db(url)
    assert {c["name"] for c in inspect(migrated).get_columns("forward_batches")}.isdisjoint({"body", "leaves"})
    with migrated.connect() as conn:
        moved = conn.execute(select(tables.forward_bodies).order_by(tables.forward_bodies.c.forward_id)).all()
    assert [(f, bytes(b), None if v is None else bytes(v)) for f, b, v in moved] == [
        ("f1", b"{}", None), ("f2", b"[]", b"\x01\x02")]
    assert outbox.pending(migrated) == [outbox.ForwardBatch("f2", "dept001", b"[]", 2, 0, b"\x01\x02")]
    migrated.dispose()
    open_hub_db(url).dispose()  # and again: nothing left to move


@pytest.mark.parametrize("suite", ["ed25519", "sm2-sm3"])
def test_stored_leaves_check_a_receipt_as_the_records_do(hub_levels, suite) -> None:
    """The leaf hashes stored with the envelopes are the upward body's records' leaves under the county's
    digest, so checking a receipt that accepts them all from the leaves agrees with checking it from the
    body; a receipt listing a record, or with another root, is checked from the body (and a bad one refused)."""
    township, county = hub_levels(("township", "county"), suite=suite).hubs
    engine = _still_forwarding_off(township)
    first = [record("material", sample("material", 1)), record("depot", sample("depot")),
             record("stock", sample("stock", 1))]
    assert township.post("/api/v1/batches", batch_body(first)).status_code == 200
    later = [record("material", None, seq=2, op="delete", key="WZ-0001"), record("material", sample("material", 2))]
    assert township.post("/api/v1/batches", batch_body(later)).status_code == 200
    assert all(q["leaves"] for q in _queued(engine))
    (fb,) = outbox.claim(engine, "dept001", **SPEC)
    key = public_key_from_text(county.hub_public_key)
    digest = suite_of(key).digest
    assert fb.leaves == b"".join(leaf_hash(digest, leaf_data(*r)) for r in batch_records(fb.body))
    assert outbox.pending(engine)[0].leaves == fb.leaves

    up = Upstream(county.url, read_private_key(township.dir / "keys" / "upstream.key"), "township-relay",
                  county.hub_public_key)
    answer = up.post_batch(fb.forward_id, "dept001", fb.body, fb.leaves)
    assert isinstance(answer, Delivered)
    doc = verify_receipt(answer.receipt, answer.signature, key)
    assert accepts_all(doc, fb.leaves, digest)
    full = expanded(doc, batch_records(fb.body), digest)  # the body's check: every record accepted
    assert [r["status"] for r in full["results"]] == ["accepted"] * fb.records
    again = up.post_batch(fb.forward_id, "dept001", fb.body)  # the resend, checked from the body: the same receipt
    assert isinstance(again, Delivered) and again.receipt == answer.receipt

    size = len(digest(b""))
    other = bytes(32 * [7]) + fb.leaves[size:]
    assert not accepts_all(doc, other, digest)  # another root: no verdict, the body decides
    assert not accepts_all(doc, fb.leaves[size:], digest)  # a count that does not match
    assert not accepts_all({**doc, "results": [{"index": 0}]}, fb.leaves, digest)  # lists a record
    # Leaves that do not match the body do not let a receipt through: the body's check still runs.
    assert isinstance(up._receipt(fb.forward_id, "dept001", answer.receipt, answer.signature, fb.body, other), Delivered)
    r = township.post("/api/v1/batches", batch_body([record("material", sample("material", 3))]))
    assert r.status_code == 200
    (fb2,) = outbox.claim(engine, "dept001", **SPEC)  # a batch whose root the first receipt does not have
    got = up._receipt(fb.forward_id, "dept001", answer.receipt, answer.signature, fb2.body, fb2.leaves)
    assert isinstance(got, Retry) and "does not verify" in got.error

"""The hub's batch endpoint on a real HTTP server: forged requests refused and logged, statuses, idempotency."""

from __future__ import annotations

import os
import random
import time
import uuid

import orjson
import pytest
from sqlalchemy import create_engine, select

from gateway.hub import registry, tables
from gateway.protocol import verify_receipt
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.signing import sign_request
from tests.fixtures.hub import LiveHub, batch_body, record, sample

BATCHES = "/api/v1/batches"


def receipt(hub: LiveHub, resp) -> dict:  # type: ignore[no-untyped-def]
    assert resp.status_code == 200, resp.text
    return verify_receipt(resp.content, resp.headers["Receipt-Signature"], public_key_from_text(hub.hub_public_key))


def statuses(doc: dict) -> list[str]:
    return [r["status"] for r in doc["results"]]


def log_entries(hub: LiveHub, kind: str | None = None) -> list[dict]:
    q = select(tables.receipt_log).order_by(tables.receipt_log.c.seq)
    if kind:
        q = q.where(tables.receipt_log.c.kind == kind)
    with hub.engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def test_valid_batches_are_all_accepted_with_signed_receipts(live_hub: LiveHub) -> None:
    docs = []
    for n in range(1, 6):
        body = batch_body([record("material", sample("material", n)), record("depot", sample("depot", depot_id=f"KU-{n}")),
                           record("stock", sample("stock", n, depot_id=f"KU-{n}"))])
        docs.append(receipt(live_hub, live_hub.post(BATCHES, body)))
    assert all(statuses(d) == ["accepted"] * 3 for d in docs)
    assert [d["log_seq"] for d in docs] == [1, 2, 3, 4, 5]
    hub_seqs = [r["hub_seq"] for d in docs for r in d["results"]]
    assert hub_seqs == sorted(hub_seqs) and len(set(hub_seqs)) == 15
    with live_hub.engine.connect() as c:
        n = c.execute(select(tables.records.c.key).where(tables.records.c.department == "dept001")).all()
    assert len(n) == 15


def _forged(hub: LiveHub):  # type: ignore[no-untyped-def]
    """(name, response, expected status, expected error) for every kind of forgery."""
    good = batch_body([record("material", sample("material"))])
    out = []
    h = sign_request("POST", BATCHES, good, hub.key, hub.key_id)
    out.append(("altered body", hub.session.post(hub.url + BATCHES, data=good.replace(b"WZ-0001", b"WZ-0666"), headers=h), 401, "digest_mismatch"))
    h = sign_request("POST", "/api/v1/attachments", good, hub.key, hub.key_id)
    out.append(("altered path", hub.session.post(hub.url + BATCHES, data=good, headers=h), 401, "bad_signature"))
    out.append(("too old", hub.post(BATCHES, good, created=int(time.time()) - 400), 401, "clock_window"))
    out.append(("from the future", hub.post(BATCHES, good, created=int(time.time()) + 400), 401, "clock_window"))
    first = hub.post(BATCHES, good, nonce="a" * 32)
    assert first.status_code == 200
    replay_body = batch_body([record("material", sample("material", 2))])
    out.append(("replayed nonce", hub.post(BATCHES, replay_body, nonce="a" * 32), 401, "replay"))
    out.append(("unknown key", hub.post(BATCHES, good, key_id="nobody-1"), 401, "unknown_key"))
    stranger, _ = hub.add_department("dept009")
    out.append(("wrong key for key id", hub.post(BATCHES, good, key=stranger), 401, "bad_signature"))
    other_code, other_key, other_id = hub.other
    with hub.engine.begin() as c:
        registry.revoke_key(c, other_id)
    out.append(("revoked key", hub.post(BATCHES, batch_body([record("material", sample("material"), department=other_code)], other_code),
                                       key=other_key, key_id=other_id), 403, "key_revoked"))
    # Department dept001 writing dept009's records: whole batch, and one foreign record in an own batch.
    theirs = batch_body([record("material", sample("material"), department="dept009")], "dept009")
    out.append(("A writes B's batch", hub.post(BATCHES, theirs), 403, "department_mismatch"))
    mixed = batch_body([record("material", sample("material", 3)), record("material", sample("material", 4), department="dept009")])
    out.append(("A slips in B's record", hub.post(BATCHES, mixed), 403, "department_mismatch"))
    return out


def test_every_forgery_is_refused_and_logged(suite_hub: LiveHub) -> None:
    cases = _forged(suite_hub)
    for name, resp, status, code in cases:
        assert resp.status_code == status, f"{name}: {resp.status_code} {resp.text}"
        body = resp.json()
        assert body["error"] == code, name
        assert "/" in body["message"], name  # Chinese / English
    refused = log_entries(suite_hub, "refused")
    assert [e["status"] for e in refused] == [c[3] for c in cases]
    foreign = [e for e in refused if e["status"] == "department_mismatch"]
    assert all(e["department"] == "dept001" and e["key_id"] == "dept001-1" for e in foreign)
    # Nothing of a refused request was stored: only the one good batch wrote a record.
    with suite_hub.engine.connect() as c:
        keys = sorted(r.key for r in c.execute(select(tables.records.c.key, tables.records.c.department)))
    assert keys == ["WZ-0001"]


def test_same_batch_twice_returns_identical_receipt(live_hub: LiveHub) -> None:
    body = batch_body([record("material", sample("material"))])
    logged = len(log_entries(live_hub, "batch"))
    a, b = live_hub.post(BATCHES, body), live_hub.post(BATCHES, body)
    assert a.content == b.content and a.headers["Receipt-Signature"] == b.headers["Receipt-Signature"]
    assert len(log_entries(live_hub, "batch")) == logged + 1
    doc = orjson.loads(body)
    doc["records"][0]["seq"] = 2
    c = live_hub.post(BATCHES, orjson.dumps(doc))
    assert c.status_code == 409 and c.json()["error"] == "batch_id_conflict"


def test_duplicate_stale_and_seq_conflict(live_hub: LiveHub) -> None:
    m1 = sample("material")
    m2 = sample("material", material_name="折叠床（加宽）")
    receipt(live_hub, live_hub.post(BATCHES, batch_body([record("material", m2, seq=5)])))
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([
        record("material", m2, seq=5),  # same version again
        record("material", m1, seq=4),  # older
        record("material", m1, seq=5),  # same seq, other content
        record("material", m2, seq=6),  # newer seq, same content: seq advances, data stays
        record("material", m1, seq=5),  # now older than the stored seq
    ])))
    assert statuses(doc) == ["duplicate", "stale", "rejected", "duplicate", "stale"]
    assert doc["results"][2]["reasons"][0]["rule"] == "seq_conflict"
    with live_hub.engine.connect() as c:
        row = c.execute(select(tables.records).where(tables.records.c.key == "WZ-0001")).mappings().one()
    assert row["seq"] == 6 and row["data"]["material_name"] == "折叠床（加宽）"
    # The hub keeps every record's outcome for the operators, and the history of accepted states.
    rc = tables.receipts.c
    with live_hub.engine.connect() as c:
        kept = c.execute(select(rc.seq, rc.status, rc.reasons).where(rc.batch_id == doc["batch_id"]).order_by(rc.id)).all()
        history = c.execute(select(tables.record_history.c.seq).where(tables.record_history.c.key == "WZ-0001")).all()
    assert [(k.seq, k.status) for k in kept] == [(5, "duplicate"), (4, "stale"), (5, "rejected"), (6, "duplicate"), (5, "stale")]
    assert "seq_conflict" in kept[2].reasons and kept[0].reasons is None
    assert [h.seq for h in history] == [5]


def test_out_of_order_batches_end_in_the_same_state(live_hub: LiveHub) -> None:
    """Deliver the same 12 batches in order to one department and shuffled to another."""
    other_key, other_id = live_hub.add_department("dept003")

    def batches(dept: str) -> list[bytes]:
        out = []
        for seq in range(1, 13):
            recs = []
            for n in range(1, 4):
                if seq % 4 == 0 and n == 2:
                    recs.append(record("material", None, seq=seq, op="delete", department=dept, key=f"WZ-{n:04d}"))
                else:
                    recs.append(record("material", sample("material", n, material_name=f"床{seq}"), seq=seq, department=dept))
            out.append(batch_body(recs, dept))
        return out

    for body in batches("dept001"):
        receipt(live_hub, live_hub.post(BATCHES, body))
    shuffled = batches("dept003")
    random.Random(7).shuffle(shuffled)
    for body in shuffled:
        receipt(live_hub, live_hub.post(BATCHES, body, key=other_key, key_id=other_id))
    r = tables.records.c
    with live_hub.engine.connect() as c:
        def state(d: str) -> list:
            return c.execute(select(r.key, r.seq, r.version, r.deleted).where(r.department == d).order_by(r.key)).all()

        assert state("dept001") == state("dept003")
        assert [row.seq for row in state("dept001")] == [12, 12, 12]


def test_cross_record_references(live_hub: LiveHub) -> None:
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([
        record("stock", sample("stock", 1)),  # neither material nor depot exists yet
        record("material", sample("material", 1)),
        record("depot", sample("depot")),
        record("stock", sample("stock", 1, batch_no="B2")),  # both exist earlier in this batch
        record("capacity", sample("capacity", 1, agreement_no="XY-9")),
    ])))
    assert statuses(doc) == ["rejected", "accepted", "accepted", "accepted", "rejected"]
    assert {x["rule"] for x in doc["results"][0]["reasons"]} == {"material_exists", "depot_exists"}
    assert doc["results"][0]["reasons"][0]["label"] == "物资编码"
    assert doc["results"][4]["reasons"][0]["rule"] == "agreement_exists"
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([
        record("agreement", sample("agreement", 9)),
        record("capacity", sample("capacity", 1, agreement_no="XY-9")),
        record("stock", sample("stock", 1, batch_no="B3")),  # material and depot now in the database
        record("material", None, seq=2, op="delete", key="WZ-0001"),
        record("stock", sample("stock", 1, batch_no="B4")),  # material deleted just before
    ])))
    assert statuses(doc) == ["accepted", "accepted", "accepted", "accepted", "rejected"]


def test_stock_without_depot_only_for_materials_not_held_physically(live_hub: LiveHub) -> None:
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([
        record("material", sample("material", 1)),  # 实物储备
        record("material", sample("material", 2, reserve_mode="2")),  # 协议储备
        record("stock", {k: v for k, v in sample("stock", 1).items() if k != "depot_id"}),
        record("stock", {k: v for k, v in sample("stock", 2).items() if k != "depot_id"}),
    ])))
    assert statuses(doc) == ["accepted", "accepted", "rejected", "accepted"]
    r = doc["results"][2]["reasons"]
    assert [(x["field"], x["rule"], x["label"]) for x in r] == [("depot_id", "depot_required", "储备库编码")]
    assert "实物储备" in r[0]["message"]
    # The stored material (not in this batch) decides too.
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([
        record("stock", {k: v for k, v in sample("stock", 1, batch_no="B9").items() if k != "depot_id"}),
    ])))
    assert statuses(doc) == ["rejected"]


def test_invalid_record_is_rejected_alone_with_field_reasons(live_hub: LiveHub) -> None:
    bad = sample("stock", 1, quantity=-5)
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([
        record("material", sample("material", 1)), record("depot", sample("depot")), record("stock", bad),
        {"type": "stock", "department": "dept001", "op": "upsert", "seq": "x"},
        record("material", sample("material", 2), key="not-the-key"),
    ])))
    assert statuses(doc) == ["accepted", "accepted", "rejected", "rejected", "rejected"]
    r = doc["results"][2]["reasons"][0]
    assert (r["field"], r["label"], r["value"]) == ("quantity", "储备数量", -5)
    assert {x["field"] for x in doc["results"][3]["reasons"]} >= {"key", "seq", "version", "data"}
    assert doc["results"][4]["reasons"][0]["rule"] == "key_mismatch"


def test_type_not_allowed_protocol_and_malformed(live_hub: LiveHub) -> None:
    code, key, key_id = live_hub.other  # dept002 may write material and stock only
    r = live_hub.post(BATCHES, batch_body([record("depot", sample("depot"), department=code)], code), key=key, key_id=key_id)
    assert r.status_code == 403 and r.json()["error"] == "record_type_not_allowed"
    r = live_hub.post(BATCHES, batch_body([]), headers={"Protocol-Version": "2.1"})
    assert r.status_code == 400 and r.json()["supported"] == ["1", "1.1"]
    r = live_hub.post(BATCHES, b'{"protocol":"1","records":7}')
    assert r.status_code == 400 and r.json()["error"] == "malformed_batch"
    assert "batch_id" in " ".join(r.json()["problems"])
    assert [e["status"] for e in log_entries(live_hub, "refused")] == ["record_type_not_allowed", "unsupported_protocol", "malformed_batch"]


def test_overload_too_large_and_store_down(live_hub: LiveHub) -> None:
    hub = live_hub.app.extensions["hub"]
    slots = [hub.in_flight.acquire(blocking=False) for _ in range(hub.config.max_in_flight)]
    assert all(slots)
    try:
        r = live_hub.post(BATCHES, batch_body([]))
        assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    finally:
        for _ in slots:
            hub.in_flight.release()
    big = batch_body([record("material", sample("material", n, usage_desc="床" * 180)) for n in range(1, 8000)])
    assert len(big) > hub.config.max_batch_bytes
    r = live_hub.post(BATCHES, big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    good_engine = hub.engine
    hub.engine = create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    try:
        r = live_hub.post(BATCHES, batch_body([]))
        assert r.status_code == 503 and r.headers["Retry-After"] and r.json()["error"] == "store_unavailable"
    finally:
        hub.engine.dispose()
        hub.engine = good_engine
    assert live_hub.post(BATCHES, batch_body([])).status_code == 200


def test_key_rotation_keeps_old_key_until_revoked(live_hub: LiveHub) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.protocol.keys import public_key_text

    new = Ed25519PrivateKey.generate()
    with live_hub.engine.begin() as c:
        registry.add_key(c, "dept001", "dept001-2", public_key_text(new.public_key()))
    body = lambda: batch_body([record("material", sample("material"))], batch_id=str(uuid.uuid4()))  # noqa: E731
    assert live_hub.post(BATCHES, body()).status_code == 200
    assert live_hub.post(BATCHES, body(), key=new, key_id="dept001-2").status_code == 200
    with live_hub.engine.begin() as c:
        registry.revoke_key(c, "dept001-1")
    assert live_hub.post(BATCHES, body()).status_code == 403
    assert live_hub.post(BATCHES, body(), key=new, key_id="dept001-2").status_code == 200


@pytest.mark.parametrize("n", [1])
def test_receipt_log_head_in_receipt_matches_log(live_hub: LiveHub, n: int) -> None:
    doc = receipt(live_hub, live_hub.post(BATCHES, batch_body([record("material", sample("material", n))])))
    entry = log_entries(live_hub, "batch")[-1]
    assert (doc["log_seq"], doc["log_head"]) == (entry["seq"], entry["entry_hash"])
    assert orjson.loads(entry["counts"]) == {"accepted": 1, "duplicate": 0, "rejected": 0, "stale": 0}


def test_odd_records_are_rejected_alone_never_fail_the_batch(live_hub: LiveHub) -> None:
    odd_type = {**record("material", sample("material", 1)), "type": "weapon" * 20}
    huge_seq = record("material", sample("material", 2), seq=2**63)  # past a signed 64-bit column
    odd_data = record("material", {**sample("material", 3), "material_name": ["a", {"b": 1}]})
    no_department = {**{k: v for k, v in record("material", sample("material", 5)).items() if k != "department"},
                     "key": os.urandom(5000).hex()}  # incompressible, past an index entry's limit
    odd_time = {**record("material", sample("material", 6)), "updated_at": os.urandom(5000).hex()}
    list_type = {**record("material", sample("material", 7)), "type": ["material"]}  # unhashable: no 500
    dict_type = {**record("material", sample("material", 8)), "type": {"t": "material"}}
    body = batch_body([odd_type, huge_seq, odd_data, record("material", sample("material", 4)), no_department, odd_time,
                       list_type, dict_type])
    doc = receipt(live_hub, live_hub.post(BATCHES, body))
    assert statuses(doc) == ["rejected", "rejected", "rejected", "accepted", "rejected", "rejected", "rejected", "rejected"]
    assert [(doc["results"][i]["reasons"][0]["field"], doc["results"][i]["reasons"][0]["rule"]) for i in (6, 7)] == [("type", "envelope")] * 2
    assert doc["results"][5]["reasons"][0]["field"] == "updated_at"
    assert doc["results"][4]["reasons"][0]["field"] == "department"
    assert doc["results"][0]["reasons"][0]["rule"] == "record_type"
    assert doc["results"][1]["reasons"][0]["field"] == "seq"
    assert doc["results"][2]["reasons"][0]["field"] == "material_name"

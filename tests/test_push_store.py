"""Push bookkeeping in the real state store: batches, receipts, dead letters, backoff. No HTTP here."""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select

from gateway.protocol.keys import new_private_key
from gateway.protocol.receipts import sign_receipt, verify_receipt
from gateway.push.backoff import Backoff, parse_retry_after
from gateway.push.batching import Batch, claim_batch, inflight_batch_ids, load_batch, release_batch
from gateway.push.deadletters import DeadLetterNotOpen, list_dead_letters, resolve_dead_letter, retry_dead_letter
from gateway.push.receipts import ReceiptUnverified, results_for, store_receipt
from gateway.push.status import delivery_status
from gateway.store import open_store
from gateway.store.tables import audit, batch_receipts, outbox, outbox_batches, receipts
from tests.fixtures.push import DEPARTMENT, Edit, enqueue, material, mkey

HUB_KEY = new_private_key()


@pytest.fixture
def engine(tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    return open_store(tmp_path / "gw.db")


def states(engine: Engine) -> dict[int, str]:
    with engine.connect() as c:
        return dict(c.execute(select(outbox.c.id, outbox.c.state)).all())


def receipt_for(batch: Batch, statuses: dict[str, str] | None = None, skip: set[str] = frozenset(), **over: Any) -> tuple[bytes, str, dict]:
    """The hub's signed receipt for `batch`: every record accepted unless `statuses` says otherwise."""
    statuses = statuses or {}
    body = orjson.loads(batch.body)
    results = []
    for i, rec in enumerate(body["records"]):
        if rec["key"] in skip:
            continue
        st = statuses.get(rec["key"], "accepted")
        reasons = (
            [{"field": "unit", "label": "计量单位", "value": "箱子", "rule": "units", "message": "计量单位 不在单位表中"}]
            if st == "rejected" else []
        )
        results.append({
            "key": rec["key"], "type": rec["type"], "seq": rec["seq"], "version": rec["version"], "status": st,
            "hub_seq": 100 + i if st == "accepted" else None, "reasons": reasons,
        })
    doc = {
        "protocol": "1", "batch_id": batch.batch_id, "department": DEPARTMENT, "hub_time": "2026-11-29T01:00:00+00:00",
        "log_seq": 7, "log_head": "ab" * 32, "results": results,
    }
    doc.update(over)
    signed, sig = sign_receipt(doc, HUB_KEY, "hub-1")
    return signed, f":{sig}:", verify_receipt(signed, sig, HUB_KEY.public_key())


def test_batches_take_pending_rows_in_order_bounded_by_count_and_bytes_one_source_at_a_time(engine: Engine) -> None:
    ids = enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(5)])
    other = enqueue(engine, [Edit("D-1", 1, material(99), source="other_db")])
    ids += enqueue(engine, [Edit(mkey(i), 2, material(i, spec_model="新型号")) for i in range(2)])

    b1 = claim_batch(engine, DEPARTMENT, batch_size=3, max_bytes=10**6)
    assert b1 is not None and b1.outbox_ids == ids[:3] and b1.source == "wz_db"
    doc = orjson.loads(b1.body)
    assert doc["batch_id"] == b1.batch_id and doc["department"] == DEPARTMENT and doc["source"] == "wz_db"
    assert [r["key"] for r in doc["records"]] == [mkey(0), mkey(1), mkey(2)]
    assert doc["records"][0]["data"] == material(0) and doc["records"][0]["provenance"]["operator"] == "张三"
    st = states(engine)
    assert [st[i] for i in ids] == ["sent"] * 3 + ["pending"] * 4

    # Byte bound: the rest of wz_db's rows, but each record is ~500 bytes, so only two fit.
    b2 = claim_batch(engine, DEPARTMENT, batch_size=100, max_bytes=2200)
    assert b2 is not None and b2.outbox_ids == ids[3:5]
    assert len(b2.body) <= 2200
    # The oldest pending row is now other_db's; its source gets the next batch, then wz_db's later edits.
    b3 = claim_batch(engine, DEPARTMENT, batch_size=100, max_bytes=10**6)
    assert b3 is not None and b3.outbox_ids == other and b3.source == "other_db"
    b4 = claim_batch(engine, DEPARTMENT, batch_size=100, max_bytes=10**6)
    assert b4 is not None and b4.outbox_ids == ids[5:]
    assert [r["seq"] for r in orjson.loads(b4.body)["records"]] == [2, 2]
    assert claim_batch(engine, DEPARTMENT, batch_size=100, max_bytes=10**6) is None


def test_a_single_record_larger_than_the_byte_bound_still_leaves_alone(engine: Engine) -> None:
    enqueue(engine, [Edit("WZ-big", 1, material(1, usage_desc="长" * 180)), Edit("WZ-2", 1, material(2))])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=100)
    assert b is not None and len(b.rows) == 1


def test_a_sent_batch_is_rebuilt_byte_for_byte_after_a_restart(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(4)] + [Edit("WZ-0", 2, None)])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    engine.dispose()
    again = open_store(tmp_path / "gw.db")  # as a new process would
    assert inflight_batch_ids(again) == [b.batch_id]
    rebuilt = load_batch(again, b.batch_id, DEPARTMENT)
    assert rebuilt is not None and rebuilt.body == b.body and rebuilt.rows == b.rows
    assert orjson.loads(rebuilt.body)["records"][-1]["data"] is None  # the delete


def test_receipt_settles_rows_keeps_the_signed_document_and_dead_letters_rejections(engine: Engine) -> None:
    ids = enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(5)])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    body, sig, doc = receipt_for(b, {mkey(1): "duplicate", mkey(2): "stale", mkey(3): "rejected"}, skip={mkey(4)})
    results = store_receipt(engine, b, body, sig, doc, DEPARTMENT)

    assert {r.record_key: r.status for r in results} == {mkey(0): "accepted", mkey(1): "duplicate", mkey(2): "stale", mkey(3): "rejected"}
    st = states(engine)
    # Not mentioned by the receipt: back to pending, to leave in a later batch.
    assert [st[i] for i in ids] == ["delivered", "delivered", "delivered", "dead", "pending"]
    with engine.connect() as c:
        stored = c.execute(select(batch_receipts)).one()
        assert stored.body == body and stored.log_head == "ab" * 32 and stored.hub_key_id == "hub-1"
        # The evidence checks out with the hub key alone.
        assert verify_receipt(stored.body, stored.signature, HUB_KEY.public_key())["batch_id"] == b.batch_id
        assert c.execute(select(outbox.c.batch_id).where(outbox.c.id == ids[4])).scalar() is None
        assert c.execute(select(outbox_batches.c.state)).scalar() == "receipted"
    dl = list_dead_letters(engine)
    assert [(d.record_key, d.seq, d.source) for d in dl] == [(mkey(3), 1, "wz_db")]
    assert dl[0].reasons[0]["label"] == "计量单位" and dl[0].reasons[0]["rule"] == "units"
    # Read back, each record's receipt is what the signed receipt said of it, hub_seq and reasons included.
    assert results_for(engine, ids) == results
    # Only the records that need one have a receipts row of their own; the accepted record's receipt is the
    # batch's signed document (a bulk push writes no row per accepted record).
    with engine.connect() as c:
        assert sorted(c.execute(select(receipts.c.record_key)).scalars()) == [mkey(1), mkey(2), mkey(3)]

    # The same receipt again (a second pusher, or a resend answered with the original): nothing changes.
    again = store_receipt(engine, b, body, sig, doc, DEPARTMENT)
    assert again == results
    with engine.connect() as c:
        assert len(c.execute(select(receipts.c.id)).all()) == 3
    assert len(list_dead_letters(engine)) == 1


def test_a_receipt_for_another_batch_or_department_settles_nothing(engine: Engine) -> None:
    enqueue(engine, [Edit("WZ-1", 1, material(1))])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    for over in ({"batch_id": "00000000-0000-4000-8000-000000000000"}, {"department": "other"}):
        body, sig, doc = receipt_for(b, **over)
        with pytest.raises(ReceiptUnverified):
            store_receipt(engine, b, body, sig, doc, DEPARTMENT)
    assert set(states(engine).values()) == {"sent"}
    with engine.connect() as c:
        assert c.execute(select(batch_receipts)).first() is None


def test_dead_letter_retry_requeues_the_same_row_and_resolve_records_who(engine: Engine) -> None:
    ids = enqueue(engine, [Edit("WZ-1", 1, material(1)), Edit("WZ-2", 1, material(2))])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    store_receipt(engine, b, *receipt_for(b, {"WZ-1": "rejected", "WZ-2": "rejected"}), DEPARTMENT)
    d1, d2 = list_dead_letters(engine)

    later = enqueue(engine, [Edit("WZ-3", 1, material(3))])
    requeued = retry_dead_letter(engine, d1.id, "李四", "中心已补录物资")
    assert requeued > later[0]  # behind what was queued before the retry
    assert resolve_dead_letter(engine, d2.id, "王五") == ids[1]
    st = states(engine)
    assert st[requeued] == "pending" and st[ids[0]] == "dead" and st[ids[1]] == "dead"
    assert list_dead_letters(engine) == []
    handled = {d.id: d for d in list_dead_letters(engine, include_handled=True)}
    assert (handled[d1.id].resolution, handled[d1.id].resolved_by) == ("retried", "李四")
    assert (handled[d2.id].resolution, handled[d2.id].resolved_by) == ("resolved", "王五")
    with pytest.raises(DeadLetterNotOpen):
        retry_dead_letter(engine, d2.id, "李四")
    with pytest.raises(DeadLetterNotOpen):
        resolve_dead_letter(engine, 999, "李四")
    with engine.connect() as c:
        assert [r.action for r in c.execute(select(audit).order_by(audit.c.id))] == ["dead_letter.retry", "dead_letter.resolve"]
    # The retried record leaves again, same seq and data, in a new batch, after the row queued before it.
    again = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert again is not None and again.outbox_ids == [later[0], requeued] and again.batch_id != b.batch_id
    first_time, second_time = orjson.loads(b.body)["records"][0], orjson.loads(again.body)["records"][1]
    assert second_time == first_time


def test_released_batch_rows_go_back_to_pending_and_status_counts_them(engine: Engine) -> None:
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(3)])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    st = delivery_status(engine)
    assert st.counts["sent"] == 3 and [x.batch_id for x in st.inflight] == [b.batch_id]
    release_batch(engine, b.batch_id, "413")
    st = delivery_status(engine)
    assert st.counts["pending"] == 3 and st.counts["sent"] == 0 and st.inflight == []
    assert inflight_batch_ids(engine) == []


def test_backoff_is_full_jitter_under_a_cap_and_honours_retry_after() -> None:
    b = Backoff(base=1.0, cap=8.0, rng=random.Random(7))
    ceilings = [1, 2, 4, 8, 8, 8]
    delays = [b.next_delay() for _ in ceilings]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    assert len(set(delays)) == len(delays)  # jittered, not a fixed ladder
    assert b.next_delay(retry_after=5.0) >= 5.0
    assert b.next_delay(retry_after=86400) <= 8.0  # a huge Retry-After is capped
    b.reset()
    assert b.next_delay() <= 1.0


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 11, 29, 1, 0, 0, tzinfo=dt.UTC)
    assert parse_retry_after("120") == 120.0
    assert parse_retry_after("Sun, 29 Nov 2026 01:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Sun, 29 Nov 2026 00:59:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_a_result_about_other_content_does_not_settle_the_row(engine: Engine) -> None:
    ids = enqueue(engine, [Edit(mkey(1), 1, material(1)), Edit(mkey(2), 1, material(2))])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    body, sig, doc = receipt_for(b)
    doc["results"][1]["version"] = "0" * 64  # the hub speaks of a version we never sent
    signed, sig2 = sign_receipt(doc, HUB_KEY, "hub-1")
    store_receipt(engine, b, signed, sig2, verify_receipt(signed, sig2, HUB_KEY.public_key()), DEPARTMENT)
    st = states(engine)
    assert st[ids[0]] == "delivered" and st[ids[1]] == "pending"

"""Each record's receipt, read from its batch's signed receipt when it has no receipts row of its own.

An accepted record gets no receipts row (gateway/push/record_receipts.py); these tests hold the view read
from the signed documents to the rows the gateway stored before (and still reads, from an older store),
for full and compact receipts, and check that `gateway receipts verify` still catches a store that says
more than the signed documents.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, select, update

from gateway.protocol.receipts import compact_parts, expanded, sign_receipt, verify_receipt
from gateway.protocol.suites import suite_of
from gateway.push import record_receipts
from gateway.push.batching import Batch, claim_batch
from gateway.push.evidence import verify_receipts
from gateway.push.receipts import store_receipt
from gateway.store import open_store
from gateway.store.db import migrate
from gateway.store.tables import outbox, outbox_batches, receipts, schema_version
from tests.fixtures.push import DEPARTMENT, Edit, enqueue, material, mkey
from tests.test_push_store import HUB_KEY, receipt_for


@pytest.fixture
def engine(tmp_path) -> Engine:  # type: ignore[no-untyped-def]
    return open_store(tmp_path / "gw.db")


STATUSES = {mkey(1): "duplicate", mkey(2): "stale", mkey(4): "rejected"}


def compact_receipt_for(batch: Batch, statuses: dict[str, str]) -> tuple[bytes, str, dict[str, Any]]:
    """receipt_for's answer as a 1.1 hub signs it: the accepted records summed up by a Merkle root."""
    _, _, full = receipt_for(batch, statuses)
    accepted, listed = compact_parts(full["results"], DEPARTMENT, suite_of(HUB_KEY.public_key()).digest)
    doc = {k: v for k, v in full.items() if k not in ("results", "hub_key_id")}
    doc.update(protocol="1.1", accepted=accepted, results=listed)
    body, sig = sign_receipt(doc, HUB_KEY, "hub-1")
    # As the push client hands it to store_receipt: checked against the batch's records and expanded.
    records = [(r["type"], DEPARTMENT, r["key"], r["seq"], r["version"]) for r in orjson.loads(batch.body)["records"]]
    return body, f":{sig}:", expanded(verify_receipt(body, sig, HUB_KEY.public_key()), records, suite_of(HUB_KEY.public_key()).digest)


def push_one_batch(engine: Engine, receipt: Any) -> tuple[list[int], list[record_receipts.ReceiptResult]]:
    ids = enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(6)])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    body, sig, doc = receipt(b, STATUSES)
    return ids, store_receipt(engine, b, body, sig, doc, DEPARTMENT)


@pytest.mark.parametrize("receipt", [receipt_for, compact_receipt_for], ids=["full", "compact"])
def test_every_record_reads_back_what_the_signed_receipt_said_with_rows_only_for_the_exceptions(
    engine: Engine, receipt: Any
) -> None:
    ids, answered = push_one_batch(engine, receipt)
    assert [r.status for r in answered] == ["accepted", "duplicate", "stale", "accepted", "rejected", "accepted"]
    # The hub numbered the accepted records 100 + their place in the batch (receipt_for).
    assert [r.hub_seq for r in answered] == [100, None, None, 103, None, 105]
    with engine.connect() as c:
        # Rows of their own only for what is not a plain acceptance.
        assert sorted(c.execute(select(receipts.c.record_key)).scalars()) == [mkey(1), mkey(2), mkey(4)]
        assert record_receipts.of_outbox(c, ids) == answered
        assert record_receipts.of_batch(c, answered[0].batch_id) == answered
        assert record_receipts.counts_by_batch(c, [answered[0].batch_id]) == {
            answered[0].batch_id: {"accepted": 3, "duplicate": 1, "stale": 1, "rejected": 1}
        }
        [newest] = record_receipts.of_record(c, "material", mkey(3), 1)
        assert newest == answered[3] and newest.hub_time == "2026-11-29T01:00:00+00:00"
    v = verify_receipts(engine, HUB_KEY.public_key(), DEPARTMENT)
    assert v.ok and (v.batches_ok, v.records_ok, v.records_bad) == (1, 6, 0)


def test_a_record_delivered_again_in_a_later_batch_reads_its_latest_receipt(engine: Engine) -> None:
    ids, first = push_one_batch(engine, receipt_for)
    later = enqueue(engine, [Edit(mkey(0), 2, material(0, spec_model="新型号"))])
    b = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**6)
    assert b is not None
    body, sig, doc = compact_receipt_for(b, {})
    [again] = store_receipt(engine, b, body, sig, doc, DEPARTMENT)
    with engine.connect() as c:
        assert [r.seq for r in record_receipts.of_record(c, "material", mkey(0))] == [2, 1]
        assert record_receipts.of_outbox(c, [ids[0], *later]) == [first[0], again]


def test_a_store_written_before_version_7_reads_the_same(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An older gateway stored a row per accepted record and no batch id range; both still read as before."""
    engine = open_store(tmp_path / "gw.db")
    ids, answered = push_one_batch(engine, receipt_for)
    with engine.begin() as c:
        c.execute(update(outbox_batches).values(first_id=None, last_id=None))
        c.execute(receipts.insert(), [
            {"outbox_id": r.outbox_id, "batch_id": r.batch_id, "record_type": r.record_type, "record_key": r.record_key,
             "seq": r.seq, "status": r.status, "reasons": None, "hub_seq": r.hub_seq, "hub_time": r.hub_time,
             "log_head": r.log_head, "received_at": r.received_at}
            for r in answered if r.status == "accepted"
        ])
        c.execute(schema_version.delete().where(schema_version.c.version >= 7))
    with engine.connect() as c:  # no range yet: found by batch id
        assert record_receipts.of_outbox(c, ids) == answered
    migrate(engine)
    with engine.connect() as c:
        assert c.execute(select(outbox_batches.c.first_id, outbox_batches.c.last_id)).one() == (ids[0], ids[-1])
        assert record_receipts.of_outbox(c, ids) == answered
    v = verify_receipts(engine, HUB_KEY.public_key(), DEPARTMENT)
    assert v.ok and v.records_ok == 6


@pytest.mark.parametrize("receipt", [receipt_for, compact_receipt_for], ids=["full", "compact"])
def test_verify_names_an_outbox_row_the_signed_receipt_does_not_accept(engine: Engine, receipt: Any) -> None:
    ids, _ = push_one_batch(engine, receipt)
    with engine.begin() as c:  # the store rewritten: another version of mkey(0) shown as delivered
        c.execute(update(outbox).where(outbox.c.id == ids[0]).values(version="0" * 64))
    v = verify_receipts(engine, HUB_KEY.public_key(), DEPARTMENT)
    assert not v.ok
    if receipt is receipt_for:
        assert [(b.record, "does not accept this version" in b.reason) for b in v.bad] == [(f"material/{mkey(0)}", True)]
    else:  # the compact receipt's root no longer adds up: the whole batch is no evidence of these rows
        assert v.batches_bad == 1 and v.records_bad == 6
        assert any(b.record is None and "merkle" in b.reason.lower() for b in v.bad), [b.reason for b in v.bad]


def test_the_batch_page_and_record_history_show_accepted_records_with_their_hub_seq(engine: Engine) -> None:
    ids, answered = push_one_batch(engine, compact_receipt_for)
    with engine.connect() as c:
        rows = [record_receipts.as_row(r) for r in record_receipts.of_batch(c, answered[0].batch_id)]
    assert [(r["record_key"], r["status"], r["hub_seq"]) for r in rows] == [
        (mkey(0), "accepted", 100), (mkey(1), "duplicate", None), (mkey(2), "stale", None),
        (mkey(3), "accepted", 103), (mkey(4), "rejected", None), (mkey(5), "accepted", 105)]
    assert orjson.loads(rows[4]["reasons"])[0]["rule"] == "units" and rows[0]["reasons"] is None

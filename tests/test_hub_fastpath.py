"""The batch endpoint's one-transaction path: the nonce goes in with the batch, idempotency is checked under
the department's lock, small and large batches store alike, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import orjson
import psycopg
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import create_engine, event, func, insert, select

from gateway.hub import ingest, registry, tables
from gateway.hub.db import open_hub_db
from gateway.protocol.keys import public_key_text
from gateway.protocol.signing import sign_request
from tests.fixtures.hub import LiveHub, batch_body, record, sample
from tests.test_hub_ingest import BATCHES, log_entries, receipt, statuses


@pytest.fixture(params=["sqlite", "postgresql"])
def any_hub(request: pytest.FixtureRequest) -> LiveHub:
    return request.getfixturevalue("live_hub" if request.param == "sqlite" else "live_hub_pg")


def _headers(hub: LiveHub, body: bytes, **kw: Any) -> dict[str, str]:
    """One signed request's headers, to send the very same request more than once."""
    return {"Protocol-Version": "1", "Content-Type": "application/json",
            **sign_request("POST", BATCHES, body, kw.get("key", hub.key), kw.get("key_id", hub.key_id))}


def _material_count(hub: LiveHub) -> int:
    with hub.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(tables.records)).scalar_one())


def _send(hub: LiveHub, body: bytes, headers: dict[str, str], codes: list[tuple[int, str]]) -> None:
    r = requests.post(hub.url + BATCHES, data=body, headers=headers, timeout=60)  # its own connection
    codes.append((r.status_code, "" if r.status_code == 200 else r.json()["error"]))


def test_two_copies_of_one_request_sent_at_once_store_it_once(any_hub: LiveHub) -> None:
    for n in range(1, 6):
        body = batch_body([record("material", sample("material", n))], batch_id=str(uuid.uuid4()))
        headers = _headers(any_hub, body)
        codes: list[tuple[int, str]] = []
        threads = [threading.Thread(target=_send, args=(any_hub, body, headers, codes)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(codes) == [(200, ""), (401, "replay")], codes
    assert _material_count(any_hub) == 5
    assert len(log_entries(any_hub, "batch")) == 5
    assert [e["status"] for e in log_entries(any_hub, "refused")] == ["replay"] * 5


def test_a_refused_request_cannot_be_replayed(any_hub: LiveHub) -> None:
    other_code, other_key, other_id = any_hub.other  # may write material and stock, not depot
    body = batch_body([record("depot", sample("depot"), department=other_code)], other_code)
    headers = _headers(any_hub, body, key=other_key, key_id=other_id)
    first = any_hub.session.post(any_hub.url + BATCHES, data=body, headers=headers)
    assert first.status_code == 403 and first.json()["error"] == "record_type_not_allowed"
    again = any_hub.session.post(any_hub.url + BATCHES, data=body, headers=headers)
    assert again.status_code == 401 and again.json()["error"] == "replay"
    assert [e["status"] for e in log_entries(any_hub, "refused")] == ["record_type_not_allowed", "replay"]
    assert _material_count(any_hub) == 0


def test_a_stored_batch_is_answered_with_its_receipt_after_its_types_were_withdrawn(any_hub: LiveHub) -> None:
    body = batch_body([record("material", sample("material"))])
    first = any_hub.post(BATCHES, body)
    receipt(any_hub, first)
    with any_hub.engine.begin() as c:
        registry.add_department(c, any_hub.department, "应急管理局", ["depot", "stock"])
    retried = any_hub.post(BATCHES, body)  # a fresh signature: the gateway's retry after a lost answer
    assert retried.status_code == 200 and retried.content == first.content
    new = any_hub.post(BATCHES, batch_body([record("material", sample("material", 2))]))
    assert new.status_code == 403 and new.json()["error"] == "record_type_not_allowed"


def _records(n0: int, n1: int, seq: int = 1, **overrides: Any) -> list[dict[str, Any]]:
    return [record("material", sample("material", n, **overrides), seq=seq) for n in range(n0, n1)]


@pytest.mark.parametrize("size", [4, 40], ids=["small", "large"])  # either side of ingest.SMALL_BATCH
def test_small_and_large_batches_store_alike(any_hub: LiveHub, size: int) -> None:
    assert 4 + 3 <= ingest.SMALL_BATCH < 40  # the sizes below (and their second batch) fall either side
    half = size // 2
    first = receipt(any_hub, any_hub.post(BATCHES, batch_body(_records(1, size + 1))))
    assert statuses(first) == ["accepted"] * size
    # Updates of stored keys, duplicates, a stale one, a new key, and one bad record that fails alone.
    bad = record("material", sample("material", 999), seq=1)
    bad["data"]["unit"] = ""
    second = receipt(any_hub, any_hub.post(BATCHES, batch_body([
        *_records(1, half + 1, seq=2, material_name="折叠床（新）"),
        *_records(half + 1, size + 1),
        record("material", sample("material", 1), seq=1),
        bad,
        record("material", sample("material", size + 1)),
    ])))
    assert statuses(second) == ["accepted"] * half + ["duplicate"] * (size - half) + ["stale", "rejected", "accepted"]
    hub_seqs = [r["hub_seq"] for d in (first, second) for r in d["results"] if r["status"] == "accepted"]
    assert hub_seqs == sorted(hub_seqs) and len(set(hub_seqs)) == len(hub_seqs)
    r = tables.records.c
    with any_hub.engine.connect() as c:
        rows = {k: (s, d["material_name"]) for k, s, d in c.execute(select(r.key, r.seq, r.data))}
        history = c.execute(select(func.count()).select_from(tables.record_history)).scalar_one()
        kept = c.execute(select(func.count()).select_from(tables.receipts)).scalar_one()
    assert rows["WZ-0001"] == (2, "折叠床（新）") and rows[f"WZ-{size:04d}"] == (1, "折叠床")
    assert len(rows) == size + 1 and history == size + half + 1 and kept == size + size + 3


def test_a_batch_id_taken_by_another_department_meanwhile_is_a_conflict(live_hub_pg: LiveHub,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """PostgreSQL: batches of two departments overlap; the batches primary key decides, as a check would have."""
    hub = live_hub_pg
    batch_id = str(uuid.uuid4())
    other = create_engine(hub.database_url)
    sign = ingest._sign

    def other_department_first(*args: Any) -> tuple[bytes, str]:
        # Under our log_head lock, after our check: another department's batch with this id commits.
        with other.begin() as c:
            c.execute(insert(tables.batches).values(
                batch_id=batch_id, department=hub.other[0], source="test", request_digest="x", log_seq=0,
                receipt=b"{}", signature="s", received_at="2026-01-01T00:00:00+00:00"))
        return sign(*args)

    monkeypatch.setattr(ingest, "_sign", other_department_first)
    body = batch_body([record("material", sample("material"))], batch_id=batch_id)
    headers = _headers(hub, body)
    try:
        r = hub.session.post(hub.url + BATCHES, data=body, headers=headers)
    finally:
        other.dispose()
    assert r.status_code == 409 and r.json()["error"] == "batch_id_conflict"
    assert _material_count(hub) == 0 and log_entries(hub, "batch") == []
    monkeypatch.setattr(ingest, "_sign", sign)
    replay = hub.session.post(hub.url + BATCHES, data=body, headers=headers)
    assert replay.status_code == 401 and replay.json()["error"] == "replay"
    assert [e["status"] for e in log_entries(hub, "refused")] == ["batch_id_conflict", "replay"]
    # The chain is whole: the undone batch left no entry behind.
    assert [e["seq"] for e in log_entries(hub)] == [1, 2]
    assert orjson.loads(log_entries(hub)[0]["summary"])["http_status"] == 409


def test_registry_changes_through_another_connection_count_from_the_next_request(any_hub: LiveHub) -> None:
    """The hub verifies against the registry it keeps in memory and checks its version in the batch's transaction."""
    hub = any_hub
    assert hub.post(BATCHES, batch_body([record("material", sample("material", 1))])).status_code == 200
    other = open_hub_db(hub.database_url)  # another pool, as another hub process or the CLI would have
    new = Ed25519PrivateKey.generate()
    try:
        with other.begin() as c:
            registry.add_key(c, hub.department, f"{hub.department}-9", public_key_text(new.public_key()))
        r = hub.post(BATCHES, batch_body([record("material", sample("material", 2))]), key=new, key_id=f"{hub.department}-9")
        assert r.status_code == 200, r.text
        with other.begin() as c:
            registry.add_department(c, hub.department, "应急管理局", ["depot", "stock"])
        r = hub.post(BATCHES, batch_body([record("material", sample("material", 3))]))
        assert r.status_code == 403 and r.json()["error"] == "record_type_not_allowed"
        with other.begin() as c:
            registry.add_department(c, hub.department, "应急管理局", ["material", "depot", "stock"])
        assert hub.post(BATCHES, batch_body([record("material", sample("material", 4))])).status_code == 200
        with other.begin() as c:
            registry.revoke_key(c, hub.key_id)
        r = hub.post(BATCHES, batch_body([record("material", sample("material", 5))]))
        assert r.status_code == 403 and r.json()["error"] == "key_revoked"
    finally:
        other.dispose()
    assert _material_count(hub) == 3
    assert [e["status"] for e in log_entries(hub, "refused")] == ["record_type_not_allowed", "key_revoked"]


def test_a_database_failure_in_the_batch_path_is_503_with_retry_after(live_hub_pg: LiveHub,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    def lost(*_args: Any, **_kw: Any) -> Any:
        raise psycopg.OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(ingest, "_store_pg", lost)
    r = live_hub_pg.post(BATCHES, batch_body([record("material", sample("material"))]))
    assert r.status_code == 503 and r.json()["error"] == "store_unavailable" and r.headers["Retry-After"] == "5"
    monkeypatch.undo()
    assert live_hub_pg.post(BATCHES, batch_body([record("material", sample("material"))])).status_code == 200


def test_a_batch_takes_one_pooled_connection(any_hub: LiveHub) -> None:
    engine = any_hub.app.extensions["hub"].engine
    assert any_hub.post(BATCHES, batch_body([record("material", sample("material", 1))])).status_code == 200
    checkouts: list[int] = []

    def on_checkout(*_args: Any) -> None:
        checkouts.append(1)

    event.listen(engine, "checkout", on_checkout)
    try:
        for n in (2, 3):
            assert any_hub.post(BATCHES, batch_body([record("material", sample("material", n))])).status_code == 200
    finally:
        event.remove(engine, "checkout", on_checkout)
    assert len(checkouts) == 2

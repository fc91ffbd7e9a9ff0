"""The receipt log's hash chain: concurrent appends chain, and verify-log names the first bad entry."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import delete, select, update

from gateway.cli import cli
from gateway.hub import tables
from gateway.hub.receipt_log import head_message, verify_log
from gateway.protocol.keys import public_key_from_text, read_private_key
from gateway.protocol.signing import b64, sign_request
from gateway.protocol.suites import suite_of
from tests.fixtures.hub import LiveHub, batch_body, record, sample

BATCHES = "/api/v1/batches"


def fill(hub: LiveHub, n: int = 6) -> list[tuple[bytes, str]]:
    """n batches plus one refused request; returns the receipts (body, signature header)."""
    out = []
    for i in range(1, n + 1):
        r = hub.post(BATCHES, batch_body([record("material", sample("material", i))]))
        assert r.status_code == 200
        out.append((r.content, r.headers["Receipt-Signature"]))
    assert hub.post(BATCHES, batch_body([]), key_id="nobody-1").status_code == 401
    return out


def verdict(hub: LiveHub, heads=()):  # type: ignore[no-untyped-def]
    return verify_log(hub.engine, heads, public_key_from_text(hub.hub_public_key))


def test_concurrent_ingests_chain_correctly(live_hub: LiveHub) -> None:
    others = [live_hub.add_department(f"dept1{i}") for i in range(4)]
    errors: list[str] = []

    def push(idx: int) -> None:
        key, key_id = others[idx]
        with requests.Session() as s:
            for n in range(1, 11):
                body = batch_body([record("material", sample("material", n), department=f"dept1{idx}")], f"dept1{idx}")
                h = {"Protocol-Version": "1", **sign_request("POST", BATCHES, body, key, key_id)}
                r = s.post(live_hub.url + BATCHES, data=body, headers=h, timeout=60)
                if r.status_code != 200:
                    errors.append(r.text)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    v = verdict(live_hub)
    assert v.ok, str(v)
    assert v.entries == 40 and v.last_seq == 40
    with live_hub.engine.connect() as c:
        hub_seqs = [r[0] for r in c.execute(select(tables.records.c.hub_seq).order_by(tables.records.c.hub_seq))]
    assert hub_seqs == list(range(1, 41))


def _heads_of(receipts: list[tuple[bytes, str]]) -> list[tuple[int, str]]:
    return [(d["log_seq"], d["log_head"]) for d in (orjson.loads(b) for b, _ in receipts)]


@pytest.mark.parametrize("damage, first_bad", [
    ("flip", 3), ("delete", 3), ("reorder", 3), ("truncate", 6), ("truncate_and_rewind", 6),
])
def test_verify_log_names_the_first_bad_entry(suite_hub: LiveHub, damage: str, first_bad: int) -> None:
    receipts = fill(suite_hub)  # entries 1-6 batches, 7 a refusal
    assert verdict(suite_hub, _heads_of(receipts)).ok
    log = tables.receipt_log
    with suite_hub.engine.begin() as c:
        if damage == "flip":
            s = c.execute(select(log.c.summary).where(log.c.seq == 3)).scalar_one()
            c.execute(update(log).where(log.c.seq == 3).values(summary=s.replace('"records":1', '"records":2')))
        elif damage == "delete":
            c.execute(delete(log).where(log.c.seq == 3))
        elif damage == "reorder":
            c.execute(update(log).where(log.c.seq == 3).values(seq=-3))
            c.execute(update(log).where(log.c.seq == 4).values(seq=3))
            c.execute(update(log).where(log.c.seq == -3).values(seq=4))
        else:
            c.execute(delete(log).where(log.c.seq >= 6))
            if damage == "truncate_and_rewind":
                # Someone with the hub's own key rewinds its checkpoint too: only the gateways' heads tell.
                last = c.execute(select(log.c.seq, log.c.entry_hash).where(log.c.seq == 5)).one()
                key = read_private_key(suite_hub.dir / "keys" / "hub.key")
                c.execute(update(tables.log_head).values(log_seq=5, log_head=last.entry_hash,
                                                         signature=b64(suite_of(key).sign(key, head_message(5, last.entry_hash)))))
    v = verdict(suite_hub, _heads_of(receipts))
    assert not v.ok and v.first_bad_seq == first_bad, str(v)
    if damage == "truncate_and_rewind":
        assert verdict(suite_hub).ok  # without a gateway's head the rewound log looks whole
        assert "gateway holds a signed head at entry 6" in str(v)


def test_verify_log_cli_with_heads_file(suite_hub: LiveHub, tmp_path: Path) -> None:
    receipts = fill(suite_hub, 3)
    heads = tmp_path / "heads.json"
    heads.write_text(orjson.dumps([{"receipt": b.decode(), "signature": s} for b, s in receipts]).decode(), encoding="utf-8")
    runner = CliRunner()
    ok = runner.invoke(cli, ["hub", "--config", str(suite_hub.config_path), "verify-log", "--heads", str(heads)])
    assert ok.exit_code == 0, ok.output
    assert "intact: 4 entries" in ok.output
    with suite_hub.engine.begin() as c:
        c.execute(delete(tables.receipt_log).where(tables.receipt_log.c.seq == 2))
    bad = runner.invoke(cli, ["hub", "--config", str(suite_hub.config_path), "verify-log", "--heads", str(heads)])
    assert bad.exit_code == 1 and "first bad entry: 2" in bad.output
    forged = tmp_path / "forged.json"
    body, sig = receipts[0]
    forged.write_text(orjson.dumps({"receipt": body.decode().replace('"log_seq":1', '"log_seq":9'), "signature": sig}).decode())
    res = runner.invoke(cli, ["hub", "--config", str(suite_hub.config_path), "verify-log", "--heads", str(forged)])
    assert res.exit_code == 2 and "signature" in res.output


@pytest.mark.parametrize("damage", ["zeroed", "deleted", "behind"])
def test_verify_log_cli_flags_a_missing_zeroed_or_lagging_checkpoint(suite_hub: LiveHub, damage: str) -> None:
    """issue 13 item 2: cutting the log's tail and zeroing or deleting the checkpoint row is itself a finding."""
    fill(suite_hub)  # entries 1-7
    sql = {
        "zeroed": ["delete from receipt_log where seq > 4", "update log_head set log_seq = 0"],
        "deleted": ["delete from receipt_log where seq > 4", "delete from log_head"],
        "behind": ["update log_head set log_seq = 3"],  # the head hash is still entry 7's
    }[damage]
    with suite_hub.engine.begin() as c:
        for s in sql:
            c.exec_driver_sql(s)
    res = CliRunner().invoke(cli, ["hub", "--config", str(suite_hub.config_path), "verify-log"])
    assert res.exit_code == 1, res.output
    assert "receipt log BROKEN" in res.output
    if damage == "behind":
        assert "entry 3: differs from the hub's signed head checkpoint" in res.output
        assert "first bad entry: 3" in res.output
    else:
        what = "missing" if damage == "deleted" else "at entry 0"
        assert f"checkpoint (log_head) is {what} but the log has 4 entries up to 4" in res.output
    with suite_hub.engine.connect() as c:  # verify-log read the evidence without recreating the row
        assert (c.execute(select(tables.log_head)).first() is None) == (damage == "deleted")


def test_verify_log_passes_an_empty_log_with_its_genesis_checkpoint(live_hub: LiveHub) -> None:
    v = verdict(live_hub)
    assert v.ok and v.entries == 0, str(v)


@pytest.mark.parametrize("path, chunked", [(BATCHES, False), ("/api/v1/attachments", True)])
def test_a_too_large_refusal_is_logged_without_its_body(live_hub: LiveHub, path: str, chunked: bool) -> None:
    """issue 13 item 4: a 413 is in the receipt log like every other refusal; the body is not kept."""
    fill(live_hub, 2)  # entries 1-3
    limit = 4_000_000 if path == BATCHES else 200_000  # tests/fixtures/hub.py: max_batch_bytes, attachments max_bytes
    body = b"%PDF-1.7\n" + b"x" * limit
    headers = {"Protocol-Version": "1", **sign_request("POST", path, body, live_hub.key, live_hub.key_id)}
    # chunked: no Content-Length, so the hub finds out by reading
    data = (body[i : i + 65536] for i in range(0, len(body), 65536)) if chunked else body
    r = requests.post(live_hub.url + path, data=data, headers=headers, timeout=60)
    assert r.status_code == 413 and r.json()["error"] == "too_large" and r.json()["limit"] == limit
    with live_hub.engine.connect() as c:
        later = select(tables.receipt_log).where(tables.receipt_log.c.seq > 3)
        entries = [dict(e) for e in c.execute(later).mappings()]
        assert len(c.execute(select(tables.batches)).all()) == 2  # nothing stored
    assert len(entries) == 1, entries
    e = entries[0]
    assert (e["kind"], e["status"], e["request_digest"]) == ("refused", "too_large", None)
    summary = orjson.loads(e["summary"])
    assert summary["http_status"] == 413 and summary["path"] == path and summary["limit"] == limit
    assert "xxxx" not in e["summary"] and len(e["summary"]) < 1000
    assert not list((live_hub.dir / "attachments").rglob("*.*"))
    v = verdict(live_hub)
    assert v.ok and v.last_seq == 4, str(v)


def test_the_hub_publishes_its_signed_head_to_signed_requests_only(live_hub: LiveHub) -> None:
    from gateway.protocol.receipts import verify_head

    fill(live_hub, 2)  # entries 1-3
    r = live_hub.get("/api/v1/log/head")
    assert r.status_code == 200, r.text
    doc = r.json()
    assert (doc["log_seq"], doc["hub_key_id"]) == (3, "hub-1")
    assert doc["log_head"] == verdict(live_hub).last_hash
    assert verify_head(doc["log_seq"], doc["log_head"], doc["signature"], public_key_from_text(live_hub.hub_public_key))
    assert live_hub.get("/api/v1/log/head").json() == doc  # reading it is not logged: the head stays
    unsigned = requests.get(live_hub.url + "/api/v1/log/head", headers={"Protocol-Version": "1"}, timeout=10)
    assert unsigned.status_code == 401
    entries = _entries(live_hub)
    assert len(entries) == 4 and entries[-1]["kind"] == "refused" and entries[-1]["summary"].count("/api/v1/log/head")


def _entries(hub: LiveHub):  # type: ignore[no-untyped-def]
    with hub.engine.connect() as c:
        return c.execute(select(tables.receipt_log).order_by(tables.receipt_log.c.seq)).mappings().all()


@pytest.mark.parametrize("target, status, code", [
    ("/api/v1/attachments/" + "0" * 64, 404, "not_found"),
    ("/api/v1/records?type=stock&limit=0", 400, "malformed_request"),
])
def test_a_refused_read_is_a_receipt_log_entry(live_hub: LiveHub, target: str, status: int, code: str) -> None:
    """docs/protocol.md: every refusal of a request the hub reads is logged, reads that find nothing included."""
    fill(live_hub, 2)  # entries 1-3
    r = live_hub.get(target)
    assert (r.status_code, r.json()["error"]) == (status, code), r.text
    entries = _entries(live_hub)
    assert len(entries) == 4
    e = entries[-1]
    assert (e["kind"], e["status"], e["department"]) == ("refused", code, live_hub.department)
    assert verdict(live_hub).ok

"""Attachments travel upward with the records that name them (docs/hub.md, "Levels": attachments), through
three hub processes on loopback: township → county → city, across an outage of the county."""

from __future__ import annotations

import hashlib
import random
import urllib.parse

import pytest
from sqlalchemy import select

from gateway.hub import tables
from gateway.hub.attachments import read_attachment
from gateway.hub.forward.attachments import files_named
from gateway.protocol.batch import make_batch
from gateway.protocol.canonical import canonical_json
from tests.fixtures.faultproxy import StallingProxy
from tests.fixtures.hub import LiveHub, batch_body, record, sample
from tests.push_checks import hub_state
from tests.test_hub_forward import stored, wait_for
from tests.test_hub_levels import arrive, compare

PDF = "%PDF-1.7\n折叠床储备协议 第一号\n".encode() + b"x" * 4000
PDF2 = "%PDF-1.7\n折叠床储备协议 第二号\n".encode() + b"y" * 6000


def _upload(h: LiveHub, data: bytes, name: str) -> dict:
    r = h.post("/api/v1/attachments", data, headers={"Attachment-Name": urllib.parse.quote(name)})
    assert r.status_code == 200, r.text
    return {"sha256": r.json()["sha256"], "size": len(data), "name": name}


def _files(h: LiveHub) -> list[tuple[str, str]]:
    with h.engine.connect() as c:
        return sorted(c.execute(select(tables.attachments.c.sha256, tables.attachments.c.department)).all())


def _agreement(n: int, ref: dict, seq: int = 1) -> dict:
    return record("agreement", sample("agreement", n, attachment=ref), seq=seq)


def test_attachments_reach_the_city_with_their_agreements_exactly_once_across_an_outage(hub_levels) -> None:
    township, county, city = hub_levels(process=True).hubs
    ref = _upload(township, PDF, "协议一.pdf")
    body = batch_body([record("material", sample("material", 1)), _agreement(1, ref)])
    r = township.post("/api/v1/batches", body)
    assert r.status_code == 200 and [x["status"] for x in r.json()["results"]] == ["accepted", "accepted"], r.text
    at_city = wait_for(lambda: len(stored(city)) == 2 and stored(city))
    assert at_city[("agreement", "XY-1")]["data"]["attachment"]["sha256"] == ref["sha256"]
    # The file is at every level, as the department's, byte for byte.
    for h in (county, city):
        assert _files(h) == [(ref["sha256"], "dept001")]
        assert read_attachment(h.dir / "attachments", ref["sha256"]) == PDF

    # The county goes down; the department goes on: a second file, its agreement, the first agreement again.
    county.stop()
    ref2 = _upload(township, PDF2, "协议二.pdf")
    body = batch_body([_agreement(2, ref2), _agreement(1, ref, seq=2)])
    assert township.post("/api/v1/batches", body).status_code == 200

    def tried_and_failed() -> int:  # the forwarder tries the upload meanwhile, and fails
        with township.engine.connect() as c:
            return c.execute(select(tables.forward_batches.c.attempts)
                             .where(tables.forward_batches.c.state == "sent")).scalar() or 0

    wait_for(tried_and_failed)
    county.start()
    at_city = wait_for(lambda: len(stored(city)) == 3 and stored(city)[("agreement", "XY-1")]["seq"] == 2
                       and stored(city))
    assert at_city[("agreement", "XY-2")]["data"]["attachment"]["sha256"] == ref2["sha256"]
    for h in (county, city):
        assert _files(h) == sorted([(ref["sha256"], "dept001"), (ref2["sha256"], "dept001")])  # each stored once
        assert read_attachment(h.dir / "attachments", ref2["sha256"]) == PDF2
    # Every upward batch at both forwarding levels got its receipt: nothing was refused as attachment_exists.
    for h in (township, county):
        wait_for(lambda h=h: _upward_states(h) == {"delivered"})  # the county settles just after the city answers


def _upward_states(h: LiveHub) -> set[str]:
    with h.engine.connect() as c:
        return set(c.execute(select(tables.forward_batches.c.state)).scalars())


def test_a_relay_may_upload_files_only_for_departments_of_its_area(hub_levels) -> None:
    from gateway.protocol.keys import read_private_key

    township, county = hub_levels(("township", "county")).hubs
    key = read_private_key(township.dir / "keys" / "upstream.key")
    for department, status in (("dept009", 403), ("", 403), ("dept002", 200)):
        r = county.post("/api/v1/attachments", PDF, key=key, key_id="township-relay",
                        headers={"Attachment-Department": department})
        assert r.status_code == status, (department, r.text)
    assert _files(county) == [(hashlib.sha256(PDF).hexdigest(), "dept002")]


def test_files_named_finds_every_reference_once_and_skips_bodies_without_any() -> None:
    a = {"sha256": "a" * 64, "size": 1, "name": "甲.pdf"}
    recs = [_agreement(1, a), _agreement(2, a), record("capacity", sample("capacity", 1, plan_attachment={
        "sha256": "b" * 64, "size": 2, "name": None})), record("material", sample("material", 1))]
    body = canonical_json(make_batch("dept001", "hub:x", recs))
    assert list(files_named(body)) == [("a" * 64, "甲.pdf"), ("b" * 64, None)]
    assert list(files_named(canonical_json(make_batch("dept001", "hub:x", recs[3:])))) == []


@pytest.mark.slow
def test_kill_9_of_the_township_mid_upload_leaves_each_file_once_above_and_no_record_lost(hub_levels) -> None:
    proxies: list[StallingProxy] = []

    def through(name: str, url: str) -> str:  # the township reaches the county through a proxy that stalls
        if name != "township":
            return url
        proxies.append(StallingProxy(url).start())
        return proxies[-1].url

    try:
        township, county, city = hub_levels(process=True, through=through).hubs
        proxy = proxies[0]
        # Large enough that, stalled, most of it is still in the township process when it dies.
        big = b"%PDF-1.7\n" + random.Random(14).randbytes(12_000_000)
        refs = [_upload(township, big, "协议大.pdf"), _upload(township, PDF2, "协议二.pdf")]
        recs = [record("material", sample("material", i)) for i in range(1, 31)]
        recs += [_agreement(1, refs[0]), _agreement(2, refs[1])]
        r = township.post("/api/v1/batches", batch_body(recs))
        assert r.status_code == 200 and {x["status"] for x in r.json()["results"]} == {"accepted"}, r.text

        assert proxy.stalled.wait(30), "the township never started the upload"
        with township.engine.connect() as c:
            assert c.execute(select(tables.forward_batches.c.state)).scalars().all() == ["sent"]
        township.kill()
        proxy.release.set()
        assert proxy.cut.wait(10), proxy.stats  # the county saw the upload end half way
        assert _files(county) == [] and stored(county) == {}

        township.start()
        want = hub_state(township)
        assert len(want) == 32
        for h in (county, city):
            arrive(h, want)
            assert compare(h, want) == {"lost": 0, "stale": 0, "duplicated": 0, "extra": 0}, h.hub_key_id
            # Each file once, by its SHA-256, as the department's; nothing else (no half file) under the store.
            assert _files(h) == sorted((ref["sha256"], "dept001") for ref in refs)
            on_disk = sorted(p.name for p in (h.dir / "attachments").rglob("*") if p.is_file())
            assert on_disk == sorted(ref["sha256"] for ref in refs), on_disk
            assert hashlib.sha256(read_attachment(h.dir / "attachments", refs[0]["sha256"])).hexdigest() \
                == hashlib.sha256(big).hexdigest()
            at = stored(h)
            for n, ref in ((1, refs[0]), (2, refs[1])):
                assert at[("agreement", f"XY-{n}")]["data"]["attachment"]["sha256"] == ref["sha256"]
        for h in (township, county):
            wait_for(lambda h=h: _upward_states(h) == {"delivered"})
        with county.engine.connect() as c:  # no record sent up twice under two batch ids
            assert set(c.execute(select(tables.receipts.c.status)).scalars()) == {"accepted"}
        assert proxy.stats["cut"] == 1 and proxy.stats["stalled"] == 1, proxy.stats
    finally:
        for p in proxies:
            p.close()

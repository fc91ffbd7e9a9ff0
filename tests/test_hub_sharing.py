"""Attachments (type by content, size limit, references) and the read API (grants, confidential fields)."""

from __future__ import annotations

import hashlib
import io
import zipfile

import orjson
from sqlalchemy import select

from gateway.hub import registry, tables
from gateway.protocol import verify_receipt
from gateway.protocol.keys import public_key_from_text
from tests.fixtures.hub import LiveHub, batch_body, record, sample

BATCHES = "/api/v1/batches"
ATTACH = "/api/v1/attachments"


def _zip(*names: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n in names:
            z.writestr(n, "<x/>")
    return buf.getvalue()


def test_attachment_types_by_content_and_size_limit(live_hub: LiveHub) -> None:
    files = {
        "pdf": b"%PDF-1.7\n" + b"x" * 100,
        "doc": bytes.fromhex("D0CF11E0A1B11AE1") + b"\0" * 100,
        "wps": bytes.fromhex("D0CF11E0A1B11AE1") + b"\1" * 100,
        "docx": _zip("[Content_Types].xml", "word/document.xml"),
        "ofd": _zip("OFD.xml", "Doc_0/Document.xml"),
    }
    for kind, data in files.items():
        r = live_hub.post(ATTACH, data, headers={"Attachment-Name": "%E5%8D%8F%E8%AE%AE." + kind})  # 协议.<kind>
        assert r.status_code == 200, r.text
        assert r.json() == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "type": kind}
        stored = live_hub.dir / "attachments" / r.json()["sha256"][:2] / r.json()["sha256"]
        assert stored.read_bytes() == data
    for data in (b"MZ\x90\x00 an exe", _zip("evil.txt"), b"%PDF", b""):  # named .pdf, but not one by content
        r = live_hub.post(ATTACH, data, headers={"Attachment-Name": "x.pdf"})
        assert r.status_code == 400 and r.json()["error"] == "attachment_type", data[:10]
    big = b"%PDF-1.7\n" + b"x" * 200_001
    r = live_hub.post(ATTACH, big)
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    # The operators (and granted departments) can fetch a file back.
    sha = hashlib.sha256(files["pdf"]).hexdigest()
    r = live_hub.get(f"{ATTACH}/{sha}")
    assert r.status_code == 200 and r.content == files["pdf"]
    _, key, key_id = live_hub.other  # granted dept001's material and stock
    assert live_hub.get(f"{ATTACH}/{sha}", key=key, key_id=key_id).status_code == 200
    stranger, stranger_id = live_hub.add_department("dept009")
    r = live_hub.get(f"{ATTACH}/{sha}", key=stranger, key_id=stranger_id)
    assert r.status_code == 403 and r.json()["error"] == "read_not_granted"


def test_record_needs_its_attachment_uploaded_first(live_hub: LiveHub) -> None:
    pdf = b"%PDF-1.4\nagreement"
    sha = hashlib.sha256(pdf).hexdigest()
    ref = {"sha256": sha, "size": len(pdf), "name": "协议.pdf"}
    body = batch_body([record("agreement", sample("agreement", 1, attachment=ref))])
    doc = orjson.loads(live_hub.post(BATCHES, body).content)
    assert doc["results"][0]["status"] == "rejected"
    assert doc["results"][0]["reasons"][0]["rule"] == "attachment_exists"
    assert live_hub.post(ATTACH, pdf).status_code == 200
    r = live_hub.post(BATCHES, batch_body([record("agreement", sample("agreement", 1, attachment=ref))]))
    doc = verify_receipt(r.content, r.headers["Receipt-Signature"], public_key_from_text(live_hub.hub_public_key))
    assert doc["results"][0]["status"] == "accepted"


def _load(hub: LiveHub, n: int = 5) -> None:
    recs = [record("depot", sample("depot"))]
    for i in range(1, n + 1):
        recs += [record("material", sample("material", i)), record("stock", sample("stock", i))]
    assert hub.post(BATCHES, batch_body(recs)).status_code == 200


def test_read_by_grant_withholds_confidential_fields(live_hub: LiveHub) -> None:
    _load(live_hub)
    code, key, key_id = live_hub.other  # granted material and stock of dept001, no confidential
    r = live_hub.get("/api/v1/records?type=stock&department=dept001&limit=3", key=key, key_id=key_id)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [x["key"] for x in page["records"]] == ["WZ-0001|KU-01|B1", "WZ-0002|KU-01|B2", "WZ-0003|KU-01|B3"]
    assert page["withheld"] == ["responsible_phone"]
    assert all("responsible_phone" not in x["data"] for x in page["records"])
    r2 = live_hub.get(f"/api/v1/records?type=stock&department=dept001&after={page['next']}&limit=3", key=key, key_id=key_id)
    assert [x["key"] for x in r2.json()["records"]] == ["WZ-0004|KU-01|B4", "WZ-0005|KU-01|B5"]
    assert r2.json()["next"] is None
    # Not granted: depot.
    r = live_hub.get("/api/v1/records?type=depot&department=dept001", key=key, key_id=key_id)
    assert r.status_code == 403 and r.json()["error"] == "read_not_granted"
    # The owner reads its own records whole.
    own = live_hub.get("/api/v1/records?type=stock").json()
    assert own["withheld"] == [] and own["records"][0]["data"]["responsible_phone"] == "13800138001"
    # A grant with confidential data lets the phone through.
    with live_hub.engine.begin() as c:
        registry.set_grant(c, code, "dept001", ["stock"], confidential=True)
    r = live_hub.get("/api/v1/records?type=stock&department=dept001&limit=1", key=key, key_id=key_id)
    assert r.json()["records"][0]["data"]["responsible_phone"] == "13800138001"
    # Every read, allowed or not, is in the receipt log.
    with live_hub.engine.connect() as c:
        kinds = [(e.kind, e.status) for e in c.execute(select(tables.receipt_log.c.kind, tables.receipt_log.c.status)
                                                       .where(tables.receipt_log.c.kind.in_(["read", "refused"]))
                                                       .order_by(tables.receipt_log.c.seq))]
    assert kinds == [("read", "ok"), ("read", "ok"), ("refused", "read_not_granted"), ("read", "ok"), ("read", "ok")]


def test_read_query_is_signed(live_hub: LiveHub) -> None:
    _load(live_hub, 1)
    code, key, key_id = live_hub.other
    from gateway.protocol.signing import sign_request

    h = sign_request("GET", "/api/v1/records?type=stock&department=dept001", b"", key, key_id)
    r = live_hub.session.get(live_hub.url + "/api/v1/records?type=depot&department=dept001", headers=h)
    assert r.status_code == 401 and r.json()["error"] == "bad_signature"
    r = live_hub.get("/api/v1/records?type=nothing", key=key, key_id=key_id)
    assert r.status_code == 400 and r.json()["error"] == "malformed_request"

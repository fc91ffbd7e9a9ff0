"""Request signatures, receipts and version negotiation, without a hub."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.protocol import (
    BatchMalformed,
    KeyRevoked,
    ReceiptInvalid,
    SignatureRefused,
    UnsupportedProtocol,
    canonical_json,
    make_batch,
    negotiate,
    parse_batch,
    sign_receipt,
    sign_request,
    verify_receipt,
    verify_request,
)

KEY = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
NOW = 1_800_000_000
BODY = canonical_json(make_batch("yjj", "s", []))


def lookup(key_id: str):
    if key_id == "revoked-1":
        raise KeyRevoked(key_id)
    return KEY.public_key() if key_id in ("k1", "revoked-1") else None


def signed(path: str = "/api/v1/batches", body: bytes = BODY, key=KEY, key_id: str = "k1", created: int = NOW):
    return sign_request("POST", path, body, key, key_id, created=created)


def test_valid_request_verifies_and_returns_key_and_nonce() -> None:
    h = signed()
    v = verify_request("POST", "/api/v1/batches", h, BODY, lookup, now=NOW + 10)
    assert v.key_id == "k1" and len(v.nonce) == 32


@pytest.mark.parametrize(
    "tamper, reason",
    [
        (lambda h: ("POST", "/api/v1/batches", h, BODY + b" "), "digest_mismatch"),
        (lambda h: ("POST", "/api/v1/attachments", h, BODY), "bad_signature"),
        (lambda h: ("PUT", "/api/v1/batches", h, BODY), "bad_signature"),
        (lambda h: ("POST", "/api/v1/batches", {**h, "Signature-Input": h["Signature-Input"].replace("k1", "k9")}, BODY), "unknown_key"),
        (lambda h: ("POST", "/api/v1/batches", {**h, "Signature-Input": h["Signature-Input"].replace(str(NOW), str(NOW + 1))}, BODY), "bad_signature"),
        (lambda h: ("POST", "/api/v1/batches", {k: v for k, v in h.items() if k != "Signature"}, BODY), "missing_signature"),
        (lambda h: ("POST", "/api/v1/batches", {k: v for k, v in h.items() if k != "Content-Digest"}, BODY), "missing_digest"),
    ],
)
def test_tampered_requests_are_refused(tamper, reason) -> None:
    with pytest.raises(SignatureRefused) as e:
        verify_request(*tamper(signed()), lookup, now=NOW)
    assert e.value.reason == reason and e.value.status == 401


def test_signature_by_another_key_is_refused() -> None:
    with pytest.raises(SignatureRefused) as e:
        verify_request("POST", "/api/v1/batches", signed(key=OTHER), BODY, lookup, now=NOW)
    assert e.value.reason == "bad_signature"


@pytest.mark.parametrize("created", [NOW - 301, NOW + 301])
def test_created_outside_window_is_refused(created: int) -> None:
    with pytest.raises(SignatureRefused) as e:
        verify_request("POST", "/api/v1/batches", signed(created=created), BODY, lookup, now=NOW)
    assert e.value.reason == "clock_window"


def test_revoked_key_is_403() -> None:
    with pytest.raises(SignatureRefused) as e:
        verify_request("POST", "/api/v1/batches", signed(key_id="revoked-1"), BODY, lookup, now=NOW)
    assert (e.value.reason, e.value.status) == ("key_revoked", 403)


def test_query_is_covered_by_the_signature() -> None:
    h = sign_request("GET", "/api/v1/records?type=stock&department=a", b"", KEY, "k1", created=NOW)
    assert '"@query"' in h["Signature-Input"]
    verify_request("GET", "/api/v1/records?type=stock&department=a", h, b"", lookup, now=NOW)
    with pytest.raises(SignatureRefused):
        verify_request("GET", "/api/v1/records?type=stock&department=b", h, b"", lookup, now=NOW)
    with pytest.raises(SignatureRefused):  # dropping the query is not allowed either
        verify_request("GET", "/api/v1/records", h, b"", lookup, now=NOW)


def test_receipt_round_trip_and_tamper() -> None:
    doc = {"protocol": "1", "batch_id": "b", "department": "d", "hub_time": "t", "log_seq": 1, "log_head": "h", "results": []}
    body, sig = sign_receipt(doc, KEY, "hub-1")
    assert verify_receipt(body, sig, KEY.public_key())["hub_key_id"] == "hub-1"
    assert verify_receipt(body, f":{sig}:", KEY.public_key())["log_seq"] == 1
    with pytest.raises(ReceiptInvalid):
        verify_receipt(body.replace(b'"log_seq":1', b'"log_seq":2'), sig, KEY.public_key())
    with pytest.raises(ReceiptInvalid):
        verify_receipt(body, sig, OTHER.public_key())


def test_version_negotiation() -> None:
    assert negotiate(None) == "1" and negotiate("1") == "1" and negotiate("1.0") == "1"
    # 1.1 asks for compact receipts; a later minor gets the highest this end speaks.
    assert negotiate("1.1") == "1.1" and negotiate("1.3") == "1.1"
    with pytest.raises(UnsupportedProtocol) as e:
        negotiate("2")
    assert e.value.supported == ("1", "1.1")
    with pytest.raises(UnsupportedProtocol):
        parse_batch(canonical_json({**make_batch("d", "s", []), "protocol": "2.0"}))


def test_malformed_batch_lists_every_problem() -> None:
    with pytest.raises(BatchMalformed) as e:
        parse_batch(b'{"protocol":"1","batch_id":"nope","records":{}}')
    text = str(e.value)
    for part in ("batch_id", "department", "source", "created", "records"):
        assert part in text

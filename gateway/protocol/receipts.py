"""Signed receipts: the hub's answer to a batch, and the gateway's evidence of it.

The receipt document travels as the HTTP response body in canonical JSON; the
hub's signature (its key's suite, gateway/protocol/suites.py) over exactly those bytes travels in the
`Receipt-Signature` header as an RFC 8941 byte sequence (`:<base64>:`).
A gateway stores body and signature as received: the pair is self-contained
evidence that can be checked with the hub's public key alone.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from gateway.protocol.canonical import canonical_json
from gateway.protocol.strictjson import DuplicateMember, loads_strict
from gateway.protocol.suites import PrivateKey, PublicKey, UnknownSuite, suite_of

RECEIPT_HEADER = "Receipt-Signature"
STATUSES = ("accepted", "rejected", "duplicate", "stale")
RECEIPT_FIELDS = ("protocol", "batch_id", "department", "hub_time", "hub_key_id", "log_seq", "log_head", "results")
RESULT_FIELDS = ("key", "type", "seq", "version", "status", "hub_seq", "reasons")
REASON_FIELDS = ("field", "label", "value", "rule", "message")


class ReceiptInvalid(Exception):
    """A receipt whose signature does not verify or whose document is malformed."""


def sign_receipt(doc: dict[str, Any], hub_key: PrivateKey, hub_key_id: str) -> tuple[bytes, str]:
    """Canonical body bytes of `doc` (with hub_key_id set) and the base64 signature over them."""
    doc = dict(doc)
    doc["hub_key_id"] = hub_key_id
    body = canonical_json(doc)
    return body, base64.b64encode(suite_of(hub_key).sign(hub_key, body)).decode("ascii")


def head_message(log_seq: int, log_head: str) -> bytes:
    """What the hub signs for its receipt-log head (its `log_head` checkpoint, `GET /api/v1/log/head`)."""
    return canonical_json({"log_head": log_head, "log_seq": log_seq})


def verify_head(log_seq: int, log_head: str, signature_b64: str, hub_public_key: PublicKey) -> bool:
    try:
        sig = base64.b64decode(signature_b64, validate=True)
        return bool(suite_of(hub_public_key).verify(hub_public_key, sig, head_message(log_seq, log_head)))
    except (binascii.Error, UnknownSuite, ValueError, TypeError):
        return False


def header_value(signature_b64: str) -> str:
    return f":{signature_b64}:"


def _strip(signature: str) -> str:
    s = signature.strip()
    if s.startswith("sig1="):
        s = s[5:]
    return s.strip(":")


def verify_receipt(body: bytes, signature_b64: str, hub_public_key: PublicKey) -> dict[str, Any]:
    """Verify the hub's signature over `body` and return the receipt document.

    `signature_b64` may be given bare or as the header value `:<base64>:`.
    Raises ReceiptInvalid on a bad signature or a document missing receipt fields.
    """
    try:
        sig = base64.b64decode(_strip(signature_b64), validate=True)
        ok = suite_of(hub_public_key).verify(hub_public_key, sig, body)
    except (binascii.Error, UnknownSuite, ValueError):
        ok = False
    if not ok:
        raise ReceiptInvalid("回执签名验证失败 / receipt signature does not verify")
    try:
        doc = loads_strict(body)
    except orjson.JSONDecodeError as e:
        raise ReceiptInvalid(f"回执不是 JSON / receipt is not JSON: {e}") from None
    except DuplicateMember as e:  # signed, yet with two meanings: not evidence of either
        raise ReceiptInvalid(f"回执有重复的成员名 / receipt repeats a member name: {e}") from None
    if not isinstance(doc, dict):
        raise ReceiptInvalid("回执不是 JSON 对象 / receipt is not a JSON object")
    missing = [f for f in RECEIPT_FIELDS if f not in doc]
    if missing:
        raise ReceiptInvalid(f"回执缺少字段 / receipt lacks {', '.join(missing)}")
    return doc

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
from gateway.protocol.merkle import Digest, leaf_data, merkle_root, root_of_leaves
from gateway.protocol.strictjson import DuplicateMember, loads_strict
from gateway.protocol.suites import PrivateKey, PublicKey, UnknownSuite, suite_of

RECEIPT_HEADER = "Receipt-Signature"
STATUSES = ("accepted", "rejected", "duplicate", "stale")
RECEIPT_FIELDS = ("protocol", "batch_id", "department", "hub_time", "hub_key_id", "log_seq", "log_head", "results")
RESULT_FIELDS = ("key", "type", "seq", "version", "status", "hub_seq", "reasons")
REASON_FIELDS = ("field", "label", "value", "rule", "message")


class ReceiptInvalid(Exception):
    """A receipt whose signature does not verify or whose document is malformed."""


# --- compact receipts (protocol 1.1) -------------------------------------------------------------------
# `accepted: {count, merkle_root, hub_seqs}` stands for the accepted records, in batch order; `results`
# lists only the others, each with its `index` in the batch (a key may occur twice in one batch).
RecordId = tuple[str, str, str, int, str]  # (type, department, key, seq, version) of a batch's record


def is_compact(doc: dict[str, Any]) -> bool:
    return "accepted" in doc


def compact_parts(results: list[dict[str, Any]], department: str, digest: Digest) -> tuple[dict[str, Any], list]:
    """(accepted, listed) of a compact receipt from the full per-record `results` (in batch order)."""
    leaves: list[bytes] = []
    hub_seqs: list[int] = []
    listed: list[dict[str, Any]] = []
    for i, r in enumerate(results):
        if r["status"] == "accepted":
            leaves.append(leaf_data(r["type"], department, r["key"], r["seq"], r["version"]))
            hub_seqs.append(r["hub_seq"])
        else:
            listed.append({**r, "index": i})
    accepted = {"count": len(leaves), "merkle_root": merkle_root(digest, leaves).hex(), "hub_seqs": hub_seqs}
    return accepted, listed


def expand_compact(doc: dict[str, Any], records: list[RecordId], digest: Digest) -> list[dict[str, Any]]:
    """The full per-record results of a compact receipt about the batch of `records` (in batch order).

    The records not listed are the accepted ones: their root must be the signed `merkle_root`, their count
    `count`, and `hub_seqs` gives their hub_seq in order. Raises ReceiptInvalid naming the first problem."""
    acc, listed = doc.get("accepted"), doc.get("results")
    if not isinstance(acc, dict) or not isinstance(listed, list):
        raise ReceiptInvalid("紧凑回执格式错误 / compact receipt lacks accepted or results")
    count, root, seqs = acc.get("count"), acc.get("merkle_root"), acc.get("hub_seqs")
    if type(count) is not int or not isinstance(root, str) or not isinstance(seqs, list) or len(seqs) != count \
            or not all(type(s) is int for s in seqs):
        raise ReceiptInvalid("紧凑回执的 accepted 格式错误 / compact receipt's accepted is malformed")
    out: list[dict[str, Any] | None] = [None] * len(records)
    for r in listed:
        i = r.get("index") if isinstance(r, dict) else None
        if type(i) is not int or not 0 <= i < len(records) or out[i] is not None:
            raise ReceiptInvalid(f"紧凑回执列出的记录序号无效 / compact receipt lists a bad index {i!r}")
        t, _, k, seq, version = records[i]
        if r.get("status") not in ("duplicate", "stale", "rejected") or (r.get("type"), r.get("key"), r.get("seq"),
                                                                         r.get("version")) != (t, k, seq, version):
            raise ReceiptInvalid(f"紧凑回执第 {i} 条与批次不符 / compact receipt's record {i} is not the batch's")
        out[i] = {f: r.get(f) for f in RESULT_FIELDS}
    accepted_at = [i for i, r in enumerate(out) if r is None]
    if len(accepted_at) != count:
        raise ReceiptInvalid(f"紧凑回执的接收条数 {count} 与批次不符（应为 {len(accepted_at)}）/ "
                             f"compact receipt counts {count} accepted, the batch leaves {len(accepted_at)}")
    if merkle_root(digest, [leaf_data(*records[i]) for i in accepted_at]).hex() != root:
        raise ReceiptInvalid("紧凑回执的默克尔根与批次不符 / compact receipt's merkle_root does not match the batch")
    for i, hub_seq in zip(accepted_at, seqs, strict=True):
        t, _, k, seq, version = records[i]
        out[i] = {"key": k, "type": t, "seq": seq, "version": version, "status": "accepted", "hub_seq": hub_seq,
                  "reasons": []}
    return out  # type: ignore[return-value]


def accepts_all(doc: dict[str, Any], leaves: bytes, digest: Digest) -> bool:
    """Whether compact receipt `doc` lists no record and accepts exactly the records whose leaf hashes are
    `leaves` (concatenated, batch order; `merkle.leaf_hash`): the common answer, checked without the records
    and without a result per record. False is no verdict: `expand_compact` then checks it from the records."""
    acc, listed = doc.get("accepted"), doc.get("results")
    if listed != [] or not isinstance(acc, dict):
        return False
    size = len(digest(b""))
    count, root, seqs = acc.get("count"), acc.get("merkle_root"), acc.get("hub_seqs")
    if type(count) is not int or count * size != len(leaves) or not isinstance(root, str) \
            or not isinstance(seqs, list) or len(seqs) != count or not all(type(s) is int for s in seqs):
        return False
    return root_of_leaves(digest, [leaves[i:i + size] for i in range(0, len(leaves), size)]).hex() == root


def expanded(doc: dict[str, Any], records: list[RecordId], digest: Digest) -> dict[str, Any]:
    """`doc` with full per-record results: a compact receipt checked and expanded, a full one as it is."""
    if not is_compact(doc):
        return doc
    return {**doc, "results": expand_compact(doc, records, digest)}


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

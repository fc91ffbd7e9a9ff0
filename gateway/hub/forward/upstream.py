"""The upper hub's batch endpoint, over the standard library's `http.client` (one kept-alive connection).

The hub may not import `requests` nor the gateway's push client (an import contract in setup.cfg), and a
forwarder needs one signed POST and its answer; so this is the whole client. Answers, as the gateway
reads them (docs/push.md, "Retries"):

| the upper hub answers | here |
|---|---|
| 200 with a `Receipt-Signature` that verifies with `[upstream] hub_key`, about this batch and department | `Delivered` |
| connection refused/reset, timeout, 408, 425, 429, 5xx; 401 `replay`, `clock_window`; a 200 whose receipt does not verify | `Retry` (429/503 with `Retry-After`: at least that long) |
| any other 4xx (403 `department_mismatch`: the relay's area lacks the department; 401 unknown key ...) | `Refused`: the operator must act |
"""

from __future__ import annotations

import http.client
import json
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson

from gateway.protocol.batch import COMPACT_VERSION, VERSION_HEADER
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.receipts import RECEIPT_HEADER, ReceiptInvalid, RecordId, accepts_all, expanded, verify_receipt
from gateway.protocol.signing import sign_request
from gateway.protocol.suites import suite_of

BATCHES_PATH = "/api/v1/batches"
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
RETRY_ERRORS = frozenset({"replay", "clock_window", "store_unavailable", "overloaded"})


@dataclass(frozen=True)
class Delivered:
    receipt: bytes
    signature: str
    doc: dict[str, Any]


@dataclass(frozen=True)
class Retry:
    error: str
    after: float | None = None  # Retry-After, seconds


@dataclass(frozen=True)
class Refused:
    error: str
    status: int


Answer = Delivered | Retry | Refused


class Upstream:
    """Signed batch POSTs to the upper hub as `key_id`; receipts verified with its public key line."""

    def __init__(self, url: str, key: Any, key_id: str, hub_key: str, timeout: float = 30.0) -> None:
        u = urlsplit(url)
        self.https = u.scheme == "https"
        self.host, self.port = u.hostname or "127.0.0.1", u.port or (443 if self.https else 80)
        self.path = (u.path.rstrip("/") or "") + BATCHES_PATH
        self.key, self.key_id, self.timeout = key, key_id, timeout
        self.hub_public = public_key_from_text(hub_key)
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self.https:
                self._conn = http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                                         context=ssl.create_default_context())
            else:
                self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def post_batch(self, forward_id: str, department: str, body: bytes, leaves: bytes | None = None) -> Answer:
        """Send one upward batch; `leaves`: its records' leaf hashes, which check a receipt accepting them all
        without parsing `body` (`receipts.accepts_all`; otherwise, and without them, from the body)."""
        # Protocol 1.1: the upper hub answers a compact receipt (accepted records as a Merkle root).
        headers = {VERSION_HEADER: COMPACT_VERSION, "Content-Type": "application/json",
                   **sign_request("POST", self.path, body, self.key, self.key_id, content_type="application/json",
                                  protocol_version=COMPACT_VERSION)}
        try:
            conn = self._connection()
            conn.request("POST", self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            self.close()  # a fresh connection next time
            return Retry(f"upper hub unreachable: {e.__class__.__name__}: {e}")
        if resp.getheader("Connection", "").lower() == "close":
            self.close()
        if resp.status == 200:
            return self._receipt(forward_id, department, data, resp.getheader(RECEIPT_HEADER), body, leaves)
        code, message = _error(data)
        text = f"HTTP {resp.status} {code}: {message}"
        if resp.status in RETRY_STATUSES or code in RETRY_ERRORS:
            return Retry(text, _retry_after(resp.getheader("Retry-After")))
        return Refused(text, resp.status)

    def get_json(self, target: str) -> tuple[int, Any]:
        """A signed GET of `target` (a path below the upper hub's URL, with its query) on a connection of its
        own; (status, parsed JSON body), or (0, error text) when the upper hub cannot be reached."""
        path = (self.path.removesuffix(BATCHES_PATH)) + target
        headers = {VERSION_HEADER: "1", **sign_request("GET", path, b"", self.key, self.key_id)}
        conn = (http.client.HTTPSConnection(self.host, self.port, timeout=self.timeout,
                                            context=ssl.create_default_context())
                if self.https else http.client.HTTPConnection(self.host, self.port, timeout=self.timeout))
        try:
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except (OSError, http.client.HTTPException) as e:
            return 0, f"upper hub unreachable: {e.__class__.__name__}: {e}"
        finally:
            conn.close()
        try:
            return resp.status, json.loads(data)
        except ValueError:
            return resp.status, data[:300].decode("utf-8", "replace")

    def _receipt(self, forward_id: str, department: str, data: bytes, signature: str | None, body: bytes,
                 leaves: bytes | None = None) -> Answer:
        if not signature:
            return Retry("answer 200 without Receipt-Signature")
        try:
            doc = verify_receipt(data, signature, self.hub_public)
            digest = suite_of(self.hub_public).digest
            # Compact: its root recomputed from the upward batch less what it lists (the stored leaves when
            # it lists none; the doc then stays compact: settling reads only its key id and log entry).
            if "accepted" in doc and not (leaves is not None and accepts_all(doc, leaves, digest)):
                doc = expanded(doc, batch_records(body), digest)
        except ReceiptInvalid as e:
            return Retry(f"receipt does not verify with [upstream] hub_key: {e}")
        if doc.get("batch_id") != forward_id or doc.get("department") != department:
            return Retry(f"receipt is about batch {doc.get('batch_id')} of {doc.get('department')}, not this one")
        return Delivered(data, signature.strip().strip(":"), doc)


def batch_records(body: bytes) -> list[RecordId]:
    """(type, department, key, seq, version) of each record of a batch body, in order: a compact receipt's leaves."""
    return [(r["type"], r["department"], r["key"], r["seq"], r["version"]) for r in orjson.loads(body)["records"]]


def _error(data: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(data)
        return str(doc.get("error", "")), str(doc.get("message", ""))
    except (ValueError, AttributeError):
        return "", data[:200].decode("utf-8", "replace")


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None

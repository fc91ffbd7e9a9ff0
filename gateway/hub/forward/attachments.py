"""Attachments travel upward ahead of the upward batch whose records name them.

The upper hub accepts a record naming a file only when it holds that file (`attachment_exists`), so
before every attempt to send an upward batch the forwarder uploads each file its records name
(`POST /api/v1/attachments`, signed with the relay key, with the department the file belongs to in
`Attachment-Department`, which must be of the relay's area). Delivery rides on the upward batch's own
durability: the batch stays `sent` in `forward_batches` until its receipt, and every attempt uploads
its files first, so a crash or an outage between a file and its batch only repeats the upload. Files
are content-addressed (their SHA-256), so the upper hub stores each once however often it arrives:
exactly once, as the records are. A file the upper hub refuses (4xx) parks the batch as `refused` with
the reason; a file damaged or missing here parks it too (the operator restores the file, then
`forward --retry-refused`).
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson

from gateway.at_rest.envelope import StoredDataInvalid
from gateway.at_rest.keyring import OFF, KeyRing
from gateway.hub.attachments import DEPARTMENT_HEADER, read_attachment
from gateway.hub.decide import FILE_FIELDS
from gateway.hub.forward.outbox import ForwardBatch
from gateway.hub.forward.upstream import BATCHES_PATH, RETRY_ERRORS, RETRY_STATUSES, Refused, Retry, Upstream, _error
from gateway.protocol.batch import VERSION_HEADER
from gateway.protocol.signing import sign_request

ATTACHMENTS_PATH = "/api/v1/attachments"


def files_named(body: bytes) -> Iterator[tuple[str, str | None]]:
    """(sha256, name) of every file the records of an upward batch body name, each once, in order."""
    if b'"sha256"' not in body:  # no file reference can hide elsewhere: skip parsing the (large) body
        return
    seen: set[str] = set()
    for rec in orjson.loads(body).get("records") or ():
        data = rec.get("data") if rec.get("op") == "upsert" else None
        for fld in FILE_FIELDS.get(rec.get("type"), ()):
            ref = data.get(fld) if isinstance(data, dict) else None
            sha = ref.get("sha256") if isinstance(ref, dict) else None
            if isinstance(sha, str) and sha not in seen:
                seen.add(sha)
                yield sha, ref.get("name")


@dataclass(frozen=True)
class FileSender:
    """This hub's attachment store, read to upload the files an upward batch needs above."""

    base: Path
    ring: KeyRing = OFF

    def before(self, client: Upstream, fb: ForwardBatch) -> Retry | Refused | None:
        """Upload every file `fb`'s records name; None when the upper hub holds them all (send the batch)."""
        for sha, name in files_named(fb.body):
            try:
                data = read_attachment(self.base, sha, self.ring)
            except (OSError, StoredDataInvalid) as e:
                return Refused(f"attachment {sha} cannot be read at this hub: {e}", 0)
            answer = post_attachment(client, data, name, fb.department)
            if answer is not None:
                return answer
        return None


def post_attachment(client: Upstream, data: bytes, name: str | None, department: str) -> Retry | Refused | None:
    """One signed upload on a connection of its own; None when the upper hub stored (or held) the file."""
    path = client.path.removesuffix(BATCHES_PATH) + ATTACHMENTS_PATH
    headers = {VERSION_HEADER: "1", "Content-Type": "application/octet-stream", DEPARTMENT_HEADER: department,
               **({"Attachment-Name": quote(name)} if name else {}),
               **sign_request("POST", path, data, client.key, client.key_id, content_type="application/octet-stream")}
    conn: Any = (http.client.HTTPSConnection(client.host, client.port, timeout=client.timeout,
                                             context=ssl.create_default_context())
                 if client.https else http.client.HTTPConnection(client.host, client.port, timeout=client.timeout))
    try:
        conn.request("POST", path, body=data, headers=headers)
        resp = conn.getresponse()
        answer = resp.read()
    except (OSError, http.client.HTTPException) as e:
        return Retry(f"upper hub unreachable (attachment): {e.__class__.__name__}: {e}")
    finally:
        conn.close()
    if resp.status == 200:
        return None
    code, message = _error(answer)
    text = f"attachment upload: HTTP {resp.status} {code}: {message}"
    if resp.status in RETRY_STATUSES or code in RETRY_ERRORS:
        return Retry(text)
    return Refused(text, resp.status)

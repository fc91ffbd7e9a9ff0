"""The hub's HTTP API (docs/protocol.md): batches, attachments, shared records."""

from __future__ import annotations

import io
import logging
import re
import time
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

from flask import Blueprint, Response, current_app, request, send_file
from sqlalchemy import select
from sqlalchemy.engine import Connection

from gateway.at_rest.envelope import StoredDataInvalid
from gateway.hub import registry, tables
from gateway.hub.app import Hub, error, json_response
from gateway.hub.attachments import (
    DEPARTMENT_HEADER,
    AttachmentRefused,
    attachment_info,
    read_attachment,
    store_attachment,
)
from gateway.hub.db import serialized, utcnow
from gateway.hub.forward.chain import check_chain
from gateway.hub.ingest import SMALL_BATCH, Nonce, check_records, claim_nonce, store_batch, stored_receipt
from gateway.hub.receipt_log import append
from gateway.hub.sharing import DEFAULT_LIMIT, MAX_LIMIT, read_page
from gateway.protocol.batch import (
    SUPPORTED_VERSIONS,
    VERSION_HEADER,
    BatchMalformed,
    UnsupportedProtocol,
    negotiate,
    parse_batch,
    wants_compact,
)
from gateway.protocol.receipts import RECEIPT_HEADER, header_value
from gateway.protocol.signing import SignatureRefused, verify_request
from gateway.protocol.strictjson import DuplicateMember
from gateway.standard.schema import RECORD_TYPES

LOG = logging.getLogger(__name__)

api = Blueprint("hub_api", __name__, url_prefix="/api/v1")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")


class Refused(Exception):
    """A request refused before any state changed; logged, then answered."""

    def __init__(self, status: int, code: str, message: str, **extra: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


@dataclass(frozen=True)
class Caller:
    key_id: str
    department: str
    digest: str
    snapshot: registry.Snapshot  # the registry this request was authenticated against
    area: tuple[str, ...] | None = None  # a relay (a lower hub): the departments it may forward; department ""


def hub() -> Hub:
    return current_app.extensions["hub"]


def refused(status: int, code: str, message: str, *, key_id: str | None = None, department: str | None = None,
            body: bytes = b"", **extra: object) -> Refused:
    """Write the refusal to the receipt log and return the exception that answers it."""
    hub().log_refusal(status, code, message, key_id=key_id, department=department, body=body, extra=extra or None)
    return Refused(status, code, message, **extra)


@api.errorhandler(Refused)
def _refused(e: Refused) -> Response:
    return error(e.status, e.code, e.message, **e.extra)


def _target() -> str:
    """The request target as sent: RFC 9421's @path is not percent-decoded, so Flask's `request.path` will not do."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI")
    if raw:
        if "://" in raw:  # absolute-form target (through a proxy): keep the path and query
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        return raw.partition("#")[0]
    qs = request.query_string.decode("latin-1")
    return quote(request.path, safe="/:@!$&'()*+,;=-._~") + (f"?{qs}" if qs else "")


def _negotiate(body: bytes) -> None:
    try:
        negotiate(request.headers.get(VERSION_HEADER))
    except UnsupportedProtocol as e:
        raise refused(400, "unsupported_protocol", str(e), body=body, supported=list(SUPPORTED_VERSIONS)) from None


class _Refusal(Exception):
    """A refusal decided while the request's connection is held: logged (`refused`) once it is back in the pool,
    since the log append takes the hub's write lock."""

    def __init__(self, status: int, code: str, message: str, key_id: str | None, department: str | None,
                 **extra: object) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.key_id, self.department, self.extra = (
            status, code, message, key_id, department, extra)

    def log(self, body: bytes) -> Refused:
        return refused(self.status, self.code, self.message, key_id=self.key_id, department=self.department,
                       body=body, **self.extra)


def _verify(snap: registry.Snapshot, body: bytes) -> tuple[Caller, Nonce]:
    """Signature and key of the current request against the registry `snap`; refusals raised as _Refusal."""
    h = hub()
    entry = None

    def lookup(key_id: str):  # type: ignore[no-untyped-def]
        nonlocal entry
        entry = snap.keys.get(key_id)
        return snap.key_lookup(key_id)

    try:
        v = verify_request(request.method, _target(), request.headers, body, lookup, now=time.time(),
                           window=h.config.clock_window, suites=h.config.accept_suites)
    except SignatureRefused as e:
        raise _Refusal(e.status, e.reason, e.message, e.key_id, entry.department if entry else None) from None
    assert entry is not None
    return Caller(v.key_id, entry.department, v.digest, snap, entry.area), Nonce(v.key_id, v.nonce, v.created + h.config.clock_window + 1)


def _replay(caller: Caller, nonce: Nonce) -> _Refusal:
    return _Refusal(401, "replay", f"nonce 已使用过（重放）/ nonce {nonce.nonce} was used before (replay)",
                    caller.key_id, caller.department)


def authenticate(body: bytes) -> Caller:
    """Version, signature, key and nonce of the current request; refusals are logged and raised."""
    _negotiate(body)
    with hub().engine.connect() as conn:  # one connection for the registry check and the nonce
        try:
            caller, nonce = _verify(hub().registry.current(conn), body)
            _end_tx(conn)  # end that read before the nonce's write transaction
            if not claim_nonce(conn, nonce):
                raise _replay(caller, nonce)
            return caller
        except _Refusal as r:
            refusal = r
    raise refusal.log(body)


def _end_tx(conn: Connection) -> None:
    """End whatever transaction `conn` has open, SQLAlchemy's or only psycopg's (`registry.read_version`)."""
    conn.rollback()
    conn.connection.driver_connection.rollback()  # type: ignore[union-attr]


def _read_body(limit: int) -> bytes:
    if (request.content_length or 0) > limit:
        raise _too_large(limit)  # without reading it
    body = request.get_data(cache=False)
    if len(body) > limit:  # a chunked body carries no Content-Length
        raise _too_large(limit)
    return body


def _too_large(limit: int) -> Refused:
    """413, written to the receipt log like every refusal; the body is neither kept nor digested."""
    message = f"请求体过大，上限 {limit} 字节 / body larger than {limit} bytes"
    hub().log_refusal(
        413, "too_large", message, body=None, extra={"limit": limit, "content_length": request.content_length}
    )
    return Refused(413, "too_large", message, limit=limit)


@api.get("/hub")
def hub_info() -> Response:
    h = hub()
    return json_response({"protocol": list(SUPPORTED_VERSIONS), "hub_key_id": h.key_id,
                          "hub_public_key": h.public_key_text, "hub_time": utcnow()})


@api.get("/log/head")
def get_log_head() -> Response:
    """The hub's signed receipt-log head, for a department to compare with the latest head its receipts carry.

    Not itself logged: a read of it would move the head it reports, and it shares no department's data.
    """
    h = hub()
    authenticate(b"")
    with h.engine.connect() as conn:
        head = conn.execute(select(tables.log_head).where(tables.log_head.c.id == 1)).mappings().first()
    if head is None:  # verify-log reports this as a broken log
        raise Refused(500, "log_head_missing", "中心回执日志头缺失 / the hub's receipt-log head is missing")
    return json_response(
        {
            "log_seq": int(head["log_seq"]),
            "log_head": head["log_head"],
            "signature": head["signature"],
            "signed_at": head["signed_at"],
            "hub_key_id": h.key_id,
        }
    )


@api.post("/batches")
def post_batch() -> Response:
    h = hub()
    body = _read_body(h.config.max_batch_bytes)
    _negotiate(body)
    # One pooled connection for the whole request: registry check, nonce, idempotency check and the store.
    with h.engine.connect() as conn:
        try:
            # The registry kept in memory is checked against `registry_version` in the batch's own transaction;
            # a request that finds it changed starts over, against the registry read afresh.
            kept = h.registry.kept()
            try:
                return _post_batch(h, conn, body, kept or h.registry.current(conn), confirmed=kept is None)
            except _RegistryChanged:
                _end_tx(conn)
                return _post_batch(h, conn, body, h.registry.current(conn), confirmed=True)
        except _Refusal as r:
            refusal = r
    raise refusal.log(body)


class _RegistryChanged(Exception):
    """The registry changed since the snapshot this request was verified against (nothing of it was written)."""


def _post_batch(h: Hub, conn: Connection, body: bytes, snap: registry.Snapshot, *, confirmed: bool) -> Response:
    def confirm() -> None:
        """Before anything is answered from `snap` alone: it is still the registry, or the request starts over."""
        nonlocal confirmed
        if not confirmed:
            if h.registry.current(conn) is not snap:
                raise _RegistryChanged
            confirmed = True

    try:
        caller, nonce = _verify(snap, body)
    except _Refusal:
        confirm()
        raise

    def refuse(status: int, code: str, message: str, **extra: object) -> _Refusal:
        """A refusal before the batch's transaction: its nonce is recorded first, as for any verified request."""
        confirm()
        _end_tx(conn)
        if not claim_nonce(conn, nonce):
            return _replay(caller, nonce)
        return _Refusal(status, code, message, caller.key_id, caller.department, **extra)

    try:
        batch = parse_batch(body)
    except UnsupportedProtocol as e:
        raise refuse(400, "unsupported_protocol", str(e), supported=list(SUPPORTED_VERSIONS)) from None
    except BatchMalformed as e:
        raise refuse(400, "malformed_batch", "批次格式错误 / malformed batch", problems=e.problems) from None
    except DuplicateMember as e:
        raise refuse(400, "duplicate_member", str(e), member=e.member, path=e.path) from None
    if caller.area is not None:
        # A lower hub forwards one department's records per batch, of a department of its area only.
        if batch.department not in caller.area:
            raise refuse(403, "department_mismatch",
                         f"中继 {caller.key_id} 的辖区不含部门 {batch.department} / relay {caller.key_id} may not forward "
                         f"records of department {batch.department} (its area: {', '.join(caller.area)})",
                         batch_id=batch.batch_id)
        caller = replace(caller, department=batch.department)
    # A record naming another department fails the whole batch; one naming none is rejected alone (envelope).
    foreign = sorted({d for r in batch.records if isinstance(d := r.get("department"), str) and d != caller.department})
    if batch.department != caller.department or foreign:
        who = batch.department if batch.department != caller.department else ", ".join(map(str, foreign))
        raise refuse(403, "department_mismatch",
                     f"部门 {caller.department} 的密钥不能写入部门 {who} 的记录 / key of department {caller.department} "
                     f"cannot write records of department {who}", batch_id=batch.batch_id)
    conflict = "批次号已用于其他内容 / {}"
    if len(batch.records) > SMALL_BATCH:
        # A large batch sent again (a retry after a lost answer) is answered before validating it all again.
        seen = stored_receipt(conn, batch.batch_id, caller.department, caller.digest)
        if seen is not None:
            if seen.conflict:
                raise refuse(409, "batch_id_conflict", conflict.format(seen.conflict), batch_id=batch.batch_id)
            confirm()
            _end_tx(conn)
            if not claim_nonce(conn, nonce):
                raise _replay(caller, nonce)
            return _receipt_response(seen.receipt, seen.signature)
    dept = caller.snapshot.departments.get(caller.department)
    allowed = set(dept.record_types) if dept else set()
    # A non-string type is not a permission question: check_records rejects that record alone.
    not_allowed = sorted({t for r in batch.records if isinstance(t := r.get("type"), str) and t in RECORD_TYPES and t not in allowed})
    candidates = check_records(batch.records, h.context, from_relay=caller.area is not None)
    check_chain(candidates, caller.key_id if caller.area is not None else None)
    if conn.dialect.name != "postgresql" or conn.in_transaction():
        # SQLite: the batch's transaction begins with the write lock (BEGIN IMMEDIATE). PostgreSQL goes on in
        # psycopg's transaction of a registry read made for this request, if any, unless SQLAlchemy began one
        # of its own (a registry reload, the large batch's check above).
        _end_tx(conn)
    # Under the department's lock: the nonce, then a batch id seen before (its receipt, or a conflict),
    # then the record types this department may not write, then the records.
    stored = store_batch(conn, h.key, h.key_id, batch, candidates, key_id=caller.key_id, digest=caller.digest,
                         nonce=nonce, not_allowed=not_allowed, registry_version=None if confirmed else snap.version,
                         forward=h.upward, compact=wants_compact(request.headers.get(VERSION_HEADER)))
    if stored.refused == "registry_changed":
        raise _RegistryChanged
    if stored.refused == "replay":
        raise _replay(caller, nonce)
    if stored.refused == "record_type_not_allowed":
        raise _Refusal(403, "record_type_not_allowed",
                       f"部门 {caller.department} 无权报送 {', '.join(not_allowed)} / department may not write {', '.join(not_allowed)}",
                       caller.key_id, caller.department, batch_id=batch.batch_id)
    if stored.conflict:
        raise _Refusal(409, "batch_id_conflict", conflict.format(stored.conflict), caller.key_id, caller.department,
                       batch_id=batch.batch_id)
    if h.forwarding and not stored.replayed:
        h.wake_forwarder(stored.queued)
    return _receipt_response(stored.receipt, stored.signature)


def _receipt_response(body: bytes, signature: str) -> Response:
    resp = Response(body, status=200, mimetype="application/json")
    resp.headers[RECEIPT_HEADER] = header_value(signature)
    return resp


@api.post("/attachments")
def post_attachment() -> Response:
    h = hub()
    body = _read_body(h.config.attachment_max_bytes)
    caller = authenticate(body)
    name = unquote(request.headers.get("Attachment-Name", "")) or None
    department = caller.department
    if caller.area is not None:  # a lower hub forwarding a file of a department of its area (forward/attachments.py)
        department = request.headers.get(DEPARTMENT_HEADER, "")
        if department not in caller.area:
            raise refused(403, "department_mismatch", f"中继 {caller.key_id} 的辖区不含部门 {department} / relay may not "
                          f"forward files of department {department!r}", key_id=caller.key_id, body=body)
    try:
        stored = store_attachment(h.engine, h.config.attachments_dir, body, department=department, name=name,
                                  max_bytes=h.config.attachment_max_bytes, ring=h.config.at_rest)
    except AttachmentRefused as e:
        raise refused(413 if e.code == "too_large" else 400, e.code, e.message, key_id=caller.key_id,
                      department=department, body=body) from None
    with serialized(h.engine) as (conn, head):
        append(conn, head, h.key, kind="attachment", status="ok", department=department, key_id=caller.key_id,
               request_digest=caller.digest, summary={**stored.as_dict(), "name": name})
    return json_response(stored.as_dict())


@api.get("/attachments/<sha256>")
def get_attachment(sha256: str) -> Response:
    h = hub()
    caller = authenticate(b"")
    info = attachment_info(h.engine, sha256) if _SHA_RE.match(sha256) else None
    if info is None:
        raise refused(404, "not_found", f"无此附件 / no attachment {sha256}", key_id=caller.key_id,
                      department=caller.department)
    owner = info["department"]
    with h.engine.connect() as conn:
        allowed = owner == caller.department or any(g.reader == caller.department and g.owner == owner
                                                    for g in registry.list_grants(conn))
    if not allowed:
        raise refused(403, "read_not_granted",
                      f"部门 {caller.department} 无权读取部门 {owner} 的附件 / department may not read attachments of {owner}",
                      key_id=caller.key_id, department=caller.department)
    try:
        data = read_attachment(h.config.attachments_dir, sha256, h.config.at_rest)
    except StoredDataInvalid as e:
        # Damaged or tampered at the hub, or sealed under a key this hub was not given: never served.
        LOG.error("attachment refused on read: %s", e)
        raise refused(500, "attachment_damaged", f"附件已损坏或被篡改，拒绝提供 / attachment {sha256} "
                      "is damaged or tampered at the hub and is not served", key_id=caller.key_id,
                      department=caller.department) from None
    _log_read(h, caller, {"attachment": sha256})
    return send_file(io.BytesIO(data), mimetype="application/octet-stream",
                     download_name=info["name"] or f"{sha256}.{info['type']}")


def _log_read(h: Hub, caller: Caller, summary: dict) -> None:
    with serialized(h.engine) as (conn, head):
        append(conn, head, h.key, kind="read", status="ok", department=caller.department, key_id=caller.key_id,
               request_digest=caller.digest, summary=summary)


@api.get("/records")
def get_records() -> Response:
    h = hub()
    caller = authenticate(b"")
    args = request.args
    problems = []
    rtype = args.get("type", "")
    if rtype not in RECORD_TYPES:
        problems.append(f"type: 须为 {', '.join(RECORD_TYPES)} 之一 / must be one of {', '.join(RECORD_TYPES)}")
    owner = args.get("department") or caller.department
    try:
        after = int(args.get("after") or 0)
        limit = int(args.get("limit") or DEFAULT_LIMIT)
        if after < 0 or not (1 <= limit <= MAX_LIMIT):
            raise ValueError
    except ValueError:
        problems.append(f"after/limit: 须为非负整数，limit 1-{MAX_LIMIT} / after must be a cursor, limit 1-{MAX_LIMIT}")
        after, limit = 0, DEFAULT_LIMIT
    if problems:
        raise refused(400, "malformed_request", "查询参数错误 / bad query parameters", key_id=caller.key_id,
                      department=caller.department, problems=problems)
    with h.engine.connect() as conn:
        grant = registry.read_grant(conn, caller.department, owner, rtype)
        page = read_page(conn, owner, rtype, after, limit, grant.confidential) if grant else None
    if page is None:
        raise refused(403, "read_not_granted", f"部门 {caller.department} 无权读取部门 {owner} 的 {rtype} / department "
                      f"{caller.department} may not read {rtype} of department {owner}",
                      key_id=caller.key_id, department=caller.department)
    _log_read(h, caller, {"owner": owner, "type": rtype, "after": after, "count": len(page["records"]),
                          "withheld": page["withheld"]})
    return json_response(page)

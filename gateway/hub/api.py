"""The hub's HTTP API (docs/protocol.md): batches, attachments, shared records."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import unquote

from flask import Blueprint, Response, current_app, request, send_file
from sqlalchemy import delete, insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.hub import registry, tables
from gateway.hub.app import Hub, error, json_response
from gateway.hub.attachments import AttachmentRefused, attachment_info, path_for, store_attachment
from gateway.hub.db import serialized, utcnow
from gateway.hub.ingest import check_records, store_batch, stored_receipt
from gateway.hub.receipt_log import append
from gateway.hub.sharing import DEFAULT_LIMIT, MAX_LIMIT, read_page
from gateway.protocol.batch import (
    SUPPORTED_VERSIONS,
    VERSION_HEADER,
    BatchMalformed,
    UnsupportedProtocol,
    negotiate,
    parse_batch,
)
from gateway.protocol.receipts import RECEIPT_HEADER, header_value
from gateway.protocol.signing import SignatureRefused, verify_request
from gateway.standard.schema import RECORD_TYPES

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
    qs = request.query_string.decode("latin-1")
    return request.path + (f"?{qs}" if qs else "")


def authenticate(body: bytes) -> Caller:
    """Version, signature, key and nonce of the current request; refusals are logged and raised."""
    h = hub()
    try:
        negotiate(request.headers.get(VERSION_HEADER))
    except UnsupportedProtocol as e:
        raise refused(400, "unsupported_protocol", str(e), body=body, supported=list(SUPPORTED_VERSIONS)) from None
    with h.engine.connect() as conn:  # one connection for the registry check and the nonce
        snap = h.registry.current(conn)
        conn.rollback()  # end that read before the nonce's write transaction
        entry = None

        def lookup(key_id: str):  # type: ignore[no-untyped-def]
            nonlocal entry
            entry = snap.keys.get(key_id)
            return snap.key_lookup(key_id)

        now = time.time()
        try:
            v = verify_request(request.method, _target(), request.headers, body, lookup, now=now, window=h.config.clock_window)
        except SignatureRefused as e:
            refusal = e
        else:
            refusal = None
            try:
                with _nonce_tx(conn):
                    conn.execute(_NONCE, {"key_id": v.key_id, "nonce": v.nonce, "expires_at": v.created + h.config.clock_window + 1})
                    if random.random() < 0.01:  # keep the replay cache small without a separate job
                        conn.execute(delete(tables.nonces).where(tables.nonces.c.expires_at < int(now)))
                replayed = False
            except IntegrityError:
                replayed = True
    # Refusals are logged after the connection is back: the log append takes the hub's write lock.
    if refusal is not None:
        raise refused(refusal.status, refusal.reason, refusal.message, key_id=refusal.key_id,
                      department=entry.department if entry else None, body=body)
    assert entry is not None
    if replayed:
        raise refused(401, "replay", f"nonce 已使用过（重放）/ nonce {v.nonce} was used before (replay)",
                      key_id=v.key_id, department=entry.department, body=body)
    return Caller(v.key_id, entry.department, v.digest, snap)


_NONCE = insert(tables.nonces)  # built once; values bound per request


@contextmanager
def _nonce_tx(conn: Connection) -> Iterator[None]:
    """The nonce's own write transaction on `conn`, committed without waiting for the disk.

    Whatever the request makes durable later (batch, refusal log entry) commits
    after this in the same write-ahead log and flushes it too; a request that
    leaves no durable trace may lose its nonce in a crash, and then replaying it
    changes nothing. The flush wait was a third of a small batch's time at the hub.
    PostgreSQL: synchronous_commit off for this transaction. SQLite in WAL mode
    (as the hub opens it): synchronous NORMAL for this commit (it cannot change
    inside a transaction), FULL again before the connection goes back to the pool.
    """
    info = conn.connection.info
    dbapi = conn.connection.dbapi_connection if conn.dialect.name == "sqlite" else None
    if dbapi is not None and "hub_wal" not in info:
        # Only the write-ahead log carries the nonce to the next flushed commit; a rollback journal would not.
        info["hub_wal"] = str(dbapi.execute("PRAGMA journal_mode").fetchone()[0]).lower() == "wal"
    if dbapi is not None and not info["hub_wal"]:
        dbapi = None
    if dbapi is not None:
        dbapi.execute("PRAGMA synchronous=NORMAL")
    try:
        with conn.execution_options(hub_immediate=True).begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")
            yield
    finally:
        if dbapi is not None:
            dbapi.execute("PRAGMA synchronous=FULL")


def _read_body(limit: int) -> bytes:
    too_large = Refused(413, "too_large", f"请求体过大，上限 {limit} 字节 / body larger than {limit} bytes", limit=limit)
    if (request.content_length or 0) > limit:
        raise too_large  # without reading it
    body = request.get_data(cache=False)
    if len(body) > limit:  # a chunked body carries no Content-Length
        raise too_large
    return body


@api.get("/hub")
def hub_info() -> Response:
    h = hub()
    return json_response({"protocol": list(SUPPORTED_VERSIONS), "hub_key_id": h.key_id,
                          "hub_public_key": h.public_key_text, "hub_time": utcnow()})


@api.post("/batches")
def post_batch() -> Response:
    h = hub()
    body = _read_body(h.config.max_batch_bytes)
    caller = authenticate(body)

    def refuse(status: int, code: str, message: str, **extra: object) -> Refused:
        return refused(status, code, message, key_id=caller.key_id, department=caller.department, body=body, **extra)

    try:
        batch = parse_batch(body)
    except UnsupportedProtocol as e:
        raise refuse(400, "unsupported_protocol", str(e), supported=list(SUPPORTED_VERSIONS)) from None
    except BatchMalformed as e:
        raise refuse(400, "malformed_batch", "批次格式错误 / malformed batch", problems=e.problems) from None
    # A record naming another department fails the whole batch; one naming none is rejected alone (envelope).
    foreign = sorted({d for r in batch.records if isinstance(d := r.get("department"), str) and d != caller.department})
    if batch.department != caller.department or foreign:
        who = batch.department if batch.department != caller.department else ", ".join(map(str, foreign))
        raise refuse(403, "department_mismatch",
                     f"部门 {caller.department} 的密钥不能写入部门 {who} 的记录 / key of department {caller.department} "
                     f"cannot write records of department {who}", batch_id=batch.batch_id)
    dept = caller.snapshot.departments.get(caller.department)
    with h.engine.connect() as conn:
        seen = stored_receipt(conn, batch.batch_id, caller.department, caller.digest)
    if seen is not None:
        if seen.conflict:
            raise refuse(409, "batch_id_conflict", f"批次号已用于其他内容 / {seen.conflict}", batch_id=batch.batch_id)
        return _receipt_response(seen.receipt, seen.signature)
    allowed = set(dept.record_types) if dept else set()
    # A non-string type is not a permission question: check_records rejects that record alone.
    not_allowed = sorted({t for r in batch.records if isinstance(t := r.get("type"), str) and t in RECORD_TYPES and t not in allowed})
    if not_allowed:
        raise refuse(403, "record_type_not_allowed",
                     f"部门 {caller.department} 无权报送 {', '.join(not_allowed)} / department may not write {', '.join(not_allowed)}",
                     batch_id=batch.batch_id)
    candidates = check_records(batch.records, h.context)
    stored = store_batch(h.engine, h.key, h.key_id, batch, candidates, key_id=caller.key_id, digest=caller.digest)
    if stored.conflict:
        raise refuse(409, "batch_id_conflict", f"批次号已用于其他内容 / {stored.conflict}", batch_id=batch.batch_id)
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
    try:
        stored = store_attachment(h.engine, h.config.attachments_dir, body, department=caller.department, name=name,
                                  max_bytes=h.config.attachment_max_bytes)
    except AttachmentRefused as e:
        raise refused(413 if e.code == "too_large" else 400, e.code, e.message, key_id=caller.key_id,
                      department=caller.department, body=body) from None
    with serialized(h.engine) as (conn, head):
        append(conn, head, h.key, kind="attachment", status="ok", department=caller.department, key_id=caller.key_id,
               request_digest=caller.digest, summary={**stored.as_dict(), "name": name})
    return json_response(stored.as_dict())


@api.get("/attachments/<sha256>")
def get_attachment(sha256: str) -> Response:
    h = hub()
    caller = authenticate(b"")
    info = attachment_info(h.engine, sha256) if _SHA_RE.match(sha256) else None
    if info is None:
        raise Refused(404, "not_found", f"无此附件 / no attachment {sha256}")
    owner = info["department"]
    with h.engine.connect() as conn:
        allowed = owner == caller.department or any(g.reader == caller.department and g.owner == owner
                                                    for g in registry.list_grants(conn))
    if not allowed:
        raise refused(403, "read_not_granted",
                      f"部门 {caller.department} 无权读取部门 {owner} 的附件 / department may not read attachments of {owner}",
                      key_id=caller.key_id, department=caller.department)
    _log_read(h, caller, {"attachment": sha256})
    return send_file(path_for(h.config.attachments_dir, sha256), mimetype="application/octet-stream",
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
        raise Refused(400, "malformed_request", "查询参数错误 / bad query parameters", problems=problems)
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

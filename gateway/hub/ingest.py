"""Ingest a verified batch: validate each record, order it against the stored state, store, log, sign.

Two steps, so that the CPU-heavy part runs outside the write lock:
- `check_records` (no database): each record's envelope and its standard
  validation (`gateway.standard.validate.normalize`);
- `store_batch` (one transaction, on the request's connection): under its
  department's lock only, record the request's nonce (a replay stores
  nothing), answer a batch id seen before, then load the stored state of the
  batch's keys and of the referenced materials/depots/agreements/attachments,
  decide each record's status in order, draw the accepted records' hub_seq,
  write them, their history rows and the per-record receipts (all naming the
  batch by batch_id); then, under the hub's write lock (`db.lock_head`) up to
  the commit, append the receipt-log entry and store the signed receipt (which
  carries log_seq/log_head). All or nothing. Batches of different
  departments thus overlap, and only the short log append is serialised.
  On PostgreSQL the statements go as plain SQL in psycopg pipelines, a round
  trip per step (`_store_pg`).
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway.hub import tables
from gateway.hub.bulk import HISTORY_COLS, RECEIPT_COLS, RECORD_COLS, write_receipts, write_records
from gateway.hub.db import DEPARTMENT_LOCK, after_commit, lock_head, utcnow
from gateway.hub.receipt_log import INSERT_ENTRY, MOVE_HEAD, PG_INSERT_ENTRY, PG_MOVE_HEAD, Appended, next_entry
from gateway.hub.registry import PG_VERSION, read_version
from gateway.protocol.batch import MAX_SEQ, PROTOCOL_VERSION, Batch, envelope_ok, record_problems
from gateway.protocol.canonical import canonical_json
from gateway.protocol.receipts import STATUSES, sign_receipt
from gateway.sqlite_flush import unflushed_commits
from gateway.standard.compiled import fast_normalize
from gateway.standard.schema import FILE_REF, RECORD_TYPES, record_key
from gateway.standard.validate import DEFAULT_CONTEXT, ValidationContext, normalize

CHUNK = 2000  # keys per IN (...) query: well under SQLite's and PostgreSQL's parameter limits

# Cross-record rules: (record type, field, referenced type, rule id, message template).
REFERENCES = (
    ("stock", "material_id", "material", "material_exists", "物资编码“{v}”不存在：须先报送该物资的基础信息"),
    ("stock", "depot_id", "depot", "depot_exists", "储备库编码“{v}”不存在：须先报送该储备库信息"),
    ("capacity", "agreement_no", "agreement", "agreement_exists", "关联协议编号“{v}”不存在：须先报送该协议信息"),
)
ENVELOPE_LABELS = {"type": "记录类型", "department": "部门", "key": "记录键", "op": "操作", "seq": "序号",
                   "version": "版本", "updated_at": "更新时间", "provenance": "来源", "data": "数据"}
FILE_FIELDS = {t: tuple(f.name for f in rt.fields if f.kind == FILE_REF) for t, rt in RECORD_TYPES.items()}


def reason(fld: str, label: str, value: object, rule: str, message: str) -> dict[str, Any]:
    return {"field": fld, "label": label, "value": value, "rule": rule, "message": message}


@dataclass
class Candidate:
    rec: dict[str, Any]
    clean: dict[str, Any] | None = None
    reasons: list[dict[str, Any]] = field(default_factory=list)
    envelope_ok: bool = True


def check_records(records: Iterable[dict[str, Any]], context: ValidationContext | None = None) -> list[Candidate]:
    """Envelope and standard validation of every record; never touches the database.

    Every record is validated in full. A record whose envelope passes `envelope_ok` and whose data
    the compiled validator (`gateway.standard.compiled`) finds valid takes the cheap route; anything
    else goes through `record_problems` and `normalize`, which name every problem, as before.
    """
    ctx = context or DEFAULT_CONTEXT
    ref = ctx.today or date.today()  # once per batch; normalize would take the same
    out: list[Candidate] = []
    for rec in records:
        c = Candidate(rec)
        if not envelope_ok(rec):
            for fld, value, rule, message in record_problems(rec):
                c.reasons.append(reason(fld, ENVELOPE_LABELS.get(fld, fld), value, rule, message))
        typ = rec.get("type")
        if typ.__class__ is str and typ not in RECORD_TYPES:
            c.reasons.append(reason("type", ENVELOPE_LABELS["type"], typ, "record_type",
                                    f"未知记录类型“{typ}”，应为 {', '.join(RECORD_TYPES)} 之一"))
        if c.reasons:
            c.envelope_ok = False
        elif rec["op"] == "upsert":
            try:
                clean = fast_normalize(typ, rec["data"], ref, ctx)
                errors = [] if clean is not None else None
                if clean is None:
                    clean, errors = normalize(typ, rec["data"], today=ref, context=ctx)
            except Exception as e:  # one odd record must never fail the batch
                c.reasons.append(reason("data", ENVELOPE_LABELS["data"], None, "invalid", f"记录无法校验：{e}"))
                out.append(c)
                continue
            if errors:
                c.reasons.extend(e.as_dict() for e in errors)
            else:
                key = record_key(typ, clean)
                if key != rec["key"]:
                    c.reasons.append(reason("key", ENVELOPE_LABELS["key"], rec["key"], "key_mismatch", f"记录键与数据不符：按数据应为“{key}”"))
                c.clean = clean
        out.append(c)
    return out


def _chunks(items: list, n: int = CHUNK) -> Iterator[list]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


_STATE_SQLITE = "SELECT key, seq, version, deleted FROM records WHERE department = ? AND type = ? AND key IN ("
# PostgreSQL, large batches: one query per type, the keys as one JSON array parameter (orjson, C) instead of a
# text[] that psycopg dumps element by element in Python (~4% of the hub's CPU); ARRAY(...) keeps `key = ANY`
# an index condition.
_PG_STATE_BY_TYPE = (
    "SELECT type, key, seq, version, deleted FROM records WHERE department = %s AND type = %s "
    "AND key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
)


def _stored_state(conn: Connection, department: str, keys_by_type: dict[str, set[str]]) -> dict[tuple[str, str], tuple[int, str, bool]]:
    """SQLite: the stored (seq, version, deleted) of the given keys, by (type, key); plain SQL (SQLite keeps
    the prepared statement per text), not a SQLAlchemy select built per type and batch."""
    state: dict[tuple[str, str], tuple[int, str, bool]] = {}
    for typ, keys in keys_by_type.items():
        for part in _chunks(sorted(keys)):
            q = _STATE_SQLITE + ", ".join("?" * len(part)) + ")"
            for key, seq, version, deleted in conn.exec_driver_sql(q, (department, typ, *part)):
                state[(typ, key)] = (int(seq), version, bool(deleted))
    return state


def _attachments_held(conn: Connection, hashes: set[str]) -> set[str]:
    held: set[str] = set()
    for part in _chunks(sorted(hashes)):
        held.update(h for (h,) in conn.execute(select(tables.attachments.c.sha256).where(tables.attachments.c.sha256.in_(part))))
    return held


def _bump_seqs(conn: Connection, department: str, bumps: list[dict[str, Any]]) -> None:
    if not bumps:
        return
    r = tables.records.c
    stmt = (
        update(tables.records)
        .where(and_(r.department == department, r.type == bindparam("b_type"), r.key == bindparam("b_key")))
        .values(seq=bindparam("b_seq"))
    )
    conn.execute(stmt, bumps)


@dataclass
class StoredBatch:
    receipt: bytes
    signature: str
    replayed: bool  # True: the batch id was seen before; this is the original receipt
    conflict: str | None = None  # set when the batch id is taken by other content
    # Nothing stored, and the request is to be refused: "replay" (its nonce was used before: nothing of it
    # was written) or "record_type_not_allowed" (its nonce is recorded, as for every other refusal).
    refused: str | None = None


@dataclass(frozen=True)
class Nonce:
    """A verified request's nonce: recorded in the batch's own transaction, so a replay is refused."""

    key_id: str
    nonce: str
    expires_at: int


_BATCH_BY_ID = select(tables.batches).where(tables.batches.c.batch_id == bindparam("b_id"))
_INSERT_BATCH = insert(tables.batches)
_NONCE = insert(tables.nonces)
_NONCE_IF_NEW = "INSERT INTO nonces (key_id, nonce, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING"  # SQLite
_PRUNE_NONCES = delete(tables.nonces).where(tables.nonces.c.expires_at < bindparam("now"))
PRUNE_ODDS = 0.01  # keep the replay cache small without a separate job


def _seen(department: str, digest: str, row_department: str, row_digest: str, receipt: bytes, signature: str) -> StoredBatch:
    if row_department != department or row_digest != digest:
        return StoredBatch(b"", "", True, conflict="batch id used before with other content or by another department")
    return StoredBatch(bytes(receipt), signature, True)


def stored_receipt(conn: Connection, batch_id: str, department: str, digest: str) -> StoredBatch | None:
    row = conn.execute(_BATCH_BY_ID, {"b_id": batch_id}).mappings().first()
    if row is None:
        return None
    return _seen(department, digest, row["department"], row["request_digest"], row["receipt"], row["signature"])


@contextmanager
def _nonce_tx(conn: Connection) -> Iterator[None]:
    """The nonce's own write transaction on `conn`, committed without waiting for the disk.

    Whatever the request makes durable later (refusal log entry, read log entry) commits
    after this in the same write-ahead log and flushes it too; a request that
    leaves no durable trace may lose its nonce in a crash, and then replaying it
    changes nothing. The flush wait was a third of a small batch's time at the hub.
    PostgreSQL: synchronous_commit off for this transaction. SQLite in WAL mode
    (as the hub opens it): see `gateway.sqlite_flush`.
    """
    relax = unflushed_commits(conn.connection) if conn.dialect.name == "sqlite" else nullcontext(False)
    with relax, conn.execution_options(hub_immediate=True).begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")
        yield


def claim_nonce(conn: Connection, nonce: Nonce) -> bool:
    """Record `nonce` in its own transaction (see `_nonce_tx`); False when it was used before (a replay).

    For requests that store nothing of their own (reads, refusals); a batch records its nonce in its
    own transaction (`store_batch`). `conn` must have no transaction open.
    """
    try:
        with _nonce_tx(conn):
            conn.execute(_NONCE, {"key_id": nonce.key_id, "nonce": nonce.nonce, "expires_at": nonce.expires_at})
            if random.random() < PRUNE_ODDS:
                conn.execute(_PRUNE_NONCES, {"now": int(time.time())})
    except IntegrityError:
        return False
    return True


def _prune_nonces(conn: Connection) -> None:
    """Now and then, after a batch: drop expired nonces in a short transaction of their own.

    Not inside the batch's transaction: two departments' batches deleting the same rows would wait on each other.
    """
    if random.random() < PRUNE_ODDS:
        with _nonce_tx(conn):
            conn.execute(_PRUNE_NONCES, {"now": int(time.time())})


@dataclass
class _Wanted:
    """What a batch needs read under its department's lock, gathered from its candidates."""

    keys_by_type: dict[str, set[str]]  # own keys and referenced keys, by type
    hashes: set[str]  # attachments referenced
    no_depot: set[str]  # materials of stock records without a depot
    may_accept: int  # candidates that can still be accepted (envelope and data valid)


def _wanted(candidates: list[Candidate]) -> _Wanted:
    keys_by_type: dict[str, set[str]] = {}
    hashes: set[str] = set()
    may_accept = 0
    for c in candidates:
        if not c.envelope_ok:
            continue
        keys_by_type.setdefault(c.rec["type"], set()).add(c.rec["key"])
        if not c.reasons:
            may_accept += 1
        if c.clean is None:
            continue
        for typ, fld, ref_type, _, _ in REFERENCES:
            if c.rec["type"] == typ and c.clean.get(fld):
                keys_by_type.setdefault(ref_type, set()).add(str(c.clean[fld]))
        for fld in FILE_FIELDS[c.rec["type"]]:
            ref = c.clean.get(fld)
            if isinstance(ref, dict) and ref.get("sha256"):
                hashes.add(str(ref["sha256"]))
    # Stock without a depot is allowed only for materials not held physically (储备方式 ≠ 1 实物储备).
    no_depot = {
        str(c.clean["material_id"]) for c in candidates
        if c.envelope_ok and c.clean and c.rec["type"] == "stock" and c.rec["op"] == "upsert"
        and c.clean.get("material_id") and not c.clean.get("depot_id")
    }
    return _Wanted(keys_by_type, hashes, no_depot, may_accept)


def _receipt_rows(batch_id: str, dept: str, results: list[dict[str, Any]], now: str) -> list[tuple]:
    # Cut what a rejected record may carry to a size an index entry can hold.
    return [(batch_id, dept, r["type"][:64], r["key"][:512], r["seq"], r["status"],
             canonical_json(r["reasons"]).decode("utf-8") if r["reasons"] else None, now)
            for r in results]


def store_batch(
    conn: Connection,
    hub_key: Ed25519PrivateKey,
    hub_key_id: str,
    batch: Batch,
    candidates: list[Candidate],
    *,
    key_id: str,
    digest: str,
    nonce: Nonce | None = None,
    not_allowed: Collection[str] = (),
    registry_version: int | None = None,
) -> StoredBatch:
    """Store the batch in one transaction on `conn` (the request's connection, no transaction of SQLAlchemy's open).

    Under the department's lock, in this order: record `nonce` (a replay stores nothing: `refused`
    "replay"), answer a batch id seen before (its receipt, or `conflict`), refuse `not_allowed` record
    types, then decide and store every record. The commit waits for the disk (synchronous_commit on /
    SQLite FULL) before the receipt is answered. `registry_version`: that of the registry snapshot the
    request was verified against, when it was not read for this request; if the registry has moved on
    since, nothing is written and `refused` is "registry_changed" (the caller starts over).
    """
    wanted = _wanted(candidates)
    if conn.dialect.name == "postgresql":
        stored, head = _store_pg(conn, hub_key, hub_key_id, batch, candidates, wanted, key_id=key_id, digest=digest,
                                 nonce=nonce, not_allowed=not_allowed, registry_version=registry_version)
    else:
        stored, head = _store_sqlite(conn, hub_key, hub_key_id, batch, candidates, wanted, key_id=key_id,
                                     digest=digest, nonce=nonce, not_allowed=not_allowed,
                                     registry_version=registry_version)
    if head is not None:
        after_commit(conn.engine, head)
    if nonce is not None and stored.refused not in ("replay", "registry_changed"):
        _prune_nonces(conn)
    return stored


_REGISTRY_CHANGED = StoredBatch(b"", "", False, refused="registry_changed")


def _early_answer(nonce_new: bool, seen: StoredBatch | None, not_allowed: Collection[str]) -> StoredBatch | None:
    """The answer that stores nothing, decided under the department's lock, if any."""
    if not nonce_new:
        return StoredBatch(b"", "", False, refused="replay")
    if seen is not None:
        return seen
    if not_allowed:
        return StoredBatch(b"", "", False, refused="record_type_not_allowed")
    return None


def _store_sqlite(
    conn: Connection, hub_key: Ed25519PrivateKey, hub_key_id: str, batch: Batch, candidates: list[Candidate],
    wanted: _Wanted, *, key_id: str, digest: str, nonce: Nonce | None, not_allowed: Collection[str],
    registry_version: int | None,
) -> tuple[StoredBatch, dict | None]:
    dept = batch.department
    # BEGIN IMMEDIATE: SQLite's write lock, held from here to the commit, covers the department's too.
    with conn.execution_options(hub_immediate=True).begin():
        if registry_version is not None and read_version(conn) != registry_version:
            return _REGISTRY_CHANGED, None  # nothing written
        nonce_new = nonce is None or conn.exec_driver_sql(
            _NONCE_IF_NEW, (nonce.key_id, nonce.nonce, nonce.expires_at)).rowcount == 1
        early = _early_answer(nonce_new, stored_receipt(conn, batch.batch_id, dept, digest) if nonce_new else None,
                              not_allowed)
        if early is not None:
            return early, None  # commits the nonce (nothing at all on a replay)
        state = _stored_state(conn, dept, wanted.keys_by_type)
        stored = set(state)  # before _apply adds this batch's own states to it
        held = _attachments_held(conn, wanted.hashes) if wanted.hashes else set()
        modes = _reserve_modes(conn, dept, wanted.no_depot, candidates) if wanted.no_depot else {}
        now = utcnow()
        out = _apply(candidates, state, held, dept, batch.batch_id, now, modes)
        seqs = _hub_seqs(conn, len(out.accepted))
        for (row, result), s in zip(out.accepted, seqs, strict=True):
            row["hub_seq"] = result["hub_seq"] = s
        write_records(conn, list(out.rows.values()), stored)
        _bump_seqs(conn, dept, [b for k, b in out.bumps.items() if k not in out.rows])
        write_receipts(conn, _receipt_rows(batch.batch_id, dept, out.results, now))
        head = lock_head(conn)
        logged = utcnow()
        entry, move, appended = next_entry(
            head, hub_key, kind="batch", status="ok", department=dept, key_id=key_id, batch_id=batch.batch_id,
            counts=out.counts, request_digest=digest, summary={"source": batch.source, "records": len(candidates)},
            hub_seq=max([int(head["hub_seq"]), *seqs]), time=logged,
        )
        conn.execute(INSERT_ENTRY, entry)
        conn.execute(MOVE_HEAD, move)
        body, signature = _sign(batch, dept, logged, appended, out, hub_key, hub_key_id)
        conn.execute(_INSERT_BATCH, _batch_row(batch, dept, digest, appended, body, signature, logged))
    return StoredBatch(body, signature, False), head


def _sign(batch: Batch, dept: str, logged: str, appended: Appended, out: Outcome, hub_key: Ed25519PrivateKey,
          hub_key_id: str) -> tuple[bytes, str]:
    doc = {
        "protocol": PROTOCOL_VERSION, "batch_id": batch.batch_id, "department": dept, "hub_time": logged,
        "log_seq": appended.seq, "log_head": appended.entry_hash, "results": out.results,
    }
    return sign_receipt(doc, hub_key, hub_key_id)


def _batch_row(batch: Batch, dept: str, digest: str, appended: Appended, body: bytes, signature: str,
               logged: str) -> dict[str, Any]:
    return {"batch_id": batch.batch_id, "department": dept, "source": batch.source, "request_digest": digest,
            "log_seq": appended.seq, "receipt": body, "signature": signature, "received_at": logged}


# PostgreSQL: plain SQL on the request's psycopg connection, sent in pipelines (one round trip per step:
# reads under the department's lock; the record writes and the log_head lock; the log append, the batch and
# the commit), each statement prepared by psycopg after a few uses. Building SQLAlchemy statements and a
# round trip per statement (and BEGIN/COMMIT each their own) was most of the hub's and PostgreSQL's time
# for a small batch.
_PG_DEPT_LOCK = "SELECT pg_advisory_xact_lock(%s, hashtext(%s))"
_PG_NONCE_IF_NEW = "INSERT INTO nonces (key_id, nonce, expires_at) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING"
_PG_BATCH_BY_ID = "SELECT department, request_digest, receipt, signature FROM batches WHERE batch_id = %s"
# All (type, key) pairs in one query; the lateral join keeps each pair an index lookup on uq_records_key.
_PG_STATE_PAIRS = (
    "SELECT r.type, r.key, r.seq, r.version, r.deleted FROM jsonb_array_elements(%s::jsonb) AS p(tk) "
    "CROSS JOIN LATERAL (SELECT type, key, seq, version, deleted FROM records "
    "WHERE department = %s AND type = p.tk->>0 AND key = p.tk->>1) r"
)
_PG_HELD = "SELECT sha256 FROM attachments WHERE sha256 = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
_PG_MODES = (
    "SELECT key, data->'reserve_mode' FROM records WHERE department = %s AND type = 'material' AND NOT deleted "
    "AND key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
)
_PG_SEQS = "SELECT array(SELECT nextval('hub_seq_counter') FROM generate_series(1, %s))"
# One statement per accepted record: its upsert and, from what that wrote, its history row.
_PG_UPSERT_WITH_HISTORY = (
    f"WITH r AS (INSERT INTO records ({', '.join(RECORD_COLS)}) "
    f"VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, %s, %s::jsonb, %s, %s, %s) "
    f"ON CONFLICT (department, type, key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in RECORD_COLS[3:])} "
    f"RETURNING department, type, key, seq, version, deleted, hub_seq, batch_id, received_at) "
    f"INSERT INTO record_history ({', '.join(HISTORY_COLS)}) "
    f"SELECT department, type, key, seq, version, CASE WHEN deleted THEN 'delete' ELSE 'upsert' END, hub_seq, "
    f"batch_id, received_at FROM r"
)
_PG_RECEIPT = f"INSERT INTO receipts ({', '.join(RECEIPT_COLS)}) VALUES ({', '.join(['%s'] * len(RECEIPT_COLS))})"
_PG_BUMP = "UPDATE records SET seq = %s WHERE department = %s AND type = %s AND key = %s"
_PG_LOCK_HEAD = "SELECT log_seq, log_head, hub_seq, signature FROM log_head WHERE id = 1 FOR UPDATE"
# Under the log_head lock, one statement: the log entry, the head's move and the batch with its signed receipt.
_BATCH_COLS = ("batch_id", "department", "source", "request_digest", "log_seq", "receipt", "signature", "received_at")
_PG_APPEND_AND_STORE = (
    f"WITH entry AS ({PG_INSERT_ENTRY}), head AS ({PG_MOVE_HEAD}) "
    f"INSERT INTO batches ({', '.join(_BATCH_COLS)}) VALUES ({', '.join(f'%(b_{c})s' for c in _BATCH_COLS)})"
)
SMALL_BATCH = 32  # records; up to this many, PostgreSQL writes them with pipelined INSERTs rather than COPY


def _json_text(v: object) -> str | None:
    return None if v is None else orjson.dumps(v).decode("utf-8")


def _store_pg(
    conn: Connection, hub_key: Ed25519PrivateKey, hub_key_id: str, batch: Batch, candidates: list[Candidate],
    wanted: _Wanted, *, key_id: str, digest: str, nonce: Nonce | None, not_allowed: Collection[str],
    registry_version: int | None,
) -> tuple[StoredBatch, dict | None]:
    dept = batch.department
    pg = conn.connection.driver_connection  # psycopg; its transaction is this batch's (BEGIN goes with the first step)
    small = len(candidates) <= SMALL_BATCH
    try:
        c_nonce = c_held = c_modes = c_seqs = c_registry = None
        state_cursors = []
        with pg.pipeline():
            # Under the department's lock, held to the commit: nothing else writes this department's records
            # (nor draws its hub_seq) meanwhile, and batches of other departments run alongside.
            pg.execute(_PG_DEPT_LOCK, (DEPARTMENT_LOCK, dept))
            if registry_version is not None:
                c_registry = pg.execute(PG_VERSION)
            if nonce is not None:
                c_nonce = pg.execute(_PG_NONCE_IF_NEW, (nonce.key_id, nonce.nonce, nonce.expires_at))
            c_seen = pg.execute(_PG_BATCH_BY_ID, (batch.batch_id,))
            if small:
                pairs = [(t, k) for t, keys in wanted.keys_by_type.items() for k in keys]
                if pairs:
                    state_cursors.append(pg.execute(_PG_STATE_PAIRS, (_json_text(pairs), dept)))
            else:
                for typ, keys in wanted.keys_by_type.items():
                    state_cursors.append(pg.execute(_PG_STATE_BY_TYPE, (dept, typ, _json_text(list(keys)))))
            if wanted.hashes:
                c_held = pg.execute(_PG_HELD, (_json_text(sorted(wanted.hashes)),))
            if wanted.no_depot:
                c_modes = pg.execute(_PG_MODES, (dept, _json_text(sorted(wanted.no_depot))))
            if small and wanted.may_accept:
                # As many as could be accepted, drawn in this round trip; the unused ones are a gap in hub_seq.
                c_seqs = pg.execute(_PG_SEQS, (wanted.may_accept,))
        if c_registry is not None and (c_registry.fetchone() or (None,))[0] != registry_version:
            pg.rollback()  # the nonce too: the request starts over against the registry as it is now
            return _REGISTRY_CHANGED, None
        row = c_seen.fetchone()
        seen = _seen(dept, digest, *row) if row is not None else None
        early = _early_answer(c_nonce is None or c_nonce.rowcount == 1, seen, not_allowed)
        if early is not None:
            if early.refused == "replay":
                pg.rollback()
            else:  # only the nonce was written: no need to wait for the disk (as `_nonce_tx`)
                with pg.pipeline():
                    pg.execute("SET LOCAL synchronous_commit TO off")
                    pg.commit()
            return early, None
        state = {(t, k): (int(s), v, bool(d)) for c in state_cursors for t, k, s, v, d in c}
        stored = set(state)  # before _apply adds this batch's own states to it
        held = {h for (h,) in c_held} if c_held is not None else set()
        modes: dict[str, str] = {}
        if c_modes is not None:
            modes = {k: str(m) for k, m in c_modes if m}
            for c in candidates:
                if c.clean and c.rec["type"] == "material" and c.rec["key"] in wanted.no_depot and c.clean.get("reserve_mode"):
                    modes[c.rec["key"]] = str(c.clean["reserve_mode"])
        now = utcnow()
        out = _apply(candidates, state, held, dept, batch.batch_id, now, modes)
        n = len(out.accepted)
        if not n:
            seqs = []
        elif c_seqs is not None:
            seqs = sorted(int(v) for v in c_seqs.fetchone()[0])[:n]
        else:
            seqs = sorted(int(v) for v in pg.execute(_PG_SEQS, (n,)).fetchone()[0])
        for (r, result), s in zip(out.accepted, seqs, strict=True):
            r["hub_seq"] = result["hub_seq"] = s
        rows = list(out.rows.values())
        bumps = [(b["b_seq"], dept, b["b_type"], b["b_key"]) for k, b in out.bumps.items() if k not in out.rows]
        receipts = _receipt_rows(batch.batch_id, dept, out.results, now)
        c_head = pg.cursor()
        if small:
            with pg.pipeline():
                cur = pg.cursor()
                if rows:
                    cur.executemany(_PG_UPSERT_WITH_HISTORY, [
                        (r["department"], r["type"], r["key"], r["seq"], r["version"], _json_text(r["data"]),
                         r["updated_at"], r["deleted"], _json_text(r["provenance"]), r["hub_seq"], r["batch_id"],
                         r["received_at"]) for r in rows])
                if bumps:
                    cur.executemany(_PG_BUMP, bumps)
                if receipts:
                    cur.executemany(_PG_RECEIPT, receipts)
                # The hub's write lock, to the commit: only the log append and the signed receipt.
                c_head.execute(_PG_LOCK_HEAD)
        else:
            write_records(conn, rows, stored)
            if bumps:
                pg.cursor().executemany(_PG_BUMP, bumps)
            write_receipts(conn, receipts)
            c_head.execute(_PG_LOCK_HEAD)
        log_seq, log_head, head_hub_seq, head_sig = c_head.fetchone()
        head = {"id": 1, "log_seq": log_seq, "log_head": log_head, "hub_seq": head_hub_seq, "signature": head_sig}
        # The log's time is read under its lock, so it grows with seq as before (the UI's date bounds rely on it).
        logged = utcnow()
        entry, move, appended = next_entry(
            head, hub_key, kind="batch", status="ok", department=dept, key_id=key_id, batch_id=batch.batch_id,
            counts=out.counts, request_digest=digest, summary={"source": batch.source, "records": len(candidates)},
            hub_seq=max([int(head_hub_seq), *seqs]), time=logged,
        )
        body, signature = _sign(batch, dept, logged, appended, out, hub_key, hub_key_id)
        try:
            with pg.pipeline():
                batch_row = _batch_row(batch, dept, digest, appended, body, signature, logged)
                pg.execute(_PG_APPEND_AND_STORE, {**entry, **move, **{f"b_{c}": v for c, v in batch_row.items()}})
                pg.commit()  # synchronous_commit on: durable before the receipt is answered
        except psycopg.errors.UniqueViolation as e:
            if e.diag.constraint_name != "batches_pkey":
                raise
            # Another department's batch took this batch id after our check (its department lock is not
            # ours): undo ours, and answer as if that batch had been there first.
            pg.rollback()
            return _taken(conn, batch.batch_id, dept, digest, nonce), None
    except BaseException:
        _rollback_quietly(pg)
        raise
    return StoredBatch(body, signature, False), head


def _rollback_quietly(pg: Any) -> None:
    """Undo the batch after a failure; a broken connection must not hide the failure that broke it."""
    try:
        if not pg.closed:
            pg.rollback()
    except Exception:  # noqa: BLE001 - the original error is re-raised by the caller
        pass


def _taken(conn: Connection, batch_id: str, dept: str, digest: str, nonce: Nonce | None) -> StoredBatch:
    """After losing the batch id to another department's batch: its receipt, or the conflict (nonce recorded)."""
    if nonce is not None and not claim_nonce(conn, nonce):
        return StoredBatch(b"", "", False, refused="replay")
    with conn.begin():
        taken = stored_receipt(conn, batch_id, dept, digest)
    assert taken is not None  # the primary key said so, and batches are never deleted
    return taken


_HEAD_HUB_SEQ = select(tables.log_head.c.hub_seq).where(tables.log_head.c.id == 1)


def _hub_seqs(conn: Connection, n: int) -> list[int]:
    """SQLite: `n` increasing hub_seq values on from log_head.hub_seq, under its write lock held since BEGIN.

    (PostgreSQL draws them from a sequence under the department's lock held to the commit, so within a
    department hub_seq grows in commit order, what the read API's keyset pages need: `_store_pg`.)
    """
    if n == 0:
        return []
    base = int(conn.execute(_HEAD_HUB_SEQ).scalar_one())
    return list(range(base + 1, base + n + 1))


@dataclass
class Outcome:
    results: list[dict[str, Any]] = field(default_factory=list)  # receipt results, in batch order
    rows: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # final accepted state per key
    bumps: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # seq-only advances
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STATUSES, 0))
    # In batch order, one per accepted record: its row (the last state of its key wins) and its result,
    # the two places its hub_seq goes.
    accepted: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)


def _apply(candidates: list[Candidate], state: dict[tuple[str, str], tuple[int, str, bool]], held: set[str],
           dept: str, batch_id: str, now: str, modes: dict[str, str] | None = None) -> Outcome:
    """Decide every record in order, updating `state` as it goes; collect the rows to write.

    The accepted records' hub_seq is filled in afterwards, through `Outcome.accepted`, in batch order.
    """
    out = Outcome()
    rows, counts, results, accepted = out.rows, out.counts, out.results, out.accepted
    modes = modes or {}
    for c in candidates:
        rec = c.rec
        status, reasons = _decide(c, state, held, modes)
        if c.envelope_ok:  # the envelope's types are known good: no checks by type per field
            k = (rec["type"], rec["key"])
            result = {"key": k[1], "type": k[0], "seq": rec["seq"], "version": rec["version"],
                      "status": status, "hub_seq": None, "reasons": reasons}
        else:
            result = {
                "key": rec.get("key") if isinstance(rec.get("key"), str) else "",
                "type": rec.get("type") if isinstance(rec.get("type"), str) else "",
                "seq": rec["seq"] if _valid_seq(rec.get("seq")) else None,
                "version": rec.get("version") if isinstance(rec.get("version"), str) else None,
                "status": status, "hub_seq": None, "reasons": reasons,
            }
        if status == "accepted":
            deleted = rec["op"] == "delete"
            state[k] = (rec["seq"], rec["version"], deleted)
            row = rows[k] = {
                "department": dept, "type": k[0], "key": k[1], "seq": rec["seq"],
                "version": rec["version"], "data": None if deleted else c.clean, "updated_at": rec.get("updated_at"),
                "deleted": deleted, "provenance": rec.get("provenance"), "hub_seq": None, "batch_id": batch_id,
                "received_at": now,
            }
            accepted.append((row, result))
        elif status == "duplicate" and state[k][0] < rec["seq"]:
            # Same content under a newer seq: keep the newer seq, so an older state arriving later is stale.
            state[k] = (rec["seq"], *state[k][1:])
            if k in rows:
                rows[k]["seq"] = rec["seq"]
            else:
                out.bumps[k] = {"b_type": k[0], "b_key": k[1], "b_seq": rec["seq"]}
        counts[status] += 1
        results.append(result)
    return out


def _valid_seq(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_SEQ


def _reserve_modes(conn: Connection, department: str, materials: set[str], candidates: list[Candidate]) -> dict[str, str]:
    """储备方式 of the given materials: stored ones, overridden by those in this batch."""
    r = tables.records.c
    modes: dict[str, str] = {}
    for part in _chunks(sorted(materials)):
        q = select(r.key, r.data).where(and_(r.department == department, r.type == "material", r.key.in_(part),
                                             r.deleted.is_(False)))
        for key, data in conn.execute(q):
            if isinstance(data, dict) and data.get("reserve_mode"):
                modes[key] = str(data["reserve_mode"])
    for c in candidates:
        if c.clean and c.rec["type"] == "material" and c.rec["key"] in materials and c.clean.get("reserve_mode"):
            modes[c.rec["key"]] = str(c.clean["reserve_mode"])
    return modes


def _decide(c: Candidate, state: dict[tuple[str, str], tuple[int, str, bool]], held: set[str],
            modes: dict[str, str]) -> tuple[str, list]:
    """Status and reasons of one record against the state so far (stored plus earlier in this batch)."""
    if not c.envelope_ok:
        return "rejected", c.reasons
    rec = c.rec
    typ, key, seq, version = rec["type"], rec["key"], rec["seq"], rec["version"]
    stored = state.get((typ, key))
    if stored is not None:
        s_seq, s_version, s_deleted = stored
        if seq < s_seq:
            return "stale", []
        if seq == s_seq:
            if version == s_version:
                return "duplicate", []
            return "rejected", [reason("seq", ENVELOPE_LABELS["seq"], seq, "seq_conflict",
                                       f"序号 {seq} 已用于另一版本的该记录；同一序号不能对应不同内容")]
        if version == s_version and s_deleted == (rec["op"] == "delete"):
            return "duplicate", []
    if c.reasons:
        return "rejected", c.reasons
    if rec["op"] == "delete":
        return "accepted", []
    reasons = []
    for r_type, fld, ref_type, rule, template in REFERENCES:
        v = c.clean.get(fld) if c.clean else None
        if r_type == typ and v:
            ref = state.get((ref_type, str(v)))
            if ref is None or ref[2]:
                label = RECORD_TYPES[typ][fld].label
                reasons.append(reason(fld, label, v, rule, template.format(v=v)))
    for fld in FILE_FIELDS[typ]:
        ref = c.clean.get(fld) if c.clean else None
        if isinstance(ref, dict) and ref.get("sha256") and ref["sha256"] not in held:
            label = RECORD_TYPES[typ][fld].label
            reasons.append(reason(fld, label, ref["sha256"], "attachment_exists",
                                  f"{label}“{ref.get('name') or ref['sha256'][:12]}”未上传：须先上传附件"))
    if typ == "stock" and c.clean and not c.clean.get("depot_id") and modes.get(str(c.clean.get("material_id"))) == "1":
        reasons.append(reason("depot_id", RECORD_TYPES["stock"]["depot_id"].label, None, "depot_required",
                              f"物资“{c.clean['material_id']}”为实物储备，须填写储备库编码"))
    if reasons:
        return "rejected", reasons
    return "accepted", []

"""Ingest a verified batch: validate each record, order it against the stored state, store, log, sign.

Two steps, so that the CPU-heavy part runs outside the write lock:
- `check_records` (no database): each record's envelope and its standard
  validation (`gateway.standard.validate.normalize`);
- `store_batch` (one transaction): under its department's lock only, load the
  stored state of the batch's keys and of the referenced
  materials/depots/agreements/attachments in a few queries, decide each
  record's status in order, draw the accepted records' hub_seq, write them,
  their history rows and the per-record receipts (all naming the batch by
  batch_id); then, under the hub's write lock (`db.lock_head`) up to the
  commit, append the receipt-log entry and store the signed receipt (which
  carries log_seq/log_head). All or nothing. Batches of different
  departments thus overlap, and only the short log append is serialised.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, and_, bindparam, insert, select, update
from sqlalchemy.engine import Connection

from gateway.hub import tables
from gateway.hub.bulk import write_receipts, write_records
from gateway.hub.db import after_commit, department_tx, lock_head, utcnow
from gateway.hub.receipt_log import append
from gateway.protocol.batch import MAX_SEQ, PROTOCOL_VERSION, Batch, envelope_ok, record_problems
from gateway.protocol.canonical import canonical_json
from gateway.protocol.receipts import STATUSES, sign_receipt
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


_STATE_COLS = (tables.records.c.key, tables.records.c.seq, tables.records.c.version, tables.records.c.deleted)
# PostgreSQL: the keys as one JSON array parameter (orjson, C) instead of a text[] that psycopg dumps
# element by element in Python (~4% of the hub's CPU); ARRAY(...) keeps `key = ANY` an index condition.
_STATE_PG = (
    "SELECT key, seq, version, deleted FROM records WHERE department = %s AND type = %s "
    "AND key = ANY(ARRAY(SELECT jsonb_array_elements_text(%s::jsonb)))"
)


def _stored_state(conn: Connection, department: str, keys_by_type: dict[str, set[str]]) -> dict[tuple[str, str], tuple[int, str, bool]]:
    r = tables.records.c
    state: dict[tuple[str, str], tuple[int, str, bool]] = {}
    pg = conn.dialect.name == "postgresql"
    for typ, keys in keys_by_type.items():
        if pg:
            parts = [conn.exec_driver_sql(_STATE_PG, (department, typ, orjson.dumps(list(keys)).decode("utf-8")))]
        else:
            parts = [conn.execute(select(*_STATE_COLS).where(and_(r.department == department, r.type == typ, r.key.in_(part))))
                     for part in _chunks(sorted(keys))]
        for rows in parts:
            for key, seq, version, deleted in rows:
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


_BATCH_BY_ID = select(tables.batches).where(tables.batches.c.batch_id == bindparam("b_id"))
_INSERT_BATCH = insert(tables.batches)


def stored_receipt(conn: Connection, batch_id: str, department: str, digest: str) -> StoredBatch | None:
    row = conn.execute(_BATCH_BY_ID, {"b_id": batch_id}).mappings().first()
    if row is None:
        return None
    if row["department"] != department or row["request_digest"] != digest:
        return StoredBatch(b"", "", True, conflict="batch id used before with other content or by another department")
    return StoredBatch(bytes(row["receipt"]), row["signature"], True)


def store_batch(
    engine: Engine,
    hub_key: Ed25519PrivateKey,
    hub_key_id: str,
    batch: Batch,
    candidates: list[Candidate],
    *,
    key_id: str,
    digest: str,
) -> StoredBatch:
    dept = batch.department
    keys_by_type: dict[str, set[str]] = {}
    refs_by_type: dict[str, set[str]] = {}
    hashes: set[str] = set()
    for c in candidates:
        if not c.envelope_ok:
            continue
        keys_by_type.setdefault(c.rec["type"], set()).add(c.rec["key"])
        if c.clean is None:
            continue
        for typ, fld, ref_type, _, _ in REFERENCES:
            if c.rec["type"] == typ and c.clean.get(fld):
                refs_by_type.setdefault(ref_type, set()).add(str(c.clean[fld]))
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

    try:
        with department_tx(engine, dept) as conn:
            # Under the department's lock only: nothing else writes this department's records meanwhile,
            # and batches of other departments run alongside.
            again = stored_receipt(conn, batch.batch_id, dept, digest)
            if again is not None:
                return again
            state = _stored_state(conn, dept, {t: keys_by_type.get(t, set()) | refs_by_type.get(t, set()) for t in keys_by_type.keys() | refs_by_type.keys()})
            stored = set(state)  # before _apply adds this batch's own states to it
            held = _attachments_held(conn, hashes) if hashes else set()
            modes = _reserve_modes(conn, dept, no_depot, candidates) if no_depot else {}
            now = utcnow()
            out = _apply(candidates, state, held, dept, batch.batch_id, now, modes)
            seqs = _hub_seqs(conn, len(out.accepted))
            for (row, result), s in zip(out.accepted, seqs, strict=True):
                row["hub_seq"] = result["hub_seq"] = s
            write_records(conn, list(out.rows.values()), stored)
            _bump_seqs(conn, dept, [b for k, b in out.bumps.items() if k not in out.rows])
            write_receipts(conn, [
                # Cut what a rejected record may carry to a size an index entry can hold.
                (batch.batch_id, dept, r["type"][:64], r["key"][:512], r["seq"], r["status"],
                 canonical_json(r["reasons"]).decode("utf-8") if r["reasons"] else None, now)
                for r in out.results
            ])
            # The hub's write lock, to the commit: only the log append and the signed receipt.
            head = lock_head(conn)
            # PostgreSQL: another department's batch may have taken the id meanwhile; then undo ours.
            # (SQLite's write lock has been held since BEGIN: nothing changed since the check above.)
            taken = stored_receipt(conn, batch.batch_id, dept, digest) if conn.dialect.name == "postgresql" else None
            if taken is not None:
                raise _Taken(taken)
            # The log's time is read under its lock, so it grows with seq as before (the UI's date bounds rely on it).
            logged = utcnow()
            entry = append(
                conn, head, hub_key, kind="batch", status="ok", department=dept, key_id=key_id, batch_id=batch.batch_id,
                counts=out.counts, request_digest=digest, summary={"source": batch.source, "records": len(candidates)},
                hub_seq=max([int(head["hub_seq"]), *seqs]), time=logged,
            )
            doc = {
                "protocol": PROTOCOL_VERSION, "batch_id": batch.batch_id, "department": dept, "hub_time": logged,
                "log_seq": entry.seq, "log_head": entry.entry_hash, "results": out.results,
            }
            body, signature = sign_receipt(doc, hub_key, hub_key_id)
            conn.execute(_INSERT_BATCH, {
                "batch_id": batch.batch_id, "department": dept, "source": batch.source, "request_digest": digest,
                "log_seq": entry.seq, "receipt": body, "signature": signature, "received_at": logged,
            })
    except _Taken as t:
        return t.stored
    after_commit(engine, head)
    return StoredBatch(body, signature, False)


class _Taken(Exception):
    def __init__(self, stored: StoredBatch) -> None:
        super().__init__("batch id taken")
        self.stored = stored


def _hub_seqs(conn: Connection, n: int) -> list[int]:
    """`n` increasing hub_seq values for this batch's accepted records.

    PostgreSQL: from a sequence, under the department's lock held to the commit,
    so within a department hub_seq grows in commit order (what the read API's
    keyset pages need). SQLite: on from log_head.hub_seq, under its write lock.
    """
    if n == 0:
        return []
    if conn.dialect.name == "postgresql":
        # One row holding them all (not n rows to fetch one by one).
        q = "SELECT array(SELECT nextval('hub_seq_counter') FROM generate_series(1, %s))"
        return sorted(int(v) for v in conn.exec_driver_sql(q, (n,)).scalar_one())
    base = int(conn.execute(select(tables.log_head.c.hub_seq).where(tables.log_head.c.id == 1)).scalar_one())
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

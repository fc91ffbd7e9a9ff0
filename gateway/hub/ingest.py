"""Ingest a verified batch: validate each record, order it against the stored state, store, log, sign.

Two steps, so that the CPU-heavy part runs outside the write lock:
- `check_records` (no database): each record's envelope and its standard
  validation (`gateway.standard.validate.normalize`);
- `store_batch` (one transaction, on the request's connection, through the
  `gateway.hub.store.HubStore` of its database): under its department's lock
  only, record the request's nonce (a replay stores nothing), answer a batch
  id seen before, then load the stored state of the batch's keys and of the
  referenced materials/depots/agreements/attachments, decide each record's
  status in order (`gateway.hub.decide`, the same rules for every store), draw
  the accepted records' hub_seq, write them, their history rows and the
  per-record receipts (all naming the batch by batch_id); then, under the
  hub's write lock up to the commit, append the receipt-log entry and store
  the signed receipt (which carries log_seq/log_head). All or nothing.
  Batches of different departments thus overlap, and only the short log
  append is serialised.
"""

from __future__ import annotations

import random
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import date
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import bindparam, delete, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from gateway import localtime
from gateway.hub import tables
from gateway.hub.columnar_check import MIN_ROWS, proven_valid
from gateway.hub.db import after_commit, utcnow
from gateway.hub.decide import (  # noqa: F401 - Candidate, reason and ENVELOPE_LABELS are this module's API too
    ENVELOPE_LABELS,
    Candidate,
    Outcome,
    assign_hub_seqs,
    decide_batch,
    reason,
    receipt_rows,
    wanted,
)
from gateway.hub.forward.envelopes import UpwardSpec, batch_envelopes, encode, leaf_hashes
from gateway.hub.forward.withheld import WITHHELD, reject, stand_ins, withheld_of
from gateway.hub.receipt_log import Appended, next_entry
from gateway.hub.store import BatchIdTaken, HubStore
from gateway.hub.store.pg import SMALL_BATCH, PgHubStore
from gateway.hub.store.sqlite import SqliteHubStore
from gateway.protocol.batch import COMPACT_VERSION, PROTOCOL_VERSION, Batch, envelope_ok, record_problems
from gateway.protocol.receipts import compact_parts, sign_receipt
from gateway.protocol.suites import suite_of
from gateway.sqlite_flush import unflushed_commits
from gateway.standard.compiled import fast_normalize
from gateway.standard.schema import RECORD_TYPES, record_key
from gateway.standard.validate import DEFAULT_CONTEXT, ValidationContext, normalize

__all__ = [
    "SMALL_BATCH",
    "Candidate",
    "Nonce",
    "StoredBatch",
    "check_records",
    "claim_nonce",
    "store_batch",
    "stored_receipt",
]


def check_records(records: Iterable[dict[str, Any]], context: ValidationContext | None = None,
                  from_relay: bool = False, *, vectorise_from: int | None = MIN_ROWS) -> list[Candidate]:
    """Envelope and standard validation of every record; never touches the database.

    Every record is validated in full. First each envelope (`envelope_ok`, else `record_problems` names
    every problem). Then the plain upserts of each record type with at least `vectorise_from` records in
    the batch (None: never) are validated at once in Arrow (`gateway.hub.columnar_check`), which proves
    most of them valid and gives their canonical records; every other record — one it is not sure of, one
    with withheld fields, one of a type with fewer records — goes the row path: the compiled validator
    (`gateway.standard.compiled`), and for anything it does not pass `normalize`, which names every
    problem. The answers are the same either way (tests/test_hub_columnar_check.py).
    """
    ctx = context or DEFAULT_CONTEXT
    ref = ctx.today or localtime.today()  # once per batch; normalize would take the same
    out = [_envelope(rec) for rec in records]
    proven = proven_valid(out, ref, ctx, vectorise_from) if vectorise_from is not None else {}
    for i, c in enumerate(out):
        if c.envelope_ok and c.rec["op"] == "upsert":
            _check_data(c, proven.get(i), ref, ctx, from_relay)
    return out


def _envelope(rec: dict[str, Any]) -> Candidate:
    c = Candidate(rec)
    if not envelope_ok(rec):
        for fld, value, rule, message in record_problems(rec):
            c.reasons.append(reason(fld, ENVELOPE_LABELS.get(fld, fld), value, rule, message))
    typ = rec.get("type")
    if typ.__class__ is str and typ not in RECORD_TYPES:
        c.reasons.append(
            reason(
                "type",
                ENVELOPE_LABELS["type"],
                typ,
                "record_type",
                f"未知记录类型“{typ}”，应为 {', '.join(RECORD_TYPES)} 之一",
            )
        )
    if c.reasons:
        c.envelope_ok = False
    return c


def _check_data(c: Candidate, clean: dict[str, Any] | None, ref: date, ctx: ValidationContext, from_relay: bool) -> None:
    """Validate an upsert's data (`clean`: its canonical record, when the vectorised step proved it valid)."""
    rec = c.rec
    typ, data, hidden = rec["type"], rec["data"], None
    if clean is None:
        prov = rec.get("provenance")
        if prov.__class__ is dict and WITHHELD in prov:  # confidential fields withheld by a lower hub
            subst, problems = stand_ins(rec, from_relay)
            if problems:
                reject(c, problems)
                return
            if subst is not None:
                data, hidden = subst, withheld_of(rec)
        try:
            clean = fast_normalize(typ, data, ref, ctx)
            errors = [] if clean is not None else None
            if clean is None:
                clean, errors = normalize(typ, data, today=ref, context=ctx)
        except Exception as e:  # one odd record must never fail the batch
            c.reasons.append(reason("data", ENVELOPE_LABELS["data"], None, "invalid", f"记录无法校验：{e}"))
            return
        if errors:
            c.reasons.extend(e.as_dict() for e in errors)
            return
    key = record_key(typ, clean)
    if key != rec["key"]:
        c.reasons.append(
            reason(
                "key",
                ENVELOPE_LABELS["key"],
                rec["key"],
                "key_mismatch",
                f"记录键与数据不符：按数据应为“{key}”",
            )
        )
    c.clean = {k: v for k, v in clean.items() if k not in hidden} if hidden else clean


@dataclass
class StoredBatch:
    receipt: bytes
    signature: str
    replayed: bool  # True: the batch id was seen before; this is the original receipt
    conflict: str | None = None  # set when the batch id is taken by other content
    # Nothing stored, and the request is to be refused: "replay" (its nonce was used before: nothing of it
    # was written) or "record_type_not_allowed" (its nonce is recorded, as for every other refusal).
    refused: str | None = None
    # The forward outbox row it queued (its upward envelopes in "body", their "leaves"), when it queued one.
    queued: dict[str, Any] | None = None


@dataclass(frozen=True)
class Nonce:
    """A verified request's nonce: recorded in the batch's own transaction, so a replay is refused."""

    key_id: str
    nonce: str
    expires_at: int


_BATCH_BY_ID = select(tables.batches).where(tables.batches.c.batch_id == bindparam("b_id"))
_NONCE = insert(tables.nonces)
_PRUNE_NONCES = delete(tables.nonces).where(tables.nonces.c.expires_at < bindparam("now"))
PRUNE_ODDS = 0.01  # keep the replay cache small without a separate job


def _seen(
    department: str, digest: str, row_department: str, row_digest: str, receipt: bytes, signature: str
) -> StoredBatch:
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


# The store of each dialect; looked up per batch by name (a test stands in for a lost database through it).
_store_pg = PgHubStore
_store_sqlite = SqliteHubStore


def _open_store(conn: Connection) -> HubStore:
    return _store_pg(conn) if conn.dialect.name == "postgresql" else _store_sqlite(conn)


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
    forward: UpwardSpec | None = None,
    compact: bool = False,
) -> StoredBatch:
    """Store the batch in one transaction on `conn` (the request's connection, no transaction of SQLAlchemy's open).

    Under the department's lock, in this order: record `nonce` (a replay stores nothing: `refused`
    "replay"), answer a batch id seen before (its receipt, or `conflict`), refuse `not_allowed` record
    types, then decide and store every record. The commit waits for the disk (synchronous_commit on /
    SQLite FULL) before the receipt is answered. `registry_version`: that of the registry snapshot the
    request was verified against, when it was not read for this request; if the registry has moved on
    since, nothing is written and `refused` is "registry_changed" (the caller starts over). `forward`:
    the hub has an upper hub; a batch that accepted records is queued for it in the same transaction,
    with the upward envelopes of what it accepted (`gateway.hub.forward.envelopes`). `compact`: the client
    asked for a compact receipt (protocol 1.1, docs/protocol.md "Compact receipts").
    """
    store = _open_store(conn)
    try:
        stored, head = _store(
            store,
            conn,
            hub_key,
            hub_key_id,
            batch,
            candidates,
            key_id=key_id,
            digest=digest,
            nonce=nonce,
            not_allowed=not_allowed,
            registry_version=registry_version,
            forward=forward,
            compact=compact,
        )
    except BaseException:
        store.rollback()
        raise
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


def _store(
    store: HubStore,
    conn: Connection,
    hub_key: Ed25519PrivateKey,
    hub_key_id: str,
    batch: Batch,
    candidates: list[Candidate],
    *,
    key_id: str,
    digest: str,
    nonce: Nonce | None,
    not_allowed: Collection[str],
    registry_version: int | None,
    forward: UpwardSpec | None,
    compact: bool = False,
) -> tuple[StoredBatch, dict | None]:
    dept = batch.department
    begun = store.begin(
        dept,
        batch.batch_id,
        nonce=(nonce.key_id, nonce.nonce, nonce.expires_at) if nonce is not None else None,
        registry_version=registry_version,
        wanted=None if not_allowed else wanted(candidates),
        candidates=candidates,
    )
    if not begun.registry_ok:
        store.rollback()  # the nonce too: the request starts over against the registry as it is now
        return _REGISTRY_CHANGED, None
    early = _early_answer(begun.nonce_new, _seen(dept, digest, *begun.seen) if begun.seen else None, not_allowed)
    if early is not None:
        store.end_early(keep_nonce=early.refused != "replay")
        return early, None
    assert begun.stored is not None
    now = utcnow()
    out = decide_batch(candidates, begun.stored, dept, batch.batch_id, now)
    seqs = store.hub_seqs(len(out.accepted))
    assign_hub_seqs(out, seqs)
    queued = None
    if forward is not None and (out.counts["accepted"] or out.bumps):  # a seq advanced (duplicate, higher seq) goes up too
        # Built before the hub's write lock (taken by `write`), from the batch in memory: the forwarder sends it as is.
        envelopes = batch_envelopes(candidates, out, forward, batch.batch_id, now)
        queued = {"batch_id": batch.batch_id, "department": dept, "state": "queued", "forward_id": None,
                  "records": len(envelopes), "body": encode(envelopes),
                  "leaves": leaf_hashes(envelopes, forward.digest) if forward.digest is not None else None}
    head = store.write(dept, out, receipt_rows(batch.batch_id, dept, out.results, now))
    # The log's time is read under its lock, so it grows with seq as before (the UI's date bounds rely on it).
    logged = utcnow()
    entry, move, appended = next_entry(
        head,
        hub_key,
        kind="batch",
        status="ok",
        department=dept,
        key_id=key_id,
        batch_id=batch.batch_id,
        counts=out.counts,
        request_digest=digest,
        summary={"source": batch.source, "records": len(candidates)},
        hub_seq=max([int(head["hub_seq"]), *seqs]),
        time=logged,
    )
    body, signature = _sign(batch, dept, logged, appended, out, hub_key, hub_key_id, compact)
    if queued is not None:
        queued.update(queued_at=logged, log_seq=appended.seq)  # leaves in log order, after the batches before it
    try:
        store.append(entry, move, _batch_row(batch, dept, digest, appended, body, signature, logged), queued)
    except BatchIdTaken:
        # Another department's batch took this batch id after our check (its department lock is not
        # ours): ours is undone; answer as if that batch had been there first.
        return _taken(conn, batch.batch_id, dept, digest, nonce), None
    return StoredBatch(body, signature, False, queued=queued), head


def _sign(
    batch: Batch, dept: str, logged: str, appended: Appended, out: Outcome, hub_key: Ed25519PrivateKey, hub_key_id: str,
    compact: bool = False,
) -> tuple[bytes, str]:
    doc: dict[str, Any] = {
        "protocol": PROTOCOL_VERSION,
        "batch_id": batch.batch_id,
        "department": dept,
        "hub_time": logged,
        "log_seq": appended.seq,
        "log_head": appended.entry_hash,
        "results": out.results,
    }
    if compact:  # the accepted records as a Merkle root (hashed with the receipt key's suite), the rest listed
        doc["protocol"] = COMPACT_VERSION
        doc["accepted"], doc["results"] = compact_parts(out.results, dept, suite_of(hub_key).digest)
    return sign_receipt(doc, hub_key, hub_key_id)


def _batch_row(
    batch: Batch, dept: str, digest: str, appended: Appended, body: bytes, signature: str, logged: str
) -> dict[str, Any]:
    return {
        "batch_id": batch.batch_id,
        "department": dept,
        "source": batch.source,
        "request_digest": digest,
        "log_seq": appended.seq,
        "receipt": body,
        "signature": signature,
        "received_at": logged,
    }


def _taken(conn: Connection, batch_id: str, dept: str, digest: str, nonce: Nonce | None) -> StoredBatch:
    """After losing the batch id to another department's batch: its receipt, or the conflict (nonce recorded)."""
    if nonce is not None and not claim_nonce(conn, nonce):
        return StoredBatch(b"", "", False, refused="replay")
    with conn.begin():
        taken = stored_receipt(conn, batch_id, dept, digest)
    assert taken is not None  # the primary key said so, and batches are never deleted
    return taken

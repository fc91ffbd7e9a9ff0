"""Batches from the outbox: claim pending rows in order, rebuild a sent batch byte for byte.

A batch holds rows of one source, oldest outbox id first, bounded by count and
by body size. Claiming marks the rows `sent` with the batch id and records the
batch (id, created) in the same transaction; until its receipt is stored the
batch is never rebuilt differently, so every resend carries the same batch id
and the same body, and the hub answers a batch it has seen with its original
receipt.

Per-key order: a record key belongs to one source (fingerprints are unique per
type and key) and rows of a source are batched in outbox order. One pusher
holds the push lock at a time; it may have a few batches in flight at once,
but a batch being claimed stops before the first row whose key is in a batch
still in flight (`busy`), so the batches in flight together never share a key
and the hub sees the edits of a key in the order they were made. The hub also
refuses a lower `seq` than it holds as `stale`, so even an out-of-order
arrival cannot undo a newer edit.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence, Set
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine
from sqlalchemy.engine import Connection

from gateway.protocol.batch import PROVENANCE_FIELDS, encode_batch, make_batch, make_record
from gateway.protocol.canonical import canonical_json
from gateway.store import outbox as outbox_store
from gateway.store.db import begin_immediate, utcnow
from gateway.store.outbox import BATCH_COLUMNS

# Room for the envelope around the records ({"batch_id":..,"department":..}).
_ENVELOPE_ROOM = 1024

_COLUMNS = BATCH_COLUMNS  # the outbox row a batch is built from, read as tuples (gateway/store/outbox.py)


class BatchRow(NamedTuple):  # a NamedTuple: one per record of a bulk push, built faster than a frozen dataclass
    outbox_id: int
    record_type: str
    record_key: str
    seq: int
    version: str


RecordId = tuple[str, str]  # (record_type, record_key)


@dataclass(frozen=True)
class Batch:
    batch_id: str
    source: str
    created: str
    rows: tuple[BatchRow, ...]
    body: bytes  # canonical JSON, exactly what is signed and sent
    resend: bool = False  # rebuilt from the store: its first attempt was counted already

    @property
    def outbox_ids(self) -> list[int]:
        return [r.outbox_id for r in self.rows]

    @property
    def record_ids(self) -> set[RecordId]:
        return {(r.record_type, r.record_key) for r in self.rows}


def new_batch_id() -> str:
    return str(uuid.uuid4())


def wire_record(row: Any, department: str) -> dict[str, Any]:
    """One outbox row as the batch carries it (see docs/protocol.md)."""
    return make_record(
        row.record_type,
        department,
        row.record_key,
        row.op,
        row.seq,
        row.version,
        orjson.loads(row.data) if row.data is not None else None,
        updated_at=row.updated_at,
        provenance=orjson.loads(row.provenance) if row.provenance else None,
    )


def _wire_record_of(row: tuple[Any, ...], department: str) -> dict[str, Any]:
    """wire_record of an outbox row read as a tuple of _COLUMNS."""
    _id, _source, rtype, rkey, op, seq, version, data, updated_at, provenance = row
    return make_record(
        rtype,
        department,
        rkey,
        op,
        seq,
        version,
        orjson.loads(data) if data is not None else None,
        updated_at=updated_at,
        provenance=orjson.loads(provenance) if provenance else None,
    )


def batch_body(batch_id: str, department: str, source: str, created: str, records: list[dict[str, Any]]) -> bytes:
    return encode_batch(make_batch(department, source, records, batch_id=batch_id, created=created))


_NO_PROVENANCE = {f: None for f in PROVENANCE_FIELDS}


def wire_bytes(row: Any, department: str) -> bytes:
    """canonical_json(wire_record(row, department)), without parsing and re-serialising the stored data.

    The outbox keeps each record's data as its canonical JSON text and its
    version as that text's sha256; when the hash holds, the text is spliced in
    as is (it is exactly what re-serialising would give). Anything else takes
    the long way. `row` is an outbox row of _COLUMNS, read as a tuple (faster
    than by attribute).
    """
    _id, _source, rtype, rkey, op, seq, version, data, updated_at, provenance = row
    if data is not None and op != "delete" and data[:1] == "{":
        raw = data.encode()
        if hashlib.sha256(raw).hexdigest() == version:
            prov = dict(_NO_PROVENANCE)
            if provenance:
                prov.update(orjson.loads(provenance))
            # make_record's keys but "data", which sorts first among them and is spliced in front.
            rest = canonical_json({
                "department": department, "key": rkey, "op": op, "provenance": prov, "seq": seq, "type": rtype,
                "updated_at": updated_at, "version": version,
            })
            return b'{"data":' + raw + b"," + rest[1:]
    return canonical_json(_wire_record_of(tuple(row), department))


def spliced_body(batch_id: str, department: str, source: str, created: str, records: list[bytes]) -> bytes:
    """batch_body() from records already in canonical JSON: byte for byte the same."""
    envelope = encode_batch(make_batch(department, source, [], batch_id=batch_id, created=created))
    # Quotes inside JSON strings are escaped, so this marker occurs once, as the key.
    return envelope.replace(b'"records":[]', b'"records":[' + b",".join(records) + b"]", 1)


def _batch_row(row: Any) -> BatchRow:
    return BatchRow(row[0], row[2], row[3], row[5], row[6])  # id, record_type, record_key, seq, version (_COLUMNS)


def claim_batch(
    engine: Engine,
    department: str,
    *,
    batch_size: int,
    max_bytes: int,
    only_ids: Iterable[int] | None = None,
    busy: Set[RecordId] = frozenset(),
) -> Batch | None:
    """Take the oldest pending rows (of the oldest pending row's source) into a new batch; None if none.

    `only_ids` restricts the batch to those outbox rows (the per-record push).
    A single record larger than `max_bytes` still goes alone: the hub decides.
    The batch ends before the first row whose record is in `busy` (in a batch
    still in flight); None when the very first row is.
    """
    ids = sorted(set(only_ids)) if only_ids is not None else None
    if ids == []:
        return None
    with engine.begin() as conn:
        begin_immediate(conn)  # read and claim under one write lock: the rows read are the rows marked
        return claim_in(conn, department, batch_size=batch_size, max_bytes=max_bytes, only_ids=ids, busy=busy)


def claim_in(
    conn: Connection,
    department: str,
    *,
    batch_size: int,
    max_bytes: int,
    only_ids: Iterable[int] | None = None,
    busy: Set[RecordId] = frozenset(),
) -> Batch | None:
    """claim_batch inside the caller's write transaction (the per-record push claims where it enqueued)."""
    ids = sorted(set(only_ids)) if only_ids is not None else None
    if ids == []:
        return None
    # Prepared statements on the DBAPI cursor of the same connection (same transaction): building and
    # compiling Core statements cost more than running them for the one-record batch of a clerk's edit.
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        source = outbox_store.first_pending_source(cursor, ids)
    finally:
        cursor.close()
    if source is None:
        return None
    # Plain tuples, without a SQLAlchemy Row per record (a bulk push reads every record once here).
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    outbox_store.read_pending(cursor, source, ids, batch_size)
    records: list[bytes] = []
    rows: list[BatchRow] = []
    size = _ENVELOPE_ROOM
    try:
        for row in cursor:
            if busy and (row[2], row[3]) in busy:
                break  # an earlier edit of this record is still in flight: this one waits for its receipt
            rec = wire_bytes(row, department)
            n = len(rec) + 1
            if rows and size + n > max_bytes:
                break
            size += n
            records.append(rec)
            rows.append(_batch_row(row))
    finally:
        cursor.close()  # a read cut short ends here, before the same transaction writes
    if not rows:
        return None
    batch_id, created = new_batch_id(), utcnow()
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        outbox_store.claim(cursor, batch_id, source, created, [r.outbox_id for r in rows], only=ids is not None)
    finally:
        cursor.close()
    return Batch(batch_id, source, created, tuple(rows), spliced_body(batch_id, department, source, created, records))


def inflight_batch_ids(engine: Engine, only_ids: Sequence[int] | None = None) -> list[str]:
    """Batches sent but not yet receipted, oldest first (left by a crash, a lost response, a refusal)."""
    with engine.connect() as conn:
        return outbox_store.sent_batch_ids(conn, only_ids)


def load_batch(engine: Engine, batch_id: str, department: str) -> Batch | None:
    """Rebuild a sent batch exactly as first built; None when none of its rows is still `sent`."""
    with engine.connect() as conn:
        head = outbox_store.batch_head(conn, batch_id)
        if head is None:
            return None
        found = outbox_store.sent_rows(conn, batch_id)
    if not found:
        with engine.begin() as conn:
            outbox_store.release(conn, batch_id, "no rows left in state sent", rows_too=False)
        return None
    source, created = head
    body = spliced_body(batch_id, department, source, created, [wire_bytes(r, department) for r in found])
    return Batch(batch_id, source, created, tuple(_batch_row(r) for r in found), body, resend=True)


def note_attempt(engine: Engine, batch_id: str) -> None:
    """Count a resend before the request goes out, so a crash mid-request is counted too."""
    now = utcnow()
    with engine.begin() as conn:
        outbox_store.count_attempt(conn, batch_id, now)


def note_failure(engine: Engine, batch_id: str, status: str, error: str, next_attempt_at: str | None) -> None:
    with engine.begin() as conn:
        outbox_store.note_failure(conn, batch_id, status, error, next_attempt_at)


def release_batch(engine: Engine, batch_id: str, reason: str) -> None:
    """Put a batch's rows back to pending, unsent (the hub said it did not take the batch at all)."""
    with engine.begin() as conn:
        outbox_store.release(conn, batch_id, reason)

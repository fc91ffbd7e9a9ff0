"""Store a verified receipt and settle its batch's rows, all in one transaction.

A record counts as delivered only once the hub's signed receipt that says so is
stored here: the signed document goes into batch_receipts exactly as received
(the department's evidence), and the outbox rows move to `delivered` (accepted,
duplicate, stale) or `dead` with a dead letter carrying the hub's reasons
(rejected). Per record, only what a record needs on its own gets a receipts row:
a rejection, a duplicate, a stale version. An accepted record's receipt is its
batch's signed document (gateway/push/record_receipts.py reads both as one
view), so a bulk push writes no row per accepted record. A row the receipt does
not mention goes back to `pending` and is sent again in a later batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import Engine

from gateway.errors import RetriableError
from gateway.logs import log
from gateway.push.batching import Batch, BatchRow
from gateway.push.deadletters import close_superseded
from gateway.push.record_receipts import DELIVERED_STATUSES, ReceiptResult, of_outbox
from gateway.sqlite_flush import unflushed_commits
from gateway.store import outbox as outbox_store
from gateway.store import receipts as receipt_store
from gateway.store.db import utcnow
from gateway.store.receipts import BatchReceiptRow, DeadLetterRow

LOG = logging.getLogger(__name__)

class ReceiptUnverified(RetriableError):
    """The hub's answer cannot be taken as a receipt for this batch; the batch stays `sent` and is retried."""


_STATUSES = frozenset((*DELIVERED_STATUSES, "rejected"))


def match_results(doc: dict[str, Any], batch: Batch, department: str) -> tuple[list[tuple[BatchRow, dict[str, Any]]], list[BatchRow]]:
    """Pair the receipt's results with the batch's rows by (type, key, seq, version).

    Raises ReceiptUnverified when the receipt is not about this batch at all.
    Returns (matched pairs, rows the receipt does not mention).
    """
    if doc.get("batch_id") != batch.batch_id:
        raise ReceiptUnverified(f"receipt is for batch {doc.get('batch_id')!r}, not {batch.batch_id}")
    if doc.get("department") != department:
        raise ReceiptUnverified(f"receipt is for department {doc.get('department')!r}, not {department!r}")
    results = doc.get("results")
    if not isinstance(results, list):
        raise ReceiptUnverified("receipt has no results list")
    in_order = _in_batch_order(results, batch.rows)
    if in_order is not None:
        return in_order, []
    # The version is part of the match: a result about other content is no receipt for ours.
    by_id: dict[tuple[str, str, int, str], dict[str, Any]] = {}
    for r in results:
        if isinstance(r, dict) and r.get("status") in _STATUSES:
            by_id[(str(r.get("type")), str(r.get("key")), r.get("seq"), str(r.get("version")))] = r  # type: ignore[index]
    matched: list[tuple[BatchRow, dict[str, Any]]] = []
    missing: list[BatchRow] = []
    for row in batch.rows:
        r = by_id.get((row.record_type, row.record_key, row.seq, row.version))
        if r is None:
            missing.append(row)
        else:
            matched.append((row, r))
    return matched, missing


def _in_batch_order(results: list[Any], rows: Sequence[BatchRow]) -> list[tuple[BatchRow, dict[str, Any]]] | None:
    """The pairs when the hub answered one result per record in batch order (as it does); else None.

    The same test as the general match, result by result, without building a dict of them all.
    """
    if len(results) != len(rows):
        return None
    pairs = list(zip(rows, results, strict=True))
    for row, r in pairs:
        if not (
            type(r) is dict and r.get("status") in _STATUSES and r.get("type") == row.record_type
            and r.get("key") == row.record_key and r.get("seq") == row.seq and r.get("version") == row.version
        ):
            return None
    return pairs


def store_receipt(
    engine: Engine, batch: Batch, body: bytes, signature: str, doc: dict[str, Any], department: str
) -> list[ReceiptResult]:
    """Record a verified receipt and settle the batch's rows; idempotent per batch id."""
    matched, missing = match_results(doc, batch, department)
    now = utcnow()
    hub_time, log_head = doc.get("hub_time"), doc.get("log_head")
    batch_id = batch.batch_id
    out: list[ReceiptResult] = []
    rows: list[Any] = []  # in ReceiptRow order: the results other than accepted (module docstring)
    for row, r in matched:
        status, reasons, hub_seq = str(r["status"]), r.get("reasons"), r.get("hub_seq")
        reasons = list(reasons) if reasons else []
        out.append(ReceiptResult(
            row.outbox_id, batch_id, row.record_type, row.record_key, row.seq, status, reasons, hub_seq, hub_time,
            log_head, now,
        ))
        if status != "accepted":
            rows.append((
                row.outbox_id, batch_id, row.record_type, row.record_key, row.seq, status,
                orjson.dumps(reasons).decode() if reasons else None, hub_seq, hub_time, log_head, now,
            ))
    ids = batch.outbox_ids
    rejected = [x for x in out if not x.delivered]
    # One transaction on a pooled DBAPI connection, with the store's prepared statements: a SQLAlchemy
    # Connection and Core statements compiled per call cost more than the writes for a one-record batch.
    raw = engine.raw_connection()
    # The receipt's commit skips the wait for the disk (WAL only): a receipt lost in a power cut is
    # fetched again, byte for byte. The batch (its id, body and rows, marked `sent`) was committed with
    # a full flush before it was sent, so after a restart the push worker resends the identical body
    # under the same batch id, and the hub answers a batch id it has stored with the receipt it signed
    # then (gateway.hub.ingest: stored_receipt), storing nothing twice.
    try:
        with unflushed_commits(raw):
            try:
                cursor = raw.cursor()
                # First statement is a write, so the whole transaction holds the write
                # lock from here; a second pusher storing the same receipt finds the row.
                stored = receipt_store.store_batch_receipt(cursor, BatchReceiptRow(
                    batch_id, body, signature, str(doc.get("hub_key_id", "")), doc.get("log_seq"), log_head, now,
                ))
                if stored:
                    receipt_store.store_results(cursor, rows)
                    receipt_store.store_dead_letters(cursor, [
                        DeadLetterRow(x.outbox_id, x.record_type, x.record_key, x.seq, orjson.dumps(x.reasons).decode(), now)
                        for x in rejected
                    ])
                    outbox_store.settle_batch(
                        cursor, batch_id, ids, [x.outbox_id for x in rejected], [m.outbox_id for m in missing], now,
                    )
                    # A later version taken by the hub closes the earlier returns of its key.
                    close_superseded(cursor, [
                        (x.record_type, x.record_key, x.seq) for x in out if x.status in ("accepted", "duplicate")
                    ], now)
                cursor.close()
                raw.commit()
            except BaseException:
                raw.rollback()
                raise
    finally:
        raw.close()  # back to the pool
    if not stored:
        # Stored by an earlier attempt (and settled in that same transaction): answer with what it stored.
        log(LOG, logging.INFO, "receipt already stored", batch_id=batch_id)
        return results_for(engine, ids)
    if missing:
        log(
            LOG, logging.ERROR, "receipt does not mention some records; they go back to pending",
            batch_id=batch.batch_id, missing=len(missing), first=f"{missing[0].record_type}/{missing[0].record_key}",
        )
    if rejected:
        log(LOG, logging.WARNING, "hub rejected records; kept as dead letters", batch_id=batch.batch_id, rejected=len(rejected))
    return out


def results_for(engine: Engine, outbox_ids: Iterable[int], conn: Any = None) -> list[ReceiptResult]:
    """The latest stored receipt result of each given outbox row (rows without one are left out)."""
    if conn is not None:
        return of_outbox(conn, outbox_ids)
    with engine.connect() as c:
        return of_outbox(c, outbox_ids)

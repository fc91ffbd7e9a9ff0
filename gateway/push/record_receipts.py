"""Each record's receipt, read from where it is kept: its batch's signed receipt, or a receipts row of its own.

A receipt stores per record only what a record needs on its own (gateway/push/receipts.py): a rejection,
a duplicate or a stale version gets a receipts row; an accepted record has none. Its receipt is the signed
batch receipt (batch_receipts) of the batch its outbox row was delivered in, and its `hub_seq` is read
from that document (a compact receipt's `accepted.hub_seqs`, in batch order of the records it did not
list; a full receipt's result for the record). A bulk push of a million records so writes no million rows,
and every reader (the record push's answer, the deliveries pages, `gateway receipts verify`, the
upper-hub check) goes through this module for the same per-record view. Rows of accepted records stored
before schema version 7 are read as they are.

What is read here is what the gateway stored after verifying the signature; `gateway receipts verify`
(gateway/push/evidence.py) checks the documents again offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import orjson
from sqlalchemy.engine import Connection

from gateway.protocol.receipts import is_compact
from gateway.store import receipts as receipt_store
from gateway.store.receipts import Member

DELIVERED_STATUSES = ("accepted", "duplicate", "stale")


class ReceiptResult(NamedTuple):
    """What the hub said about one record (a NamedTuple: a bulk push makes one per record)."""

    outbox_id: int | None
    batch_id: str
    record_type: str
    record_key: str
    seq: int
    status: str  # accepted | rejected | duplicate | stale
    reasons: list[Any]
    hub_seq: int | None
    hub_time: str | None
    log_head: str | None
    received_at: str | None = None

    @property
    def delivered(self) -> bool:
        return self.status in DELIVERED_STATUSES


def accepted_hub_seqs(doc: dict[str, Any], batch: Sequence[Member]) -> dict[int, int | None]:
    """outbox id -> hub_seq of each of the batch's rows the signed document accepts.

    `batch` is every outbox row of the batch in outbox order (the body's order). For a compact receipt the
    accepted records are those it does not list, their hub_seqs in that order; when the rows do not add up
    to the receipt's count (a row gone from the store) their hub_seq is unknown (None)."""
    if is_compact(doc):
        count, seqs, listed = _compact(doc)
        at = [m for i, m in enumerate(batch) if i not in listed]
        if len(at) == count == len(seqs):
            return {m.id: s for m, s in zip(at, seqs, strict=True)}
        return {m.id: None for m in at}
    signed = signed_accepted(doc)
    return {m.id: signed[k] for m in batch if (k := (m.record_type, m.record_key, m.seq, m.version)) in signed}


def _compact(doc: dict[str, Any]) -> tuple[Any, list[Any], set[Any]]:
    """(accepted count, hub_seqs, listed indices) of a compact receipt, as stored (checked when it was)."""
    acc = doc.get("accepted") if isinstance(doc.get("accepted"), dict) else {}
    seqs = acc.get("hub_seqs") if isinstance(acc.get("hub_seqs"), list) else []
    return acc.get("count"), seqs, {r.get("index") for r in doc.get("results") or [] if isinstance(r, dict)}


def signed_accepted(doc: dict[str, Any]) -> dict[tuple[Any, Any, Any, Any], Any]:
    """(type, key, seq, version) -> hub_seq of the records a full receipt accepts."""
    return {
        (r.get("type"), r.get("key"), r.get("seq"), r.get("version")): r.get("hub_seq")
        for r in doc.get("results") or [] if isinstance(r, dict) and r.get("status") == "accepted"
    }


def _listed(row: Any) -> ReceiptResult:
    return ReceiptResult(
        row.outbox_id, row.batch_id, row.record_type, row.record_key, row.seq, row.status,
        orjson.loads(row.reasons) if row.reasons else [], row.hub_seq, row.hub_time, row.log_head, row.received_at,
    )


class _Batches:
    """Signed documents and outbox rows of batches, each read once however many of its records are asked."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.docs: dict[str, tuple[dict[str, Any], str] | None] = {}
        self.seqs: dict[str, dict[int, int | None]] = {}  # of whole batches (accepted_hub_seqs)
        self.signed: dict[str, dict[tuple[Any, Any, Any, Any], Any]] = {}  # of full receipts (signed_accepted)

    def load(self, batch_ids: Iterable[str]) -> None:
        todo = [b for b in dict.fromkeys(batch_ids) if b not in self.docs]
        found = receipt_store.signed_documents(self.conn, todo)
        for b in todo:
            if b in found:
                body, at = found[b]
                self.docs[b] = (orjson.loads(body), at)
            else:
                self.docs[b] = None

    def accepted(self, m: Member, batch: Sequence[Member] | None = None) -> ReceiptResult | None:
        """The implied receipt of outbox row `m`: accepted, when it was delivered in a receipted batch
        whose signed document accepts it. `batch`: all the batch's rows, when the caller read them."""
        if m.state != "delivered" or m.batch_id is None:
            return None
        self.load([m.batch_id])
        got = self.docs[m.batch_id]
        if got is None:
            return None
        doc, at = got
        if batch is not None:
            if m.batch_id not in self.seqs:
                self.seqs[m.batch_id] = accepted_hub_seqs(doc, batch)
            if m.id not in self.seqs[m.batch_id]:
                return None
            hub_seq = self.seqs[m.batch_id][m.id]
        elif not is_compact(doc):  # a full receipt names its records: no batch rows needed
            if m.batch_id not in self.signed:
                self.signed[m.batch_id] = signed_accepted(doc)
            k = (m.record_type, m.record_key, m.seq, m.version)
            if k not in self.signed[m.batch_id]:
                return None
            hub_seq = self.signed[m.batch_id][k]
        else:
            # One record of a compact receipt: its place in the batch counted, not the batch read.
            found = compact_hub_seq(doc, *receipt_store.place(self.conn, m))
            if found is None:
                return None
            hub_seq = found[0]
        return ReceiptResult(m.id, m.batch_id, m.record_type, m.record_key, m.seq, "accepted", [], hub_seq,
                             doc.get("hub_time"), doc.get("log_head"), at)


def compact_hub_seq(doc: dict[str, Any], index: int, rows: int) -> tuple[int | None] | None:
    """(hub_seq,) of the batch's record at `index` (of `rows`) when the compact receipt accepts it (hub_seq None
    when the rows do not add up to the receipt's count); None when the receipt lists it (not accepted)."""
    count, seqs, listed = _compact(doc)
    if index in listed:
        return None
    if rows - len(listed) != count or len(seqs) != count:
        return (None,)
    return (seqs[index - sum(1 for i in listed if isinstance(i, int) and i < index)],)


def of_outbox(conn: Connection, outbox_ids: Iterable[int]) -> list[ReceiptResult]:
    """The latest receipt of each given outbox row, in outbox order (rows without one are left out)."""
    ids = sorted(set(outbox_ids))
    if not ids:
        return []
    latest: dict[int, ReceiptResult] = {}
    for row in receipt_store.listed_rows(conn, outbox_ids=ids):
        latest[row.outbox_id] = _listed(row)
    batches = _Batches(conn)
    rows = receipt_store.outbox_members(conn, ids)
    batches.load(m.batch_id for m in rows if m.batch_id is not None)
    for m in rows:
        if m.batch_id is not None and (m.id not in latest or latest[m.id].batch_id != m.batch_id):
            implied = batches.accepted(m)
            if implied is not None:
                latest[m.id] = implied
    return [latest[i] for i in ids if i in latest]


def of_batch(conn: Connection, batch_id: str) -> list[ReceiptResult]:
    """Every record receipt of a batch, in the batch's order."""
    listed = {(r.outbox_id, r.batch_id): _listed(r) for r in receipt_store.listed_rows(conn, batch_ids=[batch_id])}
    batches = _Batches(conn)
    out: list[ReceiptResult] = []
    rows = receipt_store.members(conn, batch_id)
    for m in rows:
        r = listed.pop((m.id, batch_id), None) or batches.accepted(m, rows)
        if r is not None:
            out.append(r)
    # Rows of this batch whose outbox row has since left it (sent again in a later batch, or gone).
    out.extend(listed.values())
    return out


def of_record(conn: Connection, record_type: str, record_key: str, limit: int = 100) -> list[ReceiptResult]:
    """The record's newest `limit` receipts, newest first."""
    found = {(r.outbox_id, r.batch_id): _listed(r)
             for r in receipt_store.listed_rows(conn, record=(record_type, record_key), limit=limit)}
    batches = _Batches(conn)
    rows = receipt_store.record_members(conn, record_type, record_key, limit)
    batches.load(m.batch_id for m in rows)
    for m in rows:
        if (m.id, m.batch_id) not in found and (implied := batches.accepted(m)) is not None:
            found[(m.id, m.batch_id)] = implied
    return sorted(found.values(), key=lambda r: (r.received_at or "", r.outbox_id or 0), reverse=True)[:limit]


def counts_by_batch(conn: Connection, batch_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """batch id -> {status: records} of these batches (the deliveries page: counted, no record read)."""
    if not batch_ids:
        return {}
    out: dict[str, dict[str, int]] = {}
    delivered_listed: dict[str, int] = {}
    for b, status, n in receipt_store.listed_counts(conn, batch_ids):
        out.setdefault(b, {})[status] = n
        if status in DELIVERED_STATUSES:
            delivered_listed[b] = delivered_listed.get(b, 0) + n
    receipted = receipt_store.receipted(conn, batch_ids)
    for b, delivered in receipt_store.delivered_counts(conn, [b for b in batch_ids if b in receipted]).items():
        # Delivered rows without a row of their own are the accepted ones (module docstring).
        if (implied := delivered - delivered_listed.get(b, 0)) > 0:
            counts = out.setdefault(b, {})
            counts["accepted"] = counts.get("accepted", 0) + implied
    return out


def as_row(r: ReceiptResult) -> dict[str, Any]:
    """A receipt as the pages show it (reasons as the stored JSON text, as the `reasons` filter reads it)."""
    d = r._asdict()
    d["reasons"] = orjson.dumps(r.reasons).decode() if r.reasons else None
    return d

"""The forward outbox: claim queued batches into upward batches, and settle them with the upper hub's receipt.

A batch the hub stored with accepted records was queued (`forward_outbox`, state `queued`) in its own
transaction, with the upward envelopes of what it accepted (`gateway.hub.forward.envelopes`). A claim
takes the oldest queued batches of one department (in receipt-log order), puts their envelopes together
into upward batches of at most `batch_size` records, and stores each (`forward_batches`, state `sent`) with
its exact body (`forward_bodies`) in the same transaction that marks the queue rows `claimed`. A later
version of a key always leaves after an earlier one (and the upper hub would answer an earlier one
arriving late `stale`). Rows queued without envelopes (`backfill`, or before they were stored) have the
records they wrote that are still current read back (a record overwritten since leaves with the later
batch instead). The body is signed anew for every attempt but never rebuilt, so a resend after a crash or
a lost answer is the same batch id with the same bytes, which the upper hub answers with its first
receipt (exactly once).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from sqlalchemy import Engine, Text, and_, bindparam, cast, func, or_, select, update
from sqlalchemy.engine import Connection

from gateway.hub import tables
from gateway.hub.db import utcnow, write_tx
from gateway.hub.forward.envelopes import UpwardSpec, upward_body, upward_record
from gateway.hub.forward.upstream import batch_records
from gateway.protocol.canonical import canonical_json
from gateway.sqlite_flush import unflushed_commits

CLAIM_BATCHES = 200  # queued batches looked at per claim

_o, _f, _fb = tables.forward_outbox.c, tables.forward_batches.c, tables.forward_bodies.c
_r, _rc = tables.records.c, tables.receipts.c

# The forwarder's statements, built once from the declared tables: it runs them for every upward batch, and
# building each anew (and its cache key) was a good part of its CPU per batch.
_QUEUED_DEPARTMENT = select(_o.department).where(_o.state == "queued").order_by(_o.log_seq, _o.queued_at).limit(1)
_QUEUED = (select(_o.batch_id, _o.records, _o.body.is_(None).label("bare"), _o.log_seq)
           .where(and_(_o.state == "queued", _o.department == bindparam("department")))
           .order_by(_o.log_seq, _o.queued_at).limit(CLAIM_BATCHES).with_for_update(skip_locked=True))
_ENVELOPES = select(_o.batch_id, _o.body, _o.leaves).where(_o.batch_id.in_(bindparam("ids", expanding=True)))
_SUPERSEDED = update(tables.forward_outbox).where(_o.batch_id == bindparam("b")).values(state="superseded")
# The envelopes now live in the upward body: the queue row keeps only which batch carried it.
_CLAIMED = (update(tables.forward_outbox).where(_o.batch_id == bindparam("b"))
            .values(state="claimed", forward_id=bindparam("fid"), body=None, leaves=None))
_PENDING = (select(_f.forward_id, _f.department, _fb.body, _f.records, _f.attempts, _fb.leaves)
            .select_from(tables.forward_batches.join(tables.forward_bodies, _fb.forward_id == _f.forward_id))
            .where(_f.state == "sent")
            # The batches of one claim share its time: among them, the order of the queued batches they carry.
            .order_by(_f.claimed_at, select(func.min(_o.log_seq)).where(_o.forward_id == _f.forward_id)
                      .scalar_subquery(), _f.forward_id)
            .limit(bindparam("limit")))
_SETTLE = update(tables.forward_batches).where(_f.forward_id == bindparam("fid")).values(
    state="delivered", delivered_at=bindparam("at"), receipt=bindparam("receipt"), signature=bindparam("signature"),
    upstream_key_id=bindparam("upstream_key_id"), log_seq=bindparam("upstream_log_seq"), attempts=_f.attempts + 1,
    last_error=None)
_FAILED = update(tables.forward_batches).where(_f.forward_id == bindparam("fid")).values(
    attempts=_f.attempts + 1, last_error=bindparam("error"))
_REFUSED = _FAILED.values(state="refused")


@dataclass(frozen=True)
class ForwardBatch:
    forward_id: str
    department: str
    body: bytes
    records: int
    attempts: int = 0
    leaves: bytes | None = None  # the records' leaf hashes under the upper hub's digest (envelopes.leaf_hashes)


class Entry(NamedTuple):
    """A queued batch as the claim groups it."""

    batch_id: str
    records: int  # its envelopes
    body: bytes  # their JSON array
    leaves: bytes | None  # their leaf hashes (None: read back, or stored before leaves were)


Bind = Engine | Connection  # an engine, or the forwarder's own connection (PostgreSQL: the one holding its lock)


class Handed:
    """Queued rows' envelopes handed over in memory by this process's ingest once their batch committed, so
    the claim need not read them back: the same bytes it stored (reading ~250 KB of bytea back was ~1.5 µs a
    record of psycopg's CPU). A row not handed over (another worker's, a restart's, one dropped here to keep
    within `max_bytes`) is read from the outbox as before."""

    def __init__(self, max_bytes: int = 32 << 20) -> None:
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # batch id -> (department, log_seq, envelopes, leaves), in the order handed over
        self._rows: OrderedDict[str, tuple[str, int, bytes, bytes | None]] = OrderedDict()
        self._bytes = 0

    def put(self, batch_id: str, department: str, log_seq: int, body: bytes, leaves: bytes | None) -> None:
        with self._lock:
            if batch_id in self._rows:
                return
            self._rows[batch_id] = (department, log_seq, body, leaves)
            self._bytes += len(body) + len(leaves or b"")
            while self._bytes > self.max_bytes and self._rows:  # the oldest go: the claim reads them back
                self._drop(next(iter(self._rows)))

    def take(self, batch_id: str) -> tuple[bytes, bytes | None] | None:
        with self._lock:
            if batch_id not in self._rows:
                return None
            _dept, _seq, body, leaves = self._drop(batch_id)
            return body, leaves

    def drop_claimed(self, department: str, oldest_queued: int) -> None:
        """Forget `department`'s rows logged before its oldest still queued: a claim read them from the outbox
        while they were being handed over (they are claimed already)."""
        with self._lock:
            for b in [b for b, (d, seq, _, _) in self._rows.items() if d == department and seq < oldest_queued]:
                self._drop(b)

    def _drop(self, batch_id: str) -> tuple[str, int, bytes, bytes | None]:
        row = self._rows.pop(batch_id)
        self._bytes -= len(row[2]) + len(row[3] or b"")
        return row

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._rows)


@contextmanager
def reading(bind: Bind) -> Iterator[Connection]:
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            yield conn
        return
    try:
        yield bind
    finally:
        bind.rollback()  # end the read's transaction: the connection is kept for the next step


@contextmanager
def writing(bind: Bind, *, durable: bool = True) -> Iterator[Connection]:
    """A write transaction; `durable` False: its commit does not wait for the disk (PostgreSQL
    synchronous_commit off, SQLite `gateway.sqlite_flush`), for writes a crash may lose without harm."""
    if isinstance(bind, Connection):
        with bind.begin():
            if not durable:
                bind.exec_driver_sql("SET LOCAL synchronous_commit TO off")
            yield bind
        return
    if durable:
        with write_tx(bind) as conn:
            yield conn
        return
    with bind.connect() as raw:
        conn = raw.execution_options(hub_immediate=True)
        relax = unflushed_commits(conn.connection) if conn.dialect.name == "sqlite" else nullcontext(False)
        with relax, conn.begin():
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql("SET LOCAL synchronous_commit TO off")
            yield conn


def queued_department(bind: Bind) -> str | None:
    with reading(bind) as conn:
        return conn.execute(_QUEUED_DEPARTMENT).scalar()


def claim(bind: Bind, department: str, *, hub_key_id: str, relay_key: str, batch_size: int,
          confidential: bool = False, handed: Handed | None = None) -> list[ForwardBatch]:
    """Claim the oldest queued batches of `department` into upward batches (one transaction); [] when none.

    A queued row holds its batch's upward envelopes, made when it was accepted (`envelopes`); they go up as
    they are. Only a row without them (backfilled, or queued before they were stored) has its records read
    back here, with this hub's link and, without `confidential` (the upper level's grant), the standard's
    confidential fields withheld. `handed`: envelopes this process's ingest handed over (`Handed`), taken
    from there instead of the outbox."""
    with writing(bind) as conn:
        queued = conn.execute(_QUEUED, {"department": department}).all()
        if not queued:
            return []
        spec = UpwardSpec(hub_key_id, relay_key, confidential)
        bare = [b for b, _, is_bare, _ in queued if is_bare]
        read_back = _current_records(conn, department, bare, spec) if bare else {}
        stored = {b: got for b, _, is_bare, _ in queued if not is_bare and handed is not None
                  and (got := handed.take(b)) is not None}
        if handed is not None and queued[0].log_seq is not None:
            handed.drop_claimed(department, int(queued[0].log_seq))
        unread = [b for b, _, is_bare, _ in queued if not is_bare and b not in stored]
        if unread:
            stored.update((b, (body, leaves)) for b, body, leaves in conn.execute(_ENVELOPES, {"ids": unread}))
        entries: list[Entry] = []
        for b, n, is_bare, _ in queued:
            if is_bare:
                found = read_back.get(b, [])
                entries.append(Entry(b, len(found), canonical_json(found), None))
                continue
            body, leaves = stored[b]
            entries.append(Entry(b, int(n), bytes(body), None if leaves is None else bytes(leaves)))
        now = utcnow()
        made: list[ForwardBatch] = []
        superseded: list[dict[str, str]] = []
        claimed: list[dict[str, str]] = []
        for group in _groups(entries, batch_size):
            count = sum(e.records for e in group)
            if not count:
                superseded.extend({"b": e.batch_id} for e in group)
                continue
            fid = str(uuid.uuid4())
            body = upward_body(department, f"hub:{hub_key_id}", fid, [e.body for e in group])
            # The leaves in body order, only when every row had them (a row read back has none).
            parts = [e.leaves for e in group]
            leaves = None if None in parts else b"".join(parts)  # type: ignore[arg-type]
            claimed.extend({"b": e.batch_id, "fid": fid} for e in group)
            made.append(ForwardBatch(fid, department, body, count, leaves=leaves))
        if made:
            conn.execute(tables.forward_batches.insert(), [
                {"forward_id": fb.forward_id, "department": department, "records": fb.records, "state": "sent",
                 "attempts": 0, "claimed_at": now} for fb in made])
            conn.execute(tables.forward_bodies.insert(), [
                {"forward_id": fb.forward_id, "body": fb.body, "leaves": fb.leaves} for fb in made])
            conn.execute(_CLAIMED, claimed)
        if superseded:
            conn.execute(_SUPERSEDED, superseded)
        return made


def _current_records(conn: Any, department: str, batch_ids: list[str], spec: UpwardSpec) -> dict[str, list[dict[str, Any]]]:
    """Per queued batch without stored envelopes: the upward envelopes of the records whose current state it
    wrote (in hub_seq order), and of those whose seq it advanced (a `duplicate` of a higher seq: same
    content, the seq moves up there too)."""
    accepted = and_(_rc.status == "accepted", _r.batch_id == _rc.batch_id)
    advanced = and_(_rc.status == "duplicate", _r.seq == _rc.seq, _r.batch_id != _rc.batch_id)
    # The JSON columns as text, parsed here with orjson: SQLAlchemy's JSON result processing was half the
    # claim's CPU per record (and psycopg would parse jsonb with the standard library's json).
    cols = [cast(c, Text).label(c.name) if c.name in ("data", "provenance") else c for c in tables.records.columns]
    q = (
        select(*cols, _rc.batch_id.label("queued_batch"))
        .select_from(tables.receipts.join(tables.records, and_(
            _r.department == _rc.department, _r.type == _rc.type, _r.key == _rc.key)))
        .where(and_(_rc.batch_id.in_(batch_ids), _rc.department == department, or_(accepted, advanced)))
    )
    rows: dict[str, list[dict[str, Any]]] = {}
    seen: set[tuple[int, int]] = set()
    for row in conn.execute(q).mappings():
        if (row["id"], row["seq"]) not in seen:  # a key named twice in one batch has two receipt rows
            seen.add((row["id"], row["seq"]))
            rows.setdefault(row["queued_batch"], []).append(
                {**row, "data": _json(row["data"]), "provenance": _json(row["provenance"])})
    return {b: [upward_record(r, spec) for r in sorted(rs, key=lambda r: r["hub_seq"])] for b, rs in rows.items()}


def _groups(entries: Iterable[Entry], size: int) -> list[list[Entry]]:
    """Queued batches (id, envelopes, their JSON, their leaves) in order, grouped so that each group holds at
    most `size` records (a bigger batch alone)."""
    groups: list[list[Entry]] = [[]]
    count = 0
    for entry in entries:
        n = entry.records
        if groups[-1] and count + n > size:
            groups.append([])
            count = 0
        groups[-1].append(entry)
        count += n
    return groups


def _json(text: str | None) -> Any:
    return None if text is None else orjson.loads(text)


def pending(bind: Bind, limit: int = 1) -> list[ForwardBatch]:
    """The oldest `limit` upward batches awaiting a receipt, in the order they were claimed.

    The batches of one claim share its time: among them, the order of the queued batches they carry (their
    ids are random, and a later version of a key must not leave before an earlier one)."""
    with reading(bind) as conn:
        rows = conn.execute(_PENDING, {"limit": limit}).all()
    return [ForwardBatch(r[0], r[1], bytes(r[2]), int(r[3]), int(r[4]), None if r[5] is None else bytes(r[5]))
            for r in rows]


def settle(bind: Bind, fb: ForwardBatch, receipt: bytes, signature: str, doc: dict[str, Any]) -> None:
    """Store the upper hub's verified receipt: the batch is delivered.

    Committed without waiting for the disk: a settle lost in a crash leaves the batch `sent`, and its
    resend (same id, same bytes) gets the very same receipt from the upper hub."""
    with writing(bind, durable=False) as conn:
        conn.execute(_SETTLE, {"fid": fb.forward_id, "at": utcnow(), "receipt": receipt, "signature": signature,
                               "upstream_key_id": doc.get("hub_key_id"), "upstream_log_seq": doc.get("log_seq")})


def note_failure(bind: Bind, fb: ForwardBatch, error: str, *, refused: bool) -> None:
    """An attempt that got no receipt: counted, its error kept; `refused` (a 4xx) parks the batch."""
    with writing(bind, durable=False) as conn:
        conn.execute(_REFUSED if refused else _FAILED, {"fid": fb.forward_id, "error": error[:2000]})


def backfill(engine: Engine, departments: Iterable[str] | None = None) -> int:
    """Queue the stored batches that never were — stored before [upstream] was set — when a record
    they wrote is still current, in the order they were stored; the claim then sends what is current,
    as for any queued batch. Returns how many were queued (0 when run again)."""
    b = tables.batches.c
    with write_tx(engine) as conn:
        q = select(b.batch_id, b.department, b.received_at, b.log_seq).where(
            ~select(_o.batch_id).where(_o.batch_id == b.batch_id).exists(),
            select(_r.batch_id).where(_r.batch_id == b.batch_id).exists(),
        ).order_by(b.log_seq)
        wanted = list(departments or ())
        if wanted:
            q = q.where(b.department.in_(wanted))
        rows = conn.execute(q).all()
        if rows:
            conn.execute(tables.forward_outbox.insert(), [
                {"batch_id": bid, "department": dept, "queued_at": at, "state": "queued", "log_seq": seq}
                for bid, dept, at, seq in rows])
        return len(rows)


def retry_refused(engine: Engine) -> int:
    """Put refused upward batches back to `sent` (after the cause was fixed at the upper hub)."""
    with write_tx(engine) as conn:
        return conn.execute(update(tables.forward_batches).where(_f.state == "refused").values(state="sent")).rowcount


def counts(engine: Engine) -> dict[str, int]:
    """Queue and upward batches by state: what `gateway-hub forward` and the operators' page show."""
    with engine.connect() as conn:
        out = {f"queued_{s}": n for s, n in conn.execute(
            select(_o.state, func.count()).group_by(_o.state))}
        out.update({f"batches_{s}": n for s, n in conn.execute(
            select(_f.state, func.count()).group_by(_f.state))})
    return out


def upstream_receipts(engine: Engine, batch_id: str, department: str) -> list[dict[str, Any]]:
    """The upper hub's signed receipts for the upward batches that carried `batch_id`'s records."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(_f.forward_id, _f.state, _f.receipt, _f.signature, _f.upstream_key_id, _f.log_seq, _f.delivered_at,
                   _fb.body)
            .select_from(tables.forward_outbox.join(tables.forward_batches, _f.forward_id == _o.forward_id)
                         .join(tables.forward_bodies, _fb.forward_id == _f.forward_id))
            .where(and_(_o.batch_id == batch_id, _o.department == department))
        ).mappings().all()
    return [
        {"forward_id": r["forward_id"], "state": r["state"], "upstream_key_id": r["upstream_key_id"],
         "log_seq": r["log_seq"], "delivered_at": r["delivered_at"],
         "receipt": bytes(r["receipt"]).decode("utf-8") if r["receipt"] is not None else None,
         "signature": r["signature"],
         # What a compact receipt's Merkle root is over: the upward batch's records, in order (the reader
         # recomputes the root, so the upper hub's signature vouches for this list).
         **({"records": [list(x) for x in batch_records(bytes(r["body"]))]}
            if r["receipt"] is not None and b'"accepted":' in bytes(r["receipt"]) else {})}
        for r in rows
    ]

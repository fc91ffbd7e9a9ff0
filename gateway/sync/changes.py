"""Change detection and the outbox write, in chunks.

Each chunk of mapped records is compared with the fingerprints table (one
SELECT per few hundred keys), and the resulting outbox rows, fingerprint
inserts/updates and "seen" marks are written with executemany in the caller's
transaction — the same one that saves the source position, so a crash repeats
a chunk but never loses or doubles it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson
from sqlalchemy import and_, bindparam, select, text
from sqlalchemy.engine import Connection

from gateway.protocol.canonical import canonical_json, record_version
from gateway.store.db import utcnow
from gateway.store.tables import fingerprints as fp

LOOKUP_CHUNK = 500
# In lookups by source key, `+record_type` keeps SQLite's planner on ix_fingerprints_source_key:
# offered the unique (record_type, record_key) index it takes that one and walks every
# record of the type (seen with the (source, source_key, deleted) index: 10x slower).

_OUTBOX_COLUMNS = (
    "source", "record_type", "record_key", "op", "seq", "version", "data", "updated_at", "provenance",
    "enqueued_at", "state", "attempts",
)
_OUTBOX_INSERT = f"INSERT INTO outbox ({', '.join(_OUTBOX_COLUMNS)}) VALUES ({', '.join('?' * len(_OUTBOX_COLUMNS))})"
# row_hash (gateway/sync/rowhash.py) is written with every version it vouches for:
# a new or changed version stores the row's digest or NULL, never keeps an old one.
_FP_INSERT = (
    "INSERT INTO fingerprints (source, record_type, record_key, source_key, version, seq, mapping_version, "
    "updated_at, checked_at, deleted, row_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_FP_CHANGED = (
    "UPDATE fingerprints SET source = ?, source_key = ?, version = ?, seq = ?, mapping_version = ?, updated_at = ?, "
    "checked_at = ?, deleted = 0, row_hash = ? WHERE record_type = ? AND record_key = ?"
)
_FP_SEEN = (
    "UPDATE fingerprints SET source_key = ?, checked_at = ?, mapping_version = ?, row_hash = ? "
    "WHERE record_type = ? AND record_key = ?"
)
# The common case: the same source row again. Not assigning source_key spares SQLite
# rewriting its index entry (~1/3 of an unchanged re-run's write cost). The version is
# unchanged, so an older row_hash still vouches for it when this row brought none.
_FP_SEEN_SAME_ROW = (
    "UPDATE fingerprints SET checked_at = ?, mapping_version = ?, row_hash = coalesce(?, row_hash) "
    "WHERE record_type = ? AND record_key = ?"
)
# A row whose raw digest matched: not mapped, only marked seen (fingerprint deletes use checked_at).
_FP_TOUCH = "UPDATE fingerprints SET checked_at = ? WHERE record_type = ? AND record_key = ?"


class _Old(NamedTuple):
    version: str
    seq: int
    deleted: int
    source_key: str


@dataclass(slots=True)
class Mapped:
    """One mapped, normalised record ready for change detection."""

    source_key: str
    record_key: str
    data: dict[str, Any]
    updated_at: str | None = None
    row_hash: bytes | None = None  # digest of the raw row (rowhash.py); None = not computed


@dataclass
class Counts:
    new: int = 0
    changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    outbox_ids: list[int] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        self.new += other.new
        self.changed += other.changed
        self.deleted += other.deleted
        self.unchanged += other.unchanged
        self.outbox_ids += other.outbox_ids


def iso_updated_at(value: Any) -> str | None:
    """A source cursor value as ISO 8601 with offset (naive times are the gateway's local time)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.astimezone()).isoformat()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day).astimezone().isoformat()
    return None


def now_iso() -> str:
    return dt.datetime.now().astimezone().isoformat(timespec="seconds")


def delete_version(record_key: str, seq: int) -> str:
    # A delete has no content; its version still has to be unique per key and seq.
    return record_version({"delete": record_key, "seq": seq})


#: Fewer scan deletes than this are never held back (small tables legitimately lose most rows).
MASS_DELETE_MIN = 10


class ChangeWriter:
    """Writes one source's changes; the caller owns the transaction."""

    def __init__(self, source: str, record_type: str, mapping_version: int | None, operator: str) -> None:
        self.source = source
        self.record_type = record_type
        self.mapping_version = mapping_version
        self.operator = operator
        # Deletes found by reading the whole source (scan, snapshot, key set) above this share of the
        # source's live records are held back, not enqueued: an emptied or half-read source table must
        # not wipe the hub. 1.0 = no limit. held_deletes = (would delete, live) when it happened.
        self.max_delete_fraction = 1.0
        self.held_deletes: tuple[int, int] | None = None
        head = orjson.dumps({"source": source, "source_key": ""}).decode()
        self._prov_head = head[: -len('""}')]
        self._prov_tail = "," + orjson.dumps({"mapping_version": mapping_version, "operator": operator}).decode()[1:]

    def _provenance(self, source_key: str) -> str:
        # Same bytes as orjson.dumps of the dict {source, source_key, mapping_version, operator},
        # with the constant parts serialised once per writer instead of per record.
        return self._prov_head + orjson.dumps(source_key).decode() + self._prov_tail

    def _existing(self, conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
        """record_key -> (version, seq, deleted) of the fingerprints among `keys` (plain DBAPI tuples)."""
        out: dict[str, Any] = {}
        cur = conn.connection.cursor()
        try:
            for i in range(0, len(keys), LOOKUP_CHUNK):
                part = keys[i : i + LOOKUP_CHUNK]
                cur.execute(
                    "SELECT record_key, version, seq, deleted, source_key FROM fingerprints WHERE record_type = ? "
                    f"AND record_key IN ({','.join('?' * len(part))})",
                    (self.record_type, *part),
                )
                for rkey, version, seq, deleted, skey in cur.fetchall():
                    out[rkey] = _Old(version, seq, deleted, skey)
        finally:
            cur.close()
        return out

    def _moved(self, conn: Connection, latest: dict[str, tuple[Mapped, str, str]]) -> list[tuple[str, str, int]]:
        """Live records whose source row now maps to another record key (a key field was edited,
        or a new mapping changes keys): the old record is deleted."""
        by_source_key = {m.source_key: rkey for rkey, (m, _, _) in latest.items()}
        return [
            (rkey, skey, int(seq))
            for rkey, skey, seq in self._live_by_source_key(conn, "record_key, source_key, seq", list(by_source_key))
            if rkey != by_source_key[skey] and rkey not in latest
        ]

    def _live_by_source_key(self, conn: Connection, columns: str, source_keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """`columns` of the live records of these source keys, LOOKUP_CHUNK keys a query (plain DBAPI).

        `+record_type` keeps SQLite on ix_fingerprints_source_key: by the unique
        (record_type, record_key) index it would walk every record of the type.
        """
        cur = conn.connection.cursor()
        try:
            for i in range(0, len(source_keys), LOOKUP_CHUNK):
                part = source_keys[i : i + LOOKUP_CHUNK]
                cur.execute(
                    f"SELECT {columns} FROM fingerprints WHERE source = ? AND +record_type = ? "
                    f"AND deleted = 0 AND source_key IN ({','.join('?' * len(part))})",
                    (self.source, self.record_type, *part),
                )
                yield from cur.fetchall()
        finally:
            cur.close()

    def write(self, conn: Connection, items: Iterable[Mapped], want_ids: bool = False) -> Counts:
        """Classify and enqueue a chunk of records (new / changed / unchanged)."""
        latest: dict[str, tuple[Mapped, str, str]] = {}
        sha256 = hashlib.sha256
        for m in items:  # a key read twice in one chunk counts once, last wins
            body = canonical_json(m.data)
            latest[m.record_key] = (m, body.decode(), sha256(body).hexdigest())
        counts = Counts()
        if not latest:
            return counts
        have = self._existing(conn, list(latest))
        counts.deleted += self._delete(conn, self._moved(conn, latest), counts, want_ids)
        now = utcnow()
        stamp = now_iso()
        source, rtype, mv = self.source, self.record_type, self.mapping_version
        # Plain tuples straight to the DBAPI cursor: SQLAlchemy's per-row parameter
        # processing cost about as much as the SQLite writes themselves.
        ob_rows: list[tuple[Any, ...]] = []
        fp_new: list[tuple[Any, ...]] = []
        fp_changed: list[tuple[Any, ...]] = []
        fp_seen: list[tuple[Any, ...]] = []
        fp_seen_same: list[tuple[Any, ...]] = []
        for rkey, (m, body, version) in latest.items():
            old = have.get(rkey)
            if old is not None and not old.deleted and old.version == version:
                counts.unchanged += 1
                if old.source_key == m.source_key:
                    fp_seen_same.append((now, mv, m.row_hash, rtype, rkey))
                else:
                    fp_seen.append((m.source_key, now, mv, m.row_hash, rtype, rkey))
                continue
            seq = 1 if old is None else int(old.seq) + 1
            if old is None or old.deleted:
                counts.new += 1
            else:
                counts.changed += 1
            ob_rows.append(
                (source, rtype, rkey, "upsert", seq, version, body, m.updated_at or stamp,
                 self._provenance(m.source_key), now, "pending", 0)
            )
            if old is None:
                fp_new.append((source, rtype, rkey, m.source_key, version, seq, mv, m.updated_at, now, 0, m.row_hash))
            else:
                fp_changed.append((source, m.source_key, version, seq, mv, m.updated_at, now, m.row_hash, rtype, rkey))
        self._enqueue(conn, ob_rows, counts, want_ids)
        if fp_new or fp_changed or fp_seen or fp_seen_same:
            cur = conn.connection.cursor()
            try:
                if fp_new:
                    cur.executemany(_FP_INSERT, fp_new)
                if fp_changed:
                    cur.executemany(_FP_CHANGED, fp_changed)
                if fp_seen:
                    cur.executemany(_FP_SEEN, fp_seen)
                if fp_seen_same:
                    cur.executemany(_FP_SEEN_SAME_ROW, fp_seen_same)
            finally:
                cur.close()
        return counts

    def _enqueue(self, conn: Connection, rows: list[tuple[Any, ...]], counts: Counts, want_ids: bool) -> None:
        """Insert outbox rows given as tuples in _OUTBOX_COLUMNS order."""
        if not rows:
            return
        cur = conn.connection.cursor()
        try:
            if want_ids:
                for r in rows:
                    cur.execute(_OUTBOX_INSERT, r)
                    counts.outbox_ids.append(int(cur.lastrowid))
            else:
                cur.executemany(_OUTBOX_INSERT, rows)
        finally:
            cur.close()

    def row_hashes(self, conn: Connection, source_keys: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """source_key -> (record_key, row_hash) of the live records of these source rows that have a
        row hash; a source key with more than one live record is left out (it is mapped as before)."""
        out: dict[str, tuple[str, bytes]] = {}
        seen: set[str] = set()
        many: set[str] = set()
        for skey, rkey, h in self._live_by_source_key(conn, "source_key, record_key, row_hash", list(dict.fromkeys(source_keys))):
            if skey in seen:
                many.add(skey)
            else:
                seen.add(skey)
                if h is not None:
                    out[skey] = (rkey, bytes(h))
        for skey in many:
            out.pop(skey, None)
        return out

    def touch(self, conn: Connection, record_keys: Sequence[str]) -> None:
        """Records whose source row was seen unchanged (by its raw digest): mark them seen."""
        if not record_keys:
            return
        now, rtype = utcnow(), self.record_type
        cur = conn.connection.cursor()
        try:
            cur.executemany(_FP_TOUCH, [(now, rtype, k) for k in record_keys])
        finally:
            cur.close()

    def mark_seen(self, conn: Connection, source_keys: Sequence[str]) -> None:
        """Rows that exist but were rejected: keep their records from being taken for deletes."""
        if not source_keys:
            return
        now = utcnow()
        conn.execute(
            fp.update().where(fp.c.source == self.source, fp.c.source_key == bindparam("sk")).values(checked_at=now),
            [{"sk": k} for k in dict.fromkeys(source_keys)],
        )

    def delete_unseen(self, conn: Connection, epoch: str) -> int:
        """Enqueue deletes for this source's live records not seen since `epoch` (snapshot end)."""
        rows = conn.execute(
            select(fp.c.record_key, fp.c.source_key, fp.c.seq).where(
                fp.c.source == self.source, fp.c.record_type == self.record_type, fp.c.deleted == 0, fp.c.checked_at < epoch
            )
        ).all()
        return self._scan_delete(conn, [(r.record_key, r.source_key, int(r.seq)) for r in rows])

    @staticmethod
    def load_current_keys(conn: Connection, keys: Iterable[str]) -> None:
        """Stream the source's current key set into a TEMP table (before the write lock is taken)."""
        conn.exec_driver_sql("CREATE TEMP TABLE IF NOT EXISTS current_keys (k TEXT PRIMARY KEY)")
        conn.exec_driver_sql("DELETE FROM current_keys")
        # Plain DBAPI tuples: a million keys through text() bind dicts cost twice the CPU.
        ins = "INSERT OR IGNORE INTO current_keys (k) VALUES (?)"
        buf: list[tuple[str]] = []
        for k in keys:
            buf.append((k,))
            if len(buf) >= 5000:
                conn.exec_driver_sql(ins, buf)
                buf = []
        if buf:
            conn.exec_driver_sql(ins, buf)

    def delete_missing_keys(self, conn: Connection) -> int:
        """Key-set reconciliation: enqueue deletes for live records whose source key is not in current_keys."""
        rows = conn.execute(
            text(
                "SELECT record_key, source_key, seq FROM fingerprints WHERE source = :s AND record_type = :t "
                "AND deleted = 0 AND source_key NOT IN (SELECT k FROM temp.current_keys)"
            ),
            {"s": self.source, "t": self.record_type},
        ).all()
        n = self._scan_delete(conn, [(r.record_key, r.source_key, int(r.seq)) for r in rows])
        conn.exec_driver_sql("DELETE FROM temp.current_keys")
        return n

    def delete_source_keys(self, conn: Connection, source_keys: Sequence[str]) -> int:
        """Key-set reconciliation (keyset.missing_keys named the gone keys): enqueue deletes for
        the live records of these source keys."""
        rows = self._live_by_source_key(conn, "record_key, source_key, seq", list(dict.fromkeys(source_keys)))
        return self._scan_delete(conn, [(rkey, skey, int(seq)) for rkey, skey, seq in rows])

    def _scan_delete(self, conn: Connection, todo: list[tuple[str, str, int]]) -> int:
        """Deletes a whole-source read found, unless they exceed max_delete_fraction of the live records."""
        n = len(todo)
        if n >= MASS_DELETE_MIN and self.max_delete_fraction < 1:
            live = conn.execute(text("SELECT count(*) FROM fingerprints WHERE source = :s AND deleted = 0"),
                                {"s": self.source}).scalar_one()
            if n > self.max_delete_fraction * live:
                self.held_deletes = (n, int(live))
                return 0
        return self._delete(conn, todo)

    def delete_source_key(self, conn: Connection, source_key: str, want_ids: bool = False) -> Counts:
        rows = conn.execute(
            select(fp.c.record_key, fp.c.source_key, fp.c.seq).where(
                and_(fp.c.source == self.source, fp.c.source_key == source_key, fp.c.deleted == 0)
            )
        ).all()
        counts = Counts()
        counts.deleted = self._delete(conn, [(r.record_key, r.source_key, int(r.seq)) for r in rows], counts, want_ids)
        return counts

    def delete_record_keys(self, conn: Connection, record_keys: Sequence[str], want_ids: bool = False) -> Counts:
        have = self._existing(conn, list(record_keys))
        todo = [(k, "", int(r.seq)) for k, r in have.items() if not r.deleted]
        counts = Counts()
        counts.deleted = self._delete(conn, todo, counts, want_ids)
        return counts

    def _delete(self, conn: Connection, todo: list[tuple[str, str, int]], counts: Counts | None = None, want_ids: bool = False) -> int:
        if not todo:
            return 0
        now, stamp = utcnow(), now_iso()
        ob_rows = []
        for rkey, skey, seq in todo:
            ob_rows.append(
                (self.source, self.record_type, rkey, "delete", seq + 1, delete_version(rkey, seq + 1), None, stamp,
                 self._provenance(skey), now, "pending", 0)
            )
        self._enqueue(conn, ob_rows, counts or Counts(), want_ids)
        conn.execute(
            fp.update()
            .where(fp.c.record_type == self.record_type, fp.c.record_key == bindparam("k"))
            .values(version="", seq=bindparam("seq"), deleted=1, checked_at=now, row_hash=None),
            [{"k": rkey, "seq": seq + 1} for rkey, _, seq in todo],
        )
        return len(todo)

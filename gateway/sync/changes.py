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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import and_, bindparam, select, text
from sqlalchemy.engine import Connection

from gateway.protocol.canonical import canonical_json, record_version
from gateway.store.db import utcnow
from gateway.store.tables import fingerprints as fp
from gateway.store.tables import outbox

LOOKUP_CHUNK = 500


@dataclass(slots=True)
class Mapped:
    """One mapped, normalised record ready for change detection."""

    source_key: str
    record_key: str
    data: dict[str, Any]
    updated_at: str | None = None


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


def begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock at the start, so two writers queue instead of failing on upgrade."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


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


class ChangeWriter:
    """Writes one source's changes; the caller owns the transaction."""

    def __init__(self, source: str, record_type: str, mapping_version: int | None, operator: str) -> None:
        self.source = source
        self.record_type = record_type
        self.mapping_version = mapping_version
        self.operator = operator

    def _provenance(self, source_key: str) -> str:
        return orjson.dumps(
            {"source": self.source, "source_key": source_key, "mapping_version": self.mapping_version, "operator": self.operator}
        ).decode()

    def _existing(self, conn: Connection, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for i in range(0, len(keys), LOOKUP_CHUNK):
            part = list(keys[i : i + LOOKUP_CHUNK])
            rows = conn.execute(
                select(fp.c.record_key, fp.c.version, fp.c.seq, fp.c.deleted).where(
                    fp.c.record_type == self.record_type, fp.c.record_key.in_(part)
                )
            )
            for r in rows:
                out[r.record_key] = r
        return out

    def _moved(self, conn: Connection, latest: dict[str, tuple[Mapped, str, str]]) -> list[tuple[str, str, int]]:
        """Live records whose source row now maps to another record key (a key field was edited,
        or a new mapping changes keys): the old record is deleted."""
        by_source_key = {m.source_key: rkey for rkey, (m, _, _) in latest.items()}
        keys = list(by_source_key)
        out: list[tuple[str, str, int]] = []
        for i in range(0, len(keys), LOOKUP_CHUNK):
            rows = conn.execute(
                select(fp.c.record_key, fp.c.source_key, fp.c.seq).where(
                    fp.c.source == self.source, fp.c.record_type == self.record_type, fp.c.deleted == 0,
                    fp.c.source_key.in_(keys[i : i + LOOKUP_CHUNK]),
                )
            )
            for r in rows:
                if r.record_key != by_source_key[r.source_key] and r.record_key not in latest:
                    out.append((r.record_key, r.source_key, int(r.seq)))
        return out

    def write(self, conn: Connection, items: Iterable[Mapped], want_ids: bool = False) -> Counts:
        """Classify and enqueue a chunk of records (new / changed / unchanged)."""
        latest: dict[str, tuple[Mapped, str, str]] = {}
        for m in items:  # a key read twice in one chunk counts once, last wins
            body = canonical_json(m.data)
            latest[m.record_key] = (m, body.decode(), hashlib.sha256(body).hexdigest())
        counts = Counts()
        if not latest:
            return counts
        have = self._existing(conn, list(latest))
        counts.deleted += self._delete(conn, self._moved(conn, latest), counts, want_ids)
        now = utcnow()
        stamp = now_iso()
        ob_rows, fp_new, fp_changed, fp_seen = [], [], [], []
        for rkey, (m, body, version) in latest.items():
            old = have.get(rkey)
            if old is not None and not old.deleted and old.version == version:
                counts.unchanged += 1
                fp_seen.append({"k": rkey, "sk": m.source_key, "now": now, "mv": self.mapping_version})
                continue
            seq = 1 if old is None else int(old.seq) + 1
            if old is None or old.deleted:
                counts.new += 1
            else:
                counts.changed += 1
            ob_rows.append(
                {
                    "source": self.source,
                    "record_type": self.record_type,
                    "record_key": rkey,
                    "op": "upsert",
                    "seq": seq,
                    "version": version,
                    "data": body,
                    "updated_at": m.updated_at or stamp,
                    "provenance": self._provenance(m.source_key),
                    "enqueued_at": now,
                    "state": "pending",
                    "attempts": 0,
                }
            )
            row = {"k": rkey, "sk": m.source_key, "v": version, "seq": seq, "mv": self.mapping_version,
                   "ua": m.updated_at, "now": now}
            (fp_new if old is None else fp_changed).append(row)
        self._enqueue(conn, ob_rows, counts, want_ids)
        if fp_new:
            conn.execute(
                fp.insert(),
                [
                    {"source": self.source, "record_type": self.record_type, "record_key": r["k"], "source_key": r["sk"],
                     "version": r["v"], "seq": r["seq"], "mapping_version": r["mv"], "updated_at": r["ua"],
                     "checked_at": r["now"], "deleted": 0}
                    for r in fp_new
                ],
            )
        if fp_changed:
            conn.execute(
                fp.update()
                .where(fp.c.record_type == self.record_type, fp.c.record_key == bindparam("k"))
                .values(source=self.source, source_key=bindparam("sk"), version=bindparam("v"), seq=bindparam("seq"),
                        mapping_version=bindparam("mv"), updated_at=bindparam("ua"), checked_at=bindparam("now"), deleted=0),
                fp_changed,
            )
        if fp_seen:
            conn.execute(
                fp.update()
                .where(fp.c.record_type == self.record_type, fp.c.record_key == bindparam("k"))
                .values(source_key=bindparam("sk"), checked_at=bindparam("now"), mapping_version=bindparam("mv")),
                fp_seen,
            )
        return counts

    def _enqueue(self, conn: Connection, rows: list[dict[str, Any]], counts: Counts, want_ids: bool) -> None:
        if not rows:
            return
        if want_ids:
            for r in rows:
                counts.outbox_ids.append(int(conn.execute(outbox.insert().values(**r)).inserted_primary_key[0]))
        else:
            conn.execute(outbox.insert(), rows)

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
        return self._delete(conn, [(r.record_key, r.source_key, int(r.seq)) for r in rows])

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
        n = self._delete(conn, [(r.record_key, r.source_key, int(r.seq)) for r in rows])
        conn.exec_driver_sql("DELETE FROM temp.current_keys")
        return n

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
                {"source": self.source, "record_type": self.record_type, "record_key": rkey, "op": "delete",
                 "seq": seq + 1, "version": delete_version(rkey, seq + 1), "data": None, "updated_at": stamp,
                 "provenance": self._provenance(skey), "enqueued_at": now, "state": "pending", "attempts": 0}
            )
        self._enqueue(conn, ob_rows, counts or Counts(), want_ids)
        conn.execute(
            fp.update()
            .where(fp.c.record_type == self.record_type, fp.c.record_key == bindparam("k"))
            .values(version="", seq=bindparam("seq"), deleted=1, checked_at=now),
            [{"k": rkey, "seq": seq + 1} for rkey, _, seq in todo],
        )
        return len(todo)

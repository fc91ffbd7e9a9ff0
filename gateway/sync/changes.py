"""Change detection and the outbox write, in chunks.

Each chunk of mapped records is compared with the fingerprints table (one
SELECT per chunk, its keys bound as one JSON array), and the resulting outbox rows, fingerprint
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
from sqlalchemy.engine import Connection

from gateway.protocol.canonical import canonical_json, record_version
from gateway.store import fingerprints, outbox
from gateway.store.db import utcnow
from gateway.store.outbox import Enqueued

# Every statement on the fingerprints and the outbox is the store's (gateway/store/fingerprints.py,
# gateway/store/outbox.py); this module decides what to write.


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
    # Source keys whose record another source row took over (its source_key moved) in this write.
    rekeyed: list[str] = field(default_factory=list)

    def add(self, other: Counts) -> None:
        self.new += other.new
        self.changed += other.changed
        self.deleted += other.deleted
        self.unchanged += other.unchanged
        self.outbox_ids += other.outbox_ids
        self.rekeyed += other.rekeyed


def iso_updated_at(value: Any) -> str | None:
    """A source cursor value as ISO 8601 with offset (naive times are the gateway's local time)."""
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.astimezone()).isoformat()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day).astimezone().isoformat()
    return None


def iso_versions(values: Sequence[Any]) -> list[str | None]:
    """iso_updated_at of each of a batch's cursor values, the same text. A naive time's local offset
    (astimezone, the costly part) is looked up once per hour of the batch, a date's once per date."""
    hours: dict[tuple[int, int, int, int], str | None] = {}
    dates: dict[dt.date, str | None] = {}
    out: list[str | None] = []
    add = out.append
    for v in values:
        if type(v) is dt.datetime:
            if v.tzinfo is not None:
                add(v.isoformat())
                continue
            hour = (v.year, v.month, v.day, v.hour)
            off = hours[hour] if hour in hours else hours.setdefault(hour, _hour_offset(v))
            add(iso_updated_at(v) if off is None or v.fold else v.isoformat() + off)
        elif type(v) is dt.date:
            add(dates[v] if v in dates else dates.setdefault(v, iso_updated_at(v)))
        else:
            add(iso_updated_at(v))
    return out


def _hour_offset(v: dt.datetime) -> str | None:
    """The local offset text (as isoformat ends) of naive `v`'s hour when no offset change falls
    within an hour of it (so no gap or repeated hour); None otherwise (then each is computed)."""
    start = v.replace(minute=0, second=0, microsecond=0)
    around = (start - dt.timedelta(hours=1), start, start + dt.timedelta(minutes=59, seconds=59), start + dt.timedelta(hours=2))
    if len({t.astimezone().utcoffset() for t in around}) != 1:
        return None
    return start.astimezone().isoformat()[len(start.isoformat()):]


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

    def _existing(self, conn: Connection, keys: Sequence[str]) -> dict[str, fingerprints.Stored]:
        """record_key -> (version, seq, deleted, source_key) of the fingerprints among `keys`."""
        return fingerprints.stored(conn, self.record_type, keys)

    def _moved(self, conn: Connection, latest: dict[str, tuple[Mapped, str, str]]) -> list[tuple[str, str, int]]:
        """Live records whose source row now maps to another record key (a key field was edited,
        or a new mapping changes keys): the old record is deleted."""
        by_source_key = {m.source_key: rkey for rkey, (m, _, _) in latest.items()}
        return [
            (rkey, skey, int(seq))
            for rkey, skey, seq in fingerprints.live_keys(conn, self.source, self.record_type, list(by_source_key))
            if rkey != by_source_key[skey] and rkey not in latest
        ]

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
        # Plain tuples in the field order of the store's row types (Enqueued, NewRow, ...), which is
        # checked against the compiled statements at import: built and bound by sqlite3 about 1 µs a
        # row faster than the NamedTuples themselves, on every record of a sync.
        ob_rows: list[Any] = []  # Enqueued
        fp_new: list[Any] = []  # NewRow
        fp_changed: list[Any] = []  # ChangedRow
        fp_seen: list[Any] = []  # SeenRow
        fp_seen_same: list[Any] = []  # SeenSameRow
        first_id = outbox.next_id(conn)  # numbered here: each record's fingerprint names its outbox row
        for rkey, (m, body, version) in latest.items():
            old = have.get(rkey)
            if old is not None and not old.deleted and old.version == version:
                counts.unchanged += 1
                if old.source_key == m.source_key:
                    fp_seen_same.append((mv, now, m.row_hash, rtype, rkey))
                else:
                    fp_seen.append((m.source_key, mv, now, m.row_hash, rtype, rkey))
                    counts.rekeyed.append(old.source_key)
                continue
            seq = 1 if old is None else int(old.seq) + 1
            if old is None or old.deleted:
                counts.new += 1
            else:
                counts.changed += 1
            ob_id = first_id + len(ob_rows)
            ob_rows.append(
                (ob_id, source, rtype, rkey, "upsert", seq, version, body, m.updated_at or stamp,
                 self._provenance(m.source_key), now, "pending", 0, None if old is None else old.outbox_id)
            )
            if old is None:
                fp_new.append((source, rtype, rkey, m.source_key, version, seq, mv, m.updated_at, now, 0, m.row_hash, ob_id))
            else:
                fp_changed.append((source, m.source_key, version, seq, mv, m.updated_at, now, m.row_hash, ob_id, rtype, rkey))
                if old.source_key != m.source_key:
                    counts.rekeyed.append(old.source_key)
        outbox.enqueue(conn, ob_rows)
        if want_ids:
            counts.outbox_ids += [r[0] for r in ob_rows]
        fingerprints.write(conn, new=fp_new, changed=fp_changed, seen=fp_seen, seen_same=fp_seen_same)
        return counts

    def row_hashes(self, conn: Connection, source_keys: Sequence[str]) -> dict[str, tuple[str, bytes]]:
        """source_key -> (record_key, row_hash) of the live records of these source rows that have a
        row hash; a source key with more than one live record is left out (it is mapped as before)."""
        out: dict[str, tuple[str, bytes]] = {}
        seen: set[str] = set()
        many: set[str] = set()
        for skey, rkey, h in fingerprints.live_row_hashes(conn, self.source, self.record_type, list(dict.fromkeys(source_keys))):
            if skey in seen:
                many.add(skey)
            else:
                seen.add(skey)
                if h is not None:
                    out[skey] = (rkey, bytes(h))
        for skey in many:
            out.pop(skey, None)
        return out

    def record_keys_of(self, conn: Connection, source_keys: Sequence[str]) -> list[str]:
        """The record keys of the live records of these source rows."""
        return [rkey for rkey, _, _ in fingerprints.live_keys(conn, self.source, self.record_type, list(dict.fromkeys(source_keys)))]

    def touch(self, conn: Connection, record_keys: Sequence[str]) -> None:
        """Records whose source row was seen unchanged (by its raw digest): mark them seen."""
        if not record_keys:
            return
        fingerprints.touch(conn, self.record_type, record_keys, utcnow())

    def mark_seen(self, conn: Connection, source_keys: Sequence[str]) -> None:
        """Rows that exist but were rejected: keep their records from being taken for deletes."""
        if not source_keys:
            return
        fingerprints.mark_seen(conn, self.source, source_keys, utcnow())

    def delete_unseen(self, conn: Connection, epoch: str) -> int:
        """Enqueue deletes for this source's live records not seen since `epoch` (snapshot end)."""
        return self._scan_delete(conn, fingerprints.unseen_since(conn, self.source, self.record_type, epoch))

    def delete_source_keys(self, conn: Connection, source_keys: Sequence[str]) -> int:
        """Key-set reconciliation (keyset.missing_keys named the gone keys): enqueue deletes for
        the live records of these source keys."""
        rows = fingerprints.live_keys(conn, self.source, self.record_type, list(dict.fromkeys(source_keys)))
        return self._scan_delete(conn, [(rkey, skey, int(seq)) for rkey, skey, seq in rows])

    def _scan_delete(self, conn: Connection, todo: list[tuple[str, str, int]]) -> int:
        """Deletes a whole-source read found, unless they exceed max_delete_fraction of the live records."""
        n = len(todo)
        if n >= MASS_DELETE_MIN and self.max_delete_fraction < 1:
            live = fingerprints.live_count(conn, self.source)
            if n > self.max_delete_fraction * live:
                self.held_deletes = (n, live)
                return 0
        return self._delete(conn, todo)

    def delete_source_key(self, conn: Connection, source_key: str, want_ids: bool = False) -> Counts:
        counts = Counts()
        counts.deleted = self._delete(conn, fingerprints.live_of_source_key(conn, self.source, source_key), counts, want_ids)
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
        heads = fingerprints.heads(conn, self.record_type, [rkey for rkey, _, _ in todo])
        first_id = outbox.next_id(conn)
        ob_rows = [
            Enqueued(first_id + i, self.source, self.record_type, rkey, "delete", seq + 1, delete_version(rkey, seq + 1),
                     None, stamp, self._provenance(skey), now, "pending", 0, heads.get(rkey))
            for i, (rkey, skey, seq) in enumerate(todo)
        ]
        outbox.enqueue(conn, ob_rows)
        if counts is not None and want_ids:
            counts.outbox_ids += [r.id for r in ob_rows]
        fingerprints.mark_deleted(conn, self.record_type, [(r.record_key, r.seq, r.id) for r in ob_rows], now)
        return len(todo)

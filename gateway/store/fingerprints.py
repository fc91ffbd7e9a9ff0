"""The fingerprints table's statements: change detection's lookups and its per-chunk writes.

Hot paths (every record of a sync passes through one of these) run on the DB-API
cursor of the caller's connection, in the caller's transaction, with statements
prepared once from tables.fingerprints (gateway/store/prepared.py). Row tuples are in
the field order of the NamedTuples below, which is checked against the statements at
import; on the hottest paths callers pass plain tuples in that order (sqlite3 binds an
exact tuple faster than a NamedTuple).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import bindparam, case, func, insert, literal_column, select, update
from sqlalchemy.engine import Connection

from gateway.store.prepared import Prepared, prepare
from gateway.store.tables import fingerprints as fp


def _in_keys() -> Any:
    """`IN (the JSON array bound as "keys")`: a whole batch's keys as one parameter of one statement
    prepared once (SQLite's json_each), searched through the index key by key like an IN list."""
    return select(func.json_each(bindparam("keys")).table_valued("value").c.value).scalar_subquery()


class Stored(NamedTuple):
    """What change detection needs of a stored fingerprint."""

    version: str
    seq: int
    deleted: int
    source_key: str
    outbox_id: int | None  # the record's latest outbox row


class NewRow(NamedTuple):
    source: str
    record_type: str
    record_key: str
    source_key: str
    version: str
    seq: int
    mapping_version: int | None
    updated_at: str | None
    checked_at: str
    deleted: int
    row_hash: bytes | None
    outbox_id: int


# row_hash (gateway/sync/rowhash.py) is written with every version it vouches for:
# a new or changed version stores the row's digest or NULL, never keeps an old one.
class ChangedRow(NamedTuple):
    source: str
    source_key: str
    version: str
    seq: int
    mapping_version: int | None
    updated_at: str | None
    checked_at: str
    row_hash: bytes | None
    outbox_id: int
    record_type: str
    record_key: str


class SeenRow(NamedTuple):
    """Unchanged version, read from another source row (source_key moves)."""

    source_key: str
    mapping_version: int | None
    checked_at: str
    row_hash: bytes | None
    record_type: str
    record_key: str


class SeenSameRow(NamedTuple):
    """Unchanged version from the same source row: the common case of a re-run."""

    mapping_version: int | None
    checked_at: str
    row_hash: bytes | None
    record_type: str
    record_key: str


def _this_record() -> Any:
    return (fp.c.record_type == bindparam("record_type"), fp.c.record_key == bindparam("record_key"))


def _values(names: Iterable[str]) -> dict[str, Any]:
    return {n: bindparam(n) for n in names}


_INSERT = prepare(insert(fp).values(_values(NewRow._fields)))
_CHANGED = prepare(
    update(fp).where(*_this_record()).values(deleted=0, **_values(ChangedRow._fields[:-2]))
)
_SEEN = prepare(update(fp).where(*_this_record()).values(_values(SeenRow._fields[:-2])))
# Not assigning source_key spares SQLite rewriting its index entry (~1/3 of an unchanged
# re-run's write cost). The version is unchanged, so an older row_hash still vouches for it
# when this row brought none.
_SEEN_SAME = prepare(
    update(fp).where(*_this_record()).values(
        checked_at=bindparam("checked_at"), mapping_version=bindparam("mapping_version"),
        row_hash=func.coalesce(bindparam("row_hash"), fp.c.row_hash),
    )
)
# Rows whose raw digest matched: not mapped, only marked seen (fingerprint deletes use checked_at). One
# statement per chunk: most rows of a fingerprint pass take this way, and a set costs a third less than
# executemany's statement per row.
_TOUCH = prepare(
    update(fp).where(fp.c.record_type == bindparam("record_type"), fp.c.record_key.in_(_in_keys()))
    .values(checked_at=bindparam("checked_at"))
)

_BY_RECORD_KEY = prepare(
    select(fp.c.record_key, fp.c.version, fp.c.seq, fp.c.deleted, fp.c.source_key, fp.c.outbox_id).where(
        fp.c.record_type == bindparam("record_type"), fp.c.record_key.in_(_in_keys())
    )
)


def _live_by_source_key(*columns: Any) -> Prepared:
    # `+record_type` keeps SQLite's planner on ix_fingerprints_source_key: offered the unique
    # (record_type, record_key) index it takes that one and walks every record of the type
    # (10x slower). Core has no unary plus on a column, hence the literal column.
    return prepare(
        select(*columns).where(
            fp.c.source == bindparam("source"),
            literal_column("+" + fp.c.record_type.name) == bindparam("record_type"),
            fp.c.deleted == 0,
            fp.c.source_key.in_(_in_keys()),
        )
    )


_LIVE_KEYS = _live_by_source_key(fp.c.record_key, fp.c.source_key, fp.c.seq)
_LIVE_HASHES = _live_by_source_key(fp.c.source_key, fp.c.record_key, fp.c.row_hash)

for _row, _stmt in ((NewRow, _INSERT), (ChangedRow, _CHANGED), (SeenRow, _SEEN), (SeenSameRow, _SEEN_SAME)):
    if _row._fields != _stmt.params:  # the tuples callers build must match the compiled statement
        raise AssertionError(f"{_row.__name__} fields {_row._fields} != statement parameters {_stmt.params}")


def stored(conn: Connection, record_type: str, keys: Sequence[str]) -> dict[str, Stored]:
    """record_key -> stored fingerprint, of those of `keys` that have one."""
    if not keys:
        return {}
    cur = conn.connection.cursor()
    try:
        cur.execute(_BY_RECORD_KEY.sql, (record_type, orjson.dumps(keys).decode()))
        return {r[0]: Stored(*r[1:]) for r in cur.fetchall()}
    finally:
        cur.close()


def _live(conn: Connection, stmt: Prepared, source: str, record_type: str, source_keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
    if not source_keys:
        return
    cur = conn.connection.cursor()
    try:
        cur.execute(stmt.sql, (source, record_type, orjson.dumps(source_keys).decode()))
        yield from cur.fetchall()
    finally:
        cur.close()


def live_keys(conn: Connection, source: str, record_type: str, source_keys: Sequence[str]) -> Iterator[tuple[str, str, int]]:
    """(record_key, source_key, seq) of the live records of these source keys."""
    return _live(conn, _LIVE_KEYS, source, record_type, source_keys)  # type: ignore[return-value]


def live_row_hashes(conn: Connection, source: str, record_type: str, source_keys: Sequence[str]) -> Iterator[tuple[str, str, bytes | None]]:
    """(source_key, record_key, row_hash) of the live records of these source keys."""
    return _live(conn, _LIVE_HASHES, source, record_type, source_keys)  # type: ignore[return-value]


def write(
    conn: Connection,
    new: Sequence[tuple[Any, ...]] = (),
    changed: Sequence[tuple[Any, ...]] = (),
    seen: Sequence[tuple[Any, ...]] = (),
    seen_same: Sequence[tuple[Any, ...]] = (),
) -> None:
    """One chunk's fingerprint writes, with executemany on the caller's transaction: rows in the
    field order of NewRow, ChangedRow, SeenRow and SeenSameRow."""
    if not (new or changed or seen or seen_same):
        return
    cur = conn.connection.cursor()
    try:
        for stmt, rows in ((_INSERT, new), (_CHANGED, changed), (_SEEN, seen), (_SEEN_SAME, seen_same)):
            if rows:
                cur.executemany(stmt.sql, rows)
    finally:
        cur.close()


def touch(conn: Connection, record_type: str, record_keys: Sequence[str], now: str) -> None:
    """Records whose source row was seen unchanged by its raw digest: checked now."""
    if not record_keys:
        return
    cur = conn.connection.cursor()
    try:
        cur.execute(_TOUCH.sql, (now, record_type, orjson.dumps(record_keys).decode()))
    finally:
        cur.close()


def mark_seen(conn: Connection, source: str, source_keys: Iterable[str], now: str) -> None:
    """Rows that exist but were rejected: keep their records from being taken for deletes."""
    conn.execute(
        fp.update().where(fp.c.source == source, fp.c.source_key == bindparam("sk")).values(checked_at=now),
        [{"sk": k} for k in dict.fromkeys(source_keys)],
    )


def unseen_since(conn: Connection, source: str, record_type: str, epoch: str) -> list[tuple[str, str, int]]:
    """(record_key, source_key, seq) of the live records not seen since `epoch`."""
    rows = conn.execute(
        select(fp.c.record_key, fp.c.source_key, fp.c.seq).where(
            fp.c.source == source, fp.c.record_type == record_type, fp.c.deleted == 0, fp.c.checked_at < epoch
        )
    ).all()
    return [(r.record_key, r.source_key, int(r.seq)) for r in rows]


def live_of_source_key(conn: Connection, source: str, source_key: str) -> list[tuple[str, str, int]]:
    """(record_key, source_key, seq) of the live records read from one source row."""
    rows = conn.execute(
        select(fp.c.record_key, fp.c.source_key, fp.c.seq).where(
            fp.c.source == source, fp.c.source_key == source_key, fp.c.deleted == 0
        )
    ).all()
    return [(r.record_key, r.source_key, int(r.seq)) for r in rows]


def live_count(conn: Connection, source: str) -> int:
    return int(conn.execute(select(func.count()).select_from(fp).where(fp.c.source == source, fp.c.deleted == 0)).scalar_one())


def mark_deleted(conn: Connection, record_type: str, deletes: Iterable[tuple[str, int, int]], now: str) -> None:
    """Fingerprints of deleted records: (record_key, the delete's seq, its outbox row) each."""
    conn.execute(
        fp.update()
        .where(fp.c.record_type == record_type, fp.c.record_key == bindparam("k"))
        .values(version="", seq=bindparam("seq"), deleted=1, checked_at=now, row_hash=None, outbox_id=bindparam("ob")),
        [{"k": k, "seq": seq, "ob": ob} for k, seq, ob in deletes],
    )


def heads(conn: Connection, record_type: str, keys: Sequence[str]) -> dict[str, int | None]:
    """record_key -> the record's latest outbox row, of those of `keys` with a fingerprint."""
    return {k: s.outbox_id for k, s in stored(conn, record_type, keys).items()}


def set_head(conn: Connection, record_type: str, record_key: str, outbox_id: int) -> None:
    """A record's latest outbox row is now `outbox_id` (a returned record queued again)."""
    conn.execute(fp.update().where(fp.c.record_type == record_type, fp.c.record_key == record_key).values(outbox_id=outbox_id))


# The live source keys of a source, for the key-set anti-join of gateway/sync/keyset.py: newline-joined
# texts from the covering index ix_fingerprints_source_key, which Arrow splits in C, LIVE_KEY_PIECE keys
# at a time in index order (one text of a whole key set cost about 37 bytes a key at its peak: SQLite's
# growing buffer, the Python str and two Arrow copies); a key holding a newline makes a piece's parts
# outnumber its count, and then that piece's keys are read one per row.
LIVE_KEY_PIECE = 65536
_live_of_source = (fp.c.source == bindparam("source"), fp.c.deleted == 0)


def _live_piece(after: bool) -> Any:
    """The next LIVE_KEY_PIECE live keys of a source in index order: after the last one read, or the first."""
    bound = (fp.c.source_key > bindparam("after"),) if after else ()
    return select(fp.c.source_key).where(*_live_of_source, *bound).order_by(fp.c.source_key).limit(bindparam("n", type_=fp.c.seq.type))


def _piece_text(after: bool) -> Prepared:
    piece = _live_piece(after).subquery()
    return prepare(select(func.count(), func.group_concat(piece.c.source_key, func.char(10)), func.max(piece.c.source_key)))


_LIVE_KEY_TEXT = {after: _piece_text(after) for after in (False, True)}
_LIVE_KEY_ROWS = {after: prepare(_live_piece(after)) for after in (False, True)}


def live_source_keys(conn: Connection, source: str) -> pa.ChunkedArray:
    """The source keys of `source`'s live records, as Arrow string chunks (in no set order)."""
    chunks: list[pa.Array] = []
    after: str | None = None  # the last key read (the first piece has no lower bound: '' is a key too)
    while True:
        params = (source, LIVE_KEY_PIECE) if after is None else (source, after, LIVE_KEY_PIECE)
        n, text, last = conn.exec_driver_sql(_LIVE_KEY_TEXT[after is not None].sql, params).one()
        if not n:
            return pa.chunked_array(chunks, pa.string())
        keys = pc.list_flatten(pc.split_pattern(pa.array([text], pa.string()), "\n"))
        if len(keys) != n:
            cur = conn.connection.cursor()
            try:
                cur.execute(_LIVE_KEY_ROWS[after is not None].sql, params)
                keys = pa.array([r[0] for r in cur.fetchall()], pa.string())
            finally:
                cur.close()
        chunks.append(keys)
        if n < LIVE_KEY_PIECE:
            return pa.chunked_array(chunks, pa.string())
        after = last


# A fingerprint pass's stored digests, read once (gateway/sync/passdigests.py): every live record of the
# source, a rowid range at a time (the table's own order: a sequential scan, no index lookup per row),
# each key column as one newline-joined text split by Arrow and the digests as one hex text decoded
# into a fixed-width column, so no Python object per record is made. A digest that is not 16 bytes
# (none, or another format) reads as null. A range whose keys hold a newline (the pieces outnumber
# count(*)) is read one row at a time.
DIGEST_BYTES = 16
# `+source`, `+record_type`: no index may serve them, so SQLite walks the rowid range (offered the unique
# index on record_type it walks all the type's records once per range).
_LIVE_IN_RANGE = (
    literal_column("rowid") >= bindparam("lo"), literal_column("rowid") < bindparam("hi"),
    literal_column("+" + fp.c.source.name) == bindparam("source"),
    literal_column("+" + fp.c.record_type.name) == bindparam("record_type"), fp.c.deleted == 0,
)
_HAS_DIGEST = func.coalesce(func.length(fp.c.row_hash) == DIGEST_BYTES, 0)
_LIVE_DIGEST_TEXT = prepare(
    select(
        func.count(), func.group_concat(fp.c.source_key, func.char(10)),
        func.group_concat(
            case((_HAS_DIGEST == 1, func.hex(fp.c.row_hash)), else_="0" * 2 * DIGEST_BYTES), ""  # hex(NULL) is ''
        ),
        func.group_concat(_HAS_DIGEST, ""),
    ).where(*_LIVE_IN_RANGE)
)
_LIVE_DIGEST_ROWS = prepare(select(fp.c.source_key, fp.c.row_hash).where(*_LIVE_IN_RANGE))
_MAX_ROWID = prepare(select(func.max(literal_column("rowid"))).select_from(fp))
DIGEST_TYPE = pa.binary(DIGEST_BYTES)


def live_digests(conn: Connection, source: str, record_type: str, span: int = 65536) -> tuple[pa.Array, pa.Array]:
    """The source keys and row hashes (null: none) of `source`'s live records of `record_type`, as two
    aligned Arrow arrays (in no set order)."""
    top = conn.exec_driver_sql(_MAX_ROWID.sql).scalar() or 0
    key_parts: list[pa.Array] = []
    hash_parts: list[pa.Array] = []
    cur = conn.connection.cursor()
    try:
        for lo in range(0, top + 1, span):
            args = (lo, lo + span, source, record_type)
            n, skeys, hexes, flags = cur.execute(_LIVE_DIGEST_TEXT.sql, args).fetchone()
            if not n:
                continue
            keys = pc.list_flatten(pc.split_pattern(pa.array([skeys], pa.string()), "\n"))
            if len(keys) != n:
                rows = cur.execute(_LIVE_DIGEST_ROWS.sql, args).fetchall()
                key_parts.append(pa.array([k for k, _ in rows], pa.string()))
                hash_parts.append(pa.array([h if h is not None and len(h) == DIGEST_BYTES else None for _, h in rows], DIGEST_TYPE))
            else:
                raw = pa.FixedSizeBinaryArray.from_buffers(DIGEST_TYPE, n, [None, pa.py_buffer(bytes.fromhex(hexes))])
                has = pc.equal(pa.Array.from_buffers(pa.uint8(), n, [None, pa.py_buffer(flags.encode())]), ord("1"))
                key_parts.append(keys)
                hash_parts.append(pc.if_else(has, raw, pa.scalar(None, DIGEST_TYPE)))
    finally:
        cur.close()
    # One column joined at a time, its pieces dropped before the next: the peak is the pieces and one column.
    keys = pa.concat_arrays(key_parts) if key_parts else pa.array([], pa.string())
    del key_parts
    return keys, pa.concat_arrays(hash_parts) if hash_parts else pa.array([], DIGEST_TYPE)

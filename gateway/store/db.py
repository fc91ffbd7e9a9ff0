"""Open the gateway state store: SQLite in WAL mode, synchronous=FULL, migrated at start-up."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, inspect, select
from sqlalchemy.engine import Connection

from gateway.accounts.tables import add_account_columns
from gateway.logs import log
from gateway.store import tables

LOG = logging.getLogger("gateway.store")

# Each migration brings the schema from version n-1 to n. Append, never edit a
# released one.
Migration = Callable[[Connection], None]


def _v1(conn: Connection) -> None:
    tables.metadata.create_all(conn)


def _v2(conn: Connection) -> None:
    # fingerprints.row_hash (the raw-row digest that lets a sync skip re-mapping
    # unchanged rows), and `deleted` appended to ix_fingerprints_source_key (the
    # live key list is read from the index alone). A store created at v1 by this
    # code's create_all has both already.
    cols = {c["name"] for c in inspect(conn).get_columns("fingerprints")}
    if "row_hash" not in cols:
        conn.exec_driver_sql("ALTER TABLE fingerprints ADD COLUMN row_hash BLOB")
    ix = [r[2] for r in conn.exec_driver_sql("PRAGMA index_info(ix_fingerprints_source_key)")]
    if ix != ["source", "source_key", "deleted"]:
        conn.exec_driver_sql("DROP INDEX IF EXISTS ix_fingerprints_source_key")
        conn.exec_driver_sql("CREATE INDEX ix_fingerprints_source_key ON fingerprints (source, source_key, deleted)")


def _v3(conn: Connection) -> None:
    # receipts by outbox row (results_for), see tables.receipts.
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_receipts_outbox ON receipts (outbox_id)")


def _v4(conn: Connection) -> None:
    # refused_records and held_records (gateway/sync/held.py).
    tables.metadata.create_all(conn, tables=[tables.refused_records, tables.held_records])


def _v5(conn: Connection) -> None:
    # current_problems (the 问题数据 page); a store created by this code's create_all has it.
    tables.current_problems.create(conn, checkfirst=True)


def _v6(conn: Connection) -> None:
    # users.must_change_password (one-time passwords); a store created by this code's create_all has it.
    add_account_columns(conn, tables.users)


def _v7(conn: Connection) -> None:
    # outbox_batches.first_id/last_id: a batch's outbox rows by primary-key range, which is how an
    # accepted record's receipt is found now that it has no receipts row (gateway/push/record_receipts.py).
    cols = {c["name"] for c in inspect(conn).get_columns("outbox_batches")}
    for name in ("first_id", "last_id"):
        if name not in cols:
            conn.exec_driver_sql(f"ALTER TABLE outbox_batches ADD COLUMN {name} INTEGER")
    conn.exec_driver_sql(
        "UPDATE outbox_batches SET (first_id, last_id) = (SELECT min(id), max(id) FROM outbox"
        " WHERE outbox.batch_id = outbox_batches.batch_id) WHERE first_id IS NULL"
    )


def _v8(conn: Connection) -> None:
    # A record's outbox rows through its fingerprint (fingerprints.outbox_id, outbox.prev_id) instead of an
    # index on outbox (record_type, record_key), which every enqueued record paid for in scattered order.
    for table, name in (("fingerprints", "outbox_id"), ("outbox", "prev_id")):
        if name not in {c["name"] for c in inspect(conn).get_columns(table)}:
            conn.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {name} INTEGER")
    # Built while the old index still serves the per-record order.
    conn.exec_driver_sql(
        "UPDATE outbox SET prev_id = (SELECT p.id FROM outbox p WHERE p.record_type = outbox.record_type"
        " AND p.record_key = outbox.record_key AND p.id < outbox.id ORDER BY p.id DESC LIMIT 1) WHERE prev_id IS NULL"
    )
    conn.exec_driver_sql(
        "UPDATE fingerprints SET outbox_id = (SELECT max(o.id) FROM outbox o WHERE o.record_type ="
        " fingerprints.record_type AND o.record_key = fingerprints.record_key) WHERE outbox_id IS NULL"
    )
    conn.exec_driver_sql("DROP INDEX IF EXISTS ix_outbox_record")


MIGRATIONS: list[tuple[int, Migration]] = [
    (1, _v1), (2, _v2), (3, _v3), (4, _v4), (5, _v5), (6, _v6), (7, _v7), (8, _v8),
]
LATEST = MIGRATIONS[-1][0]


WAL_AUTOCHECKPOINT = 1000  # pages: SQLite's default, which every connection keeps


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _sqlite_pragmas(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: every commit is fsync'd, so what we put into the outbox survives power loss.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def open_store(path: str | Path) -> Engine:
    """Open (creating if needed) and migrate the state store at `path`."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(f"sqlite:///{p}", future=True)
    event.listen(engine, "connect", _sqlite_pragmas)
    migrate(engine)
    return engine


def begin_immediate(conn: Connection) -> None:
    """Take SQLite's write lock at the start, so two writers queue instead of failing on upgrade."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def current_version(conn: Connection) -> int:
    if not conn.dialect.has_table(conn, "schema_version"):
        return 0
    v = conn.execute(select(tables.schema_version.c.version).order_by(tables.schema_version.c.version.desc())).first()
    return int(v[0]) if v else 0


def migrate(engine: Engine) -> int:
    """Apply pending migrations in order, each in its own transaction. Returns the version."""
    with engine.begin() as conn:
        version = current_version(conn)
    upgrade = version > 0
    for number, step in MIGRATIONS:
        if number <= version:
            continue
        # Upgrading a store, some steps rewrite every row (v8 links each record's outbox rows: ~10 s for a
        # 1M-record store), so whoever watches the service start sees why it waits. A new store says nothing.
        if upgrade:
            log(LOG, logging.INFO, "state store migrating", version=number)
        t0 = time.monotonic()
        with engine.begin() as conn:
            step(conn)
            conn.execute(tables.schema_version.insert().values(version=number, applied_at=utcnow()))
        if upgrade:
            log(LOG, logging.INFO, "state store migrated", version=number, seconds=round(time.monotonic() - t0, 2))
        version = number
    return version


@contextmanager
def checkpoint_deferred(conn: Connection) -> Iterator[None]:
    """A commit that leaves the WAL checkpoint to checkpoint() (SQLite): under synchronous=FULL the commit
    is durable once the WAL is fsync'd; copying its pages into the database file is what the auto-checkpoint
    adds to every commit that passes 1000 pages (4x the commit itself for 2,000 scattered fingerprint
    updates). A run of chunk commits checkpoints once at its end, writing each page once, in page order."""
    if conn.dialect.name != "sqlite":
        yield
        return
    # On the DB-API connection: a statement through SQLAlchemy would begin its transaction.
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA wal_autocheckpoint=0")
    try:
        yield
    finally:
        raw.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT}")


def checkpoint(engine: Engine) -> None:
    """Copy the WAL into the database file now, without waiting for readers (PASSIVE)."""
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")


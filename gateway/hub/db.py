"""Open the hub database (SQLite or PostgreSQL) and run the serialised write transaction.

Every write that appends to the receipt log takes the hub's write lock:
SQLite takes it at BEGIN (BEGIN IMMEDIATE), PostgreSQL locks the single
`log_head` row with SELECT ... FOR UPDATE (`lock_head`). Either way log entries
chain and hub_seq grows in commit order, across threads and processes.

A batch (`department_tx`) first holds only its department's lock (a
PostgreSQL transaction-scoped advisory lock) while it reads the stored state,
decides every record and stages the rows; it takes the global `log_head` lock
last, for the log append and the writes that carry log_seq/hub_seq, so
batches of different departments overlap. Lock order is always department,
then log_head, so they cannot deadlock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
from sqlalchemy import Engine, create_engine, event, insert, inspect, null, select, update
from sqlalchemy import column as sa_column
from sqlalchemy import table as sa_table
from sqlalchemy.engine import Connection, make_url

from gateway.hub import planner_stats, tables

LATEST = 1
GENESIS = "0" * 64


def utcnow() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def _json_dumps(obj: object) -> str:
    return orjson.dumps(obj).decode("utf-8")


def _sqlite_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own is deferred and late).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    immediate = conn.get_execution_options().get("hub_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def open_hub_db(url: str, *, create: bool = True) -> Engine:
    """Engine for the hub database at `url`, with its tables created (version 1)."""
    u = make_url(url)
    kw: dict[str, object] = {"json_serializer": _json_dumps, "json_deserializer": orjson.loads}
    if u.get_backend_name() == "sqlite":
        if u.database and u.database != ":memory:":
            Path(u.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kw)
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine = create_engine(url, pool_size=10, max_overflow=10, pool_pre_ping=True, **kw)
    if create:
        migrate(engine)
    return engine


def migrate(engine: Engine) -> None:
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Hub processes starting together on one database: one creates the schema, the others wait.
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727465)")
        tables.metadata.create_all(conn)
        if "hash_alg" not in {c["name"] for c in inspect(conn).get_columns("receipt_log")}:
            # A log from before the suites: all its entries are SHA-256, which NULL says.
            conn.exec_driver_sql("ALTER TABLE receipt_log ADD COLUMN hash_alg VARCHAR(16)")
        _migrate_forward_outbox(conn)
        if conn.dialect.name == "postgresql":
            # No planner statistics for the JSON payloads: nothing plans by them and sampling them was most of
            # ANALYZE's cost (planner_stats). Idempotent, so it also reaches databases made before it.
            for table, column in (("records", "data"), ("records", "provenance")):
                conn.exec_driver_sql(f'ALTER TABLE "{table}" ALTER COLUMN "{column}" SET STATISTICS 0')
            # A batch's signed receipt (~100 KB for 1000 records) is stored under the hub's write lock:
            # pglz spent ~4.6 ms of PostgreSQL CPU per batch compressing it, lz4 a fraction of that.
            lz4 = conn.exec_driver_sql("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
            if lz4.scalar():
                conn.exec_driver_sql('ALTER TABLE "batches" ALTER COLUMN "receipt" SET COMPRESSION lz4')
        if conn.execute(select(tables.hub_schema_version.c.version)).first() is None:
            conn.execute(insert(tables.hub_schema_version).values(version=LATEST, applied_at=utcnow()))
        # The genesis head only for an empty log: recreating it under existing entries would hide a deleted
        # checkpoint from verify-log (and restart the chain at entry 1).
        if (
            conn.execute(select(tables.log_head.c.id)).first() is None
            and conn.execute(select(tables.receipt_log.c.seq).limit(1)).first() is None
        ):
            conn.execute(insert(tables.log_head).values(id=1, log_seq=0, log_head=GENESIS, hub_seq=0))


def _migrate_forward_outbox(conn: Connection) -> None:
    """A forward_outbox from before stored upward bodies: add the columns, order its rows by their batch's
    log entry (rows without a body are read back at the claim, as before)."""
    have = {c["name"] for c in inspect(conn).get_columns("forward_outbox")}
    added = False
    for col in ("log_seq", "records", "body"):
        if col not in have:
            ddl = tables.forward_outbox.c[col].type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE forward_outbox ADD COLUMN {col} {ddl}")
            added = True
    if added:
        b, o = tables.batches.c, tables.forward_outbox.c
        conn.execute(update(tables.forward_outbox).where(o.log_seq.is_(None)).values(
            log_seq=select(b.log_seq).where(b.batch_id == o.batch_id).scalar_subquery()))
        ix = next(i for i in tables.forward_outbox.indexes if i.name == "ix_forward_outbox_order")
        ix.create(conn, checkfirst=True)
    if "leaves" not in have:  # leaf hashes: NULL checks a receipt as before
        ddl = tables.forward_outbox.c.leaves.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(f"ALTER TABLE forward_outbox ADD COLUMN leaves {ddl}")
    _migrate_forward_bodies(conn)


def _migrate_forward_bodies(conn: Connection) -> None:
    """forward_batches from before `forward_bodies`: move each upward body (and its leaves) there, drop the columns."""
    have = {c["name"] for c in inspect(conn).get_columns("forward_batches")}
    if "body" not in have:
        return
    # The old columns are no longer declared: a lightweight table of them, so the copy is still Core.
    old = sa_table("forward_batches", sa_column("forward_id"), sa_column("body"), sa_column("leaves"))
    leaves = old.c.leaves if "leaves" in have else null()
    conn.execute(insert(tables.forward_bodies).from_select(
        ["forward_id", "body", "leaves"], select(old.c.forward_id, old.c.body, leaves)))
    for col in ("body", "leaves") if "leaves" in have else ("body",):
        conn.exec_driver_sql(f"ALTER TABLE forward_batches DROP COLUMN {col}")


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A write transaction that takes SQLite's write lock at BEGIN, so it never fails to upgrade a read."""
    with engine.connect() as raw:
        conn = raw.execution_options(hub_immediate=True)
        with conn.begin():
            yield conn


_HEAD = select(tables.log_head).where(tables.log_head.c.id == 1)  # built once: every logged request reads it
_HEAD_FOR_UPDATE = _HEAD.with_for_update()


def lock_head(conn: Connection) -> dict:
    """Take the hub's write lock inside the current transaction; the head row as a dict."""
    q = _HEAD if conn.dialect.name == "sqlite" else _HEAD_FOR_UPDATE
    return dict(conn.execute(q).mappings().one())


def after_commit(engine: Engine, head: dict) -> None:
    """After the commit, outside the lock: keep the planner's view of the growing tables current."""
    if engine.dialect.name == "postgresql":
        planner_stats.refresh_if_stale(engine, int(head["hub_seq"]))


@contextmanager
def serialized(engine: Engine) -> Iterator[tuple[Connection, dict]]:
    """A transaction holding the hub's write lock; yields (connection, head row as dict)."""
    with write_tx(engine) as conn:
        head = lock_head(conn)
        yield conn, head
    after_commit(engine, head)


REGISTRY_SEED_LOCK = 727467  # sync_from_config at start-up, so workers starting together seed the registry in turn
DEPARTMENT_LOCK = 727466  # first key of the two-key advisory locks, one per department (hashtext of its code)


@contextmanager
def department_tx(engine: Engine, department: str) -> Iterator[Connection]:
    """A write transaction holding `department`'s lock (PostgreSQL; SQLite's BEGIN IMMEDIATE holds everything)."""
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (DEPARTMENT_LOCK, department))
        yield conn

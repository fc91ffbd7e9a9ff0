"""Keep PostgreSQL's planner statistics of the hub's growing tables current.

The ingest's lookups (`records` by department, type and key = ANY(...)) are
only fast if the planner knows how big `records` is. On a table that grew from
empty (a department's first sync) without an ANALYZE, it still believes a
department holds a few dozen rows and reads them all through the (department,
type) index, filtering the keys afterwards: every batch then scans the whole
department and a 1M-record initial load turns quadratic (bench/run measured
~0.9 s per batch at 1M rows, 620 CPU-seconds in PostgreSQL for the load).
Autovacuum fixes that eventually, when it is on and has caught up; the hub
does not rely on it: every CHECK_EVERY log entries (batches) it compares the
records it has accepted since its last ANALYZE (hub_seq grows by one per
accepted record) with the planner's row count of `records`, and analyzes the
write tables when the growth is more than STALE_FRACTION of it (or the table
was never analyzed). One catalog query per check; no reliance on the
statistics collector's flush timing.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, text

LOG = logging.getLogger(__name__)

TABLES = ("records", "record_history", "receipts")
CHECK_EVERY = 32
STALE_FRACTION = 0.2
MIN_CHANGES = 1000

_analyzed_at: dict[str, int] = {}  # database URL -> hub_seq at this process's last ANALYZE
_lock = threading.Lock()

_ROWS = text("SELECT c.reltuples FROM pg_class c WHERE c.oid = to_regclass('records')")


def due(log_seq: int) -> bool:
    return log_seq % CHECK_EVERY == 0


def refresh_if_stale(engine: Engine, hub_seq: int) -> bool:
    """ANALYZE the hub's write tables if `records` grew a lot since the last time; True if it did. PostgreSQL only."""
    if engine.dialect.name != "postgresql":
        return False
    url = engine.url.render_as_string(hide_password=True)
    with _lock:
        grown = hub_seq - _analyzed_at.get(url, 0)
        if grown < MIN_CHANGES:
            return False
        with engine.connect() as conn:
            rows = float(conn.execute(_ROWS).scalar() or 0)
            if rows > 0 and grown <= STALE_FRACTION * rows:
                return False
            for name in TABLES:  # our own table names, never input
                conn.exec_driver_sql(f'ANALYZE "{name}"')
            conn.commit()
        _analyzed_at[url] = hub_seq
    LOG.info("planner statistics refreshed", extra={"hub_seq": hub_seq, "rows_before": rows})
    return True

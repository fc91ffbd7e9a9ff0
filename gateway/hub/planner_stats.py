"""Keep PostgreSQL's planner statistics of the hub's growing tables current.

The ingest's lookups (`records` by department, type and key = ANY(...)) are
only fast if the planner knows how big `records` is. On a table that grew from
empty (a department's first sync) without an ANALYZE, it still believes a
department holds a few dozen rows and reads them all through the (department,
type) index, filtering the keys afterwards: every batch then scans the whole
department and a 1M-record initial load turns quadratic (bench/run measured
~0.9 s per batch at 1M rows, 620 CPU-seconds in PostgreSQL for the load).
Autovacuum fixes that eventually, when it is on and has caught up; the hub
does not rely on it: after every batch it compares, in the process, the
records accepted since its last ANALYZE (hub_seq grows by one per accepted
record) with the row count it last saw; only when that growth passes
MIN_CHANGES and STALE_FRACTION of it does it read the planner's row count of
`records` (one catalog query) and analyze it if it is stale
(or was never analyzed). So the first ANALYZE comes right after the first
MIN_CHANGES records (a bench run lost ~1 s of PostgreSQL CPU per batch
before it when the check ran only every 32nd log entry), and the catalog is
not queried on every batch. STALE_FRACTION is 1 (again once `records` has
doubled): the planner scales the analyzed row count by the table's current
size itself, so what the lookup needs is statistics that exist and show the
departments and types; analyzing at every 20% of growth ran ANALYZE 12 times in
a 30k-record load, more PostgreSQL time than storing the records. The JSON
columns get no statistics (`db.migrate`): no query plans by them, and sampling
them was most of ANALYZE's cost.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine, text

LOG = logging.getLogger(__name__)

# Only the table the ingest looks up, and only the columns its lookup filters on (the row count comes
# with any ANALYZE): record_history, receipts and the other columns serve the operators' UI alone, whose
# plans autovacuum's own ANALYZE keeps current. Analyzing all of it cost ~3x as much (at 60k records
# ~400 ms against ~200 ms for the three columns, and half again for the two other tables).
ANALYZE = 'ANALYZE "records" ("department", "type", "key")'
STALE_FRACTION = 1.0
MIN_CHANGES = 1000

_analyzed_at: dict[str, int] = {}  # database URL -> hub_seq at this process's last ANALYZE (or check)
_rows_seen: dict[str, float] = {}  # database URL -> the planner's row count of `records` at that time
_lock = threading.Lock()

_ROWS = text("SELECT c.reltuples FROM pg_class c WHERE c.oid = to_regclass('records')")


def _grown_enough(url: str, hub_seq: int) -> bool:
    return hub_seq - _analyzed_at.get(url, 0) >= max(MIN_CHANGES, STALE_FRACTION * _rows_seen.get(url, 0.0))


def refresh_if_stale(engine: Engine, hub_seq: int) -> bool:
    """ANALYZE `records` if it grew a lot since the last time; True if it did. PostgreSQL only."""
    if engine.dialect.name != "postgresql":
        return False
    url = engine.url.render_as_string(hide_password=True)
    if not _grown_enough(url, hub_seq):  # the common case: no query at all
        return False
    with _lock:
        if not _grown_enough(url, hub_seq):  # another thread just did it
            return False
        grown = hub_seq - _analyzed_at.get(url, 0)
        with engine.connect() as conn:
            rows = float(conn.execute(_ROWS).scalar() or 0)
            if rows > 0 and grown <= STALE_FRACTION * rows:  # analyzed meanwhile (another hub process, autovacuum)
                _analyzed_at[url], _rows_seen[url] = hub_seq, rows
                return False
            conn.exec_driver_sql(ANALYZE)
            conn.commit()
            _analyzed_at[url], _rows_seen[url] = hub_seq, float(conn.execute(_ROWS).scalar() or 0)
    LOG.info("planner statistics refreshed", extra={"hub_seq": hub_seq, "rows_before": rows})
    return True

"""The hub keeps PostgreSQL's planner statistics current while a department's first load grows `records`.

Without it (autovacuum off, or not caught up) the key lookup of every batch reads
the department's whole stock through the (department, type) index: a 1M-record
initial load turned quadratic in bench/run.
"""

from __future__ import annotations

import sqlalchemy as sa

from gateway.hub import planner_stats
from tests.fixtures.hub import batch_body, record, sample

BATCHES, PER_BATCH = 34, 60  # ~2,000 records, twice planner_stats.MIN_CHANGES


def test_key_lookup_uses_the_key_index_after_a_first_load(live_hub_pg) -> None:  # type: ignore[no-untyped-def]
    hub = live_hub_pg
    n = 0
    for _ in range(BATCHES):
        recs = []
        for _ in range(PER_BATCH):
            n += 1
            recs.append(record("material", sample("material", n, material_id=f"WZ-{n:06d}")))
        r = hub.post("/api/v1/batches", batch_body(recs))
        assert r.status_code == 200, r.text
    with hub.engine.connect() as conn:
        analyzed = conn.execute(sa.text(
            "SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL FROM pg_stat_user_tables WHERE relname = 'records'"
        )).scalar()
        keys = [f"WZ-{i:06d}" for i in range(1, 51)]
        plan = "\n".join(r[0] for r in conn.execute(sa.text(
            "EXPLAIN SELECT key, seq, version, deleted FROM records "
            "WHERE department = :d AND type = 'material' AND key = ANY(CAST(:k AS varchar[]))"), {"d": hub.department, "k": keys}))
    assert analyzed
    assert "uq_records_key" in plan, plan


def test_refresh_is_a_no_op_on_sqlite(live_hub) -> None:  # type: ignore[no-untyped-def]
    assert planner_stats.refresh_if_stale(live_hub.engine, 10**6) is False

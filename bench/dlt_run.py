"""dlt's sql_database source into PostgreSQL, for comparison, in its own process (so its peak RSS is its own).

    python bench/dlt_run.py BACKEND SOURCE_URL DEST_URL PIPELINES_DIR

BACKEND is `sqlalchemy` (dlt's default) or `pyarrow`. The table is read with
incremental on `gxsj` (updated_at) and merged on the primary key `id`, which is
what keeping a copy current needs; a second call with the same PIPELINES_DIR is
the incremental run. Prints one JSON line: seconds, rows loaded, peak RSS.
dlt is an optional bench dependency (`pip install -e '.[bench]'`).
"""

from __future__ import annotations

import os
import resource
import sys
import time

import orjson


def main(argv: list[str]) -> int:
    backend, src, dest, pipelines_dir = argv
    os.environ.setdefault("RUNTIME__LOG_LEVEL", "WARNING")
    os.environ.setdefault("DLT_TELEMETRY", "false")
    os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
    import dlt
    from dlt.sources.sql_database import sql_table

    table = sql_table(
        credentials=src, table="kc_mx", backend=backend, incremental=dlt.sources.incremental("gxsj"), chunk_size=50_000,
    )
    table.apply_hints(primary_key="id", write_disposition="merge")
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{backend}", destination=dlt.destinations.postgres(dest), dataset_name="kc",
        pipelines_dir=pipelines_dir, progress=None,
    )
    t0 = time.perf_counter()
    info = pipeline.run(table)
    seconds = time.perf_counter() - t0
    rows = 0
    trace = pipeline.last_trace
    if trace is not None and trace.last_normalize_info is not None:
        rows = sum(trace.last_normalize_info.row_counts.get(t, 0) for t in ("kc_mx",))
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    print(orjson.dumps({
        "backend": backend, "seconds": seconds, "rows": rows, "failed_jobs": bool(info.has_failed_jobs),
        "peak_rss_mb": max(me.ru_maxrss, kids.ru_maxrss) / 1024,
        # includes dlt's import and pipeline set-up; CPU of worker processes it waited for is in RUSAGE_CHILDREN
        "cpu_s": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
    }).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

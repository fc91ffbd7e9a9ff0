"""Per-record push latency again, against the state a `bench/run --keep` left behind.

    .venv/bin/python bench/latency_kept.py WORKDIR PREFIX [--edits 1000]

`bench/run --rows 100000 --repeat 1 --steps full,latency --db-prefix PREFIX --workdir WORKDIR --keep`
loads the source and the hub once (~1 min); this then starts a hub and the gateway service from
the current tree on that state and times `--edits` local API calls (as bench/run's latency step),
printing p50/p95/p99 and the CPU per edit of the service, the hub and PostgreSQL. A before/after
pair of a change is two runs of this, one from each tree, on the same kept state.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import data  # noqa: E402
import local_push_latency as lat  # noqa: E402
import workspace as W  # noqa: E402
from run import DEFAULT_PG  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workdir", type=Path, help="the --workdir of a bench/run --keep")
    ap.add_argument("prefix", help="the --db-prefix of that run")
    ap.add_argument("--edits", type=int, default=1000)
    ap.add_argument("--rows", type=int, default=100_000, help="stock rows in that run's source (default 100000)")
    ap.add_argument("--pg", default=DEFAULT_PG)
    a = ap.parse_args()
    src_db, hub_db = f"{a.prefix}_src", f"{a.prefix}_hub"
    src = data.db_url(a.pg, src_db)
    ws = W.make_workspace(a.workdir, src)
    W.write_hub_config(ws, data.db_url(a.pg, hub_db))
    hub = W.HubProcess(ws).start()
    svc = lat.start_service(ws.gateway_config("cursor"), ws.web_url, ws.root / "service.log")
    try:
        svc0, hub0 = W.proc_cpu_seconds(svc.pid), hub.cpu_seconds() or 0.0
        pg_cpu = W.PgCpu(a.pg, (src_db, hub_db))
        out = lat.measure(src, ws.web_url, W.API_TOKEN, edits=a.edits, rows=a.rows)
        cpu = {"service": W.proc_cpu_seconds(svc.pid) - svc0, "hub": (hub.cpu_seconds() or 0.0) - hub0,
               "postgresql": pg_cpu.stop()}
    finally:
        lat.stop_service(svc)
        hub.stop()
    print(f"{out['edits']} edits: p50 {out['p50_ms']:.1f} / p95 {out['p95_ms']:.1f} / p99 {out['p99_ms']:.1f} ms"
          f" (mean {out['mean_ms']:.1f}); outcomes {out['outcomes']}")
    print("CPU ms per edit: " + ", ".join(f"{k} {v * 1000 / out['edits']:.2f}" for k, v in cpu.items()))


if __name__ == "__main__":
    main()

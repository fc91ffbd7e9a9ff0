"""CPU per record of the gateway's bulk sync path (extract → map → validate → detect changes → outbox).

    .venv/bin/python bench/sync_cpu.py [--rows 30000] [--strategy fingerprint|cursor] [--profile]

Generates the bench's PostgreSQL source (database ``bench_synccpu``, the kc_mx stock
table of bench/data.py) once, then times ``sync_source`` of the stock source into a
fresh state store: the first sync and an unchanged re-run, in CPU seconds of this
process (the source server's CPU is not counted). A quick harness for before/after
comparisons of the sync path; the full picture is bench/run.
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.workspace import make_workspace  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=30000)
    ap.add_argument("--strategy", choices=("cursor", "fingerprint"), default="fingerprint")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db", default="bench_synccpu")
    ap.add_argument("--profile", action="store_true", help="print the top functions by own time (cProfile)")
    a = ap.parse_args()

    from gateway.config import load_gateway_config
    from gateway.store import open_store
    from gateway.sync import sync_source

    url = data.db_url(a.pg, a.db)
    try:
        import psycopg

        with psycopg.connect(url) as conn:
            have = conn.execute("SELECT count(*) FROM kc_mx").fetchone()[0]
    except Exception:  # noqa: BLE001 - no database or no table yet
        have = -1
    if have != a.rows:
        data.generate(a.pg, a.db, a.rows)
    root = Path(tempfile.mkdtemp(prefix="sync-cpu-"))
    try:
        ws = make_workspace(root, url)
        cfg = load_gateway_config(ws.gateway_config(a.strategy))
        (root / f"state-{a.strategy}").mkdir(exist_ok=True)
        engine = open_store(cfg.state_path)
        for label in ("first sync", "unchanged re-run"):
            prof = None
            if a.profile:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            c0, t0 = cpu_seconds(), time.perf_counter()
            s = sync_source(cfg, "stock", engine)
            cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
            if prof is not None:
                import pstats

                prof.disable()
                pstats.Stats(prof).sort_stats("tottime").print_stats(25)
            print(
                f"{label:17} rows={s.rows_read} new={s.new} unchanged={s.unchanged} "
                f"cpu={cpu:.2f}s wall={wall:.2f}s cpu/record={cpu / max(s.rows_read, 1) * 1e6:.1f}us"
            )
        engine.dispose()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

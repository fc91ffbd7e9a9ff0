"""CPU per record of the gateway's bulk sync path (extract → map → validate → detect changes → outbox).

    .venv/bin/python bench/sync_cpu.py [--rows 30000] [--strategy fingerprint|cursor] [--profile]
    .venv/bin/python bench/sync_cpu.py --rows 100000 --strategy cursor --incremental 3 [--db h3_src] [--reads]

Generates the bench's PostgreSQL source (database ``bench_synccpu``, the kc_mx stock
table of bench/data.py) once, then times ``sync_source`` of the stock source into a
fresh state store: the first sync and an unchanged re-run, in CPU seconds of this
process (the source server's CPU is not counted). A quick harness for before/after
comparisons of the sync path; the full picture is bench/run.

With ``--incremental N`` the unchanged re-run is replaced by N rounds of bench/run's
incremental edit (``data.apply_changes``: 1% updates, 0.5% inserts, 0.2% deletes,
another slice each round), each followed by a timed sync (cursor sources reconcile
deletes, as in bench/run). Every round checks that the sync found exactly the
edited rows. The push is not included (see bench/push_cpu.py and bench/run).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench import data  # noqa: E402
from bench.workspace import make_workspace  # noqa: E402


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _source_state(url: str) -> tuple[int, int]:
    """(rows the source was generated with, incremental rounds applied since); (-1, 0) when absent."""
    try:
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS sync_cpu_source (rows bigint, rounds int)")
            got = conn.execute("SELECT rows, rounds FROM sync_cpu_source").fetchone()
            if got is None:  # a source made before this table existed: unedited if its count matches
                n = conn.execute("SELECT count(*) FROM kc_mx").fetchone()[0]
                conn.execute("INSERT INTO sync_cpu_source VALUES (%s, 0)", (n,))
                return int(n), 0
            return int(got[0]), int(got[1])
    except Exception:  # noqa: BLE001 - no database or no table yet
        return -1, 0


def _ensure_source(pg: str, db: str, rows: int) -> tuple[str, int]:
    """The source database's URL and the next incremental round number; generated afresh when its size differs."""
    url = data.db_url(pg, db)
    have, rounds = _source_state(url)
    if have != rows:
        data.generate(pg, db, rows)
        import psycopg

        with psycopg.connect(url) as conn:
            conn.execute("CREATE TABLE sync_cpu_source (rows bigint, rounds int)")
            conn.execute("INSERT INTO sync_cpu_source VALUES (%s, 0)", (rows,))
        rounds = 0
    return url, rounds


def _apply_round(url: str, rows: int, round_no: int) -> dict[str, int]:
    import psycopg

    change = data.apply_changes(url, rows, round_no)
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE sync_cpu_source SET rounds = %s", (round_no + 1,))
    return change


def _time_reads(cfg: Any) -> None:
    """Wall seconds of the adapter's reads alone, no state store: the key set (as the key-set
    reconcile reads it) and a full read through fetch_batches (as a fingerprint pass reads)."""
    from gateway.adapters.batches import RowBatch
    from gateway.sync.keyset import current_keys
    from gateway.sync.pipeline import open_adapter

    with open_adapter(cfg, cfg.source("stock")) as adapter:
        t0 = time.perf_counter()
        n = len(current_keys(adapter))
        print(f"read key set      keys={n} wall={time.perf_counter() - t0:.2f}s", flush=True)
        t0, rows = time.perf_counter(), 0
        for e in adapter.fetch_batches(None, 2000):
            if isinstance(e, RowBatch):
                rows += len(e)
        print(f"read full         rows={rows} wall={time.perf_counter() - t0:.2f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=30000)
    ap.add_argument("--strategy", choices=("cursor", "fingerprint"), default="fingerprint")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db", default="bench_synccpu")
    ap.add_argument("--incremental", type=int, default=0, metavar="N", help="N rounds of edits + sync instead of the re-run")
    ap.add_argument("--profile", action="store_true", help="print the top functions by own time (cProfile)")
    ap.add_argument("--keep", type=Path, help="keep the workspace and state store in this folder (created)")
    ap.add_argument("--reuse", type=Path, help="a --keep folder of the same source: its store is in step, skip the first sync")
    ap.add_argument("--reads", action="store_true", help="also time the source reads alone: the key set and a full read")
    a = ap.parse_args()
    from gateway.process_memory import bound_memory

    bound_memory()  # as `gateway sync` does (gateway.cli.main)

    from gateway.config import load_gateway_config
    from gateway.store import open_store
    from gateway.sync import sync_source

    url, next_round = _ensure_source(a.pg, a.db, a.rows)
    root = a.reuse or a.keep or Path(tempfile.mkdtemp(prefix="sync-cpu-"))
    try:
        if a.reuse is None:
            root.mkdir(parents=True, exist_ok=True)
            make_workspace(root, url)
        from bench.workspace import Workspace

        cfg = load_gateway_config(Workspace(root, 0, 0).gateway_config(a.strategy))
        (root / f"state-{a.strategy}").mkdir(exist_ok=True)
        engine = open_store(cfg.state_path)
        runs = [] if a.reuse else ["first sync"]
        runs += [f"incremental {r + 1}" for r in range(a.incremental)] if a.incremental else ["unchanged re-run"]
        inc: list[tuple[float, float]] = []
        for label in runs:
            expect = None
            if label.startswith("incremental"):
                # apply_changes stamps gxsj with the current second: let it pass the saved cursor
                # (rows stamped with the cursor's own second are the lag window's business, not this bench's).
                time.sleep(1.1)
                change = _apply_round(url, a.rows, next_round)
                next_round += 1
                expect = change["updated"] + change["inserted"] + change["deleted"]
            prof = None
            if a.profile and (label == "first sync" or os.environ.get("SYNC_CPU_ALL")):
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            c0, t0 = cpu_seconds(), time.perf_counter()
            s = sync_source(cfg, "stock", engine)
            cpu, wall = cpu_seconds() - c0, time.perf_counter() - t0
            if prof is not None:
                import pstats

                prof.disable()
                pstats.Stats(prof).sort_stats(os.environ.get("SYNC_CPU_SORT", "tottime")).print_stats(25)
            print(
                f"{label:17} rows={s.rows_read} new={s.new} changed={s.changed} deleted={s.deleted} "
                f"unchanged={s.unchanged} cpu={cpu:.2f}s wall={wall:.2f}s cpu/record={cpu / max(s.rows_read, 1) * 1e6:.1f}us",
                flush=True,
            )
            if expect is not None:
                found = s.new + s.changed + s.deleted
                if found != expect:
                    raise SystemExit(f"{label}: found {found} changes, the edit made {expect}: {change}")
                inc.append((cpu, wall))
        if inc:
            print(
                f"incremental {a.strategy} median of {len(inc)}: cpu={statistics.median(c for c, _ in inc):.2f}s "
                f"wall={statistics.median(w for _, w in inc):.2f}s"
            )
        if a.reads:
            _time_reads(cfg)
        engine.dispose()
    finally:
        if a.keep is None and a.reuse is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

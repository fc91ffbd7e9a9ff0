"""Sync a large PostgreSQL table and report peak memory: streaming keeps it flat.

    .venv/bin/python bench/sync_memory.py --rows 1000000 [--strategy fingerprint|cursor] [--keep]

Creates a throwaway database on the local PostgreSQL (TEST_PG_ADMIN_URL or
postgres@127.0.0.1:5432), fills it with generate_series, syncs it into a
temporary state store twice (first load, then an unchanged re-read), and
prints rows/s and the process's RSS sampled during the run and its peak.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.config import load_gateway_config  # noqa: E402
from gateway.process_memory import bound_memory  # noqa: E402
from gateway.store import open_store  # noqa: E402
from gateway.sync import sync_source  # noqa: E402

ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

MAPPING = """
record_type = "stock"
[fields]
material_id = { column = "wzbm", transforms = ["trim", "upper"] }
depot_id = { column = "ckbm" }
batch_no = { template = "P{id}" }
quantity = { column = "sl", transforms = ["number"] }
unit = { column = "dw" }
checked_date = { column = "hcrq", transforms = ["date"] }
"""


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--strategy", choices=("fingerprint", "cursor"), default="fingerprint")
    ap.add_argument("--keep", action="store_true", help="keep the database and state store")
    args = ap.parse_args()
    bound_memory()  # as `gateway sync` does (gateway.cli.main)

    name = "gwbench_" + uuid.uuid4().hex[:8]
    admin = sa.create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f"CREATE DATABASE {name}"))
    url = ADMIN.rsplit("/", 1)[0] + "/" + name
    tmp = Path(tempfile.mkdtemp(prefix="gwbench_"))
    try:
        src = sa.create_engine(url)
        t = time.monotonic()
        with src.begin() as c:
            c.execute(sa.text(
                "CREATE TABLE kc (id int primary key, wzbm text, ckbm text, sl text, dw text, hcrq date, updated_at timestamp)"
            ))
            c.execute(sa.text(
                "INSERT INTO kc SELECT g, ' wz' || (g % 997), 'CK' || (g % 7), (g % 500) || '箱', '箱', "
                "date '2024-03-01' - (g % 30), timestamp '2024-03-01 08:00' + g * interval '1 millisecond' "
                "FROM generate_series(1, :n) g"
            ), {"n": args.rows})
        src.dispose()
        print(f"generated {args.rows} rows in {time.monotonic() - t:.1f} s", flush=True)

        (tmp / "gateway.key").write_text("unused")
        (tmp / "stock.toml").write_text(MAPPING, encoding="utf-8")
        settings = {"url": url, "table": "kc", "key_columns": ["id"], "chunk_size": 2000}
        if args.strategy == "cursor":
            settings["cursor_column"] = "updated_at"
        (tmp / "gateway.toml").write_text(
            '[department]\ncode = "bench"\nname = "bench"\n[hub]\nurl = "http://127.0.0.1:9"\n'
            '[keys]\nsigning_key = "gateway.key"\nkey_id = "k"\n'
            f'[[sources]]\nname = "kc"\ntype = "sql"\nrecord_type = "stock"\nmapping = "stock.toml"\nstrategy = "{args.strategy}"\n'
            "[sources.settings]\n" + "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "\n",
            encoding="utf-8",
        )
        cfg = load_gateway_config(tmp / "gateway.toml")
        store = open_store(cfg.state_path)
        samples: list[tuple[int, float]] = []
        last = [0]

        def progress(rows: int) -> None:
            if rows - last[0] >= args.rows // 20:
                last[0] = rows
                samples.append((rows, rss_mb()))

        for label in ("first load", "unchanged re-read"):
            last[0] = 0
            samples.clear()
            t = time.monotonic()
            s = sync_source(cfg, "kc", store, progress=progress)
            secs = time.monotonic() - t
            print(f"{label}: {s} in {secs:.1f} s ({s.rows_read / secs:,.0f} rows/s)")
            print("  RSS MB at rows: " + ", ".join(f"{r // 1000}k={m:.0f}" for r, m in samples))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak:.0f} MB; state store {cfg.state_path.stat().st_size / 1e6:.0f} MB")
    finally:
        if not args.keep:
            with admin.connect() as c:
                c.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        admin.dispose()


if __name__ == "__main__":
    main()

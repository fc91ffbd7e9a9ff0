"""Per-row cost of reading a whole source: fetch() against fetch_batches(), from one invocation.

    .venv/bin/python bench/bench_read.py [--rows 100000] [--rounds 3] [--no-mariadb] [--keep] [--reuse]

Generates bench/data.py's stock table `kc_mx` (N rows) in a PostgreSQL database
named arrowread_src, and copies it into a MariaDB database of the same name
(unless --no-mariadb), then reads it whole through the `sql` adapter, the
readers alternating round by round:

- fetch: the row events (a dict and a SourceRow per row), as the sync used to read;
- grouped: Adapter.fetch_batches' default (fetch()'s rows grouped), the batches
  consumed with arrow(), i.e. what the bulk path cost before the columnar reader;
- batches→arrow / batches→dicts: the adapter's own fetch_batches, each batch
  consumed as Arrow (arrow()) or as dicts (dicts()).

Then the same four readers over one GB18030 CSV export of N rows through the
`folder` adapter (bench/bench_files.py's rows: quoted cells with commas).

Prints wall and CPU µs per row (best of the rounds; CPU is the fairer figure on
a shared machine). The databases are dropped afterwards unless --keep.
Informational, not a test.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import data  # noqa: E402 (bench/data.py)
import psycopg  # noqa: E402
import pymysql  # noqa: E402
from bench_files import rows as csv_rows  # noqa: E402

from gateway.adapters.base import Adapter, SourceRow  # noqa: E402
from gateway.adapters.batches import RowBatch  # noqa: E402
from gateway.adapters.files.adapters import FolderAdapter  # noqa: E402
from gateway.adapters.sql import SqlAdapter  # noqa: E402

DB = "arrowread_src"
PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "charset": "utf8mb4"}
MY_DDL = """
CREATE TABLE kc_mx (
    id bigint PRIMARY KEY, wzbm varchar(20) NOT NULL, wzmc varchar(100), ckbm varchar(20) NOT NULL, pch varchar(30) NOT NULL,
    sl decimal(14,3) NOT NULL, jldw varchar(10) NOT NULL, yjsl decimal(14,3), scrq date, rkrq date, yxq date,
    zt varchar(20), cbjb varchar(20), zrdw varchar(50), zrr varchar(20), zrrdh varchar(20), hcrq date NOT NULL,
    gxsj datetime NOT NULL, KEY kc_mx_gxsj (gxsj, id)
) DEFAULT CHARSET=utf8mb4"""


def pg_source(rows: int, reuse: bool) -> str:
    url = data.db_url(PG, DB)
    if reuse:  # a kept database of the same size (--keep before): no need to generate it again
        try:
            with psycopg.connect(url) as conn:
                if conn.execute("SELECT count(*) FROM kc_mx").fetchone()[0] == rows:  # type: ignore[index]
                    return url.replace("postgresql://", "postgresql+psycopg://", 1)
        except psycopg.Error:
            pass
    url = data.generate(PG, DB, rows)
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


def mariadb_copy(pg_url: str) -> str:
    """The PostgreSQL table copied into MariaDB, in multi-row INSERTs."""
    conn = pymysql.connect(**MY, autocommit=True)
    with conn.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB}")
        c.execute(f"CREATE DATABASE {DB} CHARACTER SET utf8mb4")
        c.execute(f"USE {DB}")
        c.execute(MY_DDL)
        with psycopg.connect(pg_url) as src, src.cursor(name="copy") as cur:
            cur.execute(f"SELECT {', '.join(data.STOCK_COLUMNS)} FROM kc_mx ORDER BY id")
            marks = "(" + ", ".join(["%s"] * len(data.STOCK_COLUMNS)) + ")"
            while chunk := cur.fetchmany(5000):
                c.executemany(f"INSERT INTO kc_mx ({', '.join(data.STOCK_COLUMNS)}) VALUES {marks}", chunk)
    conn.close()
    return f"mysql+pymysql://root@127.0.0.1:3306/{DB}?charset=utf8mb4"


def drop_mariadb() -> None:
    conn = pymysql.connect(**MY, autocommit=True)
    with conn.cursor() as c:
        c.execute(f"DROP DATABASE IF EXISTS {DB}")
    conn.close()


def adapter(url: str) -> SqlAdapter:
    return SqlAdapter("bench", {"url": url, "table": "kc_mx", "key_columns": ["id"], "cursor_column": "gxsj", "chunk_size": 2000})


def read_fetch(a: Adapter) -> int:
    return sum(1 for e in a.fetch(None) if isinstance(e, SourceRow))


def _consume(events: Any, as_arrow: bool) -> int:
    n = 0
    for e in events:
        if isinstance(e, RowBatch):
            if as_arrow:
                batch = e.arrow()
                if batch is None:
                    raise SystemExit("a batch has no Arrow form: the columnar path is not being measured")
                n += batch.num_rows
            else:
                n += len(e.dicts())
    return n


def read_grouped(a: Adapter) -> int:
    return _consume(Adapter.fetch_batches(a, None, 2000), as_arrow=True)


def read_arrow(a: Adapter) -> int:
    return _consume(a.fetch_batches(None, 2000), as_arrow=True)


def read_dicts(a: Adapter) -> int:
    return _consume(a.fetch_batches(None, 2000), as_arrow=False)


READERS: dict[str, Callable[[Adapter], int]] = {
    "fetch": read_fetch,
    "grouped (before)": read_grouped,
    "batches→arrow": read_arrow,
    "batches→dicts": read_dicts,
}


def check_same(url: str) -> None:
    """The first batch's dicts equal fetch()'s first rows, in value and type (the suite proves it in full)."""
    # Leaving the read after 2000 rows leaves pymysql's unbuffered result unread, which it warns of.
    warnings.filterwarnings("ignore", "Previous unbuffered result was left incomplete")
    a = adapter(url)
    rows = []
    for e in a.fetch(None):
        if isinstance(e, SourceRow):
            rows.append(e.data)
            if len(rows) == 2000:
                break
    first = next(e for e in a.fetch_batches(None, 2000) if isinstance(e, RowBatch))
    typed = [[(type(v), repr(v)) for v in r.values()] for r in rows]
    assert typed == [[(type(v), repr(v)) for v in r.values()] for r in first.dicts()], "batches differ from fetch()"
    kinds = sorted({type(v).__name__ for v in rows[0].values()})
    assert {type(v) for v in rows[0].values()} >= {int, str, Decimal, dt.date, dt.datetime}, kinds
    a.close()


def csv_folder(n: int) -> Path:
    folder = Path(tempfile.mkdtemp(prefix="arrowread_csv"))
    with open(folder / "stock.csv", "w", encoding="gb18030", newline="") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["物资编码", "物资名称", "数量", "日期"])
        w.writerows(csv_rows(n))
    return folder


def folder_adapter(folder: Path) -> FolderAdapter:
    return FolderAdapter("bench", {"path": str(folder), "key_columns": ["物资编码"], "completion": "atomic"})


def measure(label: str, url: str, n: int, rounds: int, make: Callable[[Any], Adapter] = adapter) -> None:
    if make is adapter:
        check_same(url)
    best: dict[str, tuple[float, float]] = {}
    for _ in range(rounds):
        for name, read in READERS.items():  # alternate the readers within each round
            a = make(url)
            a.columns()  # reflect (or sample) outside the timing
            t0, c0 = time.perf_counter(), time.process_time()
            got = read(a)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            a.close()
            if got != n:
                raise SystemExit(f"{label} {name}: read {got} rows, expected {n}")
            w, c = best.get(name, (wall, cpu))
            best[name] = (min(w, wall), min(c, cpu))
    base = best["fetch"][1]
    print(f"\n{label}, {n} rows, best of {rounds}:")
    print(f"  {'reader':<18} {'wall µs/row':>12} {'CPU µs/row':>11} {'CPU vs fetch':>13}")
    for name, (wall, cpu) in best.items():
        print(f"  {name:<18} {wall * 1e6 / n:12.2f} {cpu * 1e6 / n:11.2f} {base / cpu:12.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-mariadb", action="store_true", help="PostgreSQL only")
    ap.add_argument("--keep", action="store_true", help="keep the arrowread_src databases")
    ap.add_argument("--reuse", action="store_true", help="use a kept PostgreSQL arrowread_src of --rows rows")
    args = ap.parse_args()
    url = pg_source(args.rows, args.reuse)
    my_url = None
    try:
        if not args.no_mariadb:
            my_url = mariadb_copy(data.db_url(PG, DB))
        measure("PostgreSQL kc_mx, 18 columns (ADBC for batches)", url, args.rows, args.rounds)
        if my_url:
            measure("MariaDB kc_mx, 18 columns (pymysql)", my_url, args.rows, args.rounds)
        folder = csv_folder(args.rows)
        try:
            measure("CSV, GB18030 (folder adapter)", folder, args.rows, args.rounds, folder_adapter)  # type: ignore[arg-type]
        finally:
            shutil.rmtree(folder)
    finally:
        if not args.keep:
            data.drop_database(PG, DB)
            if my_url:
                drop_mariadb()


if __name__ == "__main__":
    main()

"""Forwarding between hub levels: the township hub's ingest CPU per record with and without forwarding,
and the time from a department's edit to its arrival at the city hub (three levels).

    python bench/bench_forward.py [--records 20000] [--batch 500] [--edits 100] [--pg] [--sizes 500,1] [--no-latency]
                                  [--protocol 1.1]

Every hub is `gateway hub --config F run` in its own process on loopback (tests/fixtures/levels.py),
SQLite by default (`--pg`: the township on a fresh PostgreSQL database). CPU is the township process's
user+system time from /proc (its forwarder thread included), from the first post until everything it
accepted is stored at the county (with forwarding) or receipted (without). The latency is the wall
time from posting a one-record batch to the township until the city's database holds the record.
The department posts as a gateway of `--protocol` does (1.1, the default: it asks for compact receipts; a
hub that does not know 1.1 answers in full). To compare with an older tree, copy this script into that
tree's bench/ and run it there (it puts its own tree first on sys.path; the hubs inherit PYTHONPATH).
Figures: docs/hub.md, "Levels".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, func, select, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gateway.hub import tables  # noqa: E402
from gateway.protocol.signing import sign_request  # noqa: E402
from tests.fixtures.hub import batch_body, record, sample  # noqa: E402
from tests.fixtures.levels import make_levels  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def count(engine, department: str = "dept001") -> int:  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return c.execute(select(func.count()).select_from(tables.records)
                         .where(tables.records.c.department == department)).scalar_one()


def wait_count(engine, n: int, timeout: float = 600) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while count(engine) < n:
        if time.monotonic() > deadline:
            raise SystemExit(f"only {count(engine)} of {n} records arrived")
        time.sleep(0.02)


ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "gwbench_fwd_")  # databases made here, dropped when done
made: list[str] = []


def new_pg() -> tuple[str, str]:
    name = DB_PREFIX + uuid.uuid4().hex[:8]
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    made.append(name)
    return name, f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"


def drop_made() -> None:
    if not made:
        return
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        for name in made:
            c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    made.clear()


PROTOCOL = "1.1"


def post(hub, body: bytes) -> requests.Response:  # type: ignore[no-untyped-def]
    """POST a batch as a gateway speaking PROTOCOL would (the signed Protocol-Version header)."""
    headers = {"Content-Type": "application/json", **sign_request(
        "POST", "/api/v1/batches", body, hub.key, hub.key_id, content_type="application/json", protocol_version=PROTOCOL)}
    return hub.session.post(hub.url + "/api/v1/batches", data=body, headers=headers, timeout=60)


def ingest(forward: bool, records: int, batch: int, pg: bool) -> float:
    """The township's CPU-µs per record for `records` new materials in `batch`-record batches."""
    names = ("township", "county") if forward else ("township",)
    urls = [new_pg()[1] if pg else None] + [None] * (len(names) - 1)
    lv = make_levels(Path(tempfile.mkdtemp()), names, urls, batch_size=None, process=True)  # upstream.batch_size's default
    township = lv[0]
    try:
        bodies = [batch_body([record("material", sample("material", b * batch + i + 1)) for i in range(batch)])
                  for b in range(records // batch)]
        assert township.process is not None
        before = cpu_seconds(township.process.pid)
        for body in bodies:
            r = post(township, body)
            assert r.status_code == 200 and b'"rejected"' not in r.content, r.text[:300]
        if forward:
            wait_count(lv[1].engine, len(bodies) * batch)
        used = cpu_seconds(township.process.pid) - before
        return used / (len(bodies) * batch) * 1e6
    finally:
        for h in lv.hubs:
            h.close()


def latency(edits: int, pg: bool) -> list[float]:
    urls = [new_pg()[1] if pg else None, None, None]
    lv = make_levels(Path(tempfile.mkdtemp()), ("township", "county", "city"), urls, batch_size=None, process=True)
    township, city = lv[0], lv[2]
    out = []
    try:
        for n in range(1, edits + 1):
            body = batch_body([record("material", sample("material", n))])
            t = time.perf_counter()
            assert township.post("/api/v1/batches", body).status_code == 200
            wait_count(city.engine, n, 30)
            out.append(time.perf_counter() - t)
            time.sleep(0.05)  # an edit at a time, nothing queued
    finally:
        for h in lv.hubs:
            h.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--edits", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", action="store_true")
    ap.add_argument("--sizes", default=None, help="batch sizes to measure, comma-separated (default: --batch and 1)")
    ap.add_argument("--no-latency", action="store_true", help="skip the three-level latency run")
    ap.add_argument("--protocol", default="1.1", help="the version the department speaks (1.1: compact receipts)")
    a = ap.parse_args()
    global PROTOCOL
    PROTOCOL = a.protocol
    try:
        run(a)
    finally:
        drop_made()


def run(a: argparse.Namespace) -> None:
    store = ("PostgreSQL" if a.pg else "SQLite") + f", department speaking {PROTOCOL}"
    sizes = [int(x) for x in a.sizes.split(",")] if a.sizes else [a.batch, 1]
    for batch in sizes:
        n = a.records if batch > 1 else min(a.records, 1000)
        runs = {f: [ingest(f, n, batch, a.pg) for _ in range(a.repeat)] for f in (False, True)}
        off, on = statistics.median(runs[False]), statistics.median(runs[True])
        print(f"township ({store}), {n} records in {batch}-record batches: CPU per record "
              f"{off:.0f} µs without forwarding, {on:.0f} µs with (+{(on - off) / off * 100:.0f}%); "
              f"runs {[round(x) for x in runs[False]]} / {[round(x) for x in runs[True]]}")
        drop_made()
    if a.no_latency:
        return
    lat = sorted(latency(a.edits, a.pg))
    q = statistics.quantiles(lat, n=100)
    print(f"edit → city (3 levels, {store} township), {len(lat)} one-record edits: p50 {q[49] * 1000:.0f} ms, "
          f"p95 {q[94] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")


if __name__ == "__main__":
    main()

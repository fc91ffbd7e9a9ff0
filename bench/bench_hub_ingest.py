"""Hub ingest throughput: 8 gateways post signed batches concurrently to a real hub process.

    python bench/bench_hub_ingest.py [pg|sqlite] [batches per gateway] [records per batch] [record type]
    python bench/bench_hub_ingest.py profile [pg|sqlite] [batches] [records per batch] [sort]

The hub runs as `gateway hub --config F run` in its own process (on a fresh
PostgreSQL database for `pg`, named $BENCH_DB_PREFIX..., dropped after); the gateways are threads of
this process, each with its own department and key. Prints records/s over the wall time of all posts
and the hub process's CPU per record (user+system from /proc, its HTTP and signature checks included).
`profile`: the hub's per-batch path in this process (parse, check_records, store_batch), its CPU per
record, and a cProfile (CPU time) of half the batches.
Figures and what limits them: docs/hub.md, "Performance".
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gateway.protocol.signing import sign_request  # noqa: E402
from tests.fixtures.hub import batch_body, make_hub, record, sample  # noqa: E402

GATEWAYS = 8
TICK = os.sysconf("SC_CLK_TCK")
ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB_PREFIX = os.environ.get("BENCH_DB_PREFIX", "gwbench_")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def profile(store: str, n_batches: int, size: int, sort: str) -> None:
    """cProfile of parse + check_records + store_batch in this process, on `size`-record batches of new materials."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from gateway.hub import registry
    from gateway.hub.db import open_hub_db
    from gateway.hub.ingest import check_records, store_batch
    from gateway.protocol.batch import parse_batch
    from gateway.protocol.signing import content_digest

    dbname = None
    if store == "pg":
        dbname = DB_PREFIX + uuid.uuid4().hex[:8]
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {dbname}"))
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp()}/hub.db"
    engine = open_hub_db(url)
    try:
        with engine.begin() as c:
            registry.add_department(c, "dept001", "测试")
        key = Ed25519PrivateKey.generate()
        bodies = [batch_body([record("material", sample("material", b * size + i + 1)) for i in range(size)])
                  for b in range(n_batches + 2)]

        def one(body: bytes) -> None:
            batch = parse_batch(body)
            candidates = check_records(batch.records)
            with engine.connect() as conn:
                stored = store_batch(conn, key, "hub", batch, candidates, key_id="k", digest=content_digest(body))
            assert not stored.refused and b'"rejected"' not in stored.receipt

        for body in bodies[:2]:  # warm: statements prepared, planner statistics taken
            one(body)
        half = 2 + n_batches // 2
        t = time.process_time()
        for body in bodies[2:half]:
            one(body)
        plain = (time.process_time() - t) / ((half - 2) * size) * 1e6
        prof = cProfile.Profile(time.process_time)  # CPU time: waits for the database do not count
        prof.enable()
        for body in bodies[half:]:
            one(body)
        prof.disable()
        print(f"{store}: {size}-record batches, hub CPU {plain:.1f} µs per record (parse, check_records, store_batch)")
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats(sort).print_stats(40)
        print(out.getvalue())
    finally:
        engine.dispose()
        if dbname is not None:
            with create_engine(ADMIN, isolation_level="AUTOCOMMIT").connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "profile":
        a = sys.argv[2:]
        profile(a[0] if a else "sqlite", int(a[1]) if len(a) > 1 else 20, int(a[2]) if len(a) > 2 else 1000,
                a[3] if len(a) > 3 else "cumulative")
        return
    store = sys.argv[1] if len(sys.argv) > 1 else "pg"
    n_batches = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    rtype = sys.argv[4] if len(sys.argv) > 4 else "material"
    url, admin, dbname = None, None, None
    if store == "pg":
        dbname = DB_PREFIX + uuid.uuid4().hex[:8]
        admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {dbname}"))
        url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{dbname}"
    hub = make_hub(Path(tempfile.mkdtemp()), url, process=True, max_in_flight=GATEWAYS * 2)
    try:
        depts = [hub.add_department(f"bench{g}") for g in range(GATEWAYS)]
        if rtype == "stock":  # stocks need their materials and depot at the hub first
            for g, (key, key_id) in enumerate(depts):
                code = f"bench{g}"
                for b in range(n_batches):
                    recs = [record("material", sample("material", b * size + i + 1), department=code) for i in range(size)]
                    recs.append(record("depot", sample("depot"), department=code))
                    body = batch_body(recs, code)
                    requests.post(hub.url + "/api/v1/batches", data=body, timeout=300,
                                  headers={"Protocol-Version": "1", **sign_request("POST", "/api/v1/batches", body, key, key_id)})
        bodies = [
            [batch_body([record(rtype, sample(rtype, b * size + i + 1), department=f"bench{g}") for i in range(size)], f"bench{g}")
             for b in range(n_batches)]
            for g in range(GATEWAYS)
        ]
        failures: list[str] = []

        def push(g: int) -> None:
            key, key_id = depts[g]
            with requests.Session() as s:
                for body in bodies[g]:
                    h = {"Protocol-Version": "1", **sign_request("POST", "/api/v1/batches", body, key, key_id)}
                    r = s.post(hub.url + "/api/v1/batches", data=body, headers=h, timeout=300)
                    if r.status_code != 200 or b'"rejected"' in r.content:
                        failures.append(f"{r.status_code} {r.text[:200]}")

        assert hub.process is not None
        cpu = cpu_seconds(hub.process.pid)
        t = time.perf_counter()
        threads = [threading.Thread(target=push, args=(g,)) for g in range(GATEWAYS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        dt = time.perf_counter() - t
        cpu = cpu_seconds(hub.process.pid) - cpu
        n = GATEWAYS * n_batches * size
        print(f"{store}: {n} {rtype} records in {dt:.2f}s = {n / dt:,.0f} records/s, hub CPU {cpu / n * 1e6:.0f} µs "
              f"per record ({GATEWAYS} gateways, {size}-record batches); failures: {len(failures)} {failures[:1]}")
    finally:
        hub.close()
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))


if __name__ == "__main__":
    main()

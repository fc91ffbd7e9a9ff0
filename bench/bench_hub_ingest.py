"""Hub ingest throughput: 8 gateways post signed batches concurrently to a real hub process.

    python bench/bench_hub_ingest.py [pg|sqlite] [batches per gateway] [records per batch] [record type]

The hub runs as `gateway hub --config F run` in its own process (on a fresh
PostgreSQL database for `pg`); the gateways are threads of this process, each
with its own department and key. Prints records/s over the wall time of all posts.
Figures and what limits them: docs/hub.md, "Performance".
"""

from __future__ import annotations

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


def main() -> None:
    store = sys.argv[1] if len(sys.argv) > 1 else "pg"
    n_batches = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    size = int(sys.argv[3]) if len(sys.argv) > 3 else 500
    rtype = sys.argv[4] if len(sys.argv) > 4 else "material"
    url, admin, dbname = None, None, None
    if store == "pg":
        dbname = "gwbench_" + uuid.uuid4().hex[:8]
        admin = create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/postgres", isolation_level="AUTOCOMMIT")
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

        t = time.perf_counter()
        threads = [threading.Thread(target=push, args=(g,)) for g in range(GATEWAYS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        dt = time.perf_counter() - t
        n = GATEWAYS * n_batches * size
        print(f"{store}: {n} {rtype} records in {dt:.2f}s = {n / dt:,.0f} records/s "
              f"({GATEWAYS} gateways, {size}-record batches); failures: {len(failures)} {failures[:1]}")
    finally:
        hub.close()
        if admin is not None:
            with admin.connect() as c:
                c.execute(text(f"DROP DATABASE IF EXISTS {dbname} WITH (FORCE)"))


if __name__ == "__main__":
    main()

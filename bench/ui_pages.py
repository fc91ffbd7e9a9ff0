"""Server time of the hub operators' pages on a filled database.

`python bench/ui_pages.py [RECEIPTS] [--pg URL]`: fills a fresh hub database
(SQLite by default) with RECEIPTS per-record receipts (default 100k) in batches
of 10, one receipt-log entry per batch, and one current record per receipt
across 20 departments (bulk inserts), then times the receipt log pages and the
department status page through the Flask test client: median of 7 requests
each, after one warm-up. Target: < 300 ms per page.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from gateway.hub.app import create_app
from gateway.hub.db import open_hub_db
from gateway.hub.tables import departments, receipt_log, receipts, records
from gateway.hub.ui_tables import hub_account_store
from gateway.protocol.keys import new_key_pair

DEPARTMENTS = 20
PER_BATCH = 10
PASSWORD = "Ceshi-mima-2026"
TYPES = ("material", "depot", "stock", "agreement", "capacity")
STATUSES = ("accepted",) * 17 + ("rejected", "duplicate", "stale")


def fill(url: str, n: int) -> None:
    engine = open_hub_db(url)
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as c:
        c.execute(departments.insert(), [
            {"code": f"d{i:02d}", "name": f"部门{i:02d}", "record_types": list(TYPES), "created_at": start.isoformat()}
            for i in range(DEPARTMENTS)
        ])
    batches = n // PER_BATCH
    chunk = 2000  # batches per transaction
    for b0 in range(0, batches, chunk):
        logs, recs, rows = [], [], []
        for b in range(b0, min(b0 + chunk, batches)):
            seq = b + 1
            when = (start + dt.timedelta(seconds=seq * 60)).isoformat()
            dep = f"d{b % DEPARTMENTS:02d}"
            bid = f"{seq:08d}-0000-0000-0000-000000000000"
            counts = dict.fromkeys(("accepted", "rejected", "duplicate", "stale"), 0)
            logs.append({"seq": seq, "time": when, "department": dep, "key_id": dep + "-1", "kind": "batch",
                         "status": "ok", "batch_id": bid, "counts": counts, "request_digest": None,
                         "summary": "{}", "prev_hash": "0" * 64, "entry_hash": f"{seq:064x}"})
            for j in range(PER_BATCH):
                i = b * PER_BATCH + j
                typ, key = TYPES[i % 5], f"K{i:08d}"
                st = STATUSES[i % len(STATUSES)]
                counts[st] += 1
                rows.append({"log_seq": seq, "batch_id": bid, "department": dep, "type": typ, "key": key, "seq": 1,
                             "status": st, "reasons": '[{"field":"unit","label":"计量单位","message":"不在单位表中"}]'
                             if st == "rejected" else None, "hub_time": when})
                if st != "rejected":
                    recs.append({"department": dep, "type": typ, "key": key, "seq": 1, "version": f"{i:064x}",
                                 "data": {"checked_date": "2026-01-02"} if typ == "stock" else {"x": i},
                                 "updated_at": None, "deleted": False, "provenance": {"operator": "bench"},
                                 "hub_seq": i + 1, "log_seq": seq, "received_at": when})
        for e in logs:
            e["counts"] = json.dumps(e["counts"], separators=(",", ":"), sort_keys=True)
        with engine.begin() as c:
            c.execute(receipt_log.insert(), logs)
            c.execute(receipts.insert(), rows)
            c.execute(records.insert(), recs)
    # Steady state: statistics gathered, and on PostgreSQL the visibility map set (as autovacuum
    # would) so covering indexes are read without heap visits.
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.exec_driver_sql("VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE")
    hub_account_store(engine).add("bench", PASSWORD, "operator")
    engine.dispose()


def timed(client, path: str, runs: int = 7) -> float:  # type: ignore[no-untyped-def]
    r = client.get(path)
    assert r.status_code == 200, (path, r.status_code, r.get_data(as_text=True)[:300])
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - t)
        assert r.status_code == 200
    return statistics.median(times) * 1000


def main() -> None:
    argv = sys.argv[1:]
    if "--pg" in argv:
        i = argv.index("--pg")
        argv = argv[:i] + argv[i + 2:]
    args = [a for a in argv if not a.startswith("--")]
    n = int(args[0]) if args else 100_000
    work = Path(tempfile.mkdtemp(prefix="bench-ui-"))
    url = sys.argv[sys.argv.index("--pg") + 1] if "--pg" in sys.argv else f"sqlite:///{work / 'hub.db'}"
    new_key_pair(work / "hub.key", work / "hub.pub")
    t = time.perf_counter()
    fill(url, n)
    print(f"filled {n} receipts, {n // PER_BATCH} log entries, ~{n * 17 // 20} records in {time.perf_counter() - t:.1f}s ({url.split(':')[0]})")
    app = create_app(test_config={"hub": {"signing_key": str(work / "hub.key"), "key_id": "hub-1", "database": url},
                                  "base_dir": str(work)})
    client = app.test_client()
    import re

    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/ui/accounts/login").get_data(as_text=True))
    r = client.post("/ui/accounts/login", data={"username": "bench", "password": PASSWORD, "csrf_token": token.group(1)})
    assert r.status_code == 302
    pages = {
        "receipt log, first page": "/ui/receipts",
        "receipt log, page deep in the log (before=id 50000)": "/ui/receipts?before=50000",
        "receipt log, department + status filter": "/ui/receipts?department=d07&status=rejected",
        "receipt log, date range": "/ui/receipts?date_from=2026-01-20&date_to=2026-01-31",
        "receipt log, record key": "/ui/receipts?key=K00012345",
        "hash-chain log entries, first page": "/ui/log",
        "department status": "/ui/departments",
        "update report (通报), 90 days": "/ui/report?from=2026-01-01&to=2026-03-31",
        "record browser, first page": "/ui/records",
        "record browser, department + type + key prefix": "/ui/records?department=d03&record_type=stock&key=K0004",
    }
    print(f"{'page':58} median ms (7 runs)")
    for name, path in pages.items():
        ms = timed(client, path)
        print(f"{name:58} {ms:8.1f}  {'ok' if ms < 300 else 'OVER 300 ms'}")


if __name__ == "__main__":
    main()

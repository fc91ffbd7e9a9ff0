"""Hub ingest from 8 concurrent gateways: pre-built, pre-signed batches posted by 8 threads.

Each of the departments ing01..ing08 first sends its materials and depots (not
timed), then the timed part posts its share of stock records, BATCH records per
batch, one thread per department, each thread one batch in flight like a real
gateway. The bodies and signatures are made before the clock starts, so the
load generator costs little more than the sockets.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests

from gateway.protocol.batch import make_batch, make_record
from gateway.protocol.canonical import canonical_json, record_version
from gateway.protocol.keys import read_private_key
from gateway.protocol.signing import sign_request
from gateway.standard.schema import record_key

BATCH = 1000
PATH = "/api/v1/batches"
REF_MATERIALS = 200  # the ingest's stock rows refer to these few, so the untimed set-up stays small


def _material(m: int) -> dict[str, Any]:
    import data

    wzbm, name, cat, unit, _, _ = data.material_row(m)
    return {"material_id": wzbm, "material_name": name, "category_code": cat, "unit": unit, "reserve_mode": "1"}


def _depot(d: int) -> dict[str, Any]:
    import data

    ckbm, name, _, region, address, unit_org, who, tel, _ = data.depot_row(d)
    return {"depot_id": ckbm, "depot_name": name, "depot_level": "4", "region_code": region, "address": address,
            "mgmt_unit_name": unit_org, "contact_name": who, "contact_phone": tel}


def _stock(i: int) -> dict[str, Any]:
    import data

    line = data.stock_line(i).rstrip("\n").split("\t")
    return {
        "material_id": f"WZ{i % REF_MATERIALS:06d}", "depot_id": line[3], "batch_no": line[4], "quantity": line[5],
        "unit": data.ITEMS[(i % REF_MATERIALS) % len(data.ITEMS)][1],
        "alert_threshold": line[7], "production_date": line[8], "inbound_date": line[9], "expiry_date": line[10],
        "condition": "1", "reserve_level": "4", "responsible_unit": line[13], "responsible_name": line[14],
        "responsible_phone": line[15], "checked_date": line[16],
    }


def _record(dept: str, rtype: str, data: dict[str, Any]) -> dict[str, Any]:
    key = record_key(rtype, data)
    return make_record(rtype, dept, key, "upsert", 1, record_version(data), data,
                       updated_at="2026-11-01T08:00:00+08:00",
                       provenance={"source": "bench", "source_key": key, "mapping_version": 1, "operator": "压测"})


@dataclass
class Signed:
    body: bytes
    headers: dict[str, str]
    records: int


def _signed(dept: str, key: Any, records: list[dict[str, Any]]) -> Signed:
    body = canonical_json(make_batch(dept, "bench", records))
    h = sign_request("POST", PATH, body, key, f"{dept}-1")
    return Signed(body, {"Protocol-Version": "1", "Content-Type": "application/json", **h}, len(records))


def _post(session: requests.Session, url: str, s: Signed) -> dict[str, Any]:
    r = session.post(url + PATH, data=s.body, headers=s.headers, timeout=600)
    if r.status_code != 200:
        raise RuntimeError(f"hub answered {r.status_code}: {r.text[:500]}")
    return orjson.loads(r.content)


def run_ingest(hub_url: str, keys_dir: Path, departments: tuple[str, ...], records: int, hub: Any = None) -> dict[str, Any]:
    """Post `records` stock records split over `departments`, all at once; records/s and per-status counts."""
    import data

    keys = {d: read_private_key(keys_dir / f"{d}.key") for d in departments}
    refs = [_material(m) for m in range(REF_MATERIALS)], [_depot(d) for d in range(data.DEPOTS)]
    with requests.Session() as session:
        for dept in departments:  # reference data first, not timed
            for rtype, rows in zip(("material", "depot"), refs, strict=True):
                for i in range(0, len(rows), BATCH):
                    _post(session, hub_url, _signed(dept, keys[dept], [_record(dept, rtype, r) for r in rows[i : i + BATCH]]))
    per = records // len(departments)
    plan: dict[str, list[Signed]] = {}
    for n, dept in enumerate(departments):
        start = n * per + 1
        stock = [_record(dept, "stock", _stock(i)) for i in range(start, start + per)]
        plan[dept] = [_signed(dept, keys[dept], stock[i : i + BATCH]) for i in range(0, len(stock), BATCH)]
    counts: dict[str, int] = {}
    errors: list[str] = []
    lock = threading.Lock()

    def gateway(dept: str) -> None:
        with requests.Session() as s:
            for signed in plan[dept]:
                try:
                    receipt = _post(s, hub_url, signed)
                except Exception as e:  # noqa: BLE001 - reported in the result, the run must not hang
                    with lock:
                        errors.append(f"{dept}: {e}")
                    return
                with lock:
                    for r in receipt.get("results", ()):
                        counts[r["status"]] = counts.get(r["status"], 0) + 1

    threads = [threading.Thread(target=gateway, args=(d,), name=f"gw-{d}") for d in departments]
    cpu0 = hub.cpu_seconds() if hub is not None else None
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - t0
    hub_cpu = hub.cpu_seconds() - cpu0 if cpu0 is not None else None
    total = per * len(departments)
    return {"records": total, "seconds": seconds, "records_per_s": total / seconds, "statuses": counts,
            "errors": errors[:5], "batch_size": BATCH, "gateways": len(departments), "hub_cpu_s": hub_cpu}


def main() -> None:
    """Stand-alone: `python bench/ingest.py [--records N] [--repeat R] [--pg URL] [--py-spy FILE]`.

    A fresh hub database and hub process per run (like bench/run.py's ingest step); prints records/s
    and the CPU-seconds per 100k records of the hub process and of its PostgreSQL backends, each run
    and the medians.
    """
    import argparse
    import signal
    import statistics
    import subprocess
    import sys
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import data
    import workspace as W

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("--records", type=int, default=64_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    ap.add_argument("--db", default="bench_ingest_hub", help="hub database name (dropped and made anew each run)")
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--py-spy", default=None, help="record the hub with py-spy into this file (first run only)")
    a = ap.parse_args()
    ws = W.make_workspace(Path(a.workdir or tempfile.mkdtemp(prefix="ingest-")), a.pg)
    runs = []
    for r in range(a.repeat):
        W.write_hub_config(ws, data.recreate_database(a.pg, a.db))
        hub = W.HubProcess(ws).start()
        spy = None
        try:
            if a.py_spy and r == 0:
                spy = subprocess.Popen(["py-spy", "record", "-p", str(hub.proc.pid), "-o", a.py_spy, "-f", "raw",
                                        "-r", "200", "--gil"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            pg_cpu = W.PgCpu(a.pg, (a.db,))
            x = run_ingest(ws.hub_url, ws.keys, W.INGEST_DEPARTMENTS, a.records, hub)
            x["pg_cpu_s"] = pg_cpu.stop()
        finally:
            if spy is not None:
                spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                spy.wait(30)
            hub.stop()
        if x["errors"] or x["statuses"].get("accepted") != x["records"]:
            raise RuntimeError(f"run {r + 1} not all accepted: {x}")
        per = 100_000 / x["records"]
        print(f"run {r + 1}: {x['records']} records in {x['seconds']:.2f} s = {x['records_per_s']:,.0f} rec/s; "
              f"per 100k: hub CPU {x['hub_cpu_s'] * per:.1f} s, PostgreSQL CPU {x['pg_cpu_s'] * per:.1f} s", flush=True)
        runs.append(x)
    med = statistics.median
    per = 100_000 / runs[0]["records"]
    print(f"median of {len(runs)}: {med(x['records_per_s'] for x in runs):,.0f} rec/s; per 100k: hub CPU "
          f"{med(x['hub_cpu_s'] for x in runs) * per:.1f} s, PostgreSQL CPU {med(x['pg_cpu_s'] for x in runs) * per:.1f} s")
    data.drop_database(a.pg, a.db)


if __name__ == "__main__":
    main()

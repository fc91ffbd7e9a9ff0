"""What refusing duplicate member names costs: `python bench/bench_strict_json.py [RECORDS] [REPEAT]`.

Decodes one typical batch body (1000 stock records by default, canonical JSON as
gateways send it) with orjson.loads (what the hub used before), json.loads,
loads_strict (the canonical fast path) and the slow path a non-canonical body
takes (the same batch with white space: orjson.loads + check_members); prints the
median CPU µs per batch and per record of each.
"""

from __future__ import annotations

import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import orjson

from gateway.protocol.batch import encode_batch, make_batch, make_record
from gateway.protocol.canonical import record_version
from gateway.protocol.strictjson import check_members, loads_strict


def batch_body(n: int) -> bytes:
    records = []
    for i in range(n):
        data = {
            "material_id": f"M{i % 5000:05d}", "depot_id": f"D{i % 40:03d}", "batch_no": f"B{i}",
            "quantity": i % 1000 + 0.5, "unit": "箱", "alert_threshold": 10, "production_date": "2023-05-01",
            "expiry_date": "2026-05-01", "condition": "1", "reserve_level": "县", "responsible_name": "张三",
            "responsible_phone": "13800138000", "checked_date": "2024-03-01",
        }  # fmt: skip
        key = f"M{i % 5000:05d}|D{i % 40:03d}|B{i}"
        prov = {"source": "kucun", "source_key": str(i), "mapping_version": 3, "operator": "system"}
        records.append(make_record("stock", "330106001", key, "upsert", i + 1, record_version(data), data,
                                   updated_at="2024-03-01T08:00:00+00:00", provenance=prov))  # fmt: skip
    return encode_batch(make_batch("330106001", "kucun", records))


def _dict_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """The plain strict decoder, without a fast path: what loads_strict is compared with."""
    d = dict(pairs)
    if len(d) != len(pairs):
        raise ValueError("duplicate member")
    return d


def cpu_us(fns: list[Callable[[], Any]], repeat: int) -> list[float]:
    """Median CPU time of one call of each, µs; the calls interleave so that all see the same machine
    (CPU time: steadier than wall time on a shared one)."""
    times: list[list[float]] = [[] for _ in fns]
    gc.disable()  # as timeit: a collection would land on whichever call crossed the threshold
    try:
        for _ in range(repeat):
            fns[0]()  # untimed: the first call after a collection pays for fresh memory (seen: +30%)
            for fn, out in zip(fns, times, strict=True):
                t = time.process_time()
                fn()
                out.append(time.process_time() - t)
            gc.collect()
    finally:
        gc.enable()
    return [statistics.median(t) * 1e6 for t in times]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    repeat = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    body = batch_body(n)
    spaced = json.dumps(orjson.loads(body), ensure_ascii=False, indent=1).encode()
    assert loads_strict(body) == loads_strict(spaced) == orjson.loads(body)
    rows = [
        ("orjson.loads (before)", lambda: orjson.loads(body)),
        ("json.loads", lambda: json.loads(body)),
        ("json.loads, dict-building pairs hook", lambda: json.loads(body, object_pairs_hook=_dict_once)),
        ("loads_strict, canonical body", lambda: loads_strict(body)),
        ("loads_strict, non-canonical body", lambda: loads_strict(spaced)),
        ("  of which check_members", lambda: check_members(spaced)),
    ]
    print(f"batch of {n} stock records, {len(body):,} bytes canonical, {len(spaced):,} spaced; median of {repeat}")
    figures = cpu_us([fn for _, fn in rows], repeat)
    for (label, _), us in zip(rows, figures, strict=True):
        print(f"{label:36s} {us:10.0f} µs/batch {us / n:8.2f} µs/record  x{us / figures[0]:.1f}")


if __name__ == "__main__":
    main()

"""Normalise 100k stock records and report the rate: `python bench/bench_validate.py [N]`."""

from __future__ import annotations

import sys
import time
from datetime import date

from gateway.standard.validate import ValidationContext, normalize


def rows(n: int) -> list[dict]:
    return [
        {
            "material_id": f"M{i % 5000:05d}",
            "depot_id": f"D{i % 40:03d}",
            "batch_no": f"B{i}",
            "quantity": f"{i % 1000}.5",
            "unit": "箱",
            "alert_threshold": 10,
            "production_date": "2023-05-01",
            "expiry_date": "2026-05-01",
            "condition": "1",
            "reserve_level": "县",
            "responsible_name": "张三",
            "responsible_phone": "13800138000",
            "checked_date": "2024-03-01",
        }
        for i in range(n)
    ]


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    data = rows(n)
    ctx = ValidationContext(today=date(2025, 1, 1))
    t, cpu = time.perf_counter(), time.process_time()
    bad = 0
    for r in data:
        bad += bool(normalize("stock", r, context=ctx)[1])
    dt, dcpu = time.perf_counter() - t, time.process_time() - cpu
    # CPU time is the fair figure on a shared machine; wall time includes waiting for a core.
    print(f"{n} stock records normalised in {dcpu:.3f} s CPU ({n / dcpu:,.0f}/s), {dt:.3f} s wall, {bad} with errors")


if __name__ == "__main__":
    main()

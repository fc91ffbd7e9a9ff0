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
    t = time.perf_counter()
    bad = 0
    for r in data:
        bad += bool(normalize("stock", r, context=ctx)[1])
    dt = time.perf_counter() - t
    print(f"{n} stock records normalised in {dt:.3f} s ({n / dt:,.0f}/s), {bad} with errors")


if __name__ == "__main__":
    main()

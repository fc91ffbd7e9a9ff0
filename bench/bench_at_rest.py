"""SM4-GCM at rest: what sealing and opening an attachment costs, beside the SHA-256 check every read does.

    .venv/bin/python bench/bench_at_rest.py [--out bench/results/at_rest.json]

For attachments of 200 KB, 2 MB and 20 MB (the hub's default limit): seal, open (tag checked) and
SHA-256 of the plaintext, in ms per file and MB/s (median of 5 rounds), one core, in memory.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.at_rest.envelope import open_sealed, seal  # noqa: E402


def ms(fn: Callable[[], object], rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "at_rest.json")
    args = ap.parse_args(argv)
    key = os.urandom(16)
    rows = []
    for size in (200_000, 2_000_000, 20_000_000):
        data = os.urandom(size)
        env = seal(data, "k1", key)
        row = {"bytes": size, "seal_ms": ms(lambda: seal(data, "k1", key)),  # noqa: B023
               "open_ms": ms(lambda: open_sealed(env, {"k1": key})),  # noqa: B023
               "sha256_ms": ms(lambda: hashlib.sha256(data).digest())}  # noqa: B023
        row["seal_mb_s"] = round(size / 1e6 / (row["seal_ms"] / 1000), 1)
        rows.append({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
        print(f"{size:>10} B  seal {row['seal_ms']:8.2f} ms  open {row['open_ms']:8.2f} ms  "
              f"sha-256 {row['sha256_ms']:7.2f} ms  ({row['seal_mb_s']} MB/s)")
    out = {"machine": platform.machine(), "python": platform.python_version(), "results": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()

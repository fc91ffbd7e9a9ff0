"""Per-record push latency through the local API: edit a source row, POST /api/local/push, time the answer.

The gateway service (`gateway run`) runs in a subprocess against the bench's
gateway config; each edit changes one kc_mx row in the source database and the
clock covers only the API call, which re-reads the row, maps and validates it,
enqueues it and pushes it to the hub, answering with the hub's verified receipt.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import requests


def percentile(values: list[float], p: float) -> float:
    s = sorted(values)
    k = max(0, min(len(s) - 1, round(p / 100 * (len(s) - 1))))
    return s[k]


def start_service(config: Path, web_url: str, log: Path, timeout: float = 60.0) -> subprocess.Popen:
    out = open(log, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "--config", str(config), "run"],
        stdout=out, stderr=out, cwd=config.parent, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gateway service exited with {proc.returncode}; see {log}")
        try:
            requests.get(web_url + "/healthz", timeout=1)
            return proc
        except requests.ConnectionError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"gateway service did not come up in {timeout}s; see {log}")


def stop_service(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def measure(source_url: str, web_url: str, token: str, edits: int = 1000, rows: int = 10_000) -> dict[str, Any]:
    """`edits` edits of distinct kc_mx rows, each pushed at once; latency percentiles in ms and the outcome counts."""
    times: list[float] = []
    outcomes: dict[str, int] = {}
    headers = {"Authorization": f"Bearer {token}"}
    step = max(1, rows // edits)
    with psycopg.connect(source_url, autocommit=True) as db, requests.Session() as s:
        s.trust_env = False  # loopback: never through a proxy from the environment, nor a re-read of it per call
        ids = [r[0] for r in db.execute("SELECT id FROM kc_mx ORDER BY id LIMIT %s", (edits * step,))][::step][:edits]
        for n, rid in enumerate(ids):
            db.execute("UPDATE kc_mx SET sl = sl + 1, gxsj = now()::timestamp(0) WHERE id = %s", (rid,))
            t0 = time.perf_counter()
            r = s.post(web_url + "/api/local/push", json={"source": "stock", "key": str(rid), "operator": "压测员"},
                       headers=headers, timeout=60)
            times.append((time.perf_counter() - t0) * 1000)
            status = r.json().get("status", str(r.status_code)) if r.headers.get("content-type", "").startswith("application/json") else str(r.status_code)
            outcomes[status] = outcomes.get(status, 0) + 1
            if n == 0 and status != "delivered":
                raise RuntimeError(f"local push answered {r.status_code}: {r.text[:500]}")
    return {
        "edits": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
        "p99_ms": percentile(times, 99), "mean_ms": statistics.fmean(times), "outcomes": outcomes,
    }

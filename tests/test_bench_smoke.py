"""bench/run --smoke: every benchmark step runs on 10k rows and reports its row (works, not how fast)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

ROWS = (
    "floor: COPY table -> other DB",
    "full: sync + push, verified receipts",
    "  of which sync / push",
    "  full / floor",
    "incremental cursor (+reconcile)",
    "incremental fingerprint",
    "per-record push",
    "hub ingest, 8 gateways",
    "peak RSS gateway (full)",
    "peak RSS hub (full)",
    "peak RSS hub (ingest)",
)


@pytest.mark.slow
def test_bench_smoke_prints_every_row_and_writes_json(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    prefix = "smoke" + uuid.uuid4().hex[:8]
    r = subprocess.run(
        [str(REPO / "bench" / "run"), "--smoke", "--out", str(out), "--db-prefix", prefix, "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=280, env={**os.environ, "PYTHON": sys.executable},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = r.stdout.split("measure", 1)[-1]
    for label in ROWS:
        assert label in table, f"row {label!r} missing from the table:\n{table}"
    # dlt is an optional bench dependency: either its rows or the reason it was skipped.
    assert ("dlt sqlalchemy full" in table and "dlt pyarrow incremental" in table) or "dlt  " in table or "skipped" in table

    res = json.loads(out.read_text(encoding="utf-8"))
    assert res["rows"] == 10_000 and res["smoke"] is True
    assert res["full"]["records_per_s"] > 0 and res["full"]["runs"][0]["push"]["accepted"] == 10_000
    assert res["floor"]["runs"][0]["rows"] == 10_000
    inc = res["incremental"]
    assert inc["changes"] == {"updated": 100, "inserted": 50, "deleted": 20}
    assert inc["cursor"]["total_s"] > 0 and inc["fingerprint"]["total_s"] > 0
    assert res["latency"]["edits"] == 20 and res["latency"]["outcomes"] == {"delivered": 20}
    assert 0 < res["latency"]["p50_ms"] <= res["latency"]["p99_ms"]
    assert res["ingest"]["runs"][0]["statuses"] == {"accepted": res["ingest"]["records"]}
    assert res["full"]["gateway_peak_rss_mb"] > 0 and res["full"]["hub_peak_rss_mb"] > 0
    assert "skipped" in res["dlt"] or res["dlt"]["pyarrow"]["runs"][0]["rows"] == 10_000
    assert res["table"] in r.stdout


@pytest.mark.slow
def test_bench_suite_reports_sm2_beside_ed25519(tmp_path: Path) -> None:
    """`bench/run --suite sm2-sm3`: the full, latency and ingest steps again under SM2 keys, each row with ed25519's."""
    pytest.importorskip("tongsuopy")
    out = tmp_path / "suite.json"
    prefix = "smoke" + uuid.uuid4().hex[:8]
    r = subprocess.run(
        # 2,000 rows: this checks that both suites are run and reported side by side, not their speed.
        [str(REPO / "bench" / "run"), "--smoke", "--rows", "2000", "--suite", "sm2-sm3", "--steps", "full,latency,ingest", "--out", str(out),
         "--db-prefix", prefix, "--workdir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=280, env={**os.environ, "PYTHON": sys.executable},
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    table = r.stdout.split("measure", 1)[-1]
    for label in ("suite sm2-sm3: per-record push", "suite sm2-sm3: full: sync + push", "suite sm2-sm3: hub ingest"):
        assert label in table, f"row {label!r} missing from the table:\n{table}"
    assert "ed25519 p50" in table and "of ed25519's" in table
    res = json.loads(out.read_text(encoding="utf-8"))
    sm = res["suites"]["sm2-sm3"]
    assert sm["latency"]["outcomes"] == {"delivered": 20} and sm["full"]["runs"][0]["push"]["accepted"] == 2_000
    assert res["suites"]["ed25519"]["latency"]["edits"] == 20
    assert (tmp_path / "work" / "keys-sm2-sm3" / "hub.pub").read_text().startswith("sm2:")

"""bench/run: end-to-end throughput, incremental cost, per-record latency and memory (see bench/README.md).

    bench/run [--rows N] [--repeat R] [--smoke] [--skip-dlt] [--pg URL] [--keep] [--suite sm2-sm3]

With --suite S (not ed25519), every step runs with ed25519 keys first, the baseline, and then the
full, latency and ingest steps run again with every key (hub's and departments') of suite S, on a
source generated afresh: the table compares the two from this one invocation.

Prints a table and writes bench/results/latest.json (and bench/results/rows-N.json).
Every figure is the median of R runs; ratios are taken within this invocation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import data  # noqa: E402
import orjson  # noqa: E402
import workspace as W  # noqa: E402

RESULTS = HERE / "results"
DEFAULT_PG = os.environ.get("BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
SRC_DB, FLOOR_DB, HUB_DB, DLT_PREFIX = "bench_src", "bench_floor", "bench_hub", "bench_dlt"
DLT_BACKENDS = ("sqlalchemy", "pyarrow")  # sqlalchemy is dlt's default backend
STEPS = ("floor", "full", "dlt", "incremental", "latency", "ingest")

# Issue 15's targets (the bulk path), plus issue 17's for the SM2/SM3 suite.
TARGETS = {
    "full_vs_dlt_pyarrow": ("<=", 0.5, "at 1M: at least 2x faster than dlt pyarrow, same invocation"),
    "full_vs_floor": ("<=", 8.0, "at 1M: within 8x of the COPY floor"),
    "gateway_cpu_us": ("<=", 20.0, "at 1M: gateway CPU us per record"),
    "incremental_cursor_s": ("<=", 1.0, "at 1M"),
    "incremental_fingerprint_s": ("<=", 8.0, "at 1M"),
    "push_p50_ms": ("<=", 10.0, "at 1M"),
    "push_p99_ms": ("<=", 25.0, "at 1M"),
    "sm_push_p50_ms": ("<=", 15.0, ""),  # issue 17: per-record push under sm2-sm3
    "sm_push_p99_ms": ("<=", 30.0, ""),
    "ingest_records_per_s": (">=", 60_000, ""),
    "peak_rss_mb": ("<=", 250.0, "at 1M"),
}


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def med(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run_json(argv: list[str], cwd: Path | None = None, timeout: float = 3600) -> dict[str, Any]:
    """Run a bench child process and parse its last stdout line as JSON."""
    r = subprocess.run([sys.executable, *argv], capture_output=True, text=True, cwd=cwd, timeout=timeout,
                       env={**os.environ, "PYTHONUNBUFFERED": "1"})
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(argv[:2])} failed ({r.returncode}): {r.stderr[-3000:]}")
    return orjson.loads(lines[-1])


SERIAL_PUSH = False  # --serial-push: push only after the sync (the old arrangement), for comparison


def gateway_side(ws: W.Workspace, strategy: str, *sources: str) -> dict[str, Any]:
    flags = ["--serial"] if SERIAL_PUSH else []
    return run_json([str(HERE / "gateway_side.py"), *flags, str(ws.gateway_config(strategy)), *sources], cwd=ws.root)


# ---- steps ---------------------------------------------------------------------------


def step_floor(pg: str, src: str, repeat: int) -> dict[str, Any]:
    runs = []
    for _ in range(repeat):
        seconds, n = data.copy_floor(src, pg, FLOOR_DB)
        runs.append({"seconds": seconds, "rows": n})
    data.drop_database(pg, FLOOR_DB)
    s = med([r["seconds"] for r in runs])
    return {"seconds": s, "records_per_s": runs[0]["rows"] / s, "runs": runs}


def fresh_hub(pg: str, ws: W.Workspace, hub: W.HubProcess | None) -> W.HubProcess:
    if hub is not None:
        hub.stop()
    W.write_hub_config(ws, data.recreate_database(pg, HUB_DB))
    return W.HubProcess(ws).start()


def step_full(pg: str, ws: W.Workspace, rows: int, repeat: int) -> tuple[dict[str, Any], W.HubProcess]:
    runs, hub = [], None
    try:
        for r in range(repeat):
            for strategy in ("cursor", "fingerprint"):
                shutil.rmtree(ws.state_db(strategy).parent, ignore_errors=True)
            hub = fresh_hub(pg, ws, hub)
            setup = gateway_side(ws, "cursor", "materials", "depots")  # the hub checks stock against these
            if setup["undelivered"]:
                raise RuntimeError(f"materials/depots not delivered: {setup}")
            hub.reset_peak()
            hub_cpu = hub.cpu_seconds() or 0.0
            pg_cpu = W.PgCpu(pg, (SRC_DB, HUB_DB))
            out = gateway_side(ws, "cursor", "stock")
            out["pg_cpu_s"] = pg_cpu.stop()
            out["hub_peak_rss_mb"] = hub.peak_rss_mb()
            out["hub_cpu_s"] = (hub.cpu_seconds() or 0.0) - hub_cpu
            st = out["sources"]["stock"]
            ok = out["undelivered"] == 0 and out["push"]["accepted"] == rows and st["new"] == rows
            if not ok:
                raise RuntimeError(f"full run {r + 1} did not deliver every record: {out}")
            say(f"  full run {r + 1}: {out['total_s']:.2f} s (sync {out['sync_s']:.2f} s, push {out['push_s']:.2f} s), "
                f"CPU gateway {out['cpu_s']:.1f} s (sync {out['sync_cpu_s']:.1f}), hub {out['hub_cpu_s']:.1f} s, "
                f"PostgreSQL {out['pg_cpu_s']:.1f} s; "
                f"peak RSS gateway {out['peak_rss_mb']:.0f} MB, hub {out['hub_peak_rss_mb'] or 0:.0f} MB")
            runs.append(out)
    except BaseException:
        if hub is not None:
            hub.stop()  # the caller never gets this hub back: do not let it outlive the bench
        raise
    assert hub is not None
    s = med([x["total_s"] for x in runs])
    return {
        "seconds": s, "records_per_s": rows / s, "sync_s": med([x["sync_s"] for x in runs]),
        "push_s": med([x["push_s"] for x in runs]), "gateway_peak_rss_mb": med([x["peak_rss_mb"] for x in runs]),
        "hub_peak_rss_mb": med([x["hub_peak_rss_mb"] or 0 for x in runs]),
        "gateway_cpu_s": med([x["cpu_s"] for x in runs]), "gateway_sync_cpu_s": med([x["sync_cpu_s"] for x in runs]),
        "hub_cpu_s": med([x["hub_cpu_s"] for x in runs]), "pg_cpu_s": med([x["pg_cpu_s"] for x in runs]), "runs": runs,
    }, hub


def dlt_available() -> str | None:
    """None when dlt and pyarrow import; else the reason they do not."""
    r = subprocess.run([sys.executable, "-c", "import dlt, pyarrow, sqlalchemy; from dlt.sources.sql_database import sql_table"],
                       capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["import failed"])[-1]


def _dlt_urls(pg: str, backend: str) -> tuple[str, str, str]:
    src = data.db_url(pg, SRC_DB).replace("postgresql://", "postgresql+psycopg2://", 1)
    name = f"{DLT_PREFIX}_{backend}"
    # dlt's postgres destination insists on a password; trust auth ignores it.
    dest = data.db_url(pg, name).replace("postgres@", "postgres:bench@", 1)
    return src, dest, name


def dlt_once(pg: str, ws: W.Workspace, backend: str, fresh: bool) -> dict[str, Any]:
    src, dest, name = _dlt_urls(pg, backend)
    pipes = ws.root / f"dlt-{backend}"
    if fresh:
        shutil.rmtree(pipes, ignore_errors=True)
        data.recreate_database(pg, name)
    pg_cpu = W.PgCpu(pg, (SRC_DB, name))
    out = run_json([str(HERE / "dlt_run.py"), backend, src, dest, str(pipes)], cwd=ws.root)
    out["pg_cpu_s"] = pg_cpu.stop()
    return out


def step_dlt_full(pg: str, ws: W.Workspace, rows: int, repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for backend in DLT_BACKENDS:
        runs = []
        for r in range(repeat):
            x = dlt_once(pg, ws, backend, fresh=True)
            if x["rows"] != rows or x["failed_jobs"]:
                raise RuntimeError(f"dlt {backend} loaded {x['rows']} of {rows} rows: {x}")
            say(f"  dlt {backend} full run {r + 1}: {x['seconds']:.2f} s, {x['peak_rss_mb']:.0f} MB")
            runs.append(x)
        s = med([x["seconds"] for x in runs])
        out[backend] = {"seconds": s, "records_per_s": rows / s, "peak_rss_mb": med([x["peak_rss_mb"] for x in runs]),
                        "cpu_s": med([x.get("cpu_s", 0.0) + x.get("pg_cpu_s", 0.0) for x in runs]), "runs": runs}
    return out


def _copy_state(ws: W.Workspace) -> None:
    src, dst = ws.state_db("cursor"), ws.state_db("fingerprint")
    shutil.rmtree(dst.parent, ignore_errors=True)
    dst.parent.mkdir(parents=True)
    for suffix in ("", "-wal"):
        if Path(str(src) + suffix).exists():
            shutil.copyfile(str(src) + suffix, str(dst) + suffix)


def step_incremental(pg: str, ws: W.Workspace, src: str, rows: int, repeat: int, with_dlt: bool) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for r in range(repeat):
        _copy_state(ws)  # the fingerprint gateway starts from the same delivered state
        change = data.apply_changes(src, rows, r)
        expect = change["updated"] + change["inserted"] + change["deleted"]
        run: dict[str, Any] = {"changes": change}
        for strategy in ("cursor", "fingerprint"):
            x = gateway_side(ws, strategy, "stock")
            st = x["sources"]["stock"]
            found = st["new"] + st["changed"] + st["deleted"]
            if found != expect or x["undelivered"]:
                raise RuntimeError(f"{strategy} incremental found {found} of {expect} changes: {x}")
            run[strategy] = x
        if with_dlt:
            for backend in DLT_BACKENDS:
                run[f"dlt_{backend}"] = dlt_once(pg, ws, backend, fresh=False)
        say(f"  incremental round {r + 1}: cursor {run['cursor']['total_s']:.2f} s, fingerprint {run['fingerprint']['total_s']:.2f} s"
            + "".join(f", dlt {b} {run[f'dlt_{b}']['seconds']:.2f} s" for b in DLT_BACKENDS if f"dlt_{b}" in run))
        runs.append(run)
    out: dict[str, Any] = {"changes": runs[0]["changes"], "runs": runs}
    for strategy in ("cursor", "fingerprint"):
        out[strategy] = {k: med([x[strategy][k] for x in runs]) for k in ("total_s", "sync_s", "push_s", "peak_rss_mb")}
    if with_dlt:
        for backend in DLT_BACKENDS:
            out[f"dlt_{backend}"] = {"seconds": med([x[f"dlt_{backend}"]["seconds"] for x in runs])}
    return out


def step_latency(pg: str, ws: W.Workspace, src: str, edits: int, rows: int, hub: W.HubProcess | None) -> dict[str, Any]:
    import local_push_latency as lat

    proc = lat.start_service(ws.gateway_config("cursor"), ws.web_url, ws.root / "service.log")
    try:
        # CPU per edit of each process: steadier than wall time, and it says where the latency goes.
        svc0, hub0 = W.proc_cpu_seconds(proc.pid), (hub.cpu_seconds() if hub else None) or 0.0
        pg_cpu = W.PgCpu(pg, (SRC_DB, HUB_DB))
        out = lat.measure(src, ws.web_url, W.API_TOKEN, edits=edits, rows=rows)
        out["cpu_ms_per_edit"] = {
            "service": (W.proc_cpu_seconds(proc.pid) - svc0) * 1000 / edits,
            "hub": (((hub.cpu_seconds() if hub else None) or 0.0) - hub0) * 1000 / edits,
            "postgresql": pg_cpu.stop() * 1000 / edits,
        }
        out["service_peak_rss_mb"] = W.proc_peak_rss_mb(proc.pid)
    finally:
        lat.stop_service(proc)
    return out


SUITE_STEPS = ("full", "latency", "ingest")  # what --suite repeats under another suite's keys


def suite_steps(a: argparse.Namespace, name: str, steps: list[str], root: Path, records: int,
                hub: W.HubProcess | None) -> tuple[dict[str, Any], W.HubProcess | None]:
    """The full, latency and ingest steps again with every key of suite `name`, on a source made afresh
    (the incremental step changed the baseline's)."""
    out: dict[str, Any] = {}
    say(f"suite {name}: source generated again, keys of {name} for the hub and every department")
    src = data.generate(a.pg, SRC_DB, a.rows)
    ws = W.make_workspace(root, src, name)
    if hub is not None:
        hub.stop()
        hub = None
    if {"full", "latency"} & set(steps):
        say(f"suite {name} full: initial sync + push")
        out["full"], hub = step_full(a.pg, ws, a.rows, a.repeat)
    if "latency" in steps:
        say(f"suite {name}: per-record push latency over {a.edits} edits (local API)")
        out["latency"] = step_latency(a.pg, ws, src, a.edits, a.rows, hub)
    if "ingest" in steps:
        say(f"suite {name}: hub ingest from 8 concurrent gateways ({records:,} records)")
        out["ingest"], hub = step_ingest(a.pg, ws, records, a.repeat, hub)
    return out, hub


def step_ingest(pg: str, ws: W.Workspace, records: int, repeat: int, hub: W.HubProcess | None) -> tuple[dict[str, Any], W.HubProcess]:
    import ingest

    runs = []
    for r in range(repeat):
        hub = fresh_hub(pg, ws, hub)
        hub.reset_peak()
        pg_cpu = W.PgCpu(pg, (HUB_DB,))
        x = ingest.run_ingest(ws.hub_url, ws.keys, W.INGEST_DEPARTMENTS, records, hub)
        x["pg_cpu_s"] = pg_cpu.stop()
        x["hub_peak_rss_mb"] = hub.peak_rss_mb()
        if x["errors"] or x["statuses"].get("accepted") != x["records"]:
            raise RuntimeError(f"ingest run {r + 1} not all accepted: {x}")
        say(f"  ingest run {r + 1}: {x['records_per_s']:,.0f} records/s, hub CPU {x['hub_cpu_s']:.1f} s, "
            f"peak RSS {x['hub_peak_rss_mb'] or 0:.0f} MB")
        runs.append(x)
    s = med([x["seconds"] for x in runs])
    assert hub is not None
    return {"records": runs[0]["records"], "seconds": s, "records_per_s": runs[0]["records"] / s,
            "hub_peak_rss_mb": med([x["hub_peak_rss_mb"] or 0 for x in runs]),
            "hub_cpu_s": med([x["hub_cpu_s"] for x in runs]), "pg_cpu_s": med([x["pg_cpu_s"] for x in runs]),
            "runs": runs}, hub


# ---- report --------------------------------------------------------------------------


ROWS_NOW = 0  # rows of this invocation, for targets that apply at 1M only


def check(name: str, value: float | None) -> str:
    if value is None or name not in TARGETS:
        return ""
    op, target, when = TARGETS[name]
    ok = value >= target if op == ">=" else value <= target
    verdict = "met" if ok else "MISSED"
    if when.startswith("at 1M") and ROWS_NOW < 1_000_000:
        verdict += f" here at {ROWS_NOW:,} rows"  # the target itself is for 1M rows
    return f"{verdict} ({op} {target:g}{' ' + when if when else ''})"


def table(res: dict[str, Any]) -> str:
    rows: list[tuple[str, str, str]] = []

    def add(label: str, figure: str, note: str = "") -> None:
        rows.append((label, figure, note))

    n = res["rows"]
    fl, fu = res.get("floor"), res.get("full")
    add("rows", f"{n:,}", f"repeat {res['repeat']}, median of each; steps {','.join(res['steps'])}")
    if fl:
        add("floor: COPY table -> other DB", f"{fl['seconds']:.2f} s  {fl['records_per_s']:,.0f} rec/s")
    if fu:
        add("full: sync + push, verified receipts", f"{fu['seconds']:.2f} s  {fu['records_per_s']:,.0f} rec/s")
        add("  of which sync / push", f"{fu['sync_s']:.2f} s / {fu['push_s']:.2f} s",
            "push after the sync (--serial-push)" if fu.get("serial")
            else "pushing alongside the sync; push = from the sync's end to the last receipt")
        if fl:
            ratio = fu["seconds"] / fl["seconds"]
            add("  full / floor", f"{ratio:.1f}x the floor's time", check("full_vs_floor", ratio))
        cpu = fu["gateway_cpu_s"] + fu["hub_cpu_s"] + fu["pg_cpu_s"]
        add("  CPU s: gateway (to sync end) / hub / PG",
            f"{fu['gateway_cpu_s']:.1f} ({fu['gateway_sync_cpu_s']:.1f}) / {fu['hub_cpu_s']:.1f} / {fu['pg_cpu_s']:.1f}",
            f"{n / cpu:,.0f} rec per CPU-second; on 2 idle cores at best ~{2 * n / cpu:,.0f} rec/s")
        per = fu["gateway_cpu_s"] / n * 1e6
        add("  gateway CPU per record", f"{per:.0f} us", check("gateway_cpu_us", per))
    dl = res.get("dlt")
    if fu and isinstance(dl, dict) and "skipped" not in dl:
        for b in DLT_BACKENDS:
            d = dl[b]
            add(f"dlt {b} full", f"{d['seconds']:.2f} s  {d['records_per_s']:,.0f} rec/s",
                f"peak {d['peak_rss_mb']:.0f} MB; CPU s dlt + PG {d['cpu_s']:.1f}")
            ratio = fu["seconds"] / d["seconds"]
            verdict = check("full_vs_dlt_pyarrow", ratio) + "; " if b == "pyarrow" else ""
            add(f"  ours / dlt {b} (time)", f"{ratio:.2f}",
                verdict + ("faster" if ratio < 1 else "SLOWER") + f"; CPU-seconds ratio {cpu / max(d['cpu_s'], 0.01):.2f}")
    elif dl:
        add("dlt", "skipped", dl.get("skipped", ""))
    if "incremental" in res:
        _incremental_rows(res, add)
    la = res.get("latency")
    if la:
        add(f"per-record push ({la['edits']} edits)", f"p50 {la['p50_ms']:.1f} / p95 {la['p95_ms']:.1f} / p99 {la['p99_ms']:.1f} ms",
            f"{check('push_p50_ms', la['p50_ms'])}; p99 {check('push_p99_ms', la['p99_ms'])}")
        if c := la.get("cpu_ms_per_edit"):
            add("  CPU ms per edit: service / hub / PG", f"{c['service']:.1f} / {c['hub']:.1f} / {c['postgresql']:.1f}",
                "the floor under the latency: the three run one after another")
    ing = res.get("ingest")
    if ing:
        add("hub ingest, 8 gateways", f"{ing['records_per_s']:,.0f} rec/s ({ing['records']:,} in {ing['seconds']:.2f} s)",
            check("ingest_records_per_s", ing["records_per_s"]))
        icpu = ing["hub_cpu_s"] + ing["pg_cpu_s"]
        add("  CPU s: hub / PG", f"{ing['hub_cpu_s']:.1f} / {ing['pg_cpu_s']:.1f}",
            f"{ing['records'] / max(icpu, 0.01):,.0f} rec per CPU-second (load generator not counted)")
    if fu:
        add("peak RSS gateway (full)", f"{fu['gateway_peak_rss_mb']:.0f} MB", check("peak_rss_mb", fu["gateway_peak_rss_mb"]))
        add("peak RSS hub (full)", f"{fu['hub_peak_rss_mb']:.0f} MB", check("peak_rss_mb", fu["hub_peak_rss_mb"]))
    if ing:
        add("peak RSS hub (ingest)", f"{ing['hub_peak_rss_mb']:.0f} MB", check("peak_rss_mb", ing["hub_peak_rss_mb"]))
    _suite_rows(res, add)
    for side, v in (res.get("rss_vs_100k") or {}).items():
        add(f"  {side} RSS vs 100k run", f"{v:+.0%}", "met (within 20%)" if abs(v) <= 0.2 else "MISSED (within 20%)")
    w1 = max(len(r[0]) for r in rows)
    w2 = max(len(r[1]) for r in rows)
    lines = [f"{'measure':<{w1}}  {'figure':<{w2}}  target / note", "-" * (w1 + w2 + 40)]
    lines += [f"{a:<{w1}}  {b:<{w2}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _suite_rows(res: dict[str, Any], add: Any) -> None:
    """One block per suite beyond the baseline, each figure beside ed25519's from this invocation."""
    suites = res.get("suites") or {}
    base = suites.get("ed25519", {})
    for name, s in suites.items():
        if name == "ed25519":
            continue
        la, bla = s.get("latency"), base.get("latency")
        if la:
            vs = f"ed25519 p50 {bla['p50_ms']:.1f} / p99 {bla['p99_ms']:.1f} ms" if bla else ""
            add(f"suite {name}: per-record push", f"p50 {la['p50_ms']:.1f} / p95 {la['p95_ms']:.1f} / p99 {la['p99_ms']:.1f} ms",
                f"{check('sm_push_p50_ms', la['p50_ms'])}; p99 {check('sm_push_p99_ms', la['p99_ms'])}; {vs}")
            if (c := la.get("cpu_ms_per_edit")) and bla and (b := bla.get("cpu_ms_per_edit")):
                add("  CPU ms per edit: service / hub / PG", f"{c['service']:.1f} / {c['hub']:.1f} / {c['postgresql']:.1f}",
                    f"ed25519 {b['service']:.1f} / {b['hub']:.1f} / {b['postgresql']:.1f}")
        for step, label in (("full", "full: sync + push"), ("ingest", "hub ingest, 8 gateways")):
            x, bx = s.get(step), base.get(step)
            if x and bx:
                ratio = x["records_per_s"] / bx["records_per_s"]
                verdict = "met" if ratio >= 0.9 else "MISSED"
                add(f"suite {name}: {label}", f"{x['records_per_s']:,.0f} rec/s",
                    f"{ratio:.0%} of ed25519's {bx['records_per_s']:,.0f} rec/s: {verdict} (within 10%)")


def _incremental_rows(res: dict[str, Any], add: Any) -> None:
    dl = res.get("dlt")
    inc = res["incremental"]
    ch = inc["changes"]
    add("incremental changes", f"{ch['updated']} upd / {ch['inserted']} ins / {ch['deleted']} del")
    c, f = inc["cursor"], inc["fingerprint"]
    add("incremental cursor (+reconcile)", f"{c['total_s']:.2f} s (sync {c['sync_s']:.2f}, push {c['push_s']:.2f})",
        check("incremental_cursor_s", c["total_s"]))
    add("incremental fingerprint", f"{f['total_s']:.2f} s (sync {f['sync_s']:.2f}, push {f['push_s']:.2f})",
        check("incremental_fingerprint_s", f["total_s"]))
    if isinstance(dl, dict) and "skipped" not in dl:
        for b in DLT_BACKENDS:
            d = inc[f"dlt_{b}"]
            add(f"dlt {b} incremental", f"{d['seconds']:.2f} s", f"ours (cursor) / dlt = {c['total_s'] / d['seconds']:.2f}; dlt sees no deletes")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=None, help="stock rows in the source (default 100000; 10000 with --smoke)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is reported (default 3)")
    ap.add_argument("--smoke", action="store_true", help="10k rows (or --rows), once, every step (CI: checks it works, not how fast)")
    ap.add_argument("--skip-dlt", action="store_true", help="leave out the dlt comparison")
    ap.add_argument("--edits", type=int, default=1000, help="edits for the per-record push latency (default 1000)")
    ap.add_argument("--ingest-records", type=int, default=None, help="records for the 8-gateway ingest (default: --rows)")
    ap.add_argument("--pg", default=DEFAULT_PG, help="a PostgreSQL URL on the server to use (env BENCH_PG)")
    ap.add_argument("--workdir", type=Path, default=None, help="folder for keys, configs and state (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the work dir and bench databases afterwards")
    ap.add_argument("--out", type=Path, default=RESULTS / "latest.json")
    ap.add_argument("--db-prefix", default="bench", help="prefix of the databases it creates (default bench: bench_src ...)")
    ap.add_argument("--steps", default=",".join(STEPS),
                    help=f"comma-separated steps to run (default all: {','.join(STEPS)}); e.g. --steps full")
    ap.add_argument("--suite", default="ed25519",
                    help="algorithm suite(s) to measure, comma-separated: ed25519 (the baseline, always first) and e.g. "
                         "sm2-sm3; the others repeat the full, latency and ingest steps under their keys")
    ap.add_argument("--serial-push", action="store_true",
                    help="push only once the sync is over (the old arrangement), to compare with the default")
    a = ap.parse_args(argv)
    from gateway.protocol.suites import DEFAULT_SUITE, UnknownSuite, suite

    try:
        named = [suite(x.strip()).name for x in a.suite.split(",") if x.strip()]
    except UnknownSuite as e:
        ap.error(str(e))
    suites = [DEFAULT_SUITE, *dict.fromkeys(s for s in named if s != DEFAULT_SUITE)]
    steps = [x.strip() for x in a.steps.split(",") if x.strip()]
    if unknown := set(steps) - set(STEPS):
        ap.error(f"unknown steps {sorted(unknown)}; choose from {','.join(STEPS)}")
    global SRC_DB, FLOOR_DB, HUB_DB, DLT_PREFIX, SERIAL_PUSH
    SERIAL_PUSH = a.serial_push
    SRC_DB, FLOOR_DB, HUB_DB, DLT_PREFIX = (f"{a.db_prefix}_{x}" for x in ("src", "floor", "hub", "dlt"))
    if a.smoke:
        a.rows, a.repeat, a.edits = a.rows or 10_000, 1, min(a.edits, 20)
        a.ingest_records = a.ingest_records or min(a.rows, 8_000)
    a.rows = a.rows or 100_000
    records = a.ingest_records or a.rows
    root = a.workdir or Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "rows": a.rows, "repeat": a.repeat, "smoke": a.smoke, "steps": steps, "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "note": "shared 2-core machine: absolute times drift; ratios are from this invocation",
        "suites": {},
    }
    hub: W.HubProcess | None = None
    t_all = time.perf_counter()
    try:
        say(f"generating {a.rows:,} stock rows in {SRC_DB} (COPY)")
        t = time.perf_counter()
        src = data.generate(a.pg, SRC_DB, a.rows)
        res["generate_s"] = time.perf_counter() - t
        ws = W.make_workspace(root, src)
        if "floor" in steps:
            say("floor: COPY kc_mx TO STDOUT | COPY FROM STDIN")
            res["floor"] = step_floor(a.pg, src, a.repeat)
        if {"full", "incremental", "latency"} & set(steps):  # the later steps start from the full step's state and hub
            say("full: initial sync + push to the hub (PostgreSQL store, waitress subprocess)")
            res["full"], hub = step_full(a.pg, ws, a.rows, a.repeat)
            res["full"]["serial"] = SERIAL_PUSH
        reason = "--skip-dlt given" if a.skip_dlt else dlt_available()
        with_dlt = reason is None and "dlt" in steps
        if with_dlt:
            say("dlt sql_database full loads (default sqlalchemy and pyarrow backends)")
            res["dlt"] = step_dlt_full(a.pg, ws, a.rows, a.repeat)
        elif "dlt" in steps:
            say(f"dlt skipped: {reason}")
            res["dlt"] = {"skipped": f"dlt not available: {reason}" if not a.skip_dlt else reason}
        if "incremental" in steps:
            say("incremental: 1% updates, 0.5% inserts, 0.2% deletes")
            res["incremental"] = step_incremental(a.pg, ws, src, a.rows, a.repeat, with_dlt)
        if "latency" in steps:
            say(f"per-record push latency over {a.edits} edits (local API)")
            res["latency"] = step_latency(a.pg, ws, src, a.edits, a.rows, hub)
        if "ingest" in steps:
            say(f"hub ingest from 8 concurrent gateways ({records:,} records)")
            res["ingest"], hub = step_ingest(a.pg, ws, records, a.repeat, hub)
        res["suites"][DEFAULT_SUITE] = {k: res[k] for k in SUITE_STEPS if k in res}
        for name in suites[1:]:
            res["suites"][name], hub = suite_steps(a, name, steps, root, records, hub)
    finally:
        if hub is not None:
            hub.stop()
        if not a.keep:
            for name in (HUB_DB, FLOOR_DB, *(f"{DLT_PREFIX}_{b}" for b in DLT_BACKENDS), *([SRC_DB] if a.smoke else [])):
                try:
                    data.drop_database(a.pg, name)
                except Exception:  # noqa: BLE001 - clean-up must not hide the real error
                    pass
            if a.workdir is None:
                shutil.rmtree(root, ignore_errors=True)
    res["total_s"] = time.perf_counter() - t_all
    base = RESULTS / "rows-100000.json"
    if a.rows > 100_000 and base.exists() and "full" in res and "ingest" in res:
        b = orjson.loads(base.read_bytes())
        res["rss_vs_100k"] = {
            "gateway": res["full"]["gateway_peak_rss_mb"] / b["full"]["gateway_peak_rss_mb"] - 1,
            "hub": res["full"]["hub_peak_rss_mb"] / b["full"]["hub_peak_rss_mb"] - 1,
        }
    global ROWS_NOW
    ROWS_NOW = a.rows
    res["table"] = table(res)
    print()
    print(res["table"])
    RESULTS.mkdir(exist_ok=True)
    body = orjson.dumps(res, option=orjson.OPT_INDENT_2, default=str)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_bytes(body)
    if not a.smoke and set(steps) == set(STEPS):
        (RESULTS / f"rows-{a.rows}.json").write_bytes(body)
    say(f"wrote {a.out} ({res['total_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

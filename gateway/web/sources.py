"""数据源: each configured source, its settings (secrets hidden), columns and recent runs."""

from __future__ import annotations

import json
import time
from itertools import islice
from typing import Any

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from sqlalchemy import select

from gateway.accounts.web import actor, audit, require
from gateway.adapters import registry
from gateway.adapters.base import SourceRow
from gateway.config import SourceConfig
from gateway.store import tables as t
from gateway.web import status
from gateway.web.app import gw, wake_push_worker
from gateway.web.jobs import Job, board

bp = Blueprint("sources", __name__, url_prefix="/sources")
SAMPLE_ROWS = 20
SAMPLE_CACHE_SECONDS = 60
_SECRET_WORDS = ("password", "secret", "token", "passphrase", "key")


def source_config(name: str) -> SourceConfig:
    cfg = gw().config
    if cfg is None:
        abort(404)
    for s in cfg.sources:
        if s.name == name:
            return s
    abort(404)


def shown_settings(sc: SourceConfig) -> dict[str, Any]:
    """Settings for display: secret-looking values and credentials inside URLs are masked; a secret
    given by reference shows the reference ({env = "NAME"}), and is not read just to be hidden."""
    out = {}
    for k, v in sc.declared_settings.items():
        if any(w in k.lower() for w in _SECRET_WORDS) and v:
            v = "******"
        elif isinstance(v, str) and "://" in v and "@" in v:
            scheme, rest = v.split("://", 1)
            v = f"{scheme}://******@{rest.split('@', 1)[1]}"
        out[k] = v
    return out


def open_adapter(sc: SourceConfig) -> Any:
    from gateway.sync import open_adapter as open_for

    cfg = gw().config
    if cfg is None:
        return registry.adapter_class(sc.type)(sc.name, sc.settings)
    return open_for(cfg, sc)


def sample(sc: SourceConfig, limit: int = SAMPLE_ROWS) -> tuple[list[str], list[SourceRow], str | None]:
    """(columns, first rows, Chinese error) of a source, cached briefly for the live preview."""
    cache = current_app.extensions.setdefault("sample_cache", {})
    hit = cache.get((sc.name, limit))
    if hit and hit[0] > time.monotonic() - SAMPLE_CACHE_SECONDS:
        return hit[1]
    cols: list[str] = []
    rows: list[SourceRow] = []
    err = None
    try:
        with open_adapter(sc) as ad:
            rows = [e for e in islice((e for e in ad.fetch(None) if isinstance(e, SourceRow)), limit)]
            cols = list(ad.columns() or [])
    except Exception as e:  # any adapter failure is shown, not raised: the page still works
        current_app.logger.warning("sample of source %s failed: %s", sc.name, e)
        err = f"读取数据源失败：{e}"
    if not cols:
        seen: dict[str, None] = {}
        for r in rows:
            seen.update(dict.fromkeys(r.data))
        cols = list(seen)
    result = (cols, rows, err)
    if err is None:
        cache[(sc.name, limit)] = (time.monotonic(), result)
    return result


@bp.get("/")
@require("view")
def index() -> Any:
    g = gw()
    return render_template("sources.html", sources=status.source_rows(g.config, g.engine), run_labels=status.RUN_LABELS)


@bp.get("/<name>")
@require("view")
def detail(name: str) -> Any:
    sc = source_config(name)
    r = t.sync_runs
    with gw().engine.connect() as c:
        runs = [dict(x) for x in c.execute(select(r).where(r.c.source == name).order_by(r.c.id.desc()).limit(30)).mappings()]
    for run in runs:
        run["problem_list"] = json.loads(run["problems"]) if run.get("problems") else []
    cols, rows, err = sample(sc, 5)
    return render_template(
        "source_detail.html", s=sc, settings=shown_settings(sc), runs=runs, run_labels=status.RUN_LABELS,
        schedule=status.schedule_text(sc.every_seconds, sc.cron), columns=cols, rows=rows, sample_error=err,
    )


@bp.post("/<name>/sync")
@require("run_sync")
def run_sync(name: str) -> Any:
    """Start a sync of the source as a job and show its progress (a sync already running is shown instead)."""
    sc = source_config(name)
    try:
        from gateway.sync import sync_source
    except ImportError:
        abort(503)
    jobs = board()
    running = jobs.running("sync", name)
    if running is not None:
        flash("该数据源正在同步，显示进行中的任务", "ok")
        return redirect(url_for("jobs.show", job_id=running.id))
    audit("sync.run", name)
    g, who = gw(), actor()
    detail_url = url_for("sources.detail", name=name)  # the job's thread has no request to build URLs from

    def work(job: Job) -> None:
        def progress(rows: int) -> None:
            job.advance(rows)
            wake_push_worker()  # each committed chunk goes out while the sync reads on, as scheduled syncs do

        try:
            s = sync_source(g.config, sc.name, g.engine, operator=who, progress=progress)
        finally:
            wake_push_worker()  # what the run committed (a failed run may have committed chunks too)
        job.advance(s.rows_read)
        job.ok = not s.rejected
        job.message = (f"同步完成：读取 {s.rows_read} 行，新增 {s.new}，变更 {s.changed}，删除 {s.deleted}，"
                       f"未变 {s.unchanged}，错误行 {s.rejected}")
        job.result_url = detail_url

    job = jobs.start(current_app._get_current_object(), "sync", name, f"同步数据源 {name}", who, work)  # type: ignore[attr-defined]
    return redirect(url_for("jobs.show", job_id=job.id))

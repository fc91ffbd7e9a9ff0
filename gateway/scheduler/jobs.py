"""APScheduler jobs built from the gateway config.

One extract-and-load job per enabled source that has ``every`` (interval) or
``cron`` (5 fields, local time), plus a daily freshness check. Every job runs
at most one instance at a time and coalesces missed runs into one, so a slow
sync never piles up behind itself. A source with neither is not scheduled: it
is synced by hand (`gateway sync`), by pg-notify or by local edits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from gateway.config import GatewayConfig, SourceConfig
from gateway.logs import log

LOG = logging.getLogger("gateway.scheduler")

FRESHNESS_JOB = "freshness"
FRESHNESS_CRON = "0 6 * * *"  # daily, before the working day starts
# A run that missed its time by less than this still runs (e.g. after a long sync
# or a suspended VM); older misses are coalesced into the next regular run.
MISFIRE_GRACE = 300

OnSynced = Callable[[str, Any], None]
OnChunk = Callable[[], None]  # a sync committed another chunk of records to the outbox


def sync_job_id(source: str) -> str:
    return f"sync:{source}"


def trigger_for(source: SourceConfig) -> IntervalTrigger | CronTrigger | None:
    if source.cron:
        return CronTrigger.from_crontab(source.cron)
    if source.every_seconds:
        return IntervalTrigger(seconds=source.every_seconds)
    return None


def run_sync(
    config: GatewayConfig, engine: Engine, source: str, on_synced: OnSynced | None = None, on_chunk: OnChunk | None = None
) -> Any:
    """One scheduled extract-and-load of `source`; never raises (a failed run is logged and recorded by sync).

    `on_chunk` is called after each committed chunk (the service wakes the push
    worker there, so a long sync's records travel while it is still reading).
    """
    from gateway.sync import sync_source

    progress = (lambda _rows: on_chunk()) if on_chunk is not None else None
    try:
        summary = sync_source(config, source, engine, operator="scheduler", progress=progress)
    except Exception as e:  # one source failing must not stop the others or the scheduler
        log(LOG, logging.ERROR, "scheduled sync failed", source=source, error=str(e), error_type=type(e).__name__)
        return None
    if on_synced is not None:
        try:
            on_synced(source, summary)
        except Exception as e:
            log(LOG, logging.ERROR, "after-sync hook failed", source=source, error=str(e))
    return summary


def run_freshness(config: GatewayConfig, engine: Engine) -> None:
    from gateway.freshness import log_freshness

    try:
        log_freshness(config, engine)
    except Exception as e:
        log(LOG, logging.ERROR, "freshness check failed", error=str(e))


def build_scheduler(
    config: GatewayConfig,
    engine: Engine,
    *,
    on_synced: OnSynced | None = None,
    on_chunk: OnChunk | None = None,
    run_at_start: bool = True,
    freshness_cron: str = FRESHNESS_CRON,
) -> BackgroundScheduler:
    """A scheduler (not started) holding one job per scheduled source and the freshness job.

    `on_synced(source, summary)` runs after each sync and `on_chunk()` after
    each chunk a sync commits (the service wakes the push worker at both). With `run_at_start`, interval sources run once as soon
    as the scheduler starts instead of one interval later.
    """
    workers = max(1, min(4, sum(1 for s in config.sources if s.enabled)))
    sched = BackgroundScheduler(
        executors={"default": ThreadPoolExecutor(workers)},
        job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": MISFIRE_GRACE},
    )
    now = dt.datetime.now().astimezone()
    for src in config.sources:
        if not src.enabled:
            continue
        trig = trigger_for(src)
        if trig is None:
            continue
        extra: dict[str, Any] = {}
        if run_at_start and isinstance(trig, IntervalTrigger):
            extra["next_run_time"] = now
        sched.add_job(
            run_sync, trig, args=(config, engine, src.name, on_synced, on_chunk), id=sync_job_id(src.name),
            name=f"extract-and-load {src.name}", replace_existing=True, **extra,
        )
    sched.add_job(
        run_freshness, CronTrigger.from_crontab(freshness_cron), args=(config, engine),
        id=FRESHNESS_JOB, name="freshness check", replace_existing=True,
    )
    return sched


def job_status(sched: BackgroundScheduler) -> list[dict[str, Any]]:
    """Jobs and their next run times, for /healthz and the dashboard."""
    out = []
    for job in sched.get_jobs():
        nrt = job.next_run_time
        out.append({"id": job.id, "name": job.name, "next_run": nrt.isoformat() if nrt else None})
    return out

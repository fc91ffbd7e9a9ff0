"""总览: sources and their last runs, outbox backlog, receipts, dead letters, hub health, freshness."""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, current_app, jsonify, render_template

from gateway.accounts.web import require
from gateway.freshness import FreshnessReport, report_for
from gateway.standard.schema import RECORD_TYPES
from gateway.sync import problems as current_problems
from gateway.web import status
from gateway.web.app import gw

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")
FRESHNESS_CACHE_SECONDS = 120


def _freshness() -> FreshnessReport | None:
    """The freshness report, cached briefly: it reads every live record's latest version."""
    g = gw()
    if g.config is None:
        return None
    cache = current_app.extensions.setdefault("freshness_cache", {})
    if cache.get("at", 0) > time.monotonic() - FRESHNESS_CACHE_SECONDS:
        return cache["report"]
    rep = report_for(g.config, g.engine)
    cache.update(at=time.monotonic(), report=rep)
    return rep


@bp.get("/")
@require("view")
def index() -> Any:
    g = gw()
    return render_template(
        "dashboard.html",
        sources=status.source_rows(g.config, g.engine),
        failures=status.last_failures(g.engine, 5),
        backlog=status.outbox_backlog(g.engine),
        state_labels=status.STATE_LABELS,
        run_labels=status.RUN_LABELS,
        last_receipt=status.last_receipt(g.engine),
        dead=status.open_dead_letters(g.engine),
        problems=current_problems.counts(g.engine),
        fresh=_freshness(),
        types=RECORD_TYPES,
        config=g.config,
    )


@bp.get("/api/hub")
@require("view")
def hub() -> Any:
    return jsonify(status.hub_health(gw().config))

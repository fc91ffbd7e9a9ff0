"""Local API blueprint: per-record push with a bearer token, and /healthz."""

from __future__ import annotations

import hmac
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Blueprint, Flask, current_app, jsonify, request
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import Engine, func, select, text

from gateway.accounts.sessions import UiOnlySessions
from gateway.config import GatewayConfig
from gateway.logs import log
from gateway.service.record_push import DELIVERED, FAILED, INVALID, NOT_FOUND, QUEUED, REJECTED, RecordPusher
from gateway.store.tables import outbox, sync_runs

LOG = logging.getLogger("gateway.api")
EXT = "gateway_local_api"
HUB_CHECK_TTL = 10.0  # seconds a hub reachability answer is reused (healthz may be polled often)

STATUS_CODES = {DELIVERED: 200, QUEUED: 202, INVALID: 422, REJECTED: 422, NOT_FOUND: 404, FAILED: 503}

bp = Blueprint("local_api", __name__)
API_PREFIX = "/api/local/"


@dataclass
class LocalAPI:
    """What the API views need; the service fills in the scheduler once it exists."""

    config: GatewayConfig
    engine: Engine
    pusher: RecordPusher
    scheduler: Any = None  # apscheduler BackgroundScheduler
    worker: Any = None  # gateway.push.worker.PushWorker
    started: float = field(default_factory=time.time)
    _hub_cache: tuple[float, dict[str, Any]] | None = None
    _hub_lock: threading.Lock = field(default_factory=threading.Lock)

    def hub_status(self) -> dict[str, Any]:
        with self._hub_lock:
            now = time.monotonic()
            if self._hub_cache and now - self._hub_cache[0] < HUB_CHECK_TTL:
                return self._hub_cache[1]
            url = f"{self.config.hub.url}/api/v1/hub"
            verify: Any = str(self.config.hub.ca_file) if self.config.hub.ca_file else True
            try:
                t0 = time.perf_counter()
                r = requests.get(url, timeout=3, verify=verify)
                ms = round((time.perf_counter() - t0) * 1000, 1)
                st = {"ok": r.status_code == 200, "url": self.config.hub.url, "status": r.status_code, "ms": ms}
                if r.status_code == 200:
                    hub_time = r.json().get("hub_time")
                    if hub_time:
                        st["hub_time"] = hub_time
            except (requests.RequestException, ValueError) as e:
                st = {"ok": False, "url": self.config.hub.url, "error": str(e)[:200]}
            self._hub_cache = (now, st)
            return st


def _api() -> LocalAPI:
    return current_app.extensions[EXT]


def _authorised(token: str | None) -> bool:
    got = request.headers.get("Authorization", "")
    scheme, _, value = got.partition(" ")
    if not token or scheme.lower() != "bearer" or not value:
        return False
    # Constant-time: the comparison must not reveal how much of a guess was right.
    return hmac.compare_digest(value.strip().encode("utf-8"), token.encode("utf-8"))


@bp.post(API_PREFIX + "push")
def push() -> Any:
    api = _api()
    if not api.config.web.api_token:
        return jsonify(error="api_disabled", message="未配置 web.api_token，本地接口已关闭"), 503
    if not _authorised(api.config.web.api_token):
        log(LOG, logging.WARNING, "local API: bad or missing token", remote=request.remote_addr)
        resp = jsonify(error="unauthorized", message="缺少或错误的访问令牌（Authorization: Bearer <token>）")
        resp.headers["WWW-Authenticate"] = 'Bearer realm="gateway"'
        return resp, 401
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        return jsonify(error="bad_request", message='请求体应为 JSON 对象：{"source": "...", "key": "..."}'), 400
    source, key = body.get("source"), body.get("key")
    operator = body.get("operator") or "api"
    missing = [n for n, v in (("source", source), ("key", key)) if not isinstance(v, str | int) or v == ""]
    if missing or not isinstance(operator, str):
        return jsonify(error="bad_request", message=f"缺少或错误的字段：{', '.join(missing) or 'operator'}"), 400
    outcome = api.pusher.push(str(source), str(key), operator)
    return jsonify(outcome.as_dict()), STATUS_CODES.get(outcome.status, 200)


@bp.get("/healthz")
def healthz() -> Any:
    api = _api()
    out: dict[str, Any] = {"department": api.config.department_code, "uptime_s": round(time.time() - api.started)}
    ok = True
    sched = api.scheduler
    if sched is None:
        out["scheduler"] = {"running": False, "note": "not started in this process"}
    else:
        from gateway.scheduler.jobs import job_status

        running = bool(sched.running)
        out["scheduler"] = {"running": running, "jobs": job_status(sched) if running else []}
        ok = ok and running
    if api.worker is not None:
        out["push_worker"] = {"alive": bool(api.worker.alive), "last_error": api.worker.last_error}
        ok = ok and bool(api.worker.alive)
    try:
        with api.engine.connect() as c:
            c.execute(text("SELECT 1"))
            counts = dict(c.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())
            last = {}
            for row in c.execute(
                select(sync_runs.c.source, sync_runs.c.status, sync_runs.c.finished_at, sync_runs.c.error)
                .where(sync_runs.c.id.in_(select(func.max(sync_runs.c.id)).group_by(sync_runs.c.source)))
            ):
                last[row.source] = {"status": row.status, "finished_at": row.finished_at, "error": row.error}
        out["store"] = {"ok": True, "outbox": counts, "last_sync": last}
    except Exception as e:  # noqa: BLE001 (health reports any store failure)
        out["store"] = {"ok": False, "error": str(e)[:200]}
        ok = False
    out["hub"] = api.hub_status()
    ok = ok and bool(out["hub"].get("ok"))
    out["ok"] = ok
    return jsonify(out), 200 if ok else 503


def attach_api(app: Flask, api: LocalAPI) -> None:
    """Register the local API on `app` (token-authenticated, so exempt from the UI's CSRF check)."""
    app.extensions[EXT] = api
    if type(app.session_interface) is SecureCookieSessionInterface:  # Flask's own; a custom one is left alone
        app.session_interface = UiOnlySessions(API_PREFIX)
    exempt = tuple(app.config.get("CSRF_EXEMPT_BLUEPRINTS", ()))
    app.config["CSRF_EXEMPT_BLUEPRINTS"] = (*exempt, bp.name)
    app.register_blueprint(bp)

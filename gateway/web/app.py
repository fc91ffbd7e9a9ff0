"""create_app: wire config, state store, accounts and the area blueprints together."""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from typing import Any

from flask import Flask, current_app, redirect, url_for
from sqlalchemy import Engine

from gateway.accounts import AccountStore, csrf, errors
from gateway.accounts.forwarded import TrustedProxies
from gateway.accounts.roles import GATEWAY_PERMISSIONS, GATEWAY_ROLES
from gateway.accounts.web import AccountsUI, NavItem, attach
from gateway.at_rest.stored import read_stored
from gateway.config import GatewayConfig
from gateway.localtime import DEFAULT_TIMEZONE, local_text, zone_label
from gateway.store import tables


@dataclass
class GatewayUI:
    """What the views share: the loaded config (None in bare tests) and the state store."""

    config: GatewayConfig | None
    engine: Engine
    # Set by `gateway run` to the running PushWorker, so a local edit is pushed at once.
    push_worker: Any = None


def gw() -> GatewayUI:
    return current_app.extensions["gateway"]


def wake_push_worker() -> None:
    """Wake the running push worker so queued records go out now, not at the next tick.

    `gateway run` registers the local API with its worker on this app; a worker set
    on GatewayUI.push_worker directly wins.
    """
    worker = gw().push_worker
    if worker is None:
        api = current_app.extensions.get("gateway_local_api")
        worker = getattr(api, "worker", None)
    if worker is not None:
        worker.wake()


NAV = [
    NavItem("dashboard.index", "总览"),
    NavItem("sources.index", "数据源"),
    NavItem("mappings.index", "字段映射"),
    NavItem("problems.index", "问题数据"),
    NavItem("deliveries.index", "推送与回执"),
    NavItem("records.index", "记录录入"),
    NavItem("lookup.index", "查找记录"),
    NavItem("spreadsheet.index", "表格导入"),
    NavItem("accounts.users", "用户", "manage_users"),
    NavItem("accounts.audit_log", "审计日志", "manage_users"),
]


def _secret_key(config: GatewayConfig | None) -> str:
    """The configured key, else one generated once and kept beside the state store (never a default), sealed at rest."""
    if config is not None and config.web.secret_key:
        return config.web.secret_key
    if config is None:
        return secrets.token_urlsafe(32)
    path = config.web_secret_file
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(config.at_rest.seal(secrets.token_urlsafe(48).encode("ascii")))
    return read_stored(path, config.at_rest, "会话密钥 / web secret").decode("ascii").strip()


def create_app(
    config: GatewayConfig | None = None, engine: Engine | None = None, test_config: dict[str, Any] | None = None
) -> Flask:
    if engine is None:
        if config is None:
            raise ValueError("create_app needs a GatewayConfig or a state-store engine")
        from gateway.store import open_store

        engine = open_store(config.state_path)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=_secret_key(config),
        MAX_CONTENT_LENGTH=50 * 1024 * 1024,
        JSON_AS_ASCII=False,
        LOCKOUT_AFTER=5,
        LOCKOUT_MINUTES=15,
    )
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    tls = bool(config and config.web.tls_cert)
    if test_config:
        app.config.update(test_config)
        tls = tls or bool(test_config.get("TLS"))
    app.extensions["gateway"] = GatewayUI(config, engine)
    store = AccountStore(
        engine, tables.users, tables.audit, GATEWAY_ROLES,
        max_failures=int(app.config["LOCKOUT_AFTER"]), lockout_minutes=float(app.config["LOCKOUT_MINUTES"]),
    )
    title = "应急资源数据交换前置机"
    if config is not None:
        title += f" · {config.department_name}"
    proxies = app.config.get("TRUSTED_PROXIES", config.web.trusted_proxies if config is not None else ())
    ui = AccountsUI(store, GATEWAY_PERMISSIONS, "dashboard.index", title, NAV, TrustedProxies.parse(proxies))
    attach(app, ui, tls=tls)
    tz = config.web.timezone if config is not None else DEFAULT_TIMEZONE

    @app.template_filter("local_time")
    def local_time(value: Any, seconds: bool = True) -> str:
        """A stored UTC time as the clerk reads it, in web.timezone (Beijing time by default)."""
        return local_text(value, tz, seconds)

    app.jinja_env.globals["zone_label"] = zone_label(tz)
    from gateway.standard.schema import RECORD_TYPES
    from gateway.web.status import SOURCE_TYPE_LABELS, STRATEGY_LABELS, labelled

    app.jinja_env.filters["source_type"] = lambda code: labelled(code, SOURCE_TYPE_LABELS)
    app.jinja_env.filters["strategy"] = lambda code: labelled(code, STRATEGY_LABELS)
    app.jinja_env.filters["record_type"] = lambda code: RECORD_TYPES[code].label if code in RECORD_TYPES else (code or "")
    csrf.protect(app)
    errors.install(app)

    from gateway.web import dashboard, deliveries, jobs, lookup, mappings, problems, records, sources, spreadsheet

    for mod in (dashboard, sources, mappings, problems, deliveries, records, lookup, spreadsheet, jobs):
        app.register_blueprint(mod.bp)

    @app.get("/")
    def root() -> Any:
        return redirect(url_for("dashboard.index"))

    return app

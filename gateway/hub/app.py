"""The hub's Flask app factory and the state its API shares (engine, hub key, limits)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

import psycopg
from flask import Flask, Response, g, request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from gateway.accounts.sessions import UiOnlySessions
from gateway.errors import FatalError
from gateway.hub import registry
from gateway.hub.config import HubConfig, hub_config_from_dict
from gateway.hub.db import open_hub_db, serialized
from gateway.hub.forward.envelopes import UpwardSpec
from gateway.hub.receipt_log import append
from gateway.protocol.batch import PROTOCOL_VERSION, VERSION_HEADER
from gateway.protocol.canonical import canonical_json
from gateway.protocol.keys import public_key_from_text, public_key_of, public_key_text, read_private_key
from gateway.protocol.signing import content_digest
from gateway.protocol.suites import suite_of
from gateway.standard.validate import ValidationContext

LOG = logging.getLogger(__name__)


class Hub:
    """What every request of one hub process shares."""

    def __init__(self, config: HubConfig, engine: Engine | None = None) -> None:
        self.config = config
        if config.signing_key is None:
            raise FatalError("hub.signing_key is not set")
        self.key = read_private_key(config.signing_key, config.sm2_signer_id, config.at_rest.open)
        self.key_id = config.key_id
        self.public_key_text = public_key_text(public_key_of(self.key))
        self.engine = engine or open_hub_db(config.database)
        registry.sync_from_config(self.engine, config)
        self.registry = registry.RegistryCache()  # departments and keys, re-read when the registry changes
        self.in_flight = threading.BoundedSemaphore(config.max_in_flight)
        self.context = ValidationContext.from_settings(category_codes=config.category_codes, extra_units=config.extra_units)
        Path(config.attachments_dir).mkdir(parents=True, exist_ok=True)
        # With an [upstream], every batch that accepts records is queued for it in its own transaction.
        self.forwarding = config.upstream is not None
        up = config.upstream
        self.upward = (UpwardSpec(self.key_id, up.key_id, up.confidential,
                                  suite_of(public_key_from_text(up.hub_key)).digest) if up is not None else None)
        self.forwarder: Any = None  # gateway.hub.forward.worker.Forwarder, started by create_app

    def start_forwarder(self) -> None:
        from gateway.hub.forward.attachments import FileSender
        from gateway.hub.forward.worker import Forwarder

        assert self.config.upstream is not None
        self.forwarder = Forwarder(self.engine, self.config.upstream, self.key_id, self.config.at_rest.open,
                                   files=FileSender(self.config.attachments_dir, self.config.at_rest))
        self.forwarder.start()

    def wake_forwarder(self, queued: dict[str, Any] | None = None) -> None:
        """A batch was stored; `queued`: its committed forward outbox row, handed to this process's forwarder."""
        if self.forwarder is not None:
            if queued is not None:
                self.forwarder.hand(queued)
            self.forwarder.wake.set()

    def close(self) -> None:
        """Stop the forwarder thread (a hub served in a test thread, stopped and started again)."""
        if self.forwarder is not None:
            self.forwarder.stop()
            self.forwarder = None

    def log_refusal(self, status: int, code: str, message: str, *, key_id: str | None = None,
                    department: str | None = None, body: bytes | None = b"", extra: dict[str, Any] | None = None) -> None:
        """Write a refused request to the receipt log; never lets a logging failure hide the refusal.

        `body` None: the body was not read (413), so the entry has no request digest.
        """
        summary = {"http_status": status, "method": request.method, "path": request.path,
                   "remote": request.remote_addr, "message": message, **(extra or {})}
        try:
            with serialized(self.engine) as (conn, head):
                append(conn, head, self.key, kind="refused", status=code, department=department, key_id=key_id,
                       request_digest=None if body is None else content_digest(body), summary=summary)
        except Exception:
            LOG.exception("could not log refused request %s %s (%s)", request.method, request.path, code)


def json_response(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    resp = Response(canonical_json(doc), status=status, mimetype="application/json")
    for k, v in (headers or {}).items():
        resp.headers[k] = v
    return resp


def error(status: int, code: str, message: str, headers: dict[str, str] | None = None, **extra: Any) -> Response:
    return json_response({"error": code, "message": message, **extra}, status, headers)


def create_app(config: HubConfig | None = None, test_config: dict | None = None) -> Flask:
    """The hub app. `config`: a loaded HubConfig; `test_config`: a hub config document (as TOML would give)
    checked by the same loader, with an optional `base_dir` entry for relative paths."""
    if config is None:
        doc = dict(test_config or {})
        base = Path(doc.pop("base_dir", ".")).resolve()
        config = hub_config_from_dict(doc, base)
    app = Flask(__name__)
    app.session_interface = UiOnlySessions("/api/")
    hub = Hub(config)
    app.extensions["hub"] = hub
    app.config["MAX_CONTENT_LENGTH"] = max(config.max_batch_bytes, config.attachment_max_bytes)

    @app.before_request
    def limit_in_flight() -> Response | None:
        if not request.path.startswith("/api/"):
            return None
        if not hub.in_flight.acquire(blocking=False):
            # Not a receipt-log entry: writing one per shed request would be the very load being shed.
            LOG.warning("hub overloaded: refused %s %s from %s (429)", request.method, request.path, request.remote_addr)
            return error(429, "overloaded", "中心繁忙，请稍后重试 / hub busy, retry later", {"Retry-After": "1"})
        g.hub_slot = True
        return None

    @app.teardown_request
    def release(_exc: BaseException | None) -> None:
        if g.pop("hub_slot", False):
            hub.in_flight.release()

    @app.after_request
    def protocol_header(resp: Response) -> Response:
        if request.path.startswith("/api/"):
            resp.headers[VERSION_HEADER] = PROTOCOL_VERSION
        return resp

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_e: Exception) -> Response:
        limit = app.config["MAX_CONTENT_LENGTH"]
        return error(413, "too_large", f"请求体过大，上限 {limit} 字节 / body larger than {limit} bytes", limit=limit)

    @app.errorhandler(OperationalError)
    @app.errorhandler(DBAPIError)
    @app.errorhandler(psycopg.Error)  # the batch path's plain SQL on the psycopg connection (SQLAlchemy wraps its own)
    def store_unavailable(e: Exception) -> Response:
        LOG.warning("hub store unavailable: %s", e)
        return error(503, "store_unavailable", "中心数据库暂不可用，请稍后重试 / hub store unavailable, retry later",
                     {"Retry-After": "5"})

    @app.errorhandler(HTTPException)
    def http_error(e: HTTPException) -> Response:
        return error(e.code or 500, (e.name or "error").lower().replace(" ", "_"), e.description or "")

    from gateway.hub.api import api
    from gateway.hub.api_upstream import get_upstream_receipts  # noqa: F401 - a route of the api blueprint

    app.register_blueprint(api)
    from gateway.hub.health import health  # GET /healthz, no authentication

    app.register_blueprint(health)
    from gateway.hub.ui import bp as ui_bp  # operators' web UI under /ui

    app.register_blueprint(ui_bp)
    if hub.forwarding:
        hub.start_forwarder()
    return app

"""`gateway run`: scheduler, push worker, admin UI + local API and pg-notify listeners in one process.

Shutdown order (SIGTERM/SIGINT) is chosen so nothing is lost:
1. the web server stops accepting (requests in progress finish);
2. pg-notify listeners stop (a key not yet handled is caught by the next scheduled sync);
3. the scheduler shuts down waiting for a sync in flight (state and outbox commit together);
4. the push worker finishes its batch in flight, or leaves it `sent` to be resent with the same id.
"""

from __future__ import annotations

import logging
import signal
import ssl
import threading
from typing import Any

from flask import Flask
from sqlalchemy import Engine

from gateway.api.local import LocalAPI, attach_api
from gateway.config import GatewayConfig
from gateway.errors import FatalError
from gateway.logs import log
from gateway.service.record_push import RecordPusher
from gateway.store import open_store

LOG = logging.getLogger("gateway.service")


def build_web_app(config: GatewayConfig, engine: Engine, api: LocalAPI, push_worker: Any = None) -> Flask:
    """The admin UI with the local API registered alongside; the UI wakes `push_worker` after edits."""
    from gateway.web import create_app

    app = create_app(config, engine)
    ui = app.extensions.get("gateway")
    if ui is not None and hasattr(ui, "push_worker"):
        ui.push_worker = push_worker
    attach_api(app, api)
    return app


def split_listen(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


class GatewayService:
    """The gateway's long-running process. start() returns once everything runs; stop() is graceful."""

    def __init__(
        self,
        config: GatewayConfig,
        engine: Engine | None = None,
        *,
        web: bool = True,
        listen: str | None = None,
        pg_listen: bool = True,
        run_at_start: bool = True,
        push_idle_poll: float = 30.0,
    ) -> None:
        from gateway.push.worker import PushWorker
        from gateway.scheduler.jobs import build_scheduler

        self.config = config
        self.engine = engine or open_store(config.state_path)
        self.worker = PushWorker(config, self.engine, idle_poll=push_idle_poll)
        self.pusher = RecordPusher(config, self.engine, wake=self.worker.wake)
        self.scheduler = build_scheduler(
            config, self.engine, on_synced=self._after_sync, on_chunk=self.worker.wake, run_at_start=run_at_start
        )
        self.api = LocalAPI(config, self.engine, self.pusher, self.scheduler, self.worker)
        self.listen = listen or config.web.listen
        self.scheme = "http"
        self.want_web = web
        self.want_pg = pg_listen
        self.server: Any = None
        self.app: Flask | None = None
        self.listeners: list[Any] = []
        self._stopped = threading.Event()

    # -- hooks ---------------------------------------------------------------

    def _after_sync(self, source: str, summary: Any) -> None:
        # Push what the sync enqueued now, not at the worker's next poll. (The worker was
        # also woken after each committed chunk, so most of a long sync is out already.)
        self.worker.wake()

    # -- lifecycle -----------------------------------------------------------

    def start(self) -> GatewayService:
        self.worker.start()
        self.worker.wake()  # deliver whatever a previous run left in the outbox
        if self.want_web:
            self._start_web()
        if self.want_pg:
            self._start_pg_listeners()
        self.scheduler.start()
        log(
            LOG, logging.INFO, "gateway started", department=self.config.department_code,
            listen=self.listen if self.want_web else None, scheme=self.scheme, jobs=[j.id for j in self.scheduler.get_jobs()],
            pg_listeners=[lst.source for lst in self.listeners],
        )
        return self

    def _start_web(self) -> None:
        from waitress.server import create_server

        from gateway.service.webserver import ThreadedServer

        self.app = build_web_app(self.config, self.engine, self.api, self.worker)
        host, port = split_listen(self.listen)
        web = self.config.web
        try:
            if web.tls_cert and web.tls_key:
                from gateway.service.tls import TlsServer

                self.server = TlsServer(self.app, host, port, web.tls_cert, web.tls_key).start()
            else:
                # With web.trusted_proxies the app reads X-Forwarded-For itself, only from those peers.
                server = create_server(self.app, host=host, port=port, threads=8, ident="gateway",
                                       clear_untrusted_proxy_headers=not web.trusted_proxies)
                self.server = ThreadedServer(server, "web").start()
        except ssl.SSLError as e:
            raise FatalError(f"web.tls_cert / web.tls_key cannot be used: {e}") from None
        except OSError as e:
            raise FatalError(f"cannot listen on {self.listen} (web.listen or --listen): {e}") from None
        self.listen = f"{host}:{self.server.port}"
        self.scheme = "https" if web.tls_cert and web.tls_key else "http"

    def _start_pg_listeners(self) -> None:
        from gateway.service.pg_listen import listeners_for

        for lst in listeners_for(self.config, self.pusher):
            lst.start()
            self.listeners.append(lst)

    def stop(self, timeout: float = 50.0) -> bool:
        """Stop everything in the safe order; True when the push worker ended within `timeout`."""
        if self._stopped.is_set():
            return True
        self._stopped.set()
        log(LOG, logging.INFO, "gateway stopping")
        if self.server is not None:
            self.server.stop()  # stop accepting; requests in progress finish
        for lst in self.listeners:
            lst.stop()
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
        clean = self.worker.stop(timeout)
        self.pusher.close()
        log(LOG, logging.INFO, "gateway stopped", push_worker_clean=clean)
        return clean

    def run_until_signal(self) -> int:
        """Start, wait for SIGTERM/SIGINT, stop gracefully. Returns the exit code (0)."""
        got = threading.Event()

        def on_signal(signum: int, _frame: Any) -> None:
            log(LOG, logging.INFO, "signal received", signal=signal.Signals(signum).name)
            got.set()

        old = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            while not got.wait(1.0):
                pass
        finally:
            self.stop()
            for s, h in old.items():
                signal.signal(s, h)
        return 0

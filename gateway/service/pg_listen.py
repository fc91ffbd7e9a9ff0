"""LISTEN on each PostgreSQL source's pg-notify channel and push every announced key at once."""

from __future__ import annotations

import logging
import threading

import psycopg
from psycopg import sql

from gateway.config import GatewayConfig
from gateway.logs import log
from gateway.service.pg_notify import NotifyTarget, conninfo, installed, is_postgres, target_for
from gateway.service.record_push import RecordPusher

LOG = logging.getLogger("gateway.pg_listen")


class PgListener:
    """One thread per source: LISTEN, collect a burst of keys, push each once, reconnect on failure."""

    def __init__(self, target: NotifyTarget, pusher: RecordPusher, poll: float = 1.0) -> None:
        self.target = target
        self.pusher = pusher
        self.poll = poll
        self.handled = 0
        self.connects = 0  # successful LISTENs (1 + reconnects)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def source(self) -> str:
        return self.target.source

    def start(self) -> PgListener:
        self._thread = threading.Thread(target=self._run, name=f"pg-listen-{self.source}", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 10.0) -> bool:
        """True once LISTEN is in effect (tests and the demo wait for this)."""
        return self._ready.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                with psycopg.connect(conninfo(self.target.url), autocommit=True, connect_timeout=10) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.target.channel)))
                    self.connects += 1
                    self._ready.set()
                    log(LOG, logging.INFO, "listening for changes", source=self.source, channel=self.target.channel)
                    delay = 1.0
                    while not self._stop.is_set():
                        keys = [n.payload for n in conn.notifies(timeout=self.poll)]
                        # A burst of updates to one row needs one push: keep first-seen order, drop repeats.
                        for key in dict.fromkeys(keys):
                            if self._stop.is_set():
                                break
                            self._push(key)
            except psycopg.Error as e:
                self._ready.clear()
                log(LOG, logging.WARNING, "pg-notify connection lost; reconnecting", source=self.source, error=str(e), retry_in=delay)
                if self._stop.wait(delay):
                    break
                delay = min(delay * 2, 60.0)

    def _push(self, key: str) -> None:
        try:
            out = self.pusher.push(self.source, key, operator="pg-notify")
            self.handled += 1
            log(LOG, logging.INFO, "pg-notify push", source=self.source, key=key, status=out.status)
        except Exception as e:  # one bad key must not end the listener
            log(LOG, logging.ERROR, "pg-notify push failed", source=self.source, key=key, error=str(e))


def listeners_for(config: GatewayConfig, pusher: RecordPusher) -> list[PgListener]:
    """A listener for every enabled PostgreSQL source whose notify trigger is installed."""
    out = []
    for src in config.sources:
        if not src.enabled:
            continue
        if missing := src.secret_problems():  # that source's syncs report it; the others still listen
            log(LOG, logging.WARNING, "source secrets missing; no pg-notify listener", source=src.name,
                error="; ".join(map(str, missing)))
            continue
        if not is_postgres(src) or not src.settings.get("table"):
            continue
        try:
            t = target_for(config, src.name)
        except Exception as e:
            log(LOG, logging.WARNING, "pg-notify not possible for source", source=src.name, error=str(e))
            continue
        try:
            if not installed(t):
                continue
        except psycopg.Error as e:
            # The database is down now: listen anyway; the listener reconnects until it is back
            # (LISTEN on a channel no trigger feeds costs one idle connection, nothing more).
            log(LOG, logging.WARNING, "cannot check pg-notify trigger; listening anyway", source=src.name, error=str(e))
        out.append(PgListener(t, pusher))
    return out

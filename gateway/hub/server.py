"""Serve the hub app with waitress (threads; one process per hub or several behind a proxy)."""

from __future__ import annotations

import gc
import logging

from flask import Flask
from waitress.server import create_server

from gateway.hub.config import HubConfig

LOG = logging.getLogger(__name__)


def make_server(app: Flask, host: str, port: int, threads: int = 8, **adjustments: object):  # type: ignore[no-untyped-def]
    """A waitress server bound now (port 0 picks a free one: read `.effective_port`); extra waitress adjustments by name."""
    # Waitress buffers bodies (to disk past a threshold). Its own cut-off sits well above the app's
    # limit so that an oversized body normally gets the app's JSON 413, not waitress's plain one.
    limit = 4 * int(app.config.get("MAX_CONTENT_LENGTH") or 0) + 65536
    # A 1000-record batch is ~1 MB: read it in 64 KB pieces rather than 8 KB, and keep bodies up to 4 MB
    # in memory (past 512 KB waitress spools them to a temporary file and reads them back); together
    # ~3 ms less CPU per 900 KB request (the app reads the whole body into memory anyway).
    adjustments = {"recv_bytes": 65536, "inbuf_overflow": 4 * 1024 * 1024, **adjustments}
    # Waitress drops X-Forwarded-* unless told otherwise; with [hub] trusted_proxies the app reads
    # X-Forwarded-For itself, and only from those peers (gateway.accounts.forwarded).
    hub = app.extensions.get("hub")
    adjustments.setdefault("clear_untrusted_proxy_headers", not (hub and hub.config.trusted_proxies))
    return create_server(app, host=host, port=port, threads=threads, max_request_body_size=limit,
                         ident="gateway-hub", **adjustments)


def tune_gc() -> None:
    """Fewer, cheaper cyclic-GC passes for a server whose requests each allocate ~10^5 short-lived objects.

    A 1000-record batch is that many dicts and strings alive for the whole request; with CPython's
    default thresholds (700, 10, 10) the collector ran ~1,100 times per 64k ingested records and took
    ~40% of the hub's CPU (bench/ingest.py: 3.1 of ~7.7 CPU-s), rescanning batches still in flight.
    The objects made at start-up (modules, SQLAlchemy metadata, the app) are frozen out of the scans.
    Reference counting still frees everything acyclic at once; only cycle collection is rarer.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def serve(config: HubConfig) -> None:
    from gateway.hub.app import create_app

    app = create_app(config)
    tune_gc()
    host, port = config.host_port
    server = make_server(app, host, port, config.threads)
    LOG.info("hub listening on http://%s:%s (database %s)", host, server.effective_port, app.extensions["hub"].engine.url)
    print(f"hub listening on http://{host}:{server.effective_port}", flush=True)
    server.run()

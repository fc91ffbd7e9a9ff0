"""Serve the hub app with waitress (threads; one process per hub or several behind a proxy)."""

from __future__ import annotations

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
    return create_server(app, host=host, port=port, threads=threads, max_request_body_size=limit,
                         ident="gateway-hub", clear_untrusted_proxy_headers=True, **adjustments)


def serve(config: HubConfig) -> None:
    from gateway.hub.app import create_app

    app = create_app(config)
    host, port = config.host_port
    server = make_server(app, host, port, config.threads)
    LOG.info("hub listening on http://%s:%s (database %s)", host, server.effective_port, app.extensions["hub"].engine.url)
    print(f"hub listening on http://{host}:{server.effective_port}", flush=True)
    server.run()

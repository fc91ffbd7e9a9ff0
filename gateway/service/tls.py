"""Serving the admin UI and local API over TLS (web.tls_cert / web.tls_key).

waitress speaks plain HTTP only, so with a certificate configured the service
uses the standard library's threaded WSGI server on a TLS socket instead. The
TLS handshake happens in each connection's own thread (with a timeout), so a
slow or hostile client cannot hold up others. Client addresses stay real, which
the login throttling relies on. Behind a TLS-terminating proxy instead, list it in
web.trusted_proxies: the login throttle and the audit log then take the client's
address from its X-Forwarded-For (gateway.accounts.forwarded), from that peer only.
"""

from __future__ import annotations

import logging
import socketserver
import ssl
import threading
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

LOG = logging.getLogger("gateway.web.tls")
HANDSHAKE_TIMEOUT = 10.0
REQUEST_TIMEOUT = 60.0


class _Handler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        LOG.debug("%s " + format, self.client_address[0], *args)


class _TlsWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = False  # server_close() waits for requests in progress
    block_on_close = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up in DNS (getfqdn); not wanted here.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)
        self.setup_environ()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(HANDSHAKE_TIMEOUT)
            request.do_handshake()
            request.settimeout(REQUEST_TIMEOUT)
        except (OSError, ssl.SSLError) as e:
            LOG.info("TLS handshake failed from %s: %s", client_address[0], e)
            self.shutdown_request(request)
            return
        super().process_request_thread(request, client_address)


def tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


class TlsServer:
    """Same surface as ThreadedServer: start(), stop(), port."""

    def __init__(self, app: Any, host: str, port: int, cert: Path, key: Path) -> None:
        ctx = tls_context(cert, key)
        self.server = _TlsWSGIServer((host, port), _Handler, bind_and_activate=True)
        self.server.set_app(app)
        self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True, do_handshake_on_connect=False)
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="web-tls", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> TlsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()  # stop accepting
        self.server.server_close()  # waits for requests in progress
        self._thread.join(5)

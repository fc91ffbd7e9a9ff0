"""A township hub served in-process (waitress in a thread), for the demo."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import requests


class HubServer:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.server: Any = None
        self.app: Any = None
        self.config: Any = None
        self._thread: threading.Thread | None = None
        self._closing = False

    def start(self, timeout: float = 15.0) -> HubServer:
        from gateway.hub.app import create_app
        from gateway.hub.config import load_hub_config
        from gateway.hub.server import make_server

        self.config = load_hub_config(self.config_path)
        self.app = create_app(self.config)
        host, port = self.config.host_port
        self.server = make_server(self.app, host, port, threads=4)
        self.server.adj.asyncore_loop_timeout = 0.2  # so stop() ends the serving thread promptly
        self._thread = threading.Thread(target=self._serve, name="demo-hub", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.url}/api/v1/hub", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the demo hub did not answer on {self.url}")
            time.sleep(0.1)

    def _serve(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self._closing:
                raise

    @property
    def url(self) -> str:
        host, port = self.config.host_port
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._closing = True
        if self.server is not None:
            self.server.close()
            self.server.task_dispatcher.shutdown(cancel_pending=False, timeout=10)
            self.server.asyncore.close_all(self.server._map)
        if self._thread is not None:
            self._thread.join(5)
        hub = self.app.extensions.get("hub") if self.app is not None else None
        if hub is not None:
            hub.engine.dispose()

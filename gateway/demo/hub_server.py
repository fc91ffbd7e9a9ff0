"""A township hub served in-process (waitress in a thread), for the demo."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from gateway.service.webserver import ThreadedServer


class HubServer:
    def __init__(self, config_path: Path) -> None:
        self.config_path = config_path
        self.server: ThreadedServer | None = None
        self.app: Any = None
        self.config: Any = None

    def start(self, timeout: float = 15.0) -> HubServer:
        from gateway.hub.app import create_app
        from gateway.hub.config import load_hub_config
        from gateway.hub.server import make_server

        self.config = load_hub_config(self.config_path)
        self.app = create_app(self.config)
        host, port = self.config.host_port
        self.server = ThreadedServer(make_server(self.app, host, port, threads=4), "demo-hub").start()
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

    @property
    def url(self) -> str:
        host, port = self.config.host_port
        return f"http://{host}:{port}"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None
        hub = self.app.extensions.get("hub") if self.app is not None else None
        if hub is not None:
            hub.engine.dispose()

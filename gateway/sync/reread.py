"""Open adapters kept between per-record re-reads (`sync_one`), so a local edit does not reconnect and re-reflect.

Opening a `sql` adapter on a server database means a new connection pool and a
reflection of the table: tens to hundreds of milliseconds on PostgreSQL, while
a clerk's per-record push should take a few. An adapter is reused for
REUSE_SECONDS while its source's settings are unchanged, and dropped after any
failure, so a changed table is reflected afresh. Only server databases are kept:
SQLite files (cheap to open) are opened every time, so a replaced or removed
file is noticed at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from gateway.adapters.base import Adapter
from gateway.config import SourceConfig

REUSE_SECONDS = 300.0


def reusable(sc: SourceConfig) -> bool:
    url = str(sc.settings.get("url") or "")
    return sc.type == "sql" and bool(url) and not url.startswith("sqlite")


class AdapterCache:
    """Per-source open adapters for re-reads; thread-safe."""

    def __init__(self, reuse_seconds: float = REUSE_SECONDS) -> None:
        self.reuse_seconds = reuse_seconds
        self._items: dict[str, tuple[str, float, Adapter]] = {}
        self._lock = threading.Lock()

    def get(self, sc: SourceConfig, open_adapter: Callable[[], Adapter]) -> Adapter:
        signature = repr((sc.type, sorted(sc.settings.items(), key=lambda kv: kv[0]), sc.lag_seconds))
        now = time.monotonic()
        with self._lock:
            item = self._items.get(sc.name)
            if item is not None and item[0] == signature and now - item[1] < self.reuse_seconds:
                return item[2]
            old = self._items.pop(sc.name, None)
        if old is not None:
            old[2].close()
        adapter = open_adapter()
        with self._lock:
            self._items[sc.name] = (signature, now, adapter)
        return adapter

    def drop(self, source: str) -> None:
        with self._lock:
            item = self._items.pop(source, None)
        if item is not None:
            item[2].close()

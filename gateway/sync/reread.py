"""Open adapters kept between per-record re-reads (`sync_one`), so a local edit does not reconnect and re-reflect.

Opening a `sql` adapter on a server database means a new connection pool and a
reflection of the table: tens to hundreds of milliseconds on PostgreSQL, while
a clerk's per-record push should take a few. An adapter is reused for
REUSE_SECONDS while its source's settings are unchanged, and dropped after any
failure, so a changed table is reflected afresh. SQLite files are kept apart
(FileAdapterCache) and only while the file is the same inode with the same
schema, so a replaced or removed file is noticed at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine

from gateway.adapters.base import Adapter
from gateway.config import GatewayConfig, SourceConfig
from gateway.mappings import CompiledMapping
from gateway.mappings.versions import latest_version
from gateway.store import mapping_versions
from gateway.store.prepared import scalar

REUSE_SECONDS = 300.0


def reusable(sc: SourceConfig) -> bool:
    url = str(sc.settings.get("url") or "")
    return sc.type == "sql" and bool(url) and not url.startswith("sqlite")


class _KeptAdapters:
    """Open adapters kept per source name, each with what it was opened for and when; thread-safe."""

    def __init__(self, reuse_seconds: float = REUSE_SECONDS) -> None:
        self.reuse_seconds = reuse_seconds
        self._items: dict[str, tuple[Any, float, Adapter]] = {}
        self._lock = threading.Lock()

    def drop(self, source: str) -> None:
        with self._lock:
            item = self._items.pop(source, None)
        if item is not None:
            item[2].close()


class AdapterCache(_KeptAdapters):
    """Per-source open adapters for re-reads of server databases."""

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


def sqlite_file(sc: SourceConfig) -> str | None:
    """The database file of a `sql` source on SQLite; None for anything else (or an in-memory database)."""
    url = str(sc.settings.get("url") or "")
    if sc.type != "sql" or not url.startswith("sqlite") or sc.settings.get("query"):
        return None
    try:
        from sqlalchemy.engine import make_url

        db = make_url(url).database
    except Exception:  # noqa: BLE001 - an unparsable URL is reported when the adapter opens it
        return None
    if not db or db == ":memory:" or db.startswith("file:") or make_url(url).query:
        return None
    return db


# The source file's own catalogue (not the state store): one text that changes with its schema.
_SCHEMA = "SELECT group_concat(type || ':' || name || ':' || coalesce(sql, ''), ';') FROM sqlite_master"


def _schema(adapter: Adapter) -> str:
    return str(scalar(adapter.engine, _SCHEMA))  # type: ignore[attr-defined]


def _latest_version(engine: Engine, source: str) -> int | None:
    """latest_version(engine, source), through the store's prepared statement where the store is SQLite."""
    if engine.dialect.name != "sqlite":
        return latest_version(engine, source)
    return mapping_versions.latest_version(engine, source)


class FileAdapterCache(_KeptAdapters):
    """Open adapters of SQLite-file sources, kept while the file is the same file with the same schema.

    A replaced file (another inode) or a changed schema (the reflected table
    would be stale) opens the adapter afresh; a removed file is not cached at
    all, so it is reported exactly as before. The checks cost a stat and one
    small query, against a new engine and a table reflection per re-read.
    """

    def get(self, sc: SourceConfig, path: str, open_adapter: Callable[[], Adapter]) -> Adapter | None:
        """The kept adapter, or a newly kept one; None when the file cannot be stat'ed (the caller opens and closes its own)."""
        try:
            st = os.stat(path)
        except OSError:
            self.drop(sc.name)
            return None
        base = (repr((sc.type, sorted(sc.settings.items(), key=lambda kv: kv[0]), sc.lag_seconds)), st.st_dev, st.st_ino)
        now = time.monotonic()
        with self._lock:
            item = self._items.get(sc.name)
        if item is not None and item[0][:3] == base and now - item[1] < self.reuse_seconds:
            try:
                if _schema(item[2]) == item[0][3]:
                    return item[2]
            except Exception:  # noqa: BLE001 - any trouble: open afresh below, which reports it properly
                pass
        self.drop(sc.name)
        adapter = open_adapter()
        try:
            schema = _schema(adapter)
        except Exception:  # noqa: BLE001 - not cached; the caller's own adapter reports what is wrong
            adapter.close()
            return None
        with self._lock:
            self._items[sc.name] = ((*base, schema), now, adapter)
        return adapter


_PLAIN_TRANSFORMS: bool | None = None


def _plain_transforms() -> bool:
    """True when every installed transform is the gateway's own (a plugin might read outside state when compiled)."""
    global _PLAIN_TRANSFORMS
    if _PLAIN_TRANSFORMS is None:
        from importlib.metadata import entry_points

        _PLAIN_TRANSFORMS = all(ep.value.startswith("gateway.") for ep in entry_points(group="gateway.transforms"))
    return _PLAIN_TRANSFORMS


def _file_stamp(path: object) -> tuple[int, int, int] | None:
    if not path:
        return None
    try:
        st = os.stat(str(path))
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class MappingCache:
    """Compiled mappings kept between per-record re-reads; thread-safe.

    A hit needs the same config and store objects, the same mapping text (read
    every time: a few microseconds, and no doubt about timestamps), the same
    category-code file, and the store's latest mapping version still being the
    one compiled against. Mappings with a `lookup` load their tables (a CSV
    file, another source) when compiled, so they are compiled every time, as
    are mappings on a gateway with plugin transforms.
    """

    def __init__(self) -> None:
        self._items: dict[str, tuple[object, object, str, object, CompiledMapping]] = {}
        self._lock = threading.Lock()

    def get(
        self, config: GatewayConfig, sc: SourceConfig, engine: Engine, compile_mapping: Callable[[], CompiledMapping]
    ) -> CompiledMapping:
        text = sc.mapping.read_text(encoding="utf-8") if sc.mapping is not None else None
        stamp = (sc.record_type, str(sc.mapping), _file_stamp(getattr(config, "category_codes", None)))
        with self._lock:
            item = self._items.get(sc.name)
        if (
            item is not None and item[0] is config and item[1] is engine and item[2] == text and item[3] == stamp
            and _latest_version(engine, sc.name) == item[4].version
        ):
            return item[4]
        mapping = compile_mapping()
        if text is not None and mapping.text == text and "lookup" not in text and _plain_transforms():
            with self._lock:
                self._items[sc.name] = (config, engine, text, stamp, mapping)
        else:
            with self._lock:
                self._items.pop(sc.name, None)
        return mapping

"""One sync per source at a time (see gateway.store.locks)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import RetriableError
from gateway.store.locks import file_lock


class SyncBusy(RetriableError):
    """Another sync of the same source (the scheduler, or a `gateway sync`) is running."""


@contextmanager
def source_lock(state_path: Path, source: str, wait: float = 0.0, poll: float = 0.1) -> Iterator[None]:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)

    def busy(path: Path) -> SyncBusy:
        return SyncBusy(f"数据源 {source} 正在同步中（{path} 已锁定），请稍后再试")

    with file_lock(Path(f"{state_path}.sync-{safe}.lock"), busy, wait, poll):
        yield

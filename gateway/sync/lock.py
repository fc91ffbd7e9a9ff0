"""One sync per source at a time: an advisory lock file beside the state store.

flock() is released by the kernel when the holder dies (kill -9 too), so a
crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import RetriableError


class SyncBusy(RetriableError):
    """Another sync of the same source (the scheduler, or a `gateway sync`) is running."""


@contextmanager
def source_lock(state_path: Path, source: str, wait: float = 0.0, poll: float = 0.1) -> Iterator[None]:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", source)
    path = Path(f"{state_path}.sync-{safe}.lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise SyncBusy(f"数据源 {source} 正在同步中（{path} 已锁定），请稍后再试") from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)

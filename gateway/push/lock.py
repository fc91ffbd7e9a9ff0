"""One pusher per gateway at a time: an advisory lock file beside the state store.

flock() locks belong to the open file, so two threads of one process exclude
each other as two processes do, and the kernel drops the lock when its holder
dies (kill -9 included): no stale lock to clean up by hand.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import RetriableError


class PushBusy(RetriableError):
    """Another push (the service's worker, or a `push-pending` run) holds the lock."""


@contextmanager
def push_lock(state_path: Path, wait: float = 0.0, poll: float = 0.05) -> Iterator[None]:
    path = Path(f"{state_path}.push.lock")
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
                    raise PushBusy(f"another push is running for this gateway ({path} is locked)") from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock

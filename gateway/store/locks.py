"""Advisory lock files beside the state store (one sync per source, one pusher per gateway).

flock() locks belong to the open file, so two threads of one process exclude each
other as two processes do, and the kernel drops the lock when its holder dies
(kill -9 included): there is never a stale lock to clean up by hand.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def file_lock(path: Path, busy: Callable[[Path], Exception], wait: float = 0.0, poll: float = 0.05) -> Iterator[None]:
    """Hold an exclusive flock on `path`; after `wait` seconds raise `busy(path)`."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except FileNotFoundError:
        # The folder is made only when missing: a mkdir per lock was a failing syscall on every
        # clerk's edit (the push lock is taken for each one).
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
                    raise busy(path) from None
                time.sleep(poll)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock

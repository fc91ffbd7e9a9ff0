"""One pusher per gateway at a time (see gateway.store.locks)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from gateway.errors import RetriableError
from gateway.store.locks import file_lock


class PushBusy(RetriableError):
    """Another push (the service's worker, or a `push-pending` run) holds the lock."""


@contextmanager
def push_lock(state_path: Path, wait: float = 0.0, poll: float = 0.05) -> Iterator[None]:
    def busy(path: Path) -> PushBusy:
        return PushBusy(f"another push is running for this gateway ({path} is locked)")

    with file_lock(Path(f"{state_path}.push.lock"), busy, wait, poll):
        yield

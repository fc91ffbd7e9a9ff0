"""The push worker: a thread that drains the outbox whenever woken, and every so often anyway.

The service calls `wake()` right after it enqueues (a local edit, a sync run),
so a change leaves at once instead of on the next timer tick. The idle poll
catches rows enqueued by another process (a `gateway sync` run from cron).
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from gateway.config import GatewayConfig
from gateway.errors import FatalError
from gateway.logs import log
from gateway.push.backoff import REFUSED_BACKOFF, Backoff
from gateway.push.client import PushSummary, push_pending
from gateway.push.lock import PushBusy

LOG = logging.getLogger(__name__)


class PushWorker:
    def __init__(
        self,
        config: GatewayConfig,
        engine: Engine,
        *,
        idle_poll: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.idle_poll = idle_poll
        self.backoff = backoff or Backoff()
        self.last_summary: PushSummary | None = None
        self.last_error: str | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> PushWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="push-worker", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        """Push now (or as soon as the batch in flight is done)."""
        self._wake.set()

    def stop(self, timeout: float | None = 30.0) -> bool:
        """Stop after the batch in flight; True when the thread ended within `timeout`.

        A batch still in flight after `timeout` stays `sent` in the store and is
        resent with the same id by the next run, so nothing is lost either way.
        """
        self._stop.set()
        self._wake.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            wait, wakeable = self.idle_poll, True
            try:
                summary = push_pending(self.config, self.engine, stop=self._stop, backoff=self.backoff)
                self.last_summary, self.last_error = summary, summary.refused or summary.last_error
                if summary.refused:
                    # A person must act; a wake-up from a local edit changes nothing.
                    wait, wakeable = summary.retry_in or REFUSED_BACKOFF, False
            except PushBusy:
                wait = 5.0  # a `push-pending` run is draining; look again soon
            except FatalError as e:
                self.last_error = str(e)
                log(LOG, logging.ERROR, "push worker cannot push", error=str(e))
                wait, wakeable = REFUSED_BACKOFF, False
            except Exception as e:  # keep the worker alive; the store holds everything for the next try
                self.last_error = repr(e)
                LOG.exception("push worker run failed")
                wait = min(self.backoff.next_delay(), 60.0)
            if wakeable:
                self._wake.wait(wait)
            else:
                self._stop.wait(wait)

"""The push worker: a thread that drains the outbox whenever woken, and every so often anyway.

The service calls `wake()` right after it enqueues (a local edit, each
committed chunk of a sync run), so a change leaves at once instead of on the
next timer tick, and a long sync's records travel while it is still reading.
The idle poll catches rows enqueued by another process (a `gateway sync` run
from cron). `finish()` drains what is left and ends the thread: how `gateway
sync` pushes alongside its own run.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Engine

from gateway.config import GatewayConfig
from gateway.errors import FatalError
from gateway.logs import log
from gateway.push.backoff import REFUSED_BACKOFF, Backoff
from gateway.push.client import PushClient, PushSummary
from gateway.push.lock import PushBusy
from gateway.store.db import utcnow

LOG = logging.getLogger(__name__)


class PushWorker:
    def __init__(
        self,
        config: GatewayConfig,
        engine: Engine,
        *,
        idle_poll: float = 30.0,
        backoff: Backoff | None = None,
        give_up_after: float | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.idle_poll = idle_poll
        self.backoff = backoff or Backoff()
        self.give_up_after = give_up_after  # per run; None: retry an unreachable hub until stopped
        self.last_summary: PushSummary | None = None
        self.last_error: str | None = None
        self.total = PushSummary()  # every run's counts added up
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._finishing = threading.Event()
        self._interrupt = threading.Event()  # ends even a wait that wake() does not (after a refusal)
        self._thread: threading.Thread | None = None

    def start(self) -> PushWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._finishing.clear()
            self._interrupt.clear()
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
        self._interrupt.set()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def finish(self) -> PushSummary:
        """Push what is left (one more run, begun after this call), end the thread and return the total.

        For a caller that woke the worker while it enqueued (`gateway sync`):
        the run begun here sees every row enqueued before the call.
        """
        self._finishing.set()
        self._wake.set()
        self._interrupt.set()
        if self._thread is not None:
            self._thread.join()
        return self.total

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        client: PushClient | None = None
        try:
            while not self._stop.is_set():
                last = self._finishing.is_set()
                self._wake.clear()
                if client is None:
                    client = self._client()
                self._once(client)
                if last:
                    return
        finally:
            if client is not None:
                client.close()

    def _client(self) -> PushClient | None:
        """One client (its HTTP sessions) for the worker's life; None when it cannot be made (logged)."""
        try:
            return PushClient(self.config, self.engine, backoff=self.backoff)
        except FatalError as e:
            self.last_error = str(e)
            log(LOG, logging.ERROR, "push worker cannot push", error=str(e))
            return None

    def _once(self, client: PushClient | None) -> None:
        """One drain of the outbox, then the wait until the next (unless finishing)."""
        wait, wakeable = self.idle_poll, True
        if client is None:
            wait, wakeable = REFUSED_BACKOFF, False
        else:
            try:
                started = utcnow()
                summary = client.drain(stop=self._stop, give_up_after=self.give_up_after)
                log(LOG, logging.INFO, "push run finished", started=started, **summary.as_dict())
                self.last_summary, self.last_error = summary, summary.refused or summary.last_error
                self.total.add(summary)
                if summary.refused:
                    # A person must act; a wake-up from a local edit changes nothing.
                    wait, wakeable = summary.retry_in or REFUSED_BACKOFF, False
            except PushBusy as e:
                self.last_error = str(e)
                wait = 5.0  # a `push-pending` run is draining; look again soon
            except FatalError as e:
                self.last_error = str(e)
                log(LOG, logging.ERROR, "push worker cannot push", error=str(e))
                wait, wakeable = REFUSED_BACKOFF, False
            except Exception as e:  # keep the worker alive; the store holds everything for the next try
                self.last_error = repr(e)
                LOG.exception("push worker run failed")
                wait = min(self.backoff.next_delay(), 60.0)
        if self._finishing.is_set():
            return  # the caller waits for the final run, not for a timer
        if wakeable:
            self._wake.wait(wait)
        else:
            self._interrupt.wait(wait)

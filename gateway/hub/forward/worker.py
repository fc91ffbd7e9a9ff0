"""The forwarder: drains the forward outbox to the upper hub, one forwarder per hub database.

Several hub workers may share one PostgreSQL database; each starts a forwarder thread, and only the one
holding the session advisory lock `FORWARD_LOCK` forwards (the others look again every few seconds, so
one takes over when the holder dies). A SQLite hub is one process; its `gateway-hub forward` command and
the running hub share a lock file beside the database. Upward batches leave one at a time, oldest first;
a failed one is retried (backoff 1 s doubling to 30 s) before anything newer leaves, so a department's
records reach the upper hub in the order this hub accepted them.
"""

from __future__ import annotations

import fcntl
import logging
import random
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from gateway.hub.forward import outbox
from gateway.hub.forward.attachments import FileSender
from gateway.hub.forward.outbox import Bind
from gateway.hub.forward.settings import UpstreamConfig
from gateway.hub.forward.upstream import Delivered, Refused, Retry, Upstream
from gateway.protocol.keys import Opener, read_private_key

LOG = logging.getLogger(__name__)
FORWARD_LOCK = 727468  # session advisory lock: the one forwarder of a PostgreSQL hub database
BACKOFF_CAP = 30.0
TAKEOVER_WAIT = 3.0  # seconds between looks at the lock held by another worker


@contextmanager
def forward_lock(engine: Engine) -> Iterator[tuple[bool, Bind]]:
    """Hold the database's forwarder lock while inside: yields (held, what the forwarder works through).

    PostgreSQL: the session holding the lock, so every step also proves the lock is still held (a lost
    session fails the step, and the forwarder starts over for the lock) and takes no pooled connection
    with its pre-ping. SQLite: the engine, beside a lock file."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            held = bool(conn.exec_driver_sql("SELECT pg_try_advisory_lock(%s)", (FORWARD_LOCK,)).scalar())
            conn.commit()
            try:
                yield held, conn
            finally:
                if held:
                    try:
                        conn.exec_driver_sql("SELECT pg_advisory_unlock(%s)", (FORWARD_LOCK,))
                        conn.commit()
                    except Exception:  # noqa: BLE001 - a lost session has dropped the lock with it
                        LOG.warning("forwarder lock: session lost before unlock")
        return
    path = Path(f"{engine.url.database}.forward.lock")
    with open(path, "a+b") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False, engine
            return
        try:
            yield True, engine
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


@dataclass
class Drained:
    delivered: int = 0  # upward batches receipted
    records: int = 0
    retried: int = 0  # failed attempts
    refused: int = 0  # batches parked by a 4xx
    last_error: str | None = None
    busy: bool = False  # another forwarder holds the lock


@dataclass
class Forwarder:
    engine: Engine
    upstream: UpstreamConfig
    hub_key_id: str
    opener: Opener | None = None  # [at_rest]'s open: the key file may be sealed under SM4
    files: FileSender | None = None  # the attachments store: files named by an upward batch go up before it
    wake: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        key = read_private_key(self.upstream.signing_key, opener=self.opener)
        self.client = Upstream(self.upstream.url, key, self.upstream.key_id, self.upstream.hub_key, self.upstream.timeout)
        self._thread: threading.Thread | None = None
        self.holding = False  # this process's forwarder holds the database's forwarder lock
        self.last_full = False  # the last upward batch was full: more are likely waiting, claim at once
        # The rest of the last claim's upward batches, oldest first, as stored: sent from here without reading
        # their bodies back. Only while this forwarder holds the lock and they go out as claimed; any failure
        # drops them (they wait in `forward_batches`, state `sent`, and `outbox.pending` reads them back).
        self._claimed: deque[outbox.ForwardBatch] = deque()
        self.handed = outbox.Handed()  # queued envelopes from this process's ingest (`hand`)

    def hand(self, queued: dict) -> None:
        """This process's ingest committed `queued`, a forward outbox row: the claim takes its envelopes from
        here. Kept only while this forwarder holds the lock (else another process's forwarder claims it)."""
        if self.holding and queued.get("body") is not None:
            self.handed.put(queued["batch_id"], queued["department"], int(queued["log_seq"]), queued["body"],
                            queued.get("leaves"))

    # --- one pass ---------------------------------------------------------
    def step(self, result: Drained, bind: Bind | None = None) -> bool | None:
        """Send the oldest upward batch awaiting a receipt, claiming new ones first when there is none.

        True: one was receipted; None: nothing to send; False: it failed (retry later)."""
        bind = bind if bind is not None else self.engine
        if not self._claimed:
            self._claimed.extend(outbox.pending(bind))
        if not self._claimed:
            dept = outbox.queued_department(bind)
            if dept is None:
                return None
            self._claimed.extend(outbox.claim(bind, dept, hub_key_id=self.hub_key_id, relay_key=self.upstream.key_id,
                                              confidential=self.upstream.confidential,
                                              batch_size=self.upstream.batch_size, handed=self.handed))
            if not self._claimed:
                return True  # everything claimed was superseded: look again
        fb = self._claimed.popleft()
        # Kept again only once this one is settled: after a failure or an exception they are read back.
        rest, self._claimed = self._claimed, deque()
        self.last_full = fb.records >= self.upstream.batch_size
        answer = (self.files and self.files.before(self.client, fb)) or self.client.post_batch(
            fb.forward_id, fb.department, fb.body, fb.leaves)
        if isinstance(answer, Delivered):
            outbox.settle(bind, fb, answer.receipt, answer.signature, answer.doc)
            self._claimed.extend(rest)
            result.delivered += 1
            result.records += fb.records
            return True
        result.last_error = answer.error
        if isinstance(answer, Refused):
            LOG.error("upper hub refused forwarded batch %s (%s records): %s", fb.forward_id, fb.records, answer.error)
            outbox.note_failure(bind, fb, answer.error, refused=True)
            result.refused += 1
            return True  # the next batch may be of another department; this one waits for the operator
        assert isinstance(answer, Retry)
        LOG.warning("forwarded batch %s not delivered, will retry: %s", fb.forward_id, answer.error)
        outbox.note_failure(bind, fb, answer.error, refused=False)
        result.retried += 1
        self._retry_after = answer.after
        return False

    def drain(self, retry_for: float = 0.0) -> Drained:
        """Forward everything queued, retrying a failure for up to `retry_for` seconds (the CLI's one pass)."""
        result = Drained()
        with forward_lock(self.engine) as (held, bind):
            if not held:
                result.busy = True
                return result
            self._claimed.clear()  # another forwarder may have sent them since
            deadline, delay = time.monotonic() + retry_for, 1.0
            while not self.stopping.is_set():
                done = self.step(result, bind)
                if done is None:
                    break
                if done is False:
                    if time.monotonic() + delay > deadline:
                        break
                    self.stopping.wait(self._pause(delay))
                    delay = min(delay * 2, BACKOFF_CAP)
                else:
                    delay = 1.0
        self.client.close()
        return result

    def _pause(self, delay: float) -> float:
        after = getattr(self, "_retry_after", None)
        return max(after or 0.0, random.uniform(delay / 2, delay))

    # --- the thread of `gateway-hub run` ------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="hub-forwarder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.client.close()

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                with forward_lock(self.engine) as (held, bind):
                    if held:
                        self.holding = True
                        self._claimed.clear()  # another forwarder may have sent them since
                        self.handed.clear()  # and claimed these
                        try:
                            self._forward_while_held(bind)
                        finally:
                            self.holding = False
            except Exception:  # noqa: BLE001 - a lost database must not end forwarding for good
                LOG.exception("forwarder failed; starting over")
            self.stopping.wait(TAKEOVER_WAIT)

    def _forward_while_held(self, bind: Bind) -> None:
        delay = 1.0
        while not self.stopping.is_set():
            self.wake.clear()
            done = self.step(Drained(), bind)
            if done is True:
                delay = 1.0
                if not self.last_full and self.upstream.linger:
                    # Batches keep arriving one by one: gather a few into the next upward batch rather than
                    # forward each alone (a signed request, a receipt and two commits each).
                    self.stopping.wait(self.upstream.linger)
                continue
            if done is None:
                if self.wake.wait(self.upstream.poll_interval) and self.upstream.linger:
                    # Woken by a stored batch: let the next few join it in one upward batch.
                    self.stopping.wait(self.upstream.linger)
                continue
            self.stopping.wait(self._pause(delay))
            delay = min(delay * 2, BACKOFF_CAP)

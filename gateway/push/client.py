"""The push client: drain the outbox batch by batch, or push given records now.

Store transactions are short and never span an HTTP call: claim a batch
(commit), send it, store its verified receipt (commit). So sync keeps
enqueueing while the hub is slow or down, and a kill at any moment leaves
either pending rows, a `sent` batch that is resent with the same id, or a
stored receipt.

A drain keeps up to `window` batches in flight: while the hub works on one,
the gateway claims and sends the next and stores the receipts as they come,
oldest first. Batches in flight together never share a record (see
gateway.push.batching), so per-record order holds; after any failure nothing
new is claimed until the failed batch is resent and receipted, as with one
batch at a time.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from gateway.config import GatewayConfig
from gateway.logs import log
from gateway.push.backoff import REFUSED_BACKOFF, Backoff
from gateway.push.batching import (
    Batch,
    RecordId,
    claim_batch,
    inflight_batch_ids,
    load_batch,
    note_attempt,
    note_failure,
    release_batch,
)
from gateway.push.deadletters import bury_locally
from gateway.push.lock import push_lock
from gateway.push.receipts import ReceiptResult, ReceiptUnverified, results_for, store_receipt
from gateway.push.transport import (
    BatchConflict,
    BatchRefused,
    BatchTooLarge,
    HubTransport,
    HubUnavailable,
    VerifiedReceipt,
)
from gateway.store.db import utcnow

LOG = logging.getLogger(__name__)

# Batches in flight at once on a drain. Two keep both sides busy (the gateway
# claims the next batch and stores the last receipt while the hub works on
# one); the hub serialises one department's writes anyway, so more buy little.
WINDOW = 2
# How long a drain holds the push lock before letting its window empty and the
# lock go, so a per-record push waiting for it gets in between.
HOLD_SECONDS = 1.0


@dataclass
class PushSummary:
    batches: int = 0  # batches whose receipt was verified and stored
    accepted: int = 0
    duplicate: int = 0
    stale: int = 0
    rejected: int = 0  # now dead letters
    returned: int = 0  # rows a receipt did not mention: back to pending
    failed_attempts: int = 0
    last_error: str | None = None
    refused: str | None = None  # the hub refused a batch outright: pushing paused, a person must act
    gave_up: bool = False  # the hub stayed unreachable for longer than give_up_after
    stopped: bool = False
    retry_in: float | None = None  # when the caller should try again (after a refusal)

    @property
    def delivered(self) -> int:
        return self.accepted + self.duplicate + self.stale

    def count(self, results: list[ReceiptResult]) -> None:
        self.batches += 1
        for r in results:
            setattr(self, r.status, getattr(self, r.status) + 1)

    def add(self, other: PushSummary) -> None:
        """Add another run's counts to these (the latest run's error, refusal and give-up win)."""
        for k in ("batches", "accepted", "duplicate", "stale", "rejected", "returned", "failed_attempts"):
            setattr(self, k, getattr(self, k) + getattr(other, k))
        self.last_error, self.refused, self.retry_in = other.last_error, other.refused, other.retry_in
        self.gave_up, self.stopped = other.gave_up, other.stopped

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["delivered"] = self.delivered
        return d


@dataclass
class Step:
    """One batch's attempt: its receipt results, or the error and how long to wait before the next try."""

    batch: Batch | None
    results: list[ReceiptResult] | None = None
    error: Exception | None = None
    delay: float = 0.0


def _after(seconds: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds)).isoformat(timespec="seconds")


def may_overlap(batch: Batch, in_flight: list[Batch]) -> bool:
    """Whether `batch` may travel together with the batches in flight: only when all of them hold one
    and the same record type, as no record refers to another of its own type. A batch of another type
    could refer to a record still on its way, which the hub would refuse as missing (物资编码不存在)."""
    kinds = {r.record_type for r in batch.rows}
    if len(kinds) != 1:
        return False
    return all({r.record_type for r in b.rows} == kinds for b in in_flight)


class PushClient:
    """Pushes this gateway's outbox to its hub. One HTTP session; use as a context manager."""

    def __init__(
        self,
        config: GatewayConfig,
        engine: Engine,
        *,
        backoff: Backoff | None = None,
        transport: HubTransport | None = None,
        lock_wait: float = 60.0,
        window: int | None = None,
    ) -> None:
        self.config = config
        self.engine = engine
        self.department = config.department_code
        self.transport = transport or HubTransport(config)
        # A given transport is one session: then one batch at a time, unless told otherwise.
        self.window = max(1, window if window is not None else (1 if transport is not None else WINDOW))
        self._sessions = [self.transport]  # one HTTP session per batch in flight
        self._idle = [self.transport]
        self._sessions_lock = threading.Lock()
        self._sender: ThreadPoolExecutor | None = None
        # The window opens after a receipt and shuts to one batch after a failure, so a hub
        # that is down meets one batch retried, not a window of them claimed and stuck `sent`.
        self._open = False
        self.backoff = backoff or Backoff()
        self.batch_size = config.hub.batch_size
        self.max_bytes = config.hub.max_batch_bytes
        self.lock_wait = lock_wait  # how long to wait for another pusher's batch in flight
        self.lock_poll = 0.05  # how often to look again meanwhile (a clerk's per-record push looks more often)

    def __enter__(self) -> PushClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._sender is not None:
            self._sender.shutdown(wait=True)
            self._sender = None
        for t in self._sessions:
            t.close()

    # -- one batch ---------------------------------------------------------

    def next_batch(self, only_ids: list[int] | None = None) -> Batch | None:
        """A batch left `sent` (resent unchanged) first, else a new one from pending rows."""
        for batch_id in inflight_batch_ids(self.engine, only_ids):
            batch = load_batch(self.engine, batch_id, self.department)
            if batch is not None:
                return batch
        return claim_batch(
            self.engine, self.department, batch_size=self.batch_size, max_bytes=self.max_bytes, only_ids=only_ids
        )

    def push_batch(self, batch: Batch) -> list[ReceiptResult]:
        """Send one batch once and store its verified receipt; raises the transport's errors."""
        if batch.resend:
            note_attempt(self.engine, batch.batch_id)
        return self.store(batch, self.send(batch))

    def store(self, batch: Batch, got: VerifiedReceipt) -> list[ReceiptResult]:
        return store_receipt(self.engine, batch, got.body, got.signature, got.doc, self.department)

    def send(self, batch: Batch) -> VerifiedReceipt:
        """POST one batch over an idle session (a new one when all are busy); thread-safe."""
        with self._sessions_lock:
            transport = self._idle.pop() if self._idle else None
        if transport is None:
            transport = HubTransport(self.config)
            with self._sessions_lock:
                self._sessions.append(transport)
        try:
            return transport.send(batch)
        finally:
            with self._sessions_lock:
                self._idle.append(transport)

    def _step(self, backoff: Backoff, only_ids: list[int] | None = None) -> Step:
        """Choose and send one batch holding the push lock; a failure is handled or noted, and returned.

        The lock is held for one batch only, so a per-record push can slip in
        between two batches of a long drain, and backoff pauses hold nothing.
        """
        with push_lock(self.config.state_path, wait=self.lock_wait, poll=self.lock_poll):
            batch = self.next_batch(only_ids)
            if batch is None:
                return Step(None)
            return self.attempt(batch, backoff)

    def attempt(self, batch: Batch, backoff: Backoff, sent: Future[VerifiedReceipt] | None = None) -> Step:
        """Send one batch (the caller holds the push lock); a failure is handled or noted, and returned.

        `sent`: the batch's request already under way (a pipelined drain); its answer is awaited here.
        """
        try:
            if sent is None:
                return Step(batch, self.push_batch(batch))
            return Step(batch, self.store(batch, sent.result()))
        except (HubUnavailable, ReceiptUnverified) as e:
            delay = backoff.next_delay(e.retry_after)
            note_failure(self.engine, batch.batch_id, getattr(e, "status", "unverified"), str(e), _after(delay))
            # An answer that is no valid receipt is a security matter, not a network hiccup: say so loudly.
            level = logging.ERROR if isinstance(e, ReceiptUnverified) else logging.WARNING
            log(LOG, level, "push failed; will retry", batch_id=batch.batch_id, error=str(e), retry_in=round(delay, 2))
            return Step(batch, error=e, delay=delay)
        except BatchRefused as e:
            note_failure(self.engine, batch.batch_id, str(e.status), str(e), _after(REFUSED_BACKOFF))
            log(LOG, logging.ERROR, "hub refused batch; pushing paused until a person acts", batch_id=batch.batch_id, error=str(e))
            return Step(batch, error=e, delay=REFUSED_BACKOFF)
        except BatchTooLarge as e:
            self._shrink(batch, e)
            return Step(batch, error=e)
        except BatchConflict as e:
            # Safe to re-batch: the hub deduplicates per record (version, seq) too.
            release_batch(self.engine, batch.batch_id, str(e))
            log(LOG, logging.ERROR, "batch id conflict at the hub; records re-batched", batch_id=batch.batch_id)
            return Step(batch, error=e)

    def _shrink(self, batch: Batch, e: BatchTooLarge) -> None:
        """413: halve the batch size for this client; a lone record that is still too large is a dead letter."""
        if len(batch.rows) > 1:
            release_batch(self.engine, batch.batch_id, str(e))
            self.batch_size = max(1, len(batch.rows) // 2)
            log(LOG, logging.WARNING, "hub says batch too large; sending smaller batches", batch_size=self.batch_size)
        else:
            bury_locally(self.engine, batch, "payload_too_large", "记录过大，中心拒收 / record too large for the hub (413)")

    # -- the outbox --------------------------------------------------------

    def drain(
        self,
        *,
        stop: threading.Event | None = None,
        max_batches: int | None = None,
        give_up_after: float | None = None,
    ) -> PushSummary:
        """Push until the outbox has nothing pending or sent, `stop` is set, or `max_batches` are receipted.

        A retriable failure is retried with backoff, the same batch each time,
        until it succeeds or the hub has been failing for `give_up_after`
        seconds (None: until `stop`). A refused batch ends the run (see
        PushSummary.refused); its rows stay `sent` for a later run.
        """
        stop = stop or threading.Event()
        summary = PushSummary()
        failing_since: float | None = None
        while not stop.is_set() and (max_batches is None or summary.batches < max_batches):
            budget = None if max_batches is None else max_batches - summary.batches
            steps = self._round(self.backoff, stop, budget)
            if not steps:
                break
            failed: Step | None = None
            returned = 0
            for step in steps:
                assert step.batch is not None
                if step.error is not None:
                    failed = failed or step
                    continue
                if step.results is None:
                    continue
                summary.count(step.results)
                n = len(step.batch.rows) - len(step.results)
                summary.returned += n
                returned += n
                log(
                    LOG, logging.INFO, "batch delivered", batch_id=step.batch.batch_id, records=len(step.batch.rows),
                    rejected=sum(1 for r in step.results if not r.delivered),
                )
            if failed is not None and isinstance(failed.error, BatchRefused):
                summary.refused = summary.last_error = str(failed.error)
                summary.retry_in = failed.delay
                break
            if failed is not None and isinstance(failed.error, HubUnavailable | ReceiptUnverified):
                summary.failed_attempts += 1
                summary.last_error = str(failed.error)
                now = time.monotonic()
                failing_since = failing_since or now
                if give_up_after is not None and now - failing_since >= give_up_after:
                    summary.gave_up = True
                    break
                stop.wait(failed.delay)
                continue
            if any(s.results is not None for s in steps):
                failing_since = None
                self.backoff.reset()
            if returned:
                # A receipt that skips records is a hub fault; pause rather than spin on it.
                stop.wait(self.backoff.next_delay())
        summary.stopped = stop.is_set()
        return summary

    def _round(self, backoff: Backoff, stop: threading.Event, budget: int | None) -> list[Step]:
        """Holding the push lock: resend one batch left `sent`, or send new batches, up to `window` in flight.

        New batches are claimed while the window has room, for up to
        HOLD_SECONDS; receipts are stored oldest first as they come. After a
        failure nothing new is claimed; the batches still in flight finish.
        Returns the steps in claim order (empty: nothing to send).
        """
        with push_lock(self.config.state_path, wait=self.lock_wait, poll=self.lock_poll):
            for batch_id in inflight_batch_ids(self.engine):
                batch = load_batch(self.engine, batch_id, self.department)
                if batch is not None:
                    step = self.attempt(batch, backoff)
                    self._open = step.error is None
                    return [step]
            steps: list[Step] = []
            inflight: deque[tuple[Batch, Future[VerifiedReceipt] | None]] = deque()
            busy: set[RecordId] = set()  # records in the batches in flight
            deadline = time.monotonic() + HOLD_SECONDS
            claiming = True
            try:
                while True:
                    while (
                        claiming and len(inflight) < (self.window if self._open else 1)
                        and not stop.is_set() and time.monotonic() < deadline
                        and (budget is None or len(steps) + len(inflight) < budget)
                    ):
                        batch = claim_batch(
                            self.engine, self.department, batch_size=self.batch_size, max_bytes=self.max_bytes, busy=busy
                        )
                        if batch is None:
                            claiming = bool(inflight)  # perhaps held back by a record in flight: look again later
                            break
                        busy |= batch.record_ids
                        if inflight and not may_overlap(batch, [b for b, _ in inflight]):
                            # It may refer to a record in flight (stock to its material, a capacity to its
                            # agreement): sent when those are receipted, so the hub stores them first.
                            inflight.append((batch, None))
                            claiming = False
                            break
                        sent = self._pool().submit(self.send, batch) if self.window > 1 else None
                        inflight.append((batch, sent))
                    if not inflight:
                        return steps
                    batch, sent = inflight.popleft()
                    step = self.attempt(batch, backoff, sent)
                    busy -= batch.record_ids
                    steps.append(step)
                    self._open = step.error is None
                    if step.error is not None:
                        claiming = False
            finally:
                # Only on an unexpected error: let the requests still out end before the lock goes
                # (their batches stay `sent` and are resent, oldest first, by the next round).
                for _, sent in inflight:
                    if sent is not None:
                        sent.exception()

    def _pool(self) -> ThreadPoolExecutor:
        if self._sender is None:
            self._sender = ThreadPoolExecutor(self.window, thread_name_prefix="push-send")
        return self._sender

    def quick_backoff(self) -> Backoff:
        return Backoff(base=0.5, cap=5.0, rng=self.backoff.rng)

    def push_ids(
        self, outbox_ids: Iterable[int], *, attempts: int = 3, first: Step | None = None, backoff: Backoff | None = None
    ) -> list[ReceiptResult]:
        """Push these outbox rows now (the per-record path) and return their verified receipt results.

        Rows already delivered return their stored results. Raises
        HubUnavailable/ReceiptUnverified after `attempts` tries, BatchRefused at
        once; the rows then stay queued for the push worker. `first` is an
        attempt the caller made already (a batch it claimed and sent holding
        the push lock), with `backoff` the one it used.
        """
        ids = sorted(set(outbox_ids))
        quick = backoff or self.quick_backoff()
        tries = 0
        left = set(ids)
        got: dict[int, ReceiptResult] = {}
        while left:
            step, first = (first, None) if first is not None else (self._step(quick, ids), None)
            if step.batch is None:
                break
            if isinstance(step.error, BatchRefused):
                raise step.error
            if step.error is None and step.results is not None and len(step.results) == len(step.batch.rows):
                # All of this batch is receipted: when that was every row asked for, no further
                # claim is needed (it would only take the lock and a write transaction to find nothing).
                left.difference_update(step.batch.outbox_ids)
                got.update((r.outbox_id, r) for r in step.results if r.outbox_id is not None)
            elif step.error is not None or step.results is not None:
                tries += 1  # also when a receipt skipped rows: do not loop on a faulty hub
                if tries >= attempts:
                    if isinstance(step.error, HubUnavailable | ReceiptUnverified):
                        raise step.error
                    break
                time.sleep(step.delay)
        if not left and len(got) == len(ids):
            return [got[i] for i in ids]  # just stored: the same as reading them back
        return results_for(self.engine, ids)


def push_pending(
    config: GatewayConfig,
    engine: Engine,
    *,
    stop: threading.Event | None = None,
    max_batches: int | None = None,
    give_up_after: float | None = None,
    backoff: Backoff | None = None,
    lock_wait: float = 60.0,
) -> PushSummary:
    """Drain the outbox once (see PushClient.drain). Raises PushBusy if another pusher keeps the lock past `lock_wait`."""
    with PushClient(config, engine, backoff=backoff, lock_wait=lock_wait) as client:
        started = utcnow()
        summary = client.drain(stop=stop, max_batches=max_batches, give_up_after=give_up_after)
        log(LOG, logging.INFO, "push run finished", started=started, **summary.as_dict())
        return summary

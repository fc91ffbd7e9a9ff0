"""The gateway side of one measured run, in its own process so its peak RSS is its own.

    python bench/gateway_side.py [--overlap] CONFIG SOURCE [SOURCE ...]

Syncs each source (extract, map, validate, detect changes, enqueue) and then
pushes the outbox to the hub until every row has a verified, stored receipt.
With --overlap a push thread drains the outbox while the sync is still
enqueueing (woken after each committed chunk), as a service's push worker can.
Prints one JSON line: seconds for sync and push, counts, and the peak RSS.
"""

from __future__ import annotations

import logging
import resource
import sys
import threading
import time

import orjson
from sqlalchemy import func, select

from gateway.config import load_gateway_config
from gateway.push import PushSummary, push_pending
from gateway.store import open_store
from gateway.store.tables import outbox, receipts
from gateway.sync import sync_source


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system): steadier than wall time on a shared machine."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


class OverlappedPush:
    """A thread that drains the outbox whenever woken, until told the sync is over and nothing is left."""

    def __init__(self, config, engine) -> None:  # type: ignore[no-untyped-def]
        self.config, self.engine = config, engine
        self.wake, self.done = threading.Event(), threading.Event()
        self.summaries: list[PushSummary] = []
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="overlapped-push", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                self.wake.wait(1.0)
                self.wake.clear()
                last = self.done.is_set()
                self.summaries.append(push_pending(self.config, self.engine, give_up_after=60))
                if last:
                    return
        except BaseException as e:  # noqa: BLE001 - reported by finish()
            self.error = e

    def finish(self) -> PushSummary:
        self.done.set()
        self.wake.set()
        self.thread.join()
        if self.error is not None:
            raise self.error
        total = PushSummary()
        for s in self.summaries:
            for k in ("batches", "accepted", "duplicate", "stale", "rejected", "returned", "failed_attempts"):
                setattr(total, k, getattr(total, k) + getattr(s, k))
            total.last_error = s.last_error or total.last_error
        return total


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    overlap = argv[0] == "--overlap"
    if overlap:
        argv = argv[1:]
    config = load_gateway_config(argv[0])
    engine = open_store(config.state_path)
    out: dict = {"sources": {}, "overlap": overlap}
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    pusher = OverlappedPush(config, engine) if overlap else None
    for name in argv[1:]:
        s = sync_source(config, name, engine, progress=(lambda _n: pusher.wake.set()) if pusher else None)
        out["sources"][name] = {k: v for k, v in s.as_dict().items() if k != "problems"}
        out["sources"][name]["first_problems"] = [p.as_dict() for p in s.problems[:3]]
    t1 = time.perf_counter()
    cpu_sync = cpu_seconds() - cpu0
    summary = pusher.finish() if pusher else push_pending(config, engine, give_up_after=60)
    t2 = time.perf_counter()
    with engine.connect() as conn:
        undelivered = conn.execute(select(func.count()).select_from(outbox).where(outbox.c.state != "delivered")).scalar()
        receipted = conn.execute(select(func.count()).select_from(receipts)).scalar()
    out.update(
        sync_s=t1 - t0, push_s=t2 - t1, total_s=t2 - t0, push=summary.as_dict(), undelivered=int(undelivered or 0),
        receipts=int(receipted or 0), peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        cpu_s=cpu_seconds() - cpu0, sync_cpu_s=cpu_sync,
    )
    print(orjson.dumps(out, default=str).decode(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The gateway side of one measured run, in its own process so its peak RSS is its own.

    python bench/gateway_side.py [--serial] CONFIG SOURCE [SOURCE ...]

Syncs each source (extract, map, validate, detect changes, enqueue) while the
push worker (gateway.push.worker, as `gateway run` and `gateway sync` use it)
drains the outbox to the hub, woken after each committed chunk; then lets the
worker push what is left, until every row has a verified, stored receipt.
With --serial the push starts only once the sync is over (the arrangement
before the worker pushed alongside the sync).
Prints one JSON line: seconds until the sync ended and from then until the last
receipt, counts, CPU seconds and the peak RSS.
"""

from __future__ import annotations

import logging
import resource
import sys
import time

import orjson
from sqlalchemy import func, select

from gateway.config import load_gateway_config
from gateway.process_memory import bound_memory
from gateway.push import push_pending
from gateway.push.worker import PushWorker
from gateway.store import open_store
from gateway.store.tables import outbox, receipts
from gateway.sync import sync_source


def cpu_seconds() -> float:
    """CPU time of this process so far (user + system): steadier than wall time on a shared machine."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.WARNING)
    bound_memory()  # as `gateway sync` does (gateway.cli.main)
    serial = argv[0] == "--serial"
    if serial:
        argv = argv[1:]
    config = load_gateway_config(argv[0])
    engine = open_store(config.state_path)
    out: dict = {"sources": {}, "overlap": not serial}
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    worker = None if serial else PushWorker(config, engine, idle_poll=3600, give_up_after=60).start()
    for name in argv[1:]:
        s = sync_source(config, name, engine, progress=(lambda _n: worker.wake()) if worker else None)
        out["sources"][name] = {k: v for k, v in s.as_dict().items() if k != "problems"}
        out["sources"][name]["first_problems"] = [p.as_dict() for p in s.problems[:3]]
    t1 = time.perf_counter()
    cpu_sync = cpu_seconds() - cpu0  # with the worker: its pushing so far included
    summary = worker.finish() if worker else push_pending(config, engine, give_up_after=60)
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

"""Issue 5 "done when": whatever the network and the hub do, the hub ends up holding exactly the source's records.

Real parts only: the hub is a real HTTP server on loopback (tests/fixtures/hub.py),
faults come from a real proxy between gateway and hub (tests/fixtures/faultproxy.py),
crashes are kill -9 of real processes.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, func, select

from gateway.push.backoff import Backoff
from gateway.push.batching import claim_batch
from gateway.push.client import PushClient, push_pending
from gateway.store.tables import outbox, outbox_batches
from tests.fixtures.faultproxy import Faults
from tests.fixtures.push import DEPARTMENT, Edit, GatewayDir, enqueue, material, mkey
from tests.push_checks import all_receipts_verify, expected_state, hub_accepted_twice, hub_state, outbox_states


def hub_batch_count(hub: Any) -> int:
    from gateway.hub.tables import batches

    with hub.engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(batches)).scalar_one())


def receipted_batches(engine: Engine) -> list[tuple[str, int]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(  # type: ignore[misc]
            select(outbox_batches.c.batch_id, outbox_batches.c.attempts).where(outbox_batches.c.state == "receipted")
        )]


def source_edits(n: int, seed: int) -> list[Edit]:
    """n new materials, then seeded changes and deletes of some of them, in enqueue order."""
    rng = random.Random(seed)
    edits = [Edit(mkey(i), 1, material(i)) for i in range(n)]
    seq = dict.fromkeys(range(n), 1)
    for i in rng.sample(range(n), n // 5):
        seq[i] += 1
        edits.append(Edit(mkey(i), seq[i], material(i, spec_model=f"型号{seq[i]}")))
    for i in rng.sample(range(n), n // 25):
        seq[i] += 1
        edits.append(Edit(mkey(i), seq[i], None))
    return edits


def test_seeded_hub_errors_dropped_and_cut_responses_end_in_the_source_state(
    gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any
) -> None:
    proxy = fault_proxy(live_hub.url, Faults(refuse=0.3, drop_response=0.1, truncate=0.05), seed=11).start()
    config = gateway_dir.for_hub(live_hub, url=proxy.url, batch_size=60)
    engine = gateway_dir.store()
    edits = source_edits(1500, seed=11)
    enqueue(engine, edits)

    summary = push_pending(config, engine, backoff=Backoff(base=0.005, cap=0.02, rng=random.Random(11)), give_up_after=60)
    assert not summary.gave_up and not summary.refused

    # Every kind of fault really happened ...
    for kind in ("refuse_500", "refuse_503", "refuse_429", "drop_response", "truncate"):
        assert proxy.stats[kind] > 0, proxy.stats
    # ... and the end state is the source, each record written once, each delivery backed by a verified receipt.
    assert outbox_states(engine) == {"delivered": len(edits)}
    assert hub_state(live_hub) == expected_state(edits)
    assert hub_accepted_twice(live_hub) == 0
    done = receipted_batches(engine)
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) == len(done)
    # A dropped response after the hub committed was answered, on resend, by the original receipt:
    # the hub processed exactly as many batches as the gateway built, though some were sent more than once.
    assert hub_batch_count(live_hub) == len(done)
    assert sum(a for _, a in done) > len(done)


def test_a_batch_sent_twice_and_batches_arriving_out_of_order_end_in_the_source_state(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    first = [Edit(mkey(i), 1, material(i)) for i in range(50)]
    second = [Edit(mkey(i), 2, material(i, spec_model="二型")) for i in range(50)]
    third = [Edit(mkey(i), 3, None) for i in range(10)]
    enqueue(engine, first)
    enqueue(engine, second)
    enqueue(engine, third)
    b1 = claim_batch(engine, DEPARTMENT, batch_size=50, max_bytes=10**7)
    b2 = claim_batch(engine, DEPARTMENT, batch_size=50, max_bytes=10**7)
    assert b1 is not None and b2 is not None

    with PushClient(config, engine) as client:
        newer = client.push_batch(b2)  # the later edits arrive first
        assert {r.status for r in newer} == {"accepted"}
        older = client.push_batch(b1)  # the earlier ones arrive late: acknowledged, not applied
        assert {r.status for r in older} == {"stale"}
        sent_again = client.transport.send(b2)  # the same batch once more
        assert orjson.loads(sent_again.body)["results"] == orjson.loads(client.transport.send(b2).body)["results"]
        summary = client.drain()  # and the rest (the deletes) in order
    assert summary.accepted == 10
    assert outbox_states(engine) == {"delivered": 110}
    assert hub_state(live_hub) == expected_state(first + second + third)
    assert hub_accepted_twice(live_hub) == 0
    assert hub_batch_count(live_hub) == 3


# --- kill -9 -------------------------------------------------------------------

N_RECORDS = 50_000


def _delivered(db: Path) -> int:
    import sqlite3

    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return c.execute("SELECT count(*) FROM outbox WHERE state='delivered'").fetchone()[0]
    finally:
        c.close()


def _push_process(config_path: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", "from gateway.cli import main; main()", "--config", str(config_path), "--log-level", "WARNING",
         "push-pending", "--retry-for", "60", "--backoff-cap", "0.3"],
        stdout=open(log, "ab"), stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


@pytest.mark.slow
def test_kill_9_of_gateway_and_hub_during_a_50k_push_loses_nothing_and_stores_nothing_twice(
    gateway_dir: GatewayDir, live_hub_process: Any
) -> None:
    hub = live_hub_process
    gateway_dir.for_hub(hub, batch_size=2000, timeout=20)
    engine = gateway_dir.store()
    db = gateway_dir.root / "state" / "gateway.db"
    edits = source_edits(40_000, seed=5)
    edits += [Edit(mkey(100_000 + i), 1, material(100_000 + i)) for i in range(N_RECORDS - len(edits))]
    assert len(edits) == N_RECORDS
    enqueue(engine, edits)
    engine.dispose()

    rng = random.Random(5)
    # Kill points: delivered-row counts at which to strike (+ a seeded delay that lands inside a batch).
    points = sorted(rng.sample(range(1_000, N_RECORDS - 2_000), 12))
    hub_kills = set(rng.sample(range(len(points)), 2))  # at these points the hub dies instead
    log = gateway_dir.root / "push.log"
    kills = {"gateway": 0, "hub": 0}
    proc: subprocess.Popen | None = None
    for n, point in enumerate(points):
        if proc is None or proc.poll() is not None:
            proc = _push_process(gateway_dir.config_path, log)
        deadline = time.monotonic() + 60
        while _delivered(db) < point and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.15))
        if n in hub_kills:
            hub.kill()
            kills["hub"] += 1
            time.sleep(rng.uniform(0.1, 0.5))  # the gateway meets a dead hub, backs off, retries ...
            hub.start()  # ... and carries on with the same process
        else:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            kills["gateway"] += 1
            proc = None
    assert kills["gateway"] >= 10 and kills["hub"] == 2

    # Restart until drained, no manual step in between.
    for _ in range(5):
        if proc is None or proc.poll() is not None:
            proc = _push_process(gateway_dir.config_path, log)
        if proc.wait(120) == 0:
            break
        proc = None
    assert proc is not None and proc.returncode == 0, log.read_text()[-3000:]

    engine = gateway_dir.store()
    assert outbox_states(engine) == {"delivered": N_RECORDS}
    assert hub_state(hub) == expected_state(edits)  # 0 lost
    assert hub_accepted_twice(hub) == 0  # 0 stored twice
    done = receipted_batches(engine)
    assert hub_batch_count(hub) == len(done)
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) == len(done)
    with engine.connect() as c:
        resent = c.execute(select(func.count()).select_from(outbox).where(outbox.c.attempts > 1)).scalar_one()
    assert resent > 0  # some batches were cut off by a kill and went again under the same id

"""Several batches in flight at once, and the push worker draining while a sync is still enqueueing.

What a department checks: the hub ends up holding exactly the source's records, each written once,
no edit of a record overtakes an earlier one of the same record (none comes back `stale`), and
every delivery is backed by a stored, verifiable receipt.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

from sqlalchemy import Engine, func, select

from gateway.push import record_receipts
from gateway.push.batching import claim_batch
from gateway.push.client import PushClient
from gateway.push.worker import PushWorker
from gateway.store.tables import outbox, outbox_batches
from tests.fixtures.push import DEPARTMENT, Edit, GatewayDir, enqueue, material, mkey
from tests.push_checks import all_receipts_verify, expected_state, hub_accepted_twice, hub_state, outbox_states


def edits_with_repeats(n: int, seed: int) -> list[Edit]:
    """n new materials, then two more rounds of changes to a seeded half of them, and some deletes."""
    rng = random.Random(seed)
    edits = [Edit(mkey(i), 1, material(i)) for i in range(n)]
    seq = dict.fromkeys(range(n), 1)
    for round_ in range(2):
        for i in sorted(rng.sample(range(n), n // 2)):
            seq[i] += 1
            edits.append(Edit(mkey(i), seq[i], material(i, spec_model=f"型号{round_}-{seq[i]}")))
    for i in sorted(rng.sample(range(n), n // 10)):
        seq[i] += 1
        edits.append(Edit(mkey(i), seq[i], None))
    return edits


def statuses(engine: Engine) -> dict[str, int]:
    """Receipt statuses of every outbox row, as the clerk's views read them."""
    with engine.connect() as c:
        ids = list(c.execute(select(outbox.c.id)).scalars())
        return dict(Counter(r.status for r in record_receipts.of_outbox(c, ids)))


def receipted_batches(engine: Engine) -> int:
    with engine.connect() as c:
        q = select(func.count()).select_from(outbox_batches).where(outbox_batches.c.state == "receipted")
        return int(c.execute(q).scalar_one())


def test_a_drain_with_batches_in_flight_keeps_every_records_edits_in_order(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub, batch_size=40)
    engine = gateway_dir.store()
    edits = edits_with_repeats(300, seed=3)
    enqueue(engine, edits)

    with PushClient(config, engine, window=3) as client:
        summary = client.drain()

    assert outbox_states(engine) == {"delivered": len(edits)}
    assert summary.accepted == len(edits) and summary.stale == 0
    # Every edit was applied, in order: none arrived after a later edit of its record.
    assert statuses(engine) == {"accepted": len(edits)}
    assert hub_state(live_hub) == expected_state(edits)
    assert hub_accepted_twice(live_hub) == 0
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) == receipted_batches(engine) == summary.batches


def test_a_batch_stops_before_a_record_that_is_still_in_flight(gateway_dir: GatewayDir) -> None:
    engine = gateway_dir.store()
    ids = enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(4)])
    ids += enqueue(engine, [Edit(mkey(1), 2, material(1, spec_model="二型")), Edit(mkey(9), 1, material(9))])

    first = claim_batch(engine, DEPARTMENT, batch_size=4, max_bytes=10**7)
    assert first is not None and first.outbox_ids == ids[:4]
    # The second edit of mkey(1) waits while the first is in flight; the batch holds nothing after it either.
    assert claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**7, busy=first.record_ids) is None
    # Once that batch is receipted, both remaining edits leave, in order.
    rest = claim_batch(engine, DEPARTMENT, batch_size=10, max_bytes=10**7)
    assert rest is not None and rest.outbox_ids == ids[4:]


def test_the_worker_pushes_while_enqueueing_goes_on_and_finish_delivers_the_rest(
    gateway_dir: GatewayDir, live_hub: Any
) -> None:
    config = gateway_dir.for_hub(live_hub, batch_size=50)
    engine = gateway_dir.store()
    edits = edits_with_repeats(400, seed=8)
    chunks = [edits[i : i + 100] for i in range(0, len(edits), 100)]
    worker = PushWorker(config, engine, idle_poll=3600).start()
    for chunk in chunks:  # as a sync commits chunk by chunk, waking the worker after each
        enqueue(engine, chunk)
        worker.wake()
    total = worker.finish()

    assert not worker.alive
    assert outbox_states(engine) == {"delivered": len(edits)}
    assert total.accepted == len(edits) and total.stale == 0 and not total.last_error
    assert hub_state(live_hub) == expected_state(edits)
    assert hub_accepted_twice(live_hub) == 0
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) == receipted_batches(engine) == total.batches


def test_gateway_sync_pushes_alongside_and_every_record_ends_with_a_verified_receipt(
    gateway_dir: GatewayDir, live_hub: Any, tmp_path: Any
) -> None:
    import orjson
    from click.testing import CliRunner

    from gateway.cli import cli
    from tests.test_sync_pipeline import STOCK_MAPPING, seed_source

    gateway_dir.for_hub(live_hub, batch_size=400)
    url = f"sqlite:///{tmp_path / 'src.db'}"
    seed_source(url, 3000).dispose()
    (gateway_dir.root / "stock.toml").write_text(STOCK_MAPPING, encoding="utf-8")
    with gateway_dir.config_path.open("a", encoding="utf-8") as f:
        f.write(f"""
[[sources]]
name = "kc"
type = "sql"
record_type = "stock"
mapping = "stock.toml"
strategy = "fingerprint"
[sources.settings]
url = "{url}"
table = "kc"
key_columns = ["id"]
chunk_size = 500
""")
    r = CliRunner().invoke(cli, ["--config", str(gateway_dir.config_path), "--log-level", "WARNING", "sync", "kc", "--json"])
    assert r.exit_code == 0, r.output
    out = orjson.loads(r.output[r.output.index("{\n"):])  # after the log lines: the indented summary
    assert out["new"] == 3000
    push = out["push"]  # nested as an object, not a JSON string
    assert push["status"] == "pushed"
    # The hub answered for every record (stock naming materials it does not know is rejected: a dead letter).
    assert push["accepted"] + push["rejected"] == 3000 and push["batches"] >= 3000 // 400
    engine = gateway_dir.store()
    states = outbox_states(engine)
    assert set(states) <= {"delivered", "dead"} and sum(states.values()) == 3000
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) == receipted_batches(engine) == push["batches"]

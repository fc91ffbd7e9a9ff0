"""The push client against a real hub on loopback: delivery, receipts, refusals, dead letters, the CLI."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import cli
from gateway.hub import registry
from gateway.protocol.keys import new_key_pair, public_key_text, read_private_key
from gateway.push.backoff import Backoff
from gateway.push.client import PushClient, push_pending
from gateway.push.deadletters import list_dead_letters
from gateway.push.worker import PushWorker
from gateway.store.tables import batch_receipts, outbox
from gateway.sync import enqueue_records
from tests.fixtures.hub import sample
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey
from tests.push_checks import (
    all_receipts_verify,
    expected_state,
    hub_accepted_twice,
    hub_state,
    outbox_state,
    outbox_states,
)

FAST = dict(give_up_after=0)  # one try per batch: these tests look at single outcomes


def fast_backoff() -> Backoff:
    return Backoff(base=0.01, cap=0.05, rng=random.Random(3))


def edits_mix(n: int) -> list[Edit]:
    """n new materials, then a changed version of every 5th, then a delete of every 7th."""
    out = [Edit(mkey(i), 1, material(i)) for i in range(n)]
    out += [Edit(mkey(i), 2, material(i, spec_model="二型")) for i in range(0, n, 5)]
    out += [Edit(mkey(i), 3, None) for i in range(0, n, 7)]
    return out


def run(config_path: Any, *args: str) -> Any:
    return CliRunner().invoke(cli, ["--config", str(config_path), *args], catch_exceptions=False)


def test_push_pending_makes_the_hub_equal_to_the_source_and_keeps_verifiable_receipts(gateway_dir: GatewayDir, live_hub: Any) -> None:
    gateway_dir.for_hub(live_hub, batch_size=400)
    engine = gateway_dir.store()
    edits = edits_mix(1500)
    enqueue(engine, edits)

    res = run(gateway_dir.config_path, "push-pending")
    assert res.exit_code == 0, res.output
    assert len(edits) == 2015  # 1500 new, 300 changed, 215 deleted
    assert "已送达 2015" in res.output
    assert outbox_states(engine) == {"delivered": len(edits)}
    assert hub_state(live_hub) == expected_state(edits)
    assert hub_accepted_twice(live_hub) == 0
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) >= 5

    res = run(gateway_dir.config_path, "deliveries")
    assert "已送达 delivered 2015" in res.output and "待推送 pending   0" in res.output
    # Nothing left: a second run sends nothing.
    res = run(gateway_dir.config_path, "push-pending", "--json")
    assert '"batches": 0' in res.output


def test_per_record_push_returns_the_verified_receipt_and_a_repeat_answers_from_the_store(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(3)])  # older backlog
    ids = enqueue(engine, [Edit(mkey(9), 1, material(9))])
    with PushClient(config, engine) as client:
        results = client.push_ids(ids)
        assert [(r.record_key, r.status, r.delivered) for r in results] == [(mkey(9), "accepted", True)]
        assert results[0].hub_seq is not None and results[0].log_head
        assert outbox_states(engine) == {"pending": 3, "delivered": 1}  # only that record went
        assert client.push_ids(ids) == results


def test_a_receipt_lost_with_its_unflushed_commit_is_fetched_again_unchanged(gateway_dir: GatewayDir, live_hub: Any) -> None:
    """The receipt's commit does not wait for the disk (the batch's claim did): after a power cut that
    lost it, the worker resends the still-`sent` batch and the hub answers with the receipt it signed."""
    from gateway.hub.tables import batches
    from gateway.store.tables import outbox_batches, receipts

    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    ids = enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(2)])
    with PushClient(config, engine) as client:
        first = client.push_ids(ids)
    with engine.connect() as c:
        (batch_id, body, signature), = c.execute(
            select(batch_receipts.c.batch_id, batch_receipts.c.body, batch_receipts.c.signature)
        ).all()
        # The connection goes back to the pool flushing every commit again.
        assert c.exec_driver_sql("PRAGMA synchronous").scalar_one() == 2
    with engine.begin() as c:  # the store as it was before the receipt's transaction
        c.execute(receipts.delete())
        c.execute(batch_receipts.delete())
        c.execute(outbox.update().values(state="sent"))
        c.execute(outbox_batches.update().values(state="sent", receipted_at=None))
    assert push_pending(config, engine, **FAST).batches == 1
    with engine.connect() as c:
        again = c.execute(select(batch_receipts.c.batch_id, batch_receipts.c.body, batch_receipts.c.signature)).all()
    assert again == [(batch_id, body, signature)]  # the very receipt the clerk was answered with
    with PushClient(config, engine) as client:
        # What the hub said of each record, unchanged (stored again, so received later).
        assert [r._replace(received_at=None) for r in client.push_ids(ids)] == [r._replace(received_at=None) for r in first]
    assert outbox_states(engine) == {"delivered": 2}
    with live_hub.engine.connect() as c:
        assert c.execute(select(batches.c.batch_id)).scalars().all() == [batch_id]
    assert hub_accepted_twice(live_hub) == 0


def test_a_rejected_record_becomes_a_dead_letter_and_retry_delivers_it_once_the_cause_is_gone(gateway_dir: GatewayDir, live_hub: Any) -> None:
    gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    depot, stock = sample("depot"), sample("stock", material_id="WZ-0077")
    enqueue(engine, [Edit("KU-01", 1, depot, "depot"), Edit("WZ-0077|KU-01|B1", 1, stock, "stock"),
                     Edit(mkey(5), 1, material(5, reserve_mode="9"))])
    res = run(gateway_dir.config_path, "push-pending")
    assert res.exit_code == 0, res.output
    assert "退回 2" in res.output
    assert outbox_states(engine) == {"delivered": 1, "dead": 2}

    listing = run(gateway_dir.config_path, "dead-letters", "list").output
    assert "WZ-0077|KU-01|B1" in listing and "material_exists" in listing
    assert "储备方式" in listing  # the hub names the field by its Chinese label
    by_key = {d.record_key: d for d in list_dead_letters(engine)}

    # The material reaches the hub; now the stock record can be retried as it was.
    enqueue(engine, [Edit("WZ-0077", 1, material(77, material_id="WZ-0077"))])
    assert run(gateway_dir.config_path, "dead-letters", "retry", str(by_key["WZ-0077|KU-01|B1"].id), "--by", "李四").exit_code == 0
    assert run(gateway_dir.config_path, "dead-letters", "resolve", str(by_key[mkey(5)].id), "--by", "李四", "--note", "源数据已改").exit_code == 0
    assert run(gateway_dir.config_path, "push-pending").exit_code == 0
    assert outbox_states(engine) == {"delivered": 3, "dead": 2}  # the first stock attempt stays dead as history
    assert hub_state(live_hub)[("stock", "WZ-0077|KU-01|B1")][0] == 1
    assert ("material", mkey(5)) not in hub_state(live_hub)
    assert "没有死信" in run(gateway_dir.config_path, "dead-letters", "list").output
    again = run(gateway_dir.config_path, "dead-letters", "retry", str(by_key[mkey(5)].id))
    assert again.exit_code == 1 and "已处理" in again.output


def test_a_receipt_signed_by_another_key_is_refused_and_nothing_counts_as_delivered(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub)
    new_key_pair(gateway_dir.root / "keys" / "impostor.key", gateway_dir.hub_public_key)  # the gateway now trusts another key
    engine = gateway_dir.store()
    edits = [Edit(mkey(i), 1, material(i)) for i in range(20)]
    enqueue(engine, edits)

    summary = push_pending(config, engine, backoff=fast_backoff(), **FAST)
    assert summary.gave_up and summary.delivered == 0 and "does not verify" in (summary.last_error or "")
    assert outbox_states(engine) == {"sent": 20}
    with engine.connect() as c:
        assert c.execute(select(batch_receipts)).first() is None
    # The hub did store them; with the right key the same batch is resent and its original receipt kept.
    assert len(hub_state(live_hub)) == 20
    gateway_dir.for_hub(live_hub)
    summary = push_pending(config, engine, backoff=fast_backoff(), **FAST)
    assert summary.accepted == 20 and outbox_states(engine) == {"delivered": 20}
    assert hub_accepted_twice(live_hub) == 0


def test_a_tampered_receipt_is_refused_until_an_intact_one_arrives(gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any) -> None:
    from tests.fixtures.faultproxy import Faults

    proxy = fault_proxy(live_hub.url, Faults(tamper=1.0)).start()
    config = gateway_dir.for_hub(live_hub, url=proxy.url)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(10)])
    summary = push_pending(config, engine, backoff=fast_backoff(), **FAST)
    assert proxy.stats["tamper"] == 1
    assert summary.delivered == 0 and "does not verify" in (summary.last_error or "")
    assert outbox_states(engine) == {"sent": 10}
    proxy.faults.tamper = 0.0
    summary = push_pending(config, engine, backoff=fast_backoff(), **FAST)
    assert summary.accepted == 10 and outbox_states(engine) == {"delivered": 10}
    assert all_receipts_verify(engine, gateway_dir.hub_public_key) == 1


def test_an_unregistered_key_pauses_pushing_keeps_the_records_and_flags_the_batch(gateway_dir: GatewayDir, live_hub: Any) -> None:
    gateway_dir.for_hub(live_hub)
    new_key_pair(gateway_dir.root / "keys" / "gateway.key", gateway_dir.root / "keys" / "gateway.pub")  # a new key ...
    gateway_dir.write_config(live_hub.url, key_id="dept001-9")  # ... not registered at the hub yet
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(5)])

    res = run(gateway_dir.config_path, "push-pending", "--retry-for", "0")
    assert res.exit_code == 2 and "unknown_key" in res.output
    assert outbox_states(engine) == {"sent": 5}
    status = run(gateway_dir.config_path, "deliveries").output
    assert "REFUSED" in status and "401" in status and "unknown_key" in status

    with live_hub.engine.begin() as conn:  # the hub operator registers the key
        registry.add_key(conn, "dept001", "dept001-9", public_key_text(read_private_key(gateway_dir.root / "keys" / "gateway.key").public_key()))
    res = run(gateway_dir.config_path, "push-pending")
    assert res.exit_code == 0 and outbox_states(engine) == {"delivered": 5}
    assert "REFUSED" not in run(gateway_dir.config_path, "deliveries").output


def test_hub_down_sync_keeps_enqueueing_and_the_worker_delivers_when_it_returns(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub, batch_size=50)
    engine = gateway_dir.store()
    live_hub.stop()
    worker = PushWorker(config, engine, idle_poll=60, backoff=Backoff(base=0.05, cap=0.3, rng=random.Random(5))).start()
    try:
        first = [Edit(mkey(i), 1, material(i)) for i in range(100)]
        enqueue(engine, first)
        worker.wake()
        deadline = time.monotonic() + 20
        while outbox_states(engine).get("sent", 0) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outbox_states(engine)["sent"] == 50
        # The worker is retrying a batch; the store still takes new work at once, from the
        # real local-edit enqueue path as from any other.
        more = [Edit(mkey(i), 2, material(i, spec_model="改")) for i in range(50)]
        t0 = time.monotonic()
        enqueue(engine, more)
        local = enqueue_records(engine, "local", "material", [(mkey(500 + i), material(500 + i)) for i in range(20)], "张三")
        assert time.monotonic() - t0 < 5  # not blocked behind the push (busy_timeout would be 30 s)
        assert local.new == 20 and outbox_states(engine).get("delivered", 0) == 0
        live_hub.start()
        worker.wake()
        deadline = time.monotonic() + 30
        while outbox_states(engine) != {"delivered": 170} and time.monotonic() < deadline:
            time.sleep(0.1)
        assert outbox_states(engine) == {"delivered": 170}
        assert hub_state(live_hub) == outbox_state(engine)
        assert {k: v for k, v in hub_state(live_hub).items() if int(k[1][3:]) < 500} == expected_state(first + more)
    finally:
        assert worker.stop(10)


def test_stop_lets_the_batch_in_flight_finish(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub, batch_size=100)
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(2000)])
    stop = threading.Event()
    got: dict[str, Any] = {}
    t = threading.Thread(target=lambda: got.setdefault("s", push_pending(config, engine, stop=stop)))
    t.start()
    while outbox_states(engine).get("delivered", 0) == 0:
        time.sleep(0.01)
    stop.set()
    t.join(30)
    states = outbox_states(engine)
    # Stopped between batches: no batch left half-done, the rest still pending.
    assert got["s"].stopped and states.get("sent", 0) == 0 and states["pending"] > 0
    assert states["delivered"] == 100 * got["s"].batches


def test_outbox_rows_carry_their_batch_and_attempts(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    ids = enqueue(engine, [Edit(mkey(1), 1, material(1))])
    push_pending(config, engine)
    with engine.connect() as c:
        row = c.execute(select(outbox.c.state, outbox.c.batch_id, outbox.c.attempts).where(outbox.c.id == ids[0])).one()
    assert row.state == "delivered" and row.batch_id and row.attempts == 1


def test_too_large_batches_are_split_and_a_lone_oversized_record_becomes_a_dead_letter(
    gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any
) -> None:
    from tests.fixtures.faultproxy import Faults

    proxy = fault_proxy(live_hub.url, Faults(limit_bytes=1500)).start()
    config = gateway_dir.for_hub(live_hub, url=proxy.url, batch_size=100)
    engine = gateway_dir.store()
    edits = [Edit(mkey(i), 1, material(i)) for i in range(16)]
    big = Edit(mkey(99), 1, material(99, usage_desc="很长的说明" * 40, spec_model="长" * 100, brand="牌" * 100, manufacturer="厂" * 100))
    edits.insert(8, big)
    enqueue(engine, edits)
    summary = push_pending(config, engine, **FAST)
    assert proxy.stats["too_large"] >= 2 and summary.accepted == 16
    assert outbox_states(engine) == {"delivered": 16, "dead": 1}
    (dl,) = list_dead_letters(engine)
    assert dl.record_key == mkey(99) and dl.reasons[0]["rule"] == "payload_too_large"
    assert hub_state(live_hub) == expected_state([e for e in edits if e is not big])


def test_wake_pushes_a_new_edit_at_once_not_at_the_next_poll(gateway_dir: GatewayDir, live_hub: Any) -> None:
    config = gateway_dir.for_hub(live_hub)
    engine = gateway_dir.store()
    worker = PushWorker(config, engine, idle_poll=3600).start()
    try:
        deadline = time.monotonic() + 10
        while worker.last_summary is None and time.monotonic() < deadline:
            time.sleep(0.02)  # the first (empty) run is over; the worker now sleeps for an hour
        enqueue(engine, [Edit(mkey(1), 1, material(1))])
        worker.wake()
        deadline = time.monotonic() + 10
        while outbox_states(engine) != {"delivered": 1} and time.monotonic() < deadline:
            time.sleep(0.02)
        assert outbox_states(engine) == {"delivered": 1}
    finally:
        assert worker.stop(10)


def test_tls_is_verified_against_the_configured_ca_and_never_skipped(gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any) -> None:
    import ssl

    from tests.fixtures.faultproxy import Faults
    from tests.fixtures.push import tls_files

    tls = tls_files(gateway_dir.root / "tls")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(tls["server_cert"], tls["server_key"])
    proxy = fault_proxy(live_hub.url, Faults(), tls=ctx).start()
    assert proxy.url.startswith("https://")
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(i), 1, material(i)) for i in range(3)])

    # Without the private CA the hub's certificate is not trusted: nothing is sent in clear, nothing delivered.
    config = gateway_dir.for_hub(live_hub, url=proxy.url)
    summary = push_pending(config, engine, **FAST)
    assert summary.delivered == 0 and "TLS" in (summary.last_error or "")
    assert outbox_states(engine) == {"sent": 3}

    config = gateway_dir.for_hub(live_hub, url=proxy.url, ca_file=str(tls["ca"]))
    summary = push_pending(config, engine, **FAST)
    assert summary.accepted == 3 and outbox_states(engine) == {"delivered": 3}


def test_a_hub_that_requires_a_client_certificate_gets_the_configured_one(gateway_dir: GatewayDir, live_hub: Any, fault_proxy: Any) -> None:
    import ssl

    from tests.fixtures.faultproxy import Faults
    from tests.fixtures.push import tls_files

    tls = tls_files(gateway_dir.root / "tls")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tls["ca"])
    ctx.load_cert_chain(tls["server_cert"], tls["server_key"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    proxy = fault_proxy(live_hub.url, Faults(), tls=ctx).start()
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])

    config = gateway_dir.for_hub(live_hub, url=proxy.url, ca_file=str(tls["ca"]))
    assert push_pending(config, engine, **FAST).delivered == 0
    config = gateway_dir.for_hub(
        live_hub, url=proxy.url, ca_file=str(tls["ca"]), client_cert=str(tls["client_cert"]), client_key=str(tls["client_key"])
    )
    assert push_pending(config, engine, **FAST).accepted == 1
    assert outbox_states(engine) == {"delivered": 1}


def test_after_a_refusal_the_worker_does_not_spin_even_when_woken(gateway_dir: GatewayDir, live_hub: Any) -> None:
    gateway_dir.for_hub(live_hub)
    config = gateway_dir.write_config(live_hub.url, key_id="dept001-8")  # not registered at the hub
    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    worker = PushWorker(config, engine, idle_poll=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while worker.last_error is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert "unknown_key" in (worker.last_error or "")
        for _ in range(5):
            worker.wake()
            time.sleep(0.1)
        with engine.connect() as c:
            from gateway.store.tables import outbox_batches

            (attempts,) = c.execute(select(outbox_batches.c.attempts)).one()
        assert attempts == 1 and outbox_states(engine) == {"sent": 1}
    finally:
        assert worker.stop(10)

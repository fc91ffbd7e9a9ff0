"""Three levels on loopback: a department's gateway → township hub (PostgreSQL) → county hub → city hub.

Real hubs over HTTP, the real gateway push client; compared key by key with what the department enqueued.
"""

from __future__ import annotations

import json
import time
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from gateway.cli import cli
from gateway.hub import tables
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey
from tests.push_checks import expected_state, hub_accepted_twice, hub_state


def push(gateway_dir: GatewayDir) -> None:
    res = CliRunner().invoke(cli, ["--config", str(gateway_dir.config_path), "push-pending"], catch_exceptions=False)
    assert res.exit_code == 0, res.output


def arrive(hub: Any, want: dict, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if hub_state(hub) == want:
            return
        time.sleep(0.05)
    got = hub_state(hub)
    lost = [k for k in want if k not in got]
    stale = [k for k in want if k in got and got[k] != want[k]]
    raise AssertionError(f"{hub.hub_key_id}: lost {len(lost)}, stale {len(stale)}, extra {len(set(got) - set(want))}")


def compare(hub: Any, want: dict) -> dict[str, int]:
    got = hub_state(hub)
    return {"lost": sum(k not in got for k in want), "stale": sum(k in got and got[k][0] < want[k][0] for k in want),
            "duplicated": hub_accepted_twice(hub), "extra": len(set(got) - set(want))}


def test_three_levels_edit_delete_and_county_outage(pg_url: str, hub_levels, gateway_dir: GatewayDir) -> None:
    township, county, city = hub_levels(database_urls=[pg_url, None, None], batch_size=200).hubs
    gateway_dir.for_hub(township, batch_size=100)
    gw = gateway_dir.store()

    # Edits at the department: 300 new materials, every 5th changed, every 7th deleted.
    edits = [Edit(mkey(i), 1, material(i)) for i in range(300)]
    edits += [Edit(mkey(i), 2, material(i, spec_model="二型")) for i in range(0, 300, 5)]
    edits += [Edit(mkey(i), 3, None) for i in range(0, 300, 7)]
    enqueue(gw, edits)
    push(gateway_dir)
    want = expected_state(edits)
    arrive(city, want)
    assert compare(city, want) == {"lost": 0, "stale": 0, "duplicated": 0, "extra": 0}

    # Provenance at the city: the department, then the township and the county that accepted it.
    with city.engine.connect() as conn:
        rec = conn.execute(select(tables.records).where(tables.records.c.key == mkey(1))).mappings().one()
    assert rec["department"] == "dept001" and rec["provenance"]["operator"] == "张三"
    assert [h["hub"] for h in rec["provenance"]["hubs"]] == ["township-hub", "county-hub"]
    assert rec["data"]["material_name"] == "折叠床1"
    with township.engine.connect() as conn:
        township_batches = set(conn.execute(select(tables.batches.c.batch_id)).scalars())
    with county.engine.connect() as conn:
        county_batches = set(conn.execute(select(tables.batches.c.batch_id)).scalars())
    # Each link names the batch in which that hub accepted the record: the gateway's, then the township's upward one.
    assert rec["provenance"]["hubs"][0]["batch_id"] in township_batches
    assert rec["provenance"]["hubs"][1]["batch_id"] in county_batches

    # The county goes down; the department goes on editing and the township goes on accepting.
    county.stop()
    more = [Edit(mkey(i), 4, material(i, material_name=f"折叠床{i}（更新）")) for i in range(1, 300, 3)]
    more += [Edit(mkey(i), 5, None) for i in range(2, 300, 11)]
    more += [Edit(mkey(i), 1, material(i)) for i in range(300, 350)]
    enqueue(gw, more)
    push(gateway_dir)
    all_edits = edits + more
    want = expected_state(all_edits)
    assert hub_state(township) == want
    time.sleep(1.0)
    assert hub_state(city) != want  # nothing got past the county meanwhile
    with township.engine.connect() as conn:
        waiting = conn.execute(select(tables.forward_outbox).where(tables.forward_outbox.c.state != "superseded")).mappings().all()
        sent = conn.execute(select(tables.forward_batches).where(tables.forward_batches.c.state == "sent")).all()
    assert sent or any(w["state"] == "queued" for w in waiting)

    county.start()
    arrive(city, want)
    for hub in (township, county, city):
        assert compare(hub, want) == {"lost": 0, "stale": 0, "duplicated": 0, "extra": 0}, hub.hub_key_id
    with city.engine.connect() as conn:
        rec = conn.execute(select(tables.records).where(tables.records.c.key == mkey(1))).mappings().one()
        gone = conn.execute(select(tables.records).where(tables.records.c.key == mkey(2))).mappings().one()
    assert rec["data"]["material_name"] == "折叠床1（更新）" and gone["deleted"] is True and gone["data"] is None
    # Every upward batch of both forwarding hubs got a verified receipt, each stored once above.
    for lower, upper in ((township, county), (county, city)):
        with lower.engine.connect() as conn:
            fbs = conn.execute(select(tables.forward_batches)).mappings().all()
        with upper.engine.connect() as conn:
            upper_ids = set(conn.execute(select(tables.batches.c.batch_id)).scalars())
        assert fbs and all(f["state"] == "delivered" and f["receipt"] for f in fbs)
        assert all(b'"accepted":{' in bytes(f["receipt"]) for f in fbs)  # compact (1.1): roots, not lists
        assert {f["forward_id"] for f in fbs} == upper_ids
    # The department proves its batches reached the county and the city: their signed receipts, walked up
    # through the township and the county, checked with each one's public key.
    res = CliRunner().invoke(cli, ["--config", str(gateway_dir.config_path), "receipts", "verify", "--upstream-key",
                                   str(county.hub_public_key_path), "--upstream-key", str(city.hub_public_key_path),
                                   "--json"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    levels = json.loads(res.output)["upstream"]
    assert [(v["level"], v["bad"], v["waiting"]) for v in levels] == [(1, [], 0), (2, [], 0)]
    assert levels[0]["reached"] + levels[0]["superseded"] == levels[0]["batches"] > 0
    assert levels[1]["reached"] == levels[1]["batches"] > 0


def _advisory_holders(engine: Any) -> int:
    from gateway.hub.forward.worker import FORWARD_LOCK

    with engine.connect() as conn:
        return conn.exec_driver_sql(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objid = %s "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())", (FORWARD_LOCK,)).scalar()


def test_two_township_workers_on_one_database_forward_once(pg_url: str, hub_levels) -> None:
    import dataclasses

    from gateway.demo.layout import free_port
    from tests.fixtures.hub import batch_body, record, sample

    township, county = hub_levels(("township", "county"), database_urls=[pg_url, None]).hubs
    second = dataclasses.replace(township, port=free_port(0), _server=None, _app=None, _thread=None, _engine=None,
                                 session=type(township.session)())
    second.start()
    try:
        assert _advisory_holders(township.engine) == 1  # one forwarder for the database, whichever worker
        for n in range(40):
            worker = (township, second)[n % 2]
            assert worker.post("/api/v1/batches", batch_body([record("material", sample("material", n))])).status_code == 200
        want = hub_state(township)
        arrive(county, want, 30)
        # The worker holding the lock stops: the other takes over.
        holding = [w.app.extensions["hub"].forwarder.holding for w in (township, second)]
        assert sorted(holding) == [False, True]
        holder = township if holding[0] else second
        other = second if holder is township else township
        holder.stop()
        for n in range(40, 50):
            assert other.post("/api/v1/batches", batch_body([record("material", sample("material", n))])).status_code == 200
        arrive(county, hub_state(other), 30)
        assert compare(county, hub_state(other)) == {"lost": 0, "stale": 0, "duplicated": 0, "extra": 0}
        with county.engine.connect() as conn:
            statuses = set(conn.execute(select(tables.receipts.c.status)).scalars())
        assert statuses == {"accepted"}  # no upward batch was sent by two forwarders
    finally:
        second.close()


def test_gateway_receipts_verify_checks_the_upper_hubs_receipts(hub_levels, gateway_dir: GatewayDir) -> None:
    township, county = hub_levels(("township", "county")).hubs
    gateway_dir.for_hub(township, batch_size=10)
    enqueue(gateway_dir.store(), [Edit(mkey(i), 1, material(i)) for i in range(30)])
    push(gateway_dir)
    arrive(county, hub_state(township))
    with township.engine.connect() as conn:
        deadline = time.monotonic() + 20
        while conn.execute(select(tables.forward_batches.c.state).where(
                tables.forward_batches.c.state != "delivered")).first() and time.monotonic() < deadline:
            time.sleep(0.05)
            conn.rollback()
    args = ["--config", str(gateway_dir.config_path), "receipts", "verify", "--upstream-key",
            str(county.hub_public_key_path)]
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "第 1 级上级回执 / upper-hub receipts, level 1: 批次 3：已到达 3（记录 30 条）" in res.output
    assert "无效 0" in res.output
    # With another key (not the county's), the same receipts do not verify.
    res = CliRunner().invoke(cli, [*args[:-1], str(township.hub_public_key_path)], catch_exceptions=False)
    assert res.exit_code == 1 and "上级回执签名无效" in res.output
    # Every receipt was compact (protocol 1.1): the department's from the township, the township's from the
    # county; the department's check recomputed the county's roots from the upward batches' records.
    with gateway_dir.store().connect() as conn:
        assert all(b'"accepted":{' in bytes(b) for (b,) in conn.exec_driver_sql("SELECT body FROM batch_receipts"))
    with township.engine.begin() as conn:
        f, fb = tables.forward_batches.c, tables.forward_bodies.c
        ups = conn.execute(select(f.forward_id, f.receipt, fb.body).join_from(
            tables.forward_batches, tables.forward_bodies, fb.forward_id == f.forward_id)).all()
        assert ups and all(b'"accepted":{' in bytes(r) for _, r, _ in ups)
        # A township that misstates what an upward batch carried is caught by the county's signed root.
        fid, _, body = ups[0]
        conn.execute(tables.forward_bodies.update().where(fb.forward_id == fid)
                     .values(body=bytes(body).replace(b'"seq":1,', b'"seq":2,', 1)))
    res = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert res.exit_code == 1 and "默克尔根" in res.output, res.output


def test_kill_9_of_the_forwarding_hub_loses_and_duplicates_nothing(hub_levels) -> None:
    from tests.fixtures.hub import batch_body, record, sample

    township, county = hub_levels(("township", "county"), process=True, batch_size=50).hubs
    county.stop()
    for b in range(20):
        recs = [record("material", sample("material", b * 50 + i + 1)) for i in range(50)]
        assert township.post("/api/v1/batches", batch_body(recs)).status_code == 200
    want = hub_state(township)
    county.start()
    # Kill the township while it drains (after its first upward batch is receipted, whatever comes next).
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with township.engine.connect() as conn:
            if conn.execute(select(tables.forward_batches).where(tables.forward_batches.c.state == "delivered")).first():
                break
        time.sleep(0.005)
    township.kill()
    with township.engine.connect() as conn:
        delivered = len(conn.execute(select(tables.forward_batches).where(
            tables.forward_batches.c.state == "delivered")).all())
    assert delivered < 20  # killed mid-drain
    township.start()
    arrive(county, want)
    assert compare(county, want) == {"lost": 0, "stale": 0, "duplicated": 0, "extra": 0}
    with county.engine.connect() as conn:
        statuses = set(conn.execute(select(tables.receipts.c.status)).scalars())
    assert statuses == {"accepted"}  # no record sent up twice under two batch ids

"""`gateway receipts verify` against a real hub: stored receipts checked offline, the hub's head held to them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select, update

from gateway.cli import cli
from gateway.hub import tables as hub_tables
from gateway.store.tables import batch_receipts, outbox, receipts
from tests.fixtures.hub import SUITE_PARAMS, LiveHub
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def verify(gw: GatewayDir, *args: str) -> Result:
    return run("--config", str(gw.config_path), "receipts", "verify", *args)


def push(gw: GatewayDir, first: int, n: int) -> None:
    enqueue(gw.store(), [Edit(mkey(i), 1, material(i)) for i in range(first, first + n)])
    res = run("--config", str(gw.config_path), "push-pending")
    assert res.exit_code == 0, res.output


def hub_head(hub: LiveHub) -> dict[str, Any]:
    with hub.engine.connect() as c:
        return dict(c.execute(select(hub_tables.log_head)).mappings().one())


@pytest.fixture(
    params=[(db, s.values[0]) for db in ("sqlite", "postgresql") for s in SUITE_PARAMS], ids=lambda p: f"{p[0]}-{p[1]}"
)
def any_hub(request: pytest.FixtureRequest, hub_factory: Any) -> LiveHub:
    db, suite = request.param
    if suite != "ed25519":
        pytest.importorskip("tongsuopy")
    return hub_factory(request.getfixturevalue("pg_url") if db == "postgresql" else None, suite=suite)


def test_verify_reports_every_receipt_ok_and_the_latest_signed_head(gateway_dir: GatewayDir, live_hub: LiveHub) -> None:
    gateway_dir.for_hub(live_hub, batch_size=10)
    push(gateway_dir, 0, 30)  # 3 batches: log entries 1-3
    res = verify(gateway_dir)
    assert res.exit_code == 0, res.output
    assert "批次回执 3 份：有效 3，无效 0；记录回执 30 条：有效 30，无效 0" in res.output
    head = hub_head(live_hub)
    assert head["log_seq"] == 3
    assert f"latest signed head held: log_seq 3 log_head {head['log_head']}" in res.output
    doc = orjson.loads(verify(gateway_dir, "--json").output)
    assert doc["ok"] and doc["latest_head"]["log_seq"] == 3 and doc["bad"] == []

    res = verify(gateway_dir, "--compare-hub")
    assert res.exit_code == 0, res.output
    assert f"hub's head: log_seq 3 log_head {head['log_head']}" in res.output and "一致 / consistent" in res.output
    assert hub_head(live_hub)["log_seq"] == 3  # asking for the head does not move it


def test_a_tampered_receipt_is_named_and_fails(gateway_dir: GatewayDir, suite_hub: LiveHub) -> None:
    gateway_dir.for_hub(suite_hub, batch_size=10)
    push(gateway_dir, 0, 20)
    engine = gateway_dir.store()
    with engine.begin() as c:
        batch_a, batch_b = c.execute(select(batch_receipts.c.batch_id).order_by(batch_receipts.c.batch_id)).scalars()
        # A record's receipt rewritten, as a clerk's view of it would show: "rejected" instead of "accepted".
        # (An accepted record has no receipts row of its own; a forged one is what its view would then show.)
        row = c.execute(select(outbox).where(outbox.c.record_key == mkey(5))).one()
        target = row.batch_id
        c.execute(receipts.insert().values(
            outbox_id=row.id, batch_id=target, record_type=row.record_type, record_key=row.record_key, seq=row.seq,
            status="rejected", reasons=None, hub_seq=None, hub_time=None, log_head=None, received_at="2026-12-04",
        ))
        other = batch_b if target == batch_a else batch_a
        # One batch receipt's signed body altered by a byte.
        body = c.execute(select(batch_receipts.c.body).where(batch_receipts.c.batch_id == other)).scalar_one()
        # (A compact receipt lists no accepted record: its count is what a forger would change.)
        forged = bytes(body).replace(b'"count":10', b'"count":9', 1)
        assert forged != bytes(body)
        c.execute(update(batch_receipts).where(batch_receipts.c.batch_id == other).values(body=forged))
    res = verify(gateway_dir)
    assert res.exit_code == 1, res.output
    assert "批次回执 2 份：有效 1，无效 1；记录回执 20 条：有效 9，无效 11" in res.output
    lines = res.output.splitlines()
    assert any(f"material/{mkey(5)}" in ln and target in ln and "status 'rejected' ≠ 'accepted'" in ln for ln in lines)
    assert any("批次回执" in ln and other in ln and "签名验证失败" in ln for ln in lines), res.output
    # The records of the forged batch have no trustworthy receipt either.
    assert sum("its batch receipt is bad" in ln for ln in lines) == 10


def test_a_hub_log_cut_back_to_an_older_signed_head_is_caught(
    gateway_dir: GatewayDir, any_hub: LiveHub, tmp_path: Path
) -> None:
    hub = any_hub
    gateway_dir.for_hub(hub, batch_size=10)
    push(gateway_dir, 0, 20)  # entries 1-2
    older = hub.get("/api/v1/log/head").json()  # a genuine signed head, as anyone the hub answered holds it
    assert older["log_seq"] == 2
    push(gateway_dir, 20, 20)  # entries 3-4
    heads = tmp_path / "heads.jsonl"
    res = verify(gateway_dir, "--export", str(heads))
    assert res.exit_code == 0 and "log_seq 4" in res.output, res.output
    assert len(heads.read_text(encoding="utf-8").splitlines()) == 4

    # The hub's operator (holding the hub's key or not) cuts the log back to entry 2 and its signed head.
    log = hub_tables.receipt_log
    with hub.engine.begin() as c:
        c.execute(log.delete().where(log.c.seq > 2))
        c.execute(
            update(hub_tables.log_head).values(log_seq=2, log_head=older["log_head"], signature=older["signature"])
        )
    hub_cfg = str(hub.config_path)
    alone = run("hub", "--config", hub_cfg, "verify-log")
    assert alone.exit_code == 0 and "intact: 2 entries" in alone.output  # the hub's own evidence looks whole

    res = verify(gateway_dir, "--compare-hub")
    assert res.exit_code == 1, res.output
    assert "截断 / TRUNCATED" in res.output and "hub reports its log at entry 2" in res.output
    assert "signed a head at entry 4" in res.output

    res = run("hub", "--config", hub_cfg, "verify-log", "--heads", str(heads))
    assert res.exit_code == 1, res.output
    assert "truncated: a gateway holds a signed head at entry 4, the log ends at 2" in res.output
    assert "first bad entry: 3" in res.output


def test_a_forged_hub_head_is_refused(gateway_dir: GatewayDir, suite_hub: LiveHub) -> None:
    gateway_dir.for_hub(suite_hub, batch_size=10)
    push(gateway_dir, 0, 10)
    with suite_hub.engine.begin() as c:  # moved on without the hub's key: its old signature does not cover it
        c.execute(update(hub_tables.log_head).values(log_seq=5))
    res = verify(gateway_dir, "--compare-hub")
    assert res.exit_code == 1, res.output
    assert "中心日志头签名无效" in res.output and "does not verify" in res.output


def test_two_signed_heads_for_one_log_entry_are_a_forked_log(gateway_dir: GatewayDir, suite_hub: LiveHub) -> None:
    gateway_dir.for_hub(suite_hub, batch_size=10)
    push(gateway_dir, 0, 10)  # entry 1
    with suite_hub.engine.begin() as c:  # the hub's log wiped and begun again: it signs another entry 1
        c.execute(hub_tables.receipt_log.delete())
        c.execute(update(hub_tables.log_head).values(log_seq=0, log_head="0" * 64, signature=None))
    push(gateway_dir, 10, 10)
    res = verify(gateway_dir)
    assert res.exit_code == 1, res.output
    assert "批次回执 2 份：有效 2，无效 0；记录回执 20 条：有效 20，无效 0" in res.output
    forked = [ln for ln in res.output.splitlines() if "the hub signed different heads for log entry 1" in ln]
    assert len(forked) == 2, res.output

"""被退回记录: a later accepted version closes earlier returns; no retry of a superseded version;
a 过期版本 answer is never shown as 已送达; the deliveries page and the returns page agree (issue 16)."""

from __future__ import annotations

import re

from sqlalchemy import select

from gateway.store import tables as t
from tests.fixtures.web import client_as, csrf_of

STOCK = {"material_id": "WZ-NEW", "depot_id": "KU-01", "quantity": "3", "unit": "张", "checked_date": "2026-01-02"}
DEPOT = {
    "depot_id": "KU-01",
    "depot_name": "县级救灾物资储备库",
    "depot_level": "3",
    "region_code": "350121",
    "address": "某县某路1号",
    "mgmt_unit_name": "某县应急管理局",
    "contact_name": "王五",
    "contact_phone": "13800138000",
}
MATERIAL = {
    "material_id": "WZ-NEW",
    "material_name": "折叠床",
    "category_code": "1010100",
    "unit": "张",
    "reserve_mode": "1",
}


def _save(c, record_type: str, data: dict[str, str]) -> str:  # type: ignore[no-untyped-def]
    return c.post(f"/records/{record_type}", data={**data, "csrf_token": csrf_of(c, "/records/")}).get_data(
        as_text=True
    )


def _open_returns(c) -> str:  # type: ignore[no-untyped-def]
    page = c.get("/deliveries/").get_data(as_text=True)
    return re.search(r'id="returns-link">被退回记录：待处理 <strong>(\d+)</strong>', page).group(1)


def test_later_accepted_version_closes_the_return(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")
    assert "汇聚平台拒收" in _save(c, "stock", STOCK)  # the hub does not know the material yet
    page = c.get("/deliveries/dead-letters").get_data(as_text=True)
    assert "被退回记录" in page and "死信" not in page and "WZ-NEW|KU-01" in page and "重新推送" in page
    assert _open_returns(c) == "1"
    assert re.search(
        r'id="returns-card">.*?<div class="v err">1</div>', c.get("/dashboard/").get_data(as_text=True), re.S
    )
    assert "汇聚平台已签收" in _save(c, "material", MATERIAL)
    assert "汇聚平台已签收" in _save(c, "depot", DEPOT)
    assert "汇聚平台已签收" in _save(c, "stock", {**STOCK, "quantity": "4"})  # seq 2 of the same key, accepted
    page = c.get("/deliveries/dead-letters").get_data(as_text=True)
    assert "没有待处理的被退回记录" in page
    assert "已被后续版本取代" in c.get("/deliveries/dead-letters?all=1").get_data(as_text=True)
    assert _open_returns(c) == "0"
    deliveries = c.get("/deliveries/").get_data(as_text=True)
    assert re.search(r'id="state-dead">.*?<div class="v ">0</div><div class="muted">已处理 1</div>', deliveries, re.S)
    with gw_site.extensions["gateway"].engine.connect() as conn:
        dl = conn.execute(select(t.dead_letters)).mappings().one()
    assert (dl["resolution"], dl["resolved_by"]) == ("superseded", "system")


def test_superseded_return_is_not_offered_for_retry(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")
    _save(c, "stock", STOCK)
    _save(c, "stock", {**STOCK, "quantity": "4"})  # rejected too: two open returns, seq 1 and seq 2
    page = c.get("/deliveries/dead-letters").get_data(as_text=True)
    assert page.count("重新推送</button>") == 1 and "已有更新的版本（序号 2），无需重推" in page
    engine = gw_site.extensions["gateway"].engine
    with engine.connect() as conn:
        first = conn.execute(select(t.dead_letters.c.id).where(t.dead_letters.c.seq == 1)).scalar_one()
    r = c.post(
        f"/deliveries/dead-letters/{first}/retry", data={"csrf_token": csrf_of(c, "/records/")}, follow_redirects=True
    )
    assert "已有更新的版本，不再重推旧版本" in r.get_data(as_text=True)
    with engine.connect() as conn:
        assert conn.execute(select(t.dead_letters.c.resolved_at).where(t.dead_letters.c.id == first)).scalar() is None
        assert conn.execute(select(t.outbox.c.id)).all().__len__() == 2  # nothing queued again


def test_stale_answer_is_never_shown_as_delivered(gw_site) -> None:  # type: ignore[no-untyped-def]
    from gateway.push import PushClient
    from gateway.sync import enqueue_records
    from gateway.web.records import push_now

    ui = gw_site.extensions["gateway"]
    row = {
        "material_id": "WZ-ST",
        "material_name": "帐篷",
        "category_code": "1010200",
        "unit": "顶",
        "reserve_mode": "1",
    }
    first = enqueue_records(ui.engine, "local", "material", [("WZ-ST", row)], operator="clerk").outbox_ids
    second = enqueue_records(
        ui.engine, "local", "material", [("WZ-ST", {**row, "material_name": "大帐篷"})], operator="clerk"
    ).outbox_ids
    with PushClient(ui.config, ui.engine) as client:
        assert [r.status for r in client.push_ids(second, attempts=2)] == ["accepted"]
    with gw_site.test_request_context():
        outcome = push_now(first)  # the older version reaches the hub after the newer one
    assert outcome["status"] == "stale" and "过期版本" in outcome["message"] and "签收" not in outcome["message"]
    c = client_as(gw_site, "viewer")
    history = c.get("/deliveries/history/material/WZ-ST").get_data(as_text=True)
    states = re.findall(r'<span class="badge (\w+)">([^<]+)</span>', history.split("<h2>回执</h2>")[0])
    assert states == [("delivered", "已送达"), ("stale", "过期版本（未采用）")]
    deliveries = c.get("/deliveries/").get_data(as_text=True)
    assert re.search(r'id="state-delivered">.*?<div class="v">1</div>', deliveries, re.S)
    assert re.search(r'id="state-stale">.*?<div class="v">1</div>', deliveries, re.S)
    # The CLI tells the same story: a stale answer is counted apart, not as delivered.
    import json

    from click.testing import CliRunner

    from gateway.cli import cli

    config = str(ui.config.state_path.parent.parent / "gateway.toml")
    r = CliRunner().invoke(cli, ["--config", config, "deliveries", "--json"])
    assert r.exit_code == 0, r.output
    counts = json.loads(r.output)["counts"]
    assert counts["delivered"] == 1 and counts["stale"] == 1
    text = CliRunner().invoke(cli, ["--config", config, "deliveries"]).output
    assert "已送达 delivered 1" in text and "过期版本（未采用）stale 1" in text

"""Forwarding between hub levels (docs/hub.md, "Levels"): township hub → county hub, real HTTP hubs on loopback."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from gateway.hub import tables
from gateway.hub.forward.upstream import batch_records
from gateway.protocol.keys import public_key_from_text, read_private_key
from gateway.protocol.receipts import expanded, verify_receipt
from gateway.protocol.suites import suite_of
from tests.fixtures.hub import LiveHub, batch_body, record, sample


def wait_for(check: Any, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not reached in {timeout}s: {check}")


def upward(h: LiveHub) -> list[Any]:
    """The hub's upward batches, read on a fresh connection: SQLite's BEGIN fixes a connection's snapshot
    at its first read, so a poll that kept one connection would never see the forwarder settle a batch."""
    f, fb = tables.forward_batches, tables.forward_bodies
    with h.engine.connect() as conn:
        return list(conn.execute(select(f, fb.c.body, fb.c.leaves).join(fb, fb.c.forward_id == f.c.forward_id)
                                 .order_by(f.c.claimed_at)).mappings().all())


def stored(h: LiveHub, department: str = "dept001") -> dict[tuple[str, str], dict[str, Any]]:
    with h.engine.connect() as conn:
        rows = conn.execute(select(tables.records).where(tables.records.c.department == department)).mappings()
        return {(r["type"], r["key"]): dict(r) for r in rows}


def upper_doc(fb: Any, upper: LiveHub) -> dict[str, Any]:
    """The upper hub's receipt for a stored upward batch, verified, its compact form expanded against the body."""
    key = public_key_from_text(upper.hub_public_key)
    doc = verify_receipt(bytes(fb["receipt"]), fb["signature"], key)
    return expanded(doc, batch_records(bytes(fb["body"])), suite_of(key).digest)


def test_accepted_batch_reaches_the_upper_hub_with_its_chain(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    body = batch_body([record("material", sample("material", 1)), record("material", sample("material", 2))])
    r = township.post("/api/v1/batches", body)
    assert r.status_code == 200
    batch_id = r.json()["batch_id"]
    at_county = wait_for(lambda: len(stored(county)) == 2 and stored(county))
    assert at_county[("material", "WZ-0001")]["data"]["material_name"] == "折叠床"
    chain = at_county[("material", "WZ-0001")]["provenance"]["hubs"]
    assert [(c["hub"], c["relay_key"], c["batch_id"]) for c in chain] == [("township-hub", "township-relay", batch_id)]
    assert at_county[("material", "WZ-0001")]["provenance"]["source"] == "test"  # the department's provenance kept
    # The township keeps the county's signed receipt for the upward batch that carried it.
    fb = wait_for(lambda: (rows := upward(township)) and rows[0]["state"] == "delivered" and rows[0])
    doc = verify_receipt(bytes(fb["receipt"]), fb["signature"], public_key_from_text(county.hub_public_key))
    # The forwarder asked for a compact receipt: the accepted records as a Merkle root over the upward batch.
    assert doc["protocol"] == "1.1" and doc["accepted"]["count"] == 2 and doc["results"] == []
    doc = upper_doc(fb, county)
    assert doc["department"] == "dept001" and [x["status"] for x in doc["results"]] == ["accepted", "accepted"]


def relay_post(h: LiveHub, below: LiveHub, body: bytes, key_id: str = "township-relay"):  # type: ignore[no-untyped-def]
    """POST `body` to `h` signed with the lower hub's relay key, as its forwarder would."""
    return h.post("/api/v1/batches", body, key=read_private_key(below.dir / "keys" / "upstream.key"), key_id=key_id)


def linked(rec: dict[str, Any], relay_key: str = "township-relay") -> dict[str, Any]:
    rec["provenance"]["hubs"] = [{"hub": "township-hub", "relay_key": relay_key, "batch_id": "b", "received_at": "t"}]
    return rec


def test_a_forward_for_a_department_outside_the_relays_area_is_refused(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    county.add_department("dept009")  # the county knows it, but the township's area does not hold it
    township.stop()  # its forwarder must not interfere
    forged = batch_body([linked(record("material", sample("material", 1), department="dept009"))], department="dept009")
    r = relay_post(county, township, forged)
    assert r.status_code == 403
    assert r.json()["error"] == "department_mismatch"
    assert "dept009" in r.json()["message"] and "township-relay" in r.json()["message"]
    assert stored(county, "dept009") == {}
    with county.engine.connect() as conn:
        entry = conn.execute(select(tables.receipt_log).order_by(tables.receipt_log.c.seq.desc())).mappings().first()
    assert (entry["kind"], entry["status"], entry["key_id"]) == ("refused", "department_mismatch", "township-relay")
    # Within its area the same relay key is accepted.
    ok = relay_post(county, township, batch_body([linked(record("material", sample("material", 1)))]))
    assert ok.status_code == 200 and ok.json()["results"][0]["status"] == "accepted"


def test_a_chain_the_request_cannot_vouch_for_is_rejected(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    # A department's gateway claiming to be a forward.
    r = township.post("/api/v1/batches", batch_body([linked(record("material", sample("material", 1)))]))
    res = r.json()["results"][0]
    assert res["status"] == "rejected" and res["reasons"][0]["rule"] == "provenance_hubs"
    township.stop()
    # A relay whose record's last link names another relay.
    r = relay_post(county, township, batch_body([linked(record("material", sample("material", 2)), "other-relay")]))
    res = r.json()["results"][0]
    assert res["status"] == "rejected" and res["reasons"][0]["rule"] == "provenance_hubs"
    # A relay without any chain.
    r = relay_post(county, township, batch_body([record("material", sample("material", 3))]))
    assert r.json()["results"][0]["status"] == "rejected"


def test_a_batch_without_accepted_records_is_not_queued(hub_levels) -> None:
    township, _county = hub_levels(("township", "county")).hubs
    bad = sample("material", 1, unit="")
    r = township.post("/api/v1/batches", batch_body([record("material", bad)]))
    assert r.json()["results"][0]["status"] == "rejected"
    with township.engine.connect() as conn:
        assert conn.execute(select(tables.forward_outbox)).all() == []


def test_upper_hub_down_queues_then_drains_exactly_once(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    county.stop()
    for n in range(1, 6):
        r = township.post("/api/v1/batches", batch_body([record("material", sample("material", n))]))
        assert r.status_code == 200  # the township keeps accepting while the county is down
    # An edit and a delete made during the outage.
    edited = sample("material", 1, material_name="折叠床（加宽）")
    assert township.post("/api/v1/batches", batch_body([record("material", edited, seq=2)])).status_code == 200
    assert township.post("/api/v1/batches", batch_body([record("material", None, seq=2, op="delete",
                                                              key="WZ-0002")])).status_code == 200
    with township.engine.connect() as conn:
        queued = conn.execute(select(tables.forward_outbox)).mappings().all()
    assert len(queued) == 7
    def tried_and_failed() -> list:  # the forwarder tries meanwhile, and fails (however loaded the machine)
        with township.engine.connect() as conn:
            rows = conn.execute(select(tables.forward_batches)).mappings().all()
        return rows if rows and all(t["attempts"] >= 1 for t in rows) else []

    tried = wait_for(tried_and_failed, 30)
    assert all(t["state"] == "sent" and "unreachable" in t["last_error"] for t in tried)
    county.start()
    want = {k: (r["seq"], r["version"], r["deleted"]) for k, r in stored(township).items()}

    def arrived() -> bool:
        got = {k: (r["seq"], r["version"], r["deleted"]) for k, r in stored(county).items()}
        return got == want

    wait_for(arrived, 40)
    assert stored(county)[("material", "WZ-0001")]["data"]["material_name"] == "折叠床（加宽）"
    assert stored(county)[("material", "WZ-0002")]["deleted"] is True
    # A batch the county stored but whose receipt was lost is sent again after the backoff (up to 30 s).
    fbs = wait_for(lambda: (rows := upward(township)) and all(r["state"] == "delivered" for r in rows) and rows, 45)
    with township.engine.connect() as conn:
        states = [r["state"] for r in conn.execute(select(tables.forward_outbox)).mappings()]
    # A batch whose records were all overwritten before it left is superseded: the later one carries them.
    assert set(states) <= {"claimed", "superseded"} and states.count("claimed") >= 1
    with county.engine.connect() as conn:
        history = conn.execute(select(tables.record_history).where(tables.record_history.c.department == "dept001")).mappings().all()
        statuses = [r["status"] for r in conn.execute(select(tables.receipts)).mappings()]
        county_batches = conn.execute(select(tables.batches)).mappings().all()
    # Every state that left arrived once: nothing answered duplicate or stale, no (key, seq) stored twice.
    assert statuses and set(statuses) == {"accepted"}
    assert len({(h["type"], h["key"], h["seq"]) for h in history}) == len(history)
    assert {b["batch_id"] for b in county_batches} == {f["forward_id"] for f in fbs}


def test_a_resent_upward_batch_gets_the_first_receipt(hub_levels) -> None:
    """A forwarder that died after sending, before storing the receipt, sends the same batch again."""
    from gateway.hub.forward import outbox
    from gateway.hub.forward.upstream import Delivered, Upstream

    township, county = hub_levels(("township", "county")).hubs
    township.app.extensions["hub"].close()  # no forwarder thread: this test drives it
    engine = township.engine
    r = township.post("/api/v1/batches", batch_body([record("stock", sample("stock", 1))]))
    assert r.json()["results"][0]["status"] == "rejected"  # no such material at the township
    three = [record("material", sample("material", 1)), record("depot", sample("depot")), record("stock", sample("stock", 1))]
    assert [x["status"] for x in township.post("/api/v1/batches", batch_body(three)).json()["results"]] == ["accepted"] * 3
    (fb,) = outbox.claim(engine, "dept001", hub_key_id="township-hub", relay_key="township-relay", batch_size=500)
    up = Upstream(county.url, read_private_key(township.dir / "keys" / "upstream.key"), "township-relay",
                  county.hub_public_key)
    first, again = up.post_batch(fb.forward_id, "dept001", fb.body), up.post_batch(fb.forward_id, "dept001", fb.body)
    assert isinstance(first, Delivered) and isinstance(again, Delivered)
    assert first.receipt == again.receipt and first.signature == again.signature
    # In the township's order: material and depot before the stock that names them.
    assert [(x["type"], x["status"]) for x in first.doc["results"]] == [
        ("material", "accepted"), ("depot", "accepted"), ("stock", "accepted")]
    assert len(stored(county)) == 3


def test_gateway_hub_forward_command_drains_the_queue(hub_levels) -> None:
    from click.testing import CliRunner

    from gateway.hub.cli import hub

    township, county = hub_levels(("township", "county")).hubs
    township.app.extensions["hub"].close()  # the command is the forwarder now
    county.stop()
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 1))]))
    runner = CliRunner()
    down = runner.invoke(hub, ["--config", str(township.config_path), "forward", "--retry-for", "0"])
    assert down.exit_code == 1, down.output
    assert "unreachable" in down.output
    county.start()
    up = runner.invoke(hub, ["--config", str(township.config_path), "forward", "--json"])
    assert up.exit_code == 0, up.output
    assert '"records":1' in up.output
    assert list(stored(county)) == [("material", "WZ-0001")]


def test_the_department_reads_the_upper_hubs_receipt_and_operators_see_the_chain(hub_levels) -> None:
    from gateway.hub.ui_tables import hub_account_store
    from tests.fixtures.web import PASSWORD, login

    township, county = hub_levels(("township", "county")).hubs
    r = township.post("/api/v1/batches", batch_body([record("material", sample("material", 1))]))
    batch_id = r.json()["batch_id"]
    wait_for(lambda: stored(county))

    def upstream_of(key: Any = None, key_id: Any = None) -> Any:
        return township.get(f"/api/v1/batches/{batch_id}/upstream", key=key, key_id=key_id)

    got = wait_for(lambda: (a := upstream_of().json())["upstream"] and a["upstream"][0]["state"] == "delivered" and a)
    (up,) = got["upstream"]
    key = public_key_from_text(county.hub_public_key)
    doc = verify_receipt(up["receipt"].encode("utf-8"), up["signature"], key)
    # Compact: the township lists the upward batch's records, and the county's root proves them.
    doc = expanded(doc, [tuple(x) for x in up["records"]], suite_of(key).digest)
    assert doc["results"][0]["key"] == "WZ-0001" and doc["results"][0]["status"] == "accepted"
    assert doc["batch_id"] == up["forward_id"] and up["upstream_key_id"] == "county-hub"
    # Another department learns nothing of it.
    _code, other_key, other_id = township.other
    assert upstream_of(other_key, other_id).status_code == 404
    # The county answers its relay for the upward batch (the township could fetch the city's receipts so).
    via = county.get(f"/api/v1/batches/{up['forward_id']}/upstream",
                     key=read_private_key(township.dir / "keys" / "upstream.key"), key_id="township-relay")
    assert via.status_code == 200 and via.json()["department"] == "dept001" and via.json()["forwarding"] is False

    # Operators: the county's record page names the township; the township's forwarding page holds the receipt.
    for h in (township, county):
        hub_account_store(h.engine).add("op", PASSWORD, "operator")
    c = county.app.test_client()
    assert login(c, "op", prefix="/ui").status_code == 302
    listing = c.get("/ui/records").get_data(as_text=True)
    assert "township-hub" in listing
    rid = listing.split("/ui/records/")[1].split('"')[0]
    page = c.get(f"/ui/records/{rid}").get_data(as_text=True)
    assert "来源与转发链" in page and "township-hub" in page and batch_id[:13] in page and "county-hub" in page
    t = township.app.test_client()
    assert login(t, "op", prefix="/ui").status_code == 302
    fwd = t.get("/ui/forwarding").get_data(as_text=True)
    assert "上级转发" in fwd and "已送达" in fwd and up["forward_id"][:13] in fwd
    detail = t.get(f"/ui/forwarding/{up['forward_id']}").get_data(as_text=True)
    assert "签名有效" in detail and "WZ-0001" in detail and batch_id[:13] in detail
    # From the receipts view, a batch's upward receipts are one link away.
    receipts = t.get("/ui/receipts").get_data(as_text=True)
    assert f"/ui/forwarding?batch_id={batch_id}" in receipts and "上级回执" in receipts
    only = t.get(f"/ui/forwarding?batch_id={batch_id}").get_data(as_text=True)
    assert up["forward_id"][:13] in only
    assert up["forward_id"][:13] not in t.get("/ui/forwarding?batch_id=nothing").get_data(as_text=True)


def test_upstream_and_relay_mistakes_are_reported_at_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from gateway.errors import ConfigError
    from gateway.hub.config import load_hub_config
    from gateway.protocol.keys import new_key_pair

    new_key_pair(tmp_path / "keys" / "hub.key", tmp_path / "keys" / "hub.pub")
    cfg = tmp_path / "hub.toml"
    cfg.write_text("""
[hub]
signing_key = "keys/hub.key"
key_id = "township-hub"

[[departments]]
code = "yjj"
name = "应急管理局"

[upstream]
url = "county.example"
signing_key = "keys/missing.key"
hub_key = "keys/county.pub"
batch_size = 0
colour = "red"

[[relays]]
key_id = "village-relay"
name = "某村"
public_key = "not a key"
departments = ["yjj", "nowhere"]
""", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_hub_config(cfg)
    problems = {p.path: p.message for p in e.value.problems}
    assert set(problems) >= {"upstream.url", "upstream.key_id", "upstream.signing_key", "upstream.hub_key",
                             "upstream.batch_size", "upstream.colour", "relays[0].public_key", "relays[0].departments[1]"}
    assert "http://host:port" in problems["upstream.url"] and "file not found" in problems["upstream.signing_key"]
    assert "'nowhere' is not listed under [[departments]]" in problems["relays[0].departments[1]"]


def test_relay_commands_register_change_and_revoke_a_lower_hub(hub_levels) -> None:
    from click.testing import CliRunner

    from gateway.hub.cli import hub

    township, county = hub_levels(("township", "county")).hubs
    township.app.extensions["hub"].close()
    run = CliRunner()
    cfg = ["--config", str(county.config_path)]
    pub = str(township.dir / "keys" / "upstream.pub")
    out = run.invoke(hub, [*cfg, "relay", "add", "township-relay", "某镇", pub, "--departments", "dept001"])
    assert out.exit_code == 0, out.output
    listed = run.invoke(hub, [*cfg, "relay", "list"]).output
    assert "relay township-relay\tactive\tdept001" in listed
    # The area is now dept001 only: a forward of dept002 is refused (the registry change counts at once).
    body = batch_body([linked(record("material", sample("material", 1), department="dept002"))], department="dept002")
    assert relay_post(county, township, body).json()["error"] == "department_mismatch"
    bad = run.invoke(hub, [*cfg, "relay", "add", "x-relay", "某村", pub, "--departments", "dept001,nowhere"])
    assert bad.exit_code != 0 and "nowhere" in bad.output
    clash = run.invoke(hub, [*cfg, "department", "key-add", "dept001", "township-relay", pub])
    assert clash.exit_code != 0 and "relay" in clash.output
    assert run.invoke(hub, [*cfg, "department", "key-revoke", "township-relay"]).exit_code == 0
    r = relay_post(county, township, batch_body([linked(record("material", sample("material", 1)))]))
    assert r.status_code == 403 and r.json()["error"] == "key_revoked"


def test_a_refused_upward_batch_is_parked_shown_and_sent_again_after_the_fix(hub_levels) -> None:
    from click.testing import CliRunner

    from gateway.hub.cli import hub

    township, county = hub_levels(("township", "county")).hubs
    township.app.extensions["hub"].close()  # the command forwards
    run = CliRunner()
    pub = str(township.dir / "keys" / "upstream.pub")
    county_cfg, township_cfg = ["--config", str(county.config_path)], ["--config", str(township.config_path)]
    assert run.invoke(hub, [*county_cfg, "relay", "add", "township-relay", "某镇", pub, "--departments", "dept001"]).exit_code == 0
    _code, other_key, other_id = township.other
    r = township.post("/api/v1/batches", batch_body([record("material", sample("material", 1), department="dept002")],
                                                    department="dept002"), key=other_key, key_id=other_id)
    assert r.json()["results"][0]["status"] == "accepted"
    out = run.invoke(hub, [*township_cfg, "forward", "--retry-for", "0"])
    assert out.exit_code == 2, out.output  # refused: the operator must act
    assert "被拒 / refused: 1" in out.output and "department_mismatch" in out.output
    with township.engine.connect() as conn:
        fb = conn.execute(select(tables.forward_batches)).mappings().one()
    assert fb["state"] == "refused" and "403" in fb["last_error"]
    assert stored(county, "dept002") == {}
    # The county widens the area; the township sends the parked batch again.
    assert run.invoke(hub, [*county_cfg, "relay", "add", "township-relay", "某镇", pub,
                            "--departments", "dept001,dept002"]).exit_code == 0
    out = run.invoke(hub, [*township_cfg, "forward", "--retry-refused"])
    assert out.exit_code == 0, out.output
    assert list(stored(county, "dept002")) == [("material", "WZ-0001")]


def test_the_county_bulletin_covers_the_townships_departments(hub_levels) -> None:
    from gateway.hub.ui_tables import hub_account_store
    from tests.fixtures.web import PASSWORD, login

    township, county = hub_levels(("township", "county")).hubs
    _code, other_key, other_id = township.other
    township.post("/api/v1/batches", batch_body([record("material", sample("material", n)) for n in (1, 2)]))
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 3), department="dept002")],
                                                department="dept002"), key=other_key, key_id=other_id)
    wait_for(lambda: len(stored(county)) == 2 and len(stored(county, "dept002")) == 1)
    hub_account_store(county.engine).add("op", PASSWORD, "operator")
    c = county.app.test_client()
    assert login(c, "op", prefix="/ui").status_code == 302
    page = c.get("/ui/report").get_data(as_text=True)
    assert "应急管理局" in page and "卫生健康委" in page
    # Both graded on the batches that reached the county through the township (none would be 未报送).
    assert page.count('<span class="badge ok">按时更新</span>') == 2 and '<span class="badge bad">未报送</span>' not in page
    # The county's 通报 sums its departments per township (the relay that forwards them).
    import re

    area = re.search(r'<table class="rank" id="areas">.*?</table>', page, re.S)
    assert area is not None and "三、分辖区汇总（下级中心）" in page and "四、各部门情况" in page
    cells = re.findall(r"<td[^>]*>(.*?)</td>", area.group(0), re.S)
    assert cells[:4] == ["township hub", "2", "3", "3"], cells  # 2 departments, 3 records, 3 updated
    township_page = township.app.test_client()
    hub_account_store(township.engine).add("op", PASSWORD, "operator")
    assert login(township_page, "op", prefix="/ui").status_code == 302
    own = township_page.get("/ui/report").get_data(as_text=True)
    assert 'id="areas"' not in own and "三、各部门情况" in own  # a township has no areas below it


def test_backfill_forwards_what_was_stored_before_forwarding_was_set_up(hub_levels) -> None:
    import json

    from click.testing import CliRunner
    from sqlalchemy import delete

    from gateway.hub.cli import hub

    township, county = hub_levels(("township", "county")).hubs
    township.app.extensions["hub"].close()  # no forwarder running: as before [upstream] was set
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 1)),
                                                 record("material", sample("material", 2))]))
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 2, material_name="大帐篷"), seq=2)]))
    with township.engine.begin() as conn:  # the queue as a hub without [upstream] left it: empty
        conn.execute(delete(tables.forward_outbox))
    runner = CliRunner()
    r = runner.invoke(hub, ["--config", str(township.config_path), "forward", "--backfill", "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["backfilled_batches"] == 2 and doc["records"] == 2
    at_county = stored(county)
    assert sorted(at_county) == [("material", "WZ-0001"), ("material", "WZ-0002")]
    assert at_county[("material", "WZ-0002")]["data"]["material_name"] == "大帐篷"  # the current state, once
    again = runner.invoke(hub, ["--config", str(township.config_path), "forward", "--backfill", "--json"])
    assert again.exit_code == 0 and json.loads(again.output)["backfilled_batches"] == 0


def test_confidential_fields_are_withheld_upward_unless_the_level_is_granted_them(hub_levels) -> None:
    township, county, city = hub_levels(("township", "county", "city")).hubs
    depot, stock = record("depot", sample("depot", 1)), record("stock", sample("stock", 1))
    body = batch_body([record("material", sample("material", 1)), depot, stock])
    assert {x["status"] for x in township.post("/api/v1/batches", body).json()["results"]} == {"accepted"}
    at_city = wait_for(lambda: len(stored(city)) == 3 and stored(city))
    at_county = stored(county)
    for above in (at_county, at_city):
        d, s = above[("depot", "KU-01")], above[("stock", "WZ-0001|KU-01|B1")]
        assert "contact_phone" not in d["data"] and d["data"]["contact_name"] == "李四"  # the rest arrives
        assert d["provenance"]["withheld"] == ["contact_phone"] and s["provenance"]["withheld"] == ["responsible_phone"]
        assert d["version"] == depot["version"]  # the department's version: receipts match across levels
    assert stored(township)[("depot", "KU-01")]["data"]["contact_phone"] == "13800138000"
    with county.engine.connect() as conn:
        assert {r for (r,) in conn.execute(select(tables.receipts.c.status))} == {"accepted"}

    # Granted: the township's [upstream] says confidential = true; the phone goes up with the next change.
    township.stop()
    text = township.config_path.read_text(encoding="utf-8")
    township.config_path.write_text(text.replace("[upstream]\n", "[upstream]\nconfidential = true\n"), encoding="utf-8")
    township.start()
    changed = record("depot", sample("depot", 1, contact_name="王五"), seq=2)
    assert township.post("/api/v1/batches", batch_body([changed])).status_code == 200
    got = wait_for(lambda: (d := stored(county)[("depot", "KU-01")])["seq"] == 2 and d)
    assert got["data"]["contact_phone"] == "13800138000" and "withheld" not in got["provenance"]


def test_only_a_relay_may_withhold_and_only_confidential_fields(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    rec = record("depot", {k: v for k, v in sample("depot", 1).items() if k != "contact_phone"})
    rec["provenance"]["withheld"] = ["contact_phone"]
    r = township.post("/api/v1/batches", batch_body([rec]))  # a department's gateway
    assert r.status_code == 200
    [res] = r.json()["results"]
    assert res["status"] == "rejected" and any(x["rule"] == "withheld" and "部门网关" in x["message"] for x in res["reasons"])
    relayed = linked(record("depot", {k: v for k, v in sample("depot", 2).items() if k != "depot_name"}))
    relayed["provenance"]["withheld"] = ["depot_name"]
    r = relay_post(county, township, batch_body([relayed]))
    [res] = r.json()["results"]
    assert res["status"] == "rejected" and any(x["rule"] == "withheld" and "depot_name" in x["message"] for x in res["reasons"])


def test_levels_under_the_sm2_suite_forward_and_receipt_with_sm2(hub_levels) -> None:
    township, county, city = hub_levels(suite="sm2-sm3").hubs
    r = township.post("/api/v1/batches", batch_body([record("material", sample("material", 1))]))
    assert r.status_code == 200  # the department signs with Ed25519; the township accepts both suites
    at_city = wait_for(lambda: stored(city))
    assert [h["hub"] for h in at_city[("material", "WZ-0001")]["provenance"]["hubs"]] == ["township-hub", "county-hub"]
    fb = wait_for(lambda: (rows := upward(township)) and rows[0]["state"] == "delivered" and rows[0])
    upper = public_key_from_text(county.hub_public_key)
    assert county.hub_public_key.startswith("sm2:")
    verify_receipt(bytes(fb["receipt"]), fb["signature"], upper)  # the county's SM2 receipt
    doc = upper_doc(fb, county)  # its Merkle root hashed with SM3
    assert [x["status"] for x in doc["results"]] == ["accepted"]
    # The township's relay key is SM2 (the county accepted its signed request), and the county's log
    # chain hashes with SM3 under its SM2 key.
    assert (township.dir / "keys" / "upstream.pub").read_text().startswith("sm2:")
    with county.engine.connect() as conn:
        assert conn.execute(select(tables.receipt_log.c.hash_alg).order_by(tables.receipt_log.c.seq.desc())).scalar() == "sm3"

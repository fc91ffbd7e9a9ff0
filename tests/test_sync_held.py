"""A stock record whose material this gateway refused is held back with the material's own reason,
and enqueued (after the material) as soon as the material maps cleanly."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import sqlalchemy as sa
from click.testing import CliRunner

from gateway.cli import cli
from gateway.config import load_gateway_config
from gateway.store import open_store
from gateway.store.tables import held_records, outbox
from gateway.sync import sync_source

MATERIAL = """
record_type = "material"
[fields]
material_id = { column = "bm", transforms = ["trim", "upper"] }
material_name = "mc"
category_code = "fl"
unit = { constant = "顶" }
reserve_mode = { constant = "1" }
"""

STOCK = """
record_type = "stock"
[fields]
material_id = { column = "wzbm", transforms = ["trim", "upper"] }
depot_id = "ckbm"
quantity = { column = "sl", transforms = ["number"] }
unit = { constant = "顶" }
checked_date = { constant = "2024-03-01" }
"""

CONFIG = """
[department]
code = "330106001"
name = "测试应急管理局"
[hub]
url = "http://127.0.0.1:9"
[keys]
signing_key = "gateway.key"
key_id = "k1"

[[sources]]
name = "wz"
type = "sql"
record_type = "material"
mapping = "material.toml"
[sources.settings]
url = "sqlite:///src.db"
table = "wz"
key_columns = ["bm"]

[[sources]]
name = "kc"
type = "sql"
record_type = "stock"
mapping = "stock.toml"
[sources.settings]
url = "sqlite:///src.db"
table = "kc"
key_columns = ["id"]
"""


def department(tmp: Path) -> Path:
    db = sqlite3.connect(tmp / "src.db")
    db.executescript(
        "create table wz (bm text primary key, mc text, fl text);"
        "insert into wz values ('WZ001', '帐篷', '1010100'), ('WZ002', '棉被', '10x0100');"
        "create table kc (id integer primary key, wzbm text, ckbm text, sl text);"
        "insert into kc values (1, 'WZ001', 'CK001', '5'), (2, ' wz002 ', 'CK001', '7');"
    )
    db.commit()
    db.close()
    (tmp / "gateway.key").write_text("unused")
    (tmp / "material.toml").write_text(MATERIAL, encoding="utf-8")
    (tmp / "stock.toml").write_text(STOCK, encoding="utf-8")
    (tmp / "gateway.toml").write_text(CONFIG, encoding="utf-8")
    return tmp / "gateway.toml"


def queued(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as c:
        return [tuple(r) for r in c.execute(sa.select(outbox.c.record_type, outbox.c.record_key).order_by(outbox.c.id))]


def test_stock_of_a_refused_material_is_held_then_sent_once_the_material_is_fixed(tmp_path: Path) -> None:
    cfg = load_gateway_config(department(tmp_path))
    engine = open_store(cfg.state_path)
    s = sync_source(cfg, "wz", engine)
    assert (s.new, s.rejected) == (1, 1)
    [refusal] = s.problems
    assert refusal.field == "category_code"

    s = sync_source(cfg, "kc", engine)
    assert (s.new, s.rejected) == (1, 1)
    assert queued(engine) == [("material", "WZ001"), ("stock", "WZ001|CK001|")], "the held stock record is not queued"
    [p] = s.problems
    assert p.rule == "held.material_refused" and p.field == "material_id" and p.value == "WZ002"
    assert p.message.startswith("物资 WZ002 未通过校验：") and refusal.message in p.message
    assert "key=2" in p.locator
    # Re-reading the stock source holds it again, still not queued, still with the material's reason.
    again = sync_source(cfg, "kc", engine)
    assert [q.rule for q in again.problems] == ["held.material_refused"]
    assert len(queued(engine)) == 2

    db = sqlite3.connect(tmp_path / "src.db")
    db.execute("update wz set fl = '1010200' where bm = 'WZ002'")
    db.commit()
    db.close()
    s = sync_source(cfg, "wz", engine)
    assert (s.new, s.rejected) == (1, 0)
    # At once, in the material's transaction and after it: the hub gets the material first.
    assert queued(engine)[2:] == [("material", "WZ002"), ("stock", "WZ002|CK001|")]
    assert any("1 条" in n for n in s.notes), s.notes
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(held_records)).scalar() == 0
        data = c.execute(sa.select(outbox.c.data).where(outbox.c.record_key == "WZ002|CK001|")).scalar()
    assert json.loads(data)["quantity"] in ("7", 7, "7.000")
    # The next stock sync finds it already sent: nothing new, nothing held.
    s = sync_source(cfg, "kc", engine)
    assert (s.new, s.changed, s.rejected) == (0, 0, 0)
    assert len(queued(engine)) == 4


def test_the_cli_lists_the_held_record_with_the_material_reason(tmp_path: Path) -> None:
    cfg = department(tmp_path)
    base = ["--config", str(cfg), "sync"]
    assert CliRunner().invoke(cli, [*base, "wz", "--no-push"]).exit_code == 0
    r = CliRunner().invoke(cli, [*base, "kc", "--no-push"])
    assert r.exit_code == 0, r.output
    assert "拒收行数：1" in r.output and "物资 WZ002 未通过校验：" in r.output


def test_a_material_the_hub_already_holds_does_not_hold_its_stock(tmp_path: Path) -> None:
    cfg = load_gateway_config(department(tmp_path))
    engine = open_store(cfg.state_path)
    db = sqlite3.connect(tmp_path / "src.db")
    db.execute("update wz set fl = '1010200' where bm = 'WZ002'")
    db.commit()
    sync_source(cfg, "wz", engine)  # WZ002 delivered in a valid version
    db.execute("update wz set fl = '10x0100' where bm = 'WZ002'")  # then edited into an invalid one
    db.commit()
    db.close()
    assert sync_source(cfg, "wz", engine).rejected == 1
    s = sync_source(cfg, "kc", engine)
    assert (s.new, s.rejected) == (2, 0), "the hub holds WZ002: its stock goes"


def test_a_v3_store_gains_the_refused_and_held_tables(tmp_path: Path) -> None:
    from gateway.store.db import LATEST, current_version

    path = tmp_path / "state.db"
    eng = open_store(path)
    with eng.begin() as c:  # what a store made before version 4 looks like
        c.exec_driver_sql("DROP TABLE held_records")
        c.exec_driver_sql("DROP TABLE refused_records")
        c.exec_driver_sql("DELETE FROM schema_version WHERE version > 3")
    eng.dispose()
    eng = open_store(path)
    with eng.connect() as c:
        assert current_version(c) == LATEST
        assert {"held_records", "refused_records"} <= set(sa.inspect(c).get_table_names())


def test_a_per_record_push_holds_and_releases_the_same_way(tmp_path: Path) -> None:
    from gateway.sync import sync_one

    cfg = load_gateway_config(department(tmp_path))
    engine = open_store(cfg.state_path)
    sync_source(cfg, "wz", engine)
    one = sync_one(cfg, "kc", "2", engine)
    assert one.op is None and [p.rule for p in one.problems] == ["held.material_refused"]
    assert "物资 WZ002 未通过校验：" in one.problems[0].message
    assert ("stock", "WZ002|CK001|") not in queued(engine)
    db = sqlite3.connect(tmp_path / "src.db")
    db.execute("update wz set fl = '1010200' where bm = 'WZ002'")
    db.commit()
    db.close()
    assert sync_one(cfg, "wz", "WZ002", engine).op == "upsert"  # a clerk's fix, pushed at once
    assert queued(engine)[-2:] == [("material", "WZ002"), ("stock", "WZ002|CK001|")]


def test_through_a_live_hub_the_held_stock_arrives_after_its_fixed_material(gateway_dir, live_hub) -> None:  # type: ignore[no-untyped-def]
    from gateway.hub.tables import records as hub_records

    gateway_dir.for_hub(live_hub)
    linked = gateway_dir.config_path.read_text(encoding="utf-8")
    root = gateway_dir.root
    department(root)  # the sources' database and mappings, beside the hub-linked config
    # Not physically held (协议储备): the stock needs no depot, so the material is the only reference.
    (root / "material.toml").write_text(MATERIAL.replace('{ constant = "1" }', '{ constant = "2" }'), encoding="utf-8")
    (root / "stock.toml").write_text(STOCK.replace('depot_id = "ckbm"\n', ""), encoding="utf-8")
    sources = CONFIG[CONFIG.index("[[sources]]") :]
    gateway_dir.config_path.write_text(linked + sources, encoding="utf-8")
    base = ["--config", str(gateway_dir.config_path), "sync"]

    def at_hub() -> set[tuple[str, str]]:
        with live_hub.engine.connect() as c:
            return {(t, k) for t, k in c.execute(sa.select(hub_records.c.type, hub_records.c.key))}

    for name in ("wz", "kc"):
        r = CliRunner().invoke(cli, [*base, name, "--push-retry-for", "5"])
        assert r.exit_code == 0, r.output
    assert at_hub() == {("material", "WZ001"), ("stock", "WZ001||")}
    assert '"rejected": 0' in r.output, "nothing was sent for the hub to refuse"
    db = sqlite3.connect(root / "src.db")
    db.execute("update wz set fl = '1010200' where bm = 'WZ002'")
    db.commit()
    db.close()
    r = CliRunner().invoke(cli, [*base, "wz", "--push-retry-for", "5"])
    assert r.exit_code == 0, r.output
    assert at_hub() == {("material", "WZ001"), ("stock", "WZ001||"), ("material", "WZ002"), ("stock", "WZ002||")}


def test_a_refused_material_whose_row_is_deleted_holds_nothing_any_more(tmp_path: Path) -> None:
    cfg = load_gateway_config(department(tmp_path))
    engine = open_store(cfg.state_path)
    sync_source(cfg, "wz", engine)
    assert sync_source(cfg, "kc", engine).rejected == 1  # held
    db = sqlite3.connect(tmp_path / "src.db")
    db.execute("delete from wz where bm = 'WZ002'")
    db.commit()
    db.close()
    s = sync_source(cfg, "wz", engine)  # a full read that no longer finds WZ002
    assert queued(engine)[-1] == ("stock", "WZ002|CK001|"), (
        "sent: the hub now says the material is missing, which is true"
    )
    assert any("1 条" in n for n in s.notes), s.notes
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(held_records)).scalar() == 0


def test_a_material_entered_by_a_clerk_releases_the_held_stock(tmp_path: Path) -> None:
    from gateway.sync import enqueue_records

    cfg = load_gateway_config(department(tmp_path))
    engine = open_store(cfg.state_path)
    sync_source(cfg, "wz", engine)
    sync_source(cfg, "kc", engine)
    material = {
        "material_id": "WZ002",
        "material_name": "棉被",
        "category_code": "1010200",
        "unit": "顶",
        "reserve_mode": "1",
    }
    enqueue_records(engine, "local", "material", [("WZ002", material)], "张三")
    assert queued(engine)[-2:] == [("material", "WZ002"), ("stock", "WZ002|CK001|")]


DEPOT = """
record_type = "depot"
[fields]
depot_id = "bm"
depot_name = "mc"
depot_level = { constant = "5" }
region_code = { constant = "330106" }
address = { constant = "某路1号" }
mgmt_unit_name = { constant = "应急管理局" }
contact_name = { constant = "李四" }
contact_phone = "dh"
"""


def test_a_refused_depot_holds_its_stock_with_the_depot_reason(tmp_path: Path) -> None:
    cfg_path = department(tmp_path)
    db = sqlite3.connect(tmp_path / "src.db")
    db.executescript(
        "create table ck (bm text primary key, mc text, dh text); insert into ck values ('CK001', '一号库', '12');"
    )
    db.commit()
    db.close()
    (tmp_path / "depot.toml").write_text(DEPOT, encoding="utf-8")
    depot_source = CONFIG[CONFIG.index('[[sources]]\nname = "wz"') :].split("[[sources]]")[1]
    depot_source = (
        depot_source.replace('"wz"', '"ck"').replace('"material"', '"depot"').replace("material.toml", "depot.toml")
    )
    cfg_path.write_text(cfg_path.read_text(encoding="utf-8") + "\n[[sources]]" + depot_source, encoding="utf-8")
    cfg = load_gateway_config(cfg_path)
    engine = open_store(cfg.state_path)
    assert sync_source(cfg, "ck", engine).rejected == 1  # the phone number is not one
    sync_source(cfg, "wz", engine)
    s = sync_source(cfg, "kc", engine)
    assert {p.rule for p in s.problems} == {"held.depot_refused", "held.material_refused"}
    depot = next(p for p in s.problems if p.rule == "held.depot_refused")
    assert depot.message.startswith("储备库 CK001 未通过校验：") and "联系电话" in depot.message
    assert not [k for t, k in queued(engine) if t == "stock"], "both stock records name the refused depot"

"""The sync pipeline over live databases: change detection per strategy, lag window, mapping changes, CLI."""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway.config import GatewayConfig, load_gateway_config
from gateway.store import open_store
from gateway.store.tables import fingerprints, outbox, sync_runs
from gateway.sync import enqueue_records, sync_one, sync_source

STOCK_MAPPING = """
record_type = "stock"

[fields]
material_id = { column = "wzbm", transforms = ["trim", "upper"] }
depot_id = { column = "ckbm" }
batch_no = { template = "P{id}" }
quantity = { column = "sl", transforms = ["number"] }
unit = { column = "dw", default = "箱" }
checked_date = { column = "hcrq", transforms = ["date"] }
"""

BASE_DAY = dt.date(2024, 3, 1)
T0 = dt.datetime(2024, 3, 1, 8, 0, 0)


def write_config(tmp: Path, sources: list[dict[str, Any]], mapping: str = STOCK_MAPPING) -> GatewayConfig:
    """A gateway config with the given sources (TOML written by hand: the real loader checks it)."""
    (tmp / "gateway.key").write_text("unused in these tests")
    (tmp / "stock.toml").write_text(mapping, encoding="utf-8")
    lines = [
        '[department]\ncode = "330106001"\nname = "测试应急管理局"',
        '[hub]\nurl = "http://127.0.0.1:9"',
        '[keys]\nsigning_key = "gateway.key"\nkey_id = "k1"',
        '[state]\npath = "state/gateway.db"',
    ]
    for s in sources:
        settings = s.pop("settings")
        lines.append("[[sources]]\n" + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in s.items()))
        lines.append("[sources.settings]\n" + "\n".join(f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in settings.items()))
    (tmp / "gateway.toml").write_text("\n\n".join(lines) + "\n", encoding="utf-8")
    return load_gateway_config(tmp / "gateway.toml")


def source_entry(name: str, url: str, strategy: str, **extra: Any) -> dict[str, Any]:
    settings = {"url": url, "table": "kc", "key_columns": ["id"], "chunk_size": 500}
    if strategy == "cursor":
        settings["cursor_column"] = "updated_at"
    settings.update(extra.pop("settings", {}))
    return {"name": name, "type": "sql", "record_type": "stock", "mapping": "stock.toml", "strategy": strategy,
            "settings": settings, **extra}


KC = sa.MetaData()
kc = sa.Table(
    "kc", KC,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("wzbm", sa.String(32)),
    sa.Column("ckbm", sa.String(32)),
    sa.Column("sl", sa.String(20)),
    sa.Column("dw", sa.String(10)),
    sa.Column("hcrq", sa.Date),
    sa.Column("updated_at", sa.DateTime),
)


def kc_row(i: int, at: dt.datetime = T0, qty: int | None = None) -> dict[str, Any]:
    return {"id": i, "wzbm": f" wz{i % 97:03d} ", "ckbm": f"CK{i % 7}", "sl": f"{qty if qty is not None else i % 500}箱",
            "dw": "箱", "hcrq": BASE_DAY - dt.timedelta(days=i % 30), "updated_at": at + dt.timedelta(microseconds=i)}


def seed_source(url: str, n: int) -> sa.Engine:
    eng = sa.create_engine(url)
    KC.drop_all(eng)
    KC.create_all(eng)
    with eng.begin() as c:
        for i in range(0, n, 5000):
            c.execute(kc.insert(), [kc_row(j) for j in range(i + 1, min(n, i + 5000) + 1)])
    return eng


def outbox_rows(engine: sa.Engine, after_id: int = 0) -> list[Any]:
    with engine.connect() as c:
        return c.execute(sa.select(outbox).where(outbox.c.id > after_id).order_by(outbox.c.id)).all()


def max_outbox_id(engine: sa.Engine) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.select(sa.func.coalesce(sa.func.max(outbox.c.id), 0))).scalar_one())


def apply_churn(src: sa.Engine, n: int, seed: int = 7) -> tuple[set[str], set[str], set[str]]:
    """1% updates, 0.5% inserts, 0.2% deletes; returns the record keys of each kind."""
    rnd = random.Random(seed)
    ids = rnd.sample(range(1, n + 1), n * 12 // 1000)
    upd, dels = ids[: n // 100], ids[n // 100 :]
    ins = list(range(n + 1, n + 1 + n // 200))
    later = T0 + dt.timedelta(days=1)
    with src.begin() as c:
        c.execute(
            kc.update().where(kc.c.id == sa.bindparam("k")).values(sl=sa.bindparam("sl"), updated_at=sa.bindparam("at")),
            [{"k": i, "sl": "9999箱", "at": later + dt.timedelta(microseconds=i)} for i in upd],
        )
        c.execute(kc.insert(), [kc_row(i, later) for i in ins])
        c.execute(kc.delete().where(kc.c.id.in_(dels)))

    def rk(i: int) -> str:
        r = kc_row(i)
        return f"{r['wzbm'].strip().upper()}|{r['ckbm']}|P{i}"

    return {rk(i) for i in upd}, {rk(i) for i in ins}, {rk(i) for i in dels}


def check_churn(n: int, url: str, tmp_path: Path, strategy: str) -> None:
    extra = {"reconcile_deletes": True} if strategy == "cursor" else {}
    cfg = write_config(tmp_path, [source_entry("kc", url, strategy, **extra)])
    src = seed_source(url, n)
    store = open_store(cfg.state_path)
    first = sync_source(cfg, "kc", store)
    assert (first.rows_read, first.new, first.rejected) == (n, n, 0)
    mark = max_outbox_id(store)
    upd, ins, dels = apply_churn(src, n)
    s = sync_source(cfg, "kc", store)
    assert (s.new, s.changed, s.deleted, s.rejected) == (len(ins), len(upd), len(dels), 0)
    rows = outbox_rows(store, mark)
    got = {(r.record_key, r.op) for r in rows}
    want = {(k, "upsert") for k in upd | ins} | {(k, "delete") for k in dels}
    assert got == want and len(rows) == len(want), "exactly the changes are enqueued, once each"
    by_key = {r.record_key: r for r in rows}
    assert all(by_key[k].seq == 2 for k in upd | dels) and all(by_key[k].seq == 1 for k in ins)
    assert json.loads(by_key[next(iter(upd))].data)["quantity"] in (9999, "9999")
    if n <= 10_000:  # a third run with nothing changed enqueues nothing
        quiet = sync_source(cfg, "kc", store)
        assert (quiet.new, quiet.changed, quiet.deleted) == (0, 0, 0)
    src.dispose()


@pytest.mark.parametrize("strategy", ["cursor", "fingerprint"])
def test_churn_on_10k_rows_enqueues_exactly_the_changes(pg_url: str, tmp_path: Path, strategy: str) -> None:
    check_churn(10_000, pg_url, tmp_path, strategy)


@pytest.mark.slow
@pytest.mark.parametrize("strategy", ["cursor", "fingerprint"])
def test_churn_on_100k_rows_enqueues_exactly_the_changes(pg_url: str, tmp_path: Path, strategy: str) -> None:
    check_churn(100_000, pg_url, tmp_path, strategy)


@pytest.mark.parametrize("lag, caught", [(300, True), (0, False)])
def test_row_committed_late_inside_lag_window_is_not_missed(pg_url: str, tmp_path: Path, lag: int, caught: bool) -> None:
    cfg = write_config(tmp_path, [source_entry("kc", pg_url, "cursor", lag_seconds=lag)])
    src = seed_source(pg_url, 3)
    store = open_store(cfg.state_path)
    sync_source(cfg, "kc", store)
    now = dt.datetime.now().replace(microsecond=0)
    t1_ready, t2_synced = threading.Event(), threading.Event()

    def slow_writer() -> None:  # T1: an earlier updated_at, committed after T2's row was synced
        with src.connect() as c:
            c.execute(kc.insert().values(kc_row(10, now - dt.timedelta(seconds=60))))
            t1_ready.set()
            t2_synced.wait(30)
            c.commit()

    t1 = threading.Thread(target=slow_writer)
    t1.start()
    assert t1_ready.wait(30)
    with src.begin() as c:  # T2: later updated_at, committed at once
        c.execute(kc.insert().values(kc_row(11, now)))
    s2 = sync_source(cfg, "kc", store)
    assert s2.new == 1
    t2_synced.set()
    t1.join()
    s3 = sync_source(cfg, "kc", store)
    keys = [r.record_key for r in outbox_rows(store)]
    assert keys.count("WZ011|CK4|P11") == 1, "the re-read row inside the window is not enqueued twice"
    assert (keys.count("WZ010|CK3|P10") == 1) is caught
    assert s3.new == (1 if caught else 0)
    src.dispose()


def test_mapping_change_reenqueues_records_whose_mapped_version_differs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "cursor")])
    src = seed_source(url, 50)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kc", store).new == 50
    # Only rows in depot CK3 get a different depot code under the new mapping.
    (tmp_path / "stock.toml").write_text(
        STOCK_MAPPING.replace('depot_id = { column = "ckbm" }', 'depot_id = { column = "ckbm", transforms = [{map = {values = {CK3 = "CK3A"}, other = "keep"}}] }'),
        encoding="utf-8",
    )
    mark = max_outbox_id(store)
    s = sync_source(cfg, "kc", store)
    assert s.mapping_version == 2
    ck3 = sum(1 for i in range(1, 51) if i % 7 == 3)
    # The depot code is part of the stock key: those records move to new keys, the old keys are deleted.
    assert (s.new, s.deleted, s.unchanged) == (ck3, ck3, 50 - ck3)
    moved = outbox_rows(store, mark)
    assert sorted(r.op for r in moved) == ["delete"] * ck3 + ["upsert"] * ck3
    assert all("CK3A" in r.record_key for r in moved if r.op == "upsert")
    prov = json.loads(moved[0].provenance)
    assert prov == {"source": "kc", "source_key": prov["source_key"], "mapping_version": 2, "operator": "system"}
    src.dispose()


def test_rejected_rows_are_reported_and_never_deleted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")])
    src = seed_source(url, 20)
    store = open_store(cfg.state_path)
    assert sync_source(cfg, "kc", store).new == 20
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 5).values(sl="很多"))
    s = sync_source(cfg, "kc", store)
    assert (s.rejected, s.deleted, s.unchanged) == (1, 0, 19)
    p = s.problems[0]
    assert (p.source, p.field, p.value, p.rule) == ("kc", "quantity", "很多", "number")
    assert "key=5" in p.locator and "储备数量" in p.message
    with store.connect() as c:
        run = c.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc())).first()
    assert run.status == "ok" and run.rejected == 1 and "很多" in run.problems
    src.dispose()


def test_sync_one_and_enqueue_records(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "cursor")])
    src = seed_source(url, 5)
    store = open_store(cfg.state_path)
    sync_source(cfg, "kc", store)
    assert sync_one(cfg, "kc", "3", store).outbox_ids == []  # unchanged
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 3).values(sl="42箱"))
        c.execute(kc.update().where(kc.c.id == 4).values(hcrq=None))
        c.execute(kc.delete().where(kc.c.id == 2))
    r = sync_one(cfg, "kc", "3", store, operator="张三")
    assert r.op == "upsert" and len(r.outbox_ids) == 1
    bad = sync_one(cfg, "kc", "4", store)
    assert bad.outbox_ids == [] and [p.field for p in bad.problems] == ["checked_date"]
    gone = sync_one(cfg, "kc", "2", store)
    assert gone.op == "delete" and len(gone.outbox_ids) == 1
    rows = {r.id: r for r in outbox_rows(store)}
    assert json.loads(rows[r.outbox_ids[0]].provenance)["operator"] == "张三"
    assert rows[gone.outbox_ids[0]].op == "delete" and rows[gone.outbox_ids[0]].seq == 2

    rec = {"material_id": "WZ1", "depot_id": "CK9", "batch_no": "", "quantity": "5", "unit": "箱", "checked_date": "2024-01-02"}
    e1 = enqueue_records(store, "spreadsheet", "stock", [("r1", rec)], "李四")
    e2 = enqueue_records(store, "spreadsheet", "stock", [("r1", rec)], "李四")
    e3 = enqueue_records(store, "spreadsheet", "stock", [("r1", {**rec, "quantity": "6"})], "李四")
    assert (e1.new, e2.unchanged, e3.changed) == (1, 1, 1)
    with store.connect() as c:
        seqs = c.execute(sa.select(outbox.c.seq).where(outbox.c.source == "spreadsheet").order_by(outbox.c.id)).scalars().all()
        fp = c.execute(sa.select(fingerprints).where(fingerprints.c.source == "spreadsheet")).one()
    assert seqs == [1, 2] and fp.seq == 2
    src.dispose()


def test_cli_sync_prints_counts_and_rejections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    write_config(tmp_path, [source_entry("kc", url, "fingerprint")])
    src = seed_source(url, 8)
    with src.begin() as c:
        c.execute(kc.update().where(kc.c.id == 2).values(hcrq=None))
    from gateway.cli import cli

    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "gateway.toml"), "sync", "kc", "--no-push"])
    assert r.exit_code == 0, r.output
    assert "读取行数：8" in r.output and "新增 7" in r.output and "拒收行数：1" in r.output
    assert "key=2" in r.output and "checked_date" in r.output
    r = CliRunner().invoke(cli, ["--config", str(tmp_path / "gateway.toml"), "sync", "kc", "--no-push", "--json"])
    data = json.loads(r.stdout)
    assert (data["unchanged"], data["rejected"], data["new"]) == (7, 1, 0)
    assert data["push"] == {"status": "skipped", "message": "未推送（--no-push）"} and data["files_refused"] == 0
    src.dispose()


def test_cli_sync_keeps_records_queued_when_the_hub_is_unreachable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")])
    src = seed_source(url, 3)
    from gateway.cli import cli

    r = CliRunner().invoke(cli, ["--config", str(cfg.file), "sync", "kc", "--push-retry-for", "0"])
    assert r.exit_code == 0, r.output
    assert "新增 3" in r.output and "记录已入队" in r.output
    r = CliRunner().invoke(cli, ["--config", str(cfg.file), "sync", "kc", "--push-retry-for", "0", "--json"])
    push = json.loads(r.stdout)["push"]  # an object in the summary, not a JSON string
    assert push["status"] == "queued" and "记录已入队" in push["message"] and push["delivered"] == 0
    with open_store(cfg.state_path).connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(outbox).where(outbox.c.state == "pending")).scalar() == 3
    src.dispose()


def test_one_sync_per_source_at_a_time(tmp_path: Path) -> None:
    from gateway.sync.lock import SyncBusy, source_lock

    url = f"sqlite:///{tmp_path / 'src.db'}"
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint")])
    src = seed_source(url, 2)
    store = open_store(cfg.state_path)
    with source_lock(cfg.state_path, "kc"):
        with pytest.raises(SyncBusy, match="正在同步"):
            sync_source(cfg, "kc", store)
    assert sync_source(cfg, "kc", store).new == 2
    src.dispose()


def test_lookup_table_from_another_source(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    src = seed_source(url, 4)
    with src.begin() as c:
        c.exec_driver_sql("CREATE TABLE ck_map (old TEXT PRIMARY KEY, new TEXT)")
        c.exec_driver_sql("INSERT INTO ck_map VALUES ('CK1', 'D-001'), ('CK2', 'D-002'), ('CK3', 'D-003'), ('CK4', 'D-004')")
    mapping = STOCK_MAPPING.replace(
        'depot_id = { column = "ckbm" }',
        'depot_id = { column = "ckbm", transforms = [{ lookup = { source = "depot_codes", key = "old", value = "new" } }] }',
    )
    codes = {"name": "depot_codes", "type": "sql", "record_type": "depot", "mapping": "stock.toml", "strategy": "fingerprint",
             "enabled": False, "settings": {"url": url, "table": "ck_map", "key_columns": ["old"]}}
    cfg = write_config(tmp_path, [source_entry("kc", url, "fingerprint"), codes], mapping)
    store = open_store(cfg.state_path)
    s = sync_source(cfg, "kc", store)
    assert (s.new, s.rejected) == (4, 0)
    depots = sorted(json.loads(r.data)["depot_id"] for r in outbox_rows(store))
    assert depots == ["D-001", "D-002", "D-003", "D-004"]
    src.dispose()

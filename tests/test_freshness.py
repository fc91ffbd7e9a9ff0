from __future__ import annotations

import datetime as dt
from pathlib import Path

import orjson

from gateway.freshness import freshness_report
from gateway.localtime import today
from gateway.store import open_store
from gateway.store.tables import fingerprints, outbox

NOW = dt.datetime(2026, 6, 30, 12, 0, tzinfo=dt.UTC)


def _put(eng, rtype: str, key: str, data: dict, enqueued: dt.datetime, updated_at: str | None = None, deleted: int = 0):  # type: ignore[no-untyped-def]
    with eng.begin() as c:  # as the sync writes them: the fingerprint names the record's latest outbox row
        ob_id = c.execute(outbox.insert().values(
            source="s", record_type=rtype, record_key=key, op="upsert", seq=1, version="v",
            data=orjson.dumps(data).decode(), updated_at=updated_at, provenance="{}",
            enqueued_at=enqueued.isoformat(), state="delivered",
        )).inserted_primary_key[0]
        c.execute(fingerprints.insert().values(
            source="s", record_type=rtype, record_key=key, source_key=key, version="v" if not deleted else "",
            seq=1, updated_at=updated_at, checked_at=NOW.isoformat(), deleted=deleted, outbox_id=ob_id,
        ))


def test_stale_and_expiring_records_are_listed_with_reasons(tmp_path: Path) -> None:
    eng = open_store(tmp_path / "gw.db")
    old = NOW - dt.timedelta(days=120)
    recent = NOW - dt.timedelta(days=5)
    # A material last changed 120 days ago: stale under the default 90 days.
    _put(eng, "material", "M1", {"material_id": "M1"}, old)
    # A material whose source says it changed 10 days ago, although enqueued long ago.
    _put(eng, "material", "M2", {"material_id": "M2"}, old, updated_at=(NOW - dt.timedelta(days=10)).isoformat())
    # A stock row enqueued long ago but physically checked last week: fresh.
    _put(eng, "stock", "A|D|1", {"material_id": "A", "depot_id": "D", "batch_no": "1",
                                 "checked_date": "2026-06-23", "expiry_date": "2026-07-20"}, old)
    # A stock row neither updated nor checked for 100 days, expiring in 60 days.
    _put(eng, "stock", "B|D|", {"material_id": "B", "depot_id": "D", "batch_no": "",
                                "checked_date": "2026-03-22", "expiry_date": "2026-08-29"}, old)
    # Retyped yesterday but not physically checked for 120 days: stale (stock counts from the check).
    _put(eng, "stock", "F|D|", {"material_id": "F", "depot_id": "D", "checked_date": "2026-03-02"}, recent)
    # Already expired, fresh otherwise.
    _put(eng, "stock", "C|D|", {"material_id": "C", "depot_id": "D", "checked_date": "2026-06-29",
                                "expiry_date": "2026-06-01"}, recent)
    # Far from expiry, fresh: not listed at all.
    _put(eng, "stock", "E|D|", {"material_id": "E", "depot_id": "D", "checked_date": "2026-06-29",
                                "expiry_date": "2028-01-01"}, recent)
    # Deleted records are never stale.
    _put(eng, "depot", "D9", {"depot_id": "D9"}, old, deleted=1)

    rep = freshness_report(eng, {"material": 90, "stock": 90, "depot": 90}, (30, 90), now=NOW)
    assert rep.records == 7
    assert [(r.record_type, r.record_key) for r in rep.stale] == [
        ("material", "M1"), ("stock", "F|D|"), ("stock", "B|D|"),
    ]
    m1, f, b = rep.stale
    assert m1.days_since == 120 and m1.message == "超过 90 天未更新（已 120 天）"
    assert f.days_since == 120 and f.message == "超过 90 天未核查（已 120 天）"
    assert b.last_check == dt.date(2026, 3, 22)

    assert [(s.record_key, s.days_left, s.warn_days) for s in rep.expiring] == [
        ("C|D|", -29, 30), ("A|D|1", 20, 30), ("B|D|", 60, 90),
    ]
    assert "已过期" in rep.expiring[0].message
    assert rep.expiring_counts() == {"expired": 1, "30": 1, "90": 1}

    # A shorter period for stock makes the week-old check stale too.
    rep = freshness_report(eng, {"material": 90, "stock": 5}, (30,), now=NOW)
    assert ("stock", "A|D|1") in {(r.record_type, r.record_key) for r in rep.stale}
    assert [s.record_key for s in rep.expiring] == ["C|D|", "A|D|1"]


def test_days_are_counted_in_the_gateways_zone(tmp_path: Path) -> None:
    """At 16:30 UTC it is already the next day in Beijing: a check dated 90 Beijing days before that day
    is 90 days old there (stale under 89, fresh under 90), and expiry counts down from the Beijing day."""
    eng = open_store(tmp_path / "gw.db")
    evening = dt.datetime(2026, 6, 30, 16, 30, tzinfo=dt.UTC)  # 2026-07-01 00:30 in Beijing
    _put(eng, "stock", "A|D|", {"material_id": "A", "depot_id": "D", "checked_date": "2026-04-02",
                                "expiry_date": "2026-07-31"}, evening)
    beijing = freshness_report(eng, {"stock": 89}, (30,), now=evening)
    assert [(r.record_key, r.days_since) for r in beijing.stale] == [("A|D|", 90)]
    assert [(s.record_key, s.days_left) for s in beijing.expiring] == [("A|D|", 30)]
    assert not freshness_report(eng, {"stock": 90}, (30,), now=evening).stale
    utc = freshness_report(eng, {"stock": 89}, (30,), now=evening, tz="UTC")  # a deployment set to UTC
    assert not utc.stale and not utc.expiring  # 31 days left there: outside the 30-day window


def test_daily_job_logs_a_summary_and_each_finding(tmp_path: Path, caplog) -> None:  # type: ignore[no-untyped-def]
    import logging
    from types import SimpleNamespace

    from gateway.freshness import log_freshness

    eng = open_store(tmp_path / "gw.db")
    _put(eng, "depot", "CK-1", {"depot_id": "CK-1"}, NOW - dt.timedelta(days=200))
    cfg = SimpleNamespace(freshness_days={"depot": 90}, expiry_warn_days=(30, 90), web=SimpleNamespace(timezone="Asia/Shanghai"))
    with caplog.at_level(logging.INFO, logger="gateway.freshness"):
        rep = log_freshness(cfg, eng, now=NOW)
    assert len(rep.stale) == 1
    summary = next(r for r in caplog.records if r.getMessage() == "freshness check")
    assert summary.levelno == logging.WARNING and summary.fields["stale_by_type"] == {"depot": 1}
    line = next(r for r in caplog.records if r.getMessage() == "stale record")
    assert line.fields["key"] == "CK-1" and line.fields["days_since"] == 200


def test_cli_lists_stale_and_expiring(service_env) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from gateway.cli import cli

    cfg = service_env.config()
    eng = open_store(cfg.state_path)
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=150)
    _put(eng, "material", "WZ-OLD", {"material_id": "WZ-OLD"}, old)
    soon = (today() + dt.timedelta(days=10)).isoformat()  # Beijing days, as the report counts
    _put(eng, "stock", "WZ-1|CK|", {"material_id": "WZ-1", "depot_id": "CK", "checked_date": today().isoformat(),
                                     "expiry_date": soon}, dt.datetime.now(dt.UTC))
    eng.dispose()
    r = CliRunner().invoke(cli, ["--config", str(cfg.file), "freshness"])
    assert r.exit_code == 0, r.output
    assert "超期未更新 1 条" in r.output and "WZ-OLD" in r.output and "超过 90 天未更新（已 150 天）" in r.output
    assert "10 天后到期" in r.output
    r = CliRunner().invoke(cli, ["--config", str(cfg.file), "freshness", "--json"])
    assert '"days_left": 10' in r.output

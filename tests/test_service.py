"""`gateway run`: scheduled extract-and-load reaching a live hub, and the process shutting down cleanly."""

from __future__ import annotations

from sqlalchemy import func, select

from gateway.push import record_receipts
from gateway.scheduler.jobs import FRESHNESS_JOB, build_scheduler, sync_job_id
from gateway.service.runtime import GatewayService
from gateway.store import open_store
from gateway.store.tables import outbox, sync_runs


def test_jobs_are_built_from_config(service_env) -> None:  # type: ignore[no-untyped-def]
    cfg = service_env.config(every="15m", extra_sources="""
[[sources]]
name = "nightly"
type = "sql"
record_type = "material"
mapping = "mappings/materials.toml"
cron = "30 2 * * 1-5"
[sources.settings]
url = "{url}"
table = "wz"
key_columns = ["wzbm"]

[[sources]]
name = "manual"
type = "sql"
record_type = "material"
mapping = "mappings/materials.toml"
[sources.settings]
url = "{url}"
table = "wz"
key_columns = ["wzbm"]
""".replace("{url}", service_env.db_url))
    engine = open_store(cfg.state_path)
    sched = build_scheduler(cfg, engine, run_at_start=False)
    sched.start(paused=True)  # job defaults are applied once the scheduler runs
    jobs = {j.id: j for j in sched.get_jobs()}
    # A source without every/cron is only synced by hand, pg-notify or local edits.
    assert set(jobs) == {sync_job_id("materials"), sync_job_id("nightly"), FRESHNESS_JOB}
    assert jobs[sync_job_id("materials")].trigger.interval.total_seconds() == 900
    assert "day_of_week='1-5'" in str(jobs[sync_job_id("nightly")].trigger)
    for j in jobs.values():
        assert j.max_instances == 1 and j.coalesce is True and j.misfire_grace_time > 0
    sched.shutdown()
    engine.dispose()


def test_scheduled_sync_delivers_and_picks_up_later_changes(service_env) -> None:  # type: ignore[no-untyped-def]
    cfg = service_env.config(every="1s")
    svc = GatewayService(cfg, web=False, pg_listen=False).start()
    try:
        # First run at start: the three rows reach the hub with receipts.
        service_env.wait(lambda: service_env.hub_count() == 3)
        service_env.set_material("WZ-0002", "折叠床（加宽）")
        service_env.set_material("WZ-0009", "救生衣")
        # The next scheduled run picks both up and the woken push worker delivers them.
        service_env.wait(lambda: (service_env.hub_record("material", "WZ-0002") or {}).get("material_name") == "折叠床（加宽）")
        service_env.wait(lambda: service_env.hub_record("material", "WZ-0009") is not None)
    finally:
        assert svc.stop() is True
    with svc.engine.connect() as c:
        runs = c.execute(select(func.count()).select_from(sync_runs).where(sync_runs.c.source == "materials")).scalar_one()
        states = dict(c.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())
        ids = list(c.execute(select(outbox.c.id)).scalars())
        receipted = sum(r.status == "accepted" for r in record_receipts.of_outbox(c, ids))
    assert runs >= 2
    assert states == {"delivered": 5}
    assert receipted == 5
    assert not svc.scheduler.running and not svc.worker.alive


def test_run_reports_a_taken_port_clearly(service_env) -> None:  # type: ignore[no-untyped-def]
    import socket

    from click.testing import CliRunner

    from gateway.cli import cli

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        service_env.config(listen=f"127.0.0.1:{port}")
        r = CliRunner().invoke(cli, ["--config", str(service_env.root / "gateway.toml"), "run"])
    assert r.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in r.output

"""pg-notify: a PostgreSQL source announces its changes and each one reaches a live hub at once."""

from __future__ import annotations

import psycopg
from click.testing import CliRunner
from psycopg import sql
from sqlalchemy import create_engine, select, text

from gateway.cli import cli
from gateway.push import record_receipts
from gateway.service.pg_notify import NotifyTarget, conninfo, installed
from gateway.service.runtime import GatewayService
from gateway.store.tables import outbox


def test_trigger_pushes_insert_update_delete_to_the_hub(service_env, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    src = create_engine(pg_url)
    with src.begin() as c:
        c.execute(text("CREATE TABLE wz (wzbm text PRIMARY KEY, wzmc text, fldm text, jldw text, cbfs text)"))
        c.execute(text("INSERT INTO wz VALUES ('WZ-0001', '折叠床', '1010100', '张', '实物储备')"))
    service_env.config(source_url=pg_url)  # no schedule: only notifications move records
    cfg_path = str(service_env.root / "gateway.toml")
    runner = CliRunner()
    r = runner.invoke(cli, ["--config", cfg_path, "pg-notify", "install", "materials"])
    assert r.exit_code == 0, r.output
    assert "gateway_materials" in r.output
    r = runner.invoke(cli, ["--config", cfg_path, "pg-notify", "status", "materials"])
    assert "materials: installed" in r.output

    svc = GatewayService(service_env.config(source_url=pg_url), web=False, run_at_start=False)
    svc.start()
    try:
        (listener,) = svc.listeners
        assert listener.wait_ready()
        with src.begin() as c:
            c.execute(text("UPDATE wz SET wzmc = '折叠床（加固）' WHERE wzbm = 'WZ-0001'"))
        service_env.wait(lambda: (service_env.hub_record("material", "WZ-0001") or {}).get("material_name") == "折叠床（加固）")
        with src.begin() as c:
            c.execute(text("INSERT INTO wz VALUES ('WZ-0005', '救生衣', '2040101', '件', '实物储备')"))
        service_env.wait(lambda: service_env.hub_record("material", "WZ-0005") is not None)
        with src.begin() as c:
            c.execute(text("DELETE FROM wz WHERE wzbm = 'WZ-0005'"))
        service_env.wait(lambda: service_env.hub_record("material", "WZ-0005") is None)
        # The listening connection dies (database restart, network): the listener reconnects.
        with src.begin() as c:
            c.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                           "WHERE datname = current_database() AND query LIKE 'LISTEN%'"))
        service_env.wait(lambda: listener.connects == 2, timeout=20)
        with src.begin() as c:
            c.execute(text("UPDATE wz SET wzmc = '折叠床（重连后）' WHERE wzbm = 'WZ-0001'"))
        service_env.wait(lambda: (service_env.hub_record("material", "WZ-0001") or {}).get("material_name") == "折叠床（重连后）")
    finally:
        svc.stop()
    # Each change was delivered with a verified receipt stored at the gateway.
    with svc.engine.connect() as c:
        ids = list(c.execute(select(outbox.c.id)).scalars())
        got = [(r.record_key, r.status) for r in record_receipts.of_outbox(c, ids)]
    assert got == [
        ("WZ-0001", "accepted"), ("WZ-0005", "accepted"), ("WZ-0005", "accepted"), ("WZ-0001", "accepted"),
    ]

    r = runner.invoke(cli, ["--config", cfg_path, "pg-notify", "uninstall", "materials"])
    assert r.exit_code == 0, r.output
    assert "not installed" in runner.invoke(cli, ["--config", cfg_path, "pg-notify", "status", "materials"]).output
    src.dispose()


def test_hostile_identifiers_are_quoted_not_pasted(pg_url: str) -> None:
    table = 'wz"; DROP TABLE keep; --'
    with psycopg.connect(conninfo(pg_url), autocommit=True) as conn:
        conn.execute("CREATE TABLE keep (id int)")
        conn.execute(sql.SQL("CREATE TABLE {} ({} text PRIMARY KEY)").format(sql.Identifier(table), sql.Identifier("k'ey")))
        t = NotifyTarget("odd.name-1", pg_url, None, table, ("k'ey",))
        for stmt in t.statements():
            conn.execute(stmt)
        assert installed(t, conn)
        conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(t.channel)))
        conn.execute(sql.SQL("INSERT INTO {} VALUES ('a|b')").format(sql.Identifier(table)))
        (n,) = list(conn.notifies(timeout=5, stop_after=1))
        assert n.channel == "gateway_odd.name-1" and n.payload == "a|b"
        assert conn.execute("SELECT count(*) FROM keep").fetchone() == (0,)  # still there

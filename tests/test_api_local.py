"""A clerk's edit reaching the hub at once: the local API, `gateway push`, /healthz."""

from __future__ import annotations

import requests
from click.testing import CliRunner

from gateway.cli import cli
from gateway.service.runtime import GatewayService
from tests.fixtures.service import TOKEN


def _post(svc: GatewayService, body: object, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return requests.post(f"http://{svc.listen}/api/local/push", json=body, headers=headers, timeout=20)


def test_local_api_pushes_one_edit_and_returns_the_verified_receipt(service_env) -> None:  # type: ignore[no-untyped-def]
    cfg = service_env.config()  # no schedule: only the local edit can move the record
    svc = GatewayService(cfg, pg_listen=False).start()
    try:
        service_env.set_material("WZ-0001", "折叠床（军绿）")
        edit = {"source": "materials", "key": "WZ-0001", "operator": "张三"}

        # No token, a wrong token, a wrong scheme: refused, nothing enqueued.
        assert _post(svc, edit, token=None).status_code == 401
        r = _post(svc, edit, token=TOKEN + "x")
        assert r.status_code == 401 and "令牌" in r.json()["message"]
        assert requests.post(f"http://{svc.listen}/api/local/push", json=edit, timeout=5,
                             headers={"Authorization": f"Basic {TOKEN}"}).status_code == 401
        assert service_env.hub_record("material", "WZ-0001") is None

        r = _post(svc, edit)
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["status"] == "delivered" and out["ok"] is True
        (rc,) = out["receipts"]
        assert rc["status"] == "accepted" and rc["record_key"] == "WZ-0001" and rc["hub_seq"] >= 1 and rc["log_head"]
        assert service_env.hub_record("material", "WZ-0001")["material_name"] == "折叠床（军绿）"
        assert "Set-Cookie" not in r.headers  # the API keeps no cookie session

        # Pushing again without a change answers with the same receipt; nothing new is sent.
        again = _post(svc, edit).json()
        assert again["status"] == "delivered" and again["receipts"][0]["hub_seq"] == rc["hub_seq"]

        # An invalid edit is answered with the validation errors, in Chinese, and not sent.
        service_env.set_material("WZ-0002", "折叠床", category="1000100")  # no non-zero level after a 00
        r = _post(svc, {"source": "materials", "key": "WZ-0002"})
        assert r.status_code == 422
        bad = r.json()
        assert bad["status"] == "invalid" and bad["receipts"] == []
        (p,) = bad["problems"]
        assert p["field"] == "category_code" and p["value"] == "1000100" and "物资分类代码" in p["message"]
        assert service_env.hub_record("material", "WZ-0002") is None

        # Unknown source or row, and malformed bodies, are client errors.
        assert _post(svc, {"source": "nope", "key": "1"}).status_code == 404
        r = _post(svc, {"source": "materials", "key": "WZ-7777"})
        assert r.status_code == 404 and r.json()["status"] == "not_found"
        assert _post(svc, {"key": "1"}).status_code == 400
        assert _post(svc, ["materials", "WZ-0001"]).status_code == 400
    finally:
        svc.stop()


def test_source_failing_after_a_good_edit_answers_failed_not_a_crash(service_env, pg_url: str) -> None:  # type: ignore[no-untyped-def]
    """A PostgreSQL source's adapter is kept between edits; its table failing later is the documented 503 `failed`."""
    from sqlalchemy import create_engine, text

    src = create_engine(pg_url)
    with src.begin() as c:
        c.execute(text("CREATE TABLE wz (wzbm text PRIMARY KEY, wzmc text, fldm text, jldw text, cbfs text)"))
        c.execute(text("INSERT INTO wz VALUES ('WZ-0001', '折叠床', '1010100', '张', '实物储备')"))
    svc = GatewayService(service_env.config(source_url=pg_url), pg_listen=False).start()
    try:
        edit = {"source": "materials", "key": "WZ-0001"}
        assert _post(svc, edit).json()["status"] == "delivered"
        with src.begin() as c:
            c.execute(text("ALTER TABLE wz RENAME TO wz_moved"))  # the department's table is gone mid-service
        r = _post(svc, edit)
        assert r.status_code == 503, r.text
        assert r.json()["status"] == "failed" and "无法读取数据源 materials" in r.json()["message"]
        with src.begin() as c:
            c.execute(text("ALTER TABLE wz_moved RENAME TO wz"))
            c.execute(text("UPDATE wz SET wzmc = '折叠床（恢复后）'"))
        r = _post(svc, edit)
        assert r.status_code == 200 and r.json()["status"] == "delivered", r.text
        assert service_env.hub_record("material", "WZ-0001")["material_name"] == "折叠床（恢复后）"
    finally:
        svc.stop()
        src.dispose()


def test_healthz_reports_scheduler_store_and_hub(service_env) -> None:  # type: ignore[no-untyped-def]
    cfg = service_env.config(every="1h")
    svc = GatewayService(cfg, pg_listen=False, run_at_start=False).start()
    try:
        r = requests.get(f"http://{svc.listen}/healthz", timeout=10)
        assert r.status_code == 200, r.text
        h = r.json()
        assert h["ok"] is True and h["department"] == service_env.hub.department
        assert h["scheduler"]["running"] is True
        assert {j["id"] for j in h["scheduler"]["jobs"]} == {"sync:materials", "freshness"}
        assert h["store"]["ok"] is True and h["hub"]["ok"] is True and h["hub"]["url"] == service_env.hub.url
        assert h["push_worker"]["alive"] is True
        # With the hub down, health says so (503) and names the hub.
        service_env.hub.stop()
        svc.api._hub_cache = None
        r = requests.get(f"http://{svc.listen}/healthz", timeout=10)
        assert r.status_code == 503 and r.json()["hub"]["ok"] is False and r.json()["store"]["ok"] is True
    finally:
        svc.stop()


def test_api_is_closed_without_a_configured_token(service_env) -> None:  # type: ignore[no-untyped-def]
    cfg = service_env.config(token=None)
    svc = GatewayService(cfg, pg_listen=False, run_at_start=False).start()
    try:
        r = _post(svc, {"source": "materials", "key": "WZ-0001"}, token="")
        assert r.status_code == 503 and "api_token" in r.json()["message"]
    finally:
        svc.stop()


def test_cli_push_prints_the_receipt_and_exits_by_outcome(service_env) -> None:  # type: ignore[no-untyped-def]
    service_env.config()
    cfg_path = str(service_env.root / "gateway.toml")
    service_env.set_material("WZ-0003", "折叠床（儿童）")
    r = CliRunner().invoke(cli, ["--config", cfg_path, "push", "materials", "WZ-0003", "--operator", "李四"])
    assert r.exit_code == 0, r.output
    assert "中心已签收" in r.output and "accepted" in r.output
    assert service_env.hub_record("material", "WZ-0003")["material_name"] == "折叠床（儿童）"

    service_env.set_material("WZ-0003", "折叠床", category="9999999")
    r = CliRunner().invoke(cli, ["--config", cfg_path, "push", "materials", "WZ-0003", "--json"])
    assert r.exit_code == 1
    assert '"status": "invalid"' in r.output and "category_code" in r.output

    # A source that cannot be read: a clear failure, nothing enqueued.
    service_env.db_path.rename(service_env.db_path.with_suffix(".away"))
    r = CliRunner().invoke(cli, ["--config", cfg_path, "push", "materials", "WZ-0003"])
    assert r.exit_code == 1 and "无法读取数据源 materials" in r.output, r.output
    service_env.db_path.with_suffix(".away").rename(service_env.db_path)

    # Hub unreachable: the edit is queued (exit 75) and delivered later by the push worker.
    service_env.set_material("WZ-0003", "折叠床（成人）")
    service_env.hub.stop()
    r = CliRunner().invoke(cli, ["--config", cfg_path, "push", "materials", "WZ-0003"])
    assert r.exit_code == 75, r.output
    assert "已入队" in r.output


def test_record_form_in_the_admin_ui_pushes_at_once(service_env) -> None:  # type: ignore[no-untyped-def]
    from gateway.accounts import AccountStore
    from gateway.accounts.roles import GATEWAY_ROLES
    from gateway.store import tables
    from tests.fixtures.web import PASSWORD, client_as, csrf_of

    cfg = service_env.config()
    svc = GatewayService(cfg, pg_listen=False, run_at_start=False).start()
    try:
        assert svc.app.extensions["gateway"].push_worker is svc.worker
        AccountStore(svc.engine, tables.users, tables.audit, GATEWAY_ROLES).add("clerk1", PASSWORD, "clerk")
        c = client_as(svc.app, "clerk1")
        tok = csrf_of(c, "/records/material/new")
        r = c.post("/records/material", data={
            "csrf_token": tok, "material_id": "WZ-0100", "material_name": "冲锋舟", "category_code": "2040201",
            "unit": "艘", "reserve_mode": "1",
        })
        assert r.status_code == 200, r.get_data(as_text=True)[:2000]
        assert "已签收" in r.get_data(as_text=True)
        assert service_env.hub_record("material", "WZ-0100")["material_name"] == "冲锋舟"
    finally:
        svc.stop()

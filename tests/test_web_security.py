"""Admin UI safety: CSRF, cookie flags, lockout, audit, roles, no change by GET, Chinese errors."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, text

from gateway.store import tables as t
from gateway.web import create_app
from tests.fixtures.web import PASSWORD, client_as, csrf_of, login


def _audit(engine, action=None):  # type: ignore[no-untyped-def]
    q = select(t.audit).order_by(t.audit.c.id)
    if action:
        q = q.where(t.audit.c.action == action)
    with engine.connect() as c:
        return [dict(r) for r in c.execute(q).mappings()]


def test_pages_need_login_and_login_works(gw_app) -> None:  # type: ignore[no-untyped-def]
    c = gw_app.test_client()
    r = c.get("/dashboard/")
    assert r.status_code == 302 and "/accounts/login" in r.headers["Location"]
    r = login(c, "admin")
    assert r.status_code == 302 and r.headers["Location"].endswith("/dashboard/")
    page = c.get("/dashboard/").get_data(as_text=True)
    assert "总览" in page and "Admin（管理员）" in page


def test_post_without_csrf_token_is_refused(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    c = gw_app.test_client()
    r = c.post("/accounts/login", data={"username": "admin", "password": PASSWORD})
    assert r.status_code == 400
    assert "CSRF" in r.get_data(as_text=True) and "请刷新页面" in r.get_data(as_text=True)
    assert not _audit(gw_engine, "login.ok")  # refused before any password check

    c = client_as(gw_app, "admin")
    form = {"action": "add", "username": "mallory", "password": "abcdefghijk-1", "role": "admin"}
    assert c.post("/accounts/users", data=form).status_code == 400
    assert c.post("/accounts/users", data={**form, "csrf_token": "forged"}).status_code == 400
    r = c.post("/dashboard/api/hub", json={}, headers={"Accept": "application/json"})
    assert r.status_code in (400, 405)
    with gw_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.users).where(t.users.c.username == "mallory")).scalar() == 0
    # With the session's token the same request goes through.
    r = c.post("/accounts/users", data={**form, "csrf_token": csrf_of(c, "/accounts/users")})
    assert r.status_code == 302
    with gw_engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(t.users).where(t.users.c.username == "mallory")).scalar() == 1


def test_json_post_without_csrf_header_gets_chinese_json_error(gw_app) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_app, "admin")
    r = c.post("/records/api/validate/material", json={"data": {}})
    assert r.status_code == 400
    body = r.get_json()
    assert body["error"] == "csrf" and "CSRF" in body["message"]


def test_json_endpoints_answer_json_in_chinese_when_not_logged_in(gw_app) -> None:  # type: ignore[no-untyped-def]
    c = gw_app.test_client()
    tok = csrf_of(c)  # an anonymous session still has a token
    r = c.post("/records/api/validate/material", json={"data": {}}, headers={"X-CSRF-Token": tok})
    assert r.status_code == 401 and r.get_json()["message"] == "请先登录。"
    viewer = client_as(gw_app, "viewer")
    r = viewer.post("/sources/nope/sync", headers={"X-CSRF-Token": csrf_of(viewer, "/dashboard/"), "Accept": "application/json"})
    assert r.status_code == 403 and "无权" in r.get_json()["error"]


def test_session_cookie_flags(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    c = gw_app.test_client()
    cookie = login(c, "admin").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie

    tls_app = create_app(engine=gw_engine, test_config={"TESTING": True, "SECRET_KEY": "k", "PREFERRED_URL_SCHEME": "https"})
    c = tls_app.test_client()
    tok = csrf_of(c)
    r = c.post("/accounts/login", data={"username": "admin", "password": PASSWORD, "csrf_token": tok}, base_url="https://localhost")
    cookie = r.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_five_failures_slow_that_address_on_that_account_only(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    c = gw_app.test_client()
    for _i in range(5):
        r = login(c, "clerk", "wrong-password")
        assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    r = login(c, "clerk", PASSWORD)  # within the delay: not even checked
    assert r.status_code == 429 and int(r.headers["Retry-After"]) == 30
    assert "该账户从此地址登录失败次数过多，请 30 秒后再试" in r.get_data(as_text=True)
    failed = _audit(gw_engine, "login.failed")
    assert len(failed) == 5 and all(a["actor"] == "clerk" and a["remote_addr"] == "127.0.0.1" for a in failed)
    assert json.loads(failed[-1]["after"])["failures"] == 5
    assert json.loads(_audit(gw_engine, "login.throttled")[0]["after"])["rule"] == "pair"
    # The same account from another address, and another account from this one, are not slowed.
    other = gw_app.test_client()
    other.environ_base["REMOTE_ADDR"] = "10.20.0.7"
    assert login(other, "clerk").status_code == 302
    assert login(gw_app.test_client(), "viewer").status_code == 302
    # An admin's unlock ends the delay at once.
    admin = client_as(gw_app, "admin")
    admin.post("/accounts/users", data={"action": "unlock", "username": "clerk", "csrf_token": csrf_of(admin, "/accounts/users")})
    assert login(c, "clerk").status_code == 302


def test_free_failures_are_configurable(gw_engine) -> None:  # type: ignore[no-untyped-def]
    app = create_app(engine=gw_engine, test_config={"TESTING": True, "SECRET_KEY": "k", "LOCKOUT_AFTER": 2})
    app.extensions["accounts_ui"].store.add("u1", PASSWORD, "viewer")
    c = app.test_client()
    login(c, "u1", "nope-nope-nope")
    assert login(c, "u1", "nope-nope-nope").status_code == 401
    assert "登录失败次数过多" in login(c, "u1", PASSWORD).get_data(as_text=True)


def test_one_address_trying_many_names_is_throttled(gw_engine) -> None:  # type: ignore[no-untyped-def]
    from gateway.accounts import AccountStore, LoginRefused
    from gateway.accounts.roles import GATEWAY_ROLES

    store = AccountStore(gw_engine, t.users, t.audit, GATEWAY_ROLES, address_limit=3)
    store.add("real", PASSWORD, "viewer")
    for name in ("a1", "a2", "a3"):
        with pytest.raises(LoginRefused, match="用户名或密码错误"):
            store.authenticate(name, "guess-guess-1", "10.0.0.9")
    with pytest.raises(LoginRefused, match="登录失败次数过多"):
        store.authenticate("real", PASSWORD, "10.0.0.9")
    assert store.authenticate("real", PASSWORD, "10.0.0.10").username == "real"  # other addresses are not affected
    assert [a["target"] for a in _audit(gw_engine, "login.throttled")] == ["real"]


def test_unknown_user_and_wrong_password_look_the_same(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    c = gw_app.test_client()
    a = login(c, "nobody", "whatever-123")
    b = login(c, "viewer", "whatever-123")
    assert a.status_code == b.status_code == 401
    assert "用户名或密码错误" in a.get_data(as_text=True) and "用户名或密码错误" in b.get_data(as_text=True)
    reasons = [json.loads(x["after"])["reason"] for x in _audit(gw_engine, "login.failed")]
    assert reasons == ["unknown_user", "bad_password"]


def test_audit_rows_for_login_logout_and_user_changes(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_app, "admin")
    tok = csrf_of(c, "/accounts/users")
    c.post("/accounts/users", data={"action": "role", "username": "viewer", "role": "clerk", "csrf_token": tok})
    c.post("/accounts/logout", data={"csrf_token": tok})
    rows = _audit(gw_engine)
    actions = [(r["actor"], r["action"], r["target"]) for r in rows]
    assert ("admin", "login.ok", "admin") in actions
    assert ("admin", "user.role", "viewer") in actions
    assert ("admin", "logout", "admin") in actions
    change = next(r for r in rows if r["action"] == "user.role")
    assert json.loads(change["before"]) == {"role": "viewer"} and json.loads(change["after"]) == {"role": "clerk"}
    assert change["at"].endswith("+00:00")
    # Logged out: the session no longer opens pages.
    assert c.get("/dashboard/").status_code == 302


def test_password_reset_ends_existing_sessions(gw_app) -> None:  # type: ignore[no-untyped-def]
    clerk = client_as(gw_app, "clerk")
    assert clerk.get("/dashboard/").status_code == 200
    admin = client_as(gw_app, "admin")
    admin.post("/accounts/users", data={"action": "password", "username": "clerk", "password": "Xin-mima-2026-b",
                                        "csrf_token": csrf_of(admin, "/accounts/users")})
    r = clerk.get("/dashboard/")
    assert r.status_code == 302 and "/accounts/login" in r.headers["Location"]
    assert admin.get("/dashboard/").status_code == 200


def test_roles_are_checked_on_every_view(gw_app) -> None:  # type: ignore[no-untyped-def]
    viewer, clerk, admin = (client_as(gw_app, n) for n in ("viewer", "clerk", "admin"))
    assert viewer.get("/dashboard/").status_code == 200
    r = viewer.get("/accounts/users")
    assert r.status_code == 403 and "无权访问" in r.get_data(as_text=True)
    assert clerk.get("/accounts/audit").status_code == 403
    assert admin.get("/accounts/audit").status_code == 200
    tok = csrf_of(viewer, "/dashboard/")
    assert viewer.post("/deliveries/dead-letters/1/retry", data={"csrf_token": tok}).status_code == 403
    assert viewer.post("/deliveries/dead-letters/1/resolve", data={"csrf_token": tok}).status_code == 403
    # Every view function of the app is guarded by a permission, except login/logout/static.
    open_endpoints = {"accounts.login", "accounts.logout", "accounts.static", "static", "root"}
    for rule in gw_app.url_map.iter_rules():
        view = gw_app.view_functions[rule.endpoint]
        assert rule.endpoint in open_endpoints or hasattr(view, "_permission"), rule.endpoint


def test_no_state_change_by_get(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    """GET every page without URL arguments as admin; no table changes."""

    def snapshot() -> dict[str, int]:
        with gw_engine.connect() as conn:
            return {tb.name: conn.execute(select(func.count()).select_from(tb)).scalar_one() for tb in t.metadata.sorted_tables}

    c = client_as(gw_app, "admin")
    before = snapshot()
    for rule in gw_app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments:
            assert c.get(rule.rule).status_code < 500, rule.rule
    assert snapshot() == before
    # Handlers that change state accept POST only (the login form is the one page that shows and posts).
    for rule in gw_app.url_map.iter_rules():
        if "POST" in rule.methods and rule.endpoint != "accounts.login":
            assert "GET" not in rule.methods, rule.endpoint


def test_error_pages_are_chinese_without_traces(gw_app) -> None:  # type: ignore[no-untyped-def]
    @gw_app.get("/boom")
    def boom():  # type: ignore[no-untyped-def]
        raise RuntimeError("secret internals: KeyError in module x")

    c = client_as(gw_app, "viewer")
    r = c.get("/no/such/page")
    assert r.status_code == 404 and "页面不存在" in r.get_data(as_text=True)
    r = c.get("/boom")
    body = r.get_data(as_text=True)
    assert r.status_code == 500 and "系统内部错误" in body
    assert "Traceback" not in body and "secret internals" not in body and "RuntimeError" not in body
    r = c.get("/dashboard/api/nothing-here")
    assert r.status_code == 404 and r.get_json()["message"].startswith("您访问的页面")
    r = c.delete("/dashboard/", headers={"X-CSRF-Token": csrf_of(c, "/dashboard/")})
    assert r.status_code == 405 and "不支持" in r.get_data(as_text=True)


def test_sqlite_store_is_used_as_is(gw_engine) -> None:  # type: ignore[no-untyped-def]
    with gw_engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_password_hash_cost_and_format(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from gateway.accounts import passwords

    monkeypatch.undo()  # the production cost, not the cheaper one the fixtures use
    h = passwords.hash_password("Yige-mima-123")
    assert h.startswith("scrypt$32768$8$1$") and passwords.verify_password("Yige-mima-123", h)
    assert not passwords.verify_password("Yige-mima-124", h) and not passwords.verify_password("x", "bcrypt$junk")

"""Accounts in both UIs (issue 16): a one-time password is changed at first login, every user changes their own
password, the add form defaults to the least role, an admin can neither demote nor delete themself, and the last
admin stays."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from gateway.accounts import AccountError
from gateway.store import open_store
from gateway.store import tables as t
from tests.fixtures.web import PASSWORD, client_as, csrf_of, login

NEW = "Ziji-de-mima-2026"
ONE_TIME = "Yici-xing-mima-77"


def _audit(engine, action):  # type: ignore[no-untyped-def]
    with engine.connect() as c:
        return [dict(r) for r in c.execute(select(t.audit).where(t.audit.c.action == action)).mappings()]


def _flashes(client, path: str) -> str:  # type: ignore[no-untyped-def]
    return " ".join(re.findall(r'<p class="flash error">([^<]*)</p>', client.get(path).get_data(as_text=True)))


def _change(client, current: str, new: str, again: str | None = None, path: str = "/accounts/password"):  # type: ignore[no-untyped-def]
    tok = csrf_of(client, path)
    return client.post(path, data={"current_password": current, "new_password": new,
                                   "new_password2": new if again is None else again, "csrf_token": tok})


# -- gateway -------------------------------------------------------------------------------------------------------

def test_user_added_by_an_admin_must_change_the_password_at_first_login(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    admin = client_as(gw_app, "admin")
    r = admin.post("/accounts/users", data={"action": "add", "username": "zhaoliu", "display_name": "赵六",
                                            "password": ONE_TIME, "role": "clerk",
                                            "csrf_token": csrf_of(admin, "/accounts/users")})
    assert r.status_code == 302
    assert "一次性密码，待本人修改" in admin.get("/accounts/users").get_data(as_text=True)

    c = gw_app.test_client()
    r = login(c, "zhaoliu", ONE_TIME)
    assert r.status_code == 302 and r.headers["Location"].startswith("/accounts/password")
    page = c.get("/accounts/password").get_data(as_text=True)
    assert "一次性密码" in page and "请先设置自己的新密码" in page
    # Every other page sends them back there, keeping where they were going; a POST is refused in Chinese.
    r = c.get("/records/")
    assert r.status_code == 302 and r.headers["Location"] == "/accounts/password?next=/records/"
    assert c.get("/dashboard/").headers["Location"].startswith("/accounts/password")
    r = c.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(c, "/accounts/password")})
    assert r.status_code == 403 and "请先修改初始密码" in r.get_data(as_text=True)

    # The rules, each with its Chinese reason; the one-time password still holds after each refusal.
    for current, new, again, reason in [
        ("wrong-password-1", NEW, None, "当前密码不正确"),
        (ONE_TIME, NEW, NEW + "x", "两次输入的新密码不一致"),
        (ONE_TIME, ONE_TIME, None, "新密码不能与当前密码相同"),
        (ONE_TIME, "short", None, "密码至少需要 10 个字符"),
        (ONE_TIME, "zhaoliu-2026-mima", None, "密码不能包含用户名"),
    ]:
        r = _change(c, current, new, again)
        assert r.status_code == 400 and reason in r.get_data(as_text=True), reason
    assert c.get("/dashboard/").status_code == 302

    r = _change(c, ONE_TIME, NEW, path="/accounts/password?next=/records/")
    assert r.status_code == 302 and r.headers["Location"] == "/records/"
    assert "密码已修改" in c.get("/dashboard/").get_data(as_text=True)
    assert c.get("/records/").status_code == 200
    assert "本人已设置" in admin.get("/accounts/users").get_data(as_text=True)
    change = _audit(gw_engine, "user.password_change")
    assert [(a["actor"], a["target"], json.loads(a["before"])) for a in change] == [("zhaoliu", "zhaoliu", {"one_time": True})]
    assert [a["actor"] for a in _audit(gw_engine, "user.password_change.refused")] == ["zhaoliu"]
    audit_page = admin.get("/accounts/audit").get_data(as_text=True)
    assert "修改本人密码" in audit_page and "修改密码被拒（当前密码错误）" in audit_page

    # Logging in again: the old password is gone, the new one goes straight to the home page.
    fresh = gw_app.test_client()
    assert login(fresh, "zhaoliu", ONE_TIME).status_code == 401
    r = login(fresh, "zhaoliu", NEW)
    assert r.status_code == 302 and r.headers["Location"].endswith("/dashboard/")


def test_password_reset_by_an_admin_is_one_time(gw_app) -> None:  # type: ignore[no-untyped-def]
    admin = client_as(gw_app, "admin")
    admin.post("/accounts/users", data={"action": "password", "username": "viewer", "password": ONE_TIME,
                                        "csrf_token": csrf_of(admin, "/accounts/users")})
    c = gw_app.test_client()
    r = login(c, "viewer", ONE_TIME)
    assert r.headers["Location"].startswith("/accounts/password")
    assert c.get("/dashboard/").status_code == 302
    assert _change(c, ONE_TIME, NEW).status_code == 302
    assert c.get("/dashboard/").status_code == 200
    # An admin resets others' passwords, not their own (that would end their session as a one-time one).
    r = admin.post("/accounts/users", data={"action": "password", "username": "admin", "password": ONE_TIME,
                                            "csrf_token": csrf_of(admin, "/accounts/users")}, follow_redirects=True)
    assert "不能在此重置自己的密码" in r.get_data(as_text=True)
    assert login(gw_app.test_client(), "admin", PASSWORD).headers["Location"].endswith("/dashboard/")


def test_every_user_changes_their_own_password_and_their_other_sessions_end(gw_app) -> None:  # type: ignore[no-untyped-def]
    for role_user in ("viewer", "clerk", "admin"):
        here, elsewhere = client_as(gw_app, role_user), client_as(gw_app, role_user)
        other_user = client_as(gw_app, "viewer" if role_user != "viewer" else "clerk")
        assert 'href="/accounts/password"' in here.get("/dashboard/").get_data(as_text=True)
        r = _change(here, PASSWORD, NEW)
        assert r.status_code == 302, role_user
        assert here.get("/dashboard/").status_code == 200
        r = elsewhere.get("/dashboard/")
        assert r.status_code == 302 and "/accounts/login" in r.headers["Location"], role_user
        assert other_user.get("/dashboard/").status_code == 200
        assert login(gw_app.test_client(), role_user, NEW).status_code == 302
        assert _change(here, NEW, PASSWORD).status_code == 302  # back, for the next role's turn


def test_add_user_form_defaults_to_the_least_role(gw_app) -> None:  # type: ignore[no-untyped-def]
    page = client_as(gw_app, "admin").get("/accounts/users").get_data(as_text=True)
    add_form = page[page.index("添加用户"):]
    assert re.findall(r'<option value="(\w+)" selected>', add_form) == ["viewer"]
    assert "创建时间(北京时间)" in page and "UTC" not in page  # the times shown are Beijing time


def test_admin_can_neither_demote_nor_delete_themself(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    admin = client_as(gw_app, "admin")
    page = admin.get("/accounts/users").get_data(as_text=True)
    own_row = page[page.index("<td>admin"):].split("</tr>")[0]
    assert "本人" in own_row and 'value="delete"' not in own_row and 'value="role"' not in own_row  # no buttons
    tok = csrf_of(admin, "/accounts/users")
    admin.post("/accounts/users", data={"action": "role", "username": "admin", "role": "viewer", "csrf_token": tok})
    assert "不能修改自己的角色：请由另一位管理员操作" in _flashes(admin, "/accounts/users")
    admin.post("/accounts/users", data={"action": "delete", "username": "admin", "csrf_token": tok})
    assert "不能删除自己的账户：请由另一位管理员操作" in _flashes(admin, "/accounts/users")
    store = gw_app.extensions["accounts_ui"].store
    assert store.by_name("admin").role == "admin"
    assert not _audit(gw_engine, "user.role") and not _audit(gw_engine, "user.delete")


def test_the_last_admin_is_never_removed(gw_app) -> None:  # type: ignore[no-untyped-def]
    store = gw_app.extensions["accounts_ui"].store
    with pytest.raises(AccountError, match="不能修改最后一位管理员的角色：系统至少需要一位管理员"):
        store.set_role("admin", "clerk", actor="cli")
    with pytest.raises(AccountError, match="不能删除最后一位管理员"):
        store.delete("admin", actor="cli")
    # With a second admin, one admin may demote or delete the other, down to one.
    store.add("admin2", PASSWORD, "admin")
    admin = client_as(gw_app, "admin")
    tok = csrf_of(admin, "/accounts/users")
    admin.post("/accounts/users", data={"action": "role", "username": "admin2", "role": "clerk", "csrf_token": tok})
    assert store.by_name("admin2").role == "clerk" and not _flashes(admin, "/accounts/users")
    store.set_role("admin2", "admin", actor="admin")
    admin.post("/accounts/users", data={"action": "delete", "username": "admin2", "csrf_token": tok})
    assert store.by_name("admin2") is None
    with pytest.raises(AccountError, match="最后一位管理员"):
        store.set_role("admin", "viewer", actor="admin2")
    # Other users are not held by the rule.
    store.set_role("clerk", "viewer", actor="admin")
    store.delete("clerk", actor="admin")


def test_store_migration_adds_the_flag_and_keeps_old_accounts_unflagged(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "state" / "gateway.db"
    engine = open_store(path)
    with engine.begin() as c:  # a store as version 5 left it: no must_change_password column
        c.execute(text("ALTER TABLE users DROP COLUMN must_change_password"))
        c.execute(text("DELETE FROM schema_version WHERE version >= 6"))
        c.execute(text("INSERT INTO users (username, display_name, password_hash, role, failed_logins, created_at)"
                       " VALUES ('old', '', 'scrypt$x', 'admin', 0, '2026-01-01T00:00:00+00:00')"))
    engine.dispose()
    engine = open_store(path)
    from gateway.accounts import AccountStore
    from gateway.accounts.roles import GATEWAY_ROLES

    store = AccountStore(engine, t.users, t.audit, GATEWAY_ROLES)
    assert store.by_name("old").must_change_password is False
    assert store.add("new", PASSWORD, "viewer", one_time=True).must_change_password is True
    engine.dispose()


def test_cli_one_time_and_demo_passwords(gateway_dir, live_hub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.cli import cli

    gateway_dir.for_hub(live_hub)
    cfg = str(gateway_dir.config_path)
    r = CliRunner().invoke(cli, ["--config", cfg, "user", "add", "sun", "--role", "clerk", "--password-stdin",
                                 "--one-time"], input=ONE_TIME + "\n")
    assert r.exit_code == 0 and "首次登录时须修改密码" in r.output, r.output
    assert "sun\tclerk\t  one-time password" in CliRunner().invoke(cli, ["--config", cfg, "user", "list"]).output
    r = CliRunner().invoke(cli, ["--config", cfg, "user", "passwd", "sun", "--password-stdin"], input=NEW + "\n")
    assert r.exit_code == 0 and "one-time" not in CliRunner().invoke(cli, ["--config", cfg, "user", "list"]).output

    from gateway.demo.runner import ADMIN_USER, ensure_admin

    engine = open_store(tmp_path / "demo.db")
    ensure_admin(engine)
    from gateway.accounts import AccountStore
    from gateway.accounts.roles import GATEWAY_ROLES

    assert AccountStore(engine, t.users, t.audit, GATEWAY_ROLES).by_name(ADMIN_USER).must_change_password
    engine.dispose()


# -- hub operators' UI -----------------------------------------------------------------------------------------------

@pytest.fixture
def hub_accounts(live_hub):  # type: ignore[no-untyped-def]
    from gateway.hub.app import create_app
    from gateway.hub.config import load_hub_config
    from gateway.hub.ui_tables import hub_account_store

    store = hub_account_store(live_hub.engine)
    store.add("op", PASSWORD, "operator")
    store.add("look", PASSWORD, "viewer")
    app = create_app(load_hub_config(live_hub.config_path))
    return app, store


def test_hub_one_time_password_and_own_change(hub_accounts, live_hub) -> None:  # type: ignore[no-untyped-def]
    app, store = hub_accounts
    op = app.test_client()
    assert login(op, "op", prefix="/ui").status_code == 302
    page = op.get("/ui/accounts/users").get_data(as_text=True)
    assert re.findall(r'<option value="(\w+)" selected>', page[page.index("添加用户"):]) == ["viewer"]
    assert "创建时间(北京时间)" in page
    assert "时间(北京时间)" in op.get("/ui/accounts/audit").get_data(as_text=True)
    op.post("/ui/accounts/users", data={"action": "add", "username": "xiaoli", "password": ONE_TIME, "role": "viewer",
                                        "csrf_token": csrf_of(op, "/ui/accounts/users")})
    c = app.test_client()
    r = login(c, "xiaoli", ONE_TIME, prefix="/ui")
    assert r.status_code == 302 and r.headers["Location"].startswith("/ui/accounts/password")
    r = c.get("/ui/receipts")
    assert r.status_code == 302 and r.headers["Location"] == "/ui/accounts/password?next=/ui/receipts"
    assert c.get("/api/v1/hub").status_code == 200  # the hub's API is not the UI's concern
    assert _change(c, "nope-nope-nope", NEW, path="/ui/accounts/password").status_code == 400
    assert _change(c, ONE_TIME, NEW, path="/ui/accounts/password").status_code == 302
    assert c.get("/ui/receipts").status_code == 200
    assert store.by_name("xiaoli").must_change_password is False
    # The viewer changes their own password too.
    look = app.test_client()
    login(look, "look", prefix="/ui")
    assert _change(look, PASSWORD, NEW, path="/ui/accounts/password").status_code == 302
    assert login(app.test_client(), "look", NEW, prefix="/ui").status_code == 302


def test_hub_operator_can_neither_demote_nor_delete_themself(hub_accounts) -> None:  # type: ignore[no-untyped-def]
    app, store = hub_accounts
    op = app.test_client()
    login(op, "op", prefix="/ui")
    tok = csrf_of(op, "/ui/accounts/users")
    op.post("/ui/accounts/users", data={"action": "role", "username": "op", "role": "viewer", "csrf_token": tok})
    assert "不能修改自己的角色：请由另一位运维人员操作" in _flashes(op, "/ui/accounts/users")
    op.post("/ui/accounts/users", data={"action": "delete", "username": "op", "csrf_token": tok})
    assert "不能删除自己的账户" in _flashes(op, "/ui/accounts/users")
    with pytest.raises(AccountError, match="不能删除最后一位运维人员"):
        store.delete("op", actor="cli")
    assert store.by_name("op").role == "operator"


@pytest.mark.parametrize("hub_fixture", ["live_hub", "live_hub_pg"])
def test_hub_adds_the_flag_to_an_older_ui_users_table(hub_fixture, request) -> None:  # type: ignore[no-untyped-def]
    from gateway.hub.ui_tables import hub_account_store

    live_hub = request.getfixturevalue(hub_fixture)

    hub_account_store(live_hub.engine).add("before", PASSWORD, "operator")
    with live_hub.engine.begin() as c:
        c.execute(text("ALTER TABLE ui_users DROP COLUMN must_change_password"))
    store = hub_account_store(live_hub.engine)
    assert store.by_name("before").must_change_password is False
    store.set_password("before", ONE_TIME, actor="cli", one_time=True)
    assert store.by_name("before").must_change_password is True
    hub_account_store(live_hub.engine)  # again: nothing to add, no error


def test_two_operators_removing_each_other_at_once_leave_one(live_hub_pg) -> None:  # type: ignore[no-untyped-def]
    """On PostgreSQL the admins' rows are locked: the second change waits for the first and then sees one left."""
    import threading

    from sqlalchemy import update

    from gateway.hub.ui_tables import hub_account_store, hub_users

    store = hub_account_store(live_hub_pg.engine)
    store.add("op1", PASSWORD, "operator")
    store.add("op2", PASSWORD, "operator")
    outcome: list[object] = []
    with live_hub_pg.engine.begin() as c:  # op1 demotes op2: checked and written, not yet committed
        store._keep_an_admin(c, "op2", "op1", "role")
        c.execute(update(hub_users).where(hub_users.c.username == "op2").values(role="viewer"))

        def op2_demotes_op1() -> None:
            try:
                store.set_role("op1", "viewer", actor="op2")
                outcome.append("done")
            except AccountError as e:
                outcome.append(str(e))

        th = threading.Thread(target=op2_demotes_op1)
        th.start()
        with live_hub_pg.engine.connect() as watch:  # until op2's change waits on op1's row lock
            waiting = text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            while not watch.execute(waiting).scalar():
                # pg_stat_activity is read once per transaction: end it, or the loop never sees the wait begin.
                watch.rollback()
                th.join(0.02)
                assert th.is_alive(), outcome  # finished without waiting: nothing locked the operators' rows
    th.join(30)
    assert len(outcome) == 1 and "不能修改最后一位运维人员的角色" in str(outcome[0])
    assert store.by_name("op1").role == "operator" and store.by_name("op2").role == "viewer"

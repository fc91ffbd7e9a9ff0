"""Issue 16, accounts, in Chromium: an admin adds a user (the role defaults to 查看者) with a one-time password; the
user logs in with it, is held on 修改密码 until they choose their own, then logs in with that. The same at the hub.
Screenshots go to test-output/screenshots/ (16-acct-*)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import screenshot, served
from tests.fixtures.web import PASSWORD

pytestmark = pytest.mark.browser

ONE_TIME = "Yici-xing-mima-77"
OWN = "Ziji-de-mima-2026"


def _login(page, base: str, user: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/accounts/login")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()


def _logout(page) -> None:  # type: ignore[no-untyped-def]
    page.get_by_role("button", name="退出登录").click()
    page.wait_for_url(re.compile(r"/accounts/login"))


def _change_password(page, current: str, new: str, again: str) -> None:  # type: ignore[no-untyped-def]
    page.get_by_label("当前密码").fill(current)
    page.get_by_label("新密码", exact=True).fill(new)
    page.get_by_label("再次输入新密码").fill(again)
    page.get_by_role("button", name="修改密码").click()


def test_one_time_password_is_changed_at_first_login(gw_app, page) -> None:  # type: ignore[no-untyped-def]
    with served(gw_app) as base:
        _login(page, base, "admin", PASSWORD)
        page.wait_for_url(re.compile(r"/dashboard/$"))
        page.get_by_role("link", name="用户", exact=True).click()
        add = page.locator("section.card", has_text="添加用户")
        expect(add.get_by_label("角色")).to_have_value("viewer")
        expect(add.get_by_label("角色").locator("option:checked")).to_have_text("查看者")
        add.get_by_label("用户名").fill("zhaoliu")
        add.get_by_label("姓名").fill("赵六")
        add.get_by_label("初始密码").fill(ONE_TIME)
        add.get_by_role("button", name="添加").click()
        expect(page.locator(".flash.ok")).to_contain_text("首次登录时须修改")
        row = page.locator("tr", has_text="zhaoliu")
        expect(row).to_contain_text("查看者")
        expect(row).to_contain_text("一次性密码，待本人修改")
        screenshot(page, "16-acct-01-user-added-one-time")
        _logout(page)

        _login(page, base, "zhaoliu", ONE_TIME)
        page.wait_for_url(re.compile(r"/accounts/password"))
        expect(page.locator("#forced-change")).to_contain_text("一次性密码")
        expect(page.locator("header nav a")).to_have_count(0)  # nothing to wander off to yet
        screenshot(page, "16-acct-02-forced-change")
        page.goto(base + "/records/")  # any other page sends them back
        page.wait_for_url(re.compile(r"/accounts/password\?next=/records/"))
        _change_password(page, ONE_TIME, OWN, OWN + "x")
        expect(page.locator(".flash.error")).to_have_text("两次输入的新密码不一致")
        screenshot(page, "16-acct-03-mismatch")
        _change_password(page, ONE_TIME, OWN, OWN)
        page.wait_for_url(re.compile(r"/records/$"))
        expect(page.locator(".flash.ok")).to_contain_text("密码已修改")
        expect(page.locator("header")).to_contain_text("赵六（查看者）")
        expect(page.get_by_role("link", name="总览")).to_be_visible()
        screenshot(page, "16-acct-04-changed")
        _logout(page)

        _login(page, base, "zhaoliu", ONE_TIME)
        expect(page.locator(".flash.error")).to_have_text("用户名或密码错误")
        _login(page, base, "zhaoliu", OWN)
        page.wait_for_url(re.compile(r"/dashboard/$"))
        expect(page.locator("h1").first).to_have_text("总览")
        screenshot(page, "16-acct-05-login-with-own-password")


def test_hub_operator_with_a_one_time_password_changes_it(live_hub, page) -> None:  # type: ignore[no-untyped-def]
    from gateway.hub.app import create_app
    from gateway.hub.config import load_hub_config
    from gateway.hub.ui_tables import hub_account_store

    hub_account_store(live_hub.engine).add("xiaoli", ONE_TIME, "operator", display_name="小李", one_time=True)
    with served(create_app(load_hub_config(live_hub.config_path))) as root:
        base = root + "/ui"
        _login(page, base, "xiaoli", ONE_TIME)
        page.wait_for_url(re.compile(r"/ui/accounts/password"))
        page.goto(base + "/departments")
        page.wait_for_url(re.compile(r"/ui/accounts/password\?next=/ui/departments"))
        _change_password(page, ONE_TIME, OWN, OWN)
        page.wait_for_url(re.compile(r"/ui/departments$"))
        expect(page.locator(".flash.ok")).to_contain_text("密码已修改")
        page.get_by_role("link", name="用户", exact=True).click()
        own = page.locator("tr", has_text="xiaoli")
        expect(own).to_contain_text("本人")
        expect(own.get_by_role("button", name="删除")).to_have_count(0)
        expect(page.locator("section.card", has_text="添加用户").get_by_label("角色")).to_have_value("viewer")
        screenshot(page, "16-acct-06-hub-users")
        _logout(page)
        _login(page, base, "xiaoli", OWN)
        page.wait_for_url(re.compile(r"/ui/receipts"))

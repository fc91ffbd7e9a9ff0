"""End to end in Chromium: log in, edit a mapping and watch the preview, save, push a record, see its
receipt, then find that receipt in the hub operators' UI. Screenshots go to test-output/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from gateway.hub.ui_tables import hub_account_store
from tests.fixtures.browser import screenshot, served
from tests.fixtures.web import PASSWORD

pytestmark = pytest.mark.browser


def _login(page, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/accounts/login")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()


def test_admin_and_operator_flow(gw_site, page) -> None:  # type: ignore[no-untyped-def]
    hub = gw_site.live_hub
    with served(gw_site) as base:
        page.goto(base + "/dashboard/")
        assert "/accounts/login" in page.url
        screenshot(page, "01-login")
        _login(page, base, "admin")
        page.wait_for_url(re.compile(r"/dashboard/$"))
        page.locator("#hub-health.okc").wait_for()
        assert "可访问" in page.locator("#hub-health").inner_text()
        screenshot(page, "02-dashboard")

        # Mapping editor: the preview shows the bad 储备方式 of WZ-0003 ...
        page.goto(base + "/mappings/wz_db")
        table = page.locator("#preview-table")
        expect(page.locator("#preview-summary")).to_contain_text("2 行通过")
        bad_cell = table.locator("tbody tr", has_text="WZ-0003").locator("td.err")
        assert "储备方式" in (bad_cell.get_attribute("title") or "") or bad_cell.count() == 1
        screenshot(page, "03-mapping-preview-error")
        # ... make 储备方式 a constant and the preview updates by itself.
        row = page.locator('tr[data-field="reserve_mode"]')
        row.locator("select").select_option("constant")
        row.locator('input[name="f.reserve_mode.value"]').fill("1")
        expect(page.locator("#preview-summary")).to_contain_text("3 行通过")
        assert page.locator("#preview-table td.err").count() == 0
        page.get_by_label("修改说明（必填）").fill("储备方式统一为实物储备")
        page.get_by_role("button", name="保存为新版本").click()
        page.locator(".flash.ok", has_text="已保存为版本 1").wait_for()
        assert page.locator("text=储备方式统一为实物储备").count() >= 1
        screenshot(page, "04-mapping-saved")

        # Record form: checked as you type, then pushed and receipted.
        page.goto(base + "/records/material/new")
        page.get_by_label("物资编码").fill("WZ-WEB-1")
        page.get_by_label("物资分类代码").fill("12")
        err = page.locator('[data-error-for="category_code"]')
        expect(err).to_contain_text("物资分类代码")
        screenshot(page, "05a-record-form-error")
        page.get_by_label("物资分类代码").fill("1010100")
        page.get_by_label("物资名称").fill("救生衣")
        page.get_by_label("计量单位").fill("件")
        page.get_by_label("储备方式").select_option("1")
        expect(page.locator("#validate-status")).to_have_text("校验通过")
        screenshot(page, "05-record-form")
        page.get_by_role("button", name="保存并推送").click()
        outcome = page.locator("#push-outcome")
        outcome.wait_for()
        assert outcome.get_attribute("data-status") == "delivered", outcome.inner_text()
        receipt = page.locator("#receipt tbody tr").first
        assert "已接收" in receipt.inner_text()
        batch_id = receipt.locator("code").first.inner_text()
        screenshot(page, "06-record-receipt")

        page.goto(base + "/deliveries/")
        assert batch_id in page.content()
        screenshot(page, "07-deliveries")
        page.goto(base + "/dashboard/")
        page.locator("#hub-health.okc").wait_for()
        screenshot(page, "07b-dashboard-after-push")

    # The same receipt in the hub's log, as an operator sees it.
    hub_account_store(hub.engine).add("op", PASSWORD, "operator")
    _login(page, hub.url + "/ui", "op")
    page.wait_for_url(re.compile(r"/ui/receipts"))
    page.get_by_label("记录键").fill("WZ-WEB-1")
    page.get_by_role("button", name="查询").click()
    page.wait_for_url(re.compile(r"key=WZ-WEB-1"))
    rows = page.locator("table tbody tr")
    assert rows.count() == 1 and "已接收" in rows.first.inner_text() and batch_id[:13] in rows.first.inner_text()
    screenshot(page, "08-hub-receipts")
    page.goto(hub.url + "/ui/departments")
    assert "按时更新" in page.content()
    screenshot(page, "09-hub-departments")
    page.goto(hub.url + "/ui/report")
    screenshot(page, "10-hub-report")
    page.goto(hub.url + "/ui/log/verify")
    assert "哈希链完整" in page.content()
    screenshot(page, "11-hub-verify")

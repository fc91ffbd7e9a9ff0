"""Issue 16 in Chromium, as a clerk and an admin would: 问题数据 (refused rows stay in sight, open one in the
form, filter, export), 被退回记录 (a later accepted version closes a return), 查找记录. Screenshots go to the
test's tmp dir (screenshots/)."""

from __future__ import annotations

import re
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import served
from tests.fixtures.web import PASSWORD, client_as, csrf_of

pytestmark = pytest.mark.browser


def _login(page, base: str, user: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(base + "/accounts/login")
    page.get_by_label("用户名").fill(user)
    page.get_by_label("密码").fill(PASSWORD)
    page.get_by_role("button", name="登录").click()
    page.wait_for_url(re.compile(r"/dashboard/$"))


def _shot(page, tmp_path: Path, name: str) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "screenshots"
    folder.mkdir(exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def test_refused_row_stays_in_sight_and_is_corrected_in_the_form(gw_site, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with served(gw_site) as base:
        _login(page, base, "admin")
        for _ in range(2):  # two runs: the refused row is still listed once
            page.goto(base + "/sources/wz_db")
            page.get_by_role("button", name="立即同步").click()
            page.locator(".flash.ok").wait_for()
        page.goto(base + "/dashboard/")
        card = page.locator("#problems-card")
        expect(card.locator(".v")).to_have_text("1")
        _shot(page, tmp_path, "16-01-dashboard-problems")
        card.get_by_role("link").click()
        rows = page.locator("#problems tbody tr")
        expect(rows).to_have_count(1)
        text = rows.first.inner_text()
        assert "wz_db" in text and "WZ-0003" in text and "储备方式" in text and "9" in text
        page.get_by_label("字段").select_option(label="储备方式")
        page.get_by_role("button", name="筛选").click()
        page.wait_for_url(re.compile(r"field=reserve_mode"))
        expect(rows).to_have_count(1)
        _shot(page, tmp_path, "16-02-problems")
        with page.expect_download() as dl:
            page.get_by_role("link", name="导出 XLSX").click()
        download = dl.value
        assert download.suggested_filename == "问题数据.xlsx"
        saved = tmp_path / download.suggested_filename
        download.save_as(saved)
        ws = openpyxl.load_workbook(saved).active
        assert ws["A2"].value == "wz_db" and ws["D2"].value == "WZ-0003" and ws["E2"].value == "储备方式"

        page.get_by_role("link", name="在表单中打开").click()
        expect(page.get_by_label("物资编码")).to_have_value("WZ-0003")
        expect(page.get_by_label("物资名称")).to_have_value("发电机")
        expect(page.locator('[data-error-for="reserve_mode"]')).to_contain_text("储备方式")
        _shot(page, tmp_path, "16-03-refused-row-in-form")
        page.get_by_label("储备方式").select_option("1")
        expect(page.locator("#validate-status")).to_have_text("校验通过")
        page.get_by_role("button", name="保存并推送").click()
        expect(page.locator("#push-outcome")).to_have_attribute("data-status", "delivered")
        page.get_by_role("link", name="问题数据").first.click()
        expect(page.locator("#problems tbody")).to_contain_text("当前没有被拒收的行")
        page.goto(base + "/dashboard/")
        expect(page.locator("#problems-card .v")).to_have_text("0")
        _shot(page, tmp_path, "16-04-problems-cleared")


STOCK = {"物资编码": "WZ-NEW", "储备库编码": "KU-01", "储备数量": "3", "计量单位": "张", "核查日期": "2026-01-02"}


def _stock_form(page, base: str, quantity: str) -> str:  # type: ignore[no-untyped-def]
    page.goto(base + "/records/stock/new")
    for label, value in {**STOCK, "储备数量": quantity}.items():
        page.get_by_label(label).fill(value)
    expect(page.locator("#validate-status")).to_have_text("校验通过")
    page.get_by_role("button", name="保存并推送").click()
    return page.locator("#push-outcome").inner_text()


def test_later_accepted_version_closes_the_returned_record(gw_site, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with served(gw_site) as base:
        _login(page, base, "clerk")
        assert "拒收" in _stock_form(page, base, "3")  # material and depot unknown at the hub
        page.get_by_role("link", name="推送与回执").click()
        link = page.locator("#returns-link")
        expect(link).to_contain_text("待处理 1 条")
        link.click()
        expect(page.locator("h1")).to_contain_text("被退回记录")
        assert "死信" not in page.content()
        expect(page.get_by_role("button", name="重新推送")).to_have_count(1)
        _shot(page, tmp_path, "16-05-returned")
        # The clerk reports the material and the depot (the plain forms, as the flow test drives them) ...
        c = client_as(gw_site, "clerk")
        tok = csrf_of(c, "/records/")
        c.post(
            "/records/material",
            data={
                "material_id": "WZ-NEW",
                "material_name": "折叠床",
                "category_code": "1010100",
                "unit": "张",
                "reserve_mode": "1",
                "csrf_token": tok,
            },
        )
        c.post(
            "/records/depot",
            data={
                "depot_id": "KU-01",
                "depot_name": "县级救灾物资储备库",
                "depot_level": "3",
                "region_code": "350121",
                "address": "某县某路1号",
                "mgmt_unit_name": "某县应急管理局",
                "contact_name": "王五",
                "contact_phone": "13800138000",
                "csrf_token": tok,
            },
        )
        # ... and saves the stock again: the hub takes version 2, which closes the return of version 1.
        assert "已签收" in _stock_form(page, base, "4")
        page.goto(base + "/deliveries/dead-letters")
        expect(page.locator("tbody")).to_contain_text("没有待处理的被退回记录")
        page.get_by_role("link", name="包括已处理").click()
        expect(page.locator("tbody")).to_contain_text("已被后续版本取代")
        _shot(page, tmp_path, "16-06-return-superseded")
        page.goto(base + "/deliveries/")
        expect(page.locator("#returns-link")).to_contain_text("待处理 0 条")
        expect(page.locator("#state-dead .v")).to_have_text("0")
        page.goto(base + "/dashboard/")
        expect(page.locator("#returns-card .v")).to_have_text("0")


def test_find_a_synced_record_and_its_receipts(gw_site, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.push.client import push_pending

    with served(gw_site) as base:
        _login(page, base, "admin")
        page.goto(base + "/sources/wz_db")
        page.get_by_role("button", name="立即同步").click()
        page.locator(".flash.ok").wait_for()
        ui = gw_site.extensions["gateway"]
        push_pending(ui.config, ui.engine)  # what the running push worker does
        page.get_by_role("link", name="查找记录").click()
        page.get_by_label("记录键或名称").fill("帐篷")
        page.get_by_role("button", name="查找").click()
        rows = page.locator("#find-results tbody tr")
        expect(rows).to_have_count(1)
        text = rows.first.inner_text()
        assert "WZ-0002" in text and "wz_db" in text and "已接收" in text
        _shot(page, tmp_path, "16-07-find")
        rows.first.get_by_role("link", name="版本与回执").click()
        expect(page.locator("h1")).to_contain_text("WZ-0002")
        expect(page.locator("h2:text-is('回执') + table")).to_contain_text("已接收")
        _shot(page, tmp_path, "16-08-find-history")


def test_a_key_changing_mapping_states_its_cost_and_is_saved_only_when_confirmed(gw_site, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = gw_site.extensions["gateway"].config.source("wz_db").mapping
    with served(gw_site) as base:
        page.set_viewport_size({"width": 1366, "height": 768})
        _login(page, base, "admin")
        page.goto(base + "/mappings/wz_db")
        impact = page.locator("#preview-impact")
        expect(impact).to_contain_text("记录没有变化")
        # At 1366 px a transform like ["trim"] fits its input, and no preview heading or error is
        # wrapped one Chinese character per line.
        assert page.get_by_label("物资编码 转换").bounding_box()["width"] >= 110
        for th in page.locator("#preview-table th").all():
            assert th.bounding_box()["height"] < 40, th.inner_text()
        assert page.locator("#preview-table td.err").first.bounding_box()["width"] >= 150
        page.get_by_label("物资编码 转换").fill('["lower"]')
        expect(impact).to_contain_text("2 条记录的主键字段变化，将在中心删除并重建")
        expect(impact).to_have_class("flash error")
        _shot(page, tmp_path, "16-10-mapping-impact")
        before = path.read_text(encoding="utf-8")
        page.get_by_label("修改说明（必填）").fill("编码改小写")
        page.get_by_role("button", name="保存为新版本").click()
        box = page.locator("#save-confirm")
        expect(box).to_contain_text("尚未保存")
        assert path.read_text(encoding="utf-8") == before
        _shot(page, tmp_path, "16-11-mapping-confirm")
        box.get_by_label("我已知晓：2 条记录将在中心删除并重建").check()
        page.get_by_role("button", name="保存为新版本").click()
        expect(page.locator(".flash.ok")).to_contain_text("已保存为版本 1")
        assert '"lower"' in path.read_text(encoding="utf-8")


def test_manual_sync_and_import_run_as_jobs_with_progress(gw_site, page, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "应急物资基础信息"
    ws.append(["物资编码", "物资名称", "物资分类代码", "计量单位", "储备方式"])
    for i in range(450):
        ws.append([f"XL-{i:04d}", "棉被", "1010100", "床", "1" if i != 7 else "9"])
    buf = io.BytesIO()
    wb.save(buf)
    upload = tmp_path / "乡镇填报.xlsx"
    upload.write_bytes(buf.getvalue())
    with served(gw_site) as base:
        _login(page, base, "admin")
        page.goto(base + "/sources/wz_db")
        page.get_by_role("button", name="立即同步").click()
        page.wait_for_url(re.compile(r"/jobs/[0-9a-f]{16}$"))
        expect(page.locator("h1")).to_have_text("同步数据源 wz_db")
        expect(page.locator("#job-message")).to_contain_text("同步完成：读取 3 行")
        expect(page.locator("#job-state")).to_have_text("已完成")
        expect(page.locator("#job-count")).to_have_text("已读取 3 行")
        assert page.locator("#job-bar").evaluate("b => b.value === b.max")
        _shot(page, tmp_path, "16-12-sync-job")
        page.get_by_role("link", name="查看数据源").click()
        expect(page.locator("h1")).to_contain_text("wz_db")

        page.goto(base + "/spreadsheet/")
        page.locator("input[type=file]").set_input_files(str(upload))
        page.get_by_role("button", name="导入").click()
        # The job page counts rows against the workbook's 450, then opens the import's result.
        page.wait_for_url(re.compile(r"/spreadsheet/result/[0-9a-f]{16}$"))
        expect(page.locator("h1")).to_have_text("导入结果 · 乡镇填报.xlsx")
        expect(page.locator(".stat").first.locator(".v")).to_have_text("449")
        expect(page.get_by_role("link", name=re.compile("下载错误说明"))).to_be_visible()
        _shot(page, tmp_path, "16-13-import-result")

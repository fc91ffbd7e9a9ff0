"""The 通报 page in Chromium (issue 16): what an operator reads on screen and on paper, with screenshots
(test-output/screenshots/) and the PDF the browser's print makes."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import SCREENSHOTS, screenshot, served
from tests.fixtures.web import PASSWORD
from tests.test_hub_bulletin import LONG_NAME, PERIOD, bulletin_hub  # noqa: F401  (the fixture)

pytestmark = pytest.mark.browser


def test_bulletin_page_reads_as_a_document_and_prints_on_a4(bulletin_hub, page) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    with served(bulletin_hub.ui_app) as base:
        page.set_viewport_size({"width": 1366, "height": 768})
        page.goto(base + "/ui/accounts/login")
        page.get_by_label("用户名").fill("op")
        page.get_by_label("密码").fill(PASSWORD)
        page.get_by_role("button", name="登录").click()
        page.wait_for_url(re.compile(r"/ui/"))
        page.goto(f"{base}/ui/report?from={PERIOD['from']}&to={PERIOD['to']}")

        doc = page.locator("#bulletin")
        expect(doc.locator("h1")).to_have_text("应急物资数据更新情况通报")
        expect(page.locator("#office")).to_have_text("乡镇应急管理办公室")
        expect(page.locator("#period")).to_contain_text(f"统计期间：{PERIOD['from']} 至 {PERIOD['to']}")
        expect(page.locator("#period")).to_contain_text("北京时间")
        summary = page.locator("#summary")
        expect(summary).to_contain_text("共 4 个部门，其中按时更新 2 个、更新滞后 1 个、未报送 1 个")
        expect(summary).to_contain_text("超期未更新或未核查 1 条")
        # The departments to act, by name and why.
        action = page.locator("#action li")
        expect(action).to_have_count(3)
        expect(action.nth(0)).to_contain_text("自然资源局")
        expect(action.nth(0)).to_contain_text("1 批库存已过有效期")
        expect(page.locator("#action")).to_contain_text(
            "应急管理局（更新滞后）：1 条记录超期未更新或未核查；拒收率 16.7%"
        )
        expect(page.locator("#action")).to_contain_text(f"{LONG_NAME}（未报送）：期内未报送")
        # Ranked table: the order an operator reads, the long name on one line.
        names = [t.split("\n")[0] for t in page.locator("#rank tbody td.name").all_inner_texts()]
        assert names == ["自然资源局", "卫生健康委", "应急管理局", LONG_NAME]
        long_cell = page.locator("#rank tbody td.name", has_text=LONG_NAME)
        height, font = long_cell.evaluate(
            "td => { const r = document.createRange(); r.selectNodeContents(td.firstChild); "
            "return [r.getBoundingClientRect().height, parseFloat(getComputedStyle(td).fontSize)]; }"
        )
        assert height < 2 * font, (height, font)  # one line: the name is not wrapped
        expect(page.locator("#rank tbody tr").nth(3)).to_contain_text("从未报送")
        # Charts: three server-rendered SVGs with their titles and the reject rate of 应急管理局.
        charts = page.locator("#charts svg")
        expect(charts).to_have_count(3)
        for i in range(3):
            expect(charts.nth(i)).to_be_visible()
        expect(charts.nth(0)).to_contain_text("各部门拒收率")
        expect(charts.nth(0)).to_contain_text("16.7%")
        expect(charts.nth(1)).to_contain_text("各部门超期记录占比")
        expect(charts.nth(2)).to_contain_text("近 4 期趋势")
        screenshot(page, "hub-bulletin-screen")

        # On paper: no navigation or forms, A4 landscape.
        page.emulate_media(media="print")
        expect(page.locator("header.top")).to_be_hidden()
        expect(page.get_by_role("button", name="生成")).to_be_hidden()
        expect(doc.locator("h1")).to_be_visible()
        screenshot(page, "hub-bulletin-print")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        pdf = page.pdf(path=str(SCREENSHOTS / "hub-bulletin.pdf"), prefer_css_page_size=True, print_background=True)
        pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
        assert 1 <= pages <= 3, pages  # four departments, three charts: not the 27 pages of old

"""The county's 通报 workbook carries 分辖区汇总 with the page's figures (docs/hub.md, "The county's 通报")."""

from __future__ import annotations

import io
import re

import openpyxl

from gateway.hub.ui_tables import hub_account_store
from tests.fixtures.hub import batch_body, record, sample
from tests.fixtures.web import PASSWORD, csrf_of, login
from tests.test_hub_forward import stored, wait_for


def _page_areas(page: str) -> list[list[str]]:
    """The page's 分辖区汇总 rows as the operator reads them: each cell's text, the muted share beside its count."""
    table = re.search(r'<table class="rank" id="areas">.*?</table>', page, re.S)
    assert table is not None, "no 分辖区汇总 on the page"
    rows = []
    for tr in re.findall(r"<tr>(.*?)</tr>", table.group(0).split("<tbody>")[1], re.S):
        cells = [re.sub(r"<[^>]+>", " ", td).split() for td in re.findall(r"<td[^>]*>(.*?)</td>", tr, re.S)]
        rows.append([" ".join(c) for c in cells])
    return rows


def _sheet_as_page(ws) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The sheet's rows in the page's shape: a count and its share in one cell, as the page prints them."""
    head = [c.value for c in ws[1]]
    assert head == ["辖区（下级中心）", "部门数", "现存记录", "期内更新", "超期未更新", "超期占比", "被拒绝", "拒收率",
                    "需整改的部门"]
    out = []
    for row in ws.iter_rows(min_row=2):
        v = {h: c for h, c in zip(head, row, strict=True)}
        for h in ("部门数", "现存记录", "期内更新", "超期未更新", "被拒绝"):
            assert v[h].data_type == "n", (h, v[h].value)  # counts are numbers, not text
        assert v["超期占比"].number_format == "0.0%" and v["拒收率"].number_format == "0.0%"
        out.append([
            v["辖区（下级中心）"].value, str(v["部门数"].value), str(v["现存记录"].value), str(v["期内更新"].value),
            f"{v['超期未更新'].value} {v['超期占比'].value * 100:.1f}%", f"{v['被拒绝'].value} {v['拒收率'].value * 100:.1f}%",
            v["需整改的部门"].value,
        ])
    return out


def test_the_county_bulletin_workbook_sums_per_township_as_the_page_does(hub_levels) -> None:
    township, county = hub_levels(("township", "county")).hubs
    # dept001 reports; dept002 (卫生健康委) sends nothing: its township names it for action.
    township.post("/api/v1/batches", batch_body([record("material", sample("material", n)) for n in (1, 2)]))
    wait_for(lambda: len(stored(county)) == 2)
    hub_account_store(county.engine).add("op", PASSWORD, "operator")
    c = county.app.test_client()
    assert login(c, "op", prefix="/ui").status_code == 302
    page_rows = _page_areas(c.get("/ui/report").get_data(as_text=True))
    assert page_rows == [["township hub", "2", "2", "2", "0 0.0%", "0 0.0%", "卫生健康委"]], page_rows

    r = c.post("/ui/report.xlsx", data={"csrf_token": csrf_of(c, "/ui/report")})
    assert r.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    assert wb.sheetnames[1:] == ["分辖区汇总", "需整改部门"]
    assert _sheet_as_page(wb["分辖区汇总"]) == page_rows
    # Each department's row on the first sheet names its area, as the page does.
    head = [c.value for c in wb.worksheets[0][4]]
    areas = {row[1].value: row[head.index("所属辖区")].value for row in wb.worksheets[0].iter_rows(min_row=5)}
    assert areas == {"dept001": "township hub", "dept002": "township hub"}


def test_a_township_workbook_has_no_area_sheet(hub_levels) -> None:
    township, _county = hub_levels(("township", "county")).hubs
    township.post("/api/v1/batches", batch_body([record("material", sample("material", 1))]))
    hub_account_store(township.engine).add("op", PASSWORD, "operator")
    c = township.app.test_client()
    assert login(c, "op", prefix="/ui").status_code == 302
    r = c.post("/ui/report.xlsx", data={"csrf_token": csrf_of(c, "/ui/report")})
    assert r.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    assert wb.sheetnames[1:] == ["需整改部门"] and "所属辖区" not in [c.value for c in wb.worksheets[0][4]]

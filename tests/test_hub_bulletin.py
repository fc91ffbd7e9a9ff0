"""The 通报 (issue 16): the XLSX as a clerk opens it (types, widths, frozen panes, number formats, page setup),
Chinese download names, Beijing time on the operators' pages, and the timezone settings."""

from __future__ import annotations

import datetime as dt
import io
import urllib.parse
from pathlib import Path

import openpyxl
import pytest
from sqlalchemy import select

from gateway.config import load_gateway_config
from gateway.errors import ConfigError
from gateway.hub import registry
from gateway.hub.app import create_app
from gateway.hub.config import hub_config_from_dict, load_hub_config
from gateway.hub.tables import receipt_log, receipts
from gateway.hub.ui.bulletin_xlsx import display_width
from gateway.hub.ui.stats import local_day
from gateway.hub.ui_tables import hub_account_store
from gateway.localtime import DEFAULT_TIMEZONE
from tests.fixtures.hub import batch_body, record, sample
from tests.fixtures.web import PASSWORD, csrf_of, login

LONG_NAME = "卫生健康委员会应急物资保障处"  # a name the old export cut off when printed
TODAY = local_day(dt.datetime.now(dt.UTC), DEFAULT_TIMEZONE)  # the operator's today: the 通报's days are Beijing days


def _day(days: int) -> str:
    return (TODAY + dt.timedelta(days=days)).isoformat()


@pytest.fixture
def bulletin_hub(live_hub):  # type: ignore[no-untyped-def]
    """Four departments: dept001 with stale stock and a reject, dept002 fresh, dept004 fresh but with
    expired stock, dept003 (a long name) that sent nothing."""
    recs = [
        record("depot", sample("depot", 1)),
        record("material", sample("material", 1)),
        record("material", sample("material", 2)),
        record("stock", sample("stock", 1, checked_date="2025-01-02")),  # arrived today, counted long ago: stale
        record("stock", sample("stock", 2, checked_date=_day(0), expiry_date=_day(10))),  # expires within 30 days
        record("material", sample("material", 3, category_code="9999999")),  # rejected
    ]
    assert live_hub.post("/api/v1/batches", batch_body(recs)).status_code == 200
    other, key, key_id = live_hub.other
    recs = [record("material", sample("material", 1), department=other)]
    assert (
        live_hub.post("/api/v1/batches", batch_body(recs, department=other), key=key, key_id=key_id).status_code == 200
    )
    key, key_id = live_hub.add_department("dept004")
    recs = [
        record(t, sample(t, 1, **kw), department="dept004")
        for t, kw in (("depot", {}), ("material", {}), ("stock", {"checked_date": _day(0), "expiry_date": _day(-3)}))
    ]
    assert (
        live_hub.post("/api/v1/batches", batch_body(recs, department="dept004"), key=key, key_id=key_id).status_code
        == 200
    )
    with live_hub.engine.begin() as conn:
        registry.add_department(conn, "dept004", "自然资源局")
        registry.add_department(conn, "dept003", LONG_NAME, ["material"])
    hub_account_store(live_hub.engine).add("op", PASSWORD, "operator")
    live_hub.ui_app = create_app(load_hub_config(live_hub.config_path))
    return live_hub


def _client(hub):  # type: ignore[no-untyped-def]
    c = hub.ui_app.test_client()
    assert login(c, "op", prefix="/ui").status_code == 302
    return c


PERIOD = {"from": _day(-29), "to": _day(0)}


def test_report_xlsx_is_a_formatted_document(bulletin_hub) -> None:  # type: ignore[no-untyped-def]
    c = _client(bulletin_hub)
    r = c.post("/ui/report.xlsx", data={"csrf_token": csrf_of(c, "/ui/report"), **PERIOD})
    assert r.status_code == 200
    cd = r.headers["Content-Disposition"]
    name = f"应急物资数据更新情况通报_{PERIOD['from']}至{PERIOD['to']}.xlsx"
    assert f"filename*=UTF-8''{urllib.parse.quote(name)}" in cd, cd

    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    ws = wb.worksheets[0]
    assert "乡镇应急管理办公室" in ws["A1"].value and "应急物资数据更新情况通报" in ws["A1"].value
    assert f"统计期间：{PERIOD['from']} 至 {PERIOD['to']}" in ws["A2"].value
    assert "未报送 1 个" in ws["A3"].value and LONG_NAME in ws["A3"].value
    head = [cell.value for cell in ws[4]]
    rows = {row[1].value: {h: cell for h, cell in zip(head, row, strict=True)} for row in ws.iter_rows(min_row=5)}
    # Ranked: on time (more updates first), late (stale stock), sent nothing.
    assert [rows[c]["排名"].value for c in ("dept004", "dept002", "dept001", "dept003")] == [1, 2, 3, 4]
    d1 = rows["dept001"]
    assert d1["应急物资基础信息"].value == 2 and d1["应急物资基础信息"].data_type == "n"
    assert d1["超期未更新"].value == 1 and d1["30天内到期"].value == 1 and d1["期内回执"].value == 6
    assert d1["拒收率"].value == pytest.approx(1 / 6) and d1["拒收率"].number_format == "0.0%"
    assert d1["超期占比"].number_format == "0.0%" and d1["超期占比"].value == pytest.approx(1 / 5)
    assert (
        rows["dept004"]["已过期库存"].value == 1
        and rows["dept004"]["评价"].value == "按时更新"
        and d1["评价"].value == "更新滞后"
    )
    # The last report: a date cell in Beijing time (the log keeps UTC).
    last = d1["最近报送（北京时间）"]
    assert last.is_date and last.number_format == "yyyy-mm-dd hh:mm"
    with bulletin_hub.engine.connect() as conn:
        utc = conn.execute(select(receipt_log.c.time).where(receipt_log.c.department == "dept001")).scalar_one()
    expect = dt.datetime.fromisoformat(utc).astimezone(dt.timezone(dt.timedelta(hours=8))).replace(tzinfo=None)
    assert abs(last.value - expect) < dt.timedelta(seconds=1)
    assert rows["dept003"]["最近报送（北京时间）"].value == "从未报送"
    # Widths show every name and header whole; the header and the names stay in view; one page wide, A4 landscape.
    col = {h: cell.column_letter for h, cell in d1.items()}
    assert ws.column_dimensions[col["部门名称"]].width >= display_width(LONG_NAME) >= 28
    assert all(ws.column_dimensions[col[h]].width >= display_width(h) for h in head)
    assert ws.freeze_panes == "D5"
    assert ws.print_title_rows == "$4:$4"
    ps = ws.page_setup
    assert ps.orientation == "landscape" and ps.paperSize == 9  # A4
    assert ps.fitToWidth == 1 and ps.fitToHeight == 0 and ws.sheet_properties.pageSetUpPr.fitToPage
    action = wb["需整改部门"]
    named = {row[1].value: row[3].value for row in action.iter_rows(min_row=2)}
    assert set(named) == {"应急管理局", "自然资源局", LONG_NAME}  # 卫生健康委 is fine
    assert "1 条记录超期未更新或未核查" in named["应急管理局"] and "拒收率 16.7%" in named["应急管理局"]
    assert "1 批库存已过有效期" in named["自然资源局"] and named[LONG_NAME] == "期内未报送"


def test_receipt_exports_are_named_in_chinese_and_pages_show_beijing_time(bulletin_hub) -> None:  # type: ignore[no-untyped-def]
    c = _client(bulletin_hub)
    token = csrf_of(c, "/ui/receipts")
    for fmt in ("csv", "xlsx"):
        cd = c.post(f"/ui/receipts/export.{fmt}", data={"csrf_token": token}).headers["Content-Disposition"]
        assert "filename*=UTF-8''" + urllib.parse.quote("回执_") in cd and cd.endswith(f".{fmt}"), cd
    with bulletin_hub.engine.connect() as conn:
        utc = conn.execute(select(receipts.c.hub_time).order_by(receipts.c.id).limit(1)).scalar_one()
    beijing = (
        dt.datetime.fromisoformat(utc).astimezone(dt.timezone(dt.timedelta(hours=8))).strftime("%Y-%m-%d %H:%M:%S")
    )
    page = c.get("/ui/receipts").get_data(as_text=True)
    assert beijing in page and "中心时间(北京时间)" in page and "(UTC)" not in page
    assert beijing[:16] in c.get(f"/ui/report?from={PERIOD['from']}&to={PERIOD['to']}").get_data(as_text=True)


def test_timezone_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        hub_config_from_dict({"hub": {"timezone": "Mars/Olympus", "key_id": "h"}}, tmp_path)
    assert "hub.timezone: unknown time zone 'Mars/Olympus'" in str(e.value)
    with pytest.raises(ConfigError) as e:
        hub_config_from_dict({"hub": {"timezone": "UTC", "key_id": "h"}}, tmp_path)
    assert "hub.timezone" not in str(e.value)  # only the missing signing key is wrong
    example = (Path(__file__).parents[1] / "config" / "gateway.example.toml").read_text(encoding="utf-8")
    assert 'timezone = "Asia/Shanghai"' in example
    cfg = tmp_path / "gateway.toml"
    cfg.write_text(example.replace('timezone = "Asia/Shanghai"', 'timezone = "Mars/Olympus"', 1), encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_gateway_config(cfg)
    assert "web.timezone: unknown time zone 'Mars/Olympus'" in str(e.value)


def test_date_filters_are_beijing_days(bulletin_hub) -> None:  # type: ignore[no-untyped-def]
    """A receipt at 17:00 UTC on 1 March is on 2 March in Beijing: the list shows it there and filters it there."""
    with bulletin_hub.engine.begin() as conn:
        conn.execute(receipts.update().values(hub_time="2026-03-01T17:00:00+00:00"))
    c = _client(bulletin_hub)
    page = c.get("/ui/receipts?date_from=2026-03-02&date_to=2026-03-02").get_data(as_text=True)
    assert "2026-03-02 01:00:00" in page and "WZ-0001" in page
    assert "没有符合条件的回执" in c.get("/ui/receipts?date_from=2026-03-01&date_to=2026-03-01").get_data(as_text=True)

"""The hub operators' UI on a real hub: receipts from signed batches, filters, exports, report, log check."""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest

from gateway.hub.app import create_app
from gateway.hub.config import load_hub_config
from gateway.hub.ui_tables import hub_account_store
from tests.fixtures.hub import batch_body, record, sample
from tests.fixtures.web import PASSWORD, csrf_of, login


@pytest.fixture
def hub_ui(live_hub):  # type: ignore[no-untyped-def]
    """The live hub with two accepted records, one rejected, and an operator and a viewer account."""
    recs = [
        record("material", sample("material", 1)),
        record("material", sample("material", 2, material_name="=HYPERLINK(\"http://x\")")),
        record("material", sample("material", 3, category_code="9999999")),
    ]
    resp = live_hub.post("/api/v1/batches", batch_body(recs))
    assert resp.status_code == 200, resp.text
    store = hub_account_store(live_hub.engine)
    store.add("op", PASSWORD, "operator")
    store.add("look", PASSWORD, "viewer")
    # The same hub app in-process (same config and database), for the Flask test client.
    live_hub.ui_app = create_app(load_hub_config(live_hub.config_path))
    return live_hub


def _client(hub, user: str):  # type: ignore[no-untyped-def]
    c = hub.ui_app.test_client()
    r = login(c, user, prefix="/ui")
    assert r.status_code == 302, r.get_data(as_text=True)
    return c


def test_login_required_and_chinese_pages(hub_ui) -> None:  # type: ignore[no-untyped-def]
    c = hub_ui.ui_app.test_client()
    r = c.get("/ui/receipts")
    assert r.status_code == 302 and "/ui/accounts/login" in r.headers["Location"]
    r = c.post("/ui/accounts/login", data={"username": "op", "password": PASSWORD})
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    c = _client(hub_ui, "op")
    r = c.get("/ui/no-such-page")
    assert r.status_code == 404 and "页面不存在" in r.get_data(as_text=True)
    cookie = hub_ui.ui_app.test_client()
    assert "HttpOnly" in login(cookie, "op", prefix="/ui").headers["Set-Cookie"]
    # The hub's own API keeps its JSON errors and needs no CSRF token.
    assert hub_ui.ui_app.test_client().get("/api/v1/nothing").is_json


def test_receipt_browser_filters_and_pages(hub_ui) -> None:  # type: ignore[no-untyped-def]
    c = _client(hub_ui, "look")
    page = c.get("/ui/receipts").get_data(as_text=True)
    assert "WZ-0001" in page and "WZ-0003" in page and "被拒绝" in page and "物资分类代码" in page
    page = c.get("/ui/receipts?status=rejected").get_data(as_text=True)
    assert "WZ-0003" in page and "WZ-0001" not in page
    page = c.get("/ui/receipts?key=WZ-0002&department=dept001").get_data(as_text=True)
    assert "WZ-0002" in page and "WZ-0001" not in page
    page = c.get("/ui/receipts?date_from=2000-01-01&date_to=2000-01-02").get_data(as_text=True)
    assert "没有符合条件的回执" in page
    # Keyset paging: the first id on page 2 is below the last on page 1.
    page = c.get("/ui/receipts?before=2").get_data(as_text=True)
    assert "WZ-0001" in page and "WZ-0002" not in page
    log = c.get("/ui/log").get_data(as_text=True)
    assert "批次" in log and "正常" in log
    # From a log entry to the receipts of its batch.
    page = c.get("/ui/receipts?log_seq=1").get_data(as_text=True)
    assert "WZ-0001" in page and "WZ-0003" in page
    assert "没有符合条件的回执" in c.get("/ui/receipts?log_seq=99").get_data(as_text=True)
    assert "哈希链完整" in c.get("/ui/log/verify").get_data(as_text=True)
    with hub_ui.engine.begin() as conn:  # issue 13 item 2: the checkpoint row deleted under a non-empty log
        conn.exec_driver_sql("delete from log_head")
    page = c.get("/ui/log/verify?fresh=1").get_data(as_text=True)
    assert "哈希链已损坏" in page and "日志头检查点缺失或被置零" in page and "checkpoint (log_head) is missing" in page


def test_export_is_operator_only_and_neutralises_formulas(hub_ui) -> None:  # type: ignore[no-untyped-def]
    look = _client(hub_ui, "look")
    assert look.post("/ui/receipts/export.csv", data={"csrf_token": csrf_of(look, "/ui/receipts")}).status_code == 403
    c = _client(hub_ui, "op")
    tok = csrf_of(c, "/ui/receipts")
    assert c.get("/ui/receipts/export.csv").status_code in (404, 405)  # audited, so never by GET
    assert c.post("/ui/receipts/export.csv").status_code == 400  # and never without the CSRF token
    r = c.post("/ui/receipts/export.csv", data={"record_type": "material", "csrf_token": tok})
    assert r.status_code == 200 and r.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(r.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0][0] == "回执编号" and len(rows) == 4
    assert {row[6] for row in rows[1:]} == {"WZ-0001", "WZ-0002", "WZ-0003"}
    assert any("物资分类代码" in row[rows[0].index("原因")] for row in rows[1:])
    r = c.post("/ui/receipts/export.xlsx", data={"status": "rejected", "csrf_token": tok})
    ws = openpyxl.load_workbook(io.BytesIO(r.data)).active
    values = [[cell.value for cell in row] for row in ws.iter_rows()]
    assert values[0][6] == "记录键" and [v[6] for v in values[1:]] == ["WZ-0003"]
    audit = c.get("/ui/accounts/audit").get_data(as_text=True)
    assert "导出回执日志" in audit


def test_export_cells_never_become_formulas(hub_ui) -> None:  # type: ignore[no-untyped-def]
    bad = record("material", sample("material", 9, material_id="=1+2"))
    assert hub_ui.post("/api/v1/batches", batch_body([bad])).status_code == 200
    c = _client(hub_ui, "op")
    tok = {"csrf_token": csrf_of(c, "/ui/receipts")}
    rows = list(csv.reader(io.StringIO(c.post("/ui/receipts/export.csv", data=tok).get_data(as_text=True).lstrip("\ufeff"))))
    assert "'=1+2" in [row[6] for row in rows]
    ws = openpyxl.load_workbook(io.BytesIO(c.post("/ui/receipts/export.xlsx", data=tok).data)).active
    cell = next(row[6] for row in ws.iter_rows() if str(row[6].value).endswith("=1+2"))
    assert cell.data_type == "s" and cell.value == "'=1+2"


def test_department_status_and_update_report(hub_ui) -> None:  # type: ignore[no-untyped-def]
    c = _client(hub_ui, "op")
    page = c.get("/ui/departments").get_data(as_text=True)
    assert "应急管理局" in page and "卫生健康委" in page and "按时更新" in page and "未报送" in page
    page = c.get("/ui/report").get_data(as_text=True)
    assert "更新情况通报" in page and "评价" in page
    r = c.post("/ui/report.xlsx", data={"csrf_token": csrf_of(c, "/ui/report")})
    ws = openpyxl.load_workbook(io.BytesIO(r.data)).active
    rows = [[cell.value for cell in row] for row in ws.iter_rows(min_row=4)]  # rows 1-3: title, period, summary
    head = rows[0]
    by_code = {row[1]: dict(zip(head, row, strict=True)) for row in rows[1:]}
    assert by_code["dept001"]["应急物资基础信息"] == 2 and by_code["dept001"]["被拒绝"] == 1
    assert by_code["dept001"]["评价"] == "按时更新" and by_code["dept002"]["评价"] == "未报送"
    assert c.get("/ui/report?from=2026-05-01&to=2026-01-01").status_code == 400


def test_record_browser_shows_labels_and_history(hub_ui) -> None:  # type: ignore[no-untyped-def]
    c = _client(hub_ui, "look")
    page = c.get("/ui/records?record_type=material&key=WZ-0001").get_data(as_text=True)
    assert "WZ-0001" in page and "WZ-0002" not in page

    rid = re.search(r"/ui/records/(\d+)", page).group(1)
    detail = c.get(f"/ui/records/{rid}").get_data(as_text=True)
    assert "物资名称" in detail and "折叠床" in detail and "实物储备" in detail and "变更历史" in detail
    # Confidential fields (联系电话 of a depot) are shown to operators only.
    assert hub_ui.post("/api/v1/batches", batch_body([record("depot", sample("depot", 1))])).status_code == 200
    for user, shown in (("look", False), ("op", True)):
        cl = _client(hub_ui, user)
        rid = re.search(r"/ui/records/(\d+)", cl.get("/ui/records?record_type=depot").get_data(as_text=True)).group(1)
        page = cl.get(f"/ui/records/{rid}").get_data(as_text=True)
        assert ("13800138000" in page) is shown and ("涉密字段" in page) is not shown


def test_user_admin_is_operator_only(hub_ui) -> None:  # type: ignore[no-untyped-def]
    assert _client(hub_ui, "look").get("/ui/accounts/users").status_code == 403
    c = _client(hub_ui, "op")
    tok = csrf_of(c, "/ui/accounts/users")
    r = c.post("/ui/accounts/users", data={"action": "add", "username": "new1", "password": "Another-pass-22",
                                             "role": "viewer", "csrf_token": tok})
    assert r.status_code == 302
    assert hub_account_store(hub_ui.engine).by_name("new1").role == "viewer"


def test_department_status_on_postgresql(live_hub_pg) -> None:  # type: ignore[no-untyped-def]
    """The same counts on PostgreSQL (JSONB check dates, boolean deleted flags)."""
    from gateway.hub.ui import stats

    old_stock = sample("stock", 1, checked_date="2025-01-02")
    recs = [record("material", sample("material", 1)), record("depot", sample("depot", 1)), record("stock", old_stock),
            record("material", sample("material", 2, category_code="9999999"))]
    assert live_hub_pg.post("/api/v1/batches", batch_body(recs)).status_code == 200
    rows = {d.code: d for d in stats.department_status(live_hub_pg.engine)}
    d = rows["dept001"]
    assert d.by_type == {"material": 1, "depot": 1, "stock": 1} and d.rejected == 1 and d.receipts == 4
    # All arrived today, but the stock was last counted in 2025: an arrival is not a check (issue 16).
    assert d.updated == 3 and d.stale == 1 and d.stale_by_type == {"stock": 1} and d.verdict == stats.LATE
    assert rows["dept002"].verdict == stats.MISSING
    # A year on, with nothing new, everything is stale and the department is late.
    import datetime as dt

    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=365)
    year = (later.date() - dt.timedelta(days=30)).isoformat(), later.date().isoformat()
    d = {x.code: x for x in stats.department_status(live_hub_pg.engine, None, year, now=later)}["dept001"]
    assert d.stale == 3 and d.pushes == 0 and d.verdict == stats.MISSING
    d = {x.code: x for x in stats.department_status(live_hub_pg.engine, None, None, now=later)}["dept001"]
    assert d.stale == 3
    # The 通报 on PostgreSQL: the same rows, ranked, with its trend and workbook.
    from gateway.hub.ui.bulletin import build_bulletin
    from gateway.hub.ui.bulletin_xlsx import write_bulletin

    today = stats.local_day(dt.datetime.now(dt.UTC), "Asia/Shanghai")  # the 通报's days are the hub zone's
    b = build_bulletin(live_hub_pg.engine, ((today - dt.timedelta(days=29)).isoformat(), today.isoformat()))
    assert [x.code for x in b.rows] == ["dept001", "dept002"] and b.rows[0].stale_by_type == {"stock": 1}
    assert b.trend[-1].receipts == 4 and b.trend[-1].rejected == 1 and "请应急管理局、卫生健康委按下列问题" in b.summary()
    assert openpyxl.load_workbook(write_bulletin(b)).worksheets[0]["B5"].value == "dept001"


def test_no_hub_state_changes_by_get(hub_ui) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import func, select

    from gateway.hub.tables import metadata

    c = _client(hub_ui, "op")

    def snapshot() -> dict[str, int]:
        with hub_ui.engine.connect() as conn:
            return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in metadata.sorted_tables}

    before = snapshot()
    for rule in hub_ui.ui_app.url_map.iter_rules():
        if rule.rule.startswith("/ui") and "GET" in rule.methods and not rule.arguments:
            assert c.get(rule.rule).status_code < 500, rule.rule
    assert snapshot() == before


def test_hub_logins_are_throttled_per_address_and_audited(hub_ui) -> None:  # type: ignore[no-untyped-def]
    c = hub_ui.ui_app.test_client()
    for _ in range(5):
        r = login(c, "look", "not-the-password", prefix="/ui")
    assert r.status_code == 401 and "用户名或密码错误" in r.get_data(as_text=True)
    r = login(c, "look", PASSWORD, prefix="/ui")
    assert r.status_code == 429 and "登录失败次数过多" in r.get_data(as_text=True)
    # The owner from another address still gets in: the attacker slowed only itself.
    owner = hub_ui.ui_app.test_client()
    owner.environ_base["REMOTE_ADDR"] = "10.9.9.9"
    assert login(owner, "look", prefix="/ui").status_code == 302
    rows = hub_account_store(hub_ui.engine).audit_page(actor="look")
    assert [a["action"] for a in rows].count("login.failed") == 5
    assert [(a["action"], a["remote_addr"]) for a in rows[:2]] == [("login.ok", "10.9.9.9"), ("login.throttled", "127.0.0.1")]


def test_a_delete_reads_as_a_delete_in_the_receipts_and_their_export(hub_ui) -> None:  # type: ignore[no-untyped-def]
    """issue 16: deletions distinct from updates in the receipt views (a receipt said only 已接收)."""
    key = sample("material", 1)["material_id"]
    gone = record("material", None, seq=2, op="delete", key=key)
    assert hub_ui.post("/api/v1/batches", batch_body([gone])).status_code == 200
    c = _client(hub_ui, "op")
    page = c.get(f"/ui/receipts?key={key}").get_data(as_text=True)
    rows = re.findall(r"<tr><td class=\"num\">\d+</td>.*?</tr>", page, flags=re.S)
    assert len(rows) == 2 and "删除" in rows[0] and "新增/更新" in rows[1]  # newest first
    tok = {"csrf_token": csrf_of(c, "/ui/receipts"), "key": key}
    out = list(csv.reader(io.StringIO(c.post("/ui/receipts/export.csv", data=tok).get_data(as_text=True).lstrip("\ufeff"))))
    col = out[0].index("操作")
    assert [r[col] for r in out[1:]] == ["删除", "新增/更新"]


def test_a_refused_request_reads_in_chinese_in_the_log(hub_ui) -> None:  # type: ignore[no-untyped-def]
    import requests

    from gateway.hub.ui.stats import REFUSAL_LABELS

    r = requests.post(hub_ui.url + "/api/v1/batches", data=b'{"records": []}',
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert r.status_code in (400, 401)
    code = r.json()["error"]
    c = _client(hub_ui, "look")
    log = c.get("/ui/log?kind=refused").get_data(as_text=True)
    assert f"{REFUSAL_LABELS[code]}（{code}）" in log, code


def test_the_operators_day_is_the_hubs_zone_day() -> None:
    """From 16:00 UTC it is tomorrow in Beijing: a push at 00:30 Beijing time falls in the period that ends today
    (the suite once failed every evening after 16:00 UTC, when the default period still ended on the UTC date)."""
    import datetime as dt

    from gateway.hub.ui import stats

    evening = dt.datetime(2026, 12, 3, 16, 30, tzinfo=dt.UTC)
    assert stats.local_day(evening, "Asia/Shanghai") == dt.date(2026, 12, 4)
    assert stats.default_period(evening, "Asia/Shanghai") == ("2026-09-05", "2026-12-04")
    assert stats.default_period(evening, "UTC") == ("2026-09-04", "2026-12-03")
    # The period's last day ends at midnight Beijing time, so the 00:30 push is inside it.
    assert stats.day_start("2026-12-04", "Asia/Shanghai") < evening.isoformat() < stats.day_start("2026-12-05", "Asia/Shanghai")

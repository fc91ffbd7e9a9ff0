"""The admin UI against real parts: a SQLite source, the mapping engine, the outbox and a live hub."""

from __future__ import annotations

import io
import json

import openpyxl
from sqlalchemy import select

from gateway.localtime import local_text
from gateway.store import tables as t
from tests.fixtures.web import client_as, csrf_of, job_outcome


def _form_of_mapping(overrides: dict[str, tuple[str, str]] | None = None) -> dict[str, str]:
    base = {
        "material_id": ("column", "wzbm"), "material_name": ("column", "wzmc"), "category_code": ("column", "fldm"),
        "unit": ("column", "jldw"), "reserve_mode": ("column", "cbfs"),
    }
    base.update(overrides or {})
    form = {}
    for name, (kind, value) in base.items():
        form[f"f.{name}.kind"], form[f"f.{name}.value"] = kind, value
    form["f.material_name.transforms"] = '["trim"]'
    return form


def test_dashboard_and_source_pages(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "viewer")
    page = c.get("/dashboard/").get_data(as_text=True)
    assert "wz_db" in page and "每 15 分钟" in page and "尚未运行" in page and "应急管理局" in page
    assert c.get("/dashboard/api/hub").get_json()["ok"] is True
    # The wrong hub key in the config is caught here, before receipts fail to verify.
    from gateway.protocol.keys import new_key_pair

    cfg = gw_site.extensions["gateway"].config
    new_key_pair(cfg.hub.hub_key.with_suffix(".other"), cfg.hub.hub_key)
    health = c.get("/dashboard/api/hub").get_json()
    assert health["ok"] is False and "公钥" in health["message"]
    page = c.get("/sources/wz_db").get_data(as_text=True)
    assert "wzbm" in page and "折叠床" in page and "site-test-secret" not in page
    # Codes a person reads are named in Chinese, with the code the config uses beside them.
    assert "数据库表（sql）" in page and "应急物资基础信息" in page and "全量指纹比对（fingerprint）" in page
    listing = c.get("/sources/").get_data(as_text=True)
    assert "<td>数据库表（sql）</td><td>应急物资基础信息</td>" in listing


def test_mapping_preview_shows_values_and_chinese_errors(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")
    page = c.get("/mappings/wz_db").get_data(as_text=True)
    assert "物资名称" in page and 'value="wzmc"' in page and "储备方式" in page
    tok = csrf_of(c, "/mappings/wz_db")
    r = c.post("/mappings/wz_db/api/preview", data=_form_of_mapping(), headers={"X-CSRF-Token": tok})
    body = r.get_json()
    assert body["ok"] and len(body["rows"]) == 3
    rows = {row["key"]: row for row in body["rows"]}
    assert rows["WZ-0001"]["record"]["material_name"] == "折叠床"  # trimmed
    err = rows["WZ-0003"]["errors"][0]
    assert err["label"] == "储备方式" and err["value"] == "9" and not rows["WZ-0003"]["ok"]
    assert any("\u4e00" <= ch <= "\u9fff" for ch in err["message"])
    # A column that does not exist is named in Chinese, with a hint.
    r = c.post("/mappings/wz_db/api/preview", data=_form_of_mapping({"unit": ("column", "jldww")}), headers={"X-CSRF-Token": tok})
    assert r.get_json()["problems"] == ["计量单位：数据源中没有列 jldww，是否为 jldw？"]
    # Clerks preview but do not save mappings.
    r = c.post("/mappings/wz_db", data={**_form_of_mapping(), "comment": "x", "csrf_token": tok})
    assert r.status_code == 403


def test_mapping_save_diff_and_rollback_are_versioned_and_audited(gw_site) -> None:  # type: ignore[no-untyped-def]
    cfg = gw_site.extensions["gateway"].config
    c = client_as(gw_site, "admin")
    tok = csrf_of(c, "/mappings/wz_db")
    form = _form_of_mapping({"reserve_mode": ("constant", "1")})
    r = c.post("/mappings/wz_db", data={**form, "comment": "储备方式统一为实物储备", "csrf_token": tok})
    assert r.status_code == 302
    text = cfg.source("wz_db").mapping.read_text(encoding="utf-8")
    assert 'reserve_mode = {constant = "1"}' in text
    page = c.get("/mappings/wz_db").get_data(as_text=True)
    assert "储备方式统一为实物储备" in page and "已保存为版本 1" in page
    c.post("/mappings/wz_db", data={**_form_of_mapping(), "comment": "恢复列", "csrf_token": tok})
    d = c.get("/mappings/wz_db/diff?a=1&b=2").get_data(as_text=True)
    assert "+reserve_mode = &#34;cbfs&#34;" in d or '+reserve_mode = "cbfs"' in d  # a plain column: the short form
    r = c.post("/mappings/wz_db/rollback", data={"version": "1", "csrf_token": tok})
    assert r.status_code == 302
    assert 'reserve_mode = {constant = "1"}' in cfg.source("wz_db").mapping.read_text(encoding="utf-8")
    engine = gw_site.extensions["gateway"].engine
    with engine.connect() as conn:
        acts = [(a.actor, a.action, a.target) for a in conn.execute(select(t.audit))]
    assert ("admin", "mapping.save", "wz_db") in acts and ("admin", "mapping.rollback", "wz_db") in acts
    # A broken mapping is refused with the reason, and the file is left alone.
    bad = _form_of_mapping({"unit": ("", "")})
    r = c.post("/mappings/wz_db", data={**bad, "comment": "x", "csrf_token": tok}, follow_redirects=True)
    assert "计量单位：必填字段未映射" in r.get_data(as_text=True)


def test_record_form_validates_in_chinese_and_pushes_to_the_hub(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")
    page = c.get("/records/material/new").get_data(as_text=True)
    assert "物资分类代码" in page and "实物储备" in page and "<select" in page
    tok = csrf_of(c, "/records/material/new")
    r = c.post("/records/api/validate/material", json={"data": {"material_id": "WZ-9", "category_code": "12"}},
               headers={"X-CSRF-Token": tok})
    errs = {e["field"]: e["message"] for e in r.get_json()["errors"]}
    assert "category_code" in errs and "material_name" in errs and "unit" in errs
    # Submitting an invalid form re-renders it with the errors; nothing is queued.
    r = c.post("/records/material", data={"material_id": "WZ-9", "csrf_token": tok})
    assert r.status_code == 422 and "处需要修改" in r.get_data(as_text=True)
    good = {"material_id": "WZ-9", "material_name": "救生衣", "category_code": "1010100", "unit": "件", "reserve_mode": "1"}
    r = c.post("/records/material", data={**good, "csrf_token": tok})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "汇聚平台已签收" in page and "已接收" in page
    hist = c.get("/deliveries/history/material/WZ-9").get_data(as_text=True)
    assert "clerk" in hist and "已送达" in hist and "已接收" in hist
    # The hub has it, entered by the clerk.
    from gateway.hub.tables import records

    with gw_site.live_hub.engine.connect() as conn:
        row = conn.execute(select(records).where(records.c.key == "WZ-9")).mappings().one()
    assert row["data"]["material_name"] == "救生衣" and row["provenance"]["operator"] == "clerk"
    # Viewers cannot use the form.
    assert client_as(gw_site, "viewer").get("/records/material/new").status_code == 403


def test_rejected_record_becomes_a_dead_letter_that_can_be_resolved(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")
    tok = csrf_of(c, "/records/")
    # Stock of a material the hub does not know: valid at the gateway, rejected at the hub.
    stock = {"material_id": "NO-SUCH", "depot_id": "KU-01", "quantity": "3", "unit": "张", "checked_date": "2026-01-02"}
    page = c.post("/records/stock", data={**stock, "csrf_token": tok}).get_data(as_text=True)
    assert "汇聚平台拒收" in page
    page = c.get("/deliveries/dead-letters").get_data(as_text=True)
    assert "NO-SUCH" in page and "clerk" in page
    engine = gw_site.extensions["gateway"].engine
    with engine.connect() as conn:
        dl = conn.execute(select(t.dead_letters.c.id)).scalar_one()
    assert c.get(f"/deliveries/dead-letters/{dl}/resolve").status_code == 405  # no change by GET
    r = c.post(f"/deliveries/dead-letters/{dl}/resolve", data={"note": "物资未登记，已通知", "csrf_token": tok})
    assert r.status_code == 302
    with engine.connect() as conn:
        row = conn.execute(select(t.dead_letters)).mappings().one()
        acts = [a.action for a in conn.execute(select(t.audit))]
    assert row["resolved_by"] == "clerk" and row["resolution"] == "resolved" and "dead_letter.resolve" in acts
    assert "没有待处理的被退回记录" in c.get("/deliveries/dead-letters").get_data(as_text=True)


def test_spreadsheet_template_and_import_with_error_report(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")
    r = c.get("/spreadsheet/template.xlsx")
    wb = openpyxl.load_workbook(io.BytesIO(r.data))
    ws = next(w for w in wb.worksheets if w.title.startswith("应急物资基础信息"))
    headers = [cell.value for cell in ws[1]]
    assert any(str(h).startswith("物资编码") for h in headers)
    # Fill two rows, one bad, in the template's own layout.
    cols = {str(h).rstrip("*").split("(")[0].split("（")[0]: i for i, h in enumerate(headers) if h}
    def put(row: int, label: str, value: str) -> None:  # noqa: E306
        key = next(k for k in cols if k.startswith(label))
        ws.cell(row=row, column=cols[key] + 1, value=value)
    first = ws.max_row + 1
    for label, v in (("物资编码", "XL-1"), ("物资名称", "棉被"), ("物资分类代码", "1010100"), ("计量单位", "床"), ("储备方式", "1")):
        put(first, label, v)
    for label, v in (("物资编码", "XL-2"), ("物资名称", "棉衣"), ("物资分类代码", "99"), ("计量单位", "件"), ("储备方式", "1")):
        put(first + 1, label, v)
    buf = io.BytesIO()
    wb.save(buf)
    tok = csrf_of(c, "/spreadsheet/")
    r = c.post("/spreadsheet/import", data={"file": (io.BytesIO(buf.getvalue()), "填报.xlsx"), "csrf_token": tok},
               content_type="multipart/form-data")
    page = job_outcome(c, r)
    assert "物资分类代码" in page and "下载错误说明" in page
    import re

    link = re.search(r'href="(/spreadsheet/report/[^"]+)"', page).group(1)
    download = c.get(link)
    # Saved with its Chinese name and extension (RFC 6266), not as a bare "xlsx".
    assert download.headers["Content-Disposition"] == (
        "attachment; filename=\"errors.xlsx\"; filename*=UTF-8''%E9%94%99%E8%AF%AF%E8%AF%B4%E6%98%8E.xlsx"
    )
    report = openpyxl.load_workbook(io.BytesIO(download.data))
    texts = [str(cell.value) for w in report.worksheets for row in w.iter_rows() for cell in row if cell.value]
    assert any("XL-2" in x for x in texts) and any("分类" in x for x in texts)
    engine = gw_site.extensions["gateway"].engine
    with engine.connect() as conn:
        queued = [(o.record_key, json.loads(o.provenance)["operator"]) for o in conn.execute(select(t.outbox))]
    assert queued == [("XL-1", "clerk")]


def test_manual_sync_is_admin_only_and_shows_on_the_dashboard(gw_site) -> None:  # type: ignore[no-untyped-def]
    clerk = client_as(gw_site, "clerk")
    assert clerk.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(clerk, "/sources/")}).status_code == 403
    c = client_as(gw_site, "admin")

    class Worker:  # records the wake-ups the running push worker would get
        woken = 0

        def wake(self) -> None:
            self.woken += 1

    worker = gw_site.extensions["gateway"].push_worker = Worker()
    page = job_outcome(c, c.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(c, "/sources/")}))
    assert "同步完成：读取 3 行，新增 2" in page and "错误行 1" in page
    assert worker.woken >= 1  # the records it enqueued go out now, not at the worker's next poll
    page = c.get("/dashboard/").get_data(as_text=True)
    assert "成功" in page and "待推送" in page
    with gw_site.extensions["gateway"].engine.connect() as conn:
        started = conn.execute(select(t.sync_runs.c.started_at).order_by(t.sync_runs.c.id.desc())).scalars().first()
    # the run's time is shown in Beijing time (UTC+8), not as the stored UTC text
    assert local_text(started, "Asia/Shanghai") in page and started[:19].replace("T", " ") not in page


def test_batches_page_through_equal_timestamps(gw_app, gw_engine) -> None:  # type: ignore[no-untyped-def]
    same = "2026-11-29T01:00:00.000000+00:00"
    with gw_engine.begin() as conn:
        conn.execute(t.outbox_batches.insert(), [
            {"batch_id": f"b{i:03d}", "source": "s", "created": same, "records": 1, "state": "receipted", "attempts": 1}
            for i in range(70)
        ])
    import re

    c = client_as(gw_app, "viewer")
    seen: list[str] = []
    url = "/deliveries/"
    while url:
        page = c.get(url).get_data(as_text=True)
        seen += re.findall(r"<code>(b\d{3})</code>", page)
        m = re.search(r'href="(/deliveries/\?before=[^"]+)">更早的批次', page)
        url = m.group(1).replace("&amp;", "&") if m else ""
    assert sorted(seen) == [f"b{i:03d}" for i in range(70)] and len(seen) == 70


def test_a_mapping_change_states_its_cost_and_a_key_change_needs_a_confirmation_naming_the_count(gw_site) -> None:  # type: ignore[no-untyped-def]
    cfg = gw_site.extensions["gateway"].config
    c = client_as(gw_site, "admin")
    tok = csrf_of(c, "/mappings/wz_db")
    path = cfg.source("wz_db").mapping

    def preview(form: dict[str, str]) -> dict:
        return c.post("/mappings/wz_db/api/preview", data=form, headers={"X-CSRF-Token": tok}).get_json()["impact"]

    # The form as it stands means what the file means: nothing changes, however the text is written.
    same = preview(_form_of_mapping())
    assert same["rows"] == 3 and not same["changed"] and not same["rekeyed"] and "记录没有变化" in same["summary"]
    # A constant reserve mode fixes the row with 储备方式 9: one error goes, no key changes, saved at once.
    fix = _form_of_mapping({"reserve_mode": ("constant", "1")})
    assert preview(fix)["newly_passing"] == 1 and preview(fix)["rekeyed"] == 0
    r = c.post("/mappings/wz_db", data={**fix, "comment": "储备方式统一", "csrf_token": tok}, follow_redirects=True)
    assert "已保存为版本 1" in r.get_data(as_text=True) and "1 行错误将消除" in r.get_data(as_text=True)
    sync = job_outcome(c, c.post("/sources/wz_db/sync", data={"csrf_token": tok}))
    assert "新增 3" in sync

    # Lower-casing the material code changes the key of all 3 records: deleted and re-created at the hub.
    rekey = {**fix, "f.material_id.transforms": '["lower"]'}
    impact = preview(rekey)
    assert impact["rekeyed"] == 3 and ["WZ-0001", "wz-0001"] in impact["rekey_examples"]
    assert "3 条记录的主键字段变化，将在中心删除并重建" in impact["summary"]
    before = path.read_text(encoding="utf-8")
    r = c.post("/mappings/wz_db", data={**rekey, "comment": "编码改小写", "csrf_token": tok})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "尚未保存" in page and "我已知晓：3 条记录将在中心删除并重建" in page
    assert 'value="编码改小写"' in page  # the comment is kept for the second submit
    assert path.read_text(encoding="utf-8") == before  # nothing written, no version
    # A confirmation naming another count (the source changed meanwhile) is not a confirmation.
    r = c.post("/mappings/wz_db", data={**rekey, "comment": "编码改小写", "confirm_rekey": "2", "csrf_token": tok})
    assert r.status_code == 200 and path.read_text(encoding="utf-8") == before
    r = c.post("/mappings/wz_db", data={**rekey, "comment": "编码改小写", "confirm_rekey": "3", "csrf_token": tok})
    assert r.status_code == 302 and '"lower"' in path.read_text(encoding="utf-8")
    # The count was what sync then does: 3 new keys, 3 old keys deleted.
    sync = job_outcome(c, c.post("/sources/wz_db/sync", data={"csrf_token": tok}))
    assert "新增 3" in sync and "删除 3" in sync, sync

    # Rolling back to version 1 changes the keys back: the same confirmation, then it is done.
    r = c.post("/mappings/wz_db/rollback", data={"version": "1", "csrf_token": tok})
    page = r.get_data(as_text=True)
    assert r.status_code == 200 and "尚未回滚" in page and "我已知晓：3 条记录将在中心删除并重建" in page
    assert '"lower"' in path.read_text(encoding="utf-8")
    r = c.post("/mappings/wz_db/rollback", data={"version": "1", "confirm_rekey": "3", "csrf_token": tok})
    assert r.status_code == 302 and '"lower"' not in path.read_text(encoding="utf-8")
    engine = gw_site.extensions["gateway"].engine
    with engine.connect() as conn:
        saved = [json.loads(a.after) for a in conn.execute(select(t.audit).where(t.audit.c.action == "mapping.save"))]
    assert saved[-1]["impact"]["rekeyed"] == 3  # the audit says what the admin confirmed

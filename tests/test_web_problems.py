"""问题数据: refused rows stay listed until fixed at the source or corrected in the form (issue 16)."""

from __future__ import annotations

import io
import re
import sqlite3
from urllib.parse import unquote

import openpyxl

from tests.fixtures.web import client_as, csrf_of, job_outcome


def _sync(c) -> str:  # type: ignore[no-untyped-def]
    return job_outcome(c, c.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(c, "/sources/")}))


def _source_db(app) -> str:  # type: ignore[no-untyped-def]
    cfg = app.extensions["gateway"].config
    return cfg.source("wz_db").settings["url"].removeprefix("sqlite:///")


def _problem_rows(page: str) -> list[str]:
    body = page.split('<table id="problems">', 1)[1].split("</table>", 1)[0]
    return [r for r in re.findall(r"<tr data-source.*?</tr>", body, re.S)]


def test_refused_row_stays_listed_until_the_source_fixes_it(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "admin")
    for _ in range(3):  # several runs: the row stays in sight, listed once
        assert "错误行 1" in _sync(c)
    page = c.get("/problems/").get_data(as_text=True)
    rows = _problem_rows(page)
    assert len(rows) == 1, rows
    row = rows[0]
    assert "wz_db" in row and "WZ-0003" in row and "储备方式" in row and ">9<" in row
    assert "共 <strong>1</strong> 行被拒收" in page
    dash = c.get("/dashboard/").get_data(as_text=True)
    assert 'id="problems-card"' in dash and re.search(r'id="problems-card".*?<div class="v err">1</div>', dash, re.S)
    # Fixed at the source: the next sync reads it valid and the row leaves the list.
    con = sqlite3.connect(_source_db(gw_site))
    con.execute("UPDATE wz SET cbfs = '1' WHERE wzbm = 'WZ-0003'")
    con.commit()
    con.close()
    _sync(c)
    page = c.get("/problems/").get_data(as_text=True)
    assert _problem_rows(page) == [] and "当前没有被拒收的行" in page


def test_deleted_refused_row_leaves_the_list(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "admin")
    _sync(c)
    con = sqlite3.connect(_source_db(gw_site))
    con.execute("DELETE FROM wz WHERE wzbm = 'WZ-0003'")
    con.commit()
    con.close()
    _sync(c)
    assert _problem_rows(c.get("/problems/").get_data(as_text=True)) == []


def test_refused_row_opens_prefilled_in_the_form_and_correcting_it_clears_it(gw_site) -> None:  # type: ignore[no-untyped-def]
    admin = client_as(gw_site, "admin")
    _sync(admin)
    c = client_as(gw_site, "clerk")
    page = c.get("/problems/").get_data(as_text=True)
    link = re.search(r'href="(/records/material/from-problem/\d+)"', page).group(1)
    form = c.get(link).get_data(as_text=True)
    assert 'value="WZ-0003"' in form and 'value="发电机"' in form and 'value="1019900"' in form
    assert 'id="from-problem"' in form and "储备方式" in form and "有 1 处需要修改" in form
    pid = link.rsplit("/", 1)[1]
    data = {
        "material_id": "WZ-0003",
        "material_name": "发电机",
        "category_code": "1019900",
        "unit": "台",
        "reserve_mode": "1",
        "_problem": pid,
        "csrf_token": csrf_of(c, "/records/"),
    }
    assert "汇聚平台已签收" in c.post("/records/material", data=data).get_data(as_text=True)
    assert _problem_rows(c.get("/problems/").get_data(as_text=True)) == []
    _sync(admin)  # the source still says 9: the correction holds, the row stays off the list
    assert _problem_rows(c.get("/problems/").get_data(as_text=True)) == []
    # A viewer sees the list but no link into the form.
    assert "在表单中打开" not in client_as(gw_site, "viewer").get("/problems/").get_data(as_text=True)


def test_filter_and_xlsx_export_named_in_chinese(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "admin")
    con = sqlite3.connect(_source_db(gw_site))
    con.execute("INSERT INTO wz VALUES ('WZ-0004', '水泵', '12', '台', '1', '1')")  # bad 物资分类代码
    con.commit()
    con.close()
    _sync(c)
    assert len(_problem_rows(c.get("/problems/").get_data(as_text=True))) == 2
    only = _problem_rows(c.get("/problems/?field=reserve_mode").get_data(as_text=True))
    assert len(only) == 1 and "WZ-0003" in only[0]
    assert _problem_rows(c.get("/problems/?source=other").get_data(as_text=True)) == []
    r = c.get("/problems/export.xlsx?field=category_code")
    cd = r.headers["Content-Disposition"]
    assert 'filename="problems.xlsx"' in cd
    assert unquote(cd.split("filename*=UTF-8''", 1)[1]) == "问题数据.xlsx"
    ws = openpyxl.load_workbook(io.BytesIO(r.data)).active
    rows = [[cell.value for cell in row] for row in ws.iter_rows()]
    assert rows[0][:5] == ["数据源", "位置", "记录类型", "记录键", "字段"] and ws.freeze_panes == "A2"
    assert len(rows) == 2 and rows[1][0] == "wz_db" and rows[1][3] == "WZ-0004" and rows[1][4] == "物资分类代码"
    assert rows[1][5] == "12" and rows[1][2] == "应急物资基础信息"


def _workbook(code: str) -> bytes:
    import tempfile
    from pathlib import Path

    from gateway.spreadsheet import write_template

    p = Path(tempfile.mkdtemp()) / "t.xlsx"
    write_template(p)
    wb = openpyxl.load_workbook(p)
    ws = next(w for w in wb.worksheets if w.title.startswith("应急物资基础信息"))
    headers = [str(cell.value or "") for cell in ws[1]]
    row = ws.max_row + 1
    for label, v in (
        ("物资编码", "XL-9"),
        ("物资名称", "棉被"),
        ("物资分类代码", code),
        ("计量单位", "床"),
        ("储备方式", "1"),
    ):
        ws.cell(row=row, column=next(i for i, h in enumerate(headers) if h.startswith(label)) + 1, value=v)
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def test_spreadsheet_rows_stay_until_the_file_is_imported_again_fixed(gw_site) -> None:  # type: ignore[no-untyped-def]
    c = client_as(gw_site, "clerk")

    def upload(body: bytes) -> str:
        r = c.post(
            "/spreadsheet/import",
            data={"file": (io.BytesIO(body), "填报.xlsx"), "csrf_token": csrf_of(c, "/spreadsheet/")},
            content_type="multipart/form-data",
        )
        return job_outcome(c, r)

    assert 'id="import-problems"' in upload(_workbook("99"))
    rows = _problem_rows(c.get("/problems/?source=spreadsheet").get_data(as_text=True))
    assert len(rows) == 1 and "填报.xlsx" in rows[0] and "XL-9" in rows[0] and "物资分类代码" in rows[0]
    form = c.get(re.search(r'href="(/records/material/from-problem/\d+)"', rows[0]).group(1)).get_data(as_text=True)
    assert 'value="棉被"' in form
    upload(_workbook("1010100"))
    assert _problem_rows(c.get("/problems/").get_data(as_text=True)) == []

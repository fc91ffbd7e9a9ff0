"""查找记录: a record by key or name from any source, with its versions and receipts (issue 16)."""

from __future__ import annotations

import re

from gateway.push.client import push_pending
from gateway.sync import enqueue_records
from tests.fixtures.web import client_as, csrf_of, job_outcome


def _rows(page: str, table: str = "find-results") -> list[str]:
    body = page.split(f'<table id="{table}">', 1)[1].split("</table>", 1)[0].split("<tbody>", 1)[1]
    return re.findall(r"<tr>.*?</tr>", body, re.S)


def test_find_synced_record_by_name_and_key(gw_site) -> None:  # type: ignore[no-untyped-def]
    admin = client_as(gw_site, "admin")
    job_outcome(admin, admin.post("/sources/wz_db/sync", data={"csrf_token": csrf_of(admin, "/sources/")}))
    ui = gw_site.extensions["gateway"]
    push_pending(ui.config, ui.engine)
    c = client_as(gw_site, "viewer")
    rows = _rows(c.get("/find/?q=折叠").get_data(as_text=True))
    assert len(rows) == 1
    assert "WZ-0001" in rows[0] and "折叠床" in rows[0] and "wz_db" in rows[0] and "已接收" in rows[0]
    assert "已送达" in rows[0] and "/deliveries/history/material/WZ-0001" in rows[0]
    page = c.get("/find/?q=wz-000").get_data(as_text=True)  # part of a key, any case
    assert [re.search(r"WZ-000\d", r).group(0) for r in _rows(page)] == ["WZ-0001", "WZ-0002"]
    problems = _rows(page, "find-problems")  # WZ-0003 was refused: it is found among the refused rows
    assert len(problems) == 1 and "WZ-0003" in problems[0] and "储备方式" in problems[0]
    history = c.get("/deliveries/history/material/WZ-0001").get_data(as_text=True)
    assert "已接收" in history and "wz_db" in history
    assert "没有找到“不存在的物资”" in c.get("/find/?q=不存在的物资").get_data(as_text=True)
    assert 'action="/find/"' in c.get("/records/").get_data(as_text=True)  # the records page searches every source


def test_find_by_material_name_also_finds_its_stock(gw_site) -> None:  # type: ignore[no-untyped-def]
    engine = gw_site.extensions["gateway"].engine
    enqueue_records(
        engine,
        "spreadsheet",
        "material",
        [
            (
                "XL-1",
                {
                    "material_id": "XL-1",
                    "material_name": "棉被",
                    "category_code": "1010100",
                    "unit": "床",
                    "reserve_mode": "1",
                },
            )
        ],
        operator="clerk",
    )
    enqueue_records(
        engine,
        "local",
        "stock",
        [
            (
                "XL-1|KU-01|",
                {
                    "material_id": "XL-1",
                    "depot_id": "KU-01",
                    "quantity": 3,
                    "unit": "床",
                    "checked_date": "2026-01-02",
                },
            )
        ],
        operator="clerk",
    )
    rows = _rows(client_as(gw_site, "viewer").get("/find/?q=棉被").get_data(as_text=True))
    assert len(rows) == 2 and "spreadsheet" in rows[0] and "XL-1|KU-01|" in rows[1] and "待推送" in rows[1]

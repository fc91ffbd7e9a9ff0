"""A county hub importing a township's signed workbook (update path 1 the other way round, docs/hub.md
"Importing a signed workbook from below"): a standalone township hub exports its department's workbook,
the county verifies and imports it through `gateway-hub workbook import` and its web UI, stores the valid
rows as received from the township, reports each bad row, forwards them to the city, and refuses a
workbook whole (nothing stored) on a bad signature, an unknown key or a department outside the area."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.hub import tables
from gateway.hub.cli import hub as hub_cli
from gateway.hub.ui_tables import hub_account_store
from gateway.protocol.keys import new_private_key, public_key_of, public_key_text, read_private_key
from gateway.workbook.signature import sign_workbook
from tests.fixtures.hub import LiveHub, batch_body, record, sample
from tests.fixtures.web import PASSWORD, csrf_of, login
from tests.test_hub_forward import stored, wait_for

MATERIALS = "应急物资基础信息"


def _cli(h: LiveHub, *args: str) -> Any:
    return CliRunner().invoke(hub_cli, ["--config", str(h.config_path), *args])


def _put_row(ws: Any, values: dict[str, Any]) -> int:
    """Append a row to a template sheet, by field name (the hidden row 2)."""
    names = [c.value for c in ws[2]]
    row = ws.max_row + 1
    for name, v in values.items():
        ws.cell(row, names.index(name) + 1, v)
    return row


@pytest.fixture
def mailed(hub_factory, tmp_path: Path) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """A township hub with no upper hub: dept001's records, exported as its signed workbook, with bad rows
    added by the township's clerk before the township signed it again (the workbook it mails up)."""
    township = hub_factory()
    body = batch_body([record("material", sample("material", n)) for n in (1, 2, 3)]
                      + [record("depot", sample("depot")), record("stock", sample("stock", 1))])
    assert township.post("/api/v1/batches", body).status_code == 200
    out = tmp_path / "报送"
    r = _cli(township, "workbook", "export", "--out", str(out), "--period", "2026年第四季度", "--department", "dept001")
    assert r.exit_code == 0, r.output
    [book] = sorted(out.glob("*.xlsx"))
    wb = openpyxl.load_workbook(book)
    no_name = _put_row(wb[MATERIALS], {"material_id": "WZ-0004", "category_code": "1010100", "unit": "张",
                                       "reserve_mode": "1"})
    twice = _put_row(wb[MATERIALS], {"material_id": "WZ-0001", "material_name": "折叠床", "category_code": "1010100",
                                     "unit": "张", "reserve_mode": "1"})
    good = _put_row(wb[MATERIALS], {"material_id": "WZ-0005", "material_name": "棉被", "category_code": "1010100",
                                    "unit": "床", "reserve_mode": "1"})
    orphan = _put_row(wb["应急物资管理信息"], {"material_id": "WZ-0099", "depot_id": "KU-01", "batch_no": "B9",
                                        "quantity": 5, "unit": "张", "checked_date": "2026-01-02"})
    wb.save(book)
    manifest = json.loads((out / (book.name + ".sig.json")).read_text(encoding="utf-8"))["manifest"]
    facts = {k: manifest[k] for k in ("signer", "department", "department_name", "period", "since", "counts")}
    sign_workbook(book, read_private_key(township.dir / "keys" / "hub.key"), township.hub_key_id, facts)
    return {"township": township, "book": book, "sig": out / (book.name + ".sig.json"),
            "rows": {"no_name": no_name, "twice": twice, "good": good, "orphan": orphan}}


def _county(hub_levels, mailed: dict[str, Any], area: str = "dept001,dept002",  # type: ignore[no-untyped-def]
            database_url: str | None = None) -> tuple[LiveHub, LiveHub]:
    county, city = hub_levels(("county", "city"), database_urls=[database_url, None]).hubs
    r = _cli(county, "relay", "add", "township-wb", "某镇汇聚中心", str(mailed["township"].hub_public_key_path),
             "--departments", area)
    assert r.exit_code == 0, r.output
    return county, city


def _batches(h: LiveHub) -> int:
    with h.engine.connect() as c:
        return c.execute(select(func.count()).select_from(tables.batches)).scalar_one()


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
def test_the_county_imports_the_valid_rows_reports_the_bad_ones_and_forwards_them(  # type: ignore[no-untyped-def]
        hub_levels, mailed, tmp_path, request, store) -> None:
    county, city = _county(hub_levels, mailed, database_url=request.getfixturevalue("pg_url") if store == "postgresql" else None)
    report = tmp_path / "错误报告.csv"
    pub = str(mailed["township"].hub_public_key_path)
    r = _cli(county, "workbook", "import", str(mailed["book"]), "--signature", str(mailed["sig"]), "--from-key", pub,
             "--report", str(report))
    assert r.exit_code == 1, r.output  # rows refused, each named; the rest stored
    rows = mailed["rows"]
    assert "来自 某镇汇聚中心（township-wb" in r.output and "接收 6，重复 0，过期版本 0，拒收 1；错误 3 处" in r.output, r.output
    assert f"{MATERIALS} 第 {rows['no_name']} 行 物资名称：" in r.output and "[required]" in r.output
    assert f"{MATERIALS} 第 {rows['twice']} 行" in r.output and "[duplicate_key]" in r.output
    # Valid as a row, refused by the hub: the stock names a material the department never reported.
    assert f"应急物资管理信息 第 {rows['orphan']} 行 物资编码：物资编码“WZ-0099”不存在" in r.output, r.output
    with open(report, encoding="utf-8-sig", newline="") as f:
        lines = list(csv.reader(f))
    assert lines[0] == ["工作表", "行号", "字段", "字段名", "值", "规则", "错误说明"]
    assert sorted((x[0], int(x[1]), x[5]) for x in lines[1:]) == sorted([
        (MATERIALS, rows["no_name"], "required"), (MATERIALS, rows["twice"], "duplicate_key"),
        ("应急物资管理信息", rows["orphan"], "material_exists")])

    at_county = stored(county)
    assert sorted(at_county) == sorted([("material", f"WZ-000{n}") for n in (1, 2, 3, 5)]
                                       + [("depot", "KU-01"), ("stock", "WZ-0001|KU-01|B1")]), sorted(at_county)
    fp = json.loads(_cli(county, "workbook", "import", str(mailed["book"]), "--from-key", pub, "--json").output)
    prov = at_county[("material", "WZ-0005")]["provenance"]
    assert prov["source"] == f"spreadsheet from 某镇汇聚中心, signed by {fp['fingerprint']}"
    assert prov["source_key"] == f"{MATERIALS}!{rows['good']}"
    [hop] = prov["hubs"]
    assert (hop["hub"], hop["relay_key"], hop["via"], hop["signed_by"]) == (mailed["township"].hub_key_id, "township-wb",
                                                                            "spreadsheet", fp["fingerprint"])
    # Imported again (that was the --json run): the first receipt, nothing stored twice.
    assert fp["replayed"] is True and fp["counts"] == {"accepted": 6, "duplicate": 0, "stale": 0, "rejected": 1}
    assert _batches(county) == 1 and len(stored(county)) == 6

    # The county forwards what it imported, as any batch it accepted: the city holds it with the whole chain.
    at_city = wait_for(lambda: len(stored(city)) == 6 and stored(city))
    chain = at_city[("material", "WZ-0005")]["provenance"]["hubs"]
    assert [(c["relay_key"], c.get("via")) for c in chain] == [("township-wb", "spreadsheet"), ("county-relay", None)]
    assert at_city[("material", "WZ-0005")]["data"]["material_name"] == "棉被"


def test_a_workbook_is_refused_whole_on_a_bad_signature_key_or_area(hub_levels, mailed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    county, _city = _county(hub_levels, mailed, area="dept002")
    pub = str(mailed["township"].hub_public_key_path)
    book, sig = mailed["book"], mailed["sig"]

    def refused(path: Path, key: str, why: str) -> None:
        r = _cli(county, "workbook", "import", str(path), "--signature", str(sig), "--from-key", key)
        assert r.exit_code == 2 and why in r.output, r.output
        assert _batches(county) == 0 and stored(county) == {}  # nothing of it stored

    refused(book, pub, "不在下级中心 某镇汇聚中心（township-wb）的辖区内")  # dept001 is not this relay's
    assert _cli(county, "relay", "add", "township-wb", "某镇汇聚中心", pub, "--departments", "dept001").exit_code == 0
    changed = tmp_path / book.name
    wb = openpyxl.load_workbook(book)
    wb[MATERIALS]["B3"] = "被改过的名称"
    wb.save(changed)
    refused(changed, pub, "签名核验未通过")
    stranger = tmp_path / "stranger.pub"
    stranger.write_text(public_key_text(public_key_of(new_private_key())), encoding="utf-8")
    refused(book, str(stranger), "签名无效")
    # Signed by a key this hub does not know as a lower hub: refused even though the signature is good.
    key = new_private_key()
    sign_workbook(changed, key, "someone", {"department": "dept001"})
    r = _cli(county, "workbook", "import", str(changed), "--from-key", public_key_text(public_key_of(key)))
    assert r.exit_code == 2 and "不是本中心登记的下级中心" in r.output, r.output
    assert _batches(county) == 0
    assert _cli(county, "workbook", "import", str(book), "--signature", str(sig), "--from-key", pub).exit_code == 1


def test_operators_import_on_the_web_ui_and_viewers_may_not(hub_levels, mailed) -> None:  # type: ignore[no-untyped-def]
    county, _city = _county(hub_levels, mailed)
    accounts = hub_account_store(county.engine)
    accounts.add("op", PASSWORD, "operator")
    accounts.add("look", PASSWORD, "viewer")

    def upload(c: Any, book: bytes) -> Any:
        return c.post("/ui/workbook-import", content_type="multipart/form-data", data={
            "csrf_token": csrf_of(c, "/ui/receipts"), "relay": "township-wb",
            "workbook": (io.BytesIO(book), mailed["book"].name),
            "signature": (io.BytesIO(mailed["sig"].read_bytes()), mailed["sig"].name)})

    viewer = county.app.test_client()
    assert login(viewer, "look", prefix="/ui").status_code == 302
    assert viewer.get("/ui/workbook-import").status_code == 403
    assert upload(viewer, mailed["book"].read_bytes()).status_code == 403
    assert _batches(county) == 0

    op = county.app.test_client()
    assert login(op, "op", prefix="/ui").status_code == 302
    page = op.get("/ui/workbook-import").get_data(as_text=True)
    assert "报表导入" in page and 'value="township-wb"' in page
    tampered = mailed["book"].read_bytes().replace(b"\x00", b"\x01", 1)
    r = upload(op, tampered)
    assert r.status_code == 400 and "未导入：" in r.get_data(as_text=True) and _batches(county) == 0
    r = upload(op, mailed["book"].read_bytes())
    text = r.get_data(as_text=True)
    assert r.status_code == 200 and "接收 6 · 重复 0 · 过期版本 0 · 拒收 1 · 错误 3 处" in text, text
    cells = [c for c in text.split('<table id="errors">')[1].split("</table>")[0].split("<tr>")[2:]]
    assert len(cells) == 3 and f"<td class=\"num\">{mailed['rows']['orphan']}</td>" in "".join(cells)
    assert "物资编码“WZ-0099”不存在" in text and len(stored(county)) == 6


def test_a_workbook_of_bad_rows_only_stores_nothing_and_names_each(hub_levels, mailed, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gateway.workbook.records import write_records

    county, _city = _county(hub_levels, mailed)
    book = tmp_path / "全错.xlsx"
    write_records({"material": [{"material_id": "WZ-0007", "category_code": "1010100", "unit": "张", "reserve_mode": "9"}]},
                  book)
    sign_workbook(book, read_private_key(mailed["township"].dir / "keys" / "hub.key"), "hub-1", {"department": "dept001"})
    r = _cli(county, "workbook", "import", str(book), "--from-key", str(mailed["township"].hub_public_key_path))
    assert r.exit_code == 1 and "接收 0，重复 0，过期版本 0，拒收 0；错误 2 处" in r.output, r.output
    assert f"{MATERIALS} 第 3 行 物资名称" in r.output and f"{MATERIALS} 第 3 行 储备方式" in r.output
    assert _batches(county) == 0 and stored(county) == {}

"""CSV import/export: UTF-8 (BOM or not), GB18030/GBK detection, byte-exact round trip."""

from __future__ import annotations

import codecs
from datetime import date
from pathlib import Path

from gateway.spreadsheet.export import export_csv, write_error_csv
from gateway.spreadsheet.importer import import_csv
from gateway.standard.uscc import check_char
from gateway.standard.validate import ValidationContext

CTX = ValidationContext(today=date(2025, 6, 30))

MATERIALS = [
    {"material_id": "M001", "material_name": "𠀀牌救灾帐篷", "category_code": "1010100", "spec_model": "𡃁型 12㎡",
     "unit": "顶", "reserve_mode": "1", "brand": "闽𠀀", "shelf_life_months": 60, "unit_price": 1850.5},
    {"material_id": "M002", "material_name": "折叠床", "category_code": "1010200", "unit": "张", "reserve_mode": "2",
     "unit_price": 320, "usage_desc": "临时安置，含“引号”, 逗号"},
]


def test_gb18030_four_byte_characters_round_trip_byte_exact(tmp_path: Path) -> None:
    first = tmp_path / "first.csv"
    export_csv(MATERIALS, "material", first, encoding="gb18030")
    raw = first.read_bytes()
    assert "𠀀".encode("gb18030") in raw and len("𠀀".encode("gb18030")) == 4
    assert "𡃁".encode("gb18030") in raw
    result = import_csv(first, "material", context=CTX)
    assert result.encoding == "gb18030"
    assert result.errors == []
    assert [r.data for r in result.records] == MATERIALS
    second = tmp_path / "second.csv"
    export_csv((r.data for r in result.records), "material", second, encoding=result.encoding)
    assert second.read_bytes() == raw


def test_utf8_with_and_without_bom_round_trip(tmp_path: Path) -> None:
    for encoding, expect in (("utf-8-sig", "utf-8-sig"), ("utf-8", "utf-8")):
        p = tmp_path / f"{encoding}.csv"
        export_csv(MATERIALS, "material", p, encoding=encoding)
        assert p.read_bytes().startswith(codecs.BOM_UTF8) == (encoding == "utf-8-sig")
        result = import_csv(p, "material", context=CTX)
        assert result.encoding == expect
        assert [r.data for r in result.records] == MATERIALS
        again = tmp_path / f"{encoding}-2.csv"
        export_csv((r.data for r in result.records), "material", again, encoding=result.encoding)
        assert again.read_bytes() == p.read_bytes()


def test_hand_written_gbk_file_with_field_name_header(tmp_path: Path) -> None:
    text = "material_id,quantity,unit,checked_date,condition\r\nM1,10,箱,2025/6/1,完好\r\nM2,-3,箱,2025-06-01,\r\n"
    p = tmp_path / "stock.csv"
    p.write_bytes(text.encode("gbk"))
    result = import_csv(p, "stock", context=CTX)
    assert result.encoding == "gb18030"
    (rec,) = result.records
    assert rec.data == {"material_id": "M1", "quantity": 10, "unit": "箱", "checked_date": "2025-06-01", "condition": "1"}
    (err,) = result.errors
    assert (err.sheet, err.row, err.label, err.rule, err.value) == ("stock.csv", 3, "储备数量", "min", "-3")


def test_a_line_that_cannot_be_decoded_spoils_only_its_row(tmp_path: Path) -> None:
    p = tmp_path / "mixed.csv"
    p.write_bytes(
        "物资编码,储备数量,计量单位,核查日期\n".encode()
        + "M1,1,箱,2025-06-01\n".encode()
        + "M2,2,箱,2025-06-01\n".encode("gbk")  # 箱 in GBK is not UTF-8
        + "M3,3,箱,2025-06-01\n".encode()
    )
    result = import_csv(p, "stock", encoding="utf-8", context=CTX)
    assert [r.data["material_id"] for r in result.records] == ["M1", "M3"]
    (err,) = result.errors
    assert (err.row, err.rule) == (3, "encoding")


def usc(body: str) -> str:
    return body + check_char(body)


def test_agreement_items_in_text_form(tmp_path: Path) -> None:
    p = tmp_path / "agreement.csv"
    rec = {
        "agreement_no": "XY-1", "agreement_name": "代储", "agreement_type": "2", "party_a_name": "甲",
        "party_a_uscc": usc("11350100MB0000001"), "party_b_name": "乙", "party_b_uscc": usc("91350100M000100Y4"),
        "party_b_contact": "李", "party_b_phone": "13900139000", "signed_date": "2025-01-10",
        "start_date": "2025-02-01", "end_date": "2027-01-31",
        "items": [{"material_id": "M1", "quantity": 500, "unit": "顶"}, {"material_id": "M2", "quantity": 2.5, "unit": "箱"}],
        "file_name": "协议.pdf", "status": "1",
    }
    export_csv([rec], "agreement", p)
    assert "M1:500:顶;M2:2.5:箱" in p.read_text(encoding="utf-8-sig")
    result = import_csv(p, "agreement", context=CTX)
    assert result.errors == []
    assert [r.data for r in result.records] == [rec]
    p.write_text(p.read_text(encoding="utf-8-sig").replace("M2:2.5:箱", "M2:0:箱"), encoding="utf-8")
    (err,) = import_csv(p, "agreement", context=CTX).errors
    assert (err.row, err.field, err.rule) == (2, "items", "items.min")
    assert "协议物资第 2 项" in err.message


def test_error_csv_lists_every_error(tmp_path: Path) -> None:
    p = tmp_path / "stock.csv"
    p.write_text("物资编码*,储备数量*,计量单位*,核查日期*\n,1,箱,2025-06-01\nM2,=1+2,筐,2025-02-30\n", encoding="utf-8")
    result = import_csv(p, "stock", context=CTX)
    out = tmp_path / "errors.csv"
    assert write_error_csv(result, out) == 4
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "工作表,行号,字段,字段名,值,规则,错误说明"
    assert lines[1].startswith("stock.csv,2,物资编码,material_id,,required,")
    assert "'=1+2" in lines[2]  # the bad value is echoed neutralised
    assert {ln.split(",")[5] for ln in lines[1:]} == {"required", "type.decimal", "unit", "date.invalid"}


def test_unknown_encoding_name_is_a_clear_error(tmp_path: Path) -> None:
    import pytest

    from gateway.errors import SourceError

    p = tmp_path / "s.csv"
    p.write_text("物资编码\n", encoding="utf-8")
    with pytest.raises(SourceError, match="未知的文件编码"):
        import_csv(p, "stock", encoding="klingon")

"""CSV encodings and dialects, XLSX and XLS through the folder adapter; GB18030 mapped exactly."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import openpyxl
import pytest
import xlwt

from gateway.adapters.files.adapters import FolderAdapter
from gateway.adapters.formats import FormatOptions, ParsedRow, read_rows
from gateway.mappings.compile import load_mapping
from tests.test_files_folder import events, problems, rows

MATERIAL_MAPPING = """
record_type = "material"
[fields]
material_id = "物资编码"
material_name = "物资名称"
category_code = "分类代码"
spec_model = "规格型号"
unit = "单位"
reserve_mode = {constant = "1"}
"""

GB_CSV = (
    "物资编码,物资名称,分类代码,规格型号,单位\r\n"
    'A001,"帐篷𠀀,单帐",1010100,"3×4米,加厚",顶\r\n'
    'A002,𡃁牌棉被,1010200,"180×200\r\n冬季",床\r\n'
    "A003,折叠床,1010300,,张\r\n"
)


def drop(tmp_path: Path, name: str, data: bytes, **settings: Any) -> list[Any]:
    """Read `data` as the only file of a fresh drop folder."""
    folder = tmp_path / f"drop{len(list(tmp_path.iterdir()))}"
    folder.mkdir()
    (folder / name).write_bytes(data)
    base = {"path": str(folder), "key_columns": ["物资编码"], "completion": "atomic"}
    return events(FolderAdapter("files", {**base, **settings}))


@pytest.mark.parametrize("encoding", ["auto", "gb18030"])
def test_gb18030_csv_with_4_byte_characters_maps_exactly(tmp_path: Path, encoding: str) -> None:
    evs = drop(tmp_path, "物资.csv", GB_CSV.encode("gb18030"), encoding=encoding)
    assert problems(evs) == []
    mapping = load_mapping(MATERIAL_MAPPING, "material")
    records = [mapping.map_row(r) for r in rows(evs)]
    assert [p for _, ps in records for p in ps] == []
    assert [rec for rec, _ in records] == [
        {"material_id": "A001", "material_name": "帐篷𠀀,单帐", "category_code": "1010100", "spec_model": "3×4米,加厚", "unit": "顶", "reserve_mode": "1"},
        {"material_id": "A002", "material_name": "𡃁牌棉被", "category_code": "1010200", "spec_model": "180×200\r\n冬季", "unit": "床", "reserve_mode": "1"},
        {"material_id": "A003", "material_name": "折叠床", "category_code": "1010300", "unit": "张", "reserve_mode": "1"},
    ]
    assert [r.locator for r in rows(evs)] == ["物资.csv:line 2", "物资.csv:line 3", "物资.csv:line 5"]
    assert [r.key for r in rows(evs)] == ["A001", "A002", "A003"]


@pytest.mark.parametrize(("codec", "setting"), [("utf-8-sig", "auto"), ("utf-8", "auto"), ("gbk", "auto"), ("gbk", "gbk")])
def test_common_encodings_are_read(tmp_path: Path, codec: str, setting: str) -> None:
    text = GB_CSV.replace("𠀀", "").replace("𡃁", "")  # GBK has no 4-byte characters
    evs = drop(tmp_path, "a.csv", text.encode(codec), encoding=setting)
    got = rows(evs)
    assert [r.data["物资名称"] for r in got] == ["帐篷,单帐", "牌棉被", "折叠床"]
    assert "物资编码" in got[0].data, "a BOM never sticks to the first header"


def test_undecodable_line_is_one_problem_and_the_rest_continue(tmp_path: Path) -> None:
    data = GB_CSV.encode("utf-8").replace("折叠床".encode(), b"\xc3\x28\xff")
    evs = drop(tmp_path, "a.csv", data, encoding="utf-8")
    [p] = problems(evs)
    assert (p.locator, p.field, p.rule) == ("a.csv:line 5 key=A003", "物资名称", "csv.undecodable")
    assert "utf-8" in p.message and "c3" in p.message
    assert [r.key for r in rows(evs)] == ["A001", "A002"]


def test_dialect_and_header_row_settings(tmp_path: Path) -> None:
    text = "应急物资台账\n导出时间 2024-05-01\n编号|名称|数量\n1|'帐篷|大'|3\n2|棉被|5\n"
    evs = drop(tmp_path, "a.txt", text.encode("utf-8"), delimiter="|", quotechar="'", header_row=3, key_columns=["编号"])
    assert [r.data for r in rows(evs)] == [{"编号": "1", "名称": "帐篷|大", "数量": "3"}, {"编号": "2", "名称": "棉被", "数量": "5"}]
    tsv = "id\tname\n7\t帐篷\n"
    assert rows(drop(tmp_path, "b.tsv", tsv.encode(), delimiter="\\t", key_columns=["id"]))[0].data == {"id": "7", "name": "帐篷"}


def test_row_with_an_unquoted_delimiter_is_a_problem(tmp_path: Path) -> None:
    evs = drop(tmp_path, "a.csv", "id,name\n1,帐篷\n2,棉被,多余\n3,床\n".encode(), key_columns=["id"])
    [p] = problems(evs)
    assert p.rule == "file.extra_columns" and p.locator == "a.csv:line 3 key=2" and p.value == "多余"
    assert [r.key for r in rows(evs)] == ["1", "3"]


def test_missing_key_column_and_blank_key(tmp_path: Path) -> None:
    [p] = problems(drop(tmp_path, "a.csv", b"code,name\n1,x\n", key_columns=["id"]))
    assert p.rule == "file.key_column_missing" and "id" in p.message
    evs = drop(tmp_path, "b.csv", b"id,name\n1,x\n ,y\n3,z\n", key_columns=["id"])
    assert [p.rule for p in problems(evs)] == ["file.key_missing"]
    assert [r.key for r in rows(evs)] == ["1", "3"]


def test_oversized_line_is_skipped_in_bounded_memory(tmp_path: Path) -> None:
    p = tmp_path / "a.csv"
    p.write_bytes(b"id,name\n1,a\n2," + b"x" * 5000 + b"\n3,c\n")
    out = list(read_rows(p, "a.csv", "csv", FormatOptions(max_line_bytes=1000), "s"))
    assert [o.data["id"] for o in out if isinstance(o, ParsedRow)] == ["1", "3"]
    [bad] = [o for o in out if not isinstance(o, ParsedRow)]
    assert bad.locator == "a.csv:line 3" and "1000" in bad.message


def test_xlsx_sheet_types_and_locators(tmp_path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.title = "说明"
    book.active.append(["这一页不是数据"])
    ws = book.create_sheet("物资")
    ws.append(["物资编码", "物资名称", "数量", "入库日期"])
    ws.append([1001, "帐篷𠀀", 3, dt.datetime(2024, 5, 1)])
    ws.append([None, None, None, None])
    ws.append(["A-2", "棉被", 2.5, None])
    book.save(tmp_path / "台账.xlsx")
    evs = events(FolderAdapter("x", {"path": str(tmp_path), "key_columns": ["物资编码"], "completion": "atomic", "sheet": "物资"}))
    assert problems(evs) == []
    got = rows(evs)
    assert [(r.key, r.locator) for r in got] == [("1001", "台账.xlsx:物资!row 2"), ("A-2", "台账.xlsx:物资!row 4")]
    assert got[0].data == {"物资编码": 1001, "物资名称": "帐篷𠀀", "数量": 3, "入库日期": dt.datetime(2024, 5, 1)}


def test_xls_numbers_dates_and_errors(tmp_path: Path) -> None:
    book = xlwt.Workbook(encoding="utf-8")
    ws = book.add_sheet("Sheet1")
    for c, h in enumerate(["编号", "名称", "数量", "日期"]):
        ws.write(0, c, h)
    date_style = xlwt.easyxf(num_format_str="YYYY-MM-DD")
    ws.write(1, 0, 1001)
    ws.write(1, 1, "帐篷")
    ws.write(1, 2, 2.5)
    ws.write(1, 3, dt.date(2024, 5, 1), date_style)
    ws.write(2, 0, 1002)
    ws.write(2, 1, "棉被")
    ws.row(2).set_cell_error(2, "#DIV/0!")  # what a broken formula leaves behind
    book.save(str(tmp_path / "old.xls"))
    evs = events(FolderAdapter("x", {"path": str(tmp_path), "key_columns": ["编号"], "completion": "atomic"}))
    [r] = rows(evs)
    assert r.key == "1001" and r.locator == "old.xls:Sheet1!row 2"
    assert r.data == {"编号": 1001, "名称": "帐篷", "数量": 2.5, "日期": dt.datetime(2024, 5, 1)}
    [p] = problems(evs)
    assert p.locator == "old.xls:Sheet1!row 3 key=1002" and p.field == "数量" and p.rule == "xls.cell_error"


@pytest.mark.parametrize(("name", "data", "rule"), [
    ("bad.xls", b"\xd0\xcf\x11\xe0 truncated compound document", "xls.unreadable"),
    ("bad.xlsx", b"PK\x03\x04" + b"\x00" * 40, "xlsx.unreadable"),
    ("data.bin", b"id\n1\n", "file.unknown_format"),
])
def test_unreadable_file_is_one_problem_naming_it(tmp_path: Path, name: str, data: bytes, rule: str) -> None:
    evs = drop(tmp_path, name, data, key_columns=["id"])
    [p] = problems(evs)
    assert p.rule == rule and name in p.locator and name in p.message
    assert rows(evs) == []


def test_unterminated_quote_is_reported_with_the_lines_it_swallowed(tmp_path: Path) -> None:
    p = tmp_path / "q.csv"
    p.write_bytes(b'id,name\n1,ok\n2,"unterminated\n' + b"3,filler line\n" * 100_000 + b"4,x\n")
    out = list(read_rows(p, "q.csv", "csv", FormatOptions(), "s"))
    bad = [o for o in out if not isinstance(o, ParsedRow)]
    assert len(bad) == 1 and bad[0].rule == "csv.malformed" and bad[0].locator == "q.csv:line 3"
    assert "第 3–" in bad[0].message and "未读取" in bad[0].message
    assert [o.data["id"] for o in out if isinstance(o, ParsedRow)][-1] == "4", "reading goes on after the damage"


def test_mostly_utf8_file_stays_utf8_and_a_pasted_gbk_line_alone_is_refused(tmp_path: Path) -> None:
    text = GB_CSV.replace("𠀀", "").replace("𡃁", "")
    last = "A003,折叠床,1010300,,张\r\n"
    data = text.replace(last, "").encode("utf-8") + last.encode("gbk")
    evs = drop(tmp_path, "a.csv", data)
    [p] = problems(evs)
    assert (p.locator, p.field, p.rule) == ("a.csv:line 5 key=A003", "物资名称", "csv.undecodable")
    assert "不是有效的 utf-8 编码" in p.message and "像是 GBK/GB18030 编码" in p.message
    assert [(r.key, r.data["物资名称"]) for r in rows(evs)] == [("A001", "帐篷,单帐"), ("A002", "牌棉被")]


def test_gbk_file_whose_rows_pass_as_utf8_by_accident_is_still_gbk(tmp_path: Path) -> None:
    # 台 in GBK (cc a8) is also valid UTF-8 (U+0328): the rows prove nothing, the Chinese header decides.
    text = "物资编码,物资名称,单位\r\n" + "".join(f"B{i:03d},pump-{i},台\r\n" for i in range(30))
    evs = drop(tmp_path, "a.csv", text.encode("gbk"))
    assert problems(evs) == []
    assert {r.data["单位"] for r in rows(evs)} == {"台"} and len(rows(evs)) == 30


def _judge_line_by_line(head: bytes, cut: bool) -> str:
    """The encoding judge as first written (a strict decode per line), to hold the one-decode version to."""
    from gateway.adapters.formats.text import _decodes, has_chinese

    lines = head.split(b"\n")
    if cut:
        lines.pop()
    chinese_utf8 = invalid = gb_valid = 0
    for raw in lines:
        if raw.isascii():
            continue
        try:
            chinese_utf8 += has_chinese(raw.decode("utf-8"))
        except UnicodeDecodeError:
            invalid += 1
            gb_valid += _decodes(raw, "gb18030")
    return "utf-8" if chinese_utf8 > invalid or gb_valid == 0 else "gb18030"


def test_encoding_judge_decides_as_the_line_by_line_one() -> None:
    import random

    from gateway.adapters.formats.text import _judge

    rnd = random.Random(15)
    pieces = [
        "帐篷".encode(), "帐篷".encode("gbk"), b"abc,1", "é".encode(), "é".encode("latin-1"), b"\xff", b"\x80",
        "𠀀".encode(), "𠀀".encode("gb18030"), "台".encode("gbk"), b"\xed\xa0\x80", "\u3000".encode(), b"\n", b"\r\n",
    ]
    for _ in range(6_000):
        head = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 24)))
        for cut in (False, True):
            assert _judge(head, cut) == _judge_line_by_line(head, cut), (head, cut)

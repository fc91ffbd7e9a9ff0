"""Names a listing may return and packages a department may drop, refused by named rule."""

from __future__ import annotations

import zipfile
from pathlib import Path

import openpyxl
import pytest

from gateway.adapters.filenames import is_ignored, markers_for, matches, refusal
from gateway.adapters.files.adapters import FolderAdapter, XmlAdapter
from tests.test_files_folder import events, problems, rows


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("../etc/passwd", "filename.dot_dot"),
        ("..", "filename.dot_dot"),
        ("a/../../b.csv", "filename.dot_dot"),
        ("/etc/passwd", "filename.absolute"),
        ("\\\\server\\share.csv", "filename.absolute"),
        ("C:stock.csv", "filename.absolute"),
        ("sub/stock.csv", "filename.separator"),
        ("sub\\stock.csv", "filename.separator"),
        ("a\x00b.csv", "filename.control_char"),
        ("a\rb.csv", "filename.control_char"),
        ("a\u2028b.csv", "filename.control_char"),
        ("a\u200bb.csv", "filename.control_char"),
        ("gbk-\udcd6\udcd0.csv", "filename.undecodable"),
        ("", "filename.empty"),
        ("库" * 90 + ".csv", "filename.too_long"),
    ],
)
def test_unsafe_names_are_refused_with_a_named_rule(name: str, rule: str) -> None:
    assert refusal(name) == rule


@pytest.mark.parametrize("name", ["库存2024-05.csv", "物资 (1).xlsx", "export.v2.xml", "a+b=c,d;e.csv", "ﾃｽﾄ.csv"])
def test_ordinary_names_pass(name: str) -> None:
    assert refusal(name) is None


def test_ignored_names_markers_and_patterns() -> None:
    assert all(is_ignored(n) for n in (".x.csv", "a.csv.tmp", "a.CSV.PART", "a.csv.filepart", "a.csv~"))
    assert not is_ignored("a.csv")
    assert markers_for("库存.csv") == ("库存.csv.done", "库存.csv.ok", "库存.done", "库存.ok")
    assert matches("库存.CSV", "*.csv;*.xlsx") and matches("a.xlsx", "*.csv, *.xlsx") and not matches("a.xls", "*.csv;*.xlsx")


def _workbook(path: Path) -> None:
    book = openpyxl.Workbook()
    book.active.append(["id", "name"])
    book.active.append([1, "帐篷"])
    book.save(path)


def _rewrite(src: Path, dst: Path, part: str, change: object) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            zout.writestr(item.filename, change(data) if item.filename == part else data)  # type: ignore[operator]


def test_xlsx_with_entity_declarations_is_refused(tmp_path: Path) -> None:
    _workbook(tmp_path / "ok.xlsx")
    drop = tmp_path / "drop"
    drop.mkdir()
    _rewrite(tmp_path / "ok.xlsx", drop / "evil.xlsx", "xl/worksheets/sheet1.xml",
             lambda d: d.replace(b"<worksheet", b'<!DOCTYPE w [<!ENTITY x SYSTEM "file:///etc/hostname">]><worksheet', 1))
    evs = events(FolderAdapter("x", {"path": str(drop), "key_columns": ["id"], "completion": "atomic"}))
    [p] = problems(evs)
    assert p.rule == "xlsx.doctype" and "sheet1.xml" in p.message and rows(evs) == []


def test_xlsx_zip_bomb_is_refused(tmp_path: Path) -> None:
    _workbook(tmp_path / "ok.xlsx")
    drop = tmp_path / "drop"
    drop.mkdir()
    _rewrite(tmp_path / "ok.xlsx", drop / "bomb.xlsx", "xl/worksheets/sheet1.xml", lambda d: d + b" " * 5_000_000)
    [p] = problems(events(FolderAdapter("x", {"path": str(drop), "key_columns": ["id"], "completion": "atomic"})))
    assert p.rule == "xlsx.zip_bomb"


def test_columns_of_the_newest_file_for_the_mapping_editor(tmp_path: Path) -> None:
    (tmp_path / "old.csv").write_bytes("编号,名称\n1,a\n".encode())
    (tmp_path / "new.csv").write_bytes("编号,名称,数量\n1,a,2\n".encode("gb18030"))
    import os

    os.utime(tmp_path / "old.csv", (1_600_000_000, 1_600_000_000))
    assert FolderAdapter("x", {"path": str(tmp_path), "key_columns": ["编号"]}).columns() == ["编号", "名称", "数量"]
    (tmp_path / "e.xml").write_bytes('<r><i c="1"><名称>a</名称></i><i c="2"><规格><型号>x</型号></规格></i></r>'.encode())
    assert XmlAdapter("x", {"path": str(tmp_path / "e.xml"), "key_columns": ["@c"]}).columns() == ["@c", "名称", "规格/型号"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert FolderAdapter("x", {"path": str(empty), "key_columns": ["id"]}).columns() is None

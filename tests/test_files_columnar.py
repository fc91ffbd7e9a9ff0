"""The columnar CSV read (formats.csv_columns behind FileDropAdapter.fetch_batches): for every kind of
file it is either sure and gives fetch()'s events exactly, or leaves the file to the row reader."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.batches import RowBatch
from gateway.adapters.files.adapters import FolderAdapter
from gateway.adapters.formats import FormatOptions
from gateway.adapters.formats.csv_columns import csv_columns
from gateway.errors import FileRefused, RowProblem
from tests.adapter_conformance import assert_batches_equal_fetch
from tests.test_files_folder import comparable_ledger

HEADER = "编码,名称,数量,日期\r\n"


class Drop:
    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.n = 0
        self.settings = {"path": str(root), "key_columns": ["编码"], "completion": "marker", **settings}

    def adapter(self, position: Any = None) -> FolderAdapter:
        return FolderAdapter("drop", self.settings)

    def drop(self, data: bytes) -> Path:
        self.n += 1
        p = self.root / f"stock-{self.n:04d}.csv"
        p.write_bytes(data)
        (self.root / f"{p.name}.done").write_bytes(b"")
        return p

    @staticmethod
    def comparable_position(position: Any) -> Any:
        return comparable_ledger(position)


def _sure(path: Path, **opts: Any) -> bool:
    blocks = csv_columns(path, FormatOptions(**opts))
    if blocks is None:
        return False
    for _ in blocks:
        pass
    return True


def _lines(n: int, start: int = 1) -> str:
    return "".join(f'W{i:05d},"帐篷{i}号,加厚",{i % 97},2024-01-{i % 28 + 1:02d}\r\n' for i in range(start, start + n))


SURE = {
    "quoted commas, doubled quotes, CRLF": HEADER + _lines(30) + 'W9,"他说""好""",1,2024-01-01\r\n',
    "blank lines and blank rows": HEADER + _lines(5) + "\r\n,,,\r\n\u3000, ,\t,\r\n" + _lines(5, 100),
    "an empty key cell": HEADER + _lines(5) + " ,无编码,1,2024-01-01\r\n" + _lines(5, 100),
    "LF only, no final newline": (HEADER + _lines(8)).replace("\r\n", "\n").rstrip("\n"),
    "empty quoted and unquoted cells": HEADER + 'W1,"",,\r\nW2,"x",,""\r\n',
    "header only": HEADER,
}
NOT_SURE = {
    "a quoted newline": HEADER + _lines(3) + 'W8,"两行\r\n名称",1,2024-01-01\r\n' + _lines(3, 50),
    "a quote inside a field": HEADER + _lines(3) + 'W8,ab"c,1,2024-01-01\r\n',
    "text after a closing quote": HEADER + 'W8,"ab"c,1,2024-01-01\r\n',
    "a short row": HEADER + _lines(3) + "W8,短行\r\n" + _lines(3, 50),
    "an extra column": HEADER + _lines(3) + "W8,多列,1,2024-01-01,多余\r\n",
    "a blank extra column": HEADER + "W8,多列,1,2024-01-01,\r\n",
    "a lone CR": HEADER + "W8,名\r称,1,2024-01-01\r\n",
    "a NUL": HEADER + "W8,名\x00称,1,2024-01-01\r\n",
    "a duplicate header": "编码,编码,数量\r\nW1,a,1\r\n",
    "a trailing empty header cell": "编码,名称,\r\nW1,a,\r\n",
}


@pytest.mark.parametrize("text", SURE.values(), ids=SURE.keys())
@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030"])
def test_files_it_is_sure_of_read_as_fetch_reads_them(tmp_path: Path, text: str, encoding: str) -> None:
    src = Drop(tmp_path)
    path = src.drop(text.encode(encoding))
    assert _sure(path)
    events = assert_batches_equal_fetch(src, size=4)
    with src.adapter() as a:
        batches = [e for e in a.fetch_batches(None, 4) if isinstance(e, RowBatch)]
    assert all(b.arrow() is not None for b in batches)
    if "empty key" in text or " ,无编码" in text:
        assert [p.rule for p in events if isinstance(p, RowProblem)] == ["file.key_missing"]


@pytest.mark.parametrize("text", NOT_SURE.values(), ids=NOT_SURE.keys())
def test_files_it_is_not_sure_of_go_to_the_row_reader(tmp_path: Path, text: str) -> None:
    src = Drop(tmp_path)
    path = src.drop(text.encode())
    assert not _sure(path)
    assert_batches_equal_fetch(src, size=4)


def test_bad_bytes_leave_the_file_to_the_row_reader_and_the_next_file_is_columnar(tmp_path: Path) -> None:
    src = Drop(tmp_path)
    bad = src.drop((HEADER + _lines(3)).encode() + "W7,坏".encode() + b"\xff\xfe,1,2024-01-01\r\n" + _lines(3, 50).encode())
    good = src.drop((HEADER + _lines(20, 200)).encode("gb18030"))
    assert not _sure(bad) and _sure(good)
    events = assert_batches_equal_fetch(src, size=6)
    assert [p.rule for p in events if isinstance(p, RowProblem)] == ["csv.undecodable"]


def test_append_checkpoints_inside_a_file_and_snapshot_mode(tmp_path: Path) -> None:
    src = Drop(tmp_path, checkpoint_rows=7)
    src.drop((HEADER + _lines(5) + " ,无编码,1,2024-01-01\r\n" + _lines(30, 100)).encode())
    events = assert_batches_equal_fetch(src, size=4)
    assert sum(1 for e in events if type(e).__name__ == "Checkpoint") == 7  # 5 inside the file, the file's and the poll's
    snap = Drop(tmp_path, mode="snapshot")
    assert_batches_equal_fetch(snap, size=4)


def test_a_header_without_the_key_column_is_refused_as_fetch_refuses_it(tmp_path: Path) -> None:
    src = Drop(tmp_path, key_columns=["物资编码"])
    src.drop((HEADER + _lines(3)).encode())
    events = assert_batches_equal_fetch(src)
    assert [e.rule for e in events if isinstance(e, FileRefused)] == ["file.key_column_missing"]


def test_tab_delimited_with_two_key_columns(tmp_path: Path) -> None:
    src = Drop(tmp_path, delimiter="\\t", key_columns=["编码", "日期"])
    src.drop((HEADER + _lines(12)).replace(",", "\t").replace('"帐篷', "帐篷").replace('加厚"', "加厚").encode())
    assert_batches_equal_fetch(src, size=5)


def test_a_file_of_several_blocks(tmp_path: Path) -> None:
    src = Drop(tmp_path)
    long_rows = "".join(f'W{i:06d},"{"救灾帐篷" * 10}{i}号,加厚",{i % 97},2024-01-01\r\n' for i in range(45_000))
    path = src.drop((HEADER + long_rows + "\r\n,,,\r\n" + _lines(10, 200_000)).encode("gb18030"))
    assert path.stat().st_size > 4 << 20, "more than one 4 MB block"
    assert _sure(path)
    events = assert_batches_equal_fetch(src, size=2000)
    assert sum(1 for e in events if type(e).__name__ == "Checkpoint") == 45_010 // 5000 + 2

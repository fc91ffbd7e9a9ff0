"""A refused file row is named by its file, its line and its record's key."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from gateway.cli import cli
from gateway.store import open_store
from gateway.sync import sync_source
from tests.test_files_sync import MAPPING, drop, source
from tests.test_sync_pipeline import write_config


def test_bad_csv_rows_name_file_line_and_key(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    cfg = write_config(tmp_path, [source(folder, "append", mode="append")], MAPPING)
    drop(
        folder,
        "kucun.csv",
        "物资编码,物资名称,分类代码,单位\n"
        "WZ001,帐篷,1010100,顶\n"
        "WZ002,棉被,10x0100,床\n"  # line 3: a category code the standard refuses (a mapping problem)
        "WZ003,折叠床,1010100,张,多余\n"  # line 4: one cell too many (a problem of the file reader)
        "".encode(),
    )
    s = sync_source(cfg, "files", open_store(cfg.state_path))
    assert (s.new, s.rejected) == (1, 2)
    where = sorted(p.locator for p in s.problems)
    assert where == ["kucun.csv:line 3 key=WZ002", "kucun.csv:line 4 key=WZ003"]

    # What the department's IT person reads: the CLI listing names file, line and key.
    drop(folder, "kucun2.csv", "物资编码,物资名称,分类代码,单位\nWZ009,雨衣,1010100,件,多余\n".encode())
    r = CliRunner().invoke(cli, ["--config", str(cfg.file), "sync", "files", "--no-push"])
    assert r.exit_code == 0, r.output
    assert "kucun2.csv:line 2 key=WZ009 字段 -" in r.output

"""File sources through the whole sync pipeline: config check, mapping, change detection, outbox."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from gateway.errors import ConfigError
from gateway.store import open_store
from gateway.store.tables import outbox
from gateway.sync import sync_source
from tests.fixtures.sshd import Sshd
from tests.test_sync_pipeline import write_config

MAPPING = """
record_type = "material"
[fields]
material_id = "物资编码"
material_name = "物资名称"
category_code = "分类代码"
unit = "单位"
reserve_mode = {constant = "1"}
"""


def export(rows: list[tuple[str, str]]) -> bytes:
    body = "".join(f'{code},"{name}",1010100,顶\r\n' for code, name in rows)
    return ("物资编码,物资名称,分类代码,单位\r\n" + body).encode("gb18030")


def drop(folder: Path, name: str, data: bytes) -> None:
    (folder / name).write_bytes(data)
    (folder / f"{name}.done").write_bytes(b"")


def source(folder: Path, strategy: str, **settings: Any) -> dict[str, Any]:
    return {"name": "files", "type": "folder", "record_type": "material", "mapping": "stock.toml", "strategy": strategy,
            "settings": {"path": str(folder), "key_columns": ["物资编码"], "completion": "marker", **settings}}


def outbox_data(engine: sa.Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as c:
        out = c.execute(sa.select(outbox.c.op, outbox.c.record_key, outbox.c.data).order_by(outbox.c.id)).all()
    return [(op, key, json.loads(data)["material_name"] if data else None) for op, key, data in out]


def test_snapshot_drops_find_new_changed_and_deleted(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    cfg = write_config(tmp_path, [source(folder, "snapshot", mode="snapshot", archive_dir="done")], MAPPING)
    engine = open_store(cfg.state_path)
    drop(folder, "a.csv", export([("A1", "帐篷𠀀,大号"), ("A2", "𡃁牌棉被"), ("A3", "折叠床")]))
    s = sync_source(cfg, "files", engine)
    assert (s.new, s.rejected) == (3, 0)
    drop(folder, "b.csv", export([("A1", "帐篷𠀀,大号"), ("A2", "𡃁牌棉被(新)")]))
    s = sync_source(cfg, "files", engine)
    assert (s.new, s.changed, s.deleted, s.unchanged) == (0, 1, 1, 1)
    drop(folder, "b-again.csv", export([("A1", "帐篷𠀀,大号"), ("A2", "𡃁牌棉被(新)")]))
    assert sync_source(cfg, "files", engine).rows_read == 0, "the same export dropped twice is processed once"
    names = [n for op, _, n in outbox_data(engine) if op == "upsert"]
    assert names == ["帐篷𠀀,大号", "𡃁牌棉被", "折叠床", "𡃁牌棉被(新)"]
    assert sorted(p.name for p in (folder / "done").iterdir() if p.suffix == ".csv") == ["a.csv", "b-again.csv", "b.csv"]


def test_bad_file_settings_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        write_config(tmp_path, [source(tmp_path, "append", completion="soon", encodng="gbk")], MAPPING)
    msg = str(e.value)
    assert "completion: 'soon' is not one of" in msg and "did you mean 'encoding'" in msg


def test_sftp_source_through_the_pipeline(tmp_path: Path, sshd: Sshd) -> None:
    folder = tmp_path / "remote"
    folder.mkdir()
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_hosts_line())
    src = {"name": "files", "type": "sftp", "record_type": "material", "mapping": "stock.toml", "strategy": "append",
           "settings": {"host": sshd.host, "port": sshd.port, "username": sshd.username, "key_file": str(sshd.client_key),
                        "known_hosts": str(kh), "path": str(folder), "key_columns": ["物资编码"], "completion": "marker"}}
    cfg = write_config(tmp_path, [src], MAPPING)
    engine = open_store(cfg.state_path)
    drop(folder, "a.csv", export([("A1", "帐篷𠀀,大号"), ("A2", "棉被")]))
    assert sync_source(cfg, "files", engine).new == 2
    drop(folder, "b.csv", export([("A3", "床")]))
    assert sync_source(cfg, "files", engine).new == 1
    assert [k for _, k, _ in outbox_data(engine)] == ["A1", "A2", "A3"]


def utf8_export(third_name: bytes) -> bytes:
    head = "物资编码,物资名称,分类代码,单位\r\nA1,帐篷,1010100,顶\r\nA2,棉被,1010100,床\r\n".encode()
    return head + b"A3," + third_name + ",1010100,张\r\n".encode()


def test_one_bad_byte_in_a_utf8_drop_refuses_that_line_only_and_a_corrected_redrop_arrives(
    tmp_path: Path, sshd: Sshd
) -> None:
    folder = tmp_path / "remote"
    folder.mkdir()
    kh = tmp_path / "known_hosts"
    kh.write_text(sshd.known_hosts_line())
    settings = {
        "host": sshd.host,
        "port": sshd.port,
        "username": sshd.username,
        "key_file": str(sshd.client_key),
        "known_hosts": str(kh),
        "path": str(folder),
        "key_columns": ["物资编码"],
        "completion": "marker",
        "archive_dir": "done",
        "error_dir": "rejected",
    }
    src = {"name": "files", "type": "sftp", "record_type": "material", "mapping": "stock.toml", "strategy": "append"}
    cfg = write_config(tmp_path, [{**src, "settings": settings}], MAPPING)
    engine = open_store(cfg.state_path)
    bad = utf8_export("折叠".encode() + b"\xff" + "床".encode())
    drop(folder, "库存.csv", bad)
    s = sync_source(cfg, "files", engine)
    assert s.new == 2, "the two good lines are enqueued"
    [p] = s.problems
    assert (p.locator, p.rule) == ("库存.csv:line 4 key=A3", "csv.undecodable")
    assert "不是有效的 utf-8 编码" in p.message and "ff" in p.message
    assert [(k, n) for _, k, n in outbox_data(engine)] == [("A1", "帐篷"), ("A2", "棉被")]
    assert (folder / "rejected" / "库存.csv").exists(), "a file with refused lines waits in error_dir"

    # The same bytes dropped again: read again (the refusal is reported again), nothing enqueued twice.
    drop(folder, "库存.csv", bad)
    s = sync_source(cfg, "files", engine)
    assert (s.new, s.changed, s.unchanged, len(s.problems)) == (0, 0, 2, 1)

    # The corrected file, same name and same size (one byte fixed), dropped before any other poll.
    fixed = utf8_export("折叠床".encode() + b" ")
    assert len(fixed) == len(bad)
    drop(folder, "库存.csv", fixed)
    s = sync_source(cfg, "files", engine)
    assert (s.new, s.changed, s.unchanged, s.problems) == (1, 0, 2, [])
    assert [(k, n) for _, k, n in outbox_data(engine)] == [("A1", "帐篷"), ("A2", "棉被"), ("A3", "折叠床")]
    assert (folder / "done" / "库存.csv").exists()


def test_a_refused_file_counts_as_a_refused_file_not_as_rows(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    folder.mkdir()
    cfg = write_config(tmp_path, [source(folder, "append", max_file_bytes=400)], MAPPING)
    engine = open_store(cfg.state_path)
    drop(folder, "good.csv", export([("A1", "帐篷"), ("A2", "棉被")]))
    drop(folder, "huge.csv", export([(f"B{i}", "折叠床") for i in range(50)]))  # over max_file_bytes
    s = sync_source(cfg, "files", engine)
    assert (s.rows_read, s.new, s.rejected, s.files_refused) == (2, 2, 0, 1)
    assert [p.rule for p in s.problems] == ["file.too_large"]
    assert s.as_dict()["files_refused"] == 1 and "拒绝文件 1 个" in str(s)

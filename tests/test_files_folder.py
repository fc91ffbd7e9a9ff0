"""The folder adapter (local drop folder): conformance suite plus the file-drop rules."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path
from typing import Any

import orjson
import pytest

from gateway.adapters.base import Checkpoint, SourceRow
from gateway.adapters.files.adapters import FolderAdapter
from gateway.errors import RowProblem, SourceError
from tests.adapter_conformance import AdapterConformance, make_rows

COLUMNS = ["id", "name", "qty", "day"]


def csv_bytes(rows: list[dict[str, Any]], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, COLUMNS, lineterminator="\r\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode(encoding)


class FolderSource:
    """Drops one CSV file per write, each completed by a .done marker."""

    bulk_rows = 50_000

    def __init__(self, root: Path, **settings: Any) -> None:
        self.root = root
        self.n = 0
        self.settings = {"path": str(root), "key_columns": ["id"], "completion": "marker", **settings}

    def adapter(self, position: Any = None) -> FolderAdapter:
        return FolderAdapter("drop", self.settings)

    def drop(self, data: bytes, suffix: str = ".csv") -> str:
        self.n += 1
        name = f"stock-{self.n:04d}{suffix}"
        (self.root / name).write_bytes(data)
        (self.root / f"{name}.done").write_bytes(b"")
        return name

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.drop(csv_bytes(rows))

    @staticmethod
    def comparable_position(position: Any) -> Any:
        return comparable_ledger(position)

    def write_bad_row(self) -> None:
        # A UTF-8 export with one cell of bytes no encoding can decode.
        good = csv_bytes([{"id": 900, "name": "PLACEHOLDER", "qty": 1, "day": "2024-01-01"}])
        self.drop(good.replace(b"PLACEHOLDER", b"\xff\xfe\xff"))


def comparable_ledger(position: Any) -> Any:
    """A file ledger without the times it records of the read itself (when a file was done, first seen)."""
    if not isinstance(position, dict):
        return position
    p = json.loads(json.dumps(position))
    for f in p.get("files", {}).values():
        f.pop("done_at", None)
    for v in p.get("pending", {}).values():
        del v[2:]
    return p


@pytest.fixture
def source(tmp_path: Path) -> FolderSource:
    return FolderSource(tmp_path)


class TestFolderCsv(AdapterConformance):
    pass


def events(adapter: FolderAdapter, position: Any = None) -> list[Any]:
    with adapter:
        return list(adapter.fetch(position))


def rows(evs: list[Any]) -> list[SourceRow]:
    return [e for e in evs if isinstance(e, SourceRow)]


def problems(evs: list[Any]) -> list[RowProblem]:
    return [e for e in evs if isinstance(e, RowProblem)]


def last_position(evs: list[Any]) -> Any:
    pos = [e for e in evs if isinstance(e, Checkpoint)][-1].position
    return orjson.loads(orjson.dumps(pos))  # stored and handed back as the sync pipeline does


def test_growing_file_is_read_only_once_stable(tmp_path: Path) -> None:
    src = FolderSource(tmp_path, completion="stable", stable_seconds=0)
    data = csv_bytes(make_rows(1, 40))
    f = tmp_path / "growing.csv"
    f.write_bytes(data[: len(data) // 2])
    first = events(src.adapter())
    assert rows(first) == [], "a file seen for the first time is not read"
    with f.open("ab") as out:
        out.write(data[len(data) // 2:])
    os.utime(f, (1_700_000_100, 1_700_000_100))
    second = events(src.adapter(), last_position(first))
    assert rows(second) == [], "a file that changed since the last poll is not read"
    third = events(src.adapter(), last_position(second))
    assert [r.data["id"] for r in rows(third)] == [str(i) for i in range(1, 41)]
    fourth = events(src.adapter(), last_position(third))
    assert rows(fourth) == []


def test_marker_rule_waits_for_the_marker(tmp_path: Path) -> None:
    src = FolderSource(tmp_path)
    (tmp_path / "a.csv").write_bytes(csv_bytes(make_rows(1, 3)))
    evs = events(src.adapter())
    assert rows(evs) == []
    (tmp_path / "a.ok").write_bytes(b"")
    evs = events(src.adapter(), last_position(evs))
    assert len(rows(evs)) == 3
    # The producer rewrites the file but leaves the old marker: not complete until a fresh marker.
    (tmp_path / "a.csv").write_bytes(csv_bytes(make_rows(10, 2)))
    os.utime(tmp_path / "a.ok", (1_600_000_000, 1_600_000_000))
    evs = events(src.adapter(), last_position(evs))
    assert rows(evs) == []
    (tmp_path / "a.ok").touch()
    assert [r.key for r in rows(events(src.adapter(), last_position(evs)))] == ["10", "11"]


def test_same_content_dropped_twice_is_processed_once(tmp_path: Path) -> None:
    src = FolderSource(tmp_path)
    data = csv_bytes(make_rows(1, 5))
    src.drop(data)
    evs = events(src.adapter())
    assert len(rows(evs)) == 5
    src.drop(data)  # the same export again, under another name
    again = events(src.adapter(), last_position(evs))
    assert rows(again) == [] and problems(again) == []


def test_restart_between_polls_processes_nothing_twice(tmp_path: Path) -> None:
    src = FolderSource(tmp_path, checkpoint_rows=10)
    src.drop(csv_bytes(make_rows(1, 35)))
    src.drop(csv_bytes(make_rows(100, 5)))
    seen: list[str] = []
    it = src.adapter().fetch(None)
    position = None
    for e in it:  # the gateway dies right after committing the checkpoint at row 20
        if isinstance(e, SourceRow):
            seen.append(e.key)
        elif isinstance(e, Checkpoint):
            position = json.loads(json.dumps(e.position))
            if len(seen) == 20:
                break
    it.close()
    for _ in range(2):  # restarted: a new adapter from the saved position, then another poll
        evs = events(src.adapter(), position)
        seen += [r.key for r in rows(evs)]
        position = last_position(evs)
    assert sorted(seen, key=int) == [str(i) for i in range(1, 36)] + [str(i) for i in range(100, 105)]


def test_snapshot_file_ends_with_snapshot_checkpoint(tmp_path: Path) -> None:
    src = FolderSource(tmp_path, mode="snapshot")
    src.write(make_rows(1, 4))
    evs = events(src.adapter())
    snaps = [e for e in evs if isinstance(e, Checkpoint) and e.snapshot]
    assert len(snaps) == 1
    assert evs.index(snaps[0]) > max(evs.index(r) for r in rows(evs))
    src.write_bad_row()
    evs2 = events(src.adapter(), last_position(evs))
    assert problems(evs2) and not [e for e in evs2 if isinstance(e, Checkpoint) and e.snapshot], \
        "a snapshot with an unreadable row must not turn missing keys into deletes"


def test_archive_and_error_folders(tmp_path: Path) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    src = FolderSource(drop, archive_dir="archive", error_dir=str(tmp_path / "errors"))
    good = src.drop(csv_bytes(make_rows(1, 2)))
    bad = src.drop(b"PK\x03\x04 not really a workbook", ".xlsx")
    evs = events(src.adapter())
    assert len(rows(evs)) == 2
    [p] = problems(evs)
    assert p.rule == "xlsx.unreadable" and bad in p.locator
    assert (drop / "archive" / good).exists() and (drop / "archive" / f"{good}.done").exists()
    assert (tmp_path / "errors" / bad).exists()
    assert sorted(os.listdir(drop)) == ["archive"]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("evil\nname.csv", "filename.control_char"),
        ("bell\x07.csv", "filename.control_char"),
        ("esc\x1b[31m.csv", "filename.control_char"),
        ("a..b.csv", "filename.dot_dot"),
        ("rtl\u202eexe.csv", "filename.control_char"),
    ],
)
def test_hostile_file_names_are_refused_unread(tmp_path: Path, name: str, rule: str) -> None:
    src = FolderSource(tmp_path, completion="atomic")
    (tmp_path / name).write_bytes(csv_bytes(make_rows(1, 2)))
    evs = events(src.adapter())
    assert rows(evs) == []
    [p] = problems(evs)
    assert p.rule == rule and p.message
    assert "\n" not in p.locator and "\x1b" not in p.locator
    assert problems(events(src.adapter(), last_position(evs))) == [], "reported once, not at every poll"


def test_undecodable_file_name_is_refused(tmp_path: Path) -> None:
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"gbk-\xd6\xd0.csv"), os.O_CREAT | os.O_WRONLY))
    (tmp_path / "全角　空格.csv").write_bytes(csv_bytes(make_rows(1, 1)))  # U+3000 is an ordinary character
    evs = events(FolderSource(tmp_path, completion="atomic").adapter())
    [p] = problems(evs)
    assert p.rule == "filename.undecodable" and p.value == "gbk-\\udcd6\\udcd0.csv"
    assert len(rows(evs)) == 1
    assert problems(events(FolderSource(tmp_path, completion="atomic").adapter(), last_position(evs))) == []


def test_hidden_temporary_and_symlinked_files_are_ignored(tmp_path: Path) -> None:
    src = FolderSource(tmp_path, completion="atomic")
    for n in (".hidden.csv", "upload.csv.tmp", "upload.csv.part"):
        (tmp_path / n).write_bytes(csv_bytes(make_rows(1, 1)))
    secret = tmp_path.parent / f"{tmp_path.name}-secret.csv"
    secret.write_bytes(csv_bytes(make_rows(7, 1)))
    (tmp_path / "link.csv").symlink_to(secret)
    evs = events(src.adapter())
    assert rows(evs) == [] and problems(evs) == []


def test_missing_folder_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="does not exist"):
        events(FolderSource(tmp_path / "nope").adapter())


def test_position_prunes_files_gone_from_the_folder(tmp_path: Path) -> None:
    src = FolderSource(tmp_path, remember_days=0, archive_dir="archive")
    for i in range(5):
        src.write(make_rows(i * 10, 2))
    evs = events(src.adapter())
    pos = last_position(evs)
    assert len(pos["files"]) == 5
    pos2 = last_position(events(src.adapter(), pos))
    assert pos2["files"] == {} and pos2["seen"] == {}, "archived files are forgotten after remember_days"

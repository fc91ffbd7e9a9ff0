"""append and snapshot strategies, over a small file adapter registered as a plug-in would be."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters import registry
from gateway.store import open_store
from gateway.sync import sync_source
from tests.test_sync_pipeline import write_config

PLUGIN = '''
import json
from pathlib import Path
from gateway.adapters.base import Adapter, Checkpoint, Setting, SourceRow
from gateway.errors import RowProblem

class JsonDropAdapter(Adapter):
    """Each *.json file in `folder` is one piece: a full snapshot or a delta."""
    name = "jsondrop"
    settings_spec = (Setting("folder", str, required=True),)

    def fetch(self, position):
        done = list((position or {}).get("done", []))
        for f in sorted(Path(self.settings["folder"]).glob("*.json")):
            if f.name in done:
                continue
            for i, r in enumerate(json.loads(f.read_text(encoding="utf-8")), start=1):
                loc = f"{f.name}:{i}"
                if r.get("broken"):
                    yield RowProblem(self.source, loc, "sl", r["broken"], "parse", "无法读取")
                else:
                    yield SourceRow(str(r["id"]), r, loc)
            done.append(f.name)
            yield Checkpoint({"done": done}, snapshot=True)
'''

MAPPING = """
record_type = "stock"
[fields]
material_id = "wz"
depot_id = { constant = "CK1" }
batch_no = { template = "P{id}" }
quantity = "sl"
unit = { constant = "箱" }
checked_date = { constant = "2024-02-01" }
"""


@pytest.fixture
def jsondrop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    pkg = tmp_path / "plugin"
    (pkg / "jsondrop-1.0.dist-info").mkdir(parents=True)
    (pkg / "jsondrop_adapter.py").write_text(PLUGIN, encoding="utf-8")
    (pkg / "jsondrop-1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: jsondrop\nVersion: 1.0\n")
    (pkg / "jsondrop-1.0.dist-info" / "entry_points.txt").write_text(
        "[gateway.adapters]\njsondrop = jsondrop_adapter:JsonDropAdapter\n"
    )
    monkeypatch.syspath_prepend(str(pkg))
    registry._group.cache_clear()
    drop = tmp_path / "drop"
    drop.mkdir()
    yield drop
    sys.modules.pop("jsondrop_adapter", None)
    registry._group.cache_clear()


def drop_file(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    (folder / name).write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")


def rows(ids: range, qty: int = 1, **over: int) -> list[dict[str, Any]]:
    return [{"id": i, "wz": f"W{i}", "sl": over.get(f"q{i}", qty)} for i in ids]


def config(tmp_path: Path, folder: Path, strategy: str):  # type: ignore[no-untyped-def]
    src = {"name": "drop", "type": "jsondrop", "record_type": "stock", "mapping": "stock.toml",
           "strategy": strategy, "settings": {"folder": str(folder)}}
    return write_config(tmp_path, [src], MAPPING)


def counts(s: Any) -> tuple[int, int, int, int]:
    return s.new, s.changed, s.deleted, s.unchanged


def test_snapshot_files_find_updates_and_deletes(tmp_path: Path, jsondrop: Path) -> None:
    cfg = config(tmp_path, jsondrop, "snapshot")
    store = open_store(cfg.state_path)
    drop_file(jsondrop, "01.json", rows(range(1, 6)))
    assert counts(sync_source(cfg, "drop", store)) == (5, 0, 0, 0)
    drop_file(jsondrop, "02.json", rows(range(1, 5), q2=7))  # row 5 gone, row 2 changed
    drop_file(jsondrop, "03.json", rows(range(1, 5), q2=7) + rows(range(9, 10)))  # row 9 added
    s = sync_source(cfg, "drop", store)
    assert counts(s) == (1, 1, 1, 7)
    assert sync_source(cfg, "drop", store).rows_read == 0  # nothing new dropped


def test_snapshot_with_an_unreadable_row_deletes_nothing(tmp_path: Path, jsondrop: Path) -> None:
    cfg = config(tmp_path, jsondrop, "snapshot")
    store = open_store(cfg.state_path)
    drop_file(jsondrop, "01.json", rows(range(1, 4)))
    sync_source(cfg, "drop", store)
    drop_file(jsondrop, "02.json", [*rows(range(1, 3)), {"broken": "3箱?"}])  # row 3 unreadable, not gone
    s = sync_source(cfg, "drop", store)
    assert (s.deleted, s.rejected) == (0, 1) and "未处理删除" in s.notes[0]


def test_append_files_are_deltas(tmp_path: Path, jsondrop: Path) -> None:
    cfg = config(tmp_path, jsondrop, "append")
    store = open_store(cfg.state_path)
    drop_file(jsondrop, "01.json", rows(range(1, 6)))
    sync_source(cfg, "drop", store)
    drop_file(jsondrop, "02.json", rows(range(6, 8)) + rows(range(1, 2), qty=9))
    assert counts(sync_source(cfg, "drop", store)) == (2, 1, 0, 0)



def test_sync_one_on_a_source_that_cannot_reread_a_row(tmp_path: Path, jsondrop: Path) -> None:
    from gateway.sync import sync_one

    cfg = config(tmp_path, jsondrop, "append")
    r = sync_one(cfg, "drop", "1", open_store(cfg.state_path))
    assert r.outbox_ids == [] and r.problems[0].rule == "fetch_one" and "不支持" in r.problems[0].message


def test_a_checkpoint_is_committed_before_the_adapter_resumes(tmp_path: Path, jsondrop: Path) -> None:
    """File adapters archive a file right after its checkpoint; by then its rows must be in the outbox."""
    import sqlalchemy as sa

    from gateway.store.tables import outbox, source_positions

    cfg = config(tmp_path, jsondrop, "append")
    store = open_store(cfg.state_path)
    drop_file(jsondrop, "01.json", rows(range(1, 4)))
    drop_file(jsondrop, "02.json", rows(range(4, 6)))
    seen: list[tuple[int, str | None]] = []
    cls = registry.adapter_class("jsondrop")
    original = cls.fetch

    def watching_fetch(self, position):  # type: ignore[no-untyped-def]
        for e in original(self, position):
            yield e
            if type(e).__name__ == "Checkpoint":  # resumed: look at what is durable now
                with store.connect() as c:
                    n = c.execute(sa.select(sa.func.count()).select_from(outbox)).scalar_one()
                    pos = c.execute(sa.select(source_positions.c.position)).scalar_one()
                seen.append((n, pos))

    cls.fetch = watching_fetch
    try:
        sync_source(cfg, "drop", store)
    finally:
        cls.fetch = original
    assert [n for n, _ in seen] == [3, 5]
    assert '"01.json"' in (seen[0][1] or "") and '"02.json"' in (seen[1][1] or "")

"""A whole-source read that would delete most of a source's records is held back, never sent."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from gateway.cli import cli
from gateway.errors import ConfigError
from gateway.store import open_store
from gateway.store.tables import outbox, sync_runs
from gateway.sync import MassDeleteHeld, sync_source
from tests.test_sync_pipeline import kc, kc_row, seed_source, source_entry, write_config


def _ops(engine: sa.Engine) -> dict[str, int]:
    with engine.connect() as c:
        return dict(c.execute(sa.select(outbox.c.op, sa.func.count()).group_by(outbox.c.op)).all())


@pytest.mark.parametrize("strategy", ["fingerprint", "cursor"])
def test_emptied_source_is_held_back_until_the_admin_allows_it(tmp_path: Path, strategy: str) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    src = seed_source(url, 100)
    extra = {"reconcile_deletes": True} if strategy == "cursor" else {}
    config = write_config(tmp_path, [source_entry("kc", url, strategy, **extra)])
    engine = open_store(config.state_path)
    assert sync_source(config, "kc", engine).new == 100
    with src.begin() as c:  # the table is emptied but for 30 rows, and one of those is edited
        c.execute(kc.delete().where(kc.c.id > 30))
        c.execute(kc.update().where(kc.c.id == 1).values(sl="777箱", updated_at=kc_row(1)["updated_at"].replace(year=2025)))

    with pytest.raises(MassDeleteHeld) as held:
        sync_source(config, "kc", engine)
    msg = str(held.value)
    assert "将删除 70 条记录" in msg and "现有 100 条" in msg and "--allow-mass-delete" in msg
    assert _ops(engine) == {"upsert": 101}  # the edit went out; not one delete
    with engine.connect() as c:
        run = c.execute(sa.select(sync_runs).order_by(sync_runs.c.id.desc())).first()
    assert run.status == "failed" and "MassDeleteHeld" in run.error

    with pytest.raises(MassDeleteHeld):  # held back again on the next scheduled run
        sync_source(config, "kc", engine)
    assert _ops(engine) == {"upsert": 101}

    r = CliRunner().invoke(cli, ["--config", str(config.file), "sync", "kc", "--no-push", "--allow-mass-delete"])
    assert r.exit_code == 0, r.output
    assert "删除 70" in r.output
    assert _ops(engine) == {"upsert": 101, "delete": 70}


def test_ordinary_deletes_and_small_sources_pass(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    src = seed_source(url, 200)
    config = write_config(tmp_path, [source_entry("kc", url, "fingerprint", max_delete_fraction=0.2)])
    engine = open_store(config.state_path)
    sync_source(config, "kc", engine)
    with src.begin() as c:
        c.execute(kc.delete().where(kc.c.id > 170))  # 30 of 200: under a fifth
    assert sync_source(config, "kc", engine).deleted == 30

    small = tmp_path / "small"
    small.mkdir()
    url = f"sqlite:///{small / 'src.db'}"
    src = seed_source(url, 12)
    config = write_config(small, [source_entry("kc", url, "fingerprint")])
    engine = open_store(config.state_path)
    sync_source(config, "kc", engine)
    with src.begin() as c:
        c.execute(kc.delete().where(kc.c.id > 3))  # 9 of 12: most, but fewer than 10 deletes are never held
    assert sync_source(config, "kc", engine).deleted == 9


def test_max_delete_fraction_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        write_config(tmp_path, [source_entry("kc", "sqlite:///x.db", "fingerprint", max_delete_fraction=0)])
    assert "sources[0].max_delete_fraction" in str(e.value)

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from gateway.store import open_store
from gateway.store.db import LATEST, current_version


def test_store_is_wal_fsynced_and_migrated_once(tmp_path: Path) -> None:
    eng = open_store(tmp_path / "s" / "gw.db")
    with eng.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert current_version(c) == LATEST
        names = {r[0] for r in c.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert {"source_positions", "fingerprints", "outbox", "receipts", "dead_letters", "mapping_versions", "users", "audit"} <= names
    eng.dispose()
    # Re-opening applies nothing twice.
    eng = open_store(tmp_path / "s" / "gw.db")
    with eng.connect() as c:
        assert c.execute(text("SELECT count(*) FROM schema_version")).scalar() == LATEST

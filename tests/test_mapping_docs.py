"""docs/mappings.md covers every built-in transform, every database setting and command; examples compile."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.adapters import registry
from gateway.adapters.odbc import OdbcAdapter
from gateway.adapters.sql import SqlAdapter
from gateway.mappings import load_mapping

ROOT = Path(__file__).resolve().parents[1]
DOC = (ROOT / "docs" / "mappings.md").read_text(encoding="utf-8")


def test_every_builtin_transform_is_documented() -> None:
    builtin = [n for n in registry.names(registry.TRANSFORM_GROUP)
               if registry.load(n, registry.TRANSFORM_GROUP).__module__ == "gateway.mappings.transforms"]
    assert len(builtin) >= 19
    missing = [n for n in builtin if f"`{n}`" not in DOC]
    assert not missing, f"transforms missing from docs/mappings.md: {missing}"


@pytest.mark.parametrize("cls", [SqlAdapter, OdbcAdapter])
def test_every_database_setting_is_documented(cls: type) -> None:
    missing = [s.name for s in cls.settings_spec if f"`{s.name}`" not in DOC]
    assert not missing, f"{cls.name} settings missing from docs/mappings.md: {missing}"


def test_commands_are_documented() -> None:
    for cmd in ("sync kc", "sync kc --json", "mapping preview", "mapping versions", "mapping diff", "mapping rollback", "mapping check"):
        assert cmd in DOC, cmd


@pytest.mark.parametrize("example", sorted((ROOT / "config" / "mappings").glob("*.example.toml")), ids=lambda p: p.name)
def test_example_mappings_compile(example: Path) -> None:
    m = load_mapping(example)
    assert m.fields and m.source_fields

"""docs/file-sources.md documents every file-source setting, rule and the trust command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gateway.adapters.filenames import REASONS
from gateway.adapters.files.adapters import FolderAdapter, XmlAdapter
from gateway.adapters.files.sftp import SftpAdapter

DOC = (Path(__file__).resolve().parents[1] / "docs" / "file-sources.md").read_text(encoding="utf-8")
CODE = Path(__file__).resolve().parents[1] / "gateway" / "adapters"


@pytest.mark.parametrize("cls", [FolderAdapter, SftpAdapter, XmlAdapter])
def test_every_setting_is_documented(cls: type) -> None:
    missing = [s.name for s in cls.settings_spec if f"`{s.name}`" not in DOC]
    assert missing == []


def test_every_refusal_rule_is_documented() -> None:
    rules = set(REASONS)
    for f in list((CODE / "formats").glob("*.py")) + list((CODE / "files").glob("*.py")):
        rules |= set(re.findall(r'"((?:xml|file|xlsx|xls|csv)\.[a-z_]+)"', f.read_text(encoding="utf-8")))
    assert sorted(r for r in rules if f"`{r}`" not in DOC) == []


def test_trust_command_is_documented() -> None:
    assert "sftp trust" in DOC and "--replace" in DOC and "--fingerprint" in DOC

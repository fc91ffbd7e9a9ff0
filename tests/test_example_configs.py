"""The shipped example gateway config is a config that loads, with every source's settings known."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from gateway.config import load_gateway_config
from gateway.protocol.keys import new_key_pair

CONFIG = Path(__file__).resolve().parent.parent / "config"


def test_gateway_example_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(CONFIG, tmp_path / "config")
    new_key_pair(tmp_path / "config" / "keys" / "gateway.key", tmp_path / "config" / "keys" / "gateway.pub")
    for name, value in {
        "GATEWAY_WEB_SECRET": "s", "GATEWAY_API_TOKEN": "t", "STOCK_DB_URL": "sqlite:///wms.db",
        "CATALOGUE_ODBC": "DRIVER={PostgreSQL Unicode};SERVER=127.0.0.1",
    }.items():
        monkeypatch.setenv(name, value)
    cfg = load_gateway_config(tmp_path / "config" / "gateway.example.toml")
    assert [s.name for s in cfg.sources] == ["stock_db", "catalogue", "township_sftp", "legacy_depots"]
    assert [s.type for s in cfg.sources] == ["sql", "odbc", "sftp", "xml"]
    assert cfg.source("township_sftp").settings["mode"] == "snapshot"
    assert cfg.source("township_sftp").settings["known_hosts"] == str(tmp_path / "config" / "keys" / "known_hosts")
    assert cfg.source("stock_db").settings["url"] == "sqlite:///" + str(tmp_path / "config" / "wms.db")
    assert cfg.extra_units == ("盏",)


def test_gateway_example_config_names_missing_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.errors import ConfigError

    shutil.copytree(CONFIG, tmp_path / "config")
    new_key_pair(tmp_path / "config" / "keys" / "gateway.key", tmp_path / "config" / "keys" / "gateway.pub")
    for name in ("GATEWAY_WEB_SECRET", "GATEWAY_API_TOKEN", "STOCK_DB_URL", "CATALOGUE_ODBC"):
        monkeypatch.delenv(name, raising=False)
    # Secrets are read when what needs them is used: the web UI's when the service starts,
    # a source's when that source is synced, previewed or checked; each names its own.
    cfg = load_gateway_config(tmp_path / "config" / "gateway.example.toml")
    with pytest.raises(ConfigError) as ei:
        cfg.web.resolve()
    assert {p.path for p in ei.value.problems} == {"web.secret_key", "web.api_token"}
    for name, path in (("stock_db", "sources[0].settings.url"), ("catalogue", "sources[1].settings.odbc_connect")):
        with pytest.raises(ConfigError) as ei:
            cfg.source(name).settings  # noqa: B018 - reading them is the point
        assert [p.path for p in ei.value.problems] == [path]
    assert cfg.source("township_sftp").settings["mode"] == "snapshot"

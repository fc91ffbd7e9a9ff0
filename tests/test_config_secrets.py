"""A source's secrets are read when that source is used, not by every command."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import cli
from gateway.config import load_gateway_config

MAPPING = """
record_type = "stock"
[fields]
material_id = "wzbm"
depot_id = "ckbm"
quantity = { column = "sl", transforms = ["number"] }
unit = { constant = "箱" }
checked_date = { constant = "2024-03-01" }
"""

CONFIG = """
[department]
code = "330106001"
name = "测试应急管理局"
[hub]
url = "http://127.0.0.1:9"
[keys]
signing_key = "gateway.key"
key_id = "k1"

[[sources]]
name = "first"
type = "sql"
record_type = "stock"
mapping = "stock.toml"
[sources.settings]
url = {{ env = "{first_env}" }}
table = "kc"
key_columns = ["id"]

[[sources]]
name = "second"
type = "odbc"
record_type = "stock"
mapping = "stock.toml"
[sources.settings]
dsn = "wms"
user = "gw"
password = {{ env = "H13_SECOND_PASSWORD" }}
table = "kc"
key_columns = ["id"]
"""


def department(tmp: Path) -> Path:
    db = sqlite3.connect(tmp / "src.db")
    db.executescript(
        "create table kc (id integer primary key, wzbm text, ckbm text, sl text);"
        "insert into kc values (1, 'WZ001', 'CK001', '5');"
    )
    db.commit()
    db.close()
    (tmp / "gateway.key").write_text("unused")
    (tmp / "stock.toml").write_text(MAPPING, encoding="utf-8")
    (tmp / "gateway.toml").write_text(CONFIG.format(first_env="H13_FIRST_URL"), encoding="utf-8")
    return tmp / "gateway.toml"


def test_a_command_needs_only_the_secrets_of_the_source_it_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = department(tmp_path)
    # A relative SQLite URL from a secret is, like an inline one, next to the config file.
    monkeypatch.setenv("H13_FIRST_URL", "sqlite:///src.db")
    monkeypatch.delenv("H13_SECOND_PASSWORD", raising=False)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "sync", "first", "--no-push"])
    assert r.exit_code == 0, r.output
    assert "新增 1" in r.output
    r = CliRunner().invoke(cli, ["--config", str(cfg), "sync", "second", "--no-push"])
    assert r.exit_code == 2
    assert "sources[1].settings.password: environment variable H13_SECOND_PASSWORD is not set" in r.output


def test_a_malformed_secret_reference_is_still_refused_at_load(tmp_path: Path) -> None:
    cfg = department(tmp_path)
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace('{ env = "H13_SECOND_PASSWORD" }', '{ envv = "X" }'), encoding="utf-8"
    )
    from gateway.errors import ConfigError

    with pytest.raises(ConfigError, match=r"sources\[1\]\.settings\.password: unknown secret reference 'envv'"):
        load_gateway_config(cfg)


def test_the_source_page_shows_a_secret_reference_not_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.web.sources import shown_settings

    monkeypatch.setenv("H13_FIRST_URL", "sqlite:///src.db")
    conf = load_gateway_config(department(tmp_path))
    assert shown_settings(conf.source("first"))["url"] == conf.source("first").declared_settings["url"]
    assert str(shown_settings(conf.source("first"))["url"]) == '{env = "H13_FIRST_URL"}'
    assert shown_settings(conf.source("second"))["password"] == "******"
    assert conf.source("first").settings["url"] == f"sqlite:///{tmp_path / 'src.db'}"


def test_the_web_secrets_are_needed_by_the_service_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = department(tmp_path)
    cfg.write_text(
        cfg.read_text(encoding="utf-8").replace(
            "[[sources]]",
            '[web]\nsecret_key = { env = "H13_WEB_SECRET" }\napi_token = { env = "H13_API_TOKEN" }\n\n[[sources]]',
            1,
        ),
        encoding="utf-8",
    )
    monkeypatch.setenv("H13_FIRST_URL", "sqlite:///src.db")
    for name in ("H13_WEB_SECRET", "H13_API_TOKEN", "H13_SECOND_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    r = CliRunner().invoke(cli, ["--config", str(cfg), "sync", "first", "--no-push"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["--config", str(cfg), "run"])
    assert r.exit_code == 2
    assert "web.secret_key: environment variable H13_WEB_SECRET is not set" in r.output
    assert "web.api_token: environment variable H13_API_TOKEN is not set" in r.output

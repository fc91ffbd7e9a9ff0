from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import cli
from gateway.config import load_gateway_config
from gateway.errors import ConfigError


def test_init_writes_config_and_private_key_0600(tmp_path: Path) -> None:
    r = CliRunner().invoke(cli, ["init", str(tmp_path / "gw"), "--code", "330106001"])
    assert r.exit_code == 0, r.output
    key = tmp_path / "gw" / "keys" / "gateway.key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert (tmp_path / "gw" / "keys" / "gateway.pub").read_text().strip()
    # The starting config loads once its secrets are in the environment.
    os.environ["GATEWAY_WEB_SECRET"] = "s"
    os.environ["GATEWAY_API_TOKEN"] = "t"
    try:
        cfg = load_gateway_config(tmp_path / "gw" / "gateway.toml")
        assert cfg.web.api_token == "t"  # read on first use
    finally:
        del os.environ["GATEWAY_WEB_SECRET"], os.environ["GATEWAY_API_TOKEN"]
    assert cfg.department_code == "330106001"
    assert cfg.web.api_token == "t", "kept once read"
    assert cfg.freshness_days["stock"] == 90


def test_config_with_five_mistakes_reports_all_five(tmp_path: Path) -> None:
    (tmp_path / "k.key").write_text("x")
    (tmp_path / "c.toml").write_text(
        """
[department]
name = "部门"                     # 1: code missing
[hub]
url = "ftp://hub"                 # 2: bad scheme
[keys]
signing_key = "k.key"
key_id = "k1"
[web]
listne = "127.0.0.1:1"            # 3: unknown setting (typo)
[[sources]]
name = "a"
type = "sql"
record_type = "stocks"            # 4: unknown record type
mapping = "missing.toml"          # 5: file not found
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as ei:
        load_gateway_config(tmp_path / "c.toml")
    paths = [p.path for p in ei.value.problems]
    assert paths[:5] == ["department.code", "hub.url", "web.listne", "sources[0].record_type", "sources[0].mapping"] or set(
        ["department.code", "hub.url", "web.listne", "sources[0].record_type", "sources[0].mapping"]
    ) <= set(paths)
    msg = str(ei.value)
    assert "did you mean 'listen'" in msg
    assert "file not found" in msg


def test_secret_from_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.config import resolve_secret

    (tmp_path / "api_token").write_text("tok\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    assert resolve_secret({"credential": "api_token"}, "web.api_token") == "tok"
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        resolve_secret({"credential": "api_token"}, "web.api_token")


def test_help_lists_commands() -> None:
    r = CliRunner().invoke(cli, ["--help"])
    assert r.exit_code == 0
    for cmd in ("init", "keys"):
        assert cmd in r.output


def _write_folder_source(tmp_path: Path, strategy: str, mode: str | None) -> Path:
    (tmp_path / "k.key").write_text("x")
    (tmp_path / "m.toml").write_text("")
    (tmp_path / "drop").mkdir(exist_ok=True)
    mode_line = f'mode = "{mode}"' if mode else ""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"""
[department]
code = "d1"
name = "部门"
[hub]
url = "http://127.0.0.1:1"
[keys]
signing_key = "k.key"
key_id = "k1"
[[sources]]
name = "drop"
type = "folder"
record_type = "stock"
mapping = "m.toml"
strategy = "{strategy}"
[sources.settings]
path = "drop"
key_columns = ["id"]
{mode_line}
""",
        encoding="utf-8",
    )
    return cfg


def test_file_source_strategy_sets_mode_and_paths_are_relative_to_the_config(tmp_path: Path) -> None:
    cfg = load_gateway_config(_write_folder_source(tmp_path, "snapshot", None))
    s = cfg.source("drop")
    assert s.settings["mode"] == "snapshot"  # otherwise a snapshot file would never delete
    assert s.settings["path"] == str(tmp_path / "drop")


def test_file_source_mode_contradicting_strategy_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_gateway_config(_write_folder_source(tmp_path, "snapshot", "append"))
    assert [p.path for p in ei.value.problems] == ["sources[0].settings.mode"]

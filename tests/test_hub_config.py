"""Hub config: the example loads, mistakes are all reported at once; the registry CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.cli import cli
from gateway.errors import ConfigError
from gateway.hub.config import load_hub_config
from gateway.protocol.keys import new_key_pair, public_key_text

EXAMPLE = Path(__file__).resolve().parents[1] / "config" / "hub.example.toml"


def test_example_config_loads(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    shutil.copy(EXAMPLE, cfg)
    new_key_pair(tmp_path / "keys" / "hub.key", tmp_path / "keys" / "hub.pub")
    c = load_hub_config(cfg)
    assert c.database == f"sqlite:///{tmp_path / 'state' / 'hub.db'}"
    assert [d.code for d in c.departments] == ["yjj", "wjw"]
    assert c.grants[0].record_types == ("material", "stock") and not c.grants[0].confidential
    assert c.host_port == ("127.0.0.1", 8700)


def test_every_mistake_is_reported_at_once(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    cfg.write_text("""
[hub]
listen = "8700"
signing_key = "keys/missing.key"
clock_window = 2
max_in_flight = "many"
colour = "blue"

[[departments]]
code = "a"
name = "甲"
record_types = ["stock", "stocks"]
  [[departments.keys]]
  key_id = "a 1"
  public_key = "not base64!"

[[departments]]
code = "yjj"
  [[departments.keys]]
  key_id = "k"
  public_key_file = "keys/nope.pub"

[[grants]]
reader = "nobody"
owner = "yjj"
""", encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_hub_config(cfg)
    paths = [p.path for p in e.value.problems]
    for expected in (
        "hub.listen", "hub.signing_key", "hub.key_id", "hub.clock_window", "hub.max_in_flight", "hub.colour",
        "departments[0].code", "departments[0].record_types", "departments[0].keys[0].key_id",
        "departments[0].keys[0].public_key", "departments[1].name", "departments[1].keys[0].public_key_file",
        "grants[0].reader",
    ):
        assert expected in paths, f"{expected} not reported; got {paths}"
    assert "gateway keys new" in str(e.value)


def test_department_cli_add_key_revoke_list(tmp_path: Path) -> None:
    cfg = tmp_path / "hub.toml"
    new_key_pair(tmp_path / "hub.key", tmp_path / "hub.pub")
    cfg.write_text('[hub]\nsigning_key = "hub.key"\nkey_id = "hub-1"\ndatabase = "hub.db"\n', encoding="utf-8")
    k1 = new_key_pair(tmp_path / "a1.key", tmp_path / "a1.pub")
    k2 = new_key_pair(tmp_path / "a2.key", tmp_path / "a2.pub")
    run = CliRunner().invoke
    base = ["hub", "--config", str(cfg), "department"]
    assert run(cli, base + ["add", "yjj", "应急管理局", "--types", "material,stock"]).exit_code == 0
    assert run(cli, base + ["add", "wjw", "卫健委"]).exit_code == 0
    assert run(cli, base + ["key-add", "yjj", "yjj-1", str(tmp_path / "a1.pub")]).exit_code == 0
    assert run(cli, base + ["key-add", "yjj", "yjj-2", public_key_text(k2.public_key())]).exit_code == 0
    assert run(cli, base + ["key-revoke", "yjj-1"]).exit_code == 0
    assert run(cli, base + ["grant", "wjw", "yjj", "--types", "stock", "--confidential"]).exit_code == 0
    bad = run(cli, base + ["add", "xx", "bad", "--types", "stocks"])
    assert bad.exit_code == 2 and "stocks" in bad.output
    taken = run(cli, base + ["key-add", "wjw", "yjj-1", public_key_text(k1.public_key())])
    assert taken.exit_code == 2 and "registered already" in taken.output
    out = run(cli, base + ["list"]).output
    assert "yjj\t应急管理局\twrites: material, stock" in out
    assert "key yjj-1\tREVOKED" in out and "key yjj-2\tactive" in out
    assert "grant wjw reads yjj stock +confidential" in out


def test_every_setting_and_command_is_documented() -> None:
    from gateway.at_rest.keyring import AT_REST_KEYS
    from gateway.hub.cli import at_rest, department, hub
    from gateway.hub.config import (
        ATTACHMENT_KEYS,
        DEPARTMENT_KEYS,
        GRANT_KEYS,
        HUB_KEYS,
        KEY_KEYS,
        RELAY_KEYS,
        REPORT_KEYS,
        STANDARD_KEYS,
        UPSTREAM_KEYS,
    )

    doc = (EXAMPLE.parents[1] / "docs" / "hub.md").read_text(encoding="utf-8")
    names = [f"hub.{k}" for k in HUB_KEYS] + [f"attachments.{k}" for k in ATTACHMENT_KEYS] + [f"standard.{k}" for k in STANDARD_KEYS]
    names += [f"departments[].{k}" for k in DEPARTMENT_KEYS if k != "keys"] + [f"departments[].keys[].{k}" for k in KEY_KEYS]
    names += [f"grants[].{k}" for k in GRANT_KEYS] + [f"report.{k}" for k in REPORT_KEYS]
    names += [f"at_rest.{k}" for k in AT_REST_KEYS]
    names += [f"upstream.{k}" for k in UPSTREAM_KEYS] + [f"relays[].{k}" for k in RELAY_KEYS]
    missing = [n for n in names if f"`{n}`" not in doc]
    ours = [c for c, cmd in hub.commands.items() if cmd.callback and cmd.callback.__module__ == "gateway.hub.cli"]
    missing += [f"hub {c}" for c in ours if c != "department" and f"hub --config hub.toml {c}" not in doc]
    missing += [f"department {c}" for c in department.commands if f"department {c}" not in doc]
    missing += [f"at-rest {c}" for c in at_rest.commands if f"at-rest {c}" not in doc]
    missing += [f"hub {c}" for c in ("forward", "relay add", "relay list") if f"hub --config hub.toml {c}" not in doc]
    assert missing == [], f"docs/hub.md does not mention {missing}"


def test_signing_key_from_a_systemd_credential(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    new_key_pair(creds / "hub_signing_key", tmp_path / "hub.pub")
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nsigning_key = {credential = "hub_signing_key"}\nkey_id = "hub-1"\n', encoding="utf-8")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    with pytest.raises(ConfigError, match="CREDENTIALS_DIRECTORY"):
        load_hub_config(cfg)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    assert load_hub_config(cfg).signing_key == creds / "hub_signing_key"

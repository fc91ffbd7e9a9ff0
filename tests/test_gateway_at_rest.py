"""The gateway's own stored secrets sealed with SM4 at rest: the signing key and the generated web secret.
A gateway whose key is sealed still pushes to a real hub over loopback; a missing at-rest key is named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from gateway.at_rest.envelope import key_id_of
from gateway.cli import cli
from gateway.config import load_gateway_config
from gateway.errors import ConfigError
from gateway.protocol.keys import read_private_key
from gateway.store.tables import outbox
from tests.fixtures.hub import LiveHub
from tests.fixtures.push import Edit, GatewayDir, enqueue, material, mkey


def _add_at_rest(config: Path, current: str, keys: dict[str, str]) -> None:
    lines = ["", "[at_rest]", 'cipher = "sm4"', f'current = "{current}"', "[at_rest.keys]"]
    for kid, hexkey in keys.items():
        (config.parent / "keys" / f"at-rest-{kid}").write_text(hexkey + "\n")
        lines.append(f'{kid} = {{file = "keys/at-rest-{kid}"}}')
    config.write_text(config.read_text(encoding="utf-8").split("\n[at_rest]")[0] + "\n".join(lines) + "\n")


def _run(config: Path, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["--config", str(config), *args])
    return r.exit_code, r.output


def test_sealed_signing_key_and_web_secret_and_a_push_through_them(live_hub: LiveHub, gateway_dir: GatewayDir) -> None:
    from gateway.web.app import create_app

    cfg_path = gateway_dir.config_path
    gateway_dir.for_hub(live_hub)
    _add_at_rest(cfg_path, "k1", {"k1": os.urandom(16).hex()})
    key_file = gateway_dir.root / "keys" / "gateway.key"
    assert key_id_of(key_file.read_bytes()) is None  # written before [at_rest]: plaintext, still loads
    code, out = _run(cfg_path, "at-rest", "rekey")
    assert code == 0 and "secrets: 1 file(s) (1 plaintext); 1 rewritten as key k1" in out, out
    assert key_id_of(key_file.read_bytes()) == "k1" and b"PRIVATE KEY" not in key_file.read_bytes()
    with pytest.raises(ValueError, match="sealed with SM4 at rest"):
        read_private_key(key_file)

    config = load_gateway_config(cfg_path)
    create_app(config)  # generates the web session key: sealed
    assert key_id_of(config.web_secret_file.read_bytes()) == "k1"
    secret = config.web_secret_file
    assert create_app(load_gateway_config(cfg_path)).config["SECRET_KEY"] == create_app(config).config["SECRET_KEY"]
    assert len(create_app(config).config["SECRET_KEY"]) >= 48 and secret.stat().st_mode & 0o777 == 0o600

    engine = gateway_dir.store()
    enqueue(engine, [Edit(mkey(1), 1, material(1))])
    code, out = _run(cfg_path, "push-pending")
    assert code == 0, out
    with engine.connect() as c:
        assert c.execute(select(outbox.c.state)).scalars().all() == ["delivered"]
    engine.dispose()

    # Rotation: k2 current, k1 kept; rekey both secrets; then without k1 the gateway still loads and signs.
    k1 = (gateway_dir.root / "keys" / "at-rest-k1").read_text().strip()
    _add_at_rest(cfg_path, "k2", {"k2": os.urandom(16).hex(), "k1": k1})
    code, out = _run(cfg_path, "at-rest", "rekey")
    assert code == 0 and "secrets: 2 file(s) (2 k1); 2 rewritten as key k2" in out, out
    _add_at_rest(cfg_path, "k2", {"k2": (gateway_dir.root / "keys" / "at-rest-k2").read_text().strip()})
    assert _run(cfg_path, "at-rest", "status")[1].startswith("secrets: 2 file(s) (2 k2); 0 rewritten")
    assert load_gateway_config(cfg_path).at_rest.current == "k2"


def test_a_key_sealed_under_an_unlisted_at_rest_key_is_named_at_load(gateway_dir: GatewayDir) -> None:
    gateway_dir.write_config("http://127.0.0.1:9")
    _add_at_rest(gateway_dir.config_path, "k1", {"k1": os.urandom(16).hex()})
    code, out = _run(gateway_dir.config_path, "keys", "new", str(gateway_dir.root / "keys" / "gateway.key"), "--force")
    assert code == 0 and "sealed with SM4 under at-rest key k1" in out, out
    _add_at_rest(gateway_dir.config_path, "k2", {"k2": os.urandom(16).hex()})
    with pytest.raises(ConfigError) as e:
        load_gateway_config(gateway_dir.config_path)
    assert any(p.path == "keys.signing_key" and "sealed under at-rest key 'k1'" in p.message for p in e.value.problems)

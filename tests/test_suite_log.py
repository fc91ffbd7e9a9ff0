"""The receipt log under each suite: SM3 chains an sm2-sm3 hub's entries, each entry names its hash, verify-log never guesses."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import hashes
from sqlalchemy import select, update

from gateway.cli import cli
from gateway.hub import tables
from gateway.hub.db import open_hub_db
from gateway.hub.receipt_log import ENTRY_FIELDS
from gateway.protocol.canonical import canonical_json
from gateway.protocol.keys import new_key_pair
from tests.fixtures.hub import LiveHub, batch_body, record, sample

pytest.importorskip("tongsuopy")
BATCHES = "/api/v1/batches"


def push(hub: LiveHub, first: int, n: int) -> None:
    for i in range(first, first + n):
        r = hub.post(BATCHES, batch_body([record("material", sample("material", i))]))
        assert r.status_code == 200, r.text


def entries(hub: LiveHub) -> list[dict]:
    with hub.engine.connect() as c:
        return [dict(r) for r in c.execute(select(tables.receipt_log).order_by(tables.receipt_log.c.seq)).mappings()]


def verify_log(hub: LiveHub) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["hub", "--config", str(hub.config_path), "verify-log"])
    return r.exit_code, r.output


def sm3(data: bytes) -> str:
    """SM3 from the `cryptography` package (OpenSSL), not the suite's tongsuopy: an independent check."""
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize().hex()


def test_an_sm2_hub_chains_its_log_with_sm3_and_says_so(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory(suite="sm2-sm3")
    push(hub, 1, 3)
    log = entries(hub)
    assert [e["hash_alg"] for e in log] == ["sm3"] * 3
    for e in log:
        doc = {f: e[f] for f in ENTRY_FIELDS} | {"hash_alg": "sm3"}
        assert e["entry_hash"] == sm3(canonical_json(doc))
    code, out = verify_log(hub)
    assert code == 0 and "intact: 3 entries" in out and "chained with 3 sm3" in out, out


def test_a_log_keeps_verifying_across_a_change_of_the_hub_key_to_sm2(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory()  # ed25519: SHA-256 entries, in the same form as before the suites
    push(hub, 1, 2)
    assert [e["hash_alg"] for e in entries(hub)] == [None, None]
    hub.stop()
    cfg = hub.config_path.read_text(encoding="utf-8").replace('suite = "ed25519"', 'suite = "sm2-sm3"')
    hub.config_path.write_text(cfg, encoding="utf-8")
    code, out = verify_log(hub)
    assert code == 2 and "holds an ed25519 key but hub.suite is sm2-sm3" in out, out  # checked at load
    r = CliRunner().invoke(cli, ["hub", "--config", str(hub.config_path), "keys", "new", "--force"])
    assert r.exit_code == 0 and "suite sm2-sm3" in r.output, r.output
    hub.hub_public_key = (hub.dir / "keys" / "hub.pub").read_text().strip()
    assert hub.hub_public_key.startswith("sm2:")
    hub.start()
    push(hub, 3, 2)
    assert [e["hash_alg"] for e in entries(hub)] == [None, None, "sm3", "sm3"]
    code, out = verify_log(hub)
    assert code == 0 and "chained with 2 sha-256, 2 sm3" in out, out

    # The hash an entry names is covered: renaming it alone breaks that entry, and an unknown one is named.
    with hub.engine.begin() as c:
        c.execute(update(tables.receipt_log).where(tables.receipt_log.c.seq == 3).values(hash_alg=None))
    code, out = verify_log(hub)
    assert code == 1 and "entry 3: content does not match its entry_hash (sha-256" in out, out
    with hub.engine.begin() as c:
        c.execute(update(tables.receipt_log).where(tables.receipt_log.c.seq == 3).values(hash_alg="md5"))
    code, out = verify_log(hub)
    assert code == 1 and "entry 3: hash_alg 'md5' is no suite's hash" in out and "first bad entry: 3" in out, out


def test_an_older_database_gets_the_hash_column_and_its_log_verifies(hub_factory) -> None:  # type: ignore[no-untyped-def]
    hub = hub_factory()
    push(hub, 1, 2)
    hub.stop()
    hub.engine.dispose()
    with hub.engine.begin() as c:  # the schema before the suites
        c.exec_driver_sql("ALTER TABLE receipt_log DROP COLUMN hash_alg")
    hub.engine.dispose()
    open_hub_db(hub.database_url).dispose()
    code, out = verify_log(hub)
    assert code == 0 and "intact: 2 entries" in out and "2 sha-256" in out, out


@pytest.mark.parametrize("suite", ["ed25519", "sm2-sm3"])
def test_init_and_hub_keys_new_make_a_key_of_the_configured_suite(
    tmp_path: Path, suite: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gateway.config import load_gateway_config
    from gateway.hub.config import load_hub_config
    from gateway.protocol.keys import read_private_key
    from gateway.protocol.suites import suite_of

    r = CliRunner().invoke(cli, ["init", str(tmp_path / "gw"), "--suite", suite])
    assert r.exit_code == 0, r.output
    monkeypatch.setenv("GATEWAY_WEB_SECRET", "s" * 32)
    monkeypatch.setenv("GATEWAY_API_TOKEN", "t" * 32)
    config = load_gateway_config(tmp_path / "gw" / "gateway.toml")
    assert config.suite == suite and suite_of(read_private_key(config.signing_key)).name == suite

    hub_toml = tmp_path / "hub" / "hub.toml"
    hub_toml.parent.mkdir()
    hub_toml.write_text(f'[hub]\nsigning_key = "keys/hub.key"\nkey_id = "hub-1"\nsuite = "{suite}"\n')
    r = CliRunner().invoke(cli, ["hub", "--config", str(hub_toml), "keys", "new"])
    assert r.exit_code == 0, r.output
    hub = load_hub_config(hub_toml)
    assert hub.suite == suite and suite_of(read_private_key(hub.signing_key)).name == suite
    again = CliRunner().invoke(cli, ["hub", "--config", str(hub_toml), "keys", "new"])
    assert again.exit_code != 0 and "exists" in again.output


def test_suite_settings_are_checked_at_load(tmp_path: Path) -> None:
    from gateway.errors import ConfigError
    from gateway.hub.config import load_hub_config

    new_key_pair(tmp_path / "hub.key", tmp_path / "hub.pub")
    new_key_pair(tmp_path / "d.key", tmp_path / "d.pub")
    (tmp_path / "hub.toml").write_text(
        '[hub]\nsigning_key = "hub.key"\nkey_id = "hub-1"\nsuite = "sm2-sm4"\naccept_suites = ["sm2", "rsa"]\n'
        'sm2_signer_id = "has space"\n'
        '[[departments]]\ncode = "d1"\nname = "d"\n  [[departments.keys]]\n  key_id = "d1-1"\n  public_key_file = "d.pub"\n'
    )
    with pytest.raises(ConfigError) as e:
        load_hub_config(tmp_path / "hub.toml")
    text = str(e.value)
    assert "hub.suite: unknown suite 'sm2-sm4' (did you mean 'sm2-sm3'?)" in text
    assert "hub.accept_suites[1]: unknown suite 'rsa'" in text
    assert "hub.sm2_signer_id: use 1-1024 printable ASCII" in text
    assert "departments[0].keys[0].public_key: an ed25519 key, but hub.accept_suites is ['sm2-sm3']" in text

"""Attachments and the hub's own secrets sealed with SM4 at rest, on a real hub over loopback:
plaintext files stay readable, `at-rest rekey` seals them and rotates keys, a tampered file is not served."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateway.at_rest.envelope import key_id_of
from gateway.cli import cli
from tests.fixtures.hub import LiveHub

ATTACH = "/api/v1/attachments"
PDF = "%PDF-1.7\n应急物资储备协议 第一号\n".encode() + b"x" * 3000
PDF2 = "%PDF-1.7\n生产能力储备协议 第二号\n".encode() + b"y" * 5000


def _at_rest(hub: LiveHub, current: str | None, keys: tuple[str, ...]) -> None:
    """Restart the hub with [at_rest] sealing under `current` and reading `keys` (key files kept in its dir)."""
    hub.stop()
    text = hub.config_path.read_text(encoding="utf-8").split("\n[at_rest]")[0]
    lines = ["", "[at_rest]", f'cipher = "{"sm4" if current else "off"}"']
    if current:
        lines.append(f'current = "{current}"')
    lines.append("[at_rest.keys]")
    for k in keys:
        f = hub.dir / "keys" / f"at-rest-{k}"
        if not f.exists():
            f.write_text(os.urandom(16).hex() + "\n")
        lines.append(f'{k} = {{file = "keys/at-rest-{k}"}}')
    hub.config_path.write_text(text + "\n".join(lines) + "\n", encoding="utf-8")
    hub.start()


def _stored(hub: LiveHub, data: bytes) -> Path:
    sha = hashlib.sha256(data).hexdigest()
    return hub.dir / "attachments" / sha[:2] / sha


def _hub_cli(hub: LiveHub, *args: str) -> tuple[int, str]:
    r = CliRunner().invoke(cli, ["hub", "--config", str(hub.config_path), "at-rest", *args])
    return r.exit_code, r.output


def _fetch(hub: LiveHub, data: bytes):  # type: ignore[no-untyped-def]
    return hub.get(f"{ATTACH}/{hashlib.sha256(data).hexdigest()}")


def test_sealed_uploads_plaintext_kept_readable_rekey_and_rotation(live_hub: LiveHub) -> None:
    assert live_hub.post(ATTACH, PDF).status_code == 200  # before at rest: a plaintext file
    assert _stored(live_hub, PDF).read_bytes() == PDF

    _at_rest(live_hub, "k1", ("k1",))
    r = live_hub.post(ATTACH, PDF2, headers={"Attachment-Name": "%E5%8D%8F%E8%AE%AE.pdf"})
    assert r.status_code == 200 and r.json()["sha256"] == hashlib.sha256(PDF2).hexdigest()  # addressed by plaintext
    sealed = _stored(live_hub, PDF2).read_bytes()
    assert key_id_of(sealed) == "k1" and "生产能力".encode() not in sealed and b"y" * 64 not in sealed
    assert live_hub.post(ATTACH, PDF2).status_code == 200  # the same file again: deduplicated, left as it was
    assert _stored(live_hub, PDF2).read_bytes() == sealed
    assert _fetch(live_hub, PDF2).content == PDF2
    assert _fetch(live_hub, PDF).content == PDF  # the plaintext file from before stays readable

    code, out = _hub_cli(live_hub, "status")
    assert code == 0 and "attachments: 2 file(s) (1 k1, 1 plaintext); 0 rewritten as key k1" in out, out
    assert "secrets: 2 file(s) (2 plaintext)" in out  # the UI session key and the hub's signing key
    code, out = _hub_cli(live_hub, "rekey")
    assert code == 0 and "attachments: 2 file(s) (1 k1, 1 plaintext); 1 rewritten as key k1" in out, out
    assert "secrets: 2 file(s) (2 plaintext); 2 rewritten as key k1" in out
    assert key_id_of(_stored(live_hub, PDF).read_bytes()) == "k1"
    assert key_id_of((live_hub.dir / "keys" / "hub.key").read_bytes()) == "k1"
    assert key_id_of((live_hub.dir / "ui_secret").read_bytes()) == "k1"

    # Rotation: k2 becomes current with k1 kept for reading; rekey; then k1 goes and everything still reads.
    _at_rest(live_hub, "k2", ("k2", "k1"))
    code, out = _hub_cli(live_hub, "rekey")
    assert code == 0 and "attachments: 2 file(s) (2 k1); 2 rewritten as key k2" in out, out
    assert "secrets: 2 file(s) (2 k1); 2 rewritten as key k2" in out
    _at_rest(live_hub, "k2", ("k2",))  # the hub starts: it opens its signing key under k2
    assert _fetch(live_hub, PDF).content == PDF and _fetch(live_hub, PDF2).content == PDF2
    code, out = _hub_cli(live_hub, "status")
    assert "attachments: 2 file(s) (2 k2); 0 rewritten" in out and "secrets: 2 file(s) (2 k2)" in out, out

    # Turning it off again: rekey writes plaintext back, with the key still listed for reading.
    _at_rest(live_hub, None, ("k2",))
    code, out = _hub_cli(live_hub, "rekey")
    assert code == 0 and "2 rewritten as plaintext" in out, out
    assert _stored(live_hub, PDF).read_bytes() == PDF


def test_a_tampered_attachment_is_refused_not_served(live_hub: LiveHub) -> None:
    _at_rest(live_hub, "k1", ("k1",))
    assert live_hub.post(ATTACH, PDF).status_code == 200
    path = _stored(live_hub, PDF)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x20
    path.write_bytes(bytes(data))
    r = _fetch(live_hub, PDF)
    assert r.status_code == 500 and r.json()["error"] == "attachment_damaged", r.text
    assert "损坏或被篡改" in r.json()["message"] and b"%PDF" not in r.content
    assert live_hub.post(ATTACH, PDF2).status_code == 200
    _at_rest(live_hub, "k2", ("k2", "k1"))
    code, out = _hub_cli(live_hub, "rekey")  # the others are rekeyed; the damaged one is named, never sealed afresh
    assert code == 1 and "attachments: 2 file(s) (2 k1); 1 rewritten as key k2; 1 damaged, left as they are" in out
    assert f"damaged: 附件 / attachment {path}: 内容已被篡改或损坏" in out, out
    assert path.read_bytes() == bytes(data) and key_id_of(_stored(live_hub, PDF2).read_bytes()) == "k2"
    path.unlink()  # the operator restores or removes it

    # A plaintext file (stored before at rest was on) is checked against its SHA-256 name.
    _at_rest(live_hub, None, ("k2",))
    assert live_hub.post(ATTACH, PDF).status_code == 200
    _stored(live_hub, PDF).write_bytes(PDF.replace(b"x", b"z", 1))
    r = _fetch(live_hub, PDF)
    assert r.status_code == 500 and r.json()["error"] == "attachment_damaged"


def test_hub_names_a_signing_key_sealed_under_a_key_it_was_not_given(live_hub: LiveHub) -> None:
    _at_rest(live_hub, "k1", ("k1",))
    assert _hub_cli(live_hub, "rekey")[0] == 0
    live_hub.stop()
    text = live_hub.config_path.read_text(encoding="utf-8")
    live_hub.config_path.write_text(text.replace('current = "k1"', 'current = "k2"')
                                    .replace('k1 = {file = "keys/at-rest-k1"}', 'k2 = {file = "keys/at-rest-k2"}'))
    (live_hub.dir / "keys" / "at-rest-k2").write_text(os.urandom(16).hex())
    r = CliRunner().invoke(cli, ["hub", "--config", str(live_hub.config_path), "verify-log"])
    assert r.exit_code == 2, r.output
    assert "hub.signing_key: 私钥 / private key" in r.output and "sealed under at-rest key 'k1'" in r.output


def test_hub_keys_new_seals_and_rekey_leaves_a_systemd_credential_alone(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.protocol.keys import new_key_pair

    (tmp_path / "at-rest-k1").write_text(os.urandom(16).hex())
    at_rest = '[at_rest]\ncipher = "sm4"\ncurrent = "k1"\n[at_rest.keys]\nk1 = {file = "at-rest-k1"}\n'
    cfg = tmp_path / "hub.toml"
    cfg.write_text('[hub]\nsigning_key = "keys/hub.key"\nkey_id = "hub-1"\ndatabase = "hub.db"\n' + at_rest)
    r = CliRunner().invoke(cli, ["hub", "--config", str(cfg), "keys", "new"])
    assert r.exit_code == 0, r.output
    assert key_id_of((tmp_path / "keys" / "hub.key").read_bytes()) == "k1"
    r = CliRunner().invoke(cli, ["hub", "--config", str(cfg), "verify-log"])  # opens the sealed key to verify
    assert r.exit_code == 0, r.output

    creds = tmp_path / "creds"
    new_key_pair(creds / "hub_signing_key", tmp_path / "cred.pub")
    before = (creds / "hub_signing_key").read_bytes()
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    cfg.write_text('[hub]\nsigning_key = {credential = "hub_signing_key"}\nkey_id = "hub-1"\ndatabase = "hub.db"\n'
                   + at_rest)
    r = CliRunner().invoke(cli, ["hub", "--config", str(cfg), "at-rest", "rekey"])
    assert r.exit_code == 0 and f"left alone (a systemd credential): {creds / 'hub_signing_key'}" in r.output, r.output
    assert (creds / "hub_signing_key").read_bytes() == before

"""SM4 at rest: the cipher against GB/T 32907's annex and RFC 8998's SM4-GCM vector, the envelope's
ciphertext against OpenSSL's command line, tamper detection, and the [at_rest] config."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.at_rest.envelope import NONCE_BYTES, TAG_BYTES, StoredDataInvalid, key_id_of, open_sealed, seal
from gateway.at_rest.keyring import at_rest_setting
from gateway.config_file import Checker
from gateway.errors import ConfigError
from gateway.hub.config import hub_config_from_dict

GBT_KEY = bytes.fromhex("0123456789abcdeffedcba9876543210")  # GB/T 32907-2016 Annex A: key = plaintext


def _openssl(cipher: str, key: bytes, data: bytes, iv: bytes | None = None, decrypt: bool = False) -> bytes:
    cmd = ["openssl", "enc", f"-{cipher}", "-K", key.hex(), "-nopad" if "ecb" in cipher or "cbc" in cipher else "-nosalt"]
    if iv is not None:
        cmd += ["-iv", iv.hex()]
    if decrypt:
        cmd.append("-d")
    return subprocess.run(cmd, input=data, capture_output=True, check=True).stdout


def test_sm4_block_matches_gbt_32907_annex_a_and_openssl() -> None:
    enc = Cipher(algorithms.SM4(GBT_KEY), modes.ECB()).encryptor()
    assert enc.update(GBT_KEY).hex() == "681edf34d206965e86b3e94f536e4246"  # example 1
    block = GBT_KEY
    for _ in range(1_000_000):  # example 2: the block encrypted a million times under the same key
        block = enc.update(block)
    assert block.hex() == "595298c7c6fd271f0402f804c33d3f66"
    assert _openssl("sm4-ecb", GBT_KEY, GBT_KEY).hex() == "681edf34d206965e86b3e94f536e4246"


def test_sm4_cbc_and_ctr_agree_with_openssl() -> None:
    data, iv = os.urandom(64), os.urandom(16)
    cbc = Cipher(algorithms.SM4(GBT_KEY), modes.CBC(iv)).encryptor()
    assert cbc.update(data) + cbc.finalize() == _openssl("sm4-cbc", GBT_KEY, data, iv)
    ctr = Cipher(algorithms.SM4(GBT_KEY), modes.CTR(iv)).encryptor()
    assert ctr.update(data[:45]) + ctr.finalize() == _openssl("sm4-ctr", GBT_KEY, data[:45], iv)


def test_sm4_gcm_matches_rfc_8998_appendix_a() -> None:
    # OpenSSL 3.0's `enc` has no AEAD modes, so GCM is checked against the RFC's published vector.
    iv = bytes.fromhex("00001234567800000000ABCD")
    pt = bytes.fromhex("AAAAAAAAAAAAAAAABBBBBBBBBBBBBBBBCCCCCCCCCCCCCCCCDDDDDDDDDDDDDDDD"
                       "EEEEEEEEEEEEEEEEFFFFFFFFFFFFFFFFEEEEEEEEEEEEEEEEAAAAAAAAAAAAAAAA")
    aad = bytes.fromhex("FEEDFACEDEADBEEFFEEDFACEDEADBEEFABADDAD2")
    enc = Cipher(algorithms.SM4(GBT_KEY), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(aad)
    ct = enc.update(pt) + enc.finalize()
    assert ct.hex().upper() == ("17F399F08C67D5EE19D0DC9969C4BB7D5FD46FD3756489069157B282BB200735"
                                "D82710CA5C22F0CCFA7CBF93D496AC15A56834CBCF98C397B4024A2691233B8D")
    assert enc.tag.hex().upper() == "83DE3541E4C2B58177E065A9BF7B62EC"


def test_envelope_ciphertext_is_sm4_gcm_as_openssl_computes_it() -> None:
    """GCM encrypts with CTR from J0 + 1 = nonce || 00000002: OpenSSL's sm4-ctr must give the same bytes."""
    key, data = os.urandom(16), "应急物资储备协议".encode() * 50
    env = seal(data, "k1", key)
    header_len = 4 + 1 + 1 + 2 + NONCE_BYTES
    nonce = env[header_len - NONCE_BYTES:header_len]
    assert env[:8] == b"EGS4\x01\x02k1" and key_id_of(env) == "k1"
    assert env[header_len:-TAG_BYTES] == _openssl("sm4-ctr", key, data, nonce + b"\x00\x00\x00\x02")
    assert data not in env
    assert open_sealed(env, {"k1": key}) == data
    assert seal(data, "k1", key)[header_len:] != env[header_len:]  # a fresh nonce per seal


def test_any_changed_byte_or_wrong_key_is_refused_by_name() -> None:
    key = os.urandom(16)
    env = seal(b"%PDF-1.7 secret plan", "k1", key)
    # Byte 7 turns key id k1 into k0, which holds the same key: only the header's place in the tag catches it.
    for i in (7, 8, 8 + NONCE_BYTES, len(env) - 1):  # key id, nonce, ciphertext, tag
        bad = bytearray(env)
        bad[i] ^= 1
        with pytest.raises(StoredDataInvalid) as e:
            open_sealed(bytes(bad), {"k1": key, "k0": key}, "附件 a.pdf")
        assert str(e.value).startswith("附件 a.pdf: 内容已被篡改或损坏") and "tag check failed" in str(e.value), i
    with pytest.raises(StoredDataInvalid, match="SM4-GCM tag check failed"):
        open_sealed(env, {"k1": os.urandom(16)})
    with pytest.raises(StoredDataInvalid, match="'k1', which \\[at_rest\\].keys does not list \\(have: k2\\)"):
        open_sealed(env, {"k2": key})
    with pytest.raises(StoredDataInvalid, match="truncated"):
        open_sealed(env[:20], {"k1": key})


def _ring(tmp_path: Path, doc: dict):  # type: ignore[no-untyped-def]
    chk = Checker(tmp_path)
    ring = at_rest_setting(chk, doc)
    return ring, [str(p) for p in chk.problems]


def test_at_rest_keys_from_a_relative_file_and_a_systemd_credential(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "k1.key").write_text("00112233445566778899aabbccddeeff\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "at-rest-k2").write_text("ffeeddccbbaa99887766554433221100")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    ring, problems = _ring(tmp_path, {"at_rest": {"cipher": "sm4", "current": "k2", "keys": {
        "k1": {"file": "k1.key"}, "k2": {"credential": "at-rest-k2"}}}})
    assert problems == []
    assert ring.current == "k2" and ring.keys["k1"] == bytes.fromhex("00112233445566778899aabbccddeeff")
    assert key_id_of(ring.seal(b"x")) == "k2"
    off, problems = _ring(tmp_path, {})
    assert problems == [] and not off.on and off.seal(b"x") == b"x"


def test_at_rest_config_problems_are_all_named(tmp_path: Path) -> None:
    (tmp_path / "short.key").write_text("0011")
    _, problems = _ring(tmp_path, {"at_rest": {"cipher": "sm4", "current": "k9", "chiper": 1, "keys": {
        "k1": {"file": "short.key"}, "k2": {"file": "missing.key"}, "bad id!": {"env": "X"}}}})
    assert "at_rest.chiper: unknown setting; did you mean 'cipher'?" in problems
    assert "at_rest.keys.k1: an SM4 key is 32 hex digits (128 bits), e.g. from `openssl rand -hex 16`" in problems
    assert any(p.startswith("at_rest.keys.k2: secret file") and "missing.key not found" in p for p in problems)
    assert any(p.startswith("at_rest.keys.bad id!: key id") for p in problems)
    assert "at_rest.current: 'k9' is not one of [at_rest.keys] (k1, k2, bad id!)" in problems
    _, problems = _ring(tmp_path, {"at_rest": {"cipher": "sm4"}})
    assert problems == ['at_rest.current: required when cipher = "sm4": the id of the key that seals new files']
    _, problems = _ring(tmp_path, {"at_rest": {"cipher": "aes"}})
    assert problems == ["at_rest.cipher: 'aes' is not one of off, sm4"]


def test_hub_config_reports_at_rest_problems_with_the_rest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as e:
        hub_config_from_dict({"hub": {"key_id": "hub-1"}, "at_rest": {"cipher": "sm4"}}, tmp_path)
    paths = [p.path for p in e.value.problems]
    assert "at_rest.current" in paths and "hub.signing_key" in paths

"""The at-rest envelope: SM4-GCM (GB/T 32907 block cipher, GCM as in RFC 8998) with a header naming the key.

    magic "EGS4" | version 1 | key id length (1 byte) | key id (ASCII) | nonce (12 bytes) | ciphertext | tag (16 bytes)

The whole header is the GCM additional data, so changing the key id, the version or the nonce breaks the
tag as surely as changing a ciphertext byte. GCM rather than SM4-CBC + HMAC-SM3: one pass, one key, one
tag, and a standard construction (RFC 8998 names SM4-GCM for TLS 1.3) instead of an encrypt-then-MAC we
would compose and key ourselves; `cryptography` (already a dependency) has it through OpenSSL 3.
A random 96-bit nonce per file: well under GCM's 2^32-messages-per-key bound for a hub's attachments.
"""

from __future__ import annotations

import os
import re

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from gateway.errors import FatalError

MAGIC = b"EGS4"
VERSION = 1
NONCE_BYTES = 12
TAG_BYTES = 16
KEY_BYTES = 16
KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class StoredDataInvalid(FatalError):
    """Stored data refused on read: tampered or damaged, or sealed under a key not configured."""


def is_sealed(data: bytes) -> bool:
    return data[:4] == MAGIC


def _header(data: bytes, what: str) -> tuple[str, bytes, int]:
    """(key id, nonce, offset of the ciphertext) of an envelope."""
    if len(data) < 6 or data[4] != VERSION:
        version = data[4] if len(data) > 4 else "?"
        raise StoredDataInvalid(f"{what}: 加密文件版本 {version} 无法识别 / unknown at-rest envelope version {version}")
    n = data[5]
    start = 6 + n + NONCE_BYTES
    if len(data) < start + TAG_BYTES:
        raise StoredDataInvalid(f"{what}: 加密文件被截断 / at-rest envelope truncated ({len(data)} bytes)")
    key_id = data[6:6 + n].decode("ascii", errors="replace")
    return key_id, data[6 + n:start], start


def key_id_of(data: bytes, what: str = "data") -> str | None:
    """The id of the key that sealed `data`; None for plaintext."""
    return _header(data, what)[0] if is_sealed(data) else None


def seal(plaintext: bytes, key_id: str, key: bytes) -> bytes:
    if not KEY_ID_RE.match(key_id):
        raise ValueError(f"at-rest key id {key_id!r}: use 1-64 letters, digits, '_', '.', ':' or '-'")
    nonce = os.urandom(NONCE_BYTES)
    header = MAGIC + bytes([VERSION, len(key_id)]) + key_id.encode("ascii") + nonce
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(header)
    return header + enc.update(plaintext) + enc.finalize() + enc.tag


def open_sealed(data: bytes, keys: dict[str, bytes], what: str = "data") -> bytes:
    """The plaintext of an envelope; StoredDataInvalid naming `what` when the key is missing or the tag fails."""
    key_id, nonce, start = _header(data, what)
    key = keys.get(key_id)
    if key is None:
        have = ", ".join(sorted(keys)) or "none"
        raise StoredDataInvalid(
            f"{what}: 用密钥 {key_id} 加密，但配置中没有该密钥 / sealed under at-rest key {key_id!r}, "
            f"which [at_rest].keys does not list (have: {have})"
        )
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-TAG_BYTES:])).decryptor()
    dec.authenticate_additional_data(data[:start])
    try:
        return dec.update(data[start:-TAG_BYTES]) + dec.finalize()
    except InvalidTag:
        raise StoredDataInvalid(
            f"{what}: 内容已被篡改或损坏（SM4-GCM 认证失败），拒绝读取 / tampered or damaged: SM4-GCM tag check failed"
        ) from None

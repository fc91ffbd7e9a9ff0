"""The at-rest keys of a deployment: `[at_rest]` in the gateway's or the hub's config.

    [at_rest]
    cipher = "sm4"              # "off" (the default): files are written as plaintext
    current = "k2"              # the key new files are sealed with
    [at_rest.keys]              # every key a stored file may name; old ones kept for reading until rekeyed
    k1 = {file = "keys/at-rest-k1"}
    k2 = {credential = "at-rest-k2"}

A key is 32 hex digits (128 bits: `openssl rand -hex 16`), given like any secret: `{credential = ...}`
(systemd LoadCredential=), `{file = ...}` (relative to the config file) or `{env = ...}`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.at_rest.envelope import KEY_ID_RE, is_sealed, key_id_of, open_sealed, seal
from gateway.config_file import Checker, resolve_secret

CIPHERS = ("off", "sm4")
AT_REST_KEYS = ("cipher", "current", "keys")
_HEX_KEY = re.compile(r"^[0-9A-Fa-f]{32}$")


@dataclass(frozen=True)
class KeyRing:
    """Which key seals new data (None: write plaintext) and every key that may open stored data."""

    current: str | None = None
    keys: dict[str, bytes] = field(default_factory=dict)

    @property
    def on(self) -> bool:
        return self.current is not None

    def seal(self, plaintext: bytes) -> bytes:
        return plaintext if self.current is None else seal(plaintext, self.current, self.keys[self.current])

    def open(self, data: bytes, what: str) -> bytes:
        """The plaintext of stored data: an envelope is opened (tag checked), plaintext passes as it is."""
        return open_sealed(data, self.keys, what) if is_sealed(data) else data

    def is_current(self, data: bytes) -> bool:
        """Whether `data` is stored as this ring writes it now: under the current key, or plaintext when off."""
        return key_id_of(data) == self.current


OFF = KeyRing()


def at_rest_setting(chk: Checker, doc: dict[str, Any]) -> KeyRing:
    """The `[at_rest]` table of a config; every problem goes to `chk`, each with its path."""
    t = chk.table(doc, "at_rest", required=False)
    if not t:
        return OFF
    cipher = chk.value(t, "cipher", "at_rest", str, default="off", choices=CIPHERS)
    current = chk.value(t, "current", "at_rest", str, default=None)
    raw = chk.table(t, "keys", "at_rest", required=False)
    chk.unknown(t, AT_REST_KEYS, "at_rest")
    keys: dict[str, bytes] = {}
    for kid, ref in raw.items():
        path = f"at_rest.keys.{kid}"
        if not KEY_ID_RE.match(kid):
            chk.problem(path, "key id: use 1-64 letters, digits, '_', '.', ':' or '-'")
            continue
        if isinstance(ref, dict) and set(ref) == {"file"} and not Path(str(ref["file"])).is_absolute():
            ref = {"file": str(chk.base_dir / str(ref["file"]))}
        text = resolve_secret(ref, path, chk.problems)
        if text is None:
            continue
        if not _HEX_KEY.match(text):
            chk.problem(path, "an SM4 key is 32 hex digits (128 bits), e.g. from `openssl rand -hex 16`")
            continue
        keys[kid] = bytes.fromhex(text)
    if cipher == "sm4":
        if not current:
            chk.problem("at_rest.current", 'required when cipher = "sm4": the id of the key that seals new files')
        elif current not in raw:
            chk.problem("at_rest.current", f"{current!r} is not one of [at_rest.keys] ({', '.join(raw) or 'none'})")
        elif current in keys:
            return KeyRing(current, keys)
        return OFF
    if current:
        chk.problem("at_rest.current", 'set, but cipher is "off": set cipher = "sm4" to seal new files')
    return KeyRing(None, keys)

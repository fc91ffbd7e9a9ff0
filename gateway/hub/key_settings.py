"""Key settings shared by the hub config's sections: private key files, public key lines, arrays of tables."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config_file import Checker
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.suites import suite_of

KEY_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
KEY_KEYS = ("key_id", "public_key", "public_key_file", "revoked")


@dataclass
class KeyConfig:
    key_id: str
    public_key: str  # one key line: base64 of the raw Ed25519 key, or sm2:<base64 point>[;id=<signer ID>]
    revoked: bool = False

    @property
    def suite(self) -> str:
        return suite_of(public_key_from_text(self.public_key)).name


def key_file(chk: Checker, value: Any, base: Path, path: str = "hub.signing_key") -> Path | None:
    """A private key file: a path, {file = "path"}, or {credential = "name"} (systemd LoadCredential=)."""
    if value is None:
        chk.problem(path, "required setting is missing")
        return None
    if isinstance(value, dict) and set(value) == {"credential"}:
        cdir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not cdir:
            chk.problem(path, "credential requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)")
            return None
        p = Path(cdir) / str(value["credential"])
    elif isinstance(value, dict) and set(value) == {"file"}:
        p = Path(str(value["file"]))
    elif isinstance(value, str) and value:
        p = Path(value)
    else:
        chk.problem(path, 'expected a path, {file = "path"} or {credential = "name"}')
        return None
    p = p if p.is_absolute() else base / p
    if not p.is_file():
        chk.problem(path, f"file not found: {p} (create it with `gateway keys new {p}`)")
    return p


def array_tables(chk: Checker, doc: dict[str, Any], key: str, path: str, toml_name: str | None = None) -> Iterator[tuple[str, dict]]:
    """(path, table) of each entry of an array of tables ([[key]]); anything else is a problem."""
    raw = doc.get(key, [])
    if not isinstance(raw, list):
        chk.problem(path, f"expected an array of tables ([[{toml_name or key}]])")
        return
    for i, item in enumerate(raw):
        if isinstance(item, dict):
            yield f"{path}[{i}]", item
        else:
            chk.problem(f"{path}[{i}]", "expected a table")


def key_config(chk: Checker, k: dict[str, Any], path: str) -> KeyConfig | None:
    kid = chk.value(k, "key_id", path, str, required=True, default="")
    if kid and not KEY_ID_RE.match(kid):
        chk.problem(f"{path}.key_id", "use 1-128 letters, digits, '_', '.', ':' or '-'")
    text = chk.value(k, "public_key", path, str)
    kfile = chk.path(k, "public_key_file", path)
    if text and kfile:
        chk.problem(f"{path}.public_key", "give public_key or public_key_file, not both")
    elif kfile and kfile.is_file():
        text = kfile.read_text(encoding="ascii", errors="replace").strip()
    elif not text and not kfile:
        chk.problem(f"{path}.public_key", "required: public_key (base64) or public_key_file")
    if text:
        try:
            public_key_from_text(text)
        except Exception:
            chk.problem(
                f"{path}.public_key",
                "not a public key line: base64 of a 32-byte Ed25519 key, or sm2:<base64 of the 65-byte point>",
            )
            text = None
    revoked = chk.value(k, "revoked", path, bool, default=False)
    chk.unknown(k, KEY_KEYS, path)
    if not kid or not text:
        return None
    return KeyConfig(kid, text.strip().removeprefix("ed25519:"), revoked)


def public_key_line(chk: Checker, value: Any, path: str, base: Path) -> str | None:
    """A public key given as its line or as a file holding it (a .pub)."""
    if not isinstance(value, str) or not value:
        chk.problem(path, "required: the public key line (base64, or sm2:...) or the path of a .pub file")
        return None
    text = value
    if not _looks_like_key(value):
        p = Path(value) if Path(value).is_absolute() else base / value
        if not p.is_file():
            chk.problem(path, f"neither a public key line nor a file: {value}")
            return None
        text = p.read_text(encoding="ascii", errors="replace").strip()
    try:
        public_key_from_text(text)
    except Exception:
        chk.problem(path, "not a public key line: base64 of a 32-byte Ed25519 key, or sm2:<base64 of the 65-byte point>")
        return None
    return text.strip().removeprefix("ed25519:")


def _looks_like_key(value: str) -> bool:
    try:
        public_key_from_text(value)
    except Exception:
        return False
    return True

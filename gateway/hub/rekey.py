"""`gateway-hub at-rest rekey|status`: every file the hub stores itself, under the current at-rest key.

Covered: the attachments, the operators' UI session key (ui_secret) and every private key file the hub
config names — [hub] signing_key and [upstream] signing_key (the forwarder's key for the upper hub) —
unless it is a systemd credential. Rotation: add the new key to [at_rest].keys, make it `current`,
restart the hub (so every worker reads both), run `rekey`, and once `status` shows no file under the old
key, remove it. A damaged file is named and left as it is; the rest are rekeyed.
"""

from __future__ import annotations

from pathlib import Path

from gateway.at_rest.stored import rekey_secrets
from gateway.hub.attachments import rekey_attachments
from gateway.hub.config import HubConfig


def key_files(config: HubConfig) -> list[tuple[Path, str]]:
    """The private key files the config names, each once (the upstream key may be the hub's own file)."""
    named: list[tuple[Path | None, str]] = [
        (config.signing_key, "私钥 / private key"),
        (config.upstream.signing_key if config.upstream else None, "上级转发私钥 / upstream private key"),
    ]
    out: list[tuple[Path, str]] = []
    seen: set[Path] = set()
    for path, what in named:
        if path is not None and path.resolve() not in seen:
            seen.add(path.resolve())
            out.append((path, what))
    return out


def rekey_hub(config: HubConfig, *, write: bool = True) -> tuple[list[str], list[str]]:
    """(one line per kind of file: how they were stored and how many were rewritten, the damaged files)."""
    ring = config.at_rest
    attachments = rekey_attachments(config.attachments_dir, ring, write=write)
    files = [(config.ui_secret_file, "界面会话密钥 / UI session key"), *key_files(config)]
    secrets, skipped = rekey_secrets(files, ring, write=write)
    lines = [attachments.line("attachments", ring), secrets.line("secrets", ring)]
    lines += [f"left alone (a systemd credential): {p}" for p in skipped]
    return lines, attachments.damaged + secrets.damaged

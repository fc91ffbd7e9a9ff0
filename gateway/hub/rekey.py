"""`gateway-hub at-rest rekey|status`: every file the hub stores itself, under the current at-rest key.

Covered: the attachments, the operators' UI session key (ui_secret) and the hub's signing key file unless it
is a systemd credential. Rotation: add the new key to [at_rest].keys, make it `current`, restart the hub
(so every worker reads both), run `rekey`, and once `status` shows no file under the old key, remove it.
A damaged file is named and left as it is; the rest are rekeyed.
"""

from __future__ import annotations

from gateway.at_rest.stored import rekey_secrets
from gateway.hub.attachments import rekey_attachments
from gateway.hub.config import HubConfig


def rekey_hub(config: HubConfig, *, write: bool = True) -> tuple[list[str], list[str]]:
    """(one line per kind of file: how they were stored and how many were rewritten, the damaged files)."""
    ring = config.at_rest
    attachments = rekey_attachments(config.attachments_dir, ring, write=write)
    files = [(config.ui_secret_file, "界面会话密钥 / UI session key")]
    if config.signing_key is not None:
        files.append((config.signing_key, "私钥 / private key"))
    secrets, skipped = rekey_secrets(files, ring, write=write)
    lines = [attachments.line("attachments", ring), secrets.line("secrets", ring)]
    lines += [f"left alone (a systemd credential): {p}" for p in skipped]
    return lines, attachments.damaged + secrets.damaged

"""[upstream] and [[relays]] of the hub config (docs/hub.md, "Levels"), checked with every other problem."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config_file import Checker
from gateway.hub.key_settings import KEY_ID_RE, KEY_KEYS, array_tables, key_config, key_file, public_key_line

# Records per forwarded batch unless [upstream] batch_size says otherwise (UpstreamConfig.batch_size says why).
DEFAULT_BATCH_SIZE = 2000
UPSTREAM_KEYS = ("url", "key_id", "signing_key", "hub_key", "batch_size", "timeout", "poll_interval", "linger",
                 "confidential")
RELAY_KEYS = ("key_id", "name", "public_key", "public_key_file", "departments", "revoked")


@dataclass
class UpstreamConfig:
    """[upstream]: the hub one level up that this hub forwards what it accepted to (docs/hub.md, "Levels")."""

    url: str  # http(s)://host:port of the upper hub
    key_id: str  # this hub's key id there (registered as a relay)
    signing_key: Path  # this hub's private key for the upper hub
    hub_key: str  # the upper hub's public key line (verifies its receipts)
    # Records per forwarded batch: as many as a department's gateway sends in one by default (push batch_size),
    # so gathered small batches go up in few requests (each a signed POST, a receipt and two commits).
    batch_size: int = DEFAULT_BATCH_SIZE
    timeout: float = 30.0  # seconds per request
    poll_interval: float = 1.0  # seconds between looks at the forward outbox when not woken
    linger: float = 0.02  # seconds a woken forwarder waits for more batches to join the upward one
    confidential: bool = False  # the upper level is granted the standard's confidential fields (else withheld)


@dataclass
class RelayConfig:
    """[[relays]]: a lower hub's key, allowed to forward the records of the departments of its area."""

    key_id: str
    name: str
    public_key: str
    departments: tuple[str, ...]
    revoked: bool = False


def upstream_settings(chk: Checker, doc: dict[str, Any], base: Path) -> UpstreamConfig | None:
    if "upstream" not in doc:
        return None
    up = chk.table(doc, "upstream")
    url = chk.value(up, "url", "upstream", str, required=True, default="")
    if url and not re.fullmatch(r"https?://[^\s/]+(/[^\s]*)?", url):
        chk.problem("upstream.url", "expected http://host:port or https://host:port")
    key_id = chk.value(up, "key_id", "upstream", str, required=True, default="")
    if key_id and not KEY_ID_RE.match(key_id):
        chk.problem("upstream.key_id", "use 1-128 letters, digits, '_', '.', ':' or '-'")
    key = key_file(chk, up.get("signing_key"), base, "upstream.signing_key")
    hub_key = public_key_line(chk, up.get("hub_key"), "upstream.hub_key", base)
    size = chk.value(up, "batch_size", "upstream", int, default=DEFAULT_BATCH_SIZE)
    if size is not None and not (1 <= size <= 10_000):
        chk.problem("upstream.batch_size", "must be between 1 and 10000 records")
    timeout = chk.value(up, "timeout", "upstream", (int, float), default=30.0)
    poll = chk.value(up, "poll_interval", "upstream", (int, float), default=1.0)
    for name, v in (("timeout", timeout), ("poll_interval", poll)):
        if v is not None and v <= 0:
            chk.problem(f"upstream.{name}", "must be a positive number of seconds")
    linger = chk.value(up, "linger", "upstream", (int, float), default=0.02)
    if linger is not None and not (0 <= linger <= 5):
        chk.problem("upstream.linger", "must be between 0 and 5 seconds")
    confidential = chk.value(up, "confidential", "upstream", bool, default=False)
    chk.unknown(up, UPSTREAM_KEYS, "upstream")
    if not (url and key_id and key and hub_key):
        return None
    return UpstreamConfig(url.rstrip("/"), key_id, key, hub_key, size or DEFAULT_BATCH_SIZE, float(timeout or 30), float(poll or 1),
                          float(linger if linger is not None else 0.02), bool(confidential))


def relay_settings(chk: Checker, doc: dict[str, Any], codes: set[str], key_ids: set[str]) -> list[RelayConfig]:
    out: list[RelayConfig] = []
    for p, r in array_tables(chk, doc, "relays", "relays"):
        name = chk.value(r, "name", p, str, required=True, default="")
        area = chk.value(r, "departments", p, list, required=True, default=[]) or []
        for i, code in enumerate(area):
            if code not in codes:
                chk.problem(f"{p}.departments[{i}]", f"department {code!r} is not listed under [[departments]]")
        if not area:
            chk.problem(f"{p}.departments", "a relay's area names at least one department")
        k = {key: r[key] for key in KEY_KEYS if key in r}
        kc = key_config(chk, k, p)
        chk.unknown(r, RELAY_KEYS, p)
        if kc is None:
            continue
        if kc.key_id in key_ids:
            chk.problem(f"{p}.key_id", f"duplicate key id {kc.key_id!r} (a key belongs to one department or relay)")
        key_ids.add(kc.key_id)
        out.append(RelayConfig(kc.key_id, name, kc.public_key, tuple(str(c) for c in area), kc.revoked))
    return out

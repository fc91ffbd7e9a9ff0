"""Hub configuration: one TOML file, checked at load with every problem reported at once.

The departments, keys and grants listed here seed the registry in the hub
database at start-up; the CLI manages it from then on (see docs/hub.md).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.at_rest.keyring import OFF, KeyRing, at_rest_setting
from gateway.config_file import (
    Checker,
    deployment_suite,
    read_toml,
    resolve_secret,
    signer_id_setting,
    suite_setting,
    trusted_proxies,
)
from gateway.hub.forward.settings import (  # noqa: F401 - RELAY_KEYS, UPSTREAM_KEYS: this module's API too
    RELAY_KEYS,
    UPSTREAM_KEYS,
    RelayConfig,
    UpstreamConfig,
    relay_settings,
    upstream_settings,
)
from gateway.hub.key_settings import (  # noqa: F401 - KEY_ID_RE, KEY_KEYS: this module's API too
    KEY_ID_RE,
    KEY_KEYS,
    KeyConfig,
    array_tables,
    key_config,
    key_file,
)
from gateway.localtime import DEFAULT_TIMEZONE, zone_problem
from gateway.protocol.suites import DEFAULT_SIGNER_ID, DEFAULT_SUITE, SUITES, UnknownSuite, suite
from gateway.standard.schema import RECORD_TYPES

CODE_RE = re.compile(r"^[A-Za-z0-9_-]{2,40}$")

HUB_KEYS = (
    "listen", "database", "signing_key", "key_id", "clock_window", "max_batch_bytes", "max_in_flight", "threads",
    "suite", "accept_suites", "sm2_signer_id", "trusted_proxies", "timezone",
)
REPORT_KEYS = ("office", "expiry_warn_days")
ATTACHMENT_KEYS = ("dir", "max_bytes")
DEPARTMENT_KEYS = ("code", "name", "record_types", "keys")
GRANT_KEYS = ("reader", "owner", "record_types", "confidential")
STANDARD_KEYS = ("category_codes", "extra_units")


@dataclass
class DepartmentConfig:
    code: str
    name: str
    record_types: tuple[str, ...]
    keys: list[KeyConfig] = field(default_factory=list)


@dataclass
class GrantConfig:
    reader: str
    owner: str
    record_types: tuple[str, ...]
    confidential: bool = False


@dataclass
class HubConfig:
    file: Path | None
    listen: str = "127.0.0.1:8700"
    database: str = "sqlite:///state/hub.db"
    signing_key: Path | None = None
    key_id: str = "hub-1"
    suite: str = DEFAULT_SUITE  # the hub key's suite: it signs receipts and heads and picks the log's hash
    accept_suites: tuple[str, ...] = tuple(SUITES)  # suites of the requests accepted (both during a migration)
    sm2_signer_id: str = DEFAULT_SIGNER_ID  # the ID in Z of the hub's own SM2 signatures
    clock_window: int = 300
    max_batch_bytes: int = 16_000_000
    max_in_flight: int = 16
    threads: int = 8
    attachments_dir: Path = Path("state/attachments")
    attachment_max_bytes: int = 20_000_000
    at_rest: KeyRing = OFF  # [at_rest]: SM4 for attachments, the UI secret and the signing key file
    departments: list[DepartmentConfig] = field(default_factory=list)
    grants: list[GrantConfig] = field(default_factory=list)
    category_codes: Path | None = None  # as the gateways' [standard] section: validate alike
    extra_units: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For names the client (operators' UI logins)
    timezone: str = DEFAULT_TIMEZONE  # times shown to operators and in the 通报; stored times stay UTC
    office: str = "乡镇应急管理办公室"  # the 通报's issuing office
    expiry_warn_days: tuple[int, ...] = (30, 90)
    upstream: UpstreamConfig | None = None
    relays: list[RelayConfig] = field(default_factory=list)

    @property
    def ui_secret_file(self) -> Path:
        """The operators' UI session key, generated once beside the attachments folder."""
        return Path(self.attachments_dir).parent / "ui_secret"

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")
        return host, int(port)


def _database_url(value: str | None, base: Path) -> str:
    """A plain path means SQLite at that path (relative to the config file)."""
    if not value:
        return f"sqlite:///{base / 'state' / 'hub.db'}"
    if "://" in value:
        if value.startswith("sqlite:///") and not value.startswith("sqlite:////") and value != "sqlite:///:memory:":
            rel = value.removeprefix("sqlite:///")
            return f"sqlite:///{base / rel}"
        return value
    p = Path(value)
    return f"sqlite:///{p if p.is_absolute() else base / p}"


def _record_types(chk: Checker, doc: dict[str, Any], path: str) -> tuple[str, ...]:
    v = chk.value(doc, "record_types", path, list, default=list(RECORD_TYPES))
    bad = [t for t in v if t not in RECORD_TYPES]
    for t in bad:
        chk.problem(f"{path}.record_types", f"unknown record type {t!r}; expected one of {', '.join(RECORD_TYPES)}")
    return tuple(t for t in v if t in RECORD_TYPES)


def hub_config_from_dict(doc: dict[str, Any], base_dir: Path, file: Path | None = None) -> HubConfig:
    """Check a parsed hub config document; raises ConfigError listing every problem."""
    chk = Checker(base_dir)
    chk.unknown(doc, ("hub", "attachments", "departments", "grants", "standard", "report", "at_rest", "upstream", "relays"), "")
    ring = at_rest_setting(chk, doc)
    hub = chk.table(doc, "hub")
    listen = chk.value(hub, "listen", "hub", str, default="127.0.0.1:8700")
    if listen and not re.fullmatch(r"[^\s]+:\d{1,5}", listen):
        chk.problem("hub.listen", "expected host:port")
    database = _database_url(resolve_secret(hub.get("database"), "hub.database", chk.problems), base_dir)
    signing_key = key_file(chk, hub.get("signing_key"), base_dir)
    key_id = chk.value(hub, "key_id", "hub", str, required=True, default="")
    if key_id and not KEY_ID_RE.match(key_id):
        chk.problem("hub.key_id", "use 1-128 letters, digits, '_', '.', ':' or '-'")
    window = chk.value(hub, "clock_window", "hub", int, default=300)
    if window is not None and not (5 <= window <= 3600):
        chk.problem("hub.clock_window", "must be between 5 and 3600 seconds")
    max_batch = chk.value(hub, "max_batch_bytes", "hub", int, default=16_000_000)
    if max_batch is not None and max_batch < 1024:
        chk.problem("hub.max_batch_bytes", "must be at least 1024")
    in_flight = chk.value(hub, "max_in_flight", "hub", int, default=16)
    if in_flight is not None and in_flight < 1:
        chk.problem("hub.max_in_flight", "must be at least 1")
    threads = chk.value(hub, "threads", "hub", int, default=8)
    if threads is not None and threads < 1:
        chk.problem("hub.threads", "must be at least 1")
    proxies = trusted_proxies(chk, hub, "hub")
    hub_suite = deployment_suite(chk, hub, "hub", signing_key, "gateway hub --config F keys new --force", ring.open)
    accept: list[str] = []
    for i, name in enumerate(chk.value(hub, "accept_suites", "hub", list, default=list(SUITES)) or []):
        try:
            accept.append(suite(str(name)).name)
        except UnknownSuite as e:
            chk.problem(f"hub.accept_suites[{i}]", str(e))
    if not accept and "accept_suites" in hub:
        chk.problem("hub.accept_suites", "accepts no suite: no gateway could sign a request")
    signer_id = signer_id_setting(chk, hub, "hub")
    timezone = chk.value(hub, "timezone", "hub", str, default=DEFAULT_TIMEZONE)
    if timezone and (why := zone_problem(timezone)):
        chk.problem("hub.timezone", why)
    chk.unknown(hub, HUB_KEYS, "hub")

    rep = chk.table(doc, "report", required=False)
    office = chk.value(rep, "office", "report", str, default="乡镇应急管理办公室")
    warn = chk.value(rep, "expiry_warn_days", "report", list, default=[30, 90])
    if not warn or any(not isinstance(d, int) or isinstance(d, bool) or d < 1 for d in warn):
        chk.problem("report.expiry_warn_days", "expected a list of positive numbers of days, such as [30, 90]")
        warn = [30, 90]
    chk.unknown(rep, REPORT_KEYS, "report")

    att = chk.table(doc, "attachments", required=False)
    att_dir = chk.path(att, "dir", "attachments", must_exist=False) or base_dir / "state" / "attachments"
    att_max = chk.value(att, "max_bytes", "attachments", int, default=20_000_000)
    if att_max is not None and att_max < 1:
        chk.problem("attachments.max_bytes", "must be positive")
    chk.unknown(att, ATTACHMENT_KEYS, "attachments")

    std = chk.table(doc, "standard", required=False)
    category_codes = chk.path(std, "category_codes", "standard")
    extra_units = chk.value(std, "extra_units", "standard", list, default=[])
    if any(not isinstance(u, str) or not u for u in extra_units):
        chk.problem("standard.extra_units", "expected a list of unit names")
    chk.unknown(std, STANDARD_KEYS, "standard")

    departments: list[DepartmentConfig] = []
    codes: set[str] = set()
    key_ids: set[str] = set()
    for p, d in array_tables(chk, doc, "departments", "departments"):
        code = chk.value(d, "code", p, str, required=True, default="")
        if code and not CODE_RE.match(code):
            chk.problem(f"{p}.code", "use 2-40 letters, digits, '-' or '_'")
        if code in codes:
            chk.problem(f"{p}.code", f"duplicate department code {code!r}")
        codes.add(code)
        name = chk.value(d, "name", p, str, required=True, default="")
        types = _record_types(chk, d, p)
        keys: list[KeyConfig] = []
        for kp, k in array_tables(chk, d, "keys", f"{p}.keys", "departments.keys"):
            kc = key_config(chk, k, kp)
            if kc is None:
                continue
            if accept and kc.suite not in accept and not kc.revoked:
                chk.problem(f"{kp}.public_key", f"an {kc.suite} key, but hub.accept_suites is {accept}")
            if kc.key_id in key_ids:
                chk.problem(f"{kp}.key_id", f"duplicate key id {kc.key_id!r} (a key belongs to one department)")
            key_ids.add(kc.key_id)
            keys.append(kc)
        chk.unknown(d, DEPARTMENT_KEYS, p)
        departments.append(DepartmentConfig(code, name, types, keys))

    grants: list[GrantConfig] = []
    for p, g in array_tables(chk, doc, "grants", "grants"):
        reader = chk.value(g, "reader", p, str, required=True, default="")
        owner = chk.value(g, "owner", p, str, required=True, default="")
        for role, v in (("reader", reader), ("owner", owner)):
            if v and v not in codes:
                chk.problem(f"{p}.{role}", f"department {v!r} is not listed under [[departments]]")
        grants.append(GrantConfig(reader, owner, _record_types(chk, g, p), chk.value(g, "confidential", p, bool, default=False)))
        chk.unknown(g, GRANT_KEYS, p)

    upstream = upstream_settings(chk, doc, base_dir)
    relays = relay_settings(chk, doc, codes, key_ids)

    chk.raise_if_any(str(file) if file else None)
    return HubConfig(
        upstream=upstream,
        relays=relays,
        file=file,
        listen=listen,
        database=database,
        signing_key=signing_key,
        key_id=key_id,
        suite=hub_suite,
        accept_suites=tuple(accept),
        sm2_signer_id=signer_id,
        clock_window=window,
        max_batch_bytes=max_batch,
        max_in_flight=in_flight,
        threads=threads,
        trusted_proxies=proxies,
        attachments_dir=att_dir,
        attachment_max_bytes=att_max,
        at_rest=ring,
        departments=departments,
        grants=grants,
        category_codes=category_codes,
        extra_units=tuple(extra_units),
        timezone=timezone,
        office=office,
        expiry_warn_days=tuple(sorted(warn)),
    )


def signing_key_target(path: str | Path) -> tuple[Path, str, str, KeyRing]:
    """(hub.signing_key's path, hub.suite, hub.sm2_signer_id, [at_rest]) before that key exists: for `hub keys new`."""
    file, doc = read_toml(path)
    chk = Checker(file.parent)
    hub = chk.table(doc, "hub")
    key = key_file(chk, hub.get("signing_key"), file.parent)
    hub_suite = suite_setting(chk, hub, "suite", "hub")
    signer_id = signer_id_setting(chk, hub, "hub")
    ring = at_rest_setting(chk, doc)
    chk.problems = [p for p in chk.problems if not p.message.startswith("file not found")]
    chk.raise_if_any(str(file))
    assert key is not None
    return key, hub_suite, signer_id, ring


def load_hub_config(path: str | Path) -> HubConfig:
    file, doc = read_toml(path)
    return hub_config_from_dict(doc, file.parent, file)

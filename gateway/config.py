"""Gateway configuration: one TOML file, checked at load with every problem reported at once.

Relative paths are resolved against the config file's folder. Secrets are never
required inline: any secret setting may be ``{env = "NAME"}`` (an environment
variable) or ``{credential = "name"}`` (a systemd credential file under
``$CREDENTIALS_DIRECTORY``), or ``{file = "path"}``. A source's secrets are
checked for shape at load and read when that source is first used
(``SourceConfig.settings``), so a command needs only the secrets of the sources it uses;
the web UI's (``WebConfig.resolve``) are read when the service starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What the hub's config reads alike lives in gateway.config_file (the hub must not import this module).
from gateway.at_rest.keyring import OFF, KeyRing, at_rest_setting
from gateway.config_file import (  # noqa: F401 (re-exported)
    Checker,
    _closest,
    deployment_suite,
    read_toml,
    resolve_secret,
    signer_id_setting,
    sqlite_next_to,
    suite_setting,
    trusted_proxies,
)
from gateway.errors import ConfigError, ConfigProblem  # noqa: F401 (re-exported)
from gateway.localtime import DEFAULT_TIMEZONE, zone_problem
from gateway.protocol.suites import DEFAULT_SIGNER_ID, DEFAULT_SUITE
from gateway.standard.schema import RECORD_TYPES

STRATEGIES = ("cursor", "fingerprint", "append", "snapshot")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EVERY_RE = re.compile(r"^(\d+)\s*(s|m|h|d)$")


_SECRET_KINDS = ("env", "credential", "file")


@dataclass(frozen=True)
class SecretRef:
    """A source's secret given by reference, read when that source is first used: a command that
    works on one source does not need another source's password in its environment."""

    kind: str  # env | credential | file
    ref: str
    path: str  # where it was configured, e.g. "sources[1].settings.password"

    def __str__(self) -> str:
        return f'{{{self.kind} = "{self.ref}"}}'  # as written in the config; never the value

    __repr__ = __str__

    def resolve(self, problems: list[ConfigProblem]) -> str | None:
        return resolve_secret({self.kind: self.ref}, self.path, problems)


def secret_ref(value: Any, path: str, problems: list[ConfigProblem]) -> SecretRef | None:
    """Check the shape of a secret reference at load; its value is read later (SecretRef.resolve)."""
    if isinstance(value, dict) and len(value) == 1:
        (kind, ref), = value.items()
        if kind in _SECRET_KINDS and isinstance(ref, str) and ref:
            return SecretRef(kind, ref, path)
    resolve_secret(value, path, problems)  # reports what is wrong with it
    return None


def parse_every(text: str) -> int | None:
    """'90s', '15m', '2h', '1d' -> seconds; None when not of that form."""
    m = _EVERY_RE.match(text.strip())
    if not m:
        return None
    n, unit = int(m.group(1)), m.group(2)
    return n * {"s": 1, "m": 60, "h": 3600, "d": 86400}[unit]


def _resolve_path(base: Path, value: str) -> str:
    p = Path(value).expanduser()
    return str(p if p.is_absolute() else base / p)


@dataclass
class SourceConfig:
    name: str
    type: str
    record_type: str
    mapping: Path | None
    strategy: str
    every_seconds: int | None = None
    cron: str | None = None
    # As configured, secrets as SecretRef; `settings` is the same with the secrets read.
    declared_settings: dict[str, Any] = field(default_factory=dict)
    enabled: bool = True
    lag_seconds: int = 0
    reconcile_deletes: bool = False
    max_delete_fraction: float = 0.5
    config_file: str | None = None
    _settings: dict[str, Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def settings(self) -> dict[str, Any]:
        """The adapter settings with their secrets read, on first use (ConfigError naming each one missing)."""
        if self._settings is None:
            problems: list[ConfigProblem] = []
            out = {k: v.resolve(problems) if isinstance(v, SecretRef) else v for k, v in self.declared_settings.items()}
            if problems:
                raise ConfigError(problems, self.config_file)
            url = out.get("url")
            if isinstance(url, str) and isinstance(self.declared_settings.get("url"), SecretRef) and self.config_file:
                out["url"] = sqlite_next_to(url, Path(self.config_file).parent)
            self._settings = out
        return self._settings

    def secret_problems(self) -> list[ConfigProblem]:
        """What is missing among this source's secrets, without raising (for start-up checks)."""
        problems: list[ConfigProblem] = []
        for v in self.declared_settings.values():
            if isinstance(v, SecretRef):
                v.resolve(problems)
        return problems


@dataclass
class HubLink:
    url: str
    hub_key: Path | None
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None
    timeout: float = 30.0
    batch_size: int = 2000
    max_batch_bytes: int = 4_000_000


@dataclass
class WebConfig:
    listen: str = "127.0.0.1:8710"
    # As configured (text or SecretRef); read on first use, so only the service needs them.
    declared_secret_key: str | SecretRef | None = None
    declared_api_token: str | SecretRef | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    trusted_proxies: tuple[str, ...] = ()  # peers whose X-Forwarded-For names the client (login throttle, audit)
    config_file: str | None = None
    _secrets: tuple[str | None, str | None] | None = field(default=None, init=False, repr=False, compare=False)

    def resolve(self) -> tuple[str | None, str | None]:
        """(secret_key, api_token); ConfigError naming each one missing. The service calls it at start."""
        if self._secrets is None:
            problems: list[ConfigProblem] = []
            key, token = (
                v.resolve(problems) if isinstance(v, SecretRef) else v
                for v in (self.declared_secret_key, self.declared_api_token)
            )
            if problems:
                raise ConfigError(problems, self.config_file)
            self._secrets = (key, token)
        return self._secrets

    @property
    def secret_key(self) -> str | None:
        return self.resolve()[0]

    @property
    def api_token(self) -> str | None:
        return self.resolve()[1]
    timezone: str = "Asia/Shanghai"  # times shown to people; stored times stay UTC


@dataclass
class GatewayConfig:
    file: Path
    department_code: str
    department_name: str
    hub: HubLink
    signing_key: Path | None
    key_id: str
    state_path: Path
    web: WebConfig
    sources: list[SourceConfig]
    freshness_days: dict[str, int]
    expiry_warn_days: tuple[int, ...] = (30, 90)
    category_codes: Path | None = None
    extra_units: tuple[str, ...] = ()
    suite: str = DEFAULT_SUITE  # keys.suite: the signing key's suite, named in every request's `alg`
    sm2_signer_id: str = DEFAULT_SIGNER_ID  # keys.sm2_signer_id: the ID in Z of this gateway's SM2 signatures
    at_rest: KeyRing = OFF  # [at_rest]: SM4 for the signing key file and the generated web secret

    @property
    def base_dir(self) -> Path:
        return self.file.parent

    @property
    def web_secret_file(self) -> Path:
        """The session key generated once beside the state store when web.secret_key is not given."""
        return Path(self.state_path).parent / "web_secret"

    def source(self, name: str) -> SourceConfig:
        for s in self.sources:
            if s.name == name:
                return s
        raise KeyError(f"no source named {name!r} in {self.file} (have: {', '.join(s.name for s in self.sources)})")


SOURCE_KEYS = (
    "name", "type", "record_type", "mapping", "strategy", "every", "cron", "settings", "enabled",
    "lag_seconds", "reconcile_deletes", "max_delete_fraction",
)


def _check_adapter_settings(chk: Checker, kind: str, settings: dict[str, Any], path: str) -> dict[str, Any]:
    """Check a source's settings against its adapter's declared settings table."""
    from gateway.adapters import registry

    try:
        cls = registry.adapter_class(kind)
    except KeyError as e:
        chk.problem(f"{path}.type", str(e.args[0]))
        return settings
    except Exception as e:  # a plug-in that fails to import is a config problem, not a crash
        chk.problem(f"{path}.type", f"adapter {kind!r} failed to load: {e}")
        return settings
    spec = getattr(cls, "settings_spec", ())
    out: dict[str, Any] = {}
    sp = f"{path}.settings"
    for s in spec:
        if s.name not in settings:
            if s.required:
                chk.problem(f"{sp}.{s.name}", f"required setting is missing ({s.help})" if s.help else "required setting is missing")
            out[s.name] = s.default
            continue
        v = settings[s.name]
        if s.secret and isinstance(v, dict):
            ref = secret_ref(v, f"{sp}.{s.name}", chk.problems)
            if ref is not None:
                out[s.name] = ref  # read when the source is used (SourceConfig.settings)
            continue
        elif not isinstance(v, s.type):
            names = "/".join(t.__name__ for t in (s.type if isinstance(s.type, tuple) else (s.type,)))
            chk.problem(f"{sp}.{s.name}", f"expected {names}, got {type(v).__name__} {v!r}")
            continue
        if s.choices is not None and v not in s.choices:
            chk.problem(f"{sp}.{s.name}", f"{v!r} is not one of {', '.join(map(str, s.choices))}")
            continue
        if s.path and isinstance(v, str) and v:
            v = _resolve_path(chk.base_dir, v)
        out[s.name] = v
    url = out.get("url")
    if isinstance(url, str):
        out["url"] = sqlite_next_to(url, chk.base_dir)
    if spec:
        chk.unknown(settings, [s.name for s in spec], sp)
    else:
        out = dict(settings)
    return out


def _web_secret(webd: dict[str, Any], key: str, problems: list[ConfigProblem]) -> str | SecretRef | None:
    v = webd.get(key)
    if v is None or isinstance(v, str):
        return v
    return secret_ref(v, f"web.{key}", problems)


def key_settings(path: str | Path) -> tuple[str, str, KeyRing]:
    """(keys.suite, keys.sm2_signer_id, [at_rest]) of a gateway config, read before its key exists (`keys new`)."""
    file, doc = read_toml(path)
    chk = Checker(file.parent)
    ring = at_rest_setting(chk, doc)
    keys = chk.table(doc, "keys")
    key_file = chk.path(keys, "signing_key", "keys", must_exist=False)
    suite_name = deployment_suite(chk, keys, "keys", key_file, "keys new --force", ring.open)
    out = suite_name, signer_id_setting(chk, keys, "keys"), ring
    chk.raise_if_any(str(file))
    return out


def load_gateway_config(path: str | Path) -> GatewayConfig:
    """Read and check a gateway config; raises ConfigError listing every problem."""
    file, doc = read_toml(path)
    chk = Checker(file.parent)
    chk.unknown(doc, ("department", "hub", "keys", "state", "web", "sources", "freshness", "standard", "at_rest"), "")
    ring = at_rest_setting(chk, doc)

    dep = chk.table(doc, "department")
    code = chk.value(dep, "code", "department", str, required=True, default="")
    if code and not re.fullmatch(r"[A-Za-z0-9_-]{2,40}", code):
        chk.problem("department.code", "use 2-40 letters, digits, '-' or '_'")
    name = chk.value(dep, "name", "department", str, required=True, default="")
    chk.unknown(dep, ("code", "name"), "department")

    hubd = chk.table(doc, "hub")
    url = chk.value(hubd, "url", "hub", str, required=True, default="")
    if url and not re.match(r"^https?://", url):
        chk.problem("hub.url", "must start with http:// or https://")
    hub = HubLink(
        url=url.rstrip("/"),
        hub_key=chk.path(hubd, "hub_key", "hub", must_exist=False),
        ca_file=chk.path(hubd, "ca_file", "hub"),
        client_cert=chk.path(hubd, "client_cert", "hub"),
        client_key=chk.path(hubd, "client_key", "hub"),
        timeout=float(chk.value(hubd, "timeout", "hub", (int, float), default=30.0)),
        batch_size=chk.value(hubd, "batch_size", "hub", int, default=2000),
        max_batch_bytes=chk.value(hubd, "max_batch_bytes", "hub", int, default=4_000_000),
    )
    if hub.batch_size is not None and not (1 <= hub.batch_size <= 10_000):
        chk.problem("hub.batch_size", "must be between 1 and 10000")
    chk.unknown(hubd, ("url", "hub_key", "ca_file", "client_cert", "client_key", "timeout", "batch_size", "max_batch_bytes"), "hub")

    keys = chk.table(doc, "keys")
    signing_key = chk.path(keys, "signing_key", "keys", required=True)
    key_id = chk.value(keys, "key_id", "keys", str, required=True, default="")
    key_suite = deployment_suite(chk, keys, "keys", signing_key, "gateway --config F keys new FILE", ring.open)
    sm2_signer_id = signer_id_setting(chk, keys, "keys")
    chk.unknown(keys, ("signing_key", "key_id", "suite", "sm2_signer_id"), "keys")

    state = chk.table(doc, "state", required=False)
    state_path = chk.path(state, "path", "state", must_exist=False) or (file.parent / "state" / "gateway.db")
    chk.unknown(state, ("path",), "state")

    webd = chk.table(doc, "web", required=False)
    web = WebConfig(
        listen=chk.value(webd, "listen", "web", str, default="127.0.0.1:8710"),
        declared_secret_key=_web_secret(webd, "secret_key", chk.problems),
        declared_api_token=_web_secret(webd, "api_token", chk.problems),
        tls_cert=chk.path(webd, "tls_cert", "web"),
        tls_key=chk.path(webd, "tls_key", "web"),
        trusted_proxies=trusted_proxies(chk, webd, "web"),
        config_file=str(file),
        timezone=chk.value(webd, "timezone", "web", str, default=DEFAULT_TIMEZONE),
    )
    if web.listen and not re.fullmatch(r"[^:\s]+:\d{1,5}", web.listen):
        chk.problem("web.listen", "expected host:port")
    if web.timezone and (why := zone_problem(web.timezone)):
        chk.problem("web.timezone", why)
    chk.unknown(webd, ("listen", "secret_key", "api_token", "tls_cert", "tls_key", "trusted_proxies", "timezone"), "web")

    fresh = chk.table(doc, "freshness", required=False)
    default_days = chk.value(fresh, "default_days", "freshness", int, default=90)
    days = {t: default_days for t in RECORD_TYPES}
    per = chk.table(fresh, "days", "freshness", required=False)
    for t, d in per.items():
        if t not in RECORD_TYPES:
            chk.problem(f"freshness.days.{t}", f"unknown record type; expected one of {', '.join(RECORD_TYPES)}")
        elif not isinstance(d, int) or isinstance(d, bool) or d <= 0:
            chk.problem(f"freshness.days.{t}", "expected a positive number of days")
        else:
            days[t] = d
    warn = chk.value(fresh, "expiry_warn_days", "freshness", list, default=[30, 90])
    chk.unknown(fresh, ("default_days", "days", "expiry_warn_days"), "freshness")

    std = chk.table(doc, "standard", required=False)
    category_codes = chk.path(std, "category_codes", "standard")
    extra_units = tuple(chk.value(std, "extra_units", "standard", list, default=[]))
    chk.unknown(std, ("category_codes", "extra_units"), "standard")

    sources: list[SourceConfig] = []
    raw_sources = doc.get("sources", [])
    if not isinstance(raw_sources, list):
        chk.problem("sources", "expected an array of tables ([[sources]])")
        raw_sources = []
    seen: set[str] = set()
    for i, s in enumerate(raw_sources):
        p = f"sources[{i}]"
        if not isinstance(s, dict):
            chk.problem(p, "expected a table")
            continue
        sname = chk.value(s, "name", p, str, required=True, default="")
        if sname and not _NAME_RE.match(sname):
            chk.problem(f"{p}.name", "use 1-64 letters, digits, '.', '-' or '_'")
        if sname in seen:
            chk.problem(f"{p}.name", f"duplicate source name {sname!r}")
        seen.add(sname)
        kind = chk.value(s, "type", p, str, required=True, default="")
        rtype = chk.value(s, "record_type", p, str, required=True, default="", choices=RECORD_TYPES)
        mapping = chk.path(s, "mapping", p, required=True)
        strategy = chk.value(s, "strategy", p, str, default="fingerprint", choices=STRATEGIES)
        every = chk.value(s, "every", p, str)
        every_s = None
        if every is not None:
            every_s = parse_every(every)
            if every_s is None or every_s <= 0:
                chk.problem(f"{p}.every", "expected a duration like '90s', '15m', '2h' or '1d'")
        cron = chk.value(s, "cron", p, str)
        if cron is not None:
            if every is not None:
                chk.problem(f"{p}.cron", "give either every or cron, not both")
            elif len(cron.split()) != 5:
                chk.problem(f"{p}.cron", "expected 5 fields: minute hour day month weekday")
        raw_settings = chk.table(s, "settings", p, required=False)
        settings = _check_adapter_settings(chk, kind, raw_settings, p) if kind else raw_settings
        if "mode" in settings and "mode" not in raw_settings and strategy in ("append", "snapshot"):
            settings["mode"] = strategy  # the strategy says it; no need to repeat it as mode
        # File sources declare per file whether it is a delta or the full set; the
        # source's strategy must say the same, or deletes would silently not happen.
        mode = settings.get("mode")
        if mode in ("append", "snapshot") and strategy in ("append", "snapshot") and mode != strategy:
            chk.problem(f"{p}.settings.mode", f"mode {mode!r} contradicts strategy {strategy!r}; make them the same")
        elif mode in ("append", "snapshot") and strategy in ("cursor", "fingerprint"):
            chk.problem(f"{p}.strategy", f"file sources use strategy 'append' or 'snapshot' (settings.mode is {mode!r})")
        lag = chk.value(s, "lag_seconds", p, int, default=0)
        max_del = chk.value(s, "max_delete_fraction", p, (int, float), default=0.5)
        if not 0 < max_del <= 1:
            chk.problem(f"{p}.max_delete_fraction", f"{max_del!r}: use a share of the source's records, 0 < x <= 1 (1 = no limit)")
            max_del = 0.5
        chk.unknown(s, SOURCE_KEYS, p)
        sources.append(
            SourceConfig(
                name=sname,
                type=kind,
                record_type=rtype,
                mapping=mapping,
                strategy=strategy,
                every_seconds=every_s,
                cron=cron,
                declared_settings=settings,
                enabled=chk.value(s, "enabled", p, bool, default=True),
                lag_seconds=lag or 0,
                reconcile_deletes=chk.value(s, "reconcile_deletes", p, bool, default=False),
                max_delete_fraction=float(max_del),
                config_file=str(file),
            )
        )

    chk.raise_if_any(str(file))
    return GatewayConfig(
        file=file,
        department_code=code,
        department_name=name,
        hub=hub,
        signing_key=signing_key,
        key_id=key_id,
        state_path=state_path,
        web=web,
        sources=sources,
        freshness_days=days,
        expiry_warn_days=tuple(int(x) for x in warn),
        category_codes=category_codes,
        extra_units=extra_units,
        suite=key_suite,
        sm2_signer_id=sm2_signer_id,
        at_rest=ring,
    )

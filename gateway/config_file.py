"""Reading a TOML config file, shared by the gateway's and the hub's config: every problem at once.

`Checker` collects problems with their paths (`sources[2].mapping: file not found`) so a loader
reports all of them in one ConfigError; `resolve_secret` reads a secret given by reference
(``{env = "NAME"}``, ``{credential = "name"}`` for a systemd credential, ``{file = "path"}``).
The hub imports this module and never `gateway.config`, so it deploys without the gateway's side.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from gateway.at_rest.envelope import StoredDataInvalid
from gateway.errors import ConfigError, ConfigProblem
from gateway.protocol.keys import Opener, read_private_key
from gateway.protocol.suites import DEFAULT_SIGNER_ID, DEFAULT_SUITE, SIGNER_ID_RE, UnknownSuite, suite, suite_of


def resolve_secret(value: Any, path: str, problems: list[ConfigProblem] | None = None) -> str | None:
    """Turn a secret setting into its value; report what is missing instead of raising when asked."""

    def fail(msg: str) -> None:
        if problems is None:
            raise ConfigError([ConfigProblem(path, msg)])
        problems.append(ConfigProblem(path, msg))

    if value is None or isinstance(value, str):
        return value
    if not isinstance(value, dict) or len(value) != 1:
        fail('expected a string or one of {env = "NAME"}, {credential = "name"}, {file = "path"}')
        return None
    ((kind, ref),) = value.items()
    if kind == "env":
        v = os.environ.get(str(ref))
        if v is None:
            fail(f"environment variable {ref} is not set")
        return v
    if kind == "credential":
        cdir = os.environ.get("CREDENTIALS_DIRECTORY")
        if not cdir:
            fail(
                f"credential {ref!r} requested but $CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the unit)"
            )
            return None
        p = Path(cdir) / str(ref)
        if not p.is_file():
            fail(f"credential file {p} not found")
            return None
        return p.read_text(encoding="utf-8").strip()
    if kind == "file":
        p = Path(str(ref))
        if not p.is_file():
            fail(f"secret file {p} not found")
            return None
        return p.read_text(encoding="utf-8").strip()
    fail(f"unknown secret reference {kind!r}; use env, credential or file")
    return None


class Checker:
    """Collects problems while reading a TOML document, so all of them are reported at once."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self.problems: list[ConfigProblem] = []

    def problem(self, path: str, message: str) -> None:
        self.problems.append(ConfigProblem(path, message))

    def table(self, doc: dict[str, Any], key: str, path: str = "", required: bool = True) -> dict[str, Any]:
        p = f"{path}.{key}" if path else key
        v = doc.get(key)
        if v is None:
            if required:
                self.problem(p, "missing section")
            return {}
        if not isinstance(v, dict):
            self.problem(p, "expected a table")
            return {}
        return v

    def value(
        self,
        doc: dict[str, Any],
        key: str,
        path: str,
        typ: type | tuple[type, ...],
        required: bool = False,
        default: Any = None,
        choices: Iterable[Any] | None = None,
    ) -> Any:
        p = f"{path}.{key}" if path else key
        if key not in doc:
            if required:
                self.problem(p, "required setting is missing")
            return default
        v = doc[key]
        # bool is an int subclass; do not let true pass as a number.
        if not isinstance(v, typ) or (isinstance(v, bool) and bool not in (typ if isinstance(typ, tuple) else (typ,))):
            names = "/".join(t.__name__ for t in (typ if isinstance(typ, tuple) else (typ,)))
            self.problem(p, f"expected {names}, got {type(v).__name__} {v!r}")
            return default
        if choices is not None and v not in tuple(choices):
            self.problem(p, f"{v!r} is not one of {', '.join(map(str, choices))}")
            return default
        return v

    def path(
        self, doc: dict[str, Any], key: str, path: str, required: bool = False, must_exist: bool = True
    ) -> Path | None:
        v = self.value(doc, key, path, str, required)
        if not v:
            return None
        p = Path(v)
        if not p.is_absolute():
            p = self.base_dir / p
        if must_exist and not p.exists():
            self.problem(f"{path}.{key}" if path else key, f"file not found: {p}")
        return p

    def unknown(self, doc: dict[str, Any], known: Iterable[str], path: str) -> None:
        known = set(known)
        for k in doc:
            if k not in known:
                hint = _closest(k, known)
                self.problem(
                    f"{path}.{k}" if path else k, "unknown setting" + (f"; did you mean {hint!r}?" if hint else "")
                )

    def raise_if_any(self, file: str | None) -> None:
        if self.problems:
            raise ConfigError(self.problems, file)


def _closest(word: str, options: Iterable[str]) -> str | None:
    import difflib

    m = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return m[0] if m else None


def read_toml(path: str | Path) -> tuple[Path, dict[str, Any]]:
    """The resolved path and parsed document of a config file; a missing file or bad syntax is a ConfigError."""
    file = Path(path).resolve()
    try:
        return file, tomllib.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError([ConfigProblem("(file)", f"config file not found: {file}")]) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError([ConfigProblem("(syntax)", str(e))], str(file)) from None


def sqlite_next_to(url: str, base: Path) -> str:
    """A relative SQLite URL means "next to the config file", not "wherever the service was started"."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///"):]
        if rel and not rel.startswith(":memory:") and not rel.startswith("file:"):
            return "sqlite:///" + str(base / rel)
    return url


def suite_setting(chk: Checker, doc: dict[str, Any], key: str, path: str) -> str:
    """A suite name (`sm2` taken for `sm2-sm3`); an unknown one is a problem with a did-you-mean."""
    name = chk.value(doc, key, path, str, default=DEFAULT_SUITE)
    try:
        return suite(name).name
    except UnknownSuite as e:
        chk.problem(f"{path}.{key}", str(e))
        return DEFAULT_SUITE


def signer_id_setting(chk: Checker, doc: dict[str, Any], path: str) -> str:
    signer_id = chk.value(doc, "sm2_signer_id", path, str, default=DEFAULT_SIGNER_ID)
    if not SIGNER_ID_RE.match(signer_id or ""):
        chk.problem(f"{path}.sm2_signer_id", "use 1-1024 printable ASCII characters without ';' or spaces")
        return DEFAULT_SIGNER_ID
    return signer_id


def deployment_suite(
    chk: Checker, doc: dict[str, Any], path: str, key_file: Path | None, how: str, opener: Opener | None = None
) -> str:
    """`<path>.suite`, checked against the signing key file; unset, the key's own suite (configs from before it).

    `opener` opens a key file sealed at rest ([at_rest]); without it such a key is checked where it is read.
    """
    wanted = suite_setting(chk, doc, "suite", path) if "suite" in doc else None
    if key_file is None or not key_file.is_file():
        return wanted or DEFAULT_SUITE
    try:
        have = suite_of(read_private_key(key_file, opener=opener)).name
    except (OSError, ValueError, UnknownSuite):  # not a key (yet): reported where it is read to sign
        return wanted or DEFAULT_SUITE
    except StoredDataInvalid as e:  # sealed at rest under a key not configured, or tampered
        chk.problem(f"{path}.signing_key", str(e))
        return wanted or DEFAULT_SUITE
    if wanted is not None and have != wanted:
        chk.problem(
            f"{path}.signing_key",
            f"{key_file} holds an {have} key but {path}.suite is {wanted} (make one with `{how}`)",
        )
    return wanted or have


def trusted_proxies(chk: Checker, doc: dict[str, Any], path: str) -> tuple[str, ...]:
    """`trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]`: addresses or networks; each bad entry is a problem."""
    from gateway.accounts.forwarded import TrustedProxies

    entries = chk.value(doc, "trusted_proxies", path, list, default=[])
    good: list[str] = []
    for i, e in enumerate(entries):
        if not isinstance(e, str):
            chk.problem(f"{path}.trusted_proxies[{i}]", f"expected an address or network as text, got {e!r}")
            continue
        try:
            TrustedProxies.parse([e])
        except ValueError as err:
            chk.problem(f"{path}.trusted_proxies[{i}]", str(err))
        else:
            good.append(e)
    return tuple(good)

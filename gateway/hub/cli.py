"""`gateway-hub --config F ...` (also `gateway hub --config F ...`): run the township hub, verify its receipt log,
manage the department registry and the operators' accounts.

Its own command, so a hub host runs it without loading the gateway's command line (config, adapters,
sync, push, spreadsheet importer): this module imports only the hub, accounts and the shared modules.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import orjson

from gateway import __version__
from gateway.accounts.commands import user_commands
from gateway.accounts.roles import HUB_ROLES
from gateway.errors import FatalError
from gateway.exit_codes import domain_errors
from gateway.hub.forward.commands import forward_commands
from gateway.standard.schema import RECORD_TYPES


class HubContext:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._config = None
        self._engine = None

    @property
    def config(self):  # type: ignore[no-untyped-def]
        from gateway.hub.config import load_hub_config

        if self._config is None:
            self._config = load_hub_config(self.path)
        return self._config

    @property
    def engine(self):  # type: ignore[no-untyped-def]
        from gateway.hub.db import open_hub_db

        if self._engine is None:
            self._engine = open_hub_db(self.config.database)
        return self._engine


pass_hub = click.make_pass_decorator(HubContext)


def _types(text: str | None) -> list[str]:
    if not text:
        return list(RECORD_TYPES)
    return [t.strip() for t in text.split(",") if t.strip()]


@click.group("hub", context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "-c", "config_path", type=click.Path(path_type=Path), envvar="HUB_CONFIG", required=True,
              help="Hub config file (TOML).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING or ERROR (default INFO, or gateway's --log-level).")
@click.version_option(__version__, prog_name="gateway-hub")
@click.pass_context
def hub(ctx: click.Context, config_path: Path, log_level: str | None) -> None:
    """The township hub (乡镇汇聚中心)."""
    if log_level or ctx.parent is None:  # under `gateway hub` the gateway group has set logging up already
        from gateway.logs import setup_logging

        setup_logging(log_level or "INFO")
    ctx.obj = HubContext(config_path)


@hub.command("run")
@click.option("--listen", metavar="HOST:PORT", default=None,
              help="Listen here instead of [hub] listen: several workers on one config (emergency-hub@PORT.service).")
@pass_hub
@domain_errors
def run(h: HubContext, listen: str | None) -> None:
    """Serve the hub API with waitress on [hub] listen (or --listen)."""
    import dataclasses
    import logging
    import re
    import sys

    from gateway.hub.server import serve
    from gateway.logs import setup_logging

    setup_logging(logging.getLevelName(logging.getLogger().level), sys.stdout)  # journald reads stdout
    config = h.config
    if listen is not None:
        if not re.fullmatch(r"[^\s]+:\d{1,5}", listen):
            raise click.BadParameter("expected host:port", param_hint="--listen")
        config = dataclasses.replace(config, listen=listen)
    serve(config)


def _read_heads(files: tuple[Path, ...], hub_public) -> list[tuple[int, str]]:  # type: ignore[no-untyped-def]
    """(log_seq, log_head) from head files: JSON object, array or lines of {"receipt", "signature"} or {"log_seq", "log_head"}."""
    from gateway.protocol.receipts import ReceiptInvalid, verify_receipt

    heads: list[tuple[int, str]] = []
    for f in files:
        text = f.read_text(encoding="utf-8").strip()
        try:
            doc = orjson.loads(text)
            items = doc if isinstance(doc, list) else [doc]
        except orjson.JSONDecodeError:
            items = [orjson.loads(line) for line in text.splitlines() if line.strip()]
        for i, item in enumerate(items):
            if "receipt" in item:
                body = item["receipt"].encode("utf-8") if isinstance(item["receipt"], str) else bytes(item["receipt"])
                try:
                    item = verify_receipt(body, item.get("signature", ""), hub_public)
                except ReceiptInvalid as e:
                    raise FatalError(f"{f} item {i}: {e}") from None
            if "log_seq" not in item or "log_head" not in item:
                raise FatalError(f"{f} item {i}: expected {{receipt, signature}} or {{log_seq, log_head}}")
            heads.append((int(item["log_seq"]), str(item["log_head"])))
    return heads


@hub.command("verify-log")
@click.option("--heads", "heads_files", multiple=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Signed receipts/heads a gateway holds (JSON); repeat for several.")
@pass_hub
@domain_errors
def verify_log_cmd(h: HubContext, heads_files: tuple[Path, ...]) -> None:
    """Recompute the receipt log's hash chain; name the first bad entry. Exit 1 when broken."""
    from gateway.hub.receipt_log import verify_log
    from gateway.protocol.keys import public_key_of, read_private_key

    public = public_key_of(read_private_key(h.config.signing_key, h.config.sm2_signer_id))
    verdict = verify_log(h.engine, _read_heads(heads_files, public), public)
    click.echo(str(verdict))
    if not verdict.ok:
        if verdict.first_bad_seq is not None:  # a missing checkpoint names no entry
            click.echo(f"first bad entry: {verdict.first_bad_seq}")
        sys.exit(1)


@hub.group("keys")
def hub_keys() -> None:
    """The hub's signing key."""


@hub_keys.command("new")
@click.option("--force", is_flag=True, help="Replace an existing key (gateways must then get the new .pub).")
@pass_hub
@domain_errors
def hub_keys_new(h: HubContext, force: bool) -> None:
    """Write the key pair at [hub] signing_key (and .pub beside it) in the suite [hub] suite names."""
    from gateway.hub.config import signing_key_target
    from gateway.protocol.keys import new_key_pair

    path, suite_name, signer_id = signing_key_target(h.path)
    if path.exists() and not force:
        raise FatalError(f"{path} exists; use --force to replace it")
    new_key_pair(path, path.with_suffix(".pub"), suite_name, signer_id)
    click.echo(f"wrote {path} and {path.with_suffix('.pub')} (suite {suite_name}; give the .pub to the gateways)")


@hub.group("department")
def department() -> None:
    """Departments, their keys and read grants (stored in the hub database)."""


@department.command("add")
@click.argument("code")
@click.argument("name")
@click.option("--types", help=f"Record types it may write, comma-separated (default all: {','.join(RECORD_TYPES)}).")
@pass_hub
@domain_errors
def department_add(h: HubContext, code: str, name: str, types: str | None) -> None:
    """Add department CODE (or update its name and record types)."""
    from gateway.hub import registry

    with h.engine.begin() as conn:
        registry.add_department(conn, code, name, _types(types))
    click.echo(f"department {code} ({name}) may write {', '.join(_types(types))}")


@department.command("key-add")
@click.argument("code")
@click.argument("key_id")
@click.argument("public_key")
@pass_hub
@domain_errors
def department_key_add(h: HubContext, code: str, key_id: str, public_key: str) -> None:
    """Register KEY_ID for department CODE; PUBLIC_KEY is base64 or a .pub file. Older keys stay active."""
    from gateway.hub import registry
    from gateway.protocol.suites import suite_of_text

    p = Path(public_key)
    text = p.read_text(encoding="ascii").strip() if p.is_file() else public_key
    key_suite = suite_of_text(text).name
    if key_suite not in h.config.accept_suites:
        raise FatalError(
            f"key {key_id} is an {key_suite} key, but hub.accept_suites is {list(h.config.accept_suites)}: "
            "no request signed with it would be accepted"
        )
    with h.engine.begin() as conn:
        registry.add_key(conn, code, key_id, text)
    click.echo(f"key {key_id} ({key_suite}) registered for department {code}")


@department.command("key-revoke")
@click.argument("key_id")
@pass_hub
@domain_errors
def department_key_revoke(h: HubContext, key_id: str) -> None:
    """Revoke KEY_ID: requests signed with it are refused (403) from now on."""
    from gateway.hub import registry

    with h.engine.begin() as conn:
        changed = registry.revoke_key(conn, key_id)
    click.echo(f"key {key_id} revoked" if changed else f"key {key_id} was revoked already")


@department.command("grant")
@click.argument("reader")
@click.argument("owner")
@click.option("--types", help="Record types READER may read of OWNER (default all).")
@click.option("--confidential", is_flag=True, help="Also confidential fields (phone numbers).")
@click.option("--remove", is_flag=True, help="Withdraw the grant instead.")
@pass_hub
@domain_errors
def department_grant(h: HubContext, reader: str, owner: str, types: str | None, confidential: bool, remove: bool) -> None:
    """Let department READER read OWNER's records (GET /api/v1/records)."""
    from gateway.hub import registry

    with h.engine.begin() as conn:
        if remove:
            registry.remove_grant(conn, reader, owner, _types(types))
        else:
            registry.set_grant(conn, reader, owner, _types(types), confidential)
    click.echo(f"{'withdrawn' if remove else 'granted'}: {reader} reads {owner}: {', '.join(_types(types))}"
               + (" (with confidential fields)" if confidential and not remove else ""))


@department.command("list")
@pass_hub
@domain_errors
def department_list(h: HubContext) -> None:
    """Departments with their record types, keys (active/revoked) and grants."""
    from gateway.hub import registry

    with h.engine.connect() as conn:
        deps = registry.list_departments(conn)
        grants = registry.list_grants(conn)
    for d, keys in deps:
        click.echo(f"{d.code}\t{d.name}\twrites: {', '.join(d.record_types)}")
        for k in keys:
            click.echo(f"  key {k.key_id}\t{'REVOKED' if k.revoked else 'active'}\t{k.suite}\t{k.public_key}")
    for gr in grants:
        click.echo(f"grant {gr.reader} reads {gr.owner} {gr.record_type}{' +confidential' if gr.confidential else ''}")


def _hub_store(ctx: click.Context):  # type: ignore[no-untyped-def]
    from gateway.hub.ui_tables import hub_account_store

    return hub_account_store(ctx.find_object(HubContext).engine)


user_commands(hub, _hub_store, HUB_ROLES)
forward_commands(hub, pass_hub)


def main() -> None:
    """The `gateway-hub` console script."""
    hub(prog_name="gateway-hub")

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

    public = public_key_of(read_private_key(h.config.signing_key, h.config.sm2_signer_id, h.config.at_rest.open))
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

    path, suite_name, signer_id, ring = signing_key_target(h.path)
    if path.exists() and not force:
        raise FatalError(f"{path} exists; use --force to replace it")
    new_key_pair(path, path.with_suffix(".pub"), suite_name, signer_id, ring.seal)
    click.echo(f"wrote {path} and {path.with_suffix('.pub')} (suite {suite_name}; give the .pub to the gateways)")


@hub.group("workbook")
def workbook() -> None:
    """The standard's workbook of the area, signed, for a level above that has no hub (提交上级更新)."""


@workbook.command("export")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), required=True, help="Folder for the workbooks.")
@click.option("--period", required=True, help="The period the submission covers, as the report names it (e.g. 2026年第四季度).")
@click.option("--department", "departments", multiple=True, help="Only this department (repeatable; default: all).")
@click.option("--since", default=None, help="Only records received since this day (YYYY-MM-DD, hub.timezone).")
@pass_hub
@domain_errors
def workbook_export(h: HubContext, out_dir: Path, period: str, departments: tuple[str, ...], since: str | None) -> None:
    """One workbook per department (the import template's layout), each with <name>.sig.json signed by the hub key."""
    from gateway.hub.ui.stats import day_start
    from gateway.hub.upward import export_area
    from gateway.protocol.keys import public_key_of, public_key_text, read_private_key

    cfg = h.config
    key = read_private_key(cfg.signing_key, cfg.sm2_signer_id, cfg.at_rest.open)
    try:
        start = day_start(since, cfg.timezone) if since else None
    except ValueError:
        raise FatalError(f"--since {since!r}: expected a day YYYY-MM-DD") from None
    try:
        done = export_area(h.engine, out_dir, key, cfg.key_id, office=cfg.office, period=period,
                           departments=departments or None, since=start, timezone=cfg.timezone)
    except ValueError as e:
        raise FatalError(str(e)) from None
    for w in done:
        counts = "，".join(f"{k} {n}" for k, n in w.counts.items()) or "无记录"
        click.echo(f"{w.path}（{w.name}：{counts}）\n  签名 {w.signature}")
    click.echo(f"核验公钥 / verify with: {public_key_text(public_key_of(key))}")


@workbook.command("import")
@click.argument("workbook_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--signature", "signature_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="The detached signature (default: FILE.sig.json beside it).")
@click.option("--from-key", "from_key", required=True,
              help="The sending hub's public key: its line or its .pub file (a lower hub registered here as a relay).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the row-level error report to this CSV file.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_hub
@domain_errors
def workbook_import(h: HubContext, workbook_file: Path, signature_file: Path | None, from_key: str,
                    report_file: Path | None, as_json: bool) -> None:
    """Import a signed workbook from a lower level: verify it, store its valid rows, report each bad row.

    Exit 0 when every row was stored (or was stored before), 1 when rows were refused (each named),
    2 when the workbook was refused whole (signature, key, department): then nothing is stored.
    """
    import json

    from gateway.hub.app import Hub
    from gateway.hub.workbook_import import import_signed_workbook, write_error_report
    from gateway.workbook.signature import signature_path

    key_path = Path(from_key)
    key_line = key_path.read_text(encoding="utf-8").strip() if key_path.is_file() else from_key.strip()
    result = import_signed_workbook(Hub(h.config, h.engine), workbook_file,
                                    signature_file or signature_path(workbook_file), key_line)
    if report_file is not None:
        write_error_report(result.errors, report_file)
    if as_json:
        click.echo(json.dumps(result.summary(), ensure_ascii=False, indent=2))
    else:
        c = result.counts
        again = "（此前已导入，返回原回执）" if result.replayed else ""
        click.echo(f"{result.file}：来自 {result.relay_name}（{result.relay_key}，公钥指纹 {result.fingerprint}），"
                   f"部门 {result.department}，批次 {result.batch_id}{again}")
        click.echo(f"接收 {c.get('accepted', 0)}，重复 {c.get('duplicate', 0)}，过期版本 {c.get('stale', 0)}，"
                   f"拒收 {c.get('rejected', 0)}；错误 {len(result.errors)} 处")
        for e in result.errors:
            click.echo(f"  {e}")
    if result.errors:
        sys.exit(1)


@hub.group("at-rest")
def at_rest() -> None:
    """SM4 encryption of what the hub stores ([at_rest]): attachments, UI secret, the private key files."""


@at_rest.command("rekey")
@pass_hub
@domain_errors
def at_rest_rekey(h: HubContext) -> None:
    """Rewrite every stored file under [at_rest] current (as plaintext when cipher is off); then old keys may go.

    A damaged file is named and left as it is; exit 1 when there is one.
    """
    from gateway.hub.rekey import rekey_hub

    _report(*rekey_hub(h.config))


@at_rest.command("status")
@pass_hub
@domain_errors
def at_rest_status(h: HubContext) -> None:
    """Count the stored files by the key that sealed them (each opened and checked); nothing is written.

    Exit 1 when a file is damaged (each named).
    """
    from gateway.hub.rekey import rekey_hub

    _report(*rekey_hub(h.config, write=False))


def _report(lines: list[str], damaged: list[str]) -> None:
    for line in lines:
        click.echo(line)
    for why in damaged:
        click.echo(f"damaged: {why}", err=True)
    if damaged:
        sys.exit(1)


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

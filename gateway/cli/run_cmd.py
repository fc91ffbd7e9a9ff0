"""`gateway run` (the service) and `gateway push SOURCE KEY` (one record, now)."""

from __future__ import annotations

import getpass
import json
import logging
import sys

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx

EX_TEMPFAIL = 75  # queued: the hub could not be reached now; the service will deliver it


@cli.command("run")
@click.option("--listen", default=None, help="host:port for the admin UI and local API (default: web.listen).")
@click.option("--no-web", is_flag=True, help="Run scheduler and push worker only, without the web server.")
@pass_ctx
@domain_errors
def run(ctx: Context, listen: str | None, no_web: bool) -> None:
    """Run the gateway: scheduled extract-and-load, push worker, admin UI and local API, until SIGTERM."""
    from gateway.logs import setup_logging
    from gateway.service.runtime import GatewayService

    setup_logging(logging.getLevelName(logging.getLogger().level), sys.stdout)  # journald reads stdout
    if not no_web:
        ctx.config.web.resolve()  # a missing web secret stops the start, not the first request
    service = GatewayService(ctx.config, listen=listen, web=not no_web)
    sys.exit(service.run_until_signal())


def echo_outcome(outcome, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    if as_json:
        click.echo(json.dumps(outcome.as_dict(), ensure_ascii=False, indent=2))
        return
    click.echo(f"{outcome.source} {outcome.key}: {outcome.message} ({outcome.status})")
    for p in outcome.problems:
        click.echo(f"  × {p.get('field') or ''} {p.get('value')!r}: {p.get('message')} [{p.get('rule')}]")
    for r in outcome.receipts:
        line = f"  回执 {r['record_type']} {r['record_key']} seq={r['seq']}: {r['status']}"
        if r.get("hub_seq") is not None:
            line += f" 中心序号 {r['hub_seq']} {r.get('hub_time') or ''}"
        click.echo(line)
        for reason in r.get("reasons") or []:
            msg = reason.get("message") if isinstance(reason, dict) else reason
            click.echo(f"    原因：{msg}")


@cli.command("push")
@click.argument("source")
@click.argument("key")
@click.option("--operator", default=None, help="Who made the edit (谁录入谁负责); default: the login name.")
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@pass_ctx
@domain_errors
def push(ctx: Context, source: str, key: str, operator: str | None, as_json: bool) -> None:
    """Re-read one record (SOURCE, source KEY), validate, enqueue and push it now; print the hub's receipt.

    Exit 0 when the hub's verified receipt accepts it, 1 when invalid or rejected,
    75 when queued because the hub cannot be reached now.
    """
    from gateway.service.record_push import DELIVERED, QUEUED, push_record_now
    from gateway.store import open_store

    cfg = ctx.config
    engine = open_store(cfg.state_path)
    try:
        outcome = push_record_now(cfg, engine, source, key, operator or getpass.getuser())
    finally:
        engine.dispose()
    echo_outcome(outcome, as_json)
    if outcome.status == DELIVERED:
        return
    sys.exit(EX_TEMPFAIL if outcome.status == QUEUED else 1)

"""`gateway freshness`: stale records and stock near expiry, from the gateway's store."""

from __future__ import annotations

import json

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx


@cli.command("freshness")
@click.option("--limit", default=50, show_default=True, help="Show at most this many of each list.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@pass_ctx
@domain_errors
def freshness(ctx: Context, limit: int, as_json: bool) -> None:
    """List records not updated or checked within their period, and stock near expiry."""
    from gateway.freshness import report_for
    from gateway.store import open_store

    cfg = ctx.config
    engine = open_store(cfg.state_path)
    try:
        rep = report_for(cfg, engine)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({
            "as_of": rep.as_of.isoformat(), "records": rep.records,
            "stale": [{"record_type": r.record_type, "key": r.record_key, "source": r.source,
                       "days_since": r.days_since, "period_days": r.period_days, "message": r.message} for r in rep.stale],
            "expiring": [{"key": s.record_key, "source": s.source, "expiry_date": s.expiry_date.isoformat(),
                          "days_left": s.days_left, "message": s.message} for s in rep.expiring],
        }, ensure_ascii=False, indent=2))
        return
    click.echo(f"{rep.records} 条记录；超期未更新 {len(rep.stale)} 条，临近或已过有效期的库存 {len(rep.expiring)} 条")
    for r in rep.stale[:limit]:
        click.echo(f"  超期  {r.record_type} {r.record_key}（{r.source}）：{r.message}")
    for s in rep.expiring[:limit]:
        click.echo(f"  效期  {s.record_key}（{s.source}）：{s.message}")

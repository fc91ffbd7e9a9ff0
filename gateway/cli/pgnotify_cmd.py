"""`gateway pg-notify install|uninstall|status SOURCE`: change triggers on PostgreSQL sources."""

from __future__ import annotations

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx


@cli.group("pg-notify")
def pg_notify() -> None:
    """PostgreSQL sources that announce changes (LISTEN/NOTIFY) for immediate push."""


@pg_notify.command("install")
@click.argument("source")
@pass_ctx
@domain_errors
def install_cmd(ctx: Context, source: str) -> None:
    """Install the notify trigger on SOURCE's table (needs CREATE/TRIGGER rights on it)."""
    from gateway.service.pg_notify import install, object_name

    t = install(ctx.config, source)
    click.echo(f"installed trigger {object_name(source)} on {t.schema + '.' if t.schema else ''}{t.table}; "
               f"channel {t.channel}; `gateway run` listens there and pushes each changed row at once")


@pg_notify.command("uninstall")
@click.argument("source")
@pass_ctx
@domain_errors
def uninstall_cmd(ctx: Context, source: str) -> None:
    """Remove SOURCE's notify trigger and function."""
    from gateway.service.pg_notify import uninstall

    t = uninstall(ctx.config, source)
    click.echo(f"removed the notify trigger from {t.table}")


@pg_notify.command("status")
@click.argument("source")
@pass_ctx
@domain_errors
def status_cmd(ctx: Context, source: str) -> None:
    """Whether SOURCE's notify trigger is installed."""
    from gateway.service.pg_notify import installed, target_for

    t = target_for(ctx.config, source)
    click.echo(f"{source}: {'installed' if installed(t) else 'not installed'} (channel {t.channel})")

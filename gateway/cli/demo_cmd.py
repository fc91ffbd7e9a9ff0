"""`gateway demo`: the whole exchange on one machine with embedded defaults."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from gateway.cli.main import cli, domain_errors


@cli.command("demo")
@click.option("--dir", "directory", type=click.Path(path_type=Path), default=Path("demo"), show_default=True,
              help="Folder for the sample department, configs, keys and state.")
@click.option("--once", is_flag=True, help="One full cycle, then exit: 0 only when every valid record was delivered.")
@click.option("--fresh", is_flag=True, help="Start over: empty the demo folder first.")
@click.option("--port", type=int, default=None,
              help="Port of the gateway's admin UI and local API (default 8710, or any free port when taken).")
@click.option("--hub-port", type=int, default=None, help="Port of the local hub (default 8700, or any free port when taken).")
@click.option("--tiers", is_flag=True, help="Also a county hub and a city hub above the township hub (levels, forwarding).")
@click.pass_context
@domain_errors
def demo(ctx: click.Context, directory: Path, once: bool, fresh: bool, port: int | None, hub_port: int | None,
         tiers: bool) -> None:
    """Create a sample department and a local hub, extract-and-load every source, show what was delivered.

    Without --once the gateway keeps running on its schedule (admin UI and hub UI
    URLs are printed) until Ctrl-C. Re-running in the same folder reuses it.
    """
    import logging

    from gateway.demo.runner import DemoError, run_demo

    if ctx.parent is not None and ctx.parent.get_parameter_source("log_level") == click.core.ParameterSource.DEFAULT:
        # The demo talks to a person: show the report, not every INFO log line (--log-level INFO for those).
        logging.getLogger().setLevel(logging.WARNING)

    try:
        code = run_demo(directory, once=once, fresh=fresh, echo=click.echo, port=port, hub_port=hub_port, tiers=tiers)
    except DemoError as e:
        raise click.ClickException(str(e)) from None
    except KeyboardInterrupt:  # Ctrl-C before the schedule started; everything was stopped on the way out
        click.echo("已中断。", err=True)
        code = 130
    sys.exit(code)

"""`gateway sftp trust SOURCE`: pin an SFTP server's host key, as an explicit admin action."""

from __future__ import annotations

from pathlib import Path

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx


@cli.group("sftp")
def sftp() -> None:
    """SFTP drop sources."""


@sftp.command("trust")
@click.argument("source")
@click.option("--yes", "-y", is_flag=True, help="Write the key without asking.")
@click.option("--fingerprint", "expected", help="Only trust the key if its fingerprint is this one (SHA256:...), as read out by the server's admin.")
@click.option("--replace", is_flag=True, help="Replace a different key already pinned for this host (the server was re-keyed).")
@pass_ctx
@domain_errors
def trust(ctx: Context, source: str, yes: bool, expected: str | None, replace: bool) -> None:
    """Fetch SOURCE's SSH host key, show its fingerprint and pin it in the source's known_hosts."""
    from gateway.adapters.files.hostkeys import fetch_host_key, fingerprint, host_entry, pin_host_key, pinned_keys

    src = ctx.config.source(source)
    if src.type != "sftp":
        raise click.UsageError(f"source {source} is of type {src.type}, not sftp")
    host, port = src.settings["host"], int(src.settings.get("port") or 22)
    known_hosts = Path(src.settings.get("known_hosts") or "~/.ssh/known_hosts").expanduser()
    key = fetch_host_key(host, port)
    fp = fingerprint(key)
    click.echo(f"{host_entry(host, port)} presents a {key.get_name()} host key")
    click.echo(f"fingerprint: {fp}")
    old = pinned_keys(known_hosts, host, port)
    if old:
        for t, k in old.items():
            same = "same key" if k.asbytes() == key.asbytes() else "DIFFERENT"
            click.echo(f"already pinned in {known_hosts}: {t} {fingerprint(k)} ({same})")
    if expected and expected.strip() != fp:
        raise click.ClickException(f"fingerprint {fp} does not match the expected {expected.strip()}; nothing written")
    if not yes and not click.confirm(f"Trust this key and write it to {known_hosts}?", default=False):
        click.echo("nothing written")
        return
    result = pin_host_key(known_hosts, host, port, key, replace=replace)
    click.echo({"added": f"added to {known_hosts}", "present": "already trusted; nothing changed",
                "replaced": f"replaced the old key in {known_hosts}"}[result])

"""`gateway at-rest rekey|status`: the files the gateway stores itself, under the current SM4 at-rest key.

Covered: the signing key file (keys.signing_key, unless a systemd credential) and the web session key it
generates when web.secret_key is not given. Rotation as at the hub: add the new key to [at_rest].keys as
`current`, restart the service, `rekey`, then remove the old key once `status` shows no file under it.
"""

from __future__ import annotations

import sys

import click

from gateway.cli.main import Context, cli, domain_errors, pass_ctx


def _run(ctx: Context, write: bool) -> None:
    """Print how the secrets are stored (and what was rewritten); a damaged one is named, exit 1."""
    from gateway.at_rest.stored import rekey_secrets

    cfg = ctx.config
    files = [(cfg.web_secret_file, "会话密钥 / web secret")]
    if cfg.signing_key is not None:
        files.append((cfg.signing_key, "私钥 / private key"))
    tally, skipped = rekey_secrets(files, cfg.at_rest, write=write)
    click.echo(tally.line("secrets", cfg.at_rest))
    for p in skipped:
        click.echo(f"left alone (a systemd credential): {p}")
    for why in tally.damaged:
        click.echo(f"damaged: {why}", err=True)
    if tally.damaged:
        sys.exit(1)


@cli.group("at-rest")
def at_rest() -> None:
    """SM4 encryption of what the gateway stores ([at_rest]): signing key, web secret."""


@at_rest.command("rekey")
@pass_ctx
@domain_errors
def rekey(ctx: Context) -> None:
    """Rewrite the stored secrets under [at_rest] current (as plaintext when cipher is off)."""
    _run(ctx, write=True)


@at_rest.command("status")
@pass_ctx
@domain_errors
def status(ctx: Context) -> None:
    """Count the stored secrets by the key that sealed them (each opened and checked); nothing is written."""
    _run(ctx, write=False)

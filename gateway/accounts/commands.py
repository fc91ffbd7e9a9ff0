"""`user add|passwd|unlock|list` for either web UI: `gateway user ...` and `gateway-hub user ...` add the same
commands over their own account store, so the hub's command line needs nothing of the gateway's."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable

import click

from gateway.accounts.store import AccountError, AccountStore
from gateway.exit_codes import domain_errors


def _read_password(from_stdin: bool) -> str:
    """From stdin (scripts), $GATEWAY_NEW_PASSWORD, or asked twice on the terminal."""
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    env = os.environ.get("GATEWAY_NEW_PASSWORD")
    if env:
        return env
    first = getpass.getpass("新密码: ")
    if getpass.getpass("再次输入: ") != first:
        raise click.ClickException("两次输入的密码不一致")
    return first


def user_commands(group: click.Group, store_of: Callable[[click.Context], AccountStore], roles: dict[str, str]) -> None:
    """Add a `user` sub-group to `group`; `store_of(ctx)` opens the right account store."""

    @group.group("user")
    def user() -> None:
        """Web UI accounts."""

    @user.command("add")
    @click.argument("username")
    @click.option("--role", type=click.Choice(list(roles)), required=True)
    @click.option("--name", "display_name", default="", help="Display name (姓名).")
    @click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
    @click.option("--one-time", is_flag=True, help="The user must change this password at first web login.")
    @click.pass_context
    @domain_errors
    def add(ctx: click.Context, username: str, role: str, display_name: str, password_stdin: bool,
            one_time: bool) -> None:
        """Create an account (the first admin is created this way)."""
        try:
            store_of(ctx).add(username, _read_password(password_stdin), role, display_name, actor="cli",
                              one_time=one_time)
        except AccountError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"已添加用户 {username}（{roles[role]}）" + ("；首次登录时须修改密码" if one_time else ""))

    @user.command("passwd")
    @click.argument("username")
    @click.option("--password-stdin", is_flag=True)
    @click.option("--one-time", is_flag=True, help="The user must change this password at next web login.")
    @click.pass_context
    @domain_errors
    def passwd(ctx: click.Context, username: str, password_stdin: bool, one_time: bool) -> None:
        """Set a new password (also clears a lockout)."""
        try:
            store_of(ctx).set_password(username, _read_password(password_stdin), actor="cli", one_time=one_time)
        except AccountError as e:
            raise click.ClickException(str(e)) from None
        click.echo(f"已重置 {username} 的密码")

    @user.command("unlock")
    @click.argument("username")
    @click.pass_context
    @domain_errors
    def unlock(ctx: click.Context, username: str) -> None:
        store_of(ctx).unlock(username, actor="cli")
        click.echo(f"已解锁 {username}")

    @user.command("list")
    @click.pass_context
    @domain_errors
    def list_(ctx: click.Context) -> None:
        for u in store_of(ctx).list():
            locked = f"  locked until {u['locked_until']}" if u["locked_until"] else ""
            one_time = "  one-time password" if u["must_change_password"] else ""
            click.echo(f"{u['username']}\t{u['role']}\t{u['display_name']}{locked}{one_time}")

"""`gateway user add|list|passwd|unlock` — accounts of the admin UI (`gateway hub user ...` adds the hub's own,
see gateway.hub.cli).

The first admin is created here; there is no default password anywhere.
"""

from __future__ import annotations

from gateway.accounts import AccountStore
from gateway.accounts.commands import user_commands
from gateway.accounts.roles import GATEWAY_ROLES
from gateway.cli.main import Context, cli


def _gateway_store(ctx: Context) -> AccountStore:
    from gateway.store import open_store, tables

    engine = open_store(ctx.config.state_path)
    return AccountStore(engine, tables.users, tables.audit, GATEWAY_ROLES)


user_commands(cli, lambda ctx: _gateway_store(ctx.find_object(Context)), GATEWAY_ROLES)

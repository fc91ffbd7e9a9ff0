"""The account and audit tables, one shape for both UIs (gateway store and hub database)."""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Integer, MetaData, String, Table, Text, false, inspect
from sqlalchemy.engine import Connection


def users_table(name: str, metadata: MetaData) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("username", String(64), nullable=False, unique=True),
        Column("display_name", String, nullable=False, default=""),
        Column("password_hash", String, nullable=False),
        Column("role", String(20), nullable=False),  # gateway: admin | clerk | viewer; hub: operator | viewer
        Column("failed_logins", Integer, nullable=False, default=0),
        Column("locked_until", String, nullable=True),
        Column("created_at", String, nullable=False),
        # Set with a one-time password (an admin's add or reset, the demo's printed one): the UIs send the
        # user to the change-password page until they choose their own.
        Column("must_change_password", Boolean, nullable=False, default=False, server_default=false()),
    )


def add_account_columns(conn: Connection, users: Table) -> None:
    """Add to an existing users table the columns this code added after it was made (idempotent)."""
    have = {c["name"] for c in inspect(conn).get_columns(users.name)}
    if "must_change_password" not in have:
        # Existing accounts keep the passwords they have: only new one-time passwords set the flag.
        # IF NOT EXISTS where the database has it: hub workers starting together may race here.
        guard = "IF NOT EXISTS " if conn.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(
            f'ALTER TABLE "{users.name}" ADD COLUMN {guard}must_change_password BOOLEAN NOT NULL DEFAULT FALSE'
        )


def audit_table(name: str, metadata: MetaData) -> Table:
    return Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("at", String, nullable=False),  # UTC ISO 8601
        Column("actor", String, nullable=False),
        Column("action", String, nullable=False),
        Column("target", String, nullable=True),
        Column("before", Text, nullable=True),  # JSON
        Column("after", Text, nullable=True),  # JSON
        Column("remote_addr", String, nullable=True),
    )

"""The account and audit tables, one shape for both UIs (gateway store and hub database)."""

from __future__ import annotations

from sqlalchemy import Column, Integer, MetaData, String, Table, Text


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

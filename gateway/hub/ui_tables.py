"""Tables and indexes of the hub operators' UI, on the hub's own metadata.

Imported by gateway.hub.tables, so the hub's schema creation (create_all)
includes them: UI accounts and their audit log, plus the indexes the receipt
log browser pages by.
"""

from __future__ import annotations

from sqlalchemy import Index

from gateway.accounts.tables import add_account_columns, audit_table, users_table
from gateway.hub.tables import metadata, receipt_log, records

hub_users = users_table("ui_users", metadata)
hub_audit = audit_table("ui_audit", metadata)

UI_INDEXES = (
    # Receipt log browser: "status = X" and "kind = X" filters page by seq.
    Index("ix_receipt_log_status_seq", receipt_log.c.status, receipt_log.c.seq),
    Index("ix_receipt_log_kind_seq", receipt_log.c.kind, receipt_log.c.seq),
    Index("ix_receipt_log_department_kind_seq", receipt_log.c.department, receipt_log.c.kind, receipt_log.c.seq),
    # Department status and the report count from these alone (covering: no row lookups).
    Index("ix_records_freshness", records.c.department, records.c.type, records.c.deleted,
          records.c.received_at, records.c.updated_at),
)


def ensure_ui_schema(engine) -> None:  # type: ignore[no-untyped-def]
    """Create the UI tables and indexes a hub database made before them lacks (idempotent)."""
    metadata.create_all(engine, tables=[hub_users, hub_audit])
    with engine.begin() as conn:
        add_account_columns(conn, hub_users)
    for ix in UI_INDEXES:
        ix.create(engine, checkfirst=True)


def hub_account_store(engine, max_failures: int = 5, lockout_minutes: float = 15):  # type: ignore[no-untyped-def]
    from gateway.accounts import AccountStore
    from gateway.accounts.roles import HUB_ROLES

    ensure_ui_schema(engine)
    return AccountStore(engine, hub_users, hub_audit, HUB_ROLES, max_failures=max_failures, lockout_minutes=lockout_minutes)

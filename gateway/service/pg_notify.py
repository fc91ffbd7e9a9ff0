"""PostgreSQL sources that announce their own changes: a trigger calls pg_notify, the service listens.

`install(config, source)` puts a trigger function and an AFTER INSERT/UPDATE/
DELETE row trigger on the source table that sends the row's source key (key
columns joined by '|', as the sql adapter builds it) on channel
``gateway_<source>``. The service LISTENs there and pushes each key at once
through the per-record path. Notifications sent while the service was down
are not replayed by PostgreSQL; the source's scheduled sync catches those up.
Every identifier is quoted by psycopg.sql, never pasted into SQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from gateway.config import GatewayConfig, SourceConfig
from gateway.errors import SourceError

TAG = "$gw$"  # dollar-quote tag of the function body


def channel(source: str) -> str:
    return f"gateway_{source}"[:63]


def object_name(source: str) -> str:
    return f"gateway_notify_{source}"[:63]


def conninfo(url: str) -> str:
    """A libpq connection string from a SQLAlchemy URL (postgresql+psycopg://...)."""
    u = make_url(url)
    return u.set(drivername="postgresql").render_as_string(hide_password=False)


def is_postgres(source: SourceConfig) -> bool:
    url = source.settings.get("url")
    return source.type == "sql" and isinstance(url, str) and url.startswith(("postgresql", "postgres:"))


@dataclass(frozen=True)
class NotifyTarget:
    source: str
    url: str
    schema: str | None
    table: str
    key_columns: tuple[str, ...]

    @property
    def channel(self) -> str:
        return channel(self.source)

    def _qualified(self, name: str) -> sql.Composable:
        return sql.Identifier(self.schema, name) if self.schema else sql.Identifier(name)

    def statements(self) -> list[sql.Composed]:
        def key_expr(rec: str) -> sql.Composable:
            parts = [sql.SQL("coalesce({}.{}::text, '')").format(sql.SQL(rec), sql.Identifier(c)) for c in self.key_columns]
            return sql.SQL(" || '|' || ").join(parts)

        fn = self._qualified(object_name(self.source))
        table = self._qualified(self.table)
        body = sql.SQL(
            "BEGIN\n"
            "  IF TG_OP = 'DELETE' THEN\n"
            "    PERFORM pg_notify({ch}, {old});\n"
            "    RETURN OLD;\n"
            "  END IF;\n"
            "  IF TG_OP = 'UPDATE' AND ({old}) IS DISTINCT FROM ({new}) THEN\n"
            "    PERFORM pg_notify({ch}, {old});  -- the old key is gone: let the gateway see the delete\n"
            "  END IF;\n"
            "  PERFORM pg_notify({ch}, {new});\n"
            "  RETURN NEW;\n"
            "END"
        ).format(ch=sql.Literal(self.channel), old=key_expr("OLD"), new=key_expr("NEW"))
        return [
            sql.SQL("CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS " + TAG + "{body}" + TAG).format(
                fn=fn, body=body
            ),
            sql.SQL("DROP TRIGGER IF EXISTS {trg} ON {table}").format(trg=sql.Identifier(object_name(self.source)), table=table),
            sql.SQL(
                "CREATE TRIGGER {trg} AFTER INSERT OR UPDATE OR DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION {fn}()"
            ).format(trg=sql.Identifier(object_name(self.source)), table=table, fn=fn),
        ]


def target_for(config: GatewayConfig, source_name: str) -> NotifyTarget:
    src = config.source(source_name)
    if not is_postgres(src):
        raise SourceError(f"source {source_name!r} is not a PostgreSQL sql source (pg-notify needs one)")
    table = src.settings.get("table")
    if not table:
        raise SourceError(f"source {source_name!r} reads a query, not a table; pg-notify needs settings.table")
    keys = tuple(str(k) for k in (src.settings.get("key_columns") or ()))
    if not keys:
        raise SourceError(f"source {source_name!r} has no key_columns")
    return NotifyTarget(source_name, str(src.settings["url"]), src.settings.get("schema"), str(table), keys)


def _check_columns(conn: psycopg.Connection[Any], t: NotifyTarget) -> None:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_name = %s AND table_schema = coalesce(%s, current_schema())",
        (t.table, t.schema),
    ).fetchall()
    have = {r[0] for r in rows}
    if not have:
        raise SourceError(f"table {t.table!r} not found in schema {t.schema or 'current'} of source {t.source!r}")
    missing = [c for c in t.key_columns if c not in have]
    if missing:
        raise SourceError(f"key column(s) {', '.join(missing)} not in table {t.table!r} (have: {', '.join(sorted(have))})")


def install(config: GatewayConfig, source_name: str) -> NotifyTarget:
    """Create (or replace) the notify function and trigger for `source_name`."""
    t = target_for(config, source_name)
    with psycopg.connect(conninfo(t.url)) as conn:
        _check_columns(conn, t)
        for stmt in t.statements():
            text = stmt.as_string(conn)
            if text.count(TAG) not in (0, 2):
                raise SourceError(f"identifier of source {source_name!r} contains {TAG}; rename it")
            conn.execute(text)
    return t


def uninstall(config: GatewayConfig, source_name: str) -> NotifyTarget:
    t = target_for(config, source_name)
    with psycopg.connect(conninfo(t.url)) as conn:
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS {trg} ON {table}").format(
                trg=sql.Identifier(object_name(t.source)), table=t._qualified(t.table)
            )
        )
        conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {fn}()").format(fn=t._qualified(object_name(t.source))))
    return t


def installed(t: NotifyTarget, conn: psycopg.Connection[Any] | None = None) -> bool:
    """Whether the trigger exists on the source table."""
    q = "SELECT 1 FROM pg_trigger WHERE tgname = %s AND NOT tgisinternal"
    if conn is not None:
        return conn.execute(q, (object_name(t.source),)).fetchone() is not None
    with psycopg.connect(conninfo(t.url), connect_timeout=5) as c:
        return c.execute(q, (object_name(t.source),)).fetchone() is not None

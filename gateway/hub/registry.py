"""The department registry in the hub database: departments, their keys, and read grants.

Seeded from the hub config at start-up (`sync_from_config`) and managed with
`gateway hub department ...`. A revoked key stays revoked: the config can
revoke a key but never brings one back.

Every write here bumps the one-row `registry_version`. A hub process keeps the
departments and keys in memory (`RegistryCache`) and reads that number once per
request: a key revoked or a department changed by any process, the CLI
included, is honoured from the next request on.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Engine, and_, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from gateway.errors import FatalError
from gateway.hub import tables
from gateway.hub.config import CODE_RE, KEY_ID_RE, HubConfig
from gateway.hub.db import REGISTRY_SEED_LOCK, utcnow, write_tx
from gateway.protocol.keys import public_key_from_text
from gateway.protocol.signing import KeyRevoked
from gateway.protocol.suites import suite_of_text
from gateway.standard.schema import RECORD_TYPES


class RegistryError(FatalError):
    pass


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    department: str
    public_key: str
    revoked: bool
    area: tuple[str, ...] | None = None  # a relay's (a lower hub's) departments; None for a department's key

    @property
    def suite(self) -> str:
        """The key's suite, from its registered line (an SM2 key's line starts `sm2:`)."""
        return suite_of_text(self.public_key).name


@dataclass(frozen=True)
class Department:
    code: str
    name: str
    record_types: tuple[str, ...]


@dataclass(frozen=True)
class Grant:
    reader: str
    owner: str
    record_type: str
    confidential: bool


def _check_types(types: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    bad = [t for t in types if t not in RECORD_TYPES]
    if bad:
        raise RegistryError(f"unknown record type(s) {', '.join(bad)}; expected {', '.join(RECORD_TYPES)}")
    return tuple(types)


def bump_version(conn: Connection) -> None:
    """Tell every hub process that the registry changed (inside the writing transaction, so both commit together)."""
    v = tables.registry_version
    if conn.execute(update(v).where(v.c.id == 1).values(version=v.c.version + 1)).rowcount == 0:
        # The first registry write on this database; two at once (hub processes starting together) add one row.
        ins = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(v).values(id=1, version=1)
        conn.execute(ins.on_conflict_do_nothing())


def add_department(conn: Connection, code: str, name: str, record_types: tuple[str, ...] | list[str] = tuple(RECORD_TYPES)) -> None:
    """Add a department or update its name and record types."""
    if not CODE_RE.match(code):
        raise RegistryError(f"department code {code!r}: use 2-40 letters, digits, '-' or '_'")
    types = list(_check_types(record_types))
    found = conn.execute(select(tables.departments.c.code).where(tables.departments.c.code == code)).first()
    if found:
        conn.execute(update(tables.departments).where(tables.departments.c.code == code).values(name=name, record_types=types))
    else:
        conn.execute(insert(tables.departments).values(code=code, name=name, record_types=types, created_at=utcnow()))
    bump_version(conn)


def add_key(conn: Connection, department: str, key_id: str, public_key: str) -> None:
    """Register a key for a department. A key id is never reused, not even after revocation."""
    if not KEY_ID_RE.match(key_id):
        raise RegistryError(f"key id {key_id!r}: use 1-128 letters, digits, '_', '.', ':' or '-'")
    try:
        public_key_from_text(public_key)
    except Exception:
        raise RegistryError(
            f"key {key_id}: not a public key line (base64 of an Ed25519 key, or sm2:<base64 of the point>)"
        ) from None
    if conn.execute(select(tables.departments.c.code).where(tables.departments.c.code == department)).first() is None:
        raise RegistryError(f"no department {department!r}; add it first")
    if conn.execute(select(tables.relays.c.key_id).where(tables.relays.c.key_id == key_id)).first() is not None:
        raise RegistryError(f"key id {key_id} is a relay's (a lower hub's) key already")
    row = conn.execute(select(tables.department_keys).where(tables.department_keys.c.key_id == key_id)).mappings().first()
    text = public_key.strip().removeprefix("ed25519:")
    if row is None:
        conn.execute(insert(tables.department_keys).values(key_id=key_id, department=department, public_key=text, added_at=utcnow()))
        bump_version(conn)
    elif row["department"] != department or row["public_key"] != text:
        raise RegistryError(f"key id {key_id} is registered already (department {row['department']}) with another key")


def add_relay(conn: Connection, key_id: str, name: str, public_key: str, departments: tuple[str, ...] | list[str]) -> None:
    """Register a lower hub's key for the departments of its area, or change its name and area."""
    if not KEY_ID_RE.match(key_id):
        raise RegistryError(f"key id {key_id!r}: use 1-128 letters, digits, '_', '.', ':' or '-'")
    try:
        public_key_from_text(public_key)
    except Exception:
        raise RegistryError(f"relay {key_id}: not a public key line") from None
    known = {c for (c,) in conn.execute(select(tables.departments.c.code))}
    if missing := [d for d in departments if d not in known]:
        raise RegistryError(f"relay {key_id}: no department {', '.join(missing)}; add it first")
    if conn.execute(select(tables.department_keys.c.key_id).where(tables.department_keys.c.key_id == key_id)).first():
        raise RegistryError(f"key id {key_id} is a department's key already")
    text = public_key.strip().removeprefix("ed25519:")
    r = tables.relays.c
    row = conn.execute(select(tables.relays).where(r.key_id == key_id)).mappings().first()
    area = sorted(set(departments))
    if row is None:
        conn.execute(insert(tables.relays).values(key_id=key_id, name=name, public_key=text, departments=area, added_at=utcnow()))
    elif row["public_key"] != text:
        raise RegistryError(f"relay key id {key_id} is registered already with another key")
    else:
        conn.execute(update(tables.relays).where(r.key_id == key_id).values(name=name, departments=area))
    bump_version(conn)


def list_relays(conn: Connection) -> list[KeyEntry]:
    rows = conn.execute(select(tables.relays).order_by(tables.relays.c.key_id)).mappings()
    return [_relay_entry(r) for r in rows]


def _relay_entry(r: Any) -> KeyEntry:
    return KeyEntry(r["key_id"], "", r["public_key"], bool(r["revoked_at"]), tuple(r["departments"] or ()))


def revoke_key(conn: Connection, key_id: str) -> bool:
    """Revoke a key (a department's or a relay's) from now on; False when it was revoked already."""
    r = tables.relays.c
    relay = conn.execute(select(tables.relays).where(r.key_id == key_id)).mappings().first()
    if relay is not None:
        if relay["revoked_at"]:
            return False
        conn.execute(update(tables.relays).where(r.key_id == key_id).values(revoked_at=utcnow()))
        bump_version(conn)
        return True
    row = conn.execute(select(tables.department_keys).where(tables.department_keys.c.key_id == key_id)).mappings().first()
    if row is None:
        raise RegistryError(f"no key {key_id!r}")
    if row["revoked_at"]:
        return False
    conn.execute(update(tables.department_keys).where(tables.department_keys.c.key_id == key_id).values(revoked_at=utcnow()))
    bump_version(conn)
    return True


def set_grant(conn: Connection, reader: str, owner: str, record_types: tuple[str, ...] | list[str], confidential: bool = False) -> None:
    for code in (reader, owner):
        if conn.execute(select(tables.departments.c.code).where(tables.departments.c.code == code)).first() is None:
            raise RegistryError(f"no department {code!r}")
    g = tables.grants.c
    for t in _check_types(record_types):
        conn.execute(delete(tables.grants).where(and_(g.reader == reader, g.owner == owner, g.record_type == t)))
        conn.execute(insert(tables.grants).values(reader=reader, owner=owner, record_type=t, confidential=confidential, granted_at=utcnow()))
    bump_version(conn)


def remove_grant(conn: Connection, reader: str, owner: str, record_types: tuple[str, ...] | list[str]) -> None:
    g = tables.grants.c
    conn.execute(delete(tables.grants).where(and_(g.reader == reader, g.owner == owner, g.record_type.in_(list(record_types)))))
    bump_version(conn)


def sync_from_config(engine: Engine, config: HubConfig) -> None:
    """Bring the registry up to what the config lists (adds and updates; never un-revokes)."""
    with write_tx(engine) as conn:
        if conn.dialect.name == "postgresql":
            # Workers started together on one database seed it one at a time: each reads what the previous
            # one wrote instead of inserting the same department again (a unique violation, a dead worker).
            conn.exec_driver_sql("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_SEED_LOCK,))
        for d in config.departments:
            add_department(conn, d.code, d.name, d.record_types)
            for k in d.keys:
                add_key(conn, d.code, k.key_id, k.public_key)
                if k.revoked:
                    revoke_key(conn, k.key_id)
        for gr in config.grants:
            set_grant(conn, gr.reader, gr.owner, gr.record_types, gr.confidential)
        for rl in config.relays:
            add_relay(conn, rl.key_id, rl.name, rl.public_key, rl.departments)
            if rl.revoked:
                revoke_key(conn, rl.key_id)
        bump_version(conn)  # the row exists from the first start on, even with no department configured


def key_entry(conn: Connection, key_id: str) -> KeyEntry | None:
    row = conn.execute(select(tables.department_keys).where(tables.department_keys.c.key_id == key_id)).mappings().first()
    if row is None:
        return None
    return KeyEntry(row["key_id"], row["department"], row["public_key"], bool(row["revoked_at"]))


def key_lookup(entry: KeyEntry | None) -> Ed25519PublicKey | None:
    """For `verify_request`: the public key, None when unknown, KeyRevoked when revoked."""
    if entry is None:
        return None
    if entry.revoked:
        raise KeyRevoked(entry.key_id)
    return public_key_from_text(entry.public_key)


def department(conn: Connection, code: str) -> Department | None:
    row = conn.execute(select(tables.departments).where(tables.departments.c.code == code)).mappings().first()
    if row is None:
        return None
    return Department(row["code"], row["name"], tuple(row["record_types"] or ()))


def list_departments(conn: Connection) -> list[tuple[Department, list[KeyEntry]]]:
    out = []
    keys = conn.execute(select(tables.department_keys).order_by(tables.department_keys.c.key_id)).mappings().all()
    for row in conn.execute(select(tables.departments).order_by(tables.departments.c.code)).mappings():
        d = Department(row["code"], row["name"], tuple(row["record_types"] or ()))
        out.append((d, [KeyEntry(k["key_id"], k["department"], k["public_key"], bool(k["revoked_at"])) for k in keys if k["department"] == d.code]))
    return out


def list_grants(conn: Connection) -> list[Grant]:
    g = tables.grants.c
    rows = conn.execute(select(tables.grants).order_by(g.reader, g.owner, g.record_type)).mappings()
    return [Grant(r["reader"], r["owner"], r["record_type"], bool(r["confidential"])) for r in rows]


def read_grant(conn: Connection, reader: str, owner: str, record_type: str) -> Grant | None:
    """What `reader` may read of `owner`'s `record_type`; a department reads all of its own."""
    if reader == owner:
        return Grant(reader, owner, record_type, True)
    g = tables.grants.c
    row = conn.execute(
        select(tables.grants).where(and_(g.reader == reader, g.owner == owner, g.record_type == record_type))
    ).mappings().first()
    return Grant(reader, owner, record_type, bool(row["confidential"])) if row else None


@dataclass(frozen=True)
class Snapshot:
    """Departments and keys as of one `registry_version`; public keys parsed once."""

    version: int | None
    keys: dict[str, KeyEntry]
    departments: dict[str, Department]
    _public: dict[str, Ed25519PublicKey] = field(default_factory=dict, compare=False)

    def key_lookup(self, key_id: str) -> Ed25519PublicKey | None:
        """For `verify_request`: the public key, None when unknown, KeyRevoked when revoked."""
        entry = self.keys.get(key_id)
        if entry is None:
            return None
        if entry.revoked:
            raise KeyRevoked(entry.key_id)
        public = self._public.get(key_id)
        if public is None:
            public = self._public[key_id] = public_key_from_text(entry.public_key)
        return public


_VERSION = select(tables.registry_version.c.version).where(tables.registry_version.c.id == 1)
# The same query as text for psycopg's pipeline (read_version, gateway/hub/store/pg.py), compiled once.
PG_VERSION = str(_VERSION.compile(dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True}))


def read_version(conn: Connection) -> int | None:
    """The registry version row. PostgreSQL: with the BEGIN of psycopg's transaction in one round trip
    (a pipeline), and that transaction left open for the caller's next statements."""
    if conn.dialect.name == "postgresql":
        pg = conn.connection.driver_connection
        with pg.pipeline():
            cur = pg.execute(PG_VERSION)
        row = cur.fetchone()
        return None if row is None else int(row[0])
    return conn.execute(_VERSION).scalar()


def load_snapshot(conn: Connection) -> Snapshot:
    """Every department and key, labelled with the version read first (a write in between only makes it newer)."""
    version = conn.execute(_VERSION).scalar()
    keys = {
        r["key_id"]: KeyEntry(r["key_id"], r["department"], r["public_key"], bool(r["revoked_at"]))
        for r in conn.execute(select(tables.department_keys)).mappings()
    }
    keys.update((r["key_id"], _relay_entry(r)) for r in conn.execute(select(tables.relays)).mappings())
    departments = {
        r["code"]: Department(r["code"], r["name"], tuple(r["record_types"] or ()))
        for r in conn.execute(select(tables.departments)).mappings()
    }
    return Snapshot(version, keys, departments)


class RegistryCache:
    """The registry in memory for request authentication; one one-row read per request checks it is current.

    Reading the key and the department from the database on every request
    was a third of the hub's time per small batch. The version row is bumped
    in the same transaction as every registry write, so a snapshot whose
    version still matches the database is exactly what the tables hold.
    """

    def __init__(self) -> None:
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()

    def kept(self) -> Snapshot | None:
        """The snapshot in memory without a read: for a caller that compares its version with the
        `registry_version` row inside its own transaction (and starts over when it differs)."""
        snap = self._snapshot
        return snap if snap is not None and snap.version is not None else None

    def current(self, conn: Connection) -> Snapshot:
        """The snapshot for this request: the kept one while the version row still says so, else read afresh.

        PostgreSQL: leaves psycopg's transaction open (`read_version`); the caller ends or goes on with it.
        """
        version = read_version(conn)
        snap = self._snapshot
        if snap is not None and version is not None and snap.version == version:
            return snap
        snap = load_snapshot(conn)
        with self._lock:
            old = self._snapshot
            if old is None or old.version is None or (snap.version is not None and snap.version >= old.version):
                self._snapshot = snap
        return snap

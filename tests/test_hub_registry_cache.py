"""The hub keeps departments and keys in memory; a change made by another process still counts from the next request."""

from __future__ import annotations

import uuid
from typing import Any

from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import event

from gateway.cli import cli
from gateway.hub import registry
from gateway.hub.db import open_hub_db
from gateway.protocol.keys import public_key_text
from tests.fixtures.hub import LiveHub, batch_body, record, sample

BATCHES = "/api/v1/batches"


def material_batch(n: int = 1) -> bytes:
    return batch_body([record("material", sample("material", n))], batch_id=str(uuid.uuid4()))


def department_cli(hub: LiveHub, *args: str) -> None:
    """`gateway hub --config F department ...`: its own engine and connection, as an operator's shell would have."""
    result = CliRunner().invoke(cli, ["hub", "--config", str(hub.config_path), "department", *args])
    assert result.exit_code == 0, result.output


def test_a_key_revoked_with_the_cli_is_refused_on_the_next_request(live_hub_process: LiveHub) -> None:
    hub = live_hub_process  # the hub in its own process: its cache cannot see the CLI's writes any other way
    assert hub.post(BATCHES, material_batch()).status_code == 200
    assert hub.post(BATCHES, material_batch(2)).status_code == 200
    department_cli(hub, "key-revoke", hub.key_id)
    r = hub.post(BATCHES, material_batch(3))
    assert r.status_code == 403 and r.json()["error"] == "key_revoked"


def test_department_changes_from_another_process_apply_to_the_next_request(live_hub_process: LiveHub) -> None:
    hub = live_hub_process
    assert hub.post(BATCHES, material_batch()).status_code == 200
    department_cli(hub, "add", hub.department, "应急管理局", "--types", "depot,stock")
    r = hub.post(BATCHES, material_batch(2))
    assert r.status_code == 403 and r.json()["error"] == "record_type_not_allowed"
    new = Ed25519PrivateKey.generate()
    department_cli(hub, "key-add", hub.department, f"{hub.department}-9", public_key_text(new.public_key()))
    department_cli(hub, "add", hub.department, "应急管理局", "--types", "material,depot,stock")
    assert hub.post(BATCHES, material_batch(3), key=new, key_id=f"{hub.department}-9").status_code == 200


def test_a_key_revoked_through_another_connection_is_refused_on_postgresql(live_hub_pg: LiveHub) -> None:
    hub = live_hub_pg
    assert hub.post(BATCHES, material_batch()).status_code == 200
    other = open_hub_db(hub.database_url)  # not the hub's engine: another pool, another connection
    try:
        with other.begin() as conn:
            registry.revoke_key(conn, hub.key_id)
    finally:
        other.dispose()
    r = hub.post(BATCHES, material_batch(2))
    assert r.status_code == 403 and r.json()["error"] == "key_revoked"


def test_nonce_commits_leave_sqlite_connections_fully_synchronous(live_hub: LiveHub) -> None:
    """The nonce commit skips the flush wait; every connection goes back to the pool flushing each commit."""
    engine = live_hub.app.extensions["hub"].engine
    levels: list[int] = []

    def on_checkin(dbapi_conn: Any, _record: Any) -> None:
        levels.append(dbapi_conn.execute("PRAGMA synchronous").fetchone()[0])

    event.listen(engine, "checkin", on_checkin)
    try:
        assert live_hub.post(BATCHES, material_batch(), nonce="b" * 32).status_code == 200
        replay = live_hub.post(BATCHES, material_batch(2), nonce="b" * 32)
        assert replay.status_code == 401 and replay.json()["error"] == "replay"
    finally:
        event.remove(engine, "checkin", on_checkin)
    assert levels and set(levels) == {2}  # 2 = FULL


def test_the_registry_version_moves_with_every_registry_write(live_hub: LiveHub) -> None:
    hub = live_hub
    cache = registry.RegistryCache()

    def current() -> registry.Snapshot:
        with hub.engine.connect() as conn:
            return cache.current(conn)

    seen = [current().version]
    key = Ed25519PrivateKey.generate()
    writes = [
        lambda c: registry.add_department(c, "dept077", "新部门", ["material"]),
        lambda c: registry.add_key(c, "dept077", "dept077-1", public_key_text(key.public_key())),
        lambda c: registry.set_grant(c, "dept077", hub.department, ["material"]),
        lambda c: registry.remove_grant(c, "dept077", hub.department, ["material"]),
        lambda c: registry.revoke_key(c, "dept077-1"),
    ]
    for write in writes:
        with hub.engine.begin() as conn:
            write(conn)
        seen.append(current().version)
    assert None not in seen and seen == sorted(set(seen)), seen  # grows with every write
    snap = current()
    assert snap.keys["dept077-1"].revoked and snap.departments["dept077"].record_types == ("material",)

"""GET /healthz on a real hub: 200 when it can take batches, 503 with the reason when its database is gone."""

from __future__ import annotations

import requests
from sqlalchemy import create_engine, make_url, text

from tests.conftest import PG_ADMIN
from tests.fixtures.hub import LiveHub


def test_healthz_answers_ok_without_authentication_or_data(live_hub: LiveHub) -> None:
    r = requests.get(f"{live_hub.url}/healthz", timeout=10)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert "Set-Cookie" not in r.headers


def test_healthz_is_503_when_the_postgresql_database_is_dropped(live_hub_pg: LiveHub) -> None:
    assert requests.get(f"{live_hub_pg.url}/healthz", timeout=10).json() == {"status": "ok"}
    name = make_url(live_hub_pg.database_url).database
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f"DROP DATABASE {name} WITH (FORCE)"))
        r = requests.get(f"{live_hub_pg.url}/healthz", timeout=30)
        assert r.status_code == 503 and r.headers["Retry-After"]
        body = r.json()
        assert body["status"] == "unavailable" and body["reason"] == "database" and "数据库" in body["message"]
        assert name not in r.text and "postgres" not in r.text.lower()  # no server details leak
        # An empty database of the same name answers queries but is not the hub's: still not ready.
        with admin.connect() as c:
            c.execute(text(f"CREATE DATABASE {name}"))
        r = requests.get(f"{live_hub_pg.url}/healthz", timeout=30)
        assert r.status_code == 503 and r.json()["reason"] == "database"
    finally:
        admin.dispose()

"""Shared fixtures: real, throwaway databases on this machine's servers."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

PG_ADMIN = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
MY_ADMIN = os.environ.get("TEST_MYSQL_ADMIN_URL", "mysql+pymysql://root@127.0.0.1:3306/")


def _new_database(admin_url: str, url_for: str) -> Iterator[str]:
    name = "gwtest_" + uuid.uuid4().hex[:10]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield url_for.format(name=name)
    finally:
        with admin.connect() as c:
            if admin.dialect.name == "postgresql":
                c.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            else:
                c.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        admin.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (dropped afterwards)."""
    yield from _new_database(PG_ADMIN, "postgresql+psycopg://postgres@127.0.0.1:5432/{name}")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh, empty MariaDB database (dropped afterwards)."""
    yield from _new_database(MY_ADMIN, "mysql+pymysql://root@127.0.0.1:3306/{name}?charset=utf8mb4")


# Each area's fixtures live in tests/fixtures/<area>.py; list them here.
pytest_plugins: list[str] = ["tests.fixtures.hub", "tests.fixtures.levels", "tests.fixtures.push", "tests.fixtures.faultproxy", "tests.fixtures.web", "tests.fixtures.browser", "tests.fixtures.odbc", "tests.fixtures.sshd", "tests.fixtures.service"]

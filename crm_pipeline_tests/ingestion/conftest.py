"""Fixtures for the ingestion tests: a throw-away PostgreSQL database per test."""

import os
import uuid
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

DEFAULT_POSTGRES_SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """URL of a fresh, uniquely named database on the test PostgreSQL server, dropped afterwards.

    The server is `CRM_TEST_POSTGRES_URL` (a URL to any existing database on it, used to create and drop the
    test database), default `postgresql+psycopg://postgres@127.0.0.1:5432/postgres`. A server that cannot be
    reached skips the test with the reason instead of failing it: the SQLite variants still run offline.
    """
    server = sa.make_url(os.environ.get("CRM_TEST_POSTGRES_URL") or DEFAULT_POSTGRES_SERVER_URL)
    shown = server.render_as_string(hide_password=True)
    if server.get_backend_name() != "postgresql":
        pytest.fail(f"CRM_TEST_POSTGRES_URL must be a postgresql URL, got {shown}")
    name = f"crm_test_{uuid.uuid4().hex[:16]}"
    # CREATE/DROP DATABASE cannot run in a transaction; a short connect timeout keeps an absent server quick
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5},
                             poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))  # name is generated above, not user input
    except (sa.exc.SQLAlchemyError, ImportError, OSError) as error:
        admin.dispose()
        pytest.skip(f"no PostgreSQL server reachable at {shown}: {error}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            # FORCE (PostgreSQL 13+): a connection a failed test left open must not keep the database alive
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

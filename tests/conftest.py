"""Fixtures shared by the integration and end-to-end tests: a real PostgreSQL and a real
Kafka-protocol broker, started here. Every test gets its own database and its own
broker, so nothing leaks from one test into the next. Unit tests use neither."""

import os
import uuid

import asyncpg
import pytest

from devstack.broker import TansuBroker
from devstack.postgres import EmbeddedPostgres, create_database
from devstack.processes import free_port

API_KEY = "test-key-" + "x" * 32

# The tests' webhook receivers listen on loopback, which the notifier otherwise refuses
# (services/notifier/egress.py); the services the tests start inherit this.
os.environ.setdefault("WEBHOOK_ALLOWED_NETWORKS", "127.0.0.1/32")

# For a whole stack on the real clock: a check-in counts for the shift on now, even in the
# half hour before a shift change, when it would count for the next one and leave the
# operator off duty (tests then failed between 06:30 and 07:00 WIB, and so on).
ON_DUTY_NOW = {"CHECK_IN_EARLY_MINUTES": "0"}


@pytest.fixture(scope="session")
def pg_admin_uri(tmp_path_factory):
    """One PostgreSQL server for the session (starting one costs about a second);
    isolation comes from a fresh database per test."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", delete_on_stop=True)
    uri = server.start()
    yield uri
    server.stop()


@pytest.fixture
async def database_url(pg_admin_uri):
    name = f"t_{uuid.uuid4().hex[:16]}"
    url = await create_database(pg_admin_uri, name)
    yield url
    conn = await asyncpg.connect(pg_admin_uri)
    try:
        await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture
def broker(tmp_path):
    """A fresh Tansu broker (memory only) on a free port."""
    instance = TansuBroker(free_port(), log_file=tmp_path / "broker.log")
    instance.start()
    yield instance
    instance.stop()

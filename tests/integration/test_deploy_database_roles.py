"""The production database layout (deploy/k8s/base/postgres/cluster.yaml) works with the
services' own start-up: on a real PostgreSQL, the Cluster's bootstrap SQL makes one role
per service; each service then migrates and seeds its schema as its own role, as it does
when it starts in Kubernetes, and no role can read or write another service's tables or
the public schema."""

import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import yaml

from services.common import db
from services.intake import verification_api
from services.router import store as router_store

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CLUSTER = REPO / "deploy" / "k8s" / "base" / "postgres" / "cluster.yaml"
SERVICES = ["intake", "router", "notifier", "shifts", "console"]


def bootstrap_sql(database: str, role_prefix: str) -> list[str]:
    """The Cluster's postInitApplicationSQL for this test's database, with role names of
    its own (roles are server-wide; other tests share the server)."""
    spec = yaml.safe_load(CLUSTER.read_text())["spec"]
    assert spec["bootstrap"]["initdb"]["database"] == "e112"
    return [
        statement.replace("e112_", role_prefix).replace("ON DATABASE e112 ", f'ON DATABASE "{database}" ')
        for statement in spec["bootstrap"]["initdb"]["postInitApplicationSQL"]
    ]


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def test_each_service_migrates_its_schema_as_its_own_role_and_reaches_no_other(database_url):
    prefix = f"t{uuid.uuid4().hex[:8]}_"
    database = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(database_url)
    try:
        for statement in bootstrap_sql(database, prefix):
            await admin.execute(statement)
    finally:
        await admin.close()

    for service in SERVICES:
        pool = await db.create_pool(as_role(database_url, prefix + service), schema=service, min_size=1, max_size=2)
        try:
            applied = await db.migrate(pool, service, REPO / "services" / service / "migrations")
            assert applied, service
            async with pool.acquire() as conn:
                if service == "intake":
                    await verification_api.seed_default_policy(conn)
                if service == "router":
                    await router_store.seed_default_table(conn)
                owner = await conn.fetchval(
                    "SELECT nspowner::regrole::text FROM pg_namespace WHERE nspname = $1", service
                )
                assert owner == prefix + service
                # A second start (another replica, a restart) finds nothing to do.
            assert await db.migrate(pool, service, REPO / "services" / service / "migrations") == []
        finally:
            await pool.close()

    notifier = await asyncpg.connect(as_role(database_url, prefix + "notifier"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await notifier.fetch("SELECT * FROM intake.reports LIMIT 1")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await notifier.execute(
                "INSERT INTO router.outbox (topic, key, headers, value) VALUES ('t', 'k', '[]', 'v')"
            )
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await notifier.execute("CREATE TABLE public.anything (id int)")
        assert await notifier.fetchval("SELECT count(*) FROM notifier.outbox") == 0
    finally:
        await notifier.close()
